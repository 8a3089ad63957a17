//! Resize (SPEC §3.2, tag 0x13): nearest-neighbour upsampling of a `[C, H, W]` map by integer
//! factors, `y[c][r][s] = x[c][r / fh][s / fw]`. Keeps its input's quantization.

use super::{input_scale, layout, Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::EngineTensor;
use crate::error::{Code, ModelError};
use crate::model::{Scale, TensorId};
use crate::validate::{checked_elems, expect_rank, numel};

const TAG: u8 = 0x13;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resize {
    pub input: TensorId,
    /// `[fh, fw]`, each ≥ 1, not both 1.
    pub factors: [u16; 2],
}

impl Op for Resize {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Resize;

    fn name(&self) -> &'static str {
        "Resize"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(Resize {
            input: r.tensor(shapes)?,
            factors: [r.u16()?, r.u16()?],
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        for f in self.factors {
            w.extend_from_slice(&f.to_le_bytes());
        }
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let x = &shapes[self.input as usize];
        expect_rank(node, x, 3)?;
        let [fh, fw] = self.factors;
        if fh == 0 || fw == 0 {
            return Err(ModelError::at(
                Code::ZeroKernelOrStride,
                node,
                format!("factors {fh}×{fw} must be at least 1"),
            ));
        }
        if (fh, fw) == (1, 1) {
            return Err(ModelError::at(
                Code::IdentityNotCanonical,
                node,
                "factors 1×1 (no node is the canonical encoding)",
            ));
        }
        let big = |d: u32, f: u16| (d as u64 * f as u64).min(u32::MAX as u64) as u32;
        let out = vec![x[0], big(x[1], fh), big(x[2], fw)];
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

    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        Cost {
            macs: 0,
            elems: layout::GATHER_PASSES * numel(out),
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let x = cx.value(self.input);
        let [c, h, w] = [0, 1, 2].map(|a| cx.shape(self.input)[a] as usize);
        let [fh, fw] = self.factors.map(|f| f as usize);
        let mut y = Vec::with_capacity(c * h * fh * w * fw);
        for ch in 0..c {
            for r in 0..h * fh {
                for s in 0..w * fw {
                    y.push(x[(ch * h + r / fh) * w + s / fw]);
                }
            }
        }
        y
    }

    fn prepare(&self) -> Resize {
        self.clone()
    }

    /// One copy in rank 4: output row `r` reads input row `r / fh`, column `s` column `s / fw`.
    fn run(p: &Resize, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let [c, h, w] = [0, 1, 2].map(|a| cx.shape(p.input)[a] as usize);
        let [fh, fw] = p.factors.map(|f| f as usize);
        let o = [
            vec![0],
            layout::stepped(c, 0, h * w),
            (0..h * fh).map(|r| r / fh * w).collect(),
            (0..w * fw).map(|s| s / fw).collect(),
        ];
        crate::host::unary(cx.value(p.input), &|x| layout::gather4(x, &o, 0))
    }
}

#[cfg(feature = "testkit")]
impl Resize {
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId) -> Self {
        let mut factors = [rng.range(1, 3) as u16, rng.range(1, 3) as u16];
        if factors == [1, 1] {
            factors[1] = 2;
        }
        Resize {
            input: cur,
            factors,
        }
    }
}
