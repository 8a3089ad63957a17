//! The inference engine: the spec's integer semantics on burn's ndarray backend with Int
//! tensors. Matrix products run as int32 matmuls (convolutions over an im2col matrix written
//! by a direct loop), pooling as a direct loop over each window's positions inside the map,
//! and requantization as whole-tensor int64 arithmetic. Neither kernel materialises padding:
//! gas (`cost.rs`) counts every element the engine writes, and a padded copy would scale with
//! the window instead. Nothing here depends on thread count: integer sums are exact in any
//! order, and validation proves that none of them can overflow.
//!
//! Rounding is expressed with sign/abs and truncating division, which is equal to gemmlowp's
//! mask-and-threshold form (`docs/SPEC.md` §3) and broadcasts per-channel parameters for free.

use std::iter::repeat_n;
use std::ops::Range;

use burn::tensor::{DType, Device, Element, Int, Tensor, TensorData};

use crate::model::*;
use crate::validate::{Analysis, ADD_LEFT_SHIFT, SOFTMAX_ZERO_POINT};
use crate::{cost, quant};

/// Dtype of activations and of everything elementwise.
const WIDE: DType = DType::I64;
/// Dtype of matmul operands and accumulators (int32 accumulation, as the spec says).
const ACC: DType = DType::I32;

type T<const D: usize> = Tensor<D, Int>;

fn device() -> Device {
    #[allow(deprecated)] // burn marks ndarray as deprecated in favour of `flex`; we need ndarray
    Device::ndarray()
}

fn tensor<E: Element, const D: usize>(values: Vec<E>, shape: [usize; D], dtype: DType) -> T<D> {
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
                // Collected as i32, the tensor's own dtype: no int64 copy, so preparing a
                // model peaks at ~5 bytes per model byte (SPEC §7, memory of a cold load).
                weights.iter().map(|&w| w as i32).collect(),
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

/// The values of an activation tensor, for the kernels that loop over them directly.
fn values<const D: usize>(t: T<D>) -> Vec<i64> {
    t.into_data().try_into_vec_as::<i64>().unwrap_or_default()
}

/// `[C, H, W]` of a feature map as `usize` (`[C, L]` is `[C, 1, L]`).
fn chw(shape: &[u32]) -> [usize; 3] {
    cost::chw(shape).map(|d| d as usize)
}

/// im2col of a `[C, H, W]` map for a grouped convolution, `[G, OH·OW, C/G·KH·KW]` (columns in
/// the weights' `[ic][kh][kw]` order), written by one direct loop: `x − zp` for positions
/// inside the map and 0 in the padding. Neither a padded copy of the map nor per-window
/// tensor operations are made, and only the positions some window covers are read.
fn im2col(x: &[i64], [ch, h, w]: [usize; 3], zp: i64, c: &Conv, [oh, ow]: [usize; 2]) -> T<3> {
    let [kh, kw] = c.window.kernel.map(|k| k as usize);
    let [sh, sw] = c.window.stride.map(|s| s as usize);
    let (pt, pl) = (c.window.pads[0] as usize, c.window.pads[1] as usize);
    let g = c.groups as usize;
    let icg = ch / g;
    let mut cols: Vec<i32> = Vec::with_capacity(g * oh * ow * icg * kh * kw);
    for group in 0..g {
        for r in 0..oh {
            for s in 0..ow {
                for ic in 0..icg {
                    let plane = &x[(group * icg + ic) * h * w..][..h * w];
                    // Window columns j0..j1 fall inside the map, the others in the padding.
                    let x0 = s * sw;
                    let j0 = pl.saturating_sub(x0).min(kw);
                    let j1 = (w + pl).saturating_sub(x0).min(kw).max(j0);
                    for i in 0..kh {
                        // A row above the map wraps to a huge value: outside, like below.
                        let y = (r * sh + i).wrapping_sub(pt);
                        if y >= h {
                            cols.extend(repeat_n(0, kw));
                            continue;
                        }
                        cols.extend(repeat_n(0, j0));
                        if j1 > j0 {
                            let start = y * w + x0 + j0 - pl;
                            let inside = &plane[start..start + j1 - j0];
                            cols.extend(inside.iter().map(|&v| (v - zp) as i32));
                        }
                        cols.extend(repeat_n(0, kw - j1));
                    }
                }
            }
        }
    }
    tensor(cols, [g, oh * ow, icg * kh * kw], ACC)
}

/// Pools a `[C, H, W]` map with a direct loop over each window's positions inside the map
/// (the padding is never materialised, so a huge window or padding costs only what it
/// covers). `reduce(plane, rows, cols)` folds one clipped window of one channel.
fn pool(
    x: &[i64],
    [ch, h, w]: [usize; 3],
    win: &Window,
    [oh, ow]: [usize; 2],
    reduce: impl Fn(&[i64], Range<usize>, Range<usize>) -> i64,
) -> Vec<i64> {
    // The clipped extent of every window along one axis; validation guarantees that each
    // window overlaps the map, so no range is empty.
    let clip = |n: usize, size: usize, axis: usize| -> Vec<Range<usize>> {
        let (k, st, p) = (
            win.kernel[axis] as usize,
            win.stride[axis] as usize,
            win.pads[axis] as usize,
        );
        (0..n)
            .map(|o| (o * st).saturating_sub(p)..(o * st + k).saturating_sub(p).min(size))
            .collect()
    };
    let (rows, cols) = (clip(oh, h, 0), clip(ow, w, 1));
    let mut y = Vec::with_capacity(ch * oh * ow);
    for plane in x.chunks(h * w) {
        for r in &rows {
            for c in &cols {
                y.push(reduce(plane, r.clone(), c.clone()));
            }
        }
    }
    y
}

/// The one-thread rayon pool every inference runs in (see [`Engine::run`]), or `None` if the
/// operating system refused the thread. Then inferences run on the caller's thread with
/// rayon's global pool: the same bytes, only the speed differs, where a panic would turn the
/// call into `InternalError` on this node alone and split it from the chain.
fn single_thread() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "myelin-engine".into())
            .build()
            .ok()
    })
    .as_ref()
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
        // burn-ndarray parallelises some kernels (batched matmul) on rayon. Inside a block
        // that buys little and costs a thread wake-up per operation (measured: ~200 µs per
        // two-row Dense node on a busy 2-core machine, 4x its gas), and it would let one
        // call take every core. One inference runs on one thread; results never depend on it.
        match single_thread() {
            Some(pool) => pool.install(|| self.run_on_this_thread(input)),
            None => self.run_on_this_thread(input),
        }
    }

    fn run_on_this_thread(&self, input: &[i8]) -> Vec<i8> {
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
                    let dims = chw(shape(c.input));
                    let [oc, oh, ow] = chw(&a.shapes[i + 1]);
                    let x = values(get(c.input));
                    let cols = im2col(&x, dims, zp(c.input), c, [oh, ow]);
                    // W · colsᵀ, as for Dense: every dot product walks a contiguous weight
                    // row and a contiguous im2col row (cols · Wᵀ, the other way round, runs
                    // ~40x slower on a wide layer: 0.17 GMAC/s), and the result is already
                    // channel-major.
                    let acc = l.weights.clone().matmul(cols.swap_dims(1, 2)); // [G, OC/G, OH·OW]
                    let acc: T<2> = acc.reshape([oc, oh * ow]).cast(WIDE) + l.bias.clone();
                    requantize(acc, &l.requant, &c.out).flatten(0, 1)
                }
                (Node::MaxPool(p), _) => {
                    let dims = chw(shape(p.input));
                    let [_, oh, ow] = chw(&a.shapes[i + 1]);
                    let max = |plane: &[i64], rows: Range<usize>, cols: Range<usize>| {
                        let w = dims[2];
                        rows.flat_map(|y| plane[y * w + cols.start..y * w + cols.end].iter())
                            .copied()
                            .max()
                            .unwrap_or_else(|| unreachable!("every window overlaps the map"))
                    };
                    let y = pool(&values(get(p.input)), dims, &p.window, [oh, ow], max);
                    tensor(y, [dims[0] * oh * ow], WIDE)
                }
                (Node::AvgPool(p), _) => {
                    let dims = chw(shape(p.input));
                    let [_, oh, ow] = chw(&a.shapes[i + 1]);
                    let kk = p.window.kernel[0] as i64 * p.window.kernel[1] as i64;
                    let z = zp(p.input);
                    let avg = |plane: &[i64], rows: Range<usize>, cols: Range<usize>| {
                        let w = dims[2];
                        let inside = (rows.len() * cols.len()) as i64;
                        let sum: i64 = rows
                            .flat_map(|y| plane[y * w + cols.start..y * w + cols.end].iter())
                            .sum();
                        // Padded positions hold the zero point when they count.
                        if p.count_include_pad {
                            quant::div_round(sum + z * (kk - inside), kk)
                        } else {
                            quant::div_round(sum, inside)
                        }
                    };
                    let y = pool(&values(get(p.input)), dims, &p.window, [oh, ow], avg);
                    tensor(y, [dims[0] * oh * ow], WIDE)
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
        values(out).into_iter().map(|v| v as i8).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use crate::validate::validate;

    fn model(input_shape: Vec<u32>, nodes: Vec<Node>) -> Model {
        let scale = Scale {
            mult: 1 << 30,
            shift: -6,
        };
        Model {
            input_shape,
            input_quant: Quant {
                scale,
                zero_point: 3,
            },
            output_scale: scale,
            nodes,
        }
    }

    fn window(kernel: [u16; 2], stride: [u16; 2], pads: [u16; 4]) -> Window {
        Window {
            kernel,
            stride,
            pads,
        }
    }

    /// Engine and scalar reference agree byte for byte on `m`.
    fn check(m: Model) {
        let a = validate(&m).expect("test models are valid");
        let input: Vec<i8> = (0..a.input_len())
            .map(|i| (i * 37 + 11) as u8 as i8)
            .collect();
        let want = reference::run(&m, &a, &input);
        assert_eq!(Engine::new(m, a).run(&input), want);
    }

    #[test]
    fn pools_with_windows_and_padding_larger_than_the_map() {
        for (kernel, stride, pads) in [
            ([7, 5], [1, 2], [6, 4, 6, 4]),
            ([9, 9], [4, 3], [8, 0, 1, 8]),
            ([2, 3], [5, 7], [1, 2, 0, 0]),
            ([3, 3], [1, 1], [0, 0, 0, 0]),
        ] {
            let win = window(kernel, stride, pads);
            for node in [
                Node::MaxPool(Pool {
                    input: 0,
                    window: win,
                    count_include_pad: false,
                }),
                Node::AvgPool(Pool {
                    input: 0,
                    window: win,
                    count_include_pad: false,
                }),
                Node::AvgPool(Pool {
                    input: 0,
                    window: win,
                    // Without padding only 0 is canonical (SPEC §4.2).
                    count_include_pad: pads != [0; 4],
                }),
            ] {
                check(model(vec![2, 3, 4], vec![node]));
            }
        }
    }

    #[test]
    fn convolutions_with_skipping_strides_padding_and_groups() {
        let conv = |c: u32, oc: u32, groups: u32, win: Window, one_d: bool| {
            let fan_in = (c / groups) as usize * win.kernel[0] as usize * win.kernel[1] as usize;
            Node::Conv(Conv {
                input: 0,
                one_d,
                out_channels: oc,
                window: win,
                groups,
                out: Output {
                    requant: vec![Scale {
                        mult: 1 << 30,
                        shift: -4,
                    }],
                    zero_point: -5,
                    act_min: -128,
                    act_max: 127,
                },
                bias: (0..oc as i32).map(|o| o * 7 - 3).collect(),
                weights: (0..oc as usize * fan_in)
                    .map(|i| (i * 13 % 9) as i8 - 4)
                    .collect(),
            })
        };
        for (kernel, stride, pads) in [
            ([3, 3], [1, 1], [1, 1, 1, 1]),
            ([2, 2], [7, 9], [1, 1, 1, 1]),
            ([5, 4], [2, 3], [4, 0, 2, 3]),
            ([1, 1], [8, 8], [0, 0, 0, 0]),
        ] {
            let win = window(kernel, stride, pads);
            check(model(vec![4, 6, 7], vec![conv(4, 6, 2, win, false)]));
            check(model(vec![4, 6, 7], vec![conv(4, 4, 4, win, false)]));
            let win1 = window([1, kernel[1]], [1, stride[1]], [0, pads[1], 0, pads[3]]);
            check(model(vec![4, 9], vec![conv(4, 2, 2, win1, true)]));
        }
    }
}
