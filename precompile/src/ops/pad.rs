//! Pad (SPEC §3.2, tag 0x0D): constant padding with the input's zero point (real zero) before
//! and after each axis. Keeps its input's quantization.

use super::{input_scale, layout, Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::EngineTensor;
use crate::error::{Code, ModelError};
use crate::limits::MAX_TENSOR_ELEMS;
use crate::model::{Scale, TensorId};
use crate::validate::{checked_elems, expect_rank, numel};

const TAG: u8 = 0x0D;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pad {
    pub input: TensorId,
    /// `(before, after)` per input axis; not all zero.
    pub pads: Vec<(u32, u32)>,
}

impl Pad {
    fn padded_axes(&self) -> u64 {
        self.pads.iter().filter(|&&p| p != (0, 0)).count() as u64
    }
}

impl Op for Pad {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Pad;

    fn name(&self) -> &'static str {
        "Pad"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        let input = r.tensor(shapes)?;
        let rank = r.u8()? as usize;
        r.reserve(rank, 8)?;
        let pads = (0..rank)
            .map(|_| Ok((r.u32()?, r.u32()?)))
            .collect::<Result<_, ModelError>>()?;
        Ok(Pad { input, pads })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        w.push(self.pads.len() as u8);
        for (b, a) in &self.pads {
            w.extend_from_slice(&b.to_le_bytes());
            w.extend_from_slice(&a.to_le_bytes());
        }
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let x = &shapes[self.input as usize];
        expect_rank(node, x, self.pads.len())?;
        if self.padded_axes() == 0 {
            return Err(ModelError::at(
                Code::IdentityNotCanonical,
                node,
                "no padding (no node is the canonical encoding)",
            ));
        }
        let mut out = Vec::with_capacity(x.len());
        for (&d, &(b, a)) in x.iter().zip(&self.pads) {
            let n = d as u64 + b as u64 + a as u64;
            if n > MAX_TENSOR_ELEMS {
                return Err(ModelError::at(
                    Code::TensorTooLarge,
                    node,
                    format!("a padded axis of {n} elements exceeds {MAX_TENSOR_ELEMS}"),
                ));
            }
            out.push(n as u32);
        }
        checked_elems(node, &out)?;
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

    /// One copy of the output, border included.
    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        Cost {
            macs: 0,
            elems: layout::GATHER_PASSES * numel(out),
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let (x, shape) = (cx.value(self.input), cx.shape(self.input));
        let strides = layout::strides(shape);
        let zp = cx.zp(self.input);
        layout::indices(cx.out_shape())
            .map(|idx| {
                let mut at = 0;
                for (a, &i) in idx.iter().enumerate() {
                    let (before, d) = (self.pads[a].0 as usize, shape[a] as usize);
                    if i < before || i >= before + d {
                        return zp; // padding holds the zero point
                    }
                    at += (i - before) * strides[a];
                }
                x[at]
            })
            .collect()
    }

    fn prepare(&self) -> Pad {
        self.clone()
    }

    /// One copy in rank 4: positions inside the input read it, the border reads the zero
    /// point.
    fn run(p: &Pad, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let dims = layout::dims4(cx.shape(p.input));
        let strides = layout::strides4(dims);
        let lead = 4 - p.pads.len();
        let o = std::array::from_fn(|a| {
            if a < lead {
                return vec![0];
            }
            let (before, after) = p.pads[a - lead];
            let (before, d) = (before as usize, dims[a]);
            (0..before + d + after as usize)
                .map(|i| {
                    if i < before || i >= before + d {
                        layout::OUTSIDE
                    } else {
                        (i - before) * strides[a]
                    }
                })
                .collect()
        });
        let zp = cx.zp(p.input) as i64;
        crate::host::unary(cx.value(p.input), &|x| layout::gather4(x, &o, zp))
    }
}

#[cfg(feature = "testkit")]
impl Pad {
    /// Random small padding of tensor `cur` (at least one element somewhere).
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId, rank: usize) -> Self {
        let mut pads: Vec<(u32, u32)> = (0..rank)
            .map(|_| (rng.range(0, 2) as u32, rng.range(0, 2) as u32))
            .collect();
        if pads.iter().all(|&p| p == (0, 0)) {
            pads[rank - 1].1 = 1;
        }
        Pad { input: cur, pads }
    }
}
