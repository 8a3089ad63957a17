//! The inference engine: the spec's integer semantics on burn's ndarray backend with Int
//! tensors. Matrix products run as int32 matmuls (convolutions through im2col built with
//! `unfold`), pooling as elementwise max/sum over strided slices, and requantization as
//! whole-tensor int64 arithmetic. Nothing here depends on thread count: integer sums are exact in
//! any order, and validation proves that none of them can overflow.
//!
//! Rounding is expressed with sign/abs and truncating division, which is equal to gemmlowp's
//! mask-and-threshold form (`docs/SPEC.md` §3) and broadcasts per-channel parameters for free.

use burn::tensor::ops::PadMode;
use burn::tensor::{DType, Device, Int, Slice, Tensor, TensorData};

use crate::model::*;
use crate::validate::{Analysis, ADD_LEFT_SHIFT, SOFTMAX_ZERO_POINT};

/// Dtype of activations and of everything elementwise.
const WIDE: DType = DType::I64;
/// Dtype of matmul operands and accumulators (int32 accumulation, as the spec says).
const ACC: DType = DType::I32;

type T<const D: usize> = Tensor<D, Int>;

fn device() -> Device {
    #[allow(deprecated)] // burn marks ndarray as deprecated in favour of `flex`; we need ndarray
    Device::ndarray()
}

fn tensor<const D: usize>(values: Vec<i64>, shape: [usize; D], dtype: DType) -> T<D> {
    T::<D>::from_data(TensorData::new(values, shape), (&device(), dtype))
}

/// Per-channel requantization constants, shaped to broadcast over a layer's output
/// (`[1, N]` for Dense, `[OC, 1]` for convolutions).
struct RequantParams {
    left_pow: T<2>,
    mult: T<2>,
    pow: T<2>,
    half: T<2>,
}

impl RequantParams {
    fn new(rqs: &[Requant], shape: [usize; 2]) -> Self {
        let col = |f: &dyn Fn(&Requant) -> i64| tensor(rqs.iter().map(f).collect(), shape, WIDE);
        RequantParams {
            left_pow: col(&|r| 1i64 << r.shift.max(0)),
            mult: col(&|r| r.mult as i64),
            pow: col(&|r| 1i64 << (-(r.shift as i32)).max(0)),
            half: col(&|r| (1i64 << (-(r.shift as i32)).max(0)) / 2),
        }
    }

    /// `MultiplyByQuantizedMultiplier` on a whole int64 tensor.
    fn apply(&self, x: T<2>) -> T<2> {
        let ab = (x * self.left_pow.clone()) * self.mult.clone();
        // SaturatingRoundingDoublingHighMul (saturation is unreachable: mult < 2^31 and the
        // lifted accumulator is proven below 2^31): nudge 2^30 if ab >= 0 else 1 - 2^30.
        let nonneg = ab.clone().greater_equal_elem(0).int().cast(WIDE);
        let nudge = nonneg
            .mul_scalar((1i64 << 31) - 1)
            .add_scalar(1 - (1i64 << 30));
        let high = (ab + nudge).div_scalar(1i64 << 31);
        // RoundingDivideByPOT: sign(x) · ((|x| + 2^(e−1)) / 2^e), ties away from zero.
        let sign = high.clone().sign();
        sign * ((high.abs() + self.half.clone()) / self.pow.clone())
    }
}

/// A prepared Dense or convolution layer: weights as `[groups, out/groups, fan_in]` int32 in
/// the model's own row-major layout, multiplied through a transposed view: ndarray's integer
/// matmul takes dot products of lhs rows with rhs columns, and each rhs column is then a
/// contiguous weight row (5-20x faster than a materialised `[fan_in, out]` matrix). Bias and
/// multipliers are shaped for broadcasting.
struct Layer {
    weights: T<3>,
    bias: T<2>,
    requant: RequantParams,
}

impl Layer {
    fn new(
        weights: &[i8],
        bias: &[i32],
        out: &Output,
        groups: usize,
        channels_on_rows: bool,
    ) -> Self {
        let channels = bias.len();
        let fan_in = weights.len() / channels;
        let per_group = channels / groups;
        let shape = if channels_on_rows {
            [channels, 1]
        } else {
            [1, channels]
        };
        let rqs: Vec<Requant> = if out.requant.len() == 1 {
            vec![out.requant[0]; channels]
        } else {
            out.requant.clone()
        };
        Layer {
            weights: tensor(
                weights.iter().map(|&w| w as i64).collect(),
                [groups, per_group, fan_in],
                ACC,
            ),
            bias: tensor(bias.iter().map(|&b| b as i64).collect(), shape, WIDE),
            requant: RequantParams::new(&rqs, shape),
        }
    }
}

/// Per-node prepared state.
enum Prepared {
    Layer(Box<Layer>),
    /// Multipliers of input a, input b and the output (boxed: burn tensors are large).
    Add(Box<[RequantParams; 3]>),
    Table(T<1>),
    None,
}

/// A validated model with its tensors prepared for burn. Build once per model (the node-local
/// cache holds these), run many times.
pub struct Engine {
    model: Model,
    analysis: Analysis,
    prepared: Vec<Prepared>,
}

fn requantize(acc: T<2>, p: &RequantParams, out: &Output) -> T<2> {
    p.apply(acc)
        .add_scalar(out.zero_point as i64)
        .clamp(out.act_min as i64, out.act_max as i64)
}

/// `n / d` rounded to nearest with ties away from zero, for `d > 0`.
fn div_round<const D: usize>(n: T<D>, d: T<D>) -> T<D> {
    let sign = n.clone().sign();
    sign * ((n.abs() + d.clone().div_scalar(2)) / d)
}

/// `[C, H, W]` view of a feature map (`[C, L]` becomes `[C, 1, L]`).
fn chw(shape: &[u32]) -> [usize; 3] {
    match *shape {
        [c, l] => [c as usize, 1, l as usize],
        [c, h, w] => [c as usize, h as usize, w as usize],
        _ => unreachable!("validation admits only rank-2/3 feature maps here"),
    }
}

/// Sliding windows of a padded `[C, H, W]` map: `[C, OH, OW, KH·KW]`.
fn windows(x: T<3>, win: &Window, pad_value: f32) -> T<4> {
    let [pt, pl, pb, pr] = win.pads.map(|p| p as usize);
    let [kh, kw] = win.kernel.map(|k| k as usize);
    let [sh, sw] = win.stride.map(|s| s as usize);
    let x = x.pad([(pt, pb), (pl, pr)], PadMode::Constant(pad_value));
    let u: T<5> = x.unfold::<4, _>(1, kh, sh).unfold(2, kw, sw);
    let [c, oh, ow, _, _] = u.dims();
    u.reshape([c, oh, ow, kh * kw])
}

/// Pools a padded `[C, H, W]` map by folding its `KH·KW` strided views (one per offset in
/// the window, each `[C, OH, OW]`) with `combine`: a handful of whole-tensor operations
/// instead of materialising every window.
fn pool_offsets(
    x: T<3>,
    win: &Window,
    pad_value: f32,
    combine: impl Fn(T<3>, T<3>) -> T<3>,
) -> T<3> {
    let [pt, pl, pb, pr] = win.pads.map(|p| p as usize);
    let x = x.pad([(pt, pb), (pl, pr)], PadMode::Constant(pad_value));
    let [_, hp, wp] = x.dims();
    let out = |size: usize, axis: usize| {
        (size - win.kernel[axis] as usize) / win.stride[axis] as usize + 1
    };
    let (oh, ow) = (out(hp, 0), out(wp, 1));
    let view = |start: usize, n: usize, step: u16| Slice {
        start: start as isize,
        end: Some((start + (n - 1) * step as usize + 1) as isize),
        step: step as isize,
    };
    let all = Slice {
        start: 0,
        end: None,
        step: 1,
    };
    let mut acc: Option<T<3>> = None;
    for i in 0..win.kernel[0] as usize {
        for j in 0..win.kernel[1] as usize {
            let v = x
                .clone()
                .slice([all, view(i, oh, win.stride[0]), view(j, ow, win.stride[1])]);
            acc = Some(match acc {
                None => v,
                Some(a) => combine(a, v),
            });
        }
    }
    acc.unwrap_or_else(|| unreachable!("validated kernels are at least 1x1"))
}

impl Engine {
    pub fn new(model: Model, analysis: Analysis) -> Self {
        let prepared = model
            .nodes
            .iter()
            .map(|n| match n {
                Node::Dense(d) => {
                    Prepared::Layer(Box::new(Layer::new(&d.weights, &d.bias, &d.out, 1, false)))
                }
                Node::Conv(c) => Prepared::Layer(Box::new(Layer::new(
                    &c.weights,
                    &c.bias,
                    &c.out,
                    c.groups as usize,
                    true,
                ))),
                Node::Add(a) => Prepared::Add(Box::new([
                    RequantParams::new(&[a.a_requant], [1, 1]),
                    RequantParams::new(&[a.b_requant], [1, 1]),
                    RequantParams::new(&a.out.requant, [1, 1]),
                ])),
                Node::Lut { table, .. } => Prepared::Table(tensor(
                    table.iter().map(|&v| v as i64).collect(),
                    [256],
                    WIDE,
                )),
                Node::Softmax { exp_table, .. } => Prepared::Table(tensor(
                    exp_table.iter().map(|&v| v as i64).collect(),
                    [256],
                    WIDE,
                )),
                _ => Prepared::None,
            })
            .collect();
        Engine {
            model,
            analysis,
            prepared,
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn analysis(&self) -> &Analysis {
        &self.analysis
    }

    /// Runs one inference. `input` must hold exactly `analysis().input_len()` values (the
    /// precompile checks this before charging gas and calling).
    pub fn run(&self, input: &[i8]) -> Vec<i8> {
        let a = &self.analysis;
        let mut tensors: Vec<T<1>> = Vec::with_capacity(self.model.nodes.len() + 1);
        tensors.push(tensor(
            input.iter().map(|&v| v as i64).collect(),
            [input.len()],
            WIDE,
        ));
        for (i, (node, prep)) in self.model.nodes.iter().zip(&self.prepared).enumerate() {
            let get = |id: TensorId| tensors[id as usize].clone();
            let shape = |id: TensorId| a.shapes[id as usize].as_slice();
            let zp = |id: TensorId| a.zero_points[id as usize] as i64;
            let y: T<1> = match (node, prep) {
                (Node::Dense(d), Prepared::Layer(l)) => {
                    let k = *shape(d.input).last().unwrap_or(&1) as usize;
                    let x = get(d.input).sub_scalar(zp(d.input)).cast(ACC);
                    let rows = x.dims()[0] / k;
                    // out^T = W · x^T: every dot product walks a contiguous weight row and,
                    // for the usual single row, a contiguous input column.
                    let xt = x.reshape([1, rows, k]).swap_dims(1, 2);
                    let acc = l.weights.clone().matmul(xt).swap_dims(1, 2); // [1, rows, N]
                    let acc: T<2> =
                        acc.reshape([rows, d.out_features as usize]).cast(WIDE) + l.bias.clone();
                    requantize(acc, &l.requant, &d.out).flatten(0, 1)
                }
                (Node::Conv(c), Prepared::Layer(l)) => {
                    let [ch, h, w] = chw(shape(c.input));
                    let x = get(c.input)
                        .sub_scalar(zp(c.input))
                        .cast(ACC)
                        .reshape([ch, h, w]);
                    let u = windows(x, &c.window, 0.0);
                    let [_, oh, ow, kk] = u.dims();
                    let g = c.groups as usize;
                    let cols = u
                        .reshape([g, ch / g, oh * ow, kk])
                        .permute([0, 2, 1, 3])
                        .reshape([g, oh * ow, ch / g * kk]);
                    let acc = cols.matmul(l.weights.clone().swap_dims(1, 2)); // [G, OH·OW, OC/G]
                    let oc = c.out_channels as usize;
                    let acc: T<2> =
                        acc.swap_dims(1, 2).reshape([oc, oh * ow]).cast(WIDE) + l.bias.clone();
                    requantize(acc, &l.requant, &c.out).flatten(0, 1)
                }
                (Node::MaxPool(p), _) => {
                    let x = get(p.input).reshape(chw(shape(p.input)));
                    pool_offsets(x, &p.window, -128.0, T::max_pair).flatten(0, 2)
                }
                (Node::AvgPool(p), _) => {
                    let [ch, h, w] = chw(shape(p.input));
                    let x = get(p.input).reshape([ch, h, w]);
                    let kk = p.window.kernel[0] as i64 * p.window.kernel[1] as i64;
                    let add = |a: T<3>, b: T<3>| a + b;
                    let (sum, count) = if p.count_include_pad {
                        let z = zp(p.input) as f32;
                        let sum = pool_offsets(x, &p.window, z, add);
                        let count = sum.clone().zeros_like().add_scalar(kk);
                        (sum, count)
                    } else {
                        let ones = tensor(vec![1; h * w], [1, h, w], WIDE);
                        let count = pool_offsets(ones, &p.window, 0.0, add);
                        let sum = pool_offsets(x, &p.window, 0.0, add);
                        let count = count.expand(sum.dims());
                        (sum, count)
                    };
                    div_round(sum, count).flatten(0, 2)
                }
                (Node::Add(ad), Prepared::Add(params)) => {
                    let [pa, pb, out] = &**params;
                    let n = a.shapes[ad.a as usize].iter().product::<u32>() as usize;
                    let lift = |id: TensorId| {
                        get(id)
                            .sub_scalar(zp(id))
                            .mul_scalar(1i64 << ADD_LEFT_SHIFT)
                            .reshape([1, n])
                    };
                    let sum = pa.apply(lift(ad.a)) + pb.apply(lift(ad.b));
                    requantize(sum, out, &ad.out).flatten(0, 1)
                }
                (Node::Clamp { input, min, max }, _) => get(*input).clamp(*min as i64, *max as i64),
                (Node::Reshape { input, .. }, _) => get(*input),
                (Node::Lut { input, .. }, Prepared::Table(table)) => {
                    table.clone().select(0, get(*input).add_scalar(128))
                }
                (Node::Softmax { input, .. }, Prepared::Table(table)) => {
                    let l = *shape(*input).last().unwrap_or(&1) as usize;
                    let x = get(*input);
                    let rows = x.dims()[0] / l;
                    let x: T<2> = x.reshape([rows, l]);
                    let d = x.clone().max_dim(1) - x; // in 0..=255
                    let e: T<2> = table.clone().select(0, d.flatten(0, 1)).reshape([rows, l]);
                    let sum = e.clone().sum_dim(1).expand([rows, l]);
                    let p = div_round(e.mul_scalar(256), sum).add_scalar(SOFTMAX_ZERO_POINT as i64);
                    p.clamp(-128, 127).flatten(0, 1)
                }
                _ => unreachable!("node {i} prepared for its own kind"),
            };
            tensors.push(y);
        }
        let out = tensors
            .pop()
            .unwrap_or_else(|| unreachable!("a model has at least one node"));
        out.into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .unwrap_or_default()
            .into_iter()
            .map(|v| v as i8)
            .collect()
    }
}
