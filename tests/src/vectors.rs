//! Golden vectors: committed (model bytes, input, output, cost) tuples that pin the spec's
//! arithmetic. `cases()` builds hand-made models aimed at each op and rounding edge case,
//! plus random models; `gen-vectors` writes them to `tests/vectors/v1.json` from the scalar
//! reference, and only when asked to (the test never rewrites them).

use myelin_precompile::model::*;
use myelin_precompile::random::{self, Rng};
use myelin_precompile::{decode, encode, reference};
use serde::{Deserialize, Serialize};

pub const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/v1.json");

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vector {
    pub name: String,
    pub covers: String,
    pub model: String,
    pub input: String,
    pub output: String,
    pub macs: u64,
    pub elems: u64,
}

pub fn load() -> Vec<Vector> {
    let text = std::fs::read_to_string(VECTORS_PATH).expect("tests/vectors/v1.json is committed");
    serde_json::from_str(&text).expect("vectors parse")
}

/// A model with the inputs to run it on.
pub struct Case {
    pub name: String,
    pub covers: &'static str,
    pub model: Model,
    pub inputs: Vec<Vec<i8>>,
}

/// Computes each case's outputs with the scalar reference.
pub fn build() -> Vec<Vector> {
    let mut out = Vec::new();
    for case in cases() {
        let bytes = encode(&case.model);
        let (model, analysis) = decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for (i, input) in case.inputs.iter().enumerate() {
            let output = reference::run(&model, &analysis, input);
            let name = if case.inputs.len() == 1 {
                case.name.clone()
            } else {
                format!("{}#{i}", case.name)
            };
            out.push(Vector {
                name,
                covers: case.covers.to_string(),
                model: hex::encode(&bytes),
                input: hex::encode(input.iter().map(|&v| v as u8).collect::<Vec<_>>()),
                output: hex::encode(output.iter().map(|&v| v as u8).collect::<Vec<_>>()),
                macs: analysis.total.macs,
                elems: analysis.total.elems,
            });
        }
    }
    out
}

fn rq(mult: i32, shift: i8) -> Requant {
    Requant { mult, shift }
}

fn output(requant: Vec<Requant>, zero_point: i8, act_min: i8, act_max: i8) -> Output {
    Output {
        requant,
        zero_point,
        act_min,
        act_max,
    }
}

fn plain(requant: Vec<Requant>) -> Output {
    output(requant, 0, -128, 127)
}

const HALF: i32 = 1 << 30; // mult·2^(shift−31) = 0.5 · 2^shift

fn model(input_shape: Vec<u32>, zero_point: i8, nodes: Vec<Node>) -> Model {
    let scale = Scale {
        mult: HALF,
        shift: -6,
    }; // 1/128
    let mut m = Model {
        input_shape,
        input_quant: Quant { scale, zero_point },
        output_scale: scale,
        nodes,
    };
    // The canonical output scale where the graph fixes one (Softmax: 1/256; SPEC §4.2).
    if let Some(fixed) = myelin_precompile::validate::fixed_output_scale(&m) {
        m.output_scale = fixed;
    }
    m
}

fn all_int8() -> Vec<i8> {
    (-128..=127).collect()
}

fn dense(input: TensorId, n: u32, out: Output, bias: Vec<i32>, weights: Vec<i8>) -> Node {
    Node::Dense(Dense {
        input,
        out_features: n,
        out,
        bias,
        weights,
    })
}

fn conv(
    input: TensorId,
    oc: u32,
    groups: u32,
    window: Window,
    out: Output,
    bias: Vec<i32>,
    weights: Vec<i8>,
) -> Node {
    Node::Conv(Conv {
        input,
        one_d: false,
        out_channels: oc,
        window,
        groups,
        out,
        bias,
        weights,
    })
}

fn win(k: [u16; 2], s: [u16; 2], pads: [u16; 4]) -> Window {
    Window {
        kernel: k,
        stride: s,
        pads,
    }
}

fn seq(n: usize, start: i64, step: i64) -> Vec<i8> {
    (0..n as i64)
        .map(|i| (start + i * step).clamp(-128, 127) as i8)
        .collect()
}

/// Hand-made edge cases first, then random models from fixed seeds.
pub fn cases() -> Vec<Case> {
    let identity_w =
        |n: usize| -> Vec<i8> { (0..n * n).map(|i| (i % (n + 1) == 0) as i8).collect() };
    let mut cs = vec![
        Case {
            name: "srdhm_ties".into(),
            covers:
                "SRDHM rounding: x·0.5 for every int8 x; ties go toward +inf (-0.5 -> 0, 0.5 -> 1)",
            model: model(
                vec![256, 1],
                0,
                vec![dense(0, 1, plain(vec![rq(HALF, 0)]), vec![0], vec![1])],
            ),
            inputs: vec![all_int8()],
        },
        Case {
            name: "rdbpot_ties".into(),
            covers: "RoundingDivideByPOT ties away from zero: x·(1−2^-31)/4 for every int8 x",
            model: model(
                vec![256, 1],
                0,
                vec![dense(0, 1, plain(vec![rq(i32::MAX, -2)]), vec![0], vec![1])],
            ),
            inputs: vec![all_int8()],
        },
        Case {
            name: "rdbpot_shift_31".into(),
            covers: "largest right shift (31) with a bias near the accumulator limit",
            model: model(
                vec![4, 1],
                0,
                vec![dense(
                    0,
                    1,
                    plain(vec![rq(i32::MAX, -31)]),
                    vec![2_000_000_000],
                    vec![127],
                )],
            ),
            inputs: vec![vec![-128, -1, 0, 127]],
        },
        Case {
            name: "positive_shift".into(),
            covers: "left shift (shift +3): x·0.5·8 with saturation to int8",
            model: model(
                vec![256, 1],
                0,
                vec![dense(0, 1, plain(vec![rq(HALF, 3)]), vec![1], vec![1])],
            ),
            inputs: vec![all_int8()],
        },
        Case {
            name: "accumulator_max".into(),
            covers: "accumulator exactly ±(2^31−1): the overflow bound is tight and legal",
            model: model(
                vec![2, 1],
                -128,
                vec![dense(
                    0,
                    2,
                    plain(vec![rq(HALF, -24)]),
                    vec![i32::MAX - 255 * 127, -(i32::MAX - 255 * 127)],
                    vec![127, -127],
                )],
            ),
            inputs: vec![vec![127, -128], vec![-128, 127]],
        },
        Case {
            name: "saturation".into(),
            covers: "requantized values far outside int8 clamp to -128/127",
            model: model(
                vec![3],
                0,
                vec![dense(
                    0,
                    2,
                    plain(vec![rq(HALF, 0)]),
                    vec![100_000, -100_000],
                    vec![1, 1, 1, -1, -1, -1],
                )],
            ),
            inputs: vec![vec![0, 0, 0], vec![127, 127, 127], vec![-128, -128, -128]],
        },
        Case {
            name: "zero_points".into(),
            covers:
                "input zero point subtraction and output zero point with fused ReLU (act_min = zp)",
            model: model(
                vec![4],
                37,
                vec![dense(
                    0,
                    4,
                    output(vec![rq(HALF, 0)], -20, -20, 127),
                    vec![5, -5, 0, 300],
                    identity_w(4),
                )],
            ),
            inputs: vec![vec![37, 0, -128, 127], vec![127, 100, 37, -60]],
        },
        Case {
            name: "relu6".into(),
            covers: "fused ReLU6 style clamp [zp, q(6)]",
            model: model(
                vec![8],
                0,
                vec![dense(
                    0,
                    8,
                    output(vec![rq(HALF, 1)], -128, -128, -32),
                    vec![0; 8],
                    identity_w(8),
                )],
            ),
            inputs: vec![seq(8, -128, 36)],
        },
        Case {
            name: "per_channel".into(),
            covers: "per-output-channel multipliers and shifts",
            model: model(
                vec![3],
                0,
                vec![dense(
                    0,
                    3,
                    plain(vec![rq(HALF, 0), rq(0x5555_5555, -2), rq(i32::MAX, -5)]),
                    vec![-7, 7, 1000],
                    vec![3, -2, 1, -1, 4, 9, 127, 127, -128],
                )],
            ),
            inputs: vec![vec![1, 2, 3], vec![-128, 127, 0], vec![127, 127, 127]],
        },
        Case {
            name: "dense_rows".into(),
            covers: "Dense over the last axis of a [3, 4] input (three rows)",
            model: model(
                vec![3, 4],
                5,
                vec![dense(
                    0,
                    2,
                    plain(vec![rq(0x4000_0001, -4)]),
                    vec![1, -1],
                    vec![1, 2, 3, 4, -4, -3, -2, -1],
                )],
            ),
            inputs: vec![seq(12, -90, 17)],
        },
        Case {
            name: "conv2d_same_padding".into(),
            covers: "Conv2d 3x3, pad 1 (padding = input zero point), 2 output channels",
            model: model(
                vec![1, 4, 4],
                3,
                vec![conv(
                    0,
                    2,
                    1,
                    win([3, 3], [1, 1], [1, 1, 1, 1]),
                    plain(vec![rq(HALF, -2)]),
                    vec![0, 10],
                    (0..18).map(|i| (i as i8 - 9) * 3).collect(),
                )],
            ),
            inputs: vec![seq(16, -100, 13)],
        },
        Case {
            name: "conv2d_stride_asym_pad".into(),
            covers: "Conv2d with stride 2 and asymmetric padding, 2 input channels",
            model: model(
                vec![2, 5, 5],
                -4,
                vec![conv(
                    0,
                    3,
                    1,
                    win([2, 3], [2, 2], [1, 0, 0, 2]),
                    plain(vec![rq(0x6000_0000, -3), rq(HALF, -3), rq(HALF, -1)]),
                    vec![1, 2, 3],
                    seq(36, -60, 4),
                )],
            ),
            inputs: vec![seq(50, -128, 5)],
        },
        Case {
            name: "conv2d_groups".into(),
            covers: "grouped Conv2d (4 -> 4 channels, 2 groups)",
            model: model(
                vec![4, 3, 3],
                0,
                vec![conv(
                    0,
                    4,
                    2,
                    win([2, 2], [1, 1], [0, 0, 0, 0]),
                    plain(vec![rq(HALF, -3)]),
                    vec![0, -9, 9, 100],
                    seq(32, -64, 4),
                )],
            ),
            inputs: vec![seq(36, -120, 7)],
        },
        Case {
            name: "conv2d_depthwise".into(),
            covers: "depthwise Conv2d (groups = channels = 3, multiplier 2)",
            model: model(
                vec![3, 4, 4],
                10,
                vec![conv(
                    0,
                    6,
                    3,
                    win([3, 3], [1, 1], [1, 1, 1, 1]),
                    plain(vec![rq(HALF, -4)]),
                    vec![0; 6],
                    seq(54, -127, 5),
                )],
            ),
            inputs: vec![seq(48, 127, -5)],
        },
        Case {
            name: "conv1d".into(),
            covers: "Conv1d kernel 3, stride 2, padding 1/2 on a [2, 9] sequence",
            model: model(
                vec![2, 9],
                0,
                vec![Node::Conv(Conv {
                    input: 0,
                    one_d: true,
                    out_channels: 2,
                    window: win([1, 3], [1, 2], [0, 1, 0, 2]),
                    groups: 1,
                    out: plain(vec![rq(HALF, -3)]),
                    bias: vec![-50, 50],
                    weights: seq(12, -100, 17),
                })],
            ),
            inputs: vec![seq(18, -128, 15)],
        },
        Case {
            name: "maxpool_padded".into(),
            covers: "MaxPool2d 3x3 stride 2 with padding (padding never wins)",
            model: model(
                vec![2, 5, 5],
                0,
                vec![Node::MaxPool(Pool {
                    input: 0,
                    window: win([3, 3], [2, 2], [1, 1, 1, 1]),
                    count_include_pad: false,
                })],
            ),
            inputs: vec![vec![-128; 50], seq(50, 127, -5)],
        },
        Case {
            name: "avgpool_exclude_pad".into(),
            covers: "AvgPool2d excluding padding: divisor = valid positions; ties away from zero",
            model: model(
                vec![1, 4, 4],
                0,
                vec![Node::AvgPool(Pool {
                    input: 0,
                    window: win([2, 2], [2, 2], [1, 1, 1, 1]),
                    count_include_pad: false,
                })],
            ),
            inputs: vec![
                vec![
                    1, 2, 3, 4, -1, -2, -3, -4, 5, 6, -7, -8, 127, 126, -128, -127,
                ],
                vec![1, 0, -1, 0, 0, 1, 0, -2, 3, 0, 0, 0, 0, 0, 0, 0],
            ],
        },
        Case {
            name: "avgpool_include_pad".into(),
            covers: "AvgPool2d counting padding (filled with zero point 20)",
            model: model(
                vec![2, 3, 3],
                20,
                vec![Node::AvgPool(Pool {
                    input: 0,
                    window: win([3, 3], [1, 1], [1, 1, 1, 1]),
                    count_include_pad: true,
                })],
            ),
            inputs: vec![seq(18, -128, 15)],
        },
        Case {
            name: "global_avgpool".into(),
            covers: "global average pooling (window = whole map) then flatten",
            model: model(
                vec![3, 2, 3],
                0,
                vec![
                    Node::AvgPool(Pool {
                        input: 0,
                        window: win([2, 3], [1, 1], [0, 0, 0, 0]),
                        count_include_pad: false,
                    }),
                    Node::Reshape {
                        input: 1,
                        shape: vec![3],
                    },
                ],
            ),
            inputs: vec![vec![
                1, 2, 3, 4, 5, 6, -1, -2, -3, -4, -5, -4, 127, 127, 127, 127, 127, 126,
            ]],
        },
        Case {
            name: "residual_add".into(),
            covers:
                "Add of two tensors with different zero points and scales (TFLite, left shift 20)",
            model: Model {
                nodes: vec![
                    dense(
                        0,
                        4,
                        output(vec![rq(HALF, 0)], 12, -128, 127),
                        vec![0; 4],
                        identity_w(4),
                    ),
                    Node::Add(Add {
                        a: 1,
                        b: 0,
                        a_requant: rq(HALF, 0),
                        b_requant: rq(0x6000_0000, -1),
                        out: output(vec![rq(HALF, -18)], -5, -128, 127),
                    }),
                ],
                ..model(vec![4], -7, vec![])
            },
            inputs: vec![vec![-128, -7, 0, 127], vec![50, -50, 1, -1]],
        },
        Case {
            name: "add_self_saturating".into(),
            covers: "Add of a tensor to itself with output clamp",
            model: model(
                vec![6],
                0,
                vec![Node::Add(Add {
                    a: 0,
                    b: 0,
                    a_requant: rq(HALF, 0),
                    b_requant: rq(HALF, 0),
                    out: output(vec![rq(HALF, -18)], 0, -100, 100),
                })],
            ),
            inputs: vec![vec![-128, -51, -50, 0, 50, 127]],
        },
        Case {
            name: "clamp_relu".into(),
            covers: "Clamp as ReLU (min = zero point) on every int8 value",
            model: model(
                vec![256],
                -3,
                vec![Node::Clamp {
                    input: 0,
                    min: -3,
                    max: 127,
                }],
            ),
            inputs: vec![all_int8()],
        },
        Case {
            name: "lut_sigmoid".into(),
            covers: "256-entry lookup table (a sigmoid table), every int8 value",
            model: model(
                vec![256],
                0,
                vec![Node::Lut {
                    input: 0,
                    zero_point: -128,
                    table: Box::new(std::array::from_fn(|i| {
                        let x = (i as f64 - 128.0) / 16.0;
                        ((256.0 / (1.0 + (-x).exp())).round() - 128.0).clamp(-128.0, 127.0) as i8
                    })),
                }],
            ),
            inputs: vec![all_int8()],
        },
        Case {
            name: "softmax_rows".into(),
            covers: "Softmax: uniform row, one dominant value, exact ties, full-range differences",
            model: model(
                vec![4, 4],
                0,
                vec![Node::Softmax {
                    input: 0,
                    exp_table: Box::new(std::array::from_fn(|d| {
                        ((-(d as f64) / 16.0).exp() * 65535.0).round() as u16
                    })),
                }],
            ),
            inputs: vec![vec![
                5, 5, 5, 5, 127, -128, -128, -128, 10, 10, 0, 0, -128, 127, 0, 64,
            ]],
        },
        Case {
            name: "softmax_min_table".into(),
            covers: "Softmax with exp_table = [1, 0, ...] (argmax-like; S = count of maxima)",
            model: model(
                vec![3, 3],
                0,
                vec![Node::Softmax {
                    input: 0,
                    exp_table: Box::new(std::array::from_fn(|d| (d == 0) as u16)),
                }],
            ),
            inputs: vec![vec![1, 2, 3, 3, 3, 0, 7, 7, 7]],
        },
        Case {
            name: "mlp_chain".into(),
            covers: "Dense -> ReLU -> Dense -> Softmax classifier shape",
            model: model(
                vec![8],
                0,
                vec![
                    dense(
                        0,
                        6,
                        output(vec![rq(0x5A82_7999, -6)], -128, -128, 127),
                        (0..6).map(|i| i * 100 - 250).collect(),
                        seq(48, -127, 11),
                    ),
                    dense(
                        1,
                        3,
                        plain(vec![rq(0x7000_0000, -7)]),
                        vec![10, 0, -10],
                        seq(18, 120, -13),
                    ),
                    Node::Softmax {
                        input: 2,
                        exp_table: Box::new(std::array::from_fn(|d| {
                            ((-(d as f64) / 10.0).exp() * 65535.0).round() as u16
                        })),
                    },
                ],
            ),
            inputs: vec![seq(8, -100, 29), seq(8, 127, -31), vec![0; 8]],
        },
        Case {
            name: "cnn_chain".into(),
            covers: "Conv2d -> MaxPool -> Flatten -> Dense",
            model: model(
                vec![1, 6, 6],
                -128,
                vec![
                    conv(
                        0,
                        2,
                        1,
                        win([3, 3], [1, 1], [1, 1, 1, 1]),
                        output(vec![rq(HALF, -4)], -128, -128, 127),
                        vec![0, 64],
                        seq(18, -45, 5),
                    ),
                    Node::MaxPool(Pool {
                        input: 1,
                        window: win([2, 2], [2, 2], [0, 0, 0, 0]),
                        count_include_pad: false,
                    }),
                    Node::Reshape {
                        input: 2,
                        shape: vec![18],
                    },
                    dense(
                        3,
                        4,
                        plain(vec![rq(HALF, -5)]),
                        vec![1, 2, 3, 4],
                        seq(72, -126, 3),
                    ),
                ],
            ),
            inputs: vec![seq(36, -128, 7), seq(36, 127, -7)],
        },
    ];
    for seed in 0..30u64 {
        let mut rng = Rng::new(0xC0FFEE + seed);
        let model = random::model(&mut rng, 6);
        let len = myelin_precompile::validate::validate(&model)
            .map(|a| a.input_len())
            .unwrap_or(0);
        cs.push(Case {
            name: format!("random_{seed}"),
            covers: "random valid model (fixed seed)",
            inputs: vec![random::input(&mut rng, len)],
            model,
        });
    }
    cs
}
