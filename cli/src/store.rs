//! A directory that plays the chain's state for `myelin precompile`: the very precompile code
//! the node runs ([`myelin_precompile::Myelin`]) over files instead of EVM state, so Foundry
//! tests (through the bridge contract) exercise the real implementation.
//!
//! Layout: `<dir>/code/<address>` (code of the accounts holding published models and upload
//! chunks), `<dir>/storage.json` (the precompile account's storage slots). Each invocation is one call in a fresh transaction: transient
//! storage starts empty, so every model load is priced cold (conservative). Writes land only
//! when the call succeeds, like a journaled EVM call, and files are replaced atomically. An
//! exclusive lock on `<dir>/lock` serialises calls (forge runs test suites in parallel).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};

use alloy_primitives::{Address, Bytes, B256, U256};
use anyhow::{Context, Result};
use myelin_precompile::memhost::MemHost;
use myelin_precompile::Host;

pub struct DirStore {
    /// Held for the store's lifetime: no other process reads or writes meanwhile.
    _lock: std::fs::File,
    dir: PathBuf,
    /// The state of this call: storage from `storage.json`, models read lazily from files.
    pub state: MemHost,
}

impl DirStore {
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir.join("code"))
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
        let state = MemHost {
            storage,
            ..MemHost::default()
        };
        Ok(DirStore {
            _lock: lock,
            dir: dir.to_path_buf(),
            state,
        })
    }

    fn code_path(&self, at: Address) -> PathBuf {
        self.dir.join("code").join(at.to_string())
    }

    /// Persists the call's writes (only called after a successful call).
    pub fn commit(self) -> Result<()> {
        for (at, bytes) in &self.state.code {
            let path = self.code_path(*at);
            if !path.exists() {
                write_atomic(&path, bytes)?;
            }
        }
        let json = serde_json::to_string_pretty(&self.state.storage)?;
        write_atomic(&self.dir.join("storage.json"), json.as_bytes())
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// [`MemHost`] plus code files read on first use.
impl Host for DirStore {
    type Error = Infallible;

    fn sload(&mut self, key: U256) -> Result<U256, Infallible> {
        self.state.sload(key)
    }
    fn sstore(&mut self, key: U256, value: U256) -> Result<(), Infallible> {
        self.state.sstore(key, value)
    }
    fn tload(&mut self, key: U256) -> U256 {
        self.state.tload(key)
    }
    fn tstore(&mut self, key: U256, value: U256) {
        self.state.tstore(key, value)
    }
    fn code(&mut self, at: Address) -> Result<Option<Bytes>, Infallible> {
        if !self.state.code.contains_key(&at) {
            if let Ok(bytes) = std::fs::read(self.code_path(at)) {
                self.state.code.insert(at, bytes.into());
            }
        }
        self.state.code(at)
    }
    fn store_code(&mut self, at: Address, data: Bytes) -> Result<(), Infallible> {
        self.state.store_code(at, data)
    }
    fn log(&mut self, topics: Vec<B256>, data: Bytes) {
        self.state.log(topics, data)
    }
}
