//! Slice (SPEC §3.2, tag 0x0C): per axis, the elements `start, start + step, …` below `end`.
//! Keeps its input's quantization.

use super::{input_scale, layout, Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::EngineTensor;
use crate::error::{Code, ModelError};
use crate::model::{Scale, TensorId};
use crate::validate::{expect_rank, numel};

const TAG: u8 = 0x0C;

/// One axis of a slice: elements `start + k · step` for `k < ⌈(end − start) / step⌉`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: u32,
    /// Exclusive, and tight: one past the last element taken (the canonical encoding).
    pub end: u32,
    pub step: u32,
}

impl Range {
    fn len(&self) -> u32 {
        (self.end - self.start).div_ceil(self.step)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slice {
    pub input: TensorId,
    /// One range per input axis.
    pub axes: Vec<Range>,
}

impl Op for Slice {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Slice;

    fn name(&self) -> &'static str {
        "Slice"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        let input = r.tensor(shapes)?;
        let rank = r.u8()? as usize;
        r.reserve(rank, 12)?;
        let axes = (0..rank)
            .map(|_| {
                Ok(Range {
                    start: r.u32()?,
                    end: r.u32()?,
                    step: r.u32()?,
                })
            })
            .collect::<Result<_, ModelError>>()?;
        Ok(Slice { input, axes })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        w.push(self.axes.len() as u8);
        for a in &self.axes {
            for v in [a.start, a.end, a.step] {
                w.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let x = &shapes[self.input as usize];
        expect_rank(node, x, self.axes.len())?;
        for (axis, (r, &dim)) in self.axes.iter().zip(x).enumerate() {
            let ok = r.step >= 1
                && r.start < r.end
                && r.end <= dim
                && r.end == r.start + (r.len() - 1) * r.step + 1;
            if !ok {
                return Err(ModelError::at(
                    Code::BadSlice,
                    node,
                    format!(
                        "axis {axis} of size {dim}: start {} end {} step {} (need step ≥ 1, \
                         start < end ≤ size, end one past the last element taken)",
                        r.start, r.end, r.step
                    ),
                ));
            }
        }
        if self.axes.iter().zip(x).all(|(r, &d)| r.len() == d) {
            return Err(ModelError::at(
                Code::IdentityNotCanonical,
                node,
                "the slice takes every element (no node is the canonical encoding)",
            ));
        }
        Ok(self.axes.iter().map(Range::len).collect())
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

    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        Cost {
            macs: 0,
            elems: layout::GATHER_PASSES * numel(out),
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let x = cx.value(self.input);
        let strides = layout::strides(cx.shape(self.input));
        layout::indices(cx.out_shape())
            .map(|idx| {
                let at = idx.iter().zip(&self.axes).zip(&strides);
                x[at.map(|((&i, r), s)| (r.start as usize + i * r.step as usize) * s)
                    .sum::<usize>()]
            })
            .collect()
    }

    fn prepare(&self) -> Slice {
        self.clone()
    }

    /// One copy in rank 4 of the elements taken, and only those.
    fn run(p: &Slice, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let dims = layout::dims4(cx.shape(p.input));
        let strides = layout::strides4(dims);
        let lead = 4 - p.axes.len();
        let o = std::array::from_fn(|a| {
            if a < lead {
                vec![0]
            } else {
                let r = &p.axes[a - lead];
                let s = strides[a];
                layout::stepped(r.len() as usize, r.start as usize * s, r.step as usize * s)
            }
        });
        crate::host::unary(cx.value(p.input), &|x| layout::gather4(x, &o, 0))
    }
}

#[cfg(feature = "testkit")]
impl Slice {
    /// A random strided slice of tensor `cur` (not all of it).
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId, shape: &[u32]) -> Option<Self> {
        let axes: Vec<Range> = shape
            .iter()
            .map(|&d| {
                let start = rng.range(0, d as i64 - 1) as u32;
                let step = rng.range(1, 3) as u32;
                let n = rng.range(1, (d - start).div_ceil(step) as i64) as u32;
                Range {
                    start,
                    end: start + (n - 1) * step + 1,
                    step,
                }
            })
            .collect();
        let all = axes.iter().zip(shape).all(|(r, &d)| r.len() == d);
        (!all).then_some(Slice { input: cur, axes })
    }
}
