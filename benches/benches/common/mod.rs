//! Model builders shared by the benchmarks (`gas.rs`, `search.rs`): one constructor per
//! operator, with random small weights that always pass the overflow check.

#![allow(dead_code)] // each bench target uses a different subset

use myelin_precompile::model::*;
use myelin_precompile::random::Rng;

pub fn output(shift: i8) -> Output {
    Output {
        requant: vec![Scale {
            mult: 1 << 30,
            shift,
        }],
        zero_point: 0,
        act_min: -128,
        act_max: 127,
    }
}

pub fn base(input_shape: Vec<u32>, nodes: Vec<Node>) -> Model {
    let scale = Scale {
        mult: 1 << 30,
        shift: -6,
    };
    let mut m = Model {
        input_shape,
        input_quant: vec![Quant {
            scale,
            zero_point: 0,
        }],
        output_scale: scale,
        index_inputs: Vec::new(),
        nodes,
    };
    // The scale the graph fixes (Softmax's 1/256, or a chain that keeps the input's), which
    // a valid model must declare.
    if let Some(fixed) = myelin_precompile::validate::fixed_output_scale(&m) {
        m.output_scale = fixed;
    }
    m
}

/// `n` weights in `-mag..=mag`; none when `n` alone exceeds the 16 MiB model limit (the
/// search then proposes an unpublishable shape, which validation rejects, instead of
/// allocating gigabytes).
pub fn weights(rng: &mut Rng, n: u64, mag: i64) -> Vec<i8> {
    if n > myelin_precompile::limits::MAX_MODEL_BYTES as u64 {
        return Vec::new();
    }
    (0..n).map(|_| rng.range(-mag, mag) as i8).collect()
}

/// Dense `k → n` with weights in `-mag..=mag`.
pub fn dense(rng: &mut Rng, input: TensorId, k: u32, n: u32, mag: i64) -> Node {
    Node::Dense(Dense {
        input,
        out_features: n,
        out: output(-10),
        bias: vec![0; n as usize],
        weights: weights(rng, k as u64 * n as u64, mag),
    })
}

/// A convolution over `c` input channels with any window (`one_d`: Conv1d, whose window
/// must have kernel/stride 1 and no padding on its first axis). Weights are in `-20..=20`,
/// or `-1..=1` when the fan-in is so large that 20 could overflow the accumulator.
pub fn conv_window(
    rng: &mut Rng,
    input: TensorId,
    c: u32,
    oc: u32,
    groups: u32,
    window: Window,
    one_d: bool,
) -> Node {
    let fan_in = (c / groups) as u64 * window.kernel[0] as u64 * window.kernel[1] as u64;
    let mag = if fan_in > 1 << 16 { 1 } else { 20 };
    Node::Conv(Conv {
        input,
        one_d,
        out_channels: oc,
        window,
        groups,
        out: output(-10),
        bias: vec![0; oc as usize],
        weights: weights(rng, oc as u64 * fan_in, mag),
    })
}

/// 3×3 convolution, stride 1, padding 1, weights in `-20..=20`.
pub fn conv(rng: &mut Rng, input: TensorId, c: u32, oc: u32, groups: u32) -> Node {
    let window = Window {
        kernel: [3, 3],
        stride: [1, 1],
        pads: [1, 1, 1, 1],
    };
    conv_window(rng, input, c, oc, groups, window, false)
}

pub fn pool(input: TensorId, window: Window, avg: bool, count_include_pad: bool) -> Node {
    if avg {
        Node::AvgPool(AvgPool {
            input,
            window,
            count_include_pad,
        })
    } else {
        Node::MaxPool(MaxPool { input, window })
    }
}

/// Add of two tensors with unit multipliers (the sum requantized by 2^-19).
pub fn add(a: TensorId, b: TensorId) -> Node {
    let unit = Scale {
        mult: 1 << 30,
        shift: 0,
    };
    Node::Add(Add {
        a,
        b,
        a_requant: unit,
        b_requant: unit,
        out: output(-19),
    })
}

pub fn softmax(input: TensorId) -> Node {
    Node::Softmax(Softmax {
        input,
        exp_table: Box::new(std::array::from_fn(|d| {
            (65534.0 * (-(d as f64) / 16.0).exp()) as u16 + 1
        })),
    })
}

/// The identity table.
pub fn lut(input: TensorId) -> Node {
    Node::Lut(Lut {
        input,
        zero_point: 0,
        table: Box::new(std::array::from_fn(|i| (i as i32 - 128) as i8)),
    })
}

pub fn clamp(input: TensorId) -> Node {
    Node::Clamp(Clamp {
        input,
        min: -100,
        max: 100,
    })
}

/// A tree of `depth` splits on its longest path: complete down to `full` levels, then a
/// chain down its leftmost path; leaves hold `width` values.
pub fn tree_of(
    rng: &mut Rng,
    features: u32,
    depth: u32,
    full: u32,
    target: u16,
    width: usize,
) -> Tree {
    let mut nodes = Vec::new();
    // (depth of the subtree's root, whether it is on the leftmost path)
    let mut pending = vec![(0u32, true)];
    while let Some((d, leftmost)) = pending.pop() {
        if d < full.min(depth) || (leftmost && d < depth) {
            nodes.push(TreeNode::Split {
                feature: rng.range(0, features as i64 - 1) as u16,
                threshold: rng.range(-100, 100) as i8,
            });
            pending.push((d + 1, false));
            pending.push((d + 1, leftmost));
        } else {
            nodes.push(TreeNode::Leaf(
                (0..width).map(|_| rng.range(-1000, 1000) as i32).collect(),
            ));
        }
    }
    Tree { target, nodes }
}

/// A TreeEnsemble of `trees` complete trees of depth `depth` over `features` features, each
/// tree adding to output `t mod outputs`, with random splits and small leaves.
pub fn forest(
    rng: &mut Rng,
    input: TensorId,
    features: u32,
    trees: usize,
    depth: u32,
    outputs: u16,
) -> Node {
    let trees = (0..trees)
        .map(|t| {
            tree_of(
                rng,
                features,
                depth,
                depth,
                (t % outputs as usize) as u16,
                1,
            )
        })
        .collect();
    Node::TreeEnsemble(TreeEnsemble {
        input,
        outputs,
        out: output(-10),
        base: vec![0; outputs as usize],
        trees,
    })
}
