//! Lut (SPEC §3.9, tag 0x09): `y = table[x + 128]`, any elementwise function (sigmoid, tanh,
//! GELU, ...) as a 256-entry table with its own output zero point.

use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::EngineTensor;
use crate::error::ModelError;
use crate::model::{Scale, TensorId};
use crate::validate::numel;

const TAG: u8 = 0x09;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lut {
    pub input: TensorId,
    pub zero_point: i8,
    pub table: Box<[i8; 256]>,
}

pub struct Prepared {
    input: TensorId,
    table: [i64; 256],
}

impl Op for Lut {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "Lut"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        let input = r.tensor(shapes)?;
        let zero_point = r.i8()?;
        let table = r.array::<256>()?.map(|b| b as i8);
        Ok(Lut {
            input,
            zero_point,
            table: Box::new(table),
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        w.push(self.zero_point as u8);
        w.extend(self.table.iter().map(|&v| v as u8));
    }

    fn output_shape(&self, _: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        Ok(shapes[self.input as usize].clone())
    }

    fn check(&self, _: usize, _: &[i8], _: &[Vec<u32>], _: &[u32]) -> Result<Checked, ModelError> {
        Ok(Checked {
            zero_point: self.zero_point,
            params: 256,
        })
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    /// Offset by 128, gather.
    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        Cost {
            macs: 0,
            elems: 2 * numel(out),
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        cx.value(self.input)
            .iter()
            .map(|&x| self.table[(x as i32 + 128) as usize])
            .collect()
    }

    fn prepare(&self) -> Prepared {
        Prepared {
            input: self.input,
            table: self.table.map(|v| v as i64),
        }
    }

    /// An int8 value's low byte with its sign bit flipped is `x + 128`: the lookup cannot
    /// index outside the table.
    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        crate::host::unary(cx.value(p.input), &|x| {
            x.iter()
                .map(|&v| p.table[(v as u8 ^ 0x80) as usize])
                .collect()
        })
    }
}

#[cfg(feature = "testkit")]
impl Lut {
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId) -> Self {
        Lut {
            input: cur,
            zero_point: rng.i8(),
            table: Box::new(std::array::from_fn(|_| rng.i8())),
        }
    }
}
