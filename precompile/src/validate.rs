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
    /// Elements of the kernel operands preparing the model packs (Σ `Op::prepared_elems`).
    pub prepared: u64,
    /// Elements of prepared kernel operands every inference streams (Σ `Op::streamed_elems`).
    pub streamed: u64,
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
    /// Elements of the int8 input.
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

pub(crate) fn checked_elems(node: usize, shape: &[u32]) -> Result<(), ModelError> {
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

/// Checks the feature count of a per-feature input quantization (format v3/v4), before its
/// entries are read: one feature has one quantization, which only v1/v2 encode.
pub fn check_feature_count(features: usize) -> Result<(), ModelError> {
    if features < 2 {
        return Err(ModelError::header(
            Code::FeatureQuantNotCanonical,
            format!("per-feature input quantization of {features} feature(s)"),
        ));
    }
    Ok(())
}

/// Checks a per-feature input quantization once read: entries that are all equal are one
/// quantization, which only v1/v2 encode.
pub fn check_feature_quant(quants: &[Quant]) -> Result<(), ModelError> {
    if quants.windows(2).all(|p| p[0] == p[1]) {
        return Err(ModelError::header(
            Code::FeatureQuantNotCanonical,
            "per-feature input quantizations that are all equal (one is canonical)",
        ));
    }
    Ok(())
}

/// Checks the number of index inputs of a v2 header (v1 has none; v2 has at least one).
pub fn check_index_input_count(n: usize) -> Result<(), ModelError> {
    if n == 0 || n > MAX_INDEX_INPUTS {
        return Err(ModelError::header(
            Code::BadIndexInputs,
            format!("{n} index inputs; a version-2 model has 1 to {MAX_INDEX_INPUTS}"),
        ));
    }
    Ok(())
}

/// Checks the number of ids of one index input.
pub fn check_id_count(n: usize) -> Result<(), ModelError> {
    if n == 0 || n > MAX_IDS {
        return Err(ModelError::header(
            Code::BadIndexInputs,
            format!("an index input of {n} ids; each has 1 to {MAX_IDS}"),
        ));
    }
    Ok(())
}

/// Checks one id's limit: 0 would leave no valid id.
pub fn check_id_limit(limit: u16) -> Result<(), ModelError> {
    if limit == 0 {
        return Err(ModelError::header(
            Code::BadIndexInputs,
            "an id limit of 0 admits no id",
        ));
    }
    Ok(())
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

pub(crate) fn expect_rank(node: usize, shape: &[u32], rank: usize) -> Result<(), ModelError> {
    if shape.len() != rank {
        return Err(ModelError::at(
            Code::InputRank,
            node,
            format!("input has rank {}; the op takes rank {rank}", shape.len()),
        ));
    }
    Ok(())
}

pub(crate) fn not_encodable(node: usize, detail: String) -> ModelError {
    ModelError::at(Code::NotEncodable, node, detail)
}

/// Infers the output shape of `node` from the shapes of earlier tensors, checking in SPEC
/// order: the tensors it reads, Conv groups, its shape rules, the output's size, and (for
/// in-memory models) that its parameter arrays have exactly the lengths its shapes require.
pub fn output_shape(node: usize, n: &Node, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
    for id in n.inputs() {
        tensor_shape(node, id, shapes)?;
    }
    n.own_output_shape(node, shapes)
}

/// A scale or multiplier must be normalised (`mult ≥ 2^30`), then have its shift in `shifts`.
pub(crate) fn check_scale(
    node: usize,
    s: Scale,
    shifts: RangeInclusive<i8>,
) -> Result<(), ModelError> {
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

pub(crate) fn check_requant(node: usize, rq: Requant) -> Result<(), ModelError> {
    check_scale(node, rq, REQUANT_SHIFTS)
}

pub(crate) fn check_act(node: usize, min: i8, max: i8) -> Result<(), ModelError> {
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
pub(crate) fn mbq_bound(node: usize, x_bound: u64, rq: Requant) -> Result<u64, ModelError> {
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
pub(crate) fn requant_bound(
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

/// The output scale the graph of a (valid) model fixes, if any: a model must declare exactly
/// this one. For generators and converters.
pub fn fixed_output_scale(model: &Model) -> Option<Scale> {
    let mut scales = vec![model.tensor_quant().map(|q| q.scale)];
    for n in &model.nodes {
        let s = n.fixed_scale(&scales);
        scales.push(s);
    }
    scales.pop().flatten()
}

/// A model that passed validation, with what validation learnt about it. Only [`validate`]
/// and [`crate::codec::decode`] make one, and the engine, the reference and gas take nothing
/// else: a model that reaches them has been checked, and its analysis is its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidModel {
    model: Model,
    analysis: Analysis,
}

impl ValidModel {
    pub fn model(&self) -> &Model {
        &self.model
    }
    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }
    /// The model, to change and validate again.
    pub fn into_model(self) -> Model {
        self.model
    }
}

/// Validates a model and computes its static analysis (SPEC §4, in its order).
pub fn validate(model: Model) -> Result<ValidModel, ModelError> {
    let mut v = Validator::new(
        &model.input_shape,
        &model.input_quant,
        model.output_scale,
        &model.index_inputs,
        model.nodes.len(),
    )?;
    for n in &model.nodes {
        v.node(n)?;
    }
    let analysis = v.finish()?;
    Ok(ValidModel { model, analysis })
}

/// Validation as a stream: the header, then one node at a time (as the decoder reads them),
/// then the whole-model checks ([`Validator::finish_with`]).
pub struct Validator {
    a: Analysis,
    activations: u64,
    output_scale: Scale,
    /// Fixed scale of every tensor so far ([`Node::fixed_scale`]).
    scales: Vec<Option<Scale>>,
    /// The model's index inputs, which Gather nodes read.
    index_inputs: Vec<IndexInput>,
}

impl Validator {
    /// Checks the header fields in their byte order: input shape, input scales (per feature:
    /// the feature count, each scale, then that they differ), output scale, index inputs
    /// (count, then each one's id count and limits), node count.
    pub fn new(
        input_shape: &[u32],
        input_quant: &[Quant],
        output_scale: Scale,
        index_inputs: &[IndexInput],
        n_nodes: usize,
    ) -> Result<Self, ModelError> {
        check_shape(AT_HEADER, input_shape)?;
        let tensor_quant = tensor_quant(input_quant);
        if tensor_quant.is_none() {
            let features = *input_shape.last().unwrap_or(&0) as usize;
            check_feature_count(features)?;
            if input_quant.len() != features {
                return Err(not_encodable(
                    AT_HEADER,
                    format!(
                        "{} input quantizations for {features} features",
                        input_quant.len()
                    ),
                ));
            }
        }
        for q in input_quant {
            check_io_scale(q.scale)?;
        }
        if tensor_quant.is_none() {
            check_feature_quant(input_quant)?;
        }
        check_io_scale(output_scale)?;
        if !index_inputs.is_empty() {
            check_index_input_count(index_inputs.len())?;
        }
        for input in index_inputs {
            check_id_count(input.limits.len())?;
            for &limit in &input.limits {
                check_id_limit(limit)?;
            }
        }
        check_node_count(n_nodes)?;
        Ok(Validator {
            activations: numel(input_shape),
            a: Analysis {
                total: Cost::default(),
                prepared: 0,
                streamed: 0,
                params: 0,
                costs: Vec::new(),
                zero_points: vec![tensor_quant.map_or(0, |q| q.zero_point)],
                shapes: vec![input_shape.to_vec()],
            },
            output_scale,
            scales: vec![tensor_quant.map(|q| q.scale)],
            index_inputs: index_inputs.to_vec(),
        })
    }

    /// Shapes of the tensors so far (index = tensor id).
    pub fn shapes(&self) -> &[Vec<u32>] {
        &self.a.shapes
    }

    /// Checks the next node (all its checks, in SPEC order) and records its analysis.
    pub fn node(&mut self, n: &Node) -> Result<(), ModelError> {
        let i = self.a.costs.len();
        n.check_ids(i, &self.index_inputs)?;
        let a = &mut self.a;
        let shape = output_shape(i, n, &a.shapes)?;
        let out_elems = numel(&shape);
        let checked = n.check(i, &a.zero_points, &a.shapes, &shape)?;
        let (zp, params) = (checked.zero_point, checked.params);
        let cost = n.cost(&a.shapes, &shape);
        a.total.macs += cost.macs;
        a.total.elems += cost.elems;
        a.prepared += n.prepared_elems();
        a.streamed += n.streamed_elems();
        a.params += params;
        self.activations += out_elems;
        a.costs.push(cost);
        a.zero_points.push(zp);
        a.shapes.push(shape);
        let scale = n.fixed_scale(&self.scales);
        self.scales.push(scale);
        Ok(())
    }

    /// Whole-model checks, after the last node: the declared output scale, then the limits
    /// on total MACs, elementwise steps and activation elements.
    fn finish(self) -> Result<Analysis, ModelError> {
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

    /// [`Validator::finish`] for `model`, whose header and nodes were fed to this validator.
    pub(crate) fn finish_with(self, model: Model) -> Result<ValidModel, ModelError> {
        let analysis = self.finish()?;
        Ok(ValidModel { model, analysis })
    }
}

pub use crate::ops::add::ADD_LEFT_SHIFT;
pub use crate::ops::softmax::{SOFTMAX_SCALE, SOFTMAX_ZERO_POINT};
