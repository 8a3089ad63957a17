//! [`MemHost`]: the precompile's state kept in memory — storage and transient slots, code of
//! the accounts holding models and upload chunks, logs. Tests use it as is; `myelin precompile` persists one to a directory.

use std::collections::BTreeMap;
use std::convert::Infallible;

use alloy_primitives::{Address, Bytes, B256, U256};

use crate::precompile::Host;

#[derive(Clone, Debug, Default)]
pub struct MemHost {
    /// Storage of the precompile account (zero values are not kept).
    pub storage: BTreeMap<U256, U256>,
    pub transient: BTreeMap<U256, U256>,
    /// Code of the accounts holding models and upload chunks (without the EVM's STOP byte).
    pub code: BTreeMap<Address, Bytes>,
    pub logs: Vec<(Vec<B256>, Bytes)>,
}

impl MemHost {
    /// Starts a new transaction: transient storage is cleared, everything else persists.
    pub fn new_tx(&mut self) {
        self.transient.clear();
    }
}

impl Host for MemHost {
    type Error = Infallible;

    fn sload(&mut self, key: U256) -> Result<U256, Infallible> {
        Ok(self.storage.get(&key).copied().unwrap_or_default())
    }

    fn sstore(&mut self, key: U256, value: U256) -> Result<(), Infallible> {
        if value.is_zero() {
            self.storage.remove(&key);
        } else {
            self.storage.insert(key, value);
        }
        Ok(())
    }

    fn tload(&mut self, key: U256) -> U256 {
        self.transient.get(&key).copied().unwrap_or_default()
    }

    fn tstore(&mut self, key: U256, value: U256) {
        self.transient.insert(key, value);
    }

    fn code(&mut self, at: Address) -> Result<Option<Bytes>, Infallible> {
        Ok(self.code.get(&at).cloned())
    }

    fn store_code(&mut self, at: Address, data: Bytes) -> Result<(), Infallible> {
        self.code.insert(at, data);
        Ok(())
    }

    fn log(&mut self, topics: Vec<B256>, data: Bytes) {
        self.logs.push((topics, data));
    }
}
