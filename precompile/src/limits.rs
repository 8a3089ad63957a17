//! Hard limits every valid model respects. They bound the memory and time one inference can
//! take regardless of gas (gas bounds it further), and keep every size computation far from
//! integer overflow. Changing a limit changes which models are valid: it is a hard fork.

/// Largest encoded model (16 MiB): larger models cannot be published.
pub const MAX_MODEL_BYTES: usize = 1 << 24;
/// Most nodes in one graph.
pub const MAX_NODES: usize = 256;
/// Most axes of a tensor.
pub const MAX_RANK: usize = 4;
/// Most elements of any one tensor (1 Mi int8 values).
pub const MAX_TENSOR_ELEMS: u64 = 1 << 20;
/// Most elements of one convolution's im2col matrix (the largest scratch buffer).
pub const MAX_IM2COL_ELEMS: u64 = 1 << 22;
/// Most multiply-accumulates in one inference.
pub const MAX_TOTAL_MACS: u64 = 1 << 30;
/// Most elementwise operations in one inference.
pub const MAX_TOTAL_ELEMS: u64 = 1 << 26;
/// Most int8 activation values alive over a whole inference (sum over all tensors).
pub const MAX_ACTIVATION_ELEMS: u64 = 1 << 24;
/// Most index inputs of a model (format v2).
pub const MAX_INDEX_INPUTS: usize = 8;
/// Most ids in one index input.
pub const MAX_IDS: usize = 1 << 10;
/// Most trees in one TreeEnsemble.
pub const MAX_TREES: usize = 4096;
/// Deepest tree of a TreeEnsemble (splits on one path): every walk takes the ensemble's
/// greatest depth in steps, so this bounds the levels a node runs.
pub const MAX_TREE_DEPTH: u32 = 32;
