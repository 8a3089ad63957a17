//! Reductions over one axis, which stays with size 1 (ONNX `keepdims = 1`; a Reshape drops
//! it). ReduceSum (SPEC §3.2, tag 0x11) requantizes the int32 sum of `x − zp(x)`, so it is
//! also ReduceMean (the converter folds `1 / L` into the multiplier); ReduceMax (tag 0x12)
//! keeps its input's quantization.

use super::layer::Output;
use super::{input_scale, Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::{Cost, REQUANT_PASSES};
use crate::engine::{EngineTensor, Requantizer};
use crate::error::{Code, ModelError};
use crate::model::{Scale, TensorId};
use crate::validate::numel;

const TAG_SUM: u8 = 0x11;
const TAG_MAX: u8 = 0x12;

/// Elements charged per input element: read and combined into its lane's running value.
pub const REDUCE_INPUT_PASSES: u64 = 2;
/// Elements charged per output element: its lane's setup and store (short lanes cost more
/// than their elements: lanes of 2 measured ~11 ns per lane).
pub const REDUCE_LANE_ELEMS: u64 = 4;

/// The engine's reduction of `x`'s `[outer, L, inner]` lanes: for each outer index, the
/// first row of `inner` values combined with the next `L − 1` in turn, so every pass reads a
/// contiguous row whatever the axis (a lane itself when the axis is last).
fn reduce_rows(x: &[i64], [outer, l, inner]: [usize; 3], f: impl Fn(i64, i64) -> i64) -> Vec<i64> {
    let mut y = Vec::with_capacity(outer * inner);
    if inner == 1 {
        y.extend(
            x.chunks_exact(l)
                .map(|lane| lane.iter().copied().reduce(&f).unwrap_or(0)),
        );
        return y;
    }
    for block in x.chunks_exact(l * inner) {
        let start = y.len();
        y.extend_from_slice(&block[..inner]);
        for row in block[inner..].chunks_exact(inner) {
            for (acc, &v) in y[start..].iter_mut().zip(row) {
                *acc = f(*acc, v);
            }
        }
    }
    y
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReduceSum {
    pub input: TensorId,
    pub axis: u8,
    pub out: Output,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReduceMax {
    pub input: TensorId,
    pub axis: u8,
}

pub struct PreparedSum {
    input: TensorId,
    axis: u8,
    out: Requantizer,
}

/// `[outer, L, inner]` of `shape` around `axis`.
fn split(shape: &[u32], axis: u8) -> [usize; 3] {
    let a = axis as usize;
    let p = |s: &[u32]| s.iter().map(|&d| d as usize).product::<usize>();
    [p(&shape[..a]), shape[a] as usize, p(&shape[a + 1..])]
}

fn output_shape(node: usize, shape: &[u32], axis: u8) -> Result<Vec<u32>, ModelError> {
    if axis as usize >= shape.len() {
        return Err(ModelError::at(
            Code::BadAxis,
            node,
            format!("axis {axis} of a rank-{} tensor", shape.len()),
        ));
    }
    let mut out = shape.to_vec();
    out[axis as usize] = 1;
    Ok(out)
}

/// Cost of reducing `shape` over `axis` (contiguous rows whatever the axis, no copy), with
/// `out_passes` more per output.
fn reduce_cost(shape: &[u32], out: &[u32], out_passes: u64) -> Cost {
    Cost {
        macs: 0,
        elems: REDUCE_INPUT_PASSES * numel(shape) + (REDUCE_LANE_ELEMS + out_passes) * numel(out),
    }
}

/// Reads the `[outer, L, inner]` lanes of `x` and folds each.
fn fold(
    x: &[i8],
    [outer, l, inner]: [usize; 3],
    f: impl Fn(&mut dyn Iterator<Item = i8>) -> i8,
) -> Vec<i8> {
    let mut y = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            y.push(f(&mut (0..l).map(|k| x[(o * l + k) * inner + i])));
        }
    }
    y
}

impl Op for ReduceSum {
    const TAGS: &'static [u8] = &[TAG_SUM];
    type Prepared = PreparedSum;

    fn name(&self) -> &'static str {
        "ReduceSum"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(ReduceSum {
            input: r.tensor(shapes)?,
            axis: r.u8()?,
            out: Output::read(r, 1)?,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG_SUM);
        w.extend_from_slice(&self.input.to_le_bytes());
        w.push(self.axis);
        self.out.write(w);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let out = output_shape(node, &shapes[self.input as usize], self.axis)?;
        self.out.expect_single(node, "ReduceSum")?;
        Ok(out)
    }

    /// The multiplier, the clamp, then that `|Σ| ≤ 255 · L` survives requantization.
    fn check(
        &self,
        node: usize,
        _: &[i8],
        shapes: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        self.out.check_single(node)?;
        let l = shapes[self.input as usize][self.axis as usize] as u64;
        self.out.bounded(node, 255 * l)
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    /// The sums, then each requantized.
    fn cost(&self, shapes: &[Vec<u32>], out: &[u32]) -> Cost {
        reduce_cost(&shapes[self.input as usize], out, REQUANT_PASSES)
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let zx = cx.zp(self.input) as i32;
        let dims = split(cx.shape(self.input), self.axis);
        fold(cx.value(self.input), dims, |lane| {
            self.out.apply(lane.map(|x| x as i32 - zx).sum(), 0)
        })
    }

    fn prepare(&self) -> PreparedSum {
        PreparedSum {
            input: self.input,
            axis: self.axis,
            out: Requantizer::new(&self.out),
        }
    }

    /// `Σ (x − zp) = Σ x − L · zp`, exact in int64.
    fn run(p: &PreparedSum, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let dims = split(cx.shape(p.input), p.axis);
        let offset = dims[1] as i64 * cx.zp(p.input) as i64;
        crate::host::unary(cx.value(p.input), &|x| {
            let mut y = reduce_rows(x, dims, |acc, v| acc + v);
            for v in &mut y {
                *v = p.out.apply(*v - offset, 0);
            }
            y
        })
    }
}

impl Op for ReduceMax {
    const TAGS: &'static [u8] = &[TAG_MAX];
    type Prepared = ReduceMax;

    fn name(&self) -> &'static str {
        "ReduceMax"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(ReduceMax {
            input: r.tensor(shapes)?,
            axis: r.u8()?,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG_MAX);
        w.extend_from_slice(&self.input.to_le_bytes());
        w.push(self.axis);
    }

    /// The axis, then that it has more than one element (over one element the maximum is
    /// the input itself: no node is the canonical encoding).
    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let x = &shapes[self.input as usize];
        let out = output_shape(node, x, self.axis)?;
        if x[self.axis as usize] == 1 {
            return Err(ModelError::at(
                Code::IdentityNotCanonical,
                node,
                format!("the maximum over axis {} of size 1", self.axis),
            ));
        }
        Ok(out)
    }

    fn check(
        &self,
        _: usize,
        zps: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        Ok(Checked::keeps_input(zps, self.input))
    }

    fn fixed_scale(&self, scales: &[Option<Scale>]) -> Option<Scale> {
        input_scale(scales, self.input)
    }

    fn cost(&self, shapes: &[Vec<u32>], out: &[u32]) -> Cost {
        reduce_cost(&shapes[self.input as usize], out, 0)
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let dims = split(cx.shape(self.input), self.axis);
        fold(cx.value(self.input), dims, |lane| {
            lane.max()
                .unwrap_or_else(|| unreachable!("an axis has at least one element"))
        })
    }

    fn prepare(&self) -> ReduceMax {
        self.clone()
    }

    fn run(p: &ReduceMax, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let dims = split(cx.shape(p.input), p.axis);
        crate::host::unary(cx.value(p.input), &|x| reduce_rows(x, dims, i64::max))
    }
}

#[cfg(feature = "testkit")]
impl ReduceSum {
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId, shape: &[u32]) -> Self {
        let axis = rng.range(0, shape.len() as i64 - 1) as u8;
        // |Σ| ≤ 255 · L: shift right by about log2 of the lane's typical sum.
        let typical = (64.0 * (shape[axis as usize] as f64).sqrt()).log2().ceil() as i64;
        ReduceSum {
            input: cur,
            axis,
            out: crate::random::single_output(rng, -typical - 1, -typical + 2),
        }
    }
}

#[cfg(feature = "testkit")]
impl ReduceMax {
    /// The maximum over a random axis longer than 1, if there is one.
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId, shape: &[u32]) -> Option<Self> {
        let long: Vec<usize> = (0..shape.len()).filter(|&a| shape[a] > 1).collect();
        if long.is_empty() {
            return None;
        }
        let axis = long[rng.range(0, long.len() as i64 - 1) as usize] as u8;
        Some(ReduceMax { input: cur, axis })
    }
}
