//! `MyelinEvmFactory`: alloy-evm's Ethereum `EvmFactory` plus the Myelin precompile at its
//! address from its activation onwards. reth builds every EVM (block execution, payload
//! building, `eth_call`, `eth_estimateGas`, tracing) through the factory, so all of them see
//! the precompile; before activation the address is an ordinary empty account.
//!
//! Activation is a hard fork: every node of a chain must use the same address and activation.

use alloy_evm::eth::{EthEvm, EthEvmContext};
use alloy_evm::precompiles::PrecompilesMap;
use alloy_evm::{Database, EthEvmFactory, Evm, EvmEnv, EvmFactory};
use alloy_primitives::{Address, U256};
use myelin_precompile::evm::{precompile, DEFAULT_ADDRESS};
use myelin_precompile::precompile::DEFAULT_CACHE_MODELS;
use myelin_precompile::Myelin;
use revm::context::{BlockEnv, TxEnv};
use revm::context_interface::result::{EVMError, HaltReason};
use revm::inspector::NoOpInspector;
use revm::primitives::hardfork::SpecId;
use revm::Inspector;

/// When the precompile starts to exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// From this block number on.
    Block(u64),
    /// From the first block with at least this timestamp.
    Timestamp(u64),
}

/// Chain-level settings (consensus: identical on every node) and the node-local cache size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MyelinConfig {
    pub address: Address,
    pub activation: Activation,
    /// Prepared models kept in memory per node (speed only; never changes gas or results).
    pub cache_models: usize,
}

impl Default for MyelinConfig {
    fn default() -> Self {
        MyelinConfig {
            address: DEFAULT_ADDRESS,
            activation: Activation::Block(0),
            cache_models: DEFAULT_CACHE_MODELS,
        }
    }
}

impl MyelinConfig {
    pub fn is_active(&self, block: &BlockEnv) -> bool {
        match self.activation {
            Activation::Block(n) => block.number >= U256::from(n),
            Activation::Timestamp(t) => block.timestamp >= U256::from(t),
        }
    }
}

/// The Ethereum EVM factory with Myelin installed. Cloning shares the model cache.
#[derive(Clone, Debug, Default)]
pub struct MyelinEvmFactory {
    inner: EthEvmFactory,
    config: MyelinConfig,
    myelin: Myelin,
}

impl MyelinEvmFactory {
    pub fn new(config: MyelinConfig) -> Self {
        MyelinEvmFactory {
            inner: EthEvmFactory::default(),
            config,
            myelin: Myelin::new(config.cache_models),
        }
    }

    pub fn config(&self) -> &MyelinConfig {
        &self.config
    }

    fn install<DB: Database, I: Inspector<EthEvmContext<DB>>>(
        &self,
        evm: &mut EthEvm<DB, I, PrecompilesMap>,
        active: bool,
    ) {
        if active {
            let p = precompile(self.myelin.clone(), self.config.address);
            evm.precompiles_mut()
                .apply_precompile(&self.config.address, |_| Some(p));
        }
    }
}

impl EvmFactory for MyelinEvmFactory {
    type Evm<DB: Database, I: Inspector<EthEvmContext<DB>>> = EthEvm<DB, I, PrecompilesMap>;
    type Context<DB: Database> = EthEvmContext<DB>;
    type Tx = TxEnv;
    type Error<DBError: revm::context::DBErrorMarker> = EVMError<DBError>;
    type HaltReason = HaltReason;
    type Spec = SpecId;
    type BlockEnv = BlockEnv;
    type Precompiles = PrecompilesMap;

    fn create_evm<DB: Database>(
        &self,
        db: DB,
        env: EvmEnv<SpecId, BlockEnv>,
    ) -> Self::Evm<DB, NoOpInspector> {
        let active = self.config.is_active(&env.block_env);
        let mut evm = self.inner.create_evm(db, env);
        self.install(&mut evm, active);
        evm
    }

    fn create_evm_with_inspector<DB: Database, I: Inspector<Self::Context<DB>>>(
        &self,
        db: DB,
        env: EvmEnv<SpecId, BlockEnv>,
        inspector: I,
    ) -> Self::Evm<DB, I> {
        let active = self.config.is_active(&env.block_env);
        let mut evm = self.inner.create_evm_with_inspector(db, env, inspector);
        self.install(&mut evm, active);
        evm
    }
}
