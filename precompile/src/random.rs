//! Seeded generator of random *valid* models and inputs, for the differential test (engine vs
//! scalar reference), the golden-vector tool and the benchmarks. Deterministic from its seed
//! (SplitMix64), so a failing seed reproduces anywhere.

use crate::model::*;
use crate::validate::{fixed_output_scale, numel, output_shape};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }
    pub fn i8(&mut self) -> i8 {
        self.range(-128, 127) as i8
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
    pub fn bytes(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.i8()).collect()
    }
}

fn requant(rng: &mut Rng, shift_lo: i64, shift_hi: i64) -> Requant {
    Requant {
        mult: rng.range(1 << 30, i32::MAX as i64) as i32,
        shift: rng.range(shift_lo, shift_hi) as i8,
    }
}

/// A scale for the model's input or output.
fn io_scale(rng: &mut Rng) -> Scale {
    Scale {
        mult: rng.range(1 << 30, i32::MAX as i64) as i32,
        shift: rng.range(-10, 2) as i8,
    }
}

fn output(rng: &mut Rng, channels: u32, fan_in: u64) -> Output {
    // Pick the shift so that typical accumulators (~ 64·√fan_in) land in int8 range.
    let typical = (64.0 * (fan_in as f64).sqrt()).log2().ceil() as i64;
    let per_channel = channels > 1 && rng.chance(50);
    let count = if per_channel { channels } else { 1 };
    let requant = (0..count)
        .map(|_| requant(rng, -typical - 3, -typical + 4))
        .collect();
    let (act_min, act_max) = match rng.range(0, 2) {
        0 => (-128, 127),
        1 => (rng.range(-128, 0) as i8, 127),
        _ => {
            let lo = rng.range(-128, 0) as i8;
            (lo, rng.range(lo as i64, 127) as i8)
        }
    };
    Output {
        requant,
        zero_point: rng.i8(),
        act_min,
        act_max,
    }
}

fn layer_params(rng: &mut Rng, channels: u32, fan_in: u64) -> (Vec<i32>, Vec<i8>) {
    let bias = (0..channels)
        .map(|_| rng.range(-(1 << 14), 1 << 14) as i32)
        .collect();
    let weights = (0..channels as u64 * fan_in).map(|_| rng.i8()).collect();
    (bias, weights)
}

fn window(rng: &mut Rng, h: u32, w: u32, one_d: bool) -> Window {
    let mut side = |size: u32| {
        let k = rng.range(1, size.min(4) as i64) as u16;
        let s = rng.range(1, 2) as u16;
        let p0 = rng.range(0, k as i64 - 1) as u16;
        let p1 = rng.range(0, k as i64 - 1) as u16;
        (k, s, p0, p1)
    };
    let (kh, sh, pt, pb) = if one_d { (1, 1, 0, 0) } else { side(h) };
    let (kw, sw, pl, pr) = side(w);
    Window {
        kernel: [kh, kw],
        stride: [sh, sw],
        pads: [pt, pl, pb, pr],
    }
}

/// A random valid model of 1 to `max_nodes` (+ a head) nodes, small enough for fast tests.
pub fn model(rng: &mut Rng, max_nodes: usize) -> Model {
    let kind = rng.range(0, 2);
    let input_shape: Vec<u32> = match kind {
        0 if rng.chance(70) => vec![rng.range(1, 24) as u32],
        0 => vec![rng.range(1, 3) as u32, rng.range(1, 16) as u32],
        1 => vec![
            rng.range(1, 4) as u32,
            rng.range(2, 9) as u32,
            rng.range(2, 9) as u32,
        ],
        _ => vec![rng.range(1, 4) as u32, rng.range(2, 16) as u32],
    };
    let input_quant = Quant {
        scale: io_scale(rng),
        zero_point: rng.i8(),
    };
    let mut m = Model {
        input_shape: input_shape.clone(),
        input_quant,
        output_scale: io_scale(rng),
        nodes: vec![],
    };
    let mut shapes = vec![input_shape];
    let n_nodes = rng.range(1, max_nodes as i64) as usize;
    for _ in 0..n_nodes {
        let cur = (shapes.len() - 1) as TensorId;
        let shape = shapes.last().cloned().unwrap_or_default();
        let node = random_node(rng, cur, &shape, &shapes);
        push_if_small(&mut m, &mut shapes, node);
    }
    if m.nodes.is_empty() || rng.chance(30) {
        let cur = (shapes.len() - 1) as TensorId;
        let last = shapes.last().cloned().unwrap_or_default();
        let node = if rng.chance(50) {
            Node::Softmax {
                input: cur,
                exp_table: Box::new(exp_table(rng)),
            }
        } else {
            Node::Reshape {
                input: cur,
                shape: vec![numel(&last) as u32],
            }
        };
        m.nodes.push(node);
    }
    canonical_output_scale(m)
}

/// A valid model declares the output scale its graph fixes (Softmax's, or the input's).
fn canonical_output_scale(mut m: Model) -> Model {
    if let Some(scale) = fixed_output_scale(&m) {
        m.output_scale = scale;
    }
    m
}

/// Appends `node` if its output is valid and at most 4096 elements (keeps tests fast).
fn push_if_small(m: &mut Model, shapes: &mut Vec<Vec<u32>>, node: Node) {
    if let Ok(s) = output_shape(m.nodes.len(), &node, shapes) {
        if numel(&s) <= 4096 {
            shapes.push(s);
            m.nodes.push(node);
        }
    }
}

/// `round(2^16 · exp(−d · s))` for a random `s`: a realistic decreasing table.
fn exp_table(rng: &mut Rng) -> [u16; 256] {
    let s = rng.range(1, 200) as f64 / 100.0;
    std::array::from_fn(|d| {
        ((-(d as f64) * s / 8.0).exp() * 65535.0)
            .round()
            .max(if d == 0 { 1.0 } else { 0.0 }) as u16
    })
}

fn random_node(rng: &mut Rng, cur: TensorId, shape: &[u32], shapes: &[Vec<u32>]) -> Node {
    let is_map = shape.len() == 3 || shape.len() == 2 && rng.chance(50);
    let op = rng.range(0, 9);
    node_of_kind(rng, op, is_map, cur, shape, shapes)
}

/// A node of kind `op` (0–2 convolution, 3 pooling, falling back to Dense when the shape does
/// not allow them; 4 Clamp, 5 Lut, 6 Add, 7 Softmax, 8–9 Reshape) reading tensor `cur`.
fn node_of_kind(
    rng: &mut Rng,
    op: i64,
    is_map: bool,
    cur: TensorId,
    shape: &[u32],
    shapes: &[Vec<u32>],
) -> Node {
    match op {
        0..=2 if is_map => {
            let one_d = shape.len() == 2;
            let (c, h, w) = if one_d {
                (shape[0], 1, shape[1])
            } else {
                (shape[0], shape[1], shape[2])
            };
            let groups = if c > 1 && rng.chance(40) { c } else { 1 };
            let out_channels = groups * rng.range(1, 3) as u32;
            let window = window(rng, h, w, one_d);
            let fan_in = (c / groups) as u64 * window.kernel[0] as u64 * window.kernel[1] as u64;
            let out = output(rng, out_channels, fan_in);
            let (bias, weights) = layer_params(rng, out_channels, fan_in);
            Node::Conv(Conv {
                input: cur,
                one_d,
                out_channels,
                window,
                groups,
                out,
                bias,
                weights,
            })
        }
        3 if shape.len() == 3 => {
            let window = window(rng, shape[1], shape[2], false);
            let pool = Pool {
                input: cur,
                // Canonical: the flag is 0 when there is no padding (draw it anyway, so seeds
                // keep their models).
                count_include_pad: rng.chance(50) && window.pads != [0; 4],
                window,
            };
            if rng.chance(50) {
                Node::MaxPool(Pool {
                    count_include_pad: false,
                    ..pool
                })
            } else {
                Node::AvgPool(pool)
            }
        }
        0..=3 => {
            let k = *shape.last().unwrap_or(&1) as u64;
            let out_features = rng.range(1, 20) as u32;
            let out = output(rng, out_features, k);
            let (bias, weights) = layer_params(rng, out_features, k);
            Node::Dense(Dense {
                input: cur,
                out_features,
                out,
                bias,
                weights,
            })
        }
        4 => {
            let lo = rng.i8();
            Node::Clamp {
                input: cur,
                min: lo,
                max: rng.range(lo as i64, 127) as i8,
            }
        }
        5 => Node::Lut {
            input: cur,
            zero_point: rng.i8(),
            table: Box::new(std::array::from_fn(|_| rng.i8())),
        },
        6 => {
            // Residual add with any earlier tensor of the same shape (possibly itself).
            let same: Vec<usize> = (0..shapes.len()).filter(|&i| shapes[i] == shape).collect();
            let other = same[rng.range(0, same.len() as i64 - 1) as usize] as TensorId;
            Node::Add(Add {
                a: cur,
                b: other,
                a_requant: requant(rng, -3, 0),
                b_requant: requant(rng, -3, 0),
                out: Output {
                    requant: vec![requant(rng, -22, -18)],
                    ..output(rng, 1, 1)
                },
            })
        }
        7 => Node::Softmax {
            input: cur,
            exp_table: Box::new(exp_table(rng)),
        },
        _ => {
            let n = numel(shape) as u32;
            let new = if shape.len() == 1 && n.is_multiple_of(2) {
                vec![2, n / 2]
            } else {
                vec![n]
            };
            Node::Reshape {
                input: cur,
                shape: new,
            }
        }
    }
}

/// A structural description of a model: the input shape, a seed for the input and output
/// quantization, and per node an op kind (as [`node_of_kind`] reads it, 0..=9) with the seed
/// of its parameters. Property tests draw `Spec`s rather than bare seeds so that a failure
/// shrinks toward fewer nodes, smaller dimensions and simpler kinds, i.e. a small model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub input_shape: Vec<u32>,
    pub quant_seed: u64,
    pub nodes: Vec<(u8, u64)>,
}

/// The valid model a [`Spec`] describes. Nodes whose kind does not fit the current shape
/// fall back as in [`model`]; a node that would exceed 4096 elements is skipped; a model
/// left without nodes gets a flatten.
pub fn model_of(spec: &Spec) -> Model {
    let mut rng = Rng::new(spec.quant_seed);
    let input_quant = Quant {
        scale: io_scale(&mut rng),
        zero_point: rng.i8(),
    };
    let mut m = Model {
        input_shape: spec.input_shape.clone(),
        input_quant,
        output_scale: io_scale(&mut rng),
        nodes: vec![],
    };
    let mut shapes = vec![spec.input_shape.clone()];
    for &(op, seed) in &spec.nodes {
        let mut rng = Rng::new(seed);
        let cur = (shapes.len() - 1) as TensorId;
        let shape = shapes.last().cloned().unwrap_or_default();
        let is_map = shape.len() == 3 || shape.len() == 2 && rng.chance(50);
        let node = node_of_kind(&mut rng, op as i64, is_map, cur, &shape, &shapes);
        push_if_small(&mut m, &mut shapes, node);
    }
    if m.nodes.is_empty() {
        m.nodes.push(Node::Reshape {
            input: 0,
            shape: vec![numel(&spec.input_shape) as u32],
        });
    }
    canonical_output_scale(m)
}

/// A random input for a model whose input has `len` elements.
pub fn input(rng: &mut Rng, len: usize) -> Vec<i8> {
    rng.bytes(len)
}
