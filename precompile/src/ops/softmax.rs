//! Softmax (SPEC §3.10, tag 0x0A): integer softmax over the last axis. `exp_table[d]`
//! approximates `exp(−d · scale) · 2^16` for `d = max − x`; the output has scale 1/256 and
//! zero point −128.

use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::EngineTensor;
use crate::error::{Code, ModelError};
use crate::model::{Scale, TensorId};
use crate::validate::numel;

const TAG: u8 = 0x0A;

/// Softmax outputs probabilities with scale 1/256 and this zero point.
pub const SOFTMAX_ZERO_POINT: i8 = -128;
/// Softmax's output scale, 1/256 = 2^30 · 2^(−7 − 31).
pub const SOFTMAX_SCALE: Scale = Scale {
    mult: 1 << 30,
    shift: -7,
};
/// Elements charged per element: the row's maximum, the table lookup written, the sum, the
/// rounded division by the sum, zero point and clamp — three passes over the row, one with an
/// int64 division (measured ~8–10 ns per element on long rows, so 5: 1 gas).
pub const SOFTMAX_PASSES: u64 = 5;
/// Extra elements charged per row (its loops' setup and the division's latency on short
/// rows): rows of 2 measured ~14 ns per element, i.e. ~8 ns per row above the passes.
pub const SOFTMAX_ROW_ELEMS: u64 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Softmax {
    pub input: TensorId,
    pub exp_table: Box<[u16; 256]>,
}

pub struct Prepared {
    input: TensorId,
    table: [i64; 256],
}

impl Op for Softmax {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "Softmax"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        let input = r.tensor(shapes)?;
        let mut exp_table = [0u16; 256];
        for e in &mut exp_table {
            *e = r.u16()?;
        }
        Ok(Softmax {
            input,
            exp_table: Box::new(exp_table),
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        for v in self.exp_table.iter() {
            w.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn output_shape(&self, _: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        Ok(shapes[self.input as usize].clone())
    }

    fn check(
        &self,
        node: usize,
        _: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        if self.exp_table[0] == 0 {
            return Err(ModelError::at(
                Code::ExpTableZero,
                node,
                "exp_table[0] (the maximum's weight) must be at least 1",
            ));
        }
        Ok(Checked {
            zero_point: SOFTMAX_ZERO_POINT,
            params: 256,
        })
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        Some(SOFTMAX_SCALE)
    }

    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        let n_out = numel(out);
        let rows = n_out / *out.last().unwrap_or(&1) as u64;
        Cost {
            macs: 0,
            elems: SOFTMAX_PASSES * n_out + SOFTMAX_ROW_ELEMS * rows,
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let x = cx.value(self.input);
        let l = *cx.shape(self.input).last().unwrap_or(&1) as usize;
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks(l) {
            let max = row.iter().copied().max().unwrap_or_default() as i32;
            let e: Vec<i64> = row
                .iter()
                .map(|&v| self.exp_table[(max - v as i32) as usize] as i64)
                .collect();
            let sum: i64 = e.iter().sum();
            for ei in e {
                let p = crate::quant::div_round(256 * ei, sum) + SOFTMAX_ZERO_POINT as i64;
                y.push(p.clamp(-128, 127) as i8);
            }
        }
        y
    }

    fn prepare(&self) -> Prepared {
        Prepared {
            input: self.input,
            table: self.exp_table.map(|v| v as i64),
        }
    }

    /// Row by row: the maximum, the weights `exp_table[max − x]` (written into the output,
    /// `max − x` is in 0..=255 for int8 values), their sum (at least `exp_table[0]` ≥ 1), then
    /// `DIVROUND(256 · e, sum)`.
    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let l = *cx.shape(p.input).last().unwrap_or(&1) as usize;
        crate::host::unary(cx.value(p.input), &|x| {
            let mut y = Vec::with_capacity(x.len());
            for row in x.chunks(l) {
                let max = row.iter().copied().max().unwrap_or_default();
                let start = y.len();
                y.extend(row.iter().map(|&v| p.table[((max - v) & 0xFF) as usize]));
                let e = &mut y[start..];
                let sum: i64 = e.iter().sum();
                for v in e {
                    let q = crate::quant::div_round(256 * *v, sum) + SOFTMAX_ZERO_POINT as i64;
                    *v = q.clamp(-128, 127);
                }
            }
            y
        })
    }
}

#[cfg(feature = "testkit")]
impl Softmax {
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId) -> Self {
        Softmax {
            input: cur,
            exp_table: Box::new(crate::random::exp_table(rng)),
        }
    }
}
