//! Why a model is rejected. Every rejection names what is wrong and where, so a model author
//! can fix the converter or the model rather than guess.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelError {
    #[error("not a Myelin model: bad magic (expected \"MYLN\")")]
    BadMagic,
    #[error("unsupported format version {0} (this node reads version 1)")]
    UnsupportedVersion(u8),
    #[error("model is truncated: needed {needed} more bytes at offset {offset}")]
    Truncated { offset: usize, needed: usize },
    #[error("{0} trailing bytes after the last node (the encoding is canonical)")]
    TrailingBytes(usize),
    #[error("model is {0} bytes; the limit is {max}", max = crate::limits::MAX_MODEL_BYTES)]
    TooLarge(usize),
    #[error("unknown op tag 0x{tag:02x} at node {node}")]
    UnknownOp { node: usize, tag: u8 },
    #[error("node {node}: field `{field}` has non-canonical value {value}")]
    NonCanonical {
        node: usize,
        field: &'static str,
        value: i64,
    },
    #[error("node {node} ({op}): {reason}")]
    Invalid {
        node: usize,
        op: &'static str,
        reason: String,
    },
    #[error("input: {0}")]
    InvalidInput(String),
    #[error("model has {0} nodes; it needs 1 to {max}", max = crate::limits::MAX_NODES)]
    NodeCount(usize),
    #[error("node {node} ({op}): accumulator bound {bound} does not fit in int32; scale down the weights or bias")]
    AccumulatorOverflow {
        node: usize,
        op: &'static str,
        bound: u128,
    },
    #[error("model exceeds limit on {what}: {value} > {max}")]
    LimitExceeded {
        what: &'static str,
        value: u64,
        max: u64,
    },
}
