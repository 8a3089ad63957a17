//! MatMul of two activations (SPEC §3.2, tag 0x14), batched over leading axes: attention's
//! `Q · Kᵀ` and `A · V`. `a: [..., M, K]`, `b: [..., K, N]` with equal leading axes;
//! `acc = Σ_k (a[m][k] − zp(a)) · (b[k][n] − zp(b))` (int32), `y = REQUANT(acc, output, 0)`.

use super::layer::Output;
use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::{Cost, GEMM_OUT_PASSES, PACK_PASSES};
use crate::engine::EngineTensor;
use crate::error::{Code, ModelError};
use crate::gemm::{gemm, lhs_len, packed_len, padded_macs, padded_outputs, Epilogue, Lhs, Packed};
use crate::model::{Scale, TensorId};
use crate::ops::mul::MAX_PRODUCT;
use crate::validate::checked_elems;

const TAG: u8 = 0x14;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatMul {
    pub a: TensorId,
    pub b: TensorId,
    pub out: Output,
}

pub struct Prepared {
    matmul: MatMul,
}

/// `[batch, M, K, N]` of valid operand shapes.
fn dims(a: &[u32], b: &[u32]) -> [usize; 4] {
    let r = a.len();
    let batch = a[..r - 2].iter().map(|&d| d as usize).product();
    [
        batch,
        a[r - 2] as usize,
        a[r - 1] as usize,
        b[r - 1] as usize,
    ]
}

impl Op for MatMul {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "MatMul"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.a, self.b]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(MatMul {
            a: r.tensor(shapes)?,
            b: r.tensor(shapes)?,
            out: Output::read(r, 1)?,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.a.to_le_bytes());
        w.extend_from_slice(&self.b.to_le_bytes());
        self.out.write(w);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let (a, b) = (&shapes[self.a as usize], &shapes[self.b as usize]);
        let r = a.len();
        let fits = r >= 2 && b.len() == r && a[..r - 2] == b[..r - 2] && a[r - 1] == b[r - 2];
        if !fits {
            return Err(ModelError::at(
                Code::MatMulShapeMismatch,
                node,
                format!("{a:?} × {b:?} (need [..., M, K] × [..., K, N])"),
            ));
        }
        self.out.expect_single(node, "MatMul")?;
        let mut out = a.clone();
        out[r - 1] = b[r - 1];
        checked_elems(node, &out)?;
        Ok(out)
    }

    /// The multiplier, the clamp, then that `|acc| ≤ 65025 · K` survives requantization.
    fn check(
        &self,
        node: usize,
        _: &[i8],
        shapes: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        self.out.check_single(node)?;
        let k = *shapes[self.a as usize].last().unwrap_or(&1) as u64;
        self.out.bounded(node, MAX_PRODUCT * k)
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    /// Both zero points and casts (2 passes over each operand), `b` copied transposed so
    /// that every dot product walks two contiguous rows, the product and its requantization.
    fn cost(&self, shapes: &[Vec<u32>], _: &[u32]) -> Cost {
        let (a, b) = (&shapes[self.a as usize], &shapes[self.b as usize]);
        let [batch, m, k, n] = dims(a, b);
        let [batch, m, k, n] = [batch, m, k, n].map(|d| d as u64);
        Cost {
            macs: batch.saturating_mul(padded_macs(m, k, n)),
            elems: batch.saturating_mul(
                lhs_len(m, k)
                    + PACK_PASSES * packed_len(k, n)
                    + GEMM_OUT_PASSES * padded_outputs(m, n),
            ),
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let (xa, xb) = (cx.value(self.a), cx.value(self.b));
        let (za, zb) = (cx.zp(self.a) as i32, cx.zp(self.b) as i32);
        let [batch, m, k, n] = dims(cx.shape(self.a), cx.shape(self.b));
        let mut y = Vec::with_capacity(batch * m * n);
        for t in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    let acc: i32 = (0..k)
                        .map(|p| {
                            (xa[(t * m + i) * k + p] as i32 - za)
                                * (xb[(t * k + p) * n + j] as i32 - zb)
                        })
                        .sum();
                    y.push(self.out.apply(acc, 0));
                }
            }
        }
        y
    }

    fn prepare(&self) -> Prepared {
        Prepared {
            matmul: self.clone(),
        }
    }

    /// Per batch entry, `(a − za) · (b − zb)` with `b`'s matrix packed as it is read.
    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let mm = &p.matmul;
        let [batch, m, k, n] = dims(cx.shape(mm.a), cx.shape(mm.b));
        let (za, zb) = (cx.zp(mm.a) as i64, cx.zp(mm.b) as i64);
        crate::host::binary(cx.value(mm.a), cx.value(mm.b), &|a, b| {
            let mut y = vec![0; batch * m * n];
            for t in 0..batch {
                let lhs = Lhs::from_rows(&a[t * m * k..], m, k, za);
                let rhs = Packed::from_rows(k, n, |kk, row| {
                    for (v, &x) in row.iter_mut().zip(&b[(t * k + kk) * n..][..n]) {
                        *v = (x - zb) as i16;
                    }
                });
                let epilogue = Epilogue {
                    out: &mm.out,
                    bias: &[],
                    channels_on_rows: false,
                    channel_offset: 0,
                    row_stride: n,
                    offset: t * m * n,
                };
                gemm(&lhs, &rhs, &epilogue, &mut y);
            }
            y
        })
    }
}

#[cfg(feature = "testkit")]
impl MatMul {
    /// Tensor `cur` (`[..., M, K]`) times an earlier tensor of shape `[..., K, N]`, if any.
    pub fn random(
        rng: &mut crate::random::Rng,
        cur: TensorId,
        shape: &[u32],
        shapes: &[Vec<u32>],
    ) -> Option<Self> {
        let r = shape.len();
        if r < 2 {
            return None;
        }
        let fits: Vec<usize> = (0..shapes.len())
            .filter(|&i| {
                let s = &shapes[i];
                s.len() == r && s[..r - 2] == shape[..r - 2] && s[r - 2] == shape[r - 1]
            })
            .collect();
        if fits.is_empty() {
            return None;
        }
        let b = fits[rng.range(0, fits.len() as i64 - 1) as usize] as TensorId;
        let k = shape[r - 1] as f64;
        let typical = (4096.0 * k.sqrt()).log2().ceil() as i64;
        let out = crate::random::single_output(rng, -typical - 1, -typical + 2);
        Some(MatMul { a: cur, b, out })
    }
}
