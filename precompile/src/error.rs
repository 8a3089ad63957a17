//! Why a model is rejected.
//!
//! On chain a rejection is exactly two numbers, `InvalidModel(code, node)` (`docs/SPEC.md`
//! §8): the [`Code`] of the first failing check in the order SPEC §4 fixes, and the index of
//! the node being read or checked ([`HEADER`] for the header and whole-model checks). Codes are
//! explicit constants, never derived from Rust's Debug/Display output, so every client returns
//! the same revert bytes. The `detail` text is for people only (CLI, `myelin inspect`): it is
//! never returned by the precompile.

use std::fmt;

/// `node` of an error in the header (magic, version, input, scales, node count) or in a
/// whole-model check (trailing bytes, output scale, total limits).
pub const HEADER: u16 = 0xFFFF;

/// Every reason a model can be rejected, with its consensus number (SPEC §8). Adding a code
/// is a hard fork; renumbering one is forbidden.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Code {
    /// The model is larger than `MAX_MODEL_BYTES`.
    TooLarge = 1,
    /// The bytes end inside a field.
    Truncated = 2,
    /// The first four bytes are not `MYLN`.
    BadMagic = 3,
    /// The version byte is not 1 or 2.
    BadVersion = 4,
    /// `n_nodes` is outside `1..=MAX_NODES`.
    NodeCount = 5,
    /// Bytes remain after the last node.
    TrailingBytes = 6,
    /// A node's tag is not a known op.
    UnknownOp = 7,
    /// A 0/1 flag byte holds another value.
    BadFlag = 8,
    /// A scale's or multiplier's `mult` is below `2^30` (not normalised).
    MultNotNormalized = 10,
    /// A scale's shift is outside −64..=63, or a multiplier's outside −31..=30.
    ShiftOutOfRange = 11,
    /// The declared output scale differs from the one the graph fixes.
    OutputScaleMismatch = 12,
    /// `per_channel = 1` with fewer than two channels or with all multipliers equal.
    PerChannelNotCanonical = 13,
    /// `count_include_pad = 1` with every pad zero.
    PadFlagNotCanonical = 14,
    /// A node that computes its input unchanged (Transpose by the identity, Slice of
    /// everything, Pad by nothing, Resize by 1×1, ReduceMax over an axis of size 1): no node
    /// is the one encoding of that function.
    IdentityNotCanonical = 15,
    /// A per-feature input quantization (format v3/v4) of fewer than two features, or whose
    /// entries are all equal (v1/v2's single quantization is canonical).
    FeatureQuantNotCanonical = 16,
    /// A declared shape's rank is outside `1..=MAX_RANK`.
    BadRank = 20,
    /// A tensor would have a zero dimension (a declared dimension, or zero output channels).
    ZeroDim = 21,
    /// A tensor would have more than `MAX_TENSOR_ELEMS` elements.
    TensorTooLarge = 22,
    /// A node reads a tensor that is not produced before it.
    BadTensorRef = 23,
    /// An op's input has the wrong rank.
    InputRank = 24,
    /// Conv `groups` is 0 or does not divide the input and output channels.
    BadGroups = 25,
    /// A window's kernel or stride is 0.
    ZeroKernelOrStride = 26,
    /// A pad is not smaller than the kernel on its axis.
    PadTooLarge = 27,
    /// A kernel is larger than the padded input.
    KernelTooLarge = 28,
    /// Add's operands have different shapes.
    AddShapeMismatch = 29,
    /// Reshape changes the number of elements.
    ReshapeMismatch = 30,
    /// An in-memory model the encoding cannot express (array lengths that do not match the
    /// shapes, Add with several multipliers, a Conv1d window on the first axis). Never the
    /// result of decoding bytes.
    NotEncodable = 31,
    /// Transpose's `perm` is not a permutation of the input's axes.
    BadPermutation = 32,
    /// A Slice range has `step = 0`, `start ≥ end`, `end` past the axis, or an `end` that is
    /// not one past the last element taken.
    BadSlice = 33,
    /// Concat has fewer than 2 inputs, or inputs whose ranks or other axes differ.
    ConcatShapeMismatch = 34,
    /// An axis (Concat, ReduceSum, ReduceMax) is not below the input's rank.
    BadAxis = 35,
    /// Mul's `b` does not broadcast to `a`'s shape.
    BroadcastMismatch = 36,
    /// MatMul's operands are not `[..., M, K]` and `[..., K, N]` with equal leading axes.
    MatMulShapeMismatch = 37,
    /// A TreeEnsemble with no tree or more than `MAX_TREES`, or a tree whose target is
    /// neither an output nor "all outputs" (`0xFFFF`, which needs at least two outputs).
    BadTree = 38,
    /// A tree's split reads a feature beyond the input's last axis.
    BadFeature = 39,
    /// `act_min > act_max`, or Clamp's `min > max`.
    EmptyClamp = 40,
    /// Softmax's `exp_table[0]` is 0.
    ExpTableZero = 41,
    /// An accumulator, a shifted accumulator or a requantized value could leave int32.
    AccumulatorOverflow = 42,
    /// LayerNorm's `epsilon` is 0 (a constant row would divide by zero).
    ZeroEpsilon = 43,
    /// A version-2 header lists no index inputs or more than `MAX_INDEX_INPUTS`, an index
    /// input with no ids or more than `MAX_IDS`, or an id limit of 0.
    BadIndexInputs = 44,
    /// A Gather reads an index input the model does not have, no ids, or ids past its end.
    BadIndexRead = 45,
    /// A Gather's table has fewer rows than an id it reads may select (its limit).
    TableTooSmall = 46,
    /// A tree is deeper than `MAX_TREE_DEPTH`.
    TreeTooDeep = 47,
    /// One convolution's im2col exceeds `MAX_IM2COL_ELEMS`.
    Im2colTooLarge = 50,
    /// Total MACs exceed `MAX_TOTAL_MACS`.
    TooManyMacs = 51,
    /// Total elementwise steps exceed `MAX_TOTAL_ELEMS`.
    TooManyElems = 52,
    /// Summed activation elements exceed `MAX_ACTIVATION_ELEMS`.
    TooManyActivations = 53,
}

impl Code {
    /// Every code, in numeric order.
    pub const ALL: [Code; 47] = [
        Code::TooLarge,
        Code::Truncated,
        Code::BadMagic,
        Code::BadVersion,
        Code::NodeCount,
        Code::TrailingBytes,
        Code::UnknownOp,
        Code::BadFlag,
        Code::MultNotNormalized,
        Code::ShiftOutOfRange,
        Code::OutputScaleMismatch,
        Code::PerChannelNotCanonical,
        Code::PadFlagNotCanonical,
        Code::IdentityNotCanonical,
        Code::FeatureQuantNotCanonical,
        Code::BadRank,
        Code::ZeroDim,
        Code::TensorTooLarge,
        Code::BadTensorRef,
        Code::InputRank,
        Code::BadGroups,
        Code::ZeroKernelOrStride,
        Code::PadTooLarge,
        Code::KernelTooLarge,
        Code::AddShapeMismatch,
        Code::ReshapeMismatch,
        Code::NotEncodable,
        Code::BadPermutation,
        Code::BadSlice,
        Code::ConcatShapeMismatch,
        Code::BadAxis,
        Code::BroadcastMismatch,
        Code::MatMulShapeMismatch,
        Code::BadTree,
        Code::BadFeature,
        Code::EmptyClamp,
        Code::ExpTableZero,
        Code::AccumulatorOverflow,
        Code::ZeroEpsilon,
        Code::BadIndexInputs,
        Code::BadIndexRead,
        Code::TableTooSmall,
        Code::TreeTooDeep,
        Code::Im2colTooLarge,
        Code::TooManyMacs,
        Code::TooManyElems,
        Code::TooManyActivations,
    ];

    /// The consensus number returned in `InvalidModel(code, node)`.
    pub fn number(self) -> u16 {
        self as u16
    }

    /// The short name `Myelin.invalidModelReason` returns for this code (the same strings).
    pub fn name(self) -> &'static str {
        match self {
            Code::TooLarge => "model too large",
            Code::Truncated => "truncated",
            Code::BadMagic => "bad magic",
            Code::BadVersion => "unsupported version",
            Code::NodeCount => "bad node count",
            Code::TrailingBytes => "trailing bytes",
            Code::UnknownOp => "unknown op",
            Code::BadFlag => "flag not 0 or 1",
            Code::MultNotNormalized => "multiplier not normalised",
            Code::ShiftOutOfRange => "shift out of range",
            Code::OutputScaleMismatch => "output scale mismatch",
            Code::PerChannelNotCanonical => "per_channel not canonical",
            Code::PadFlagNotCanonical => "count_include_pad not canonical",
            Code::IdentityNotCanonical => "identity node not canonical",
            Code::FeatureQuantNotCanonical => "per-feature quantization not canonical",
            Code::BadRank => "bad rank",
            Code::ZeroDim => "zero dimension",
            Code::TensorTooLarge => "tensor too large",
            Code::BadTensorRef => "bad tensor reference",
            Code::InputRank => "wrong input rank",
            Code::BadGroups => "bad groups",
            Code::ZeroKernelOrStride => "zero kernel or stride",
            Code::PadTooLarge => "pad not below kernel",
            Code::KernelTooLarge => "kernel larger than input",
            Code::AddShapeMismatch => "Add shapes differ",
            Code::ReshapeMismatch => "Reshape changes size",
            Code::NotEncodable => "not encodable",
            Code::BadPermutation => "bad permutation",
            Code::BadSlice => "bad slice",
            Code::ConcatShapeMismatch => "Concat shapes differ",
            Code::BadAxis => "bad axis",
            Code::BroadcastMismatch => "shapes do not broadcast",
            Code::MatMulShapeMismatch => "MatMul shapes differ",
            Code::BadTree => "bad tree",
            Code::BadFeature => "tree feature out of range",
            Code::EmptyClamp => "empty clamp range",
            Code::ExpTableZero => "exp_table[0] is zero",
            Code::AccumulatorOverflow => "int32 overflow possible",
            Code::ZeroEpsilon => "LayerNorm epsilon is zero",
            Code::BadIndexInputs => "bad index inputs",
            Code::BadIndexRead => "bad index read",
            Code::TableTooSmall => "Gather table too small",
            Code::TreeTooDeep => "tree too deep",
            Code::Im2colTooLarge => "im2col too large",
            Code::TooManyMacs => "too many MACs",
            Code::TooManyElems => "too many elementwise steps",
            Code::TooManyActivations => "too many activations",
        }
    }
}

/// A rejected model: the consensus pair (`code`, `node`) and a human explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelError {
    pub code: Code,
    /// Index of the offending node, or [`HEADER`].
    pub node: u16,
    /// Off-chain explanation (values, shapes); never part of consensus output.
    pub detail: String,
}

impl ModelError {
    /// An error at node `node` (a node index; always below `MAX_NODES`).
    pub fn at(code: Code, node: usize, detail: impl Into<String>) -> Self {
        ModelError {
            code,
            node: u16::try_from(node).unwrap_or(HEADER),
            detail: detail.into(),
        }
    }

    /// An error in the header or a whole-model check.
    pub fn header(code: Code, detail: impl Into<String>) -> Self {
        ModelError {
            code,
            node: HEADER,
            detail: detail.into(),
        }
    }

    /// The consensus number of the error (SPEC §8).
    pub fn code(&self) -> u16 {
        self.code.number()
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.node == HEADER {
            write!(f, "{} (code {})", self.code.name(), self.code.number())?;
        } else {
            write!(
                f,
                "node {}: {} (code {})",
                self.node,
                self.code.name(),
                self.code.number()
            )?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for ModelError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_listed_in_order() {
        let numbers: Vec<u16> = Code::ALL.iter().map(|c| c.number()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
        let mut names: Vec<&str> = Code::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Code::ALL.len());
    }

    /// SPEC §8's table and `Myelin.invalidModelReason` list exactly these codes and names.
    #[test]
    fn spec_and_solidity_list_every_code() {
        let spec = include_str!("../../docs/SPEC.md");
        let sol = include_str!("../../contracts/src/Myelin.sol");
        for c in Code::ALL {
            let (n, name) = (c.number(), c.name());
            let row = format!("| {n} | `{c:?}` | {name} |");
            assert!(spec.contains(&row), "SPEC §8 lacks the row {row}");
            let line = format!("if (code == {n}) return \"{name}\";");
            assert!(sol.contains(&line), "Myelin.sol lacks {line}");
        }
        assert_eq!(sol.matches("if (code == ").count(), Code::ALL.len());
    }
}
