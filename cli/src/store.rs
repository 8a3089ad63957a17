//! A directory that plays the chain's state for `myelin precompile`: the very precompile code
//! the node runs ([`myelin_precompile::Myelin`]) over files instead of EVM state, so Foundry
//! tests (through the bridge contract) exercise the real implementation.
//!
//! Layout: `<dir>/models/<id>.myl` (published models), `<dir>/storage.json` (the precompile
//! account's storage slots). Each invocation is one call in a fresh transaction: transient
//! storage starts empty, so every model load is priced cold (conservative). Writes land only
//! when the call succeeds, like a journaled EVM call, and files are replaced atomically. An
//! exclusive lock on `<dir>/lock` serialises calls (forge runs test suites in parallel).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};

use alloy_primitives::{Bytes, B256, U256};
use anyhow::{Context, Result};
use myelin_precompile::Host;

pub struct DirStore {
    /// Held for the store's lifetime: no other process reads or writes meanwhile.
    _lock: std::fs::File,
    dir: PathBuf,
    storage: BTreeMap<U256, U256>,
    transient: BTreeMap<U256, U256>,
    new_models: Vec<(B256, Bytes)>,
    pub logs: Vec<(Vec<B256>, Bytes)>,
}

impl DirStore {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir.join("models"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let lock =
            std::fs::File::create(dir.join("lock")).context("creating the store's lock file")?;
        lock.lock().context("locking the model store")?;
        let path = dir.join("storage.json");
        let storage = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(DirStore {
            _lock: lock,
            dir: dir.to_path_buf(),
            storage,
            transient: BTreeMap::new(),
            new_models: Vec::new(),
            logs: Vec::new(),
        })
    }

    /// Persists the call's writes (only called after a successful call).
    pub fn commit(self) -> Result<()> {
        for (id, bytes) in &self.new_models {
            write_atomic(&self.dir.join("models").join(format!("{id}.myl")), bytes)?;
        }
        let json = serde_json::to_string_pretty(&self.storage)?;
        write_atomic(&self.dir.join("storage.json"), json.as_bytes())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

impl Host for DirStore {
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

    fn model_bytes(&mut self, id: B256) -> Result<Option<Bytes>, Infallible> {
        if let Some((_, b)) = self.new_models.iter().find(|(i, _)| *i == id) {
            return Ok(Some(b.clone()));
        }
        Ok(
            std::fs::read(self.dir.join("models").join(format!("{id}.myl")))
                .ok()
                .map(Bytes::from),
        )
    }

    fn store_model(&mut self, id: B256, bytes: Bytes) -> Result<(), Infallible> {
        self.new_models.push((id, bytes));
        Ok(())
    }

    fn log(&mut self, topics: Vec<B256>, data: Bytes) {
        self.logs.push((topics, data));
    }
}
