//! Concat (SPEC §3.2, tag 0x0E): joins 2 or more tensors along one axis. Each input is first
//! requantized exactly to the output's scale and zero point,
//! `y = clamp(MBQ(x − zp(x), requant) + zero_point, −128, 127)` (a requant of `(2^30, 1)` with
//! equal zero points copies), so branches with different scales join without float.
//!
//! The engine writes each input, requantized, straight into its blocks of the joined output:
//! one kernel call per input through the backend extension ([`host::visit`]), no per-input
//! tensor and no `Tensor::cat`.

use std::cell::RefCell;

use super::layer::put_scale;
use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::{self, EngineTensor, Rescale, WIDE};
use crate::error::{Code, ModelError};
use crate::host;
use crate::model::{Requant, Scale, TensorId};
use crate::quant::mbq;
use crate::validate::{check_requant, checked_elems, numel, requant_bound};

const TAG: u8 = 0x0E;

/// Passes per output element: the zeroed output buffer, then the read, requantization, clamp
/// and write of the value into its block (what the other kernels charge per output they
/// requantize).
pub const CONCAT_PASSES: u64 = 5;
/// Elements charged per input for its own kernel call (dispatch, the lent input, the empty
/// result): one `KERNEL_NODE` (100 gas) each, as if every input were a node of its own.
pub const CONCAT_INPUT_ELEMS: u64 = 500;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Concat {
    /// The inputs with the multiplier taking each to the output scale.
    pub inputs: Vec<(TensorId, Requant)>,
    pub axis: u8,
    pub zero_point: i8,
}

pub struct Prepared {
    concat: Concat,
    requants: Vec<Rescale>,
}

impl Op for Concat {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "Concat"
    }

    fn inputs(&self) -> Vec<TensorId> {
        self.inputs.iter().map(|&(id, _)| id).collect()
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        let n = r.u8()? as usize;
        let inputs = (0..n)
            .map(|_| Ok((r.tensor(shapes)?, r.scale()?)))
            .collect::<Result<_, ModelError>>()?;
        Ok(Concat {
            inputs,
            axis: r.u8()?,
            zero_point: r.i8()?,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.push(self.inputs.len() as u8);
        for (id, rq) in &self.inputs {
            w.extend_from_slice(&id.to_le_bytes());
            put_scale(w, *rq);
        }
        w.push(self.axis);
        w.push(self.zero_point as u8);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let mismatch =
            |detail: String| Err(ModelError::at(Code::ConcatShapeMismatch, node, detail));
        if self.inputs.len() < 2 {
            return mismatch(format!(
                "{} input(s); Concat joins at least 2",
                self.inputs.len()
            ));
        }
        let first = &shapes[self.inputs[0].0 as usize];
        let axis = self.axis as usize;
        if axis >= first.len() {
            return Err(ModelError::at(
                Code::BadAxis,
                node,
                format!("axis {axis} of a rank-{} tensor", first.len()),
            ));
        }
        let mut out = first.clone();
        for &(id, _) in &self.inputs[1..] {
            let s = &shapes[id as usize];
            let same = s.len() == first.len()
                && s.iter()
                    .zip(first)
                    .enumerate()
                    .all(|(a, (x, y))| a == axis || x == y);
            if !same {
                return mismatch(format!("{s:?} cannot join {first:?} on axis {axis}"));
            }
            out[axis] = out[axis].saturating_add(s[axis]);
        }
        checked_elems(node, &out)?;
        Ok(out)
    }

    /// Each multiplier, then that `|x − zp| ≤ 255` survives it (§4.3).
    fn check(
        &self,
        node: usize,
        _: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        for &(_, rq) in &self.inputs {
            check_requant(node, rq)?;
        }
        for &(_, rq) in &self.inputs {
            requant_bound(node, 255, rq, self.zero_point)?;
        }
        Ok(Checked {
            zero_point: self.zero_point,
            params: 0,
        })
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        Cost {
            macs: 0,
            elems: CONCAT_PASSES * numel(out) + CONCAT_INPUT_ELEMS * self.inputs.len() as u64,
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let axis = self.axis as usize;
        let out_shape = cx.out_shape();
        let outer: usize = out_shape[..axis].iter().map(|&d| d as usize).product();
        let parts: Vec<(Vec<i8>, usize)> = self
            .inputs
            .iter()
            .map(|&(id, rq)| {
                let zx = cx.zp(id) as i32;
                let y = cx.value(id).iter().map(|&x| {
                    let v = mbq(x as i32 - zx, rq)
                        .unwrap_or_else(|| unreachable!("validation bounds the lifted input"));
                    (v + self.zero_point as i32).clamp(-128, 127) as i8
                });
                // Elements of one outer index: the axis and everything after it.
                let block = cx.shape(id)[axis..].iter().map(|&d| d as usize).product();
                (y.collect(), block)
            })
            .collect();
        let mut y = Vec::with_capacity(numel(out_shape) as usize);
        for o in 0..outer {
            for (values, block) in &parts {
                y.extend_from_slice(&values[o * block..(o + 1) * block]);
            }
        }
        y
    }

    fn prepare(&self) -> Prepared {
        Prepared {
            concat: self.clone(),
            requants: self
                .inputs
                .iter()
                .map(|&(_, rq)| Rescale::new(rq))
                .collect(),
        }
    }

    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let c = &p.concat;
        let axis = c.axis as usize;
        let out_shape = cx.out_shape();
        let len = numel(out_shape) as usize;
        // Output elements of one outer index: every input's block, side by side.
        let row: usize = out_shape[axis..].iter().map(|&d| d as usize).product();
        let out = RefCell::new(vec![0i64; len]);
        let mut offset = 0;
        for (&(id, _), &rq) in c.inputs.iter().zip(&p.requants) {
            let block: usize = cx.shape(id)[axis..].iter().map(|&d| d as usize).product();
            let (zx, zy) = (cx.zp(id) as i64, c.zero_point as i64);
            host::visit(cx.value(id), &|x| {
                let mut y = out.borrow_mut();
                for o in 0..len / row {
                    let src = &x[o * block..(o + 1) * block];
                    let dst = &mut y[o * row + offset..o * row + offset + block];
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = (rq.apply(v - zx) + zy).clamp(-128, 127);
                    }
                }
            });
            offset += block;
        }
        engine::tensor(out.into_inner(), [len], WIDE)
    }
}

#[cfg(feature = "testkit")]
impl Concat {
    /// Tensor `cur` joined with itself or an earlier tensor that fits, on a random axis.
    pub fn random(
        rng: &mut crate::random::Rng,
        cur: TensorId,
        shape: &[u32],
        shapes: &[Vec<u32>],
    ) -> Self {
        let axis = rng.range(0, shape.len() as i64 - 1) as usize;
        let fits: Vec<usize> = (0..shapes.len())
            .filter(|&i| {
                let s = &shapes[i];
                s.len() == shape.len()
                    && s.iter()
                        .zip(shape)
                        .enumerate()
                        .all(|(a, (x, y))| a == axis || x == y)
            })
            .collect();
        let other = fits[rng.range(0, fits.len() as i64 - 1) as usize] as TensorId;
        let rq = |rng: &mut crate::random::Rng| crate::random::requant(rng, -2, 1);
        Concat {
            inputs: vec![(cur, rq(rng)), (other, rq(rng))],
            axis: axis as u8,
            zero_point: rng.i8(),
        }
    }
}
