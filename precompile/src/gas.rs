//! The gas schedule: a published function of the model's static analysis and the call's
//! byte lengths (never of node-local state such as the parsed-model cache). Every charge is
//! known before the work it pays for starts. The inference and load constants are set so
//! that no valid model costs more than ~20 ns of CPU per gas on the reference machine:
//! `benches/benches/gas.rs` measures one shape per cost term, `benches/benches/search.rs`
//! hunts for the worst (README, "Gas"). `cost.rs` counts every element the engine writes, so
//! `ELEM_MILLI` also bounds memory: at most `8000 / ELEM_MILLI` bytes per gas (SPEC §5).

use crate::validate::{Analysis, ValidModel};

/// Flat part of every call (ABI decoding, dispatch).
pub const CALL_BASE: u64 = 400;
/// Per byte of calldata and of returndata handled by the precompile. Canonical decoding
/// (`abi::decode_call`) keeps decoded arguments within the calldata, so this also pays for
/// them; returndata is charged before the inference that produces it.
pub const IO_BYTE: u64 = 3;
/// Most inputs in one `inferBatch`.
pub const MAX_BATCH: usize = 256;

/// The precompile account's storage slots at EVM prices: EIP-2929 cold and warm reads (warmth
/// per transaction in transient storage) and EIP-2200 setting a zero slot.
pub const SLOAD_COLD: u64 = 2_100;
pub const SLOAD_WARM: u64 = 100;
pub const SSTORE_SET: u64 = 20_000;

/// State kept as account code (models and upload chunks), priced like CREATE: a new account
/// (32,000) plus the code deposit per byte (200, as EIP-170 contracts pay).
pub const CREATE_BASE: u64 = 32_000;
pub const STORE_BYTE: u64 = 200;
/// Reading a code account, like EXTCODECOPY: cold account access plus 3 per 32-byte word.
pub const ACCOUNT_COLD: u64 = 2_600;
pub const COPY_WORD: u64 = 3;
/// Hashing an upload's concatenated chunks, like KECCAK256: per 32-byte word.
pub const HASH_WORD: u64 = 6;
/// Largest upload chunk: the EIP-170 code size limit, so one chunk is what one CREATE may
/// deposit and fits one transaction.
pub const MAX_CHUNK_BYTES: usize = 24_576;

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
/// Per element of a prepared kernel operand, in milligas: Dense weights packed into 16-column
/// int8 panels (a layer of one output is padded 16-fold), convolution weights as int16 rows,
/// 64 per tree node of a TreeEnsemble (its decoding and node tables).
/// Packing writes each element once (~1–2 ns), and this also bounds the prepared model's
/// memory: at most 2 bytes per element, 20 bytes per gas.
pub const PREPARE_ELEM_MILLI: u64 = 100;
/// Later uses of the same model in the same transaction (tracked in transient storage).
pub const LOAD_WARM: u64 = 100;

/// Per inference: fixed cost, plus per node (`KERNEL_NODE`), per MAC, per streamed weight
/// and per element the engine writes (`cost.rs`; the last three in milligas).
///
/// `MAC_MILLI` = 2 (500 MACs per gas) is what the int8 kernel's products cost where their
/// operands come from cache: 30–80 GMAC/s measured (12–33 ps per MAC, 6–17 ns per gas).
/// A Dense layer too large for the caches is bound by memory instead: one row through ~16 MB
/// of weights streams every weight once per inference, measured at 27 ns per gas when its
/// MACs alone paid 2 milligas. `STREAM_MILLI` = 1 per packed weight (`Op::streamed_elems`)
/// pays that stream, so a one-row layer pays 3 milligas per weight (~18 ns per gas there) and
/// a layer of `M` rows `2 + 1/M` per MAC. The two are summed before rounding up, so a model
/// of one-row Dense layers costs exactly what it did at 3 milligas per MAC.
pub const INFER_BASE: u64 = 1_000;
/// Fixed gas of a node: every operator runs as one kernel of its own through the backend
/// extension (Dense, Conv, MatMul on the int8 matrix kernel; the pools; the elementwise,
/// reduction, normalization, lookup, layout and tree kernels; Concat's further calls, one per
/// input, are charged as its elements): one call, its operand and output allocations;
/// measured on 256 chained one-element nodes of each kind (`benches/benches/gas.rs`,
/// `256_tiny_*`, and the search's chains: 3–8 ns per gas).
pub const KERNEL_NODE: u64 = 100;
pub const MAC_MILLI: u64 = 2;
pub const STREAM_MILLI: u64 = 1;
pub const ELEM_MILLI: u64 = 200;

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

/// Gas of preparing the nodes of a model loaded cold (after `load`): per node, and per
/// element of the operands the matrix kernel packs once (`Analysis::prepared`).
pub fn prepare(a: &Analysis) -> u64 {
    LOAD_NODE * a.costs.len() as u64 + milli(a.prepared, PREPARE_ELEM_MILLI)
}

/// Gas of one inference (without the model load and the call's own I/O).
pub fn inference(m: &ValidModel) -> u64 {
    let a = m.analysis();
    // MACs and streamed weights share one rounding (SPEC §7).
    let products = (a.total.macs.saturating_mul(MAC_MILLI))
        .saturating_add(a.streamed.saturating_mul(STREAM_MILLI));
    INFER_BASE
        + KERNEL_NODE * a.costs.len() as u64
        + products.div_ceil(1000)
        + milli(a.total.elems, ELEM_MILLI)
}

/// Gas of one `infer` call with a cold model, as `modelInfo` reports it: what a caller
/// should budget. `calldata` = 4 + 32·3 + padded input (the ABI encoding of `infer`: selector,
/// id, offset, length, data); the model's length slot is read cold, then its bytes are loaded
/// cold.
pub fn infer_call(m: &ValidModel, size: usize) -> u64 {
    let a = m.analysis();
    let calldata = 4 + 32 * 3 + words(crate::input::byte_len(m)) * 32;
    let returndata = 64 + words(a.output_len()) * 32;
    CALL_BASE
        + IO_BYTE * (calldata + returndata) as u64
        + SLOAD_COLD
        + load(size, false)
        + prepare(a)
        + inference(m)
}

/// 32-byte words covering `bytes` bytes.
pub fn words(bytes: usize) -> usize {
    bytes.div_ceil(32)
}

/// Gas of publishing a new model of `size` bytes, after its length slot was read: the code
/// account, the length slot set from zero, and validation (a cold load of the bytes).
pub fn publish(size: usize) -> u64 {
    CREATE_BASE + STORE_BYTE * size as u64 + SSTORE_SET + load(size, false)
}
