//! Clamp (SPEC §3.7, tag 0x07): `y = clamp(x, min, max)`; ReLU is `min = zero_point`, ReLU6
//! also caps `max`. Keeps its input's quantization.

use super::{input_scale, Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::EngineTensor;
use crate::error::ModelError;
use crate::model::{Scale, TensorId};
use crate::validate::{check_act, numel};

const TAG: u8 = 0x07;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clamp {
    pub input: TensorId,
    pub min: i8,
    pub max: i8,
}

impl Op for Clamp {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Clamp;

    fn name(&self) -> &'static str {
        "Clamp"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(Clamp {
            input: r.tensor(shapes)?,
            min: r.i8()?,
            max: r.i8()?,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        w.extend_from_slice(&[self.min as u8, self.max as u8]);
    }

    fn output_shape(&self, _: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        Ok(shapes[self.input as usize].clone())
    }

    fn check(
        &self,
        node: usize,
        zps: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        check_act(node, self.min, self.max)?;
        Ok(Checked::keeps_input(zps, self.input))
    }

    fn fixed_scale(&self, scales: &[Option<Scale>]) -> Option<Scale> {
        input_scale(scales, self.input)
    }

    /// The input read and the output written (into fresh memory: ~4–6 ns per element on the
    /// reference machine, mostly page faults), as Lut.
    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        Cost {
            macs: 0,
            elems: 2 * numel(out),
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        cx.value(self.input)
            .iter()
            .map(|&x| x.clamp(self.min, self.max))
            .collect()
    }

    fn prepare(&self) -> Clamp {
        self.clone()
    }

    fn run(p: &Clamp, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let (min, max) = (p.min as i64, p.max as i64);
        crate::host::unary(cx.value(p.input), &|x| {
            x.iter().map(|&v| v.clamp(min, max)).collect()
        })
    }
}

#[cfg(feature = "testkit")]
impl Clamp {
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId) -> Self {
        let lo = rng.i8();
        Clamp {
            input: cur,
            min: lo,
            max: rng.range(lo as i64, 127) as i8,
        }
    }
}
