//! Validation and static analysis of a model: shapes, canonical parameters, a proof that no
//! accumulator can overflow int32, and the work (MACs, elementwise operations) one inference
//! costs. Everything here is a function of the model alone, so gas can be computed before
//! any inference runs (`docs/SPEC.md` §4–§5).
//!
//! The checks run in the one order SPEC §4 fixes, so that an invalid model has exactly one
//! `(code, node)`: the header, then node by node ([`Validator::node`]: tensor references,
//! shapes, parameter arrays, parameters, per-node limits), then whole-model checks
//! ([`Validator::finish`]). [`crate::codec::decode`] drives the same [`Validator`] while it
//! reads, interleaving only the byte-level checks it alone can make.

use std::ops::RangeInclusive;

use crate::cost::node_cost;
pub use crate::cost::Cost;
use crate::error::{Code, ModelError, HEADER};
use crate::limits::*;
use crate::model::*;

/// What validation learns about a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Analysis {
    /// Shape of every tensor (index = tensor id).
    pub shapes: Vec<Vec<u32>>,
    /// Zero point of every tensor.
    pub zero_points: Vec<i8>,
    /// Cost of every node.
    pub costs: Vec<Cost>,
    pub total: Cost,
    /// Weights, biases and tables: the stored parameters.
    pub params: u64,
}

impl Analysis {
    pub fn output_shape(&self) -> &[u32] {
        self.shapes.last().map(Vec::as_slice).unwrap_or(&[])
    }
    pub fn output_zero_point(&self) -> i8 {
        *self.zero_points.last().unwrap_or(&0)
    }
    pub fn input_len(&self) -> usize {
        numel(&self.shapes[0]) as usize
    }
    pub fn output_len(&self) -> usize {
        numel(self.output_shape()) as usize
    }
}

pub fn numel(shape: &[u32]) -> u64 {
    shape.iter().map(|&d| d as u64).product()
}

/// Node index of header and whole-model errors, as [`ModelError::at`] takes it.
const AT_HEADER: usize = HEADER as usize;

/// Shifts of the input and output scales: scales from `2^-65` to `2^63`, wide enough for any
/// real data, and narrow enough that `inferFixed`'s dequantized values always fit int256
/// (`255 · 2^31 · 10^38 · 2^32 < 2^198`, SPEC §6).
pub const SCALE_SHIFTS: RangeInclusive<i8> = -64..=63;
/// Shifts of requantization multipliers (a right shift of at most 31 keeps RDBPOT defined).
pub const REQUANT_SHIFTS: RangeInclusive<i8> = -31..=30;

/// Checks a rank byte (before its dimensions are read).
pub fn check_rank(node: usize, rank: usize) -> Result<(), ModelError> {
    if rank == 0 || rank > MAX_RANK {
        return Err(ModelError::at(
            Code::BadRank,
            node,
            format!("rank {rank} is outside 1..={MAX_RANK}"),
        ));
    }
    Ok(())
}

/// Checks a declared shape's dimensions: none zero, at most `MAX_TENSOR_ELEMS` elements.
pub fn check_dims(node: usize, shape: &[u32]) -> Result<(), ModelError> {
    if let Some(axis) = shape.iter().position(|&d| d == 0) {
        return Err(ModelError::at(
            Code::ZeroDim,
            node,
            format!("dimension {axis} of a declared shape is 0"),
        ));
    }
    checked_elems(node, shape)
}

/// Checks a declared shape (the input's, node [`HEADER`], or a Reshape's): rank, then dims.
pub fn check_shape(node: usize, shape: &[u32]) -> Result<(), ModelError> {
    check_rank(node, shape.len())?;
    check_dims(node, shape)
}

fn checked_elems(node: usize, shape: &[u32]) -> Result<(), ModelError> {
    let mut n: u64 = 1;
    for &d in shape {
        n = n.saturating_mul(d as u64);
    }
    if n > MAX_TENSOR_ELEMS {
        return Err(ModelError::at(
            Code::TensorTooLarge,
            node,
            format!("a tensor of {n} elements exceeds {MAX_TENSOR_ELEMS}"),
        ));
    }
    Ok(())
}

/// Checks the input or output scale of the header.
pub fn check_io_scale(s: Scale) -> Result<(), ModelError> {
    check_scale(AT_HEADER, s, SCALE_SHIFTS)
}

/// Checks `n_nodes`.
pub fn check_node_count(n: usize) -> Result<(), ModelError> {
    if n == 0 || n > MAX_NODES {
        return Err(ModelError::header(
            Code::NodeCount,
            format!("{n} nodes; a model has 1 to {MAX_NODES}"),
        ));
    }
    Ok(())
}

/// The shape of tensor `id` as seen by node `node` (which may only read earlier tensors).
pub fn tensor_shape(node: usize, id: TensorId, shapes: &[Vec<u32>]) -> Result<&[u32], ModelError> {
    shapes.get(id as usize).map(Vec::as_slice).ok_or_else(|| {
        ModelError::at(
            Code::BadTensorRef,
            node,
            format!("reads tensor {id}, which is not produced before it"),
        )
    })
}

/// Conv `groups` must be at least 1 and divide the input channels (`shape[0]` of the input,
/// whatever its rank) and the output channels. Checked before anything else about a Conv
/// but its input: the decoder needs it to know how many weights follow.
pub fn check_groups(
    node: usize,
    in_channels: u32,
    out_channels: u32,
    groups: u32,
) -> Result<(), ModelError> {
    if groups == 0 || !in_channels.is_multiple_of(groups) || !out_channels.is_multiple_of(groups) {
        return Err(ModelError::at(
            Code::BadGroups,
            node,
            format!(
                "groups {groups} must divide both {in_channels} input and {out_channels} output channels"
            ),
        ));
    }
    Ok(())
}

/// Output `[out_h, out_w]` of a sliding window over `[h, w]`, checking the height axis then
/// the width axis. Every pad must be smaller than the kernel on its axis so each window
/// overlaps real data.
fn window_output(node: usize, win: &Window, h: u32, w: u32) -> Result<[u32; 2], ModelError> {
    let mut out = [0u32; 2];
    for (axis, size) in [h, w].into_iter().enumerate() {
        let (k, s) = (win.kernel[axis] as u32, win.stride[axis] as u32);
        let (p0, p1) = (win.pads[axis] as u32, win.pads[axis + 2] as u32);
        if k == 0 || s == 0 {
            return Err(ModelError::at(
                Code::ZeroKernelOrStride,
                node,
                format!("kernel {k} and stride {s} must be at least 1"),
            ));
        }
        if p0 >= k || p1 >= k {
            return Err(ModelError::at(
                Code::PadTooLarge,
                node,
                format!("padding {p0}/{p1} must be smaller than kernel {k}"),
            ));
        }
        let padded = size + p0 + p1;
        if padded < k {
            return Err(ModelError::at(
                Code::KernelTooLarge,
                node,
                format!("kernel {k} is larger than padded input {padded}"),
            ));
        }
        out[axis] = (padded - k) / s + 1;
    }
    Ok(out)
}

fn expect_rank(node: usize, shape: &[u32], rank: usize) -> Result<(), ModelError> {
    if shape.len() != rank {
        return Err(ModelError::at(
            Code::InputRank,
            node,
            format!("input has rank {}; the op takes rank {rank}", shape.len()),
        ));
    }
    Ok(())
}

fn not_encodable(node: usize, detail: String) -> ModelError {
    ModelError::at(Code::NotEncodable, node, detail)
}

/// Infers the output shape of `node` from the shapes of earlier tensors, checking in SPEC
/// order: the tensors it reads, Conv groups, its shape rules, the output's size, and (for
/// in-memory models) that its parameter arrays have exactly the lengths its shapes require.
pub fn output_shape(node: usize, n: &Node, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
    for id in n.inputs() {
        tensor_shape(node, id, shapes)?;
    }
    let first = tensor_shape(node, n.inputs()[0], shapes)?;
    let out = match n {
        Node::Dense(d) => {
            let k = *first.last().unwrap_or(&0) as u64;
            let nf = d.out_features;
            zero_channels(node, nf)?;
            let mut s = first.to_vec();
            *s.last_mut().unwrap_or(&mut 0) = nf;
            checked_elems(node, &s)?;
            check_layer_arrays(node, nf, k, &d.out, &d.bias, d.weights.len())?;
            s
        }
        Node::Conv(c) => {
            check_groups(node, first[0], c.out_channels, c.groups)?;
            let (ch, h, w) = if c.one_d {
                expect_rank(node, first, 2)?;
                if c.window.kernel[0] != 1
                    || c.window.stride[0] != 1
                    || c.window.pads[0] != 0
                    || c.window.pads[2] != 0
                {
                    return Err(not_encodable(
                        node,
                        "a 1-D window has kernel 1, stride 1, no padding on its first axis".into(),
                    ));
                }
                (first[0], 1, first[1])
            } else {
                expect_rank(node, first, 3)?;
                (first[0], first[1], first[2])
            };
            let [oh, ow] = window_output(node, &c.window, h, w)?;
            zero_channels(node, c.out_channels)?;
            let s = if c.one_d {
                vec![c.out_channels, ow]
            } else {
                vec![c.out_channels, oh, ow]
            };
            checked_elems(node, &s)?;
            let fan_in =
                (ch / c.groups) as u64 * c.window.kernel[0] as u64 * c.window.kernel[1] as u64;
            check_layer_arrays(
                node,
                c.out_channels,
                fan_in,
                &c.out,
                &c.bias,
                c.weights.len(),
            )?;
            s
        }
        Node::MaxPool(p) | Node::AvgPool(p) => {
            expect_rank(node, first, 3)?;
            let [oh, ow] = window_output(node, &p.window, first[1], first[2])?;
            let s = vec![first[0], oh, ow];
            checked_elems(node, &s)?;
            if matches!(n, Node::MaxPool(_)) && p.count_include_pad {
                return Err(not_encodable(
                    node,
                    "MaxPool has no count_include_pad".into(),
                ));
            }
            s
        }
        Node::Add(a) => {
            let second = tensor_shape(node, a.b, shapes)?;
            if first != second {
                return Err(ModelError::at(
                    Code::AddShapeMismatch,
                    node,
                    format!("shapes {first:?} and {second:?} differ (no broadcasting)"),
                ));
            }
            if a.out.requant.len() != 1 {
                return Err(not_encodable(
                    node,
                    "Add has exactly one output multiplier".into(),
                ));
            }
            first.to_vec()
        }
        Node::Reshape { shape, .. } => {
            check_shape(node, shape)?;
            if numel(shape) != numel(first) {
                return Err(ModelError::at(
                    Code::ReshapeMismatch,
                    node,
                    format!("cannot reshape {first:?} to {shape:?}"),
                ));
            }
            shape.clone()
        }
        Node::Clamp { .. } | Node::Lut { .. } | Node::Softmax { .. } => first.to_vec(),
    };
    Ok(out)
}

fn zero_channels(node: usize, channels: u32) -> Result<(), ModelError> {
    if channels == 0 {
        return Err(ModelError::at(
            Code::ZeroDim,
            node,
            "a layer needs at least one output channel".to_string(),
        ));
    }
    Ok(())
}

fn check_layer_arrays(
    node: usize,
    channels: u32,
    fan_in: u64,
    out: &Output,
    bias: &[i32],
    weights: usize,
) -> Result<(), ModelError> {
    let rq = out.requant.len();
    if rq != 1 && rq != channels as usize {
        return Err(not_encodable(
            node,
            format!("{rq} multipliers for {channels} channels"),
        ));
    }
    if bias.len() != channels as usize || weights as u64 != channels as u64 * fan_in {
        return Err(not_encodable(
            node,
            format!(
                "{} biases and {weights} weights; shapes need {channels} and {}",
                bias.len(),
                channels as u64 * fan_in
            ),
        ));
    }
    Ok(())
}

/// A scale or multiplier must be normalised (`mult ≥ 2^30`), then have its shift in `shifts`.
fn check_scale(node: usize, s: Scale, shifts: RangeInclusive<i8>) -> Result<(), ModelError> {
    if s.mult < MULT_MIN {
        return Err(ModelError::at(
            Code::MultNotNormalized,
            node,
            format!("mult {} is below 2^30", s.mult),
        ));
    }
    if !shifts.contains(&s.shift) {
        return Err(ModelError::at(
            Code::ShiftOutOfRange,
            node,
            format!("shift {} is outside {shifts:?}", s.shift),
        ));
    }
    Ok(())
}

fn check_requant(node: usize, rq: Requant) -> Result<(), ModelError> {
    check_scale(node, rq, REQUANT_SHIFTS)
}

fn check_act(node: usize, min: i8, max: i8) -> Result<(), ModelError> {
    if min > max {
        return Err(ModelError::at(
            Code::EmptyClamp,
            node,
            format!("clamp range [{min}, {max}] is empty"),
        ));
    }
    Ok(())
}

fn overflow(node: usize, what: &str, bound: u128) -> ModelError {
    ModelError::at(
        Code::AccumulatorOverflow,
        node,
        format!("{what} can reach {bound}, beyond int32"),
    )
}

/// Bound on `|MultiplyByQuantizedMultiplier(x, rq)|` for `|x| <= x_bound`, after checking that
/// `x_bound · 2^left` fits int32 (which also proves `x` itself does).
fn mbq_bound(node: usize, x_bound: u64, rq: Requant) -> Result<u64, ModelError> {
    let left = rq.shift.max(0) as u32;
    let right = (-rq.shift).max(0) as u32;
    let lifted = (x_bound as u128) << left;
    if lifted > i32::MAX as u128 {
        return Err(overflow(node, "an accumulator shifted left", lifted));
    }
    let high = ((lifted * rq.mult as u128) >> 31) + 1;
    Ok(((high >> right) + 1) as u64)
}

/// Proves `REQUANT(acc) = clamp(MBQ(acc) + zero_point, ..)` stays in int32 for every
/// `|acc| <= acc_bound`: `acc · 2^left` fits, and `bound(MBQ) + |zero_point| ≤ 2^31 − 1`.
fn requant_bound(
    node: usize,
    acc_bound: u64,
    rq: Requant,
    zero_point: i8,
) -> Result<(), ModelError> {
    let m = mbq_bound(node, acc_bound, rq)? + (zero_point as i64).unsigned_abs();
    if m > i32::MAX as u64 {
        return Err(overflow(
            node,
            "a requantized value plus the zero point",
            m as u128,
        ));
    }
    Ok(())
}

/// The output scale a tensor must have, when the graph fixes it: the input's scale (tensor 0),
/// Softmax's 1/256, or that of the input of a node that keeps its input's quantization.
/// `None` when the producing node sets a new scale (Dense, Conv, Add, Lut).
fn fixed_scale(n: &Node, scales: &[Option<Scale>]) -> Option<Scale> {
    match n {
        Node::Softmax { .. } => Some(SOFTMAX_SCALE),
        Node::MaxPool(Pool { input, .. })
        | Node::AvgPool(Pool { input, .. })
        | Node::Clamp { input, .. }
        | Node::Reshape { input, .. } => scales.get(*input as usize).copied().flatten(),
        Node::Dense(_) | Node::Conv(_) | Node::Add(_) | Node::Lut { .. } => None,
    }
}

/// The output scale the graph of a (valid) model fixes, if any: a model must declare exactly
/// this one. For generators and converters.
pub fn fixed_output_scale(model: &Model) -> Option<Scale> {
    let mut scales = vec![Some(model.input_quant.scale)];
    for n in &model.nodes {
        let s = fixed_scale(n, &scales);
        scales.push(s);
    }
    scales.pop().flatten()
}

/// Validates a model and computes its static analysis (SPEC §4, in its order).
pub fn validate(model: &Model) -> Result<Analysis, ModelError> {
    let mut v = Validator::new(
        &model.input_shape,
        model.input_quant,
        model.output_scale,
        model.nodes.len(),
    )?;
    for n in &model.nodes {
        v.node(n)?;
    }
    v.finish()
}

/// Validation as a stream: the header, then one node at a time (as the decoder reads them),
/// then the whole-model checks.
pub struct Validator {
    a: Analysis,
    activations: u64,
    output_scale: Scale,
    /// Fixed scale of every tensor so far ([`fixed_scale`]).
    scales: Vec<Option<Scale>>,
}

impl Validator {
    /// Checks the header fields in their byte order: input shape, input scale, output scale,
    /// node count.
    pub fn new(
        input_shape: &[u32],
        input_quant: Quant,
        output_scale: Scale,
        n_nodes: usize,
    ) -> Result<Self, ModelError> {
        check_shape(AT_HEADER, input_shape)?;
        check_io_scale(input_quant.scale)?;
        check_io_scale(output_scale)?;
        check_node_count(n_nodes)?;
        Ok(Validator {
            activations: numel(input_shape),
            a: Analysis {
                total: Cost::default(),
                params: 0,
                costs: Vec::new(),
                zero_points: vec![input_quant.zero_point],
                shapes: vec![input_shape.to_vec()],
            },
            output_scale,
            scales: vec![Some(input_quant.scale)],
        })
    }

    /// Shapes of the tensors so far (index = tensor id).
    pub fn shapes(&self) -> &[Vec<u32>] {
        &self.a.shapes
    }

    /// Checks the next node (all its checks, in SPEC order) and records its analysis.
    pub fn node(&mut self, n: &Node) -> Result<(), ModelError> {
        let i = self.a.costs.len();
        let a = &mut self.a;
        let shape = output_shape(i, n, &a.shapes)?;
        let out_elems = numel(&shape);
        let in_zp = a.zero_points[n.inputs()[0] as usize];
        let (zp, params) = match n {
            Node::Dense(d) => {
                check_layer(i, &d.out, &d.bias, &d.weights)?;
                (
                    d.out.zero_point,
                    d.weights.len() as u64 + d.bias.len() as u64,
                )
            }
            Node::Conv(c) => {
                check_layer(i, &c.out, &c.bias, &c.weights)?;
                let spatial = out_elems / c.out_channels as u64;
                let fan_in = c.weights.len() as u64 / c.out_channels as u64;
                let im2col = spatial * fan_in * c.groups as u64;
                if im2col > MAX_IM2COL_ELEMS {
                    return Err(ModelError::at(
                        Code::Im2colTooLarge,
                        i,
                        format!("im2col of {im2col} elements exceeds {MAX_IM2COL_ELEMS}"),
                    ));
                }
                (
                    c.out.zero_point,
                    c.weights.len() as u64 + c.bias.len() as u64,
                )
            }
            Node::MaxPool(p) | Node::AvgPool(p) => {
                if p.count_include_pad && p.window.pads == [0; 4] {
                    // Without padding both flag values compute the same: 0 is the canonical one.
                    return Err(ModelError::at(
                        Code::PadFlagNotCanonical,
                        i,
                        "count_include_pad = 1 without padding",
                    ));
                }
                (in_zp, 0)
            }
            Node::Add(ad) => {
                check_requant(i, ad.a_requant)?;
                check_requant(i, ad.b_requant)?;
                check_requant(i, ad.out.requant[0])?;
                check_act(i, ad.out.act_min, ad.out.act_max)?;
                let lifted = 255u64 << ADD_LEFT_SHIFT;
                let sum = mbq_bound(i, lifted, ad.a_requant)? + mbq_bound(i, lifted, ad.b_requant)?;
                requant_bound(i, sum, ad.out.requant[0], ad.out.zero_point)?;
                (ad.out.zero_point, 0)
            }
            Node::Clamp { min, max, .. } => {
                check_act(i, *min, *max)?;
                (in_zp, 0)
            }
            Node::Reshape { .. } => (in_zp, 0),
            Node::Lut { zero_point, .. } => (*zero_point, 256),
            Node::Softmax { exp_table, .. } => {
                if exp_table[0] == 0 {
                    return Err(ModelError::at(
                        Code::ExpTableZero,
                        i,
                        "exp_table[0] (the maximum's weight) must be at least 1",
                    ));
                }
                (SOFTMAX_ZERO_POINT, 256)
            }
        };
        let cost = node_cost(n, &a.shapes, &shape);
        a.total.macs += cost.macs;
        a.total.elems += cost.elems;
        a.params += params;
        self.activations += out_elems;
        a.costs.push(cost);
        a.zero_points.push(zp);
        a.shapes.push(shape);
        let scale = fixed_scale(n, &self.scales);
        self.scales.push(scale);
        Ok(())
    }

    /// Whole-model checks, after the last node: the declared output scale, then the limits
    /// on total MACs, elementwise steps and activation elements.
    pub fn finish(self) -> Result<Analysis, ModelError> {
        if let Some(Some(fixed)) = self.scales.last() {
            if *fixed != self.output_scale {
                return Err(ModelError::header(
                    Code::OutputScaleMismatch,
                    format!(
                        "declared output scale {:?} but the graph fixes {fixed:?}",
                        self.output_scale
                    ),
                ));
            }
        }
        let a = self.a;
        for (code, value, max) in [
            (Code::TooManyMacs, a.total.macs, MAX_TOTAL_MACS),
            (Code::TooManyElems, a.total.elems, MAX_TOTAL_ELEMS),
            (
                Code::TooManyActivations,
                self.activations,
                MAX_ACTIVATION_ELEMS,
            ),
        ] {
            if value > max {
                return Err(ModelError::header(code, format!("{value} > {max}")));
            }
        }
        Ok(a)
    }
}

/// Left shift applied to both inputs of Add before rescaling (TFLite's value).
pub const ADD_LEFT_SHIFT: u32 = 20;
/// Softmax outputs probabilities with scale 1/256 and this zero point.
pub const SOFTMAX_ZERO_POINT: i8 = -128;
/// Softmax's output scale, 1/256 = 2^30 · 2^(−7 − 31).
pub const SOFTMAX_SCALE: Scale = Scale {
    mult: 1 << 30,
    shift: -7,
};

/// Checks a Dense/Conv layer's parameters in SPEC order: each multiplier, the per-channel
/// encoding, the fused clamp, then for every output channel that the largest possible
/// accumulator `|bias| + 255 · Σ|w|` survives requantization in int32.
fn check_layer(node: usize, out: &Output, bias: &[i32], weights: &[i8]) -> Result<(), ModelError> {
    for &rq in &out.requant {
        check_requant(node, rq)?;
    }
    if out.requant.len() > 1 && out.requant.windows(2).all(|p| p[0] == p[1]) {
        return Err(ModelError::at(
            Code::PerChannelNotCanonical,
            node,
            "per-channel multipliers that are all equal (per_channel = 0 is canonical)",
        ));
    }
    check_act(node, out.act_min, out.act_max)?;
    let fan_in = weights.len() / bias.len();
    for (ch, row) in weights.chunks(fan_in).enumerate() {
        let abs_w: u64 = row.iter().map(|&w| (w as i64).unsigned_abs()).sum();
        let bound = (bias[ch] as i64).unsigned_abs() + 255 * abs_w;
        let rq = out.requant[if out.requant.len() == 1 { 0 } else { ch }];
        requant_bound(node, bound, rq, out.zero_point)?;
    }
    Ok(())
}
