//! Mul (SPEC §3.2, tag 0x0F): elementwise quantized product,
//! `y = REQUANT((a − zp(a)) · (b − zp(b)), output, 0)`, with `b` broadcast to `a`'s shape
//! (NumPy rules, `b` aligned on the right: a scalar, a per-channel vector, or equal shapes).

use super::layer::Output;
use super::{layout, Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::{Cost, REQUANT_PASSES};
use crate::engine::{EngineTensor, Requantizer};
use crate::error::{Code, ModelError};
use crate::model::{Scale, TensorId};
use crate::validate::numel;

const TAG: u8 = 0x0F;

/// The largest `|(a − zp(a)) · (b − zp(b))|`.
pub const MAX_PRODUCT: u64 = 255 * 255;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mul {
    pub a: TensorId,
    /// Broadcast to `a`'s shape.
    pub b: TensorId,
    pub out: Output,
}

pub struct Prepared {
    a: TensorId,
    b: TensorId,
    out: Requantizer,
}

/// Whether `b` broadcasts to `a` (NumPy rules with `b` aligned on the right).
fn broadcasts(b: &[u32], a: &[u32]) -> bool {
    b.len() <= a.len()
        && b.iter()
            .rev()
            .zip(a.iter().rev())
            .all(|(&x, &y)| x == y || x == 1)
}

impl Op for Mul {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "Mul"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.a, self.b]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(Mul {
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
        if !broadcasts(b, a) {
            return Err(ModelError::at(
                Code::BroadcastMismatch,
                node,
                format!("{b:?} does not broadcast to {a:?}"),
            ));
        }
        self.out.expect_single(node, "Mul")?;
        Ok(a.clone())
    }

    fn check(
        &self,
        node: usize,
        _: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        self.out.check_single(node)?;
        self.out.bounded(node, MAX_PRODUCT)
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    /// Per output: both operands read (`b` in place through its broadcast strides), their
    /// zero points and product, then requantization: `2 · REQUANT_PASSES` (measured 7–20 ns
    /// per output, the upper end for rows of 2).
    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        Cost {
            macs: 0,
            elems: 2 * REQUANT_PASSES * numel(out),
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let (xa, xb) = (cx.value(self.a), cx.value(self.b));
        let (za, zb) = (cx.zp(self.a) as i32, cx.zp(self.b) as i32);
        let (a_shape, b_shape) = (cx.shape(self.a), cx.shape(self.b));
        let b_strides = layout::strides(b_shape);
        let lead = a_shape.len() - b_shape.len();
        layout::indices(a_shape)
            .zip(xa)
            .map(|(idx, &qa)| {
                // b's axis `k` is a's axis `lead + k`; a size-1 axis of b repeats.
                let at: usize = (0..b_shape.len())
                    .map(|k| {
                        if b_shape[k] == 1 {
                            0
                        } else {
                            idx[lead + k] * b_strides[k]
                        }
                    })
                    .sum();
                self.out.apply((qa as i32 - za) * (xb[at] as i32 - zb), 0)
            })
            .collect()
    }

    fn prepare(&self) -> Prepared {
        Prepared {
            a: self.a,
            b: self.b,
            out: Requantizer::new(&self.out),
        }
    }

    /// Over `a`'s rows in rank 4, with `b` read in place through strides that are 0 along
    /// the axes it repeats: one operand of `b` per row, or a row of it.
    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let (za, zb) = (cx.zp(p.a) as i64, cx.zp(p.b) as i64);
        let da = layout::dims4(cx.shape(p.a));
        let db = layout::dims4(cx.shape(p.b));
        let full = layout::strides4(db);
        let sb: [usize; 4] = std::array::from_fn(|k| if db[k] == 1 { 0 } else { full[k] });
        let row = da[3];
        let product = |(qa, qb): (&i64, &i64)| p.out.apply((qa - za) * (qb - zb), 0);
        crate::host::binary(cx.value(p.a), cx.value(p.b), &|a, b| {
            let mut y = Vec::with_capacity(a.len());
            for i0 in 0..da[0] {
                for i1 in 0..da[1] {
                    for i2 in 0..da[2] {
                        let at = i0 * sb[0] + i1 * sb[1] + i2 * sb[2];
                        let xa = &a[y.len()..y.len() + row];
                        if sb[3] == 0 {
                            y.extend(xa.iter().zip(std::iter::repeat(&b[at])).map(product));
                        } else {
                            y.extend(xa.iter().zip(&b[at..at + row]).map(product));
                        }
                    }
                }
            }
            y
        })
    }
}

#[cfg(feature = "testkit")]
impl Mul {
    /// Tensor `cur` times itself, an earlier tensor of its shape, or a broadcast operand: its
    /// last axis or a scalar, taken from an earlier tensor of that shape when there is one.
    pub fn random(
        rng: &mut crate::random::Rng,
        cur: TensorId,
        shape: &[u32],
        shapes: &[Vec<u32>],
    ) -> Self {
        let fits: Vec<usize> = (0..shapes.len())
            .filter(|&i| broadcasts(&shapes[i], shape))
            .collect();
        let b = fits[rng.range(0, fits.len() as i64 - 1) as usize] as TensorId;
        // |product| ≤ 65025: a right shift of 9 to 12 keeps typical products in int8 range.
        let out = crate::random::single_output(rng, -12, -7);
        Mul { a: cur, b, out }
    }
}
