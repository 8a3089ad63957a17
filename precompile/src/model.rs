//! The in-memory form of a Myelin model (format v1).
//!
//! A model is a list of nodes over numbered int8 tensors: tensor 0 is the input and node `i`
//! produces tensor `i + 1`; the last node's tensor is the output. Every node reads only
//! tensors produced before it, so the list is already in execution order and residual blocks
//! (a tensor read by two nodes) need no extra machinery. `docs/SPEC.md` is the normative
//! description; this module mirrors it field for field.

/// A positive real number `mult · 2^(shift − 31)`, with `mult` normalised to `[2^30, 2^31)`.
///
/// Used both for the scales of the model's input/output (`real = (q − zero_point) · scale`)
/// and, as [`Requant`], for the fixed-point multipliers that rescale accumulators. Normalising
/// `mult` makes the encoding canonical: each value has exactly one representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scale {
    pub mult: i32,
    pub shift: i8,
}

/// A fixed-point requantization multiplier: `y = x · mult · 2^(shift − 31)`, computed with
/// gemmlowp's SaturatingRoundingDoublingHighMul followed by RoundingDivideByPOT.
pub type Requant = Scale;

/// Smallest normalised multiplier (`2^30`).
pub const MULT_MIN: i32 = 1 << 30;

/// Quantization of one tensor: `real = (q − zero_point) · scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quant {
    pub scale: Scale,
    pub zero_point: i8,
}

/// Index of a tensor: 0 is the (int8) model input, `i + 1` the output of node `i`.
pub type TensorId = u16;

pub use crate::ops::add::{Add, Sub};
pub use crate::ops::clamp::Clamp;
pub use crate::ops::concat::Concat;
pub use crate::ops::conv::Conv;
pub use crate::ops::dense::Dense;
pub use crate::ops::gather::Gather;
pub use crate::ops::layer::Output;
pub use crate::ops::layernorm::LayerNorm;
pub use crate::ops::lut::Lut;
pub use crate::ops::matmul::MatMul;
pub use crate::ops::mul::Mul;
pub use crate::ops::pad::Pad;
pub use crate::ops::pool::{AvgPool, MaxPool};
pub use crate::ops::reduce::{ReduceMax, ReduceSum};
pub use crate::ops::reshape::Reshape;
pub use crate::ops::resize::Resize;
pub use crate::ops::slice::{Range as SliceRange, Slice};
pub use crate::ops::softmax::Softmax;
pub use crate::ops::transpose::Transpose;
pub use crate::ops::tree::{Tree, TreeEnsemble, TreeNode, ALL_OUTPUTS};
pub use crate::ops::window::Window;
pub use crate::ops::Node;

/// A parsed model. Construct it with [`crate::codec::decode`] (which validates) or build one
/// and check it with [`crate::validate::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    pub input_shape: Vec<u32>,
    /// Quantization of the input: one entry for the whole tensor, or one per feature (the
    /// last axis; format v3/v4, SPEC §2), so raw features of very different ranges each get
    /// their own scale and zero point. With per-feature quantization the graph sees tensor 0
    /// as plain int8 values (zero point 0, no fixed scale): the quantization only says what
    /// they mean, and `inferFixed` quantizes each feature with its own (SPEC §6).
    pub input_quant: Vec<Quant>,
    /// Scale of the output tensor (its zero point is the last node's).
    pub output_scale: Scale,
    /// Integer id inputs (format v2; empty in v1): read only by [`Gather`], never tensors.
    pub index_inputs: Vec<IndexInput>,
    pub nodes: Vec<Node>,
}

/// An input of integer ids (categorical features, tokens), carried after the int8 input as
/// big-endian uint16s (SPEC §6). It is not a tensor: tensor ids keep their v1 meaning, and
/// only [`Gather`] reads ids, by index input and position.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexInput {
    /// One bound per id: id `j` of a call must be `< limits[j]` (checked before anything
    /// runs), so a Gather whose table has at least that many rows can never read past it.
    pub limits: Vec<u16>,
}

/// The quantization of a whole input tensor, if `input_quant` is one (not per feature).
pub fn tensor_quant(input_quant: &[Quant]) -> Option<Quant> {
    match input_quant {
        [q] => Some(*q),
        _ => None,
    }
}

impl Model {
    /// The quantization of the whole input tensor, if it has one (not per feature).
    pub fn tensor_quant(&self) -> Option<Quant> {
        tensor_quant(&self.input_quant)
    }

    /// Quantization of element `i` of the (row-major) input.
    pub fn element_quant(&self, i: usize) -> Quant {
        let q = &self.input_quant;
        q[i % q.len()]
    }

    /// Zero point of tensor 0 as the graph's nodes see it: 0 with per-feature quantization.
    pub fn input_zero_point(&self) -> i8 {
        self.tensor_quant().map_or(0, |q| q.zero_point)
    }
}

impl Scale {
    /// The scale as an `f64`, for tooling and display only: never used by consensus code.
    pub fn to_f64(self) -> f64 {
        self.mult as f64 * (self.shift as f64 - 31.0).exp2()
    }

    /// The nearest normalised scale to a positive finite `x` (tooling only).
    pub fn from_f64(x: f64) -> Option<Scale> {
        if !(x.is_finite() && x > 0.0) {
            return None;
        }
        let mut shift = x.log2().floor() as i32 + 1; // x / 2^shift in [0.5, 1)
        let mut mult = (x / (shift as f64).exp2() * 2f64.powi(31)).round() as i64;
        if mult == 1 << 31 {
            mult /= 2;
            shift += 1;
        }
        while mult < 1 << 30 {
            mult *= 2;
            shift -= 1;
        }
        Some(Scale {
            mult: i32::try_from(mult).ok()?,
            shift: i8::try_from(shift).ok()?,
        })
    }
}
