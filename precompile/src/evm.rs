//! The precompile inside the EVM: [`Myelin`] over alloy-evm's `EvmInternals`.
//!
//! Models are stored as the code of an address derived from their id, behind a STOP byte
//! (like SSTORE2), so loading one is a single code read; metadata and chunked uploads live in
//! the precompile account's storage; per-transaction warmth in its transient storage.

use std::panic::{catch_unwind, AssertUnwindSafe};

use alloy_evm::precompiles::{DynPrecompile, PrecompileInput};
use alloy_evm::{EvmInternals, EvmInternalsError};
use alloy_primitives::{address, keccak256, Address, Bytes, Log, LogData, B256, U256};
use alloy_sol_types::SolError;
use revm::bytecode::Bytecode;
use revm::precompile::{PrecompileError, PrecompileHalt, PrecompileId, PrecompileOutput};

use crate::abi::IMyelin;
use crate::precompile::{CallContext, Host, Myelin, Outcome};

/// Default address of the precompile.
pub const DEFAULT_ADDRESS: Address = address!("0000000000000000000000000000000000000a11");

/// The account whose code holds model `id`'s bytes (after a leading STOP).
pub fn model_address(id: B256) -> Address {
    Address::from_slice(&keccak256([b"myelin.model.code".as_slice(), id.as_slice()].concat())[12..])
}

struct EvmHost<'i, 'a> {
    internals: &'i mut EvmInternals<'a>,
    address: Address,
}

impl Host for EvmHost<'_, '_> {
    type Error = EvmInternalsError;

    fn sload(&mut self, key: U256) -> Result<U256, Self::Error> {
        Ok(self.internals.sload(self.address, key)?.data)
    }

    fn sstore(&mut self, key: U256, value: U256) -> Result<(), Self::Error> {
        // An account with nonce 0, no balance and no code is "empty" and EIP-161 clears it,
        // storage included, when the block's state is committed: give it a nonce first.
        let mut account = self.internals.load_account_mut(self.address)?;
        if account.data.nonce() == 0 {
            account.data.set_nonce(1);
        }
        drop(account);
        self.internals.sstore(self.address, key, value)?;
        Ok(())
    }

    fn tload(&mut self, key: U256) -> U256 {
        self.internals.tload(self.address, key)
    }

    fn tstore(&mut self, key: U256, value: U256) {
        self.internals.tstore(self.address, key, value)
    }

    fn model_bytes(&mut self, id: B256) -> Result<Option<Bytes>, Self::Error> {
        let account = self.internals.load_account_code(model_address(id))?;
        let code = account.data.code().map(|c| c.original_bytes());
        Ok(code.filter(|c| !c.is_empty()).map(|c| c.slice(1..)))
    }

    fn store_model(&mut self, id: B256, bytes: Bytes) -> Result<(), Self::Error> {
        let code = [&[0x00u8][..], &bytes].concat();
        self.internals
            .set_code(model_address(id), Bytecode::new_legacy(code.into()))
    }

    fn log(&mut self, topics: Vec<B256>, data: Bytes) {
        self.internals.log(Log {
            address: self.address,
            data: LogData::new_unchecked(topics, data),
        });
    }
}

/// The precompile as alloy-evm installs it at `address`. Stateful: reth must never cache
/// its results by input.
pub fn precompile(myelin: Myelin, address: Address) -> DynPrecompile {
    DynPrecompile::new_stateful(
        PrecompileId::Custom("myelin".into()),
        move |mut input: PrecompileInput<'_>| {
            let ctx = CallContext {
                caller: input.caller,
                value: input.value,
                is_static: input.is_static,
                is_direct: input.is_direct_call(),
                gas_limit: input.gas,
            };
            let (reservoir, data) = (input.reservoir, input.data);
            let mut host = EvmHost {
                internals: &mut input.internals,
                address,
            };
            // A bug must not crash the node: every node runs the same code, so turning a panic
            // into a revert (consuming all gas, SPEC §6) is deterministic.
            let outcome = catch_unwind(AssertUnwindSafe(|| myelin.call(&mut host, &ctx, data)))
                .unwrap_or_else(|_| {
                    Ok(Outcome::Revert {
                        gas_used: ctx.gas_limit,
                        output: IMyelin::InternalError {}.abi_encode().into(),
                    })
                });
            match outcome {
                Ok(Outcome::Success { gas_used, output }) => {
                    Ok(PrecompileOutput::new(gas_used, output, reservoir))
                }
                Ok(Outcome::Revert { gas_used, output }) => {
                    Ok(PrecompileOutput::revert(gas_used, output, reservoir))
                }
                Ok(Outcome::OutOfGas) => {
                    Ok(PrecompileOutput::halt(PrecompileHalt::OutOfGas, reservoir))
                }
                Err(e) => Err(PrecompileError::Fatal(format!(
                    "myelin: state database error: {e}"
                ))),
            }
        },
    )
}
