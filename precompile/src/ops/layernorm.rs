//! LayerNorm (SPEC §3.2, tag 0x15) over the last axis, in integers only (I-BERT's scheme,
//! with every rounding named). Per row of length `L`:
//!
//! ```text
//! d_i = x_i − zp(x);  S = Σ d_i;  c_i = L · d_i − S            (c_i = L · (x_i − mean))
//! V = Σ c_i² + epsilon;  R = ISQRT(V)                          (floor of the square root)
//! n_i = DIVROUND(c_i · 2^15, R)                                (|n_i| ≤ 2^15)
//! y_i = REQUANT(n_i · gamma_i + beta_i, output, 0)
//! ```
//!
//! `c_i / √(Σ c²)` is the normalized value divided by `√L`; the converter folds `√L`, the
//! float epsilon (as `epsilon = round(ε · L³ / s_x²)`) and the affine parameters' scales into
//! `gamma`, `beta` and the output multiplier.

use super::layer::Output;
use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::{Cost, REQUANT_PASSES};
use crate::engine::{EngineTensor, Requantizer};
use crate::error::{Code, ModelError};
use crate::model::{Scale, TensorId};
use crate::quant;
use crate::validate::{not_encodable, numel, requant_bound};

const TAG: u8 = 0x15;

/// Fraction bits of the normalized value `n_i`.
pub const NORM_BITS: u32 = 15;
/// Longest row: keeps `V ≤ L · (510 · L)² + epsilon` far inside int64 (SPEC §4.3).
pub const MAX_ROW: u32 = 4096;
/// Elements charged per element: the row sum, `c` written, its square summed, `DIVROUND` by
/// the root (an int64 division), `· gamma`, `+ beta`; plus requantization (measured ~21 ns
/// per element on rows of 1024: 2 gas).
pub const LAYERNORM_PASSES: u64 = 6 + REQUANT_PASSES;
/// Elements charged per row: the integer square root (Newton's iteration, up to ~40 int64
/// divisions) and the row's loops (rows of 2 measured ~40 ns per row above the passes; 19
/// gas leaves room for the root's longest iterations).
pub const LAYERNORM_ROW_ELEMS: u64 = 96;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerNorm {
    pub input: TensorId,
    /// Added to `Σ c²`; at least 1, so `R ≥ 1`.
    pub epsilon: u32,
    /// Per position of the last axis.
    pub gamma: Vec<i16>,
    pub beta: Vec<i32>,
    /// One multiplier (`per_channel` = 0): per-channel scales live in `gamma`.
    pub out: Output,
}

pub struct Prepared {
    input: TensorId,
    epsilon: i64,
    gamma: Vec<i64>,
    beta: Vec<i64>,
    out: Requantizer,
}

/// `⌊√v⌋` for `v ≥ 1`, by Newton's iteration on integers (exact; no float).
pub fn isqrt(v: i64) -> i64 {
    let (mut x, mut y) = (v, (v + 1) / 2);
    while y < x {
        x = y;
        y = (x + v / x) / 2;
    }
    x
}

impl Op for LayerNorm {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "LayerNorm"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        let input = r.tensor(shapes)?;
        let l = *r.input_shape(input, shapes)?.last().unwrap_or(&0) as usize;
        let epsilon = r.u32()?;
        r.reserve(l, 6)?;
        let gamma = (0..l)
            .map(|_| Ok(i16::from_le_bytes(r.array::<2>()?)))
            .collect::<Result<_, ModelError>>()?;
        let beta = (0..l).map(|_| r.i32()).collect::<Result<_, _>>()?;
        Ok(LayerNorm {
            input,
            epsilon,
            gamma,
            beta,
            out: Output::read(r, 1)?,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        w.extend_from_slice(&self.epsilon.to_le_bytes());
        for g in &self.gamma {
            w.extend_from_slice(&g.to_le_bytes());
        }
        for b in &self.beta {
            w.extend_from_slice(&b.to_le_bytes());
        }
        self.out.write(w);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let x = &shapes[self.input as usize];
        let l = *x.last().unwrap_or(&0);
        if l > MAX_ROW {
            return Err(ModelError::at(
                Code::TensorTooLarge,
                node,
                format!("a LayerNorm row of {l} elements exceeds {MAX_ROW}"),
            ));
        }
        let n = l as usize;
        if self.gamma.len() != n || self.beta.len() != n || self.out.requant.len() != 1 {
            return Err(not_encodable(
                node,
                format!(
                    "{} gamma, {} beta, {} multipliers for rows of {n}",
                    self.gamma.len(),
                    self.beta.len(),
                    self.out.requant.len()
                ),
            ));
        }
        Ok(x.clone())
    }

    /// The output multiplier, the clamp, `epsilon ≥ 1` (else a constant row has `R = 0`),
    /// then per position that `2^15 · |gamma| + |beta|` survives requantization.
    fn check(
        &self,
        node: usize,
        _: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        self.out.check_single(node)?;
        if self.epsilon == 0 {
            return Err(ModelError::at(
                Code::ZeroEpsilon,
                node,
                "epsilon 0: a constant row would divide by zero",
            ));
        }
        for (g, b) in self.gamma.iter().zip(&self.beta) {
            let bound = ((g.unsigned_abs() as u64) << NORM_BITS) + (*b as i64).unsigned_abs();
            requant_bound(node, bound, self.out.requant[0], self.out.zero_point)?;
        }
        Ok(Checked {
            zero_point: self.out.zero_point,
            params: 2 * self.gamma.len() as u64,
        })
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        let n = numel(out);
        let rows = n / *out.last().unwrap_or(&1) as u64;
        Cost {
            macs: 0,
            elems: LAYERNORM_PASSES * n + LAYERNORM_ROW_ELEMS * rows,
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let x = cx.value(self.input);
        let zx = cx.zp(self.input) as i64;
        let l = self.gamma.len();
        let mut y = Vec::with_capacity(x.len());
        for row in x.chunks(l) {
            let d: Vec<i64> = row.iter().map(|&v| v as i64 - zx).collect();
            let s: i64 = d.iter().sum();
            let c: Vec<i64> = d.iter().map(|&di| l as i64 * di - s).collect();
            let v: i64 = c.iter().map(|ci| ci * ci).sum::<i64>() + self.epsilon as i64;
            let r = isqrt(v);
            for (i, &ci) in c.iter().enumerate() {
                let n = quant::div_round(ci << NORM_BITS, r);
                let acc = n * self.gamma[i] as i64 + self.beta[i] as i64;
                y.push(self.out.apply(acc as i32, 0));
            }
        }
        y
    }

    fn prepare(&self) -> Prepared {
        Prepared {
            input: self.input,
            epsilon: self.epsilon as i64,
            gamma: self.gamma.iter().map(|&g| g as i64).collect(),
            beta: self.beta.iter().map(|&b| b as i64).collect(),
            out: Requantizer::new(&self.out),
        }
    }

    /// Row by row in the output buffer: `c` (from `S = Σ x − L · zp`), `V`, `R`, then each
    /// `c_i` replaced by its output.
    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let l = p.gamma.len();
        let zx = cx.zp(p.input) as i64;
        crate::host::unary(cx.value(p.input), &|x| {
            let mut y = Vec::with_capacity(x.len());
            for row in x.chunks_exact(l) {
                let s = row.iter().sum::<i64>() - l as i64 * zx;
                let start = y.len();
                y.extend(row.iter().map(|&v| l as i64 * (v - zx) - s));
                let c = &mut y[start..];
                let r = isqrt(c.iter().map(|ci| ci * ci).sum::<i64>() + p.epsilon);
                for (i, ci) in c.iter_mut().enumerate() {
                    let n = quant::div_round(*ci << NORM_BITS, r);
                    *ci = p.out.apply(n * p.gamma[i] + p.beta[i], 0);
                }
            }
            y
        })
    }
}

#[cfg(feature = "testkit")]
impl LayerNorm {
    /// A random LayerNorm over the last axis of tensor `cur`.
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId, shape: &[u32]) -> Option<Self> {
        let l = *shape.last()? as usize;
        if l as u32 > MAX_ROW {
            return None;
        }
        let gamma: Vec<i16> = (0..l).map(|_| rng.range(-4096, 4096) as i16).collect();
        let beta: Vec<i32> = (0..l)
            .map(|_| rng.range(-(1 << 22), 1 << 22) as i32)
            .collect();
        // |n · gamma| is about 2^15 / √L · 2^12: bring it near int8.
        let typical = (27.0 - (l as f64).log2() / 2.0).round() as i64;
        let out = crate::random::single_output(rng, -typical - 2, -typical + 1);
        let epsilon = rng.range(1, 1 << 16) as u32;
        Some(LayerNorm {
            input: cur,
            epsilon,
            gamma,
            beta,
            out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isqrt_is_the_floor_of_the_square_root() {
        for v in (1..5000i64).chain([1 << 40, (1 << 54) + 12345, i64::MAX / 4]) {
            let r = isqrt(v);
            assert!(r * r <= v && (r + 1) * (r + 1) > v, "{v}: {r}");
        }
    }
}
