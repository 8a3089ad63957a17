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

pub(crate) fn requant(rng: &mut Rng, shift_lo: i64, shift_hi: i64) -> Requant {
    Requant {
        mult: rng.range(1 << 30, i32::MAX as i64) as i32,
        shift: rng.range(shift_lo, shift_hi) as i8,
    }
}

/// A scale for the model's input or output.
pub(crate) fn io_scale(rng: &mut Rng) -> Scale {
    Scale {
        mult: rng.range(1 << 30, i32::MAX as i64) as i32,
        shift: rng.range(-10, 2) as i8,
    }
}

pub(crate) fn output(rng: &mut Rng, channels: u32, fan_in: u64) -> Output {
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

/// A single-multiplier output (Add, Sub, Mul, ReduceSum, MatMul, LayerNorm) whose shift is
/// drawn from `shift_lo..=shift_hi`.
pub(crate) fn single_output(rng: &mut Rng, shift_lo: i64, shift_hi: i64) -> Output {
    Output {
        requant: vec![requant(rng, shift_lo, shift_hi)],
        ..output(rng, 1, 1)
    }
}

pub(crate) fn layer_params(rng: &mut Rng, channels: u32, fan_in: u64) -> (Vec<i32>, Vec<i8>) {
    let bias = (0..channels)
        .map(|_| rng.range(-(1 << 14), 1 << 14) as i32)
        .collect();
    let weights = (0..channels as u64 * fan_in).map(|_| rng.i8()).collect();
    (bias, weights)
}

pub(crate) fn window(rng: &mut Rng, h: u32, w: u32, one_d: bool) -> Window {
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
        input_quant: vec![input_quant],
        output_scale: io_scale(rng),
        index_inputs: Vec::new(),
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
            Node::Softmax(Softmax::random(rng, cur))
        } else {
            Node::Reshape(Reshape {
                input: cur,
                shape: vec![numel(&last) as u32],
            })
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
pub(crate) fn exp_table(rng: &mut Rng) -> [u16; 256] {
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

/// A node of kind `op` reading tensor `cur`: 0–2 convolution, 3 pooling, falling back to
/// Dense when the shape does not allow them; 4 Clamp, 5 Lut, 6 Add, 7 Softmax, 8–9 Reshape;
/// 10 Transpose, 11 Slice, 12 Pad, 13 Concat, 14 Mul, 15 Sub, 16 ReduceSum, 17 ReduceMax,
/// 18 Resize, 19 MatMul, 20 LayerNorm, 21 TreeEnsemble, falling back to a Reshape when the
/// shape does not allow them.
/// [`model`] draws kinds 0–9 only, so seeds keep the models they always made.
fn node_of_kind(
    rng: &mut Rng,
    op: i64,
    is_map: bool,
    cur: TensorId,
    shape: &[u32],
    shapes: &[Vec<u32>],
) -> Node {
    let reshape = || Node::Reshape(Reshape::random(cur, shape));
    match op {
        0..=2 if is_map => Node::Conv(Conv::random(rng, cur, shape)),
        3 if shape.len() == 3 => crate::ops::pool::random(rng, cur, shape),
        0..=3 => Node::Dense(Dense::random(rng, cur, shape)),
        4 => Node::Clamp(Clamp::random(rng, cur)),
        5 => Node::Lut(Lut::random(rng, cur)),
        6 => Node::Add(Add::random(rng, cur, shape, shapes)),
        7 => Node::Softmax(Softmax::random(rng, cur)),
        10 if shape.len() >= 2 => Node::Transpose(Transpose::random(rng, cur, shape.len())),
        11 => Slice::random(rng, cur, shape).map_or_else(reshape, Node::Slice),
        12 => Node::Pad(Pad::random(rng, cur, shape.len())),
        13 => Node::Concat(Concat::random(rng, cur, shape, shapes)),
        14 => Node::Mul(Mul::random(rng, cur, shape, shapes)),
        15 => Node::Sub(Sub(Add::random(rng, cur, shape, shapes))),
        16 => Node::ReduceSum(ReduceSum::random(rng, cur, shape)),
        17 => ReduceMax::random(rng, cur, shape).map_or_else(reshape, Node::ReduceMax),
        18 if shape.len() == 3 => Node::Resize(Resize::random(rng, cur)),
        19 => MatMul::random(rng, cur, shape, shapes).map_or_else(reshape, Node::MatMul),
        20 => LayerNorm::random(rng, cur, shape).map_or_else(reshape, Node::LayerNorm),
        21 => Node::TreeEnsemble(TreeEnsemble::random(rng, cur, shape)),
        _ => reshape(),
    }
}

/// Node kinds [`node_of_kind`] knows (`0..KINDS`).
pub const KINDS: u8 = 22;

/// A random [`Spec`] over node kinds `0..kinds`: an input of rank 1 to 4 (at most 600
/// elements), 1 to `max_nodes` nodes. The fuzz target draws every kind; the golden vectors'
/// random models draw the first ten (the kinds that existed when they were committed).
pub fn spec(rng: &mut Rng, max_nodes: usize, kinds: u8) -> Spec {
    let mut dim = |lo: i64, hi: i64| rng.range(lo, hi) as u32;
    let input_shape = match dim(0, 3) {
        0 => vec![dim(1, 600)],
        1 => vec![dim(1, 8), dim(1, 75)],
        2 => vec![dim(1, 3), dim(2, 14), dim(2, 14)],
        _ => (0..4).map(|_| dim(1, 4)).collect(),
    };
    let nodes = (0..rng.range(1, max_nodes as i64))
        .map(|_| (rng.range(0, kinds as i64 - 1) as u8, rng.next_u64()))
        .collect();
    Spec {
        input_shape,
        quant_seed: rng.next_u64(),
        nodes,
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
        input_quant: vec![input_quant],
        output_scale: io_scale(&mut rng),
        index_inputs: Vec::new(),
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
        m.nodes.push(Node::Reshape(Reshape {
            input: 0,
            shape: vec![numel(&spec.input_shape) as u32],
        }));
    }
    canonical_output_scale(m)
}

/// A random valid model with index inputs (format v2): an int8 input of 1 to 16 elements,
/// one or two index inputs, one to three Gathers whose rows are flattened and concatenated
/// with the int8 input, then up to `max_nodes` nodes of every kind.
pub fn indexed_model(rng: &mut Rng, max_nodes: usize) -> Model {
    let features = rng.range(1, 16) as u32;
    let index_inputs: Vec<IndexInput> = (0..rng.range(1, 2))
        .map(|_| IndexInput {
            limits: (0..rng.range(1, 6))
                .map(|_| rng.range(1, 40) as u16)
                .collect(),
        })
        .collect();
    let mut m = Model {
        input_shape: vec![features],
        input_quant: vec![Quant {
            scale: io_scale(rng),
            zero_point: rng.i8(),
        }],
        output_scale: io_scale(rng),
        index_inputs,
        nodes: vec![],
    };
    let mut shapes = vec![vec![features]];
    for _ in 0..rng.range(1, 3) {
        let k = rng.range(0, m.index_inputs.len() as i64 - 1) as usize;
        let gather = Gather::random(rng, k as u8, &m.index_inputs[k]);
        let flat = gather.count as u32 * gather.dim;
        push_if_small(&mut m, &mut shapes, Node::Gather(gather));
        let rows = (shapes.len() - 1) as TensorId;
        push_if_small(
            &mut m,
            &mut shapes,
            Node::Reshape(Reshape {
                input: rows,
                shape: vec![flat],
            }),
        );
        let so_far = (shapes.len() - 1) as TensorId;
        let concat = Concat {
            inputs: vec![
                (so_far - 2, requant(rng, -2, 1)),
                (so_far, requant(rng, -2, 1)),
            ],
            axis: 0,
            zero_point: rng.i8(),
        };
        push_if_small(&mut m, &mut shapes, Node::Concat(concat));
    }
    for _ in 0..rng.range(0, max_nodes as i64) {
        let cur = (shapes.len() - 1) as TensorId;
        let shape = shapes.last().cloned().unwrap_or_default();
        let is_map = shape.len() == 3 || shape.len() == 2 && rng.chance(50);
        let op = rng.range(0, KINDS as i64 - 1);
        let node = node_of_kind(rng, op, is_map, cur, &shape, &shapes);
        push_if_small(&mut m, &mut shapes, node);
    }
    canonical_output_scale(m)
}

/// A random tree model on raw features (format v3): an input of 2 to 12 features quantized
/// per feature (one row, or a few), one TreeEnsemble, then sometimes a post-transform (a
/// Lut, as a logistic, or a Softmax).
pub fn tree_model(rng: &mut Rng) -> Model {
    let features = rng.range(2, 12) as u32;
    let input_shape = if rng.chance(70) {
        vec![features]
    } else {
        vec![rng.range(1, 4) as u32, features]
    };
    let input_quant = (0..features)
        .map(|_| Quant {
            scale: io_scale(rng),
            zero_point: rng.i8(),
        })
        .collect();
    let tree = TreeEnsemble::random(rng, 0, &input_shape);
    let mut m = Model {
        input_shape,
        input_quant,
        output_scale: io_scale(rng),
        index_inputs: Vec::new(),
        nodes: vec![Node::TreeEnsemble(tree)],
    };
    match rng.range(0, 2) {
        0 => m.nodes.push(Node::Lut(Lut::random(rng, 1))),
        1 => m.nodes.push(Node::Softmax(Softmax::random(rng, 1))),
        _ => {}
    }
    canonical_output_scale(m)
}

/// Random valid ids for `m`'s index inputs (each below its limit).
pub fn ids(rng: &mut Rng, m: &Model) -> Vec<Vec<u16>> {
    m.index_inputs
        .iter()
        .map(|i| {
            i.limits
                .iter()
                .map(|&l| rng.range(0, l as i64 - 1) as u16)
                .collect()
        })
        .collect()
}

/// Every id of `m` at its limit's last row: the rows farthest into each table.
pub fn last_ids(m: &Model) -> Vec<Vec<u16>> {
    m.index_inputs
        .iter()
        .map(|i| i.limits.iter().map(|&l| l - 1).collect())
        .collect()
}

/// A random input for a model whose input has `len` elements.
pub fn input(rng: &mut Rng, len: usize) -> Vec<i8> {
    rng.bytes(len)
}
