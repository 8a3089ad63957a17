//! Dense: a fully connected layer over the last axis (SPEC §3.3, tag 0x01).

use super::layer::{self, Output};
use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::{Cost, GEMM_OUT_PASSES};
use crate::engine::EngineTensor;
use crate::error::ModelError;
use crate::gemm::{gemm, lhs_len, packed_len, padded_macs, padded_outputs, Epilogue, Lhs, Packed};
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

/// The layer as the kernel wants it: `Wᵀ` packed once, when the model is prepared.
pub struct Prepared {
    input: TensorId,
    weights: Packed,
    bias: Vec<i32>,
    out: Output,
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

    /// `Wᵀ` in whole 16-column int8 panels.
    fn prepared_elems(&self) -> u64 {
        let k = self.weights.len() as u64 / self.out_features as u64;
        packed_len(k, self.out_features as u64)
    }

    /// The packed weights: every inference streams all of them through the kernel.
    fn streamed_elems(&self) -> u64 {
        self.prepared_elems()
    }

    /// The input's rows minus the zero point (the kernel's left operand), the product with
    /// the packed weights and the fused epilogue, both padded to whole panels.
    fn cost(&self, shapes: &[Vec<u32>], _: &[u32]) -> Cost {
        let input = &shapes[self.input as usize];
        let k = *input.last().unwrap_or(&1) as u64;
        let rows = numel(input) / k;
        Cost {
            macs: padded_macs(rows, k, self.out_features as u64),
            elems: lhs_len(rows, k)
                + GEMM_OUT_PASSES * padded_outputs(rows, self.out_features as u64),
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
        let n = self.out_features as usize;
        let k = self.weights.len() / n;
        Prepared {
            input: self.input,
            weights: Packed::from_int8_transposed(k, n, &self.weights),
            bias: self.bias.clone(),
            out: self.out.clone(),
        }
    }

    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let zp = cx.zp(p.input) as i64;
        crate::host::unary(cx.value(p.input), &|x| {
            let (k, n) = (p.weights.k(), p.weights.n());
            let rows = x.len() / k;
            let mut y = vec![0; rows * n];
            let epilogue = Epilogue {
                out: &p.out,
                bias: &p.bias,
                channels_on_rows: false,
                channel_offset: 0,
                row_stride: n,
                offset: 0,
            };
            gemm(
                &Lhs::from_rows(x, rows, k, zp),
                &p.weights,
                &epilogue,
                &mut y,
            );
            y
        })
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
