//! The node-local store of prepared models. It changes speed only, never gas or results, but
//! the gas schedule relies on two promises it keeps:
//!
//! 1. **A model loaded earlier in the same transaction is still prepared.** A warm load costs
//!    `gas::LOAD_WARM` and must not parse or prepare again. The LRU alone cannot promise this:
//!    a transaction that loads more models than it holds (or a concurrent `eth_call` on the
//!    same node) would evict them, and every later warm load would re-parse for 100 gas. So
//!    each transaction *pins* the engines it loaded until it ends. The EVM runs a transaction
//!    on one thread from start to end, so the pins are thread-local, tagged with an *epoch*
//!    number the precompile keeps in the transaction's transient storage: a call that finds
//!    no epoch (or another one) starts a new transaction on this thread and drops the pins of
//!    the previous one. Their memory is bounded by what the transaction paid for cold loads.
//! 2. **Its memory is bounded.** Besides the pins, the LRU keeps at most `models` entries
//!    and at most [`MAX_CACHED_MODEL_BYTES`] of model bytes (a prepared model takes about 5
//!    bytes of memory per model byte: int32 weights plus the decoded model).

use std::cell::RefCell;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use alloy_primitives::B256;
use lru::LruCache;

use crate::engine::Engine;

/// Model bytes the LRU keeps at most (pins of running transactions come on top).
pub const MAX_CACHED_MODEL_BYTES: usize = 256 << 20;

/// Epoch numbers are node-local and never 0 (0 is "no epoch yet" in transient storage).
static NEXT_EPOCH: AtomicU64 = AtomicU64::new(1);

/// A fresh epoch for a transaction that has none yet.
pub fn new_epoch() -> u64 {
    NEXT_EPOCH.fetch_add(1, Ordering::Relaxed)
}

#[derive(Default)]
struct Pins {
    epoch: u64,
    engines: HashMap<B256, Arc<Engine>>,
}

thread_local! {
    static PINS: RefCell<Pins> = RefCell::new(Pins::default());
}

struct Lru {
    entries: LruCache<B256, (Arc<Engine>, usize)>,
    bytes: usize,
}

/// Prepared models by id: the pins of the transaction running on this thread, then an LRU
/// shared by every thread of the node (cloning shares it).
#[derive(Clone)]
pub struct ModelCache {
    lru: Arc<Mutex<Lru>>,
}

impl ModelCache {
    /// A cache of at most `models` prepared models (at least one).
    pub fn new(models: usize) -> Self {
        let cap = NonZeroUsize::new(models.max(1)).unwrap_or(NonZeroUsize::MIN);
        ModelCache {
            lru: Arc::new(Mutex::new(Lru {
                entries: LruCache::new(cap),
                bytes: 0,
            })),
        }
    }

    /// The prepared model `id` for the transaction of `epoch`, if this node has it.
    pub fn get(&self, epoch: u64, id: &B256) -> Option<Arc<Engine>> {
        let pinned = PINS.with(|p| {
            let mut p = p.borrow_mut();
            if p.epoch != epoch {
                p.epoch = epoch;
                p.engines.clear();
            }
            p.engines.get(id).cloned()
        });
        pinned.or_else(|| {
            let engine = self.lru.lock().ok()?.entries.get(id).map(|e| e.0.clone())?;
            pin(epoch, *id, engine.clone());
            Some(engine)
        })
    }

    /// Keeps `engine` (a model of `size` bytes) pinned for the transaction of `epoch` and in
    /// the LRU, evicting the least recently used entries over the count or byte budget.
    pub fn insert(&self, epoch: u64, id: B256, engine: Arc<Engine>, size: usize) {
        pin(epoch, id, engine.clone());
        let Ok(mut l) = self.lru.lock() else { return };
        if let Some((_, (_, old))) = l.entries.push(id, (engine, size)) {
            l.bytes -= old; // the evicted entry, or the replaced one under the same id
        }
        l.bytes += size;
        while l.bytes > MAX_CACHED_MODEL_BYTES && l.entries.len() > 1 {
            match l.entries.pop_lru() {
                Some((_, (_, evicted))) => l.bytes -= evicted,
                None => break,
            }
        }
    }
}

fn pin(epoch: u64, id: B256, engine: Arc<Engine>) {
    PINS.with(|p| {
        let mut p = p.borrow_mut();
        if p.epoch != epoch {
            p.epoch = epoch;
            p.engines.clear();
        }
        p.engines.insert(id, engine);
    });
}
