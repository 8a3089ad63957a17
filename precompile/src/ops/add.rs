//! Add (SPEC §3.6, tag 0x06): residual addition of two same-shape tensors, TFLite-style:
//! both inputs are lifted by `2^20`, rescaled to a common scale, summed and rescaled to the
//! output. Sub (tag 0x10) is the same with the second operand subtracted.

use super::layer::{put_scale, Output};
use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::{EngineTensor, Requantizer, Rescale};
use crate::error::{Code, ModelError};
use crate::model::{Requant, Scale, TensorId};
use crate::quant::mbq;
use crate::validate::{check_requant, mbq_bound, numel};

const TAG: u8 = 0x06;
const TAG_SUB: u8 = 0x10;

/// Left shift applied to both inputs before rescaling (TFLite's value).
pub const ADD_LEFT_SHIFT: u32 = 20;
/// Elements charged per element: the two inputs read and rescaled (each a requantization's
/// work) and the sum requantized and written, one pass of the kernel: `3 · REQUANT_PASSES`
/// (measured 20–27 ns per element on the reference machine, ~13 ns per gas at 2.4 gas).
pub const ADD_PASSES: u64 = 3 * crate::cost::REQUANT_PASSES;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Add {
    pub a: TensorId,
    pub b: TensorId,
    pub a_requant: Requant,
    pub b_requant: Requant,
    pub out: Output,
}

/// `a − b`: the fields, checks and cost of [`Add`], the rescaled second operand subtracted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sub(pub Add);

pub struct Prepared {
    /// 1 for Add, −1 for Sub.
    sign: i64,
    a: TensorId,
    b: TensorId,
    /// Rescaling of input a and input b, and the output's requantization.
    rescale: [Rescale; 2],
    out: Requantizer,
}

impl Add {
    fn read_fields(r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(Add {
            a: r.tensor(shapes)?,
            b: r.tensor(shapes)?,
            a_requant: r.scale()?,
            b_requant: r.scale()?,
            out: Output::read(r, 1)?,
        })
    }

    fn write_fields(&self, w: &mut Vec<u8>) {
        w.extend_from_slice(&self.a.to_le_bytes());
        w.extend_from_slice(&self.b.to_le_bytes());
        put_scale(w, self.a_requant);
        put_scale(w, self.b_requant);
        self.out.write(w);
    }

    fn shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let (first, second) = (&shapes[self.a as usize], &shapes[self.b as usize]);
        if first != second {
            return Err(ModelError::at(
                Code::AddShapeMismatch,
                node,
                format!("shapes {first:?} and {second:?} differ (no broadcasting)"),
            ));
        }
        self.out.expect_single(node, "Add")?;
        Ok(first.to_vec())
    }

    fn check_params(&self, node: usize) -> Result<Checked, ModelError> {
        check_requant(node, self.a_requant)?;
        check_requant(node, self.b_requant)?;
        self.out.check_single(node)?;
        let lifted = 255u64 << ADD_LEFT_SHIFT;
        let sum =
            mbq_bound(node, lifted, self.a_requant)? + mbq_bound(node, lifted, self.b_requant)?;
        self.out.bounded(node, sum)
    }

    fn work(&self, out: &[u32]) -> Cost {
        Cost {
            macs: 0,
            elems: ADD_PASSES * numel(out),
        }
    }

    /// `sign` 1 adds, −1 subtracts (the bound of `|sa ± sb|` is the same).
    fn reference_signed(&self, cx: &Ctx<'_, Vec<i8>>, sign: i32) -> Vec<i8> {
        let (xa, xb) = (cx.value(self.a), cx.value(self.b));
        let (za, zb) = (cx.zp(self.a) as i32, cx.zp(self.b) as i32);
        let rescale = |q: i8, z: i32, rq: Requant| {
            mbq((q as i32 - z) << ADD_LEFT_SHIFT, rq)
                .unwrap_or_else(|| unreachable!("validation bounds the lifted inputs"))
        };
        xa.iter()
            .zip(xb)
            .map(|(&qa, &qb)| {
                let sum = rescale(qa, za, self.a_requant) + sign * rescale(qb, zb, self.b_requant);
                self.out.apply(sum, 0)
            })
            .collect()
    }

    fn prepare_signed(&self, sign: i64) -> Prepared {
        Prepared {
            sign,
            a: self.a,
            b: self.b,
            rescale: [Rescale::new(self.a_requant), Rescale::new(self.b_requant)],
            out: Requantizer::new(&self.out),
        }
    }
}

fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
    let [ra, rb] = p.rescale;
    let (za, zb) = (cx.zp(p.a) as i64, cx.zp(p.b) as i64);
    crate::host::binary(cx.value(p.a), cx.value(p.b), &|a, b| {
        a.iter()
            .zip(b)
            .map(|(&qa, &qb)| {
                let sa = ra.apply((qa - za) << ADD_LEFT_SHIFT);
                let sb = rb.apply((qb - zb) << ADD_LEFT_SHIFT);
                p.out.apply(sa + p.sign * sb, 0)
            })
            .collect()
    })
}

impl Op for Add {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "Add"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.a, self.b]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Add::read_fields(r, shapes)
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        self.write_fields(w);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        self.shape(node, shapes)
    }

    fn check(
        &self,
        node: usize,
        _: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        self.check_params(node)
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        self.work(out)
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        self.reference_signed(cx, 1)
    }

    fn prepare(&self) -> Prepared {
        self.prepare_signed(1)
    }

    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        run(p, cx)
    }
}

impl Op for Sub {
    const TAGS: &'static [u8] = &[TAG_SUB];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "Sub"
    }

    fn inputs(&self) -> Vec<TensorId> {
        self.0.inputs()
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(Sub(Add::read_fields(r, shapes)?))
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG_SUB);
        self.0.write_fields(w);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        self.0.shape(node, shapes)
    }

    fn check(
        &self,
        node: usize,
        _: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        self.0.check_params(node)
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        self.0.work(out)
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        self.0.reference_signed(cx, -1)
    }

    fn prepare(&self) -> Prepared {
        self.0.prepare_signed(-1)
    }

    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        run(p, cx)
    }
}

#[cfg(feature = "testkit")]
impl Add {
    /// A residual add of tensor `cur` with any earlier tensor of the same shape (possibly
    /// itself).
    pub fn random(
        rng: &mut crate::random::Rng,
        cur: TensorId,
        shape: &[u32],
        shapes: &[Vec<u32>],
    ) -> Self {
        use crate::random::requant;
        let same: Vec<usize> = (0..shapes.len()).filter(|&i| shapes[i] == shape).collect();
        let other = same[rng.range(0, same.len() as i64 - 1) as usize] as TensorId;
        Add {
            a: cur,
            b: other,
            a_requant: requant(rng, -3, 0),
            b_requant: requant(rng, -3, 0),
            out: crate::random::single_output(rng, -22, -18),
        }
    }
}
