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

/// Index of a tensor: 0 is the model input, `i + 1` the output of node `i`.
pub type TensorId = u16;

/// Requantization of a layer's int32 accumulators back to int8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// One multiplier for the whole layer, or one per output channel.
    pub requant: Vec<Requant>,
    pub zero_point: i8,
    /// Fused activation: results are clamped to `[act_min, act_max]` (ReLU, ReLU6, none).
    pub act_min: i8,
    pub act_max: i8,
}

/// Fully connected layer over the last axis: `y[.., n] = bias[n] + Σ_k w[n][k] · (x[.., k] − zp_x)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dense {
    pub input: TensorId,
    pub out_features: u32,
    pub out: Output,
    pub bias: Vec<i32>,
    /// Row-major `[out_features][in_features]`, as PyTorch's `Linear.weight`.
    pub weights: Vec<i8>,
}

/// 2-D (or 1-D) convolution over a `[C, H, W]` (or `[C, L]`) tensor; padding holds the input
/// zero point, i.e. real zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conv {
    pub input: TensorId,
    /// `true` for Conv1d: the input is `[C, L]` and is treated as `[C, 1, L]`.
    pub one_d: bool,
    pub out_channels: u32,
    pub window: Window,
    pub groups: u32,
    pub out: Output,
    pub bias: Vec<i32>,
    /// `[out_channels][in_channels / groups][kernel_h][kernel_w]`, as PyTorch's `Conv2d.weight`.
    pub weights: Vec<i8>,
}

/// Kernel, stride and padding of a convolution or pooling window (height first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [u16; 2],
    pub stride: [u16; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [u16; 4],
}

/// Max or average pooling over a `[C, H, W]` tensor; the output keeps the input's quantization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pool {
    pub input: TensorId,
    pub window: Window,
    /// Average pooling only: padded positions count (holding the zero point) in the divisor.
    pub count_include_pad: bool,
}

/// Residual addition of two same-shape tensors, TFLite-style: both inputs are lifted by
/// `2^20`, rescaled to a common scale, summed and rescaled to the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Add {
    pub a: TensorId,
    pub b: TensorId,
    pub a_requant: Requant,
    pub b_requant: Requant,
    pub out: Output,
}

/// One node of the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dense(Dense),
    Conv(Conv),
    MaxPool(Pool),
    AvgPool(Pool),
    Add(Add),
    /// `y = clamp(x, min, max)`: ReLU is `min = zero_point`, ReLU6 also caps `max`.
    Clamp {
        input: TensorId,
        min: i8,
        max: i8,
    },
    /// Same elements, new shape (Flatten is a reshape to one axis).
    Reshape {
        input: TensorId,
        shape: Vec<u32>,
    },
    /// `y = table[x + 128]`: any elementwise function (sigmoid, tanh, GELU, ...).
    Lut {
        input: TensorId,
        zero_point: i8,
        table: Box<[i8; 256]>,
    },
    /// Integer softmax over the last axis; `exp_table[d]` approximates `exp(−d · scale) · 2^16`
    /// for `d = max − x`. Output scale is 1/256 and zero point −128.
    Softmax {
        input: TensorId,
        exp_table: Box<[u16; 256]>,
    },
}

/// A parsed model. Construct it with [`crate::codec::decode`] (which validates) or build one
/// and check it with [`crate::validate::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    pub input_shape: Vec<u32>,
    pub input_quant: Quant,
    /// Scale of the output tensor (its zero point is the last node's).
    pub output_scale: Scale,
    pub nodes: Vec<Node>,
}

impl Node {
    /// The tensors this node reads, in order.
    pub fn inputs(&self) -> Vec<TensorId> {
        match self {
            Node::Dense(d) => vec![d.input],
            Node::Conv(c) => vec![c.input],
            Node::MaxPool(p) | Node::AvgPool(p) => vec![p.input],
            Node::Add(a) => vec![a.a, a.b],
            Node::Clamp { input, .. }
            | Node::Reshape { input, .. }
            | Node::Lut { input, .. }
            | Node::Softmax { input, .. } => vec![*input],
        }
    }

    /// Short name used in errors and `myelin inspect`.
    pub fn op_name(&self) -> &'static str {
        match self {
            Node::Dense(_) => "Dense",
            Node::Conv(c) if c.one_d => "Conv1d",
            Node::Conv(_) => "Conv2d",
            Node::MaxPool(_) => "MaxPool2d",
            Node::AvgPool(_) => "AvgPool2d",
            Node::Add(_) => "Add",
            Node::Clamp { .. } => "Clamp",
            Node::Reshape { .. } => "Reshape",
            Node::Lut { .. } => "Lut",
            Node::Softmax { .. } => "Softmax",
        }
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
