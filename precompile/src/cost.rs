//! Static cost of one node (`docs/SPEC.md` §5): the work the engine does on it, counted from
//! the node and the tensor shapes alone, so gas is known before anything runs. Each
//! operator counts its own (`Op::cost` in `ops/`); the passes shared by several live here.
//!
//! `elems` counts every element the engine writes (each at most 8 bytes): copies and casts of
//! the input, im2col panels, every whole-tensor pass of requantization, the output. That is
//! what makes gas bound both time and peak memory; an operator that reads or writes something
//! not counted here is a denial-of-service bug. The pass counts below are those of
//! its engine kernel, and change with it.

/// Work of one node. `macs` are int8×int8 multiply-accumulates; `elems` are the elements
/// materialised (written) by the engine's passes over the node's tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub macs: u64,
    pub elems: u64,
}

/// Elements charged per output an operator's own kernel requantizes (Mul, ReduceSum,
/// LayerNorm, TreeEnsemble; Add's two rescalings count twice more):
/// `MultiplyByQuantizedMultiplier` in int64 (`engine::mbq_wide`), the zero point, the clamp
/// and the store — one scalar pass of ~40 instructions, measured 5–13 ns per output on the
/// reference machine, so 4 (0.8 gas).
pub const REQUANT_PASSES: u64 = 4;
/// Elements charged per output lane of the int8 matrix kernel (`gemm/`; Dense, the
/// convolutions, MatMul), counted over whole 16-lane panels: its fused epilogue (bias,
/// `MultiplyByQuantizedMultiplier`, zero point and clamp in int64 lanes) and the store.
pub const GEMM_OUT_PASSES: u64 = 3;
/// Elements charged per element of a right operand packed at run time (the im2col matrix,
/// MatMul's second operand): zeroing the panels, writing a row, scattering it into them.
pub const PACK_PASSES: u64 = 3;
pub use crate::ops::add::ADD_PASSES;
pub use crate::ops::conv::GROUP_ELEMS;
pub use crate::ops::softmax::{SOFTMAX_PASSES, SOFTMAX_ROW_ELEMS};
