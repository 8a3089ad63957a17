//! Dense: a fully connected layer over the last axis (SPEC §3.3, tag 0x01).

use super::layer::{self, Layer, Output};
use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::{Cost, LAYER_OUT_PASSES};
use crate::engine::{requantize, EngineTensor, ACC, WIDE};
use crate::error::ModelError;
use crate::model::{Scale, TensorId};
use crate::validate::{checked_elems, numel};

const TAG: u8 = 0x01;

/// `y[.., n] = bias[n] + Σ_k w[n][k] · (x[.., k] − zp_x)`, requantized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dense {
    pub input: TensorId,
    pub out_features: u32,
    pub out: Output,
    pub bias: Vec<i32>,
    /// Row-major `[out_features][in_features]`, as PyTorch's `Linear.weight`.
    pub weights: Vec<i8>,
}

pub struct Prepared {
    layer: Layer,
    input: TensorId,
    out_features: usize,
}

impl Op for Dense {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "Dense"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        let input = r.tensor(shapes)?;
        let k = *r.input_shape(input, shapes)?.last().unwrap_or(&0);
        let out_features = r.u32()?;
        let out = Output::read(r, out_features)?;
        let (bias, weights) = layer::read_params(r, out_features, k as u64)?;
        Ok(Dense {
            input,
            out_features,
            out,
            bias,
            weights,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        w.extend_from_slice(&self.out_features.to_le_bytes());
        self.out.write(w);
        layer::write_params(w, &self.bias, &self.weights);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let first = &shapes[self.input as usize];
        let k = *first.last().unwrap_or(&0) as u64;
        let nf = self.out_features;
        layer::zero_channels(node, nf)?;
        let mut s = first.to_vec();
        *s.last_mut().unwrap_or(&mut 0) = nf;
        checked_elems(node, &s)?;
        layer::check_arrays(node, nf, k, &self.out, &self.bias, self.weights.len())?;
        Ok(s)
    }

    fn check(
        &self,
        node: usize,
        _: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        layer::check(node, &self.out, &self.bias, &self.weights)?;
        Ok(Checked {
            zero_point: self.out.zero_point,
            params: self.weights.len() as u64 + self.bias.len() as u64,
        })
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    /// Subtract the zero point, cast, and the matmul's standard-layout copy of the
    /// transposed input (3 passes over the input), matmul + requantize.
    fn cost(&self, shapes: &[Vec<u32>], out: &[u32]) -> Cost {
        let input = &shapes[self.input as usize];
        let (n_in, n_out) = (numel(input), numel(out));
        let k = *input.last().unwrap_or(&1) as u64;
        Cost {
            macs: n_in / k * self.out_features as u64 * k,
            elems: 3 * n_in + LAYER_OUT_PASSES * n_out,
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let x = cx.value(self.input);
        let k = *cx.shape(self.input).last().unwrap_or(&1) as usize;
        let n = self.out_features as usize;
        let zx = cx.zp(self.input) as i32;
        let mut y = Vec::with_capacity(x.len() / k * n);
        for row in x.chunks(k) {
            for o in 0..n {
                let mut acc = self.bias[o];
                for (&w, &x) in self.weights[o * k..(o + 1) * k].iter().zip(row) {
                    acc += w as i32 * (x as i32 - zx);
                }
                y.push(self.out.apply(acc, o));
            }
        }
        y
    }

    fn prepare(&self) -> Prepared {
        Prepared {
            layer: Layer::new(&self.weights, &self.bias, &self.out, 1, false),
            input: self.input,
            out_features: self.out_features as usize,
        }
    }

    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let k = *cx.shape(p.input).last().unwrap_or(&1) as usize;
        let x = cx
            .value(p.input)
            .clone()
            .sub_scalar(cx.zp(p.input) as i64)
            .cast(ACC);
        let rows = x.dims()[0] / k;
        // out^T = W · x^T: every dot product walks a contiguous weight row and, for the
        // usual single row, a contiguous input column.
        let xt = x.reshape([1, rows, k]).swap_dims(1, 2);
        let acc = p.layer.weights.clone().matmul(xt).swap_dims(1, 2); // [1, rows, N]
        let acc = acc.reshape([rows, p.out_features]).cast(WIDE) + p.layer.bias.clone();
        requantize(acc, &p.layer.requant, &p.layer.out).flatten(0, 1)
    }
}

#[cfg(feature = "testkit")]
impl Dense {
    /// A random Dense reading tensor `cur` of shape `shape`.
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId, shape: &[u32]) -> Self {
        let k = *shape.last().unwrap_or(&1) as u64;
        let out_features = rng.range(1, 20) as u32;
        let out = crate::random::output(rng, out_features, k);
        let (bias, weights) = crate::random::layer_params(rng, out_features, k);
        Dense {
            input: cur,
            out_features,
            out,
            bias,
            weights,
        }
    }
}
