//! Validation and static analysis of a model: shapes, canonical parameters, a proof that no
//! accumulator can overflow int32, and the work (MACs, elementwise operations) one inference
//! costs. Everything here is a function of the model alone, so gas can be computed before
//! any inference runs (`docs/SPEC.md` §4–§5).

use crate::cost::node_cost;
pub use crate::cost::Cost;
use crate::error::ModelError;
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

fn invalid(node: usize, op: &'static str, reason: String) -> ModelError {
    ModelError::Invalid { node, op, reason }
}

/// Checks a declared shape: rank 1..=4, no zero dimension, at most `MAX_TENSOR_ELEMS`.
pub fn check_shape(shape: &[u32]) -> Result<Vec<u32>, ModelError> {
    if shape.is_empty() || shape.len() > MAX_RANK {
        return Err(ModelError::InvalidInput(format!(
            "rank {} is outside 1..={MAX_RANK}",
            shape.len()
        )));
    }
    if shape.contains(&0) {
        return Err(ModelError::InvalidInput(format!(
            "shape {shape:?} has a zero dimension"
        )));
    }
    checked_elems(shape)?;
    Ok(shape.to_vec())
}

fn checked_elems(shape: &[u32]) -> Result<u64, ModelError> {
    let mut n: u64 = 1;
    for &d in shape {
        n = n.saturating_mul(d as u64);
    }
    if n > MAX_TENSOR_ELEMS {
        return Err(ModelError::LimitExceeded {
            what: "elements of one tensor",
            value: n,
            max: MAX_TENSOR_ELEMS,
        });
    }
    Ok(n)
}

/// The shape of tensor `id` as seen by node `node` (which may only read earlier tensors).
pub fn tensor_shape(node: usize, id: TensorId, shapes: &[Vec<u32>]) -> Result<&[u32], ModelError> {
    shapes.get(id as usize).map(Vec::as_slice).ok_or_else(|| {
        invalid(
            node,
            "graph",
            format!("reads tensor {id}, which is not produced before it"),
        )
    })
}

/// Output `[out_h, out_w]` of a sliding window over `[h, w]`. Every pad must be smaller than
/// the kernel on its axis so each window overlaps real data.
fn window_output(
    node: usize,
    op: &'static str,
    win: &Window,
    h: u32,
    w: u32,
) -> Result<[u32; 2], ModelError> {
    let mut out = [0u32; 2];
    for (axis, size) in [h, w].into_iter().enumerate() {
        let (k, s) = (win.kernel[axis] as u32, win.stride[axis] as u32);
        let (p0, p1) = (win.pads[axis] as u32, win.pads[axis + 2] as u32);
        if k == 0 || s == 0 {
            return Err(invalid(
                node,
                op,
                "kernel and stride must be at least 1".into(),
            ));
        }
        if p0 >= k || p1 >= k {
            return Err(invalid(
                node,
                op,
                format!("padding {p0}/{p1} must be smaller than kernel {k}"),
            ));
        }
        let padded = size + p0 + p1;
        if padded < k {
            return Err(invalid(
                node,
                op,
                format!("kernel {k} is larger than padded input {padded}"),
            ));
        }
        out[axis] = (padded - k) / s + 1;
    }
    Ok(out)
}

fn expect_rank(
    node: usize,
    op: &'static str,
    shape: &[u32],
    rank: usize,
) -> Result<(), ModelError> {
    if shape.len() != rank {
        return Err(invalid(
            node,
            op,
            format!("input shape {shape:?} must have rank {rank}"),
        ));
    }
    Ok(())
}

/// Infers the output shape of `node` from the shapes of earlier tensors, checking that the
/// node's parameter arrays have exactly the lengths its shapes require.
pub fn output_shape(node: usize, n: &Node, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
    let op = n.op_name();
    let first = tensor_shape(node, n.inputs()[0], shapes)?;
    let out = match n {
        Node::Dense(d) => {
            let k = *first.last().unwrap_or(&0) as u64;
            let nf = d.out_features;
            check_layer_arrays(node, op, nf, k, &d.out, &d.bias, d.weights.len())?;
            let mut s = first.to_vec();
            *s.last_mut().unwrap_or(&mut 0) = nf;
            s
        }
        Node::Conv(c) => {
            let (ch, h, w) = if c.one_d {
                expect_rank(node, op, first, 2)?;
                if c.window.kernel[0] != 1
                    || c.window.stride[0] != 1
                    || c.window.pads[0] != 0
                    || c.window.pads[2] != 0
                {
                    return Err(invalid(
                        node,
                        op,
                        "a 1-D window has kernel 1, stride 1, no padding on its first axis".into(),
                    ));
                }
                (first[0], 1, first[1])
            } else {
                expect_rank(node, op, first, 3)?;
                (first[0], first[1], first[2])
            };
            if c.groups == 0 || ch % c.groups != 0 || c.out_channels % c.groups != 0 {
                return Err(invalid(
                    node,
                    op,
                    format!(
                        "groups {} must divide both {ch} input and {} output channels",
                        c.groups, c.out_channels
                    ),
                ));
            }
            let [oh, ow] = window_output(node, op, &c.window, h, w)?;
            let fan_in =
                (ch / c.groups) as u64 * c.window.kernel[0] as u64 * c.window.kernel[1] as u64;
            check_layer_arrays(
                node,
                op,
                c.out_channels,
                fan_in,
                &c.out,
                &c.bias,
                c.weights.len(),
            )?;
            if c.one_d {
                vec![c.out_channels, ow]
            } else {
                vec![c.out_channels, oh, ow]
            }
        }
        Node::MaxPool(p) | Node::AvgPool(p) => {
            expect_rank(node, op, first, 3)?;
            let [oh, ow] = window_output(node, op, &p.window, first[1], first[2])?;
            vec![first[0], oh, ow]
        }
        Node::Add(a) => {
            let second = tensor_shape(node, a.b, shapes)?;
            if first != second {
                return Err(invalid(
                    node,
                    op,
                    format!("shapes {first:?} and {second:?} differ (no broadcasting)"),
                ));
            }
            if a.out.requant.len() != 1 {
                return Err(invalid(
                    node,
                    op,
                    "has exactly one output multiplier".into(),
                ));
            }
            first.to_vec()
        }
        Node::Reshape { shape, .. } => {
            let s = check_shape(shape).map_err(|e| invalid(node, op, e.to_string()))?;
            if numel(&s) != numel(first) {
                return Err(invalid(
                    node,
                    op,
                    format!("cannot reshape {first:?} to {s:?}"),
                ));
            }
            s
        }
        Node::Clamp { .. } | Node::Lut { .. } | Node::Softmax { .. } => first.to_vec(),
    };
    checked_elems(&out).map_err(|e| invalid(node, op, e.to_string()))?;
    Ok(out)
}

fn check_layer_arrays(
    node: usize,
    op: &'static str,
    channels: u32,
    fan_in: u64,
    out: &Output,
    bias: &[i32],
    weights: usize,
) -> Result<(), ModelError> {
    if channels == 0 || fan_in == 0 {
        return Err(invalid(
            node,
            op,
            "needs at least one output channel and one input".into(),
        ));
    }
    let rq = out.requant.len();
    if rq != 1 && rq != channels as usize {
        return Err(invalid(
            node,
            op,
            format!("has {rq} multipliers for {channels} channels"),
        ));
    }
    if bias.len() != channels as usize || weights as u64 != channels as u64 * fan_in {
        return Err(invalid(
            node,
            op,
            format!(
                "has {} biases and {weights} weights; shapes need {channels} and {}",
                bias.len(),
                channels as u64 * fan_in
            ),
        ));
    }
    Ok(())
}

/// A requantization multiplier must be normalised and its shift in `[-31, 30]`.
fn check_requant(node: usize, op: &'static str, rq: Requant) -> Result<(), ModelError> {
    check_scale(node, rq)?;
    if !(-31..=30).contains(&rq.shift) {
        return Err(invalid(
            node,
            op,
            format!("requant shift {} is outside -31..=30", rq.shift),
        ));
    }
    Ok(())
}

fn check_scale(node: usize, s: Scale) -> Result<(), ModelError> {
    if s.mult < MULT_MIN {
        return Err(ModelError::NonCanonical {
            node,
            field: "mult",
            value: s.mult as i64,
        });
    }
    Ok(())
}

fn check_act(node: usize, op: &'static str, min: i8, max: i8) -> Result<(), ModelError> {
    if min > max {
        return Err(invalid(
            node,
            op,
            format!("clamp range [{min}, {max}] is empty"),
        ));
    }
    Ok(())
}

/// Bound on `|MultiplyByQuantizedMultiplier(x, rq)|` for `|x| <= x_bound`, after checking that
/// the left shift cannot overflow int32 (the only place the spec's arithmetic could).
fn mbq_bound(node: usize, op: &'static str, x_bound: u64, rq: Requant) -> Result<u64, ModelError> {
    let left = rq.shift.max(0) as u32;
    let right = (-rq.shift).max(0) as u32;
    let lifted = (x_bound as u128) << left;
    if lifted > i32::MAX as u128 {
        return Err(ModelError::AccumulatorOverflow {
            node,
            op,
            bound: lifted,
        });
    }
    let high = ((lifted * rq.mult as u128) >> 31) + 1;
    Ok(((high >> right) + 1) as u64)
}

/// Validates a model and computes its static analysis.
pub fn validate(model: &Model) -> Result<Analysis, ModelError> {
    if model.nodes.is_empty() || model.nodes.len() > MAX_NODES {
        return Err(ModelError::NodeCount(model.nodes.len()));
    }
    let input = check_shape(&model.input_shape)?;
    check_scale(0, model.input_quant.scale)?;
    check_scale(model.nodes.len() - 1, model.output_scale)?;
    let mut a = Analysis {
        total: Cost::default(),
        params: 0,
        costs: Vec::new(),
        zero_points: vec![model.input_quant.zero_point],
        shapes: vec![input],
    };
    let mut activations = numel(&a.shapes[0]);
    for (i, n) in model.nodes.iter().enumerate() {
        let op = n.op_name();
        let shape = output_shape(i, n, &a.shapes)?;
        let out_elems = numel(&shape);
        let in_zp = a.zero_points[n.inputs()[0] as usize];
        let (zp, params) = match n {
            Node::Dense(d) => {
                check_layer(i, op, &d.out, &d.bias, &d.weights)?;
                (
                    d.out.zero_point,
                    d.weights.len() as u64 + d.bias.len() as u64,
                )
            }
            Node::Conv(c) => {
                check_layer(i, op, &c.out, &c.bias, &c.weights)?;
                let spatial = out_elems / c.out_channels as u64;
                let fan_in = c.weights.len() as u64 / c.out_channels as u64;
                let im2col = spatial * fan_in * c.groups as u64;
                if im2col > MAX_IM2COL_ELEMS {
                    return Err(ModelError::LimitExceeded {
                        what: "im2col elements of one convolution",
                        value: im2col,
                        max: MAX_IM2COL_ELEMS,
                    });
                }
                (
                    c.out.zero_point,
                    c.weights.len() as u64 + c.bias.len() as u64,
                )
            }
            Node::MaxPool(_) | Node::AvgPool(_) => (in_zp, 0),
            Node::Add(ad) => {
                check_requant(i, op, ad.a_requant)?;
                check_requant(i, op, ad.b_requant)?;
                check_requant(i, op, ad.out.requant[0])?;
                check_act(i, op, ad.out.act_min, ad.out.act_max)?;
                let lifted = 255u64 << ADD_LEFT_SHIFT;
                let sum = mbq_bound(i, op, lifted, ad.a_requant)?
                    + mbq_bound(i, op, lifted, ad.b_requant)?;
                mbq_bound(i, op, sum, ad.out.requant[0])?;
                (ad.out.zero_point, 0)
            }
            Node::Clamp { min, max, .. } => {
                check_act(i, op, *min, *max)?;
                (in_zp, 0)
            }
            Node::Reshape { .. } => (in_zp, 0),
            Node::Lut { zero_point, .. } => (*zero_point, 256),
            Node::Softmax { exp_table, .. } => {
                if exp_table[0] == 0 {
                    return Err(invalid(
                        i,
                        op,
                        "exp_table[0] (the maximum's weight) must be at least 1".into(),
                    ));
                }
                (SOFTMAX_ZERO_POINT, 256)
            }
        };
        let cost = node_cost(n, &a.shapes, &shape);
        a.total.macs += cost.macs;
        a.total.elems += cost.elems;
        a.params += params;
        activations += out_elems;
        a.costs.push(cost);
        a.zero_points.push(zp);
        a.shapes.push(shape);
    }
    for (what, value, max) in [
        ("multiply-accumulates", a.total.macs, MAX_TOTAL_MACS),
        ("elementwise operations", a.total.elems, MAX_TOTAL_ELEMS),
        ("activation elements", activations, MAX_ACTIVATION_ELEMS),
    ] {
        if value > max {
            return Err(ModelError::LimitExceeded { what, value, max });
        }
    }
    Ok(a)
}

/// Left shift applied to both inputs of Add before rescaling (TFLite's value).
pub const ADD_LEFT_SHIFT: u32 = 20;
/// Softmax outputs probabilities with scale 1/256 and this zero point.
pub const SOFTMAX_ZERO_POINT: i8 = -128;

/// Checks a Dense/Conv layer's multipliers and fused clamp, and proves that for every output
/// channel `|bias| + 255 · Σ|w|` (the largest possible accumulator) survives requantization.
fn check_layer(
    node: usize,
    op: &'static str,
    out: &Output,
    bias: &[i32],
    weights: &[i8],
) -> Result<(), ModelError> {
    check_act(node, op, out.act_min, out.act_max)?;
    for &rq in &out.requant {
        check_requant(node, op, rq)?;
    }
    let fan_in = weights.len() / bias.len();
    for (ch, row) in weights.chunks(fan_in).enumerate() {
        let abs_w: u64 = row.iter().map(|&w| (w as i64).unsigned_abs()).sum();
        let bound = (bias[ch] as i64).unsigned_abs() + 255 * abs_w;
        let rq = out.requant[if out.requant.len() == 1 { 0 } else { ch }];
        if bound > i32::MAX as u64 {
            return Err(ModelError::AccumulatorOverflow {
                node,
                op,
                bound: bound as u128,
            });
        }
        mbq_bound(node, op, bound, rq)?;
    }
    Ok(())
}
