//! A minimal chain for end-to-end tests: real signed EIP-1559 transactions executed in blocks
//! by alloy-evm's `EthBlockExecutorFactory` with [`MyelinEvmFactory`], over in-memory state
//! (revm's `State`, as reth uses, so EIP-161 clearing and journaling behave as on a node).

use std::borrow::Cow;

use alloy_consensus::transaction::{Recovered, SignerRecoverable};
use alloy_consensus::{Header, SignableTransaction, TxEip1559, TxEnvelope};
use alloy_eips::eip7840::BlobParams;
use alloy_evm::block::{BlockExecutor, BlockExecutorFactory};
use alloy_evm::eth::receipt_builder::AlloyReceiptBuilder;
use alloy_evm::eth::spec::EthExecutorSpec;
use alloy_evm::eth::{EthBlockExecutionCtx, EthBlockExecutorFactory};
use alloy_evm::{Evm, EvmEnv, EvmFactory};
use alloy_hardforks::{EthereumChainHardforks, EthereumHardfork, EthereumHardforks, ForkCondition};
use alloy_primitives::{Address, Bytes, TxKind, B256, U256};
use alloy_signer::SignerSync;
use alloy_signer_local::PrivateKeySigner;
use myelin_reth::{MyelinConfig, MyelinEvmFactory};
use revm::context::TxEnv;
use revm::context_interface::result::ExecutionResult;
use revm::database::states::bundle_state::BundleRetention;
use revm::database::{CacheDB, EmptyDB, State};
use revm::state::AccountInfo;

pub const CHAIN_ID: u64 = 1337;
/// Block gas limit; transactions are capped at 2^24 by Osaka (EIP-7825).
pub const BLOCK_GAS_LIMIT: u64 = 60_000_000;

/// Every fork through Osaka active from genesis.
#[derive(Clone, Debug)]
pub struct DevSpec(EthereumChainHardforks);

impl EthereumHardforks for DevSpec {
    fn ethereum_fork_activation(&self, fork: EthereumHardfork) -> ForkCondition {
        self.0.ethereum_fork_activation(fork)
    }
}

impl EthExecutorSpec for DevSpec {
    fn deposit_contract_address(&self) -> Option<Address> {
        None
    }
}

/// A transaction to sign and include.
pub struct Tx {
    pub to: Option<Address>,
    pub data: Bytes,
    pub value: U256,
    pub gas_limit: u64,
}

impl Tx {
    pub fn call(to: Address, data: impl Into<Bytes>) -> Self {
        Tx {
            to: Some(to),
            data: data.into(),
            value: U256::ZERO,
            gas_limit: 16_000_000,
        }
    }
    pub fn create(init_code: impl Into<Bytes>) -> Self {
        Tx {
            to: None,
            data: init_code.into(),
            value: U256::ZERO,
            gas_limit: 16_000_000,
        }
    }
    pub fn gas(mut self, gas_limit: u64) -> Self {
        self.gas_limit = gas_limit;
        self
    }
    pub fn value(mut self, value: U256) -> Self {
        self.value = value;
        self
    }
}

/// What one transaction did.
#[derive(Debug)]
pub struct Executed {
    pub result: ExecutionResult,
    pub success: bool,
    pub gas_used: u64,
    pub logs: usize,
}

pub struct Chain {
    pub state: State<CacheDB<EmptyDB>>,
    pub factory: MyelinEvmFactory,
    pub signer: PrivateKeySigner,
    nonce: u64,
    pub number: u64,
    parent_hash: B256,
}

impl Chain {
    pub fn new(config: MyelinConfig) -> Self {
        let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).expect("valid key");
        let mut db = CacheDB::<EmptyDB>::default();
        let rich = AccountInfo {
            balance: U256::from(10).pow(U256::from(24)),
            ..Default::default()
        };
        db.insert_account_info(signer.address(), rich);
        let state = State::builder()
            .with_database(db)
            .with_bundle_update()
            .build();
        Chain {
            state,
            factory: MyelinEvmFactory::new(config),
            signer,
            nonce: 0,
            number: 0,
            parent_hash: B256::ZERO,
        }
    }

    pub fn sender(&self) -> Address {
        self.signer.address()
    }

    /// The address a contract created by the sender's next transaction gets (+ `offset`).
    pub fn next_contract(&self, offset: u64) -> Address {
        self.sender().create(self.nonce + offset)
    }

    /// "Restarts the node": same state, new factory (empty model cache).
    pub fn restart(&mut self, config: MyelinConfig) {
        self.factory = MyelinEvmFactory::new(config);
    }

    fn header(&self) -> Header {
        Header {
            number: self.number + 1,
            timestamp: 1_000 + 12 * (self.number + 1),
            gas_limit: BLOCK_GAS_LIMIT,
            base_fee_per_gas: Some(7),
            parent_hash: self.parent_hash,
            excess_blob_gas: Some(0),
            blob_gas_used: Some(0),
            parent_beacon_block_root: Some(B256::ZERO),
            mix_hash: B256::repeat_byte(1),
            ..Default::default()
        }
    }

    fn sign(&mut self, tx: Tx) -> Recovered<TxEnvelope> {
        let t = TxEip1559 {
            chain_id: CHAIN_ID,
            nonce: self.nonce,
            gas_limit: tx.gas_limit,
            max_fee_per_gas: 1_000_000_000,
            max_priority_fee_per_gas: 1,
            to: tx.to.map(TxKind::Call).unwrap_or(TxKind::Create),
            value: tx.value,
            access_list: Default::default(),
            input: tx.data,
        };
        self.nonce += 1;
        let sig = self
            .signer
            .sign_hash_sync(&t.signature_hash())
            .expect("signs");
        TxEnvelope::from(t.into_signed(sig))
            .try_into_recovered()
            .expect("recovers")
    }

    /// Executes one block with these transactions and commits it.
    pub fn block(&mut self, txs: Vec<Tx>) -> Vec<Executed> {
        let header = self.header();
        let signed: Vec<_> = txs.into_iter().map(|t| self.sign(t)).collect();
        let spec = DevSpec(EthereumChainHardforks::devnet());
        let f = EthBlockExecutorFactory::new(
            AlloyReceiptBuilder::default(),
            spec,
            self.factory.clone(),
        );
        let env: EvmEnv =
            EvmEnv::for_eth_block(&header, f.spec(), CHAIN_ID, Some(BlobParams::osaka()));
        let evm = f.evm_factory().create_evm(&mut self.state, env);
        let ctx = EthBlockExecutionCtx {
            parent_hash: header.parent_hash,
            parent_beacon_block_root: header.parent_beacon_block_root,
            ommers: &[],
            withdrawals: Some(Cow::Owned(vec![])),
            extra_data: header.extra_data.clone(),
            tx_count_hint: Some(signed.len()),
            slot_number: None,
        };
        let mut ex = f.create_executor(evm, ctx);
        ex.apply_pre_execution_changes().expect("pre-execution");
        let mut results = Vec::new();
        for tx in &signed {
            ex.execute_transaction_with_result_closure(tx, |r| {
                results.push(r.result.result.clone())
            })
            .expect("transaction is valid for the block");
        }
        let (_evm, out) = ex.finish().expect("block finishes");
        self.state.merge_transitions(BundleRetention::Reverts);
        self.number += 1;
        self.parent_hash = header.hash_slow();
        results
            .into_iter()
            .zip(out.receipts)
            .map(|(result, receipt)| Executed {
                success: receipt.status(),
                gas_used: result.tx_gas_used(),
                logs: receipt.logs().len(),
                result,
            })
            .collect()
    }

    /// `eth_call` at the next block: executes without committing anything.
    pub fn call(&mut self, to: Address, data: impl Into<Bytes>) -> ExecutionResult {
        let header = self.header();
        let spec = DevSpec(EthereumChainHardforks::devnet());
        let env: EvmEnv =
            EvmEnv::for_eth_block(&header, &spec, CHAIN_ID, Some(BlobParams::osaka()));
        let mut evm = self.factory.create_evm(&mut self.state, env);
        let tx = TxEnv::builder()
            .caller(self.signer.address())
            .call(to)
            .data(data.into())
            .nonce(self.nonce)
            .gas_limit(16_000_000)
            .gas_price(7)
            .chain_id(Some(CHAIN_ID))
            .build()
            .expect("valid call");
        evm.transact(tx).expect("call executes").result
    }
}

/// Bytecode of a contract compiled by the project's Foundry build (`scripts/forge build`).
pub fn artifact(file: &str, contract: &str) -> Bytes {
    let path = format!(
        "{}/../out/{file}/{contract}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{path}: {e}. Build the contracts first: scripts/forge build (scripts/test.sh does it)"
        )
    });
    let json: serde_json::Value = serde_json::from_str(&text).expect("artifact is JSON");
    let hex = json["bytecode"]["object"]
        .as_str()
        .expect("bytecode.object");
    hex::decode(hex.trim_start_matches("0x"))
        .expect("hex bytecode")
        .into()
}
