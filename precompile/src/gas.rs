//! The gas schedule: a published function of the model's static analysis and the call's
//! byte lengths (never of node-local state such as the parsed-model cache). Every charge is
//! known before the work it pays for starts. The inference and load constants are set so
//! that no valid model costs more than ~20 ns of CPU per gas on the reference machine:
//! `benches/benches/gas.rs` measures one shape per cost term, `benches/benches/search.rs`
//! hunts for the worst (README, "Gas"). `cost.rs` counts every element the engine writes, so
//! `ELEM_MILLI` also bounds memory: at most `8000 / ELEM_MILLI` bytes per gas (SPEC §5).

use crate::validate::Analysis;

/// Flat part of every call (ABI decoding, dispatch).
pub const CALL_BASE: u64 = 400;
/// Per byte of calldata and of returndata handled by the precompile.
pub const IO_BYTE: u64 = 3;

/// First use of a model in a transaction: read its bytes from state (EXTCODECOPY prices a
/// code read at 3 gas per 32-byte word, ~94 milligas per byte), parse and validate them (~2
/// ns per byte measured on a 1 MiB model, ~100 milligas at 20 ns/gas), or hit the node-local
/// cache, which gas may not assume.
pub const LOAD_COLD_BASE: u64 = 2_600;
/// Per byte of model loaded cold, in milligas: the state read plus parse and validation.
pub const LOAD_COLD_BYTE_MILLI: u64 = 250;
/// Per node of a model loaded cold, charged once the model is parsed: preparing a node
/// builds up to a dozen small burn tensors (weights, bias, multipliers), a fixed cost that
/// a per-byte price would miss for models of many tiny nodes.
pub const LOAD_NODE: u64 = 1_000;
/// Later uses of the same model in the same transaction (tracked in transient storage).
pub const LOAD_WARM: u64 = 100;

/// Per inference: fixed cost, plus per node (tensor allocation and dispatch, priced on the
/// slowest node kind: Add, ~50 whole-tensor operations), per MAC and per element the
/// engine writes (`cost.rs`; the last two in milligas).
pub const INFER_BASE: u64 = 1_000;
pub const NODE: u64 = 2_500;
pub const MAC_MILLI: u64 = 60;
pub const ELEM_MILLI: u64 = 200;

/// Publishing: flat cost plus a code-deposit-like charge per stored byte (EIP-170's 200),
/// plus the cold load's validation charge.
pub const PUBLISH_BASE: u64 = 32_000;
pub const STORE_BYTE: u64 = 200;
/// Chunked upload: per call, and per 32-byte word staged in storage.
pub const CHUNK_BASE: u64 = 5_000;
pub const CHUNK_WORD: u64 = 5_000;
/// Most inputs in one `inferBatch`.
pub const MAX_BATCH: usize = 256;

fn milli(units: u64, milligas: u64) -> u64 {
    (units.saturating_mul(milligas)).div_ceil(1000)
}

/// Gas of loading a model of `size` bytes.
pub fn load(size: usize, warm: bool) -> u64 {
    if warm {
        LOAD_WARM
    } else {
        LOAD_COLD_BASE + milli(size as u64, LOAD_COLD_BYTE_MILLI)
    }
}

/// Gas of preparing the `nodes` nodes of a model loaded cold (after `load`).
pub fn prepare(nodes: usize) -> u64 {
    LOAD_NODE * nodes as u64
}

/// Gas of one inference (without the model load and the call's own I/O).
pub fn inference(a: &Analysis) -> u64 {
    INFER_BASE
        + NODE * a.costs.len() as u64
        + milli(a.total.macs, MAC_MILLI)
        + milli(a.total.elems, ELEM_MILLI)
}

/// Gas of one `infer` call with a cold model, as `modelInfo` reports it: what a caller
/// should budget. `calldata` = 4 + 32·4 + padded input (the ABI encoding of `infer`).
pub fn infer_call(a: &Analysis, size: usize) -> u64 {
    let padded = |n: usize| n.div_ceil(32) * 32;
    let calldata = 4 + 32 * 3 + padded(a.input_len());
    let returndata = 64 + padded(a.output_len());
    CALL_BASE
        + IO_BYTE * (calldata + returndata) as u64
        + load(size, false)
        + prepare(a.costs.len())
        + inference(a)
}

/// Gas of publishing `size` bytes (validation included).
pub fn publish(size: usize) -> u64 {
    PUBLISH_BASE + STORE_BYTE * size as u64 + load(size, false)
}
