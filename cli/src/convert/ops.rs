//! The ONNX op types the converter supports: one row per op type, naming its float
//! evaluation ([`float`]) and its lowering to Myelin nodes ([`lower`]).
//!
//! Both passes dispatch through this one table, so an op cannot be evaluated but not lowered
//! (or the reverse), and the "supported" list of the unsupported-op error is built from it.
//! Adding an op is one row here plus its two functions. Op types that share code (the pools;
//! Relu and Clip; the elementwise unary ops; the reductions; Resize and Upsample; Squeeze
//! and Unsqueeze) still get a row each, pointing at the same function.
//!
//! The elementwise unary ops (Sigmoid … Abs: [`float::unary_fn`] gives each one's function)
//! and Add/Sub/Mul/Div/Pow by a scalar constant are *chain* steps when lowered: any chain
//! `f(x)` of them whose only activation input is one tensor `x` — including Add/Sub/Mul/Div
//! of two chains of the same `x`, as in SiLU `x · Sigmoid(x)` or the decomposed GELU that
//! `torch.onnx.export` writes — becomes ONE Lut of `f` (see `lower::Chain`). A per-channel
//! (or scalar) constant Add/Sub/Mul/Div right after a MatMul/Gemm/Conv read only there folds
//! into its weights and bias instead. LayerNormalization over the last axis is one Myelin
//! LayerNorm, and so is the ReduceMean … Div (· γ + β) chain PyTorch writes for it before
//! opset 17, matched from its first ReduceMean (see `Lowerer::decomposed_layer_norm`).
//! Dropout (inference) and Cast to float are the identity; `Constant` nodes are read into
//! the graph's constants when it is loaded (no row). QuantizeLinear / DequantizeLinear of an
//! activation (QDQ models) round to their grid in float and lower to nothing: their scale
//! and zero point become the tensor's quantization (see [`qdq`]). Shape, ConstantOfShape,
//! Expand, LSTM, GRU and Gather of constants or by constant positions of an activation have
//! no row: the load-time pass ([`shape_fold`], [`recurrent`]) folds them into constants or
//! rewrites them into ops of this table, so that the float interpreter and the lowering see
//! the same computation. The Gathers left are those of integer ids (an embedding lookup, a
//! selection of id columns: see `lower::lower_gather`).
//!
//! ONNX-ML ([`ml`]): TreeEnsembleClassifier, LinearClassifier and LinearRegressor have no row
//! either: the load-time pass rewrites each into the op computing its raw scores (a
//! TreeEnsembleRegressor, a Gemm) and its post-transform (Sigmoid, Softmax), so that the raw
//! scores have a calibrated range of their own. TreeEnsembleRegressor is one Myelin
//! TreeEnsemble (`lower::lower_tree_ensemble`); Scaler is a per-feature affine map that folds
//! into the Dense after it; ZipMap is the identity on its probabilities; Normalizer is
//! evaluated but refused by the lowering (no norm is linear).

use anyhow::{anyhow, Result};

use super::float::{self, Env, Runner, Tensor};
use super::graph::Node;
use super::lower::{self, Lowerer};
use super::qdq;
use super::{ml, recurrent, shape_fold};

/// How the converter handles one ONNX op type.
pub(super) struct OnnxOp {
    /// The ONNX `op_type`.
    pub(super) name: &'static str,
    /// Computes the node's output in float from the tensors computed so far.
    pub(super) eval: fn(&Runner<'_>, &Node, &Env<'_>) -> Result<Tensor>,
    /// Lowers the node whose (first) output is the given ONNX tensor.
    pub(super) lower: fn(&mut Lowerer<'_>, &Node, String) -> Result<()>,
}

/// Every supported op type, in the order the unsupported-op error lists them.
const OPS: &[OnnxOp] = &[
    OnnxOp {
        name: "Gemm",
        eval: float::eval_gemm,
        lower: lower::lower_gemm,
    },
    OnnxOp {
        name: "MatMul",
        eval: float::eval_matmul,
        lower: lower::lower_matmul,
    },
    OnnxOp {
        name: "Add",
        eval: float::eval_add,
        lower: lower::lower_add,
    },
    OnnxOp {
        name: "Gather",
        eval: float::eval_gather,
        lower: lower::lower_gather,
    },
    OnnxOp {
        name: "Conv",
        eval: float::eval_conv,
        lower: lower::lower_conv,
    },
    OnnxOp {
        name: "BatchNormalization",
        eval: float::eval_batch_norm,
        lower: lower::lower_batch_norm,
    },
    OnnxOp {
        name: "Relu",
        eval: float::eval_relu,
        lower: lower::lower_activation,
    },
    OnnxOp {
        name: "Clip",
        eval: float::eval_clip,
        lower: lower::lower_activation,
    },
    OnnxOp {
        name: "MaxPool",
        eval: float::eval_pool,
        lower: lower::lower_pool,
    },
    OnnxOp {
        name: "AveragePool",
        eval: float::eval_pool,
        lower: lower::lower_pool,
    },
    OnnxOp {
        name: "GlobalAveragePool",
        eval: float::eval_global_average_pool,
        lower: lower::lower_pool,
    },
    OnnxOp {
        name: "Flatten",
        eval: float::eval_flatten,
        lower: lower::lower_flatten,
    },
    OnnxOp {
        name: "Reshape",
        eval: float::eval_reshape,
        lower: lower::lower_reshape,
    },
    OnnxOp {
        name: "Sigmoid",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Tanh",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Softmax",
        eval: float::eval_softmax,
        lower: lower::lower_softmax,
    },
    OnnxOp {
        name: "LayerNormalization",
        eval: float::eval_layer_norm,
        lower: lower::lower_layer_norm,
    },
    OnnxOp {
        name: "Sub",
        eval: float::eval_sub,
        lower: lower::lower_sub,
    },
    OnnxOp {
        name: "Mul",
        eval: float::eval_mul,
        lower: lower::lower_mul,
    },
    OnnxOp {
        name: "Transpose",
        eval: float::eval_transpose,
        lower: lower::lower_transpose,
    },
    OnnxOp {
        name: "Concat",
        eval: float::eval_concat,
        lower: lower::lower_concat,
    },
    OnnxOp {
        name: "ReduceSum",
        eval: float::eval_reduce,
        lower: lower::lower_reduce,
    },
    OnnxOp {
        name: "ReduceMean",
        eval: float::eval_reduce,
        lower: lower::lower_reduce,
    },
    OnnxOp {
        name: "ReduceMax",
        eval: float::eval_reduce,
        lower: lower::lower_reduce,
    },
    OnnxOp {
        name: "Pad",
        eval: float::eval_pad,
        lower: lower::lower_pad,
    },
    OnnxOp {
        name: "Resize",
        eval: float::eval_resize,
        lower: lower::lower_resize,
    },
    OnnxOp {
        name: "Upsample",
        eval: float::eval_resize,
        lower: lower::lower_resize,
    },
    OnnxOp {
        name: "Slice",
        eval: float::eval_slice,
        lower: lower::lower_slice,
    },
    OnnxOp {
        name: "Squeeze",
        eval: float::eval_squeeze,
        lower: lower::lower_squeeze,
    },
    OnnxOp {
        name: "Unsqueeze",
        eval: float::eval_squeeze,
        lower: lower::lower_squeeze,
    },
    OnnxOp {
        name: "Identity",
        eval: float::eval_identity,
        lower: lower::lower_identity,
    },
    OnnxOp {
        name: "HardSigmoid",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "HardSwish",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "LeakyRelu",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Elu",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Selu",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Gelu",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Erf",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Exp",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Log",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Sqrt",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Reciprocal",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Softplus",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Softsign",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Neg",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Abs",
        eval: float::eval_unary,
        lower: lower::lower_unary,
    },
    OnnxOp {
        name: "Div",
        eval: float::eval_div,
        lower: lower::lower_div,
    },
    OnnxOp {
        name: "Pow",
        eval: float::eval_pow,
        lower: lower::lower_pow,
    },
    OnnxOp {
        name: "Dropout",
        eval: float::eval_dropout,
        lower: lower::lower_dropout,
    },
    OnnxOp {
        name: "Cast",
        eval: float::eval_cast,
        lower: lower::lower_cast,
    },
    OnnxOp {
        name: "TreeEnsembleRegressor",
        eval: ml::eval_tree_ensemble,
        lower: lower::lower_tree_ensemble,
    },
    OnnxOp {
        name: "Scaler",
        eval: ml::eval_scaler,
        lower: lower::lower_scaler,
    },
    OnnxOp {
        name: "Normalizer",
        eval: ml::eval_normalizer,
        lower: lower::lower_normalizer,
    },
    OnnxOp {
        name: "ZipMap",
        eval: float::eval_identity,
        lower: lower::lower_identity,
    },
    OnnxOp {
        name: "QuantizeLinear",
        eval: qdq::eval_quantize,
        lower: lower::lower_identity,
    },
    OnnxOp {
        name: "DequantizeLinear",
        eval: qdq::eval_dequantize,
        lower: lower::lower_identity,
    },
];

/// The row of `node`'s op type, or an error naming the op, the node and the supported ops.
pub(super) fn find(node: &Node) -> Result<&'static OnnxOp> {
    OPS.iter().find(|op| op.name == node.op).ok_or_else(|| {
        anyhow!(
            "unsupported ONNX op `{}` (node `{}`); supported: {}",
            node.op,
            node.name,
            supported()
        )
    })
}

/// The supported op types, comma-separated: table order, then those the load-time pass
/// removes.
fn supported() -> String {
    let rows = OPS.iter().map(|op| op.name);
    let folded = (shape_fold::OPS.iter())
        .chain(recurrent::OPS)
        .chain(ml::OPS)
        .copied();
    rows.chain(folded).collect::<Vec<_>>().join(", ")
}
