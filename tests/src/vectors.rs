//! Golden vectors: committed (model bytes, input, output, gas) tuples that pin the spec's
//! arithmetic, and invalid models with the exact error they are rejected with. `cases()`
//! builds hand-made models aimed at each op and rounding edge case, plus random models;
//! `rejections()` breaks one validation rule each. `gen-vectors` writes them to
//! `tests/vectors/v1.json` (schema: [`myelin_cli::conformance::Vector`], `docs/SPEC.md`
//! "Conformance vectors"), and only when asked to (the tests never rewrite them).

use alloy_primitives::keccak256;
use myelin_cli::conformance::{Expect, ExpectedError, Vector};
use myelin_precompile::error::Code;
use myelin_precompile::model::*;
use myelin_precompile::random::{self, Rng};
use myelin_precompile::{decode, encode, gas, reference};

mod gather;
mod ops;
mod trees;

pub const VECTORS_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/v1.json");

pub fn load() -> Vec<Vector> {
    let text = std::fs::read_to_string(VECTORS_PATH).expect("tests/vectors/v1.json is committed");
    myelin_cli::conformance::parse(&text).expect("vectors parse")
}

/// A model with the inputs to run it on.
pub struct Case {
    pub name: String,
    pub covers: &'static str,
    pub model: Model,
    /// What `infer` takes: the int8 values, then any ids (two bytes each, big-endian).
    pub inputs: Vec<Vec<i8>>,
}

/// The rejection of `model`'s encoding by `rule` (the submodules' in-memory models).
fn rejection(name: &'static str, covers: &'static str, model: Model, rule: Code) -> Rejection {
    Rejection {
        name,
        covers,
        bytes: encode(&model),
        rule,
    }
}

/// A case named `name` (the submodules' hand-made models).
fn case(name: &str, covers: &'static str, model: Model, inputs: Vec<Vec<i8>>) -> Case {
    Case {
        name: name.into(),
        covers,
        model,
        inputs,
    }
}

/// Bytes that must be rejected, and the check that must reject them (checked when the
/// vectors are built, so each vector keeps testing the rule it was written for).
pub struct Rejection {
    pub name: &'static str,
    pub covers: &'static str,
    pub bytes: Vec<u8>,
    pub rule: Code,
}

fn hex_i8(v: &[i8]) -> String {
    hex::encode(v.iter().map(|&b| b as u8).collect::<Vec<_>>())
}

/// Computes each case's outputs with the scalar reference, its gas with the schedule, and
/// each rejection's error with the decoder.
pub fn build() -> Vec<Vector> {
    let mut out = Vec::new();
    for case in cases() {
        let bytes = encode(&case.model);
        let valid = decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let analysis = valid.analysis();
        for (i, input) in case.inputs.iter().enumerate() {
            let raw: Vec<u8> = input.iter().map(|&b| b as u8).collect();
            let x = myelin_precompile::input::decode(&valid, &raw)
                .unwrap_or_else(|e| panic!("{}: input {e:?}", case.name));
            let output = reference::run_input(&valid, &x);
            let name = if case.inputs.len() == 1 {
                case.name.clone()
            } else {
                format!("{}#{i}", case.name)
            };
            out.push(Vector {
                name,
                covers: case.covers.to_string(),
                model: hex::encode(&bytes),
                id: hex::encode(keccak256(&bytes)),
                expect: Expect::Output {
                    input: hex_i8(input),
                    output: hex_i8(&output),
                    infer_gas: gas::infer_call(&valid, bytes.len()),
                    macs: analysis.total.macs,
                    elems: analysis.total.elems,
                },
            });
        }
    }
    for r in rejections() {
        let e = decode(&r.bytes).expect_err(r.name);
        assert_eq!(
            e.code, r.rule,
            "{}: rejected for another reason: {e}",
            r.name
        );
        let error = ExpectedError::of(&e);
        out.push(Vector {
            name: r.name.to_string(),
            covers: r.covers.to_string(),
            model: hex::encode(&r.bytes),
            id: hex::encode(keccak256(&r.bytes)),
            expect: Expect::Error { error },
        });
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
        input_quant: vec![Quant { scale, zero_point }],
        output_scale: scale,
        index_inputs: Vec::new(),
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
                vec![Node::MaxPool(MaxPool {
                    input: 0,
                    window: win([3, 3], [2, 2], [1, 1, 1, 1]),
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
                vec![Node::AvgPool(AvgPool {
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
                vec![Node::AvgPool(AvgPool {
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
                    Node::AvgPool(AvgPool {
                        input: 0,
                        window: win([2, 3], [1, 1], [0, 0, 0, 0]),
                        count_include_pad: false,
                    }),
                    Node::Reshape(Reshape {
                        input: 1,
                        shape: vec![3],
                    }),
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
                vec![Node::Clamp(Clamp {
                    input: 0,
                    min: -3,
                    max: 127,
                })],
            ),
            inputs: vec![all_int8()],
        },
        Case {
            name: "lut_sigmoid".into(),
            covers: "256-entry lookup table (a sigmoid table), every int8 value",
            model: model(
                vec![256],
                0,
                vec![Node::Lut(Lut {
                    input: 0,
                    zero_point: -128,
                    table: Box::new(std::array::from_fn(|i| {
                        let x = (i as f64 - 128.0) / 16.0;
                        ((256.0 / (1.0 + (-x).exp())).round() - 128.0).clamp(-128.0, 127.0) as i8
                    })),
                })],
            ),
            inputs: vec![all_int8()],
        },
        Case {
            name: "softmax_rows".into(),
            covers: "Softmax: uniform row, one dominant value, exact ties, full-range differences",
            model: model(
                vec![4, 4],
                0,
                vec![Node::Softmax(Softmax {
                    input: 0,
                    exp_table: Box::new(std::array::from_fn(|d| {
                        ((-(d as f64) / 16.0).exp() * 65535.0).round() as u16
                    })),
                })],
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
                vec![Node::Softmax(Softmax {
                    input: 0,
                    exp_table: Box::new(std::array::from_fn(|d| (d == 0) as u16)),
                })],
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
                    Node::Softmax(Softmax {
                        input: 2,
                        exp_table: Box::new(std::array::from_fn(|d| {
                            ((-(d as f64) / 10.0).exp() * 65535.0).round() as u16
                        })),
                    }),
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
                    Node::MaxPool(MaxPool {
                        input: 1,
                        window: win([2, 2], [2, 2], [0, 0, 0, 0]),
                    }),
                    Node::Reshape(Reshape {
                        input: 2,
                        shape: vec![18],
                    }),
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
        let len = myelin_precompile::validate::validate(model.clone())
            .map(|v| v.analysis().input_len())
            .unwrap_or(0);
        cs.push(Case {
            name: format!("random_{seed}"),
            covers: "random valid model (fixed seed)",
            inputs: vec![random::input(&mut rng, len)],
            model,
        });
    }
    cs.extend(edge_cases());
    for i in 0..80u64 {
        let mut rng = Rng::new(0x5EC0_0000 + i);
        let model = random::model_of(&random::spec(&mut rng, 8, 10));
        let len = myelin_precompile::validate::validate(model.clone())
            .map(|v| v.analysis().input_len())
            .unwrap_or(0);
        cs.push(Case {
            name: format!("random_spec_{i}"),
            covers:
                "random valid model from a structural spec (any rank, inputs up to 600 elements)",
            inputs: vec![random::input(&mut rng, len)],
            model,
        });
    }
    cs.extend(ops::cases());
    cs.extend(gather::cases());
    cs.extend(trees::cases());
    cs
}

/// Scale 1/256: the output scale a final Softmax fixes.
const PROB: Scale = Scale {
    mult: HALF,
    shift: -7,
};

/// `n` pseudo-random int8 values (SplitMix64 from `seed`).
fn rnd(seed: u64, n: usize) -> Vec<i8> {
    Rng::new(seed).bytes(n)
}

fn pool(input: TensorId, window: Window, count_include_pad: bool) -> AvgPool {
    AvgPool {
        input,
        window,
        count_include_pad,
    }
}

fn max_pool(input: TensorId, window: Window) -> MaxPool {
    MaxPool { input, window }
}

fn add(a: TensorId, b: TensorId, a_requant: Requant, b_requant: Requant, out: Output) -> Node {
    Node::Add(Add {
        a,
        b,
        a_requant,
        b_requant,
        out,
    })
}

fn softmax(input: TensorId, table: impl Fn(usize) -> u16) -> Node {
    Node::Softmax(Softmax {
        input,
        exp_table: Box::new(std::array::from_fn(table)),
    })
}

fn lut(input: TensorId, zero_point: i8, table: impl Fn(usize) -> i8) -> Node {
    Node::Lut(Lut {
        input,
        zero_point,
        table: Box::new(std::array::from_fn(table)),
    })
}

#[allow(clippy::too_many_arguments)]
fn conv1d(
    input: TensorId,
    oc: u32,
    groups: u32,
    kernel: u16,
    stride: u16,
    [pad_left, pad_right]: [u16; 2],
    out: Output,
    bias: Vec<i32>,
    weights: Vec<i8>,
) -> Node {
    Node::Conv(Conv {
        input,
        one_d: true,
        out_channels: oc,
        window: win([1, kernel], [1, stride], [0, pad_left, 0, pad_right]),
        groups,
        out,
        bias,
        weights,
    })
}

/// The behaviours issue 11 (item 5) found uncovered: rank 4, non-negative and extreme shifts,
/// long Softmax rows and ties, pooling edge cases, grouped Conv1d, degenerate clamps, graphs
/// that read older tensors or leave one unused, large inputs.
fn edge_cases() -> Vec<Case> {
    let identity_w =
        |n: usize| -> Vec<i8> { (0..n * n).map(|i| (i % (n + 1) == 0) as i8).collect() };
    vec![
        Case {
            name: "rank4_dense".into(),
            covers: "Dense over the last axis of a rank-4 [2, 2, 2, 3] input",
            model: model(
                vec![2, 2, 2, 3],
                3,
                vec![dense(
                    0,
                    4,
                    plain(vec![rq(0x5000_0000, -3)]),
                    vec![-20, 0, 20, 400],
                    seq(12, -60, 11),
                )],
            ),
            inputs: vec![seq(24, -128, 11), seq(24, 100, -9)],
        },
        Case {
            name: "rank4_chain".into(),
            covers: "rank-4 tensors through Reshape, Lut, Add, Clamp and a Softmax over the last axis",
            model: Model {
                output_scale: PROB,
                ..model(
                    vec![1, 2, 3, 4],
                    -2,
                    vec![
                        Node::Reshape(Reshape {
                            input: 0,
                            shape: vec![2, 3, 2, 2],
                        }),
                        lut(1, 5, |i| ((i * 7) % 256) as u8 as i8),
                        add(
                            2,
                            1,
                            rq(HALF, -1),
                            rq(0x6000_0000, -1),
                            plain(vec![rq(HALF, -19)]),
                        ),
                        Node::Clamp(Clamp {
                            input: 3,
                            min: -100,
                            max: 90,
                        }),
                        softmax(4, |d| ((-(d as f64) / 12.0).exp() * 65535.0).round() as u16),
                    ],
                )
            },
            inputs: vec![seq(24, -128, 11), seq(24, 127, -5)],
        },
        Case {
            name: "conv2d_shift_nonnegative".into(),
            covers: "Conv2d requantized with shift 0 and shift +2 (per channel)",
            model: model(
                vec![2, 4, 4],
                -5,
                vec![conv(
                    0,
                    2,
                    1,
                    win([2, 2], [1, 1], [0, 0, 0, 0]),
                    plain(vec![rq(HALF, 0), rq(0x7000_0000, 2)]),
                    vec![3, -3],
                    seq(16, -3, 1),
                )],
            ),
            inputs: vec![
                (0..32).map(|i| (i % 5) as i8 - 7).collect(),
                seq(32, -128, 8),
            ],
        },
        Case {
            name: "conv1d_shift_positive".into(),
            covers: "Conv1d requantized with shift +1",
            model: model(
                vec![2, 10],
                0,
                vec![conv1d(
                    0,
                    2,
                    1,
                    2,
                    1,
                    [1, 0],
                    plain(vec![rq(HALF, 1)]),
                    vec![0, 1],
                    vec![1, -1, 2, 0, -1, 1, 0, 1],
                )],
            ),
            inputs: vec![seq(20, -30, 3)],
        },
        Case {
            name: "dense_shift_30".into(),
            covers: "largest left shift (+30) with the only legal accumulators (|acc| <= 1), next to shift -31",
            model: model(
                vec![4],
                0,
                vec![dense(
                    0,
                    3,
                    output(
                        vec![rq(HALF, 30), rq(i32::MAX, 30), rq(HALF, -31)],
                        9,
                        -128,
                        127,
                    ),
                    vec![1, -1, 1],
                    vec![0; 12],
                )],
            ),
            inputs: vec![vec![1, 2, 3, 4]],
        },
        Case {
            name: "conv2d_shift_30".into(),
            covers: "Conv2d with shift +30: bias ±1 saturates, bias 0 gives the zero point",
            model: model(
                vec![1, 3, 3],
                0,
                vec![conv(
                    0,
                    3,
                    1,
                    win([2, 2], [1, 1], [0, 0, 0, 0]),
                    output(vec![rq(0x7FFF_0000, 30)], -9, -128, 127),
                    vec![1, -1, 0],
                    vec![0; 12],
                )],
            ),
            inputs: vec![seq(9, -128, 31)],
        },
        Case {
            name: "add_operand_left_shift".into(),
            covers: "Add with operand shifts +2 and +3 (the largest the overflow proof allows)",
            model: model(
                vec![8],
                3,
                vec![
                    dense(
                        0,
                        8,
                        output(vec![rq(HALF, 0)], -4, -128, 127),
                        vec![0; 8],
                        identity_w(8),
                    ),
                    add(
                        1,
                        0,
                        rq(HALF, 2),
                        rq(0x5555_5555, 3),
                        output(vec![rq(HALF, -23)], 6, -128, 127),
                    ),
                ],
            ),
            inputs: vec![seq(8, -128, 36), vec![3; 8], seq(8, 127, -33)],
        },
        Case {
            name: "add_output_left_shift".into(),
            covers: "Add whose output multiplier has shift +2",
            model: model(
                vec![6],
                -10,
                vec![
                    lut(0, 20, |i| (i as i32 / 2 - 64) as i8),
                    add(
                        1,
                        0,
                        rq(HALF, -20),
                        rq(HALF, -22),
                        output(vec![rq(HALF, 2)], -7, -128, 127),
                    ),
                ],
            ),
            inputs: vec![vec![-128, -10, 0, 5, 60, 127], vec![-11, -9, 20, 21, -50, 30]],
        },
        Case {
            name: "softmax_divround_ties".into(),
            covers: "Softmax DIVROUND ties (127.5 -> 128, 128.5 -> 129) and an exact 255/256",
            model: Model {
                output_scale: PROB,
                ..model(
                    vec![3, 2],
                    0,
                    vec![softmax(0, |d| match d {
                        0 => 255,
                        1 => 257,
                        _ => 1,
                    })],
                )
            },
            inputs: vec![vec![5, 4, 4, 4, 127, -128]],
        },
        Case {
            name: "softmax_ties_long_row".into(),
            covers: "Softmax over a 510-element row: S = 512 gives ties 1.5 -> 2 and 0.5 -> 1",
            model: Model {
                output_scale: PROB,
                ..model(
                    vec![510],
                    0,
                    vec![softmax(0, |d| match d {
                        0 => 3,
                        1 => 1,
                        _ => 0,
                    })],
                )
            },
            inputs: vec![
                [vec![50], vec![49; 509]].concat(),
                [vec![50, 50], vec![49; 508]].concat(),
            ],
        },
        Case {
            name: "softmax_sum_over_2_32".into(),
            covers: "Softmax over a 65538-element row: S = 2^32 + 65534 (all equal) and 2^31 < S < 2^32; the sum is int64",
            model: Model {
                output_scale: PROB,
                ..model(
                    vec![1, 18, 11],
                    0,
                    vec![
                        conv(
                            0,
                            331,
                            1,
                            win([1, 1], [1, 1], [0, 0, 0, 0]),
                            plain(vec![rq(HALF, -6)]),
                            vec![0; 331],
                            (0..331).map(|o| (o % 3) as i8 - 1).collect(),
                        ),
                        Node::Reshape(Reshape {
                            input: 1,
                            shape: vec![65538],
                        }),
                        softmax(2, |d| ((-(d as f64) / 32.0).exp() * 65535.0).round() as u16),
                    ],
                )
            },
            inputs: vec![vec![0; 198], seq(198, -128, 7)],
        },
        Case {
            name: "avgpool_ties".into(),
            covers: "AvgPool2d DIVROUND ties on both signs (0.5, -0.5, 1.5, -1.5, 63.5, -63.75)",
            model: model(
                vec![1, 2, 8],
                0,
                vec![Node::AvgPool(pool(0, win([2, 2], [2, 2], [0; 4]), false))],
            ),
            inputs: vec![
                [vec![1, 1, -1, -1, 3, 3, -3, -3], vec![0; 8]].concat(),
                [vec![127, 127, -128, -128, 127, 126, -127, -128], vec![0; 8]].concat(),
            ],
        },
        Case {
            name: "avgpool_asym_include_pad".into(),
            covers: "AvgPool2d 3x2, stride 2x1, pads top 2 / right 1, counting padding (zero point 7)",
            model: model(
                vec![2, 5, 4],
                7,
                vec![Node::AvgPool(pool(
                    0,
                    win([3, 2], [2, 1], [2, 0, 0, 1]),
                    true,
                ))],
            ),
            inputs: vec![seq(40, -128, 7), rnd(1, 40)],
        },
        Case {
            name: "avgpool_asym_exclude_pad".into(),
            covers: "the same asymmetric window without counting padding",
            model: model(
                vec![2, 5, 4],
                7,
                vec![Node::AvgPool(pool(
                    0,
                    win([3, 2], [2, 1], [2, 0, 0, 1]),
                    false,
                ))],
            ),
            inputs: vec![seq(40, -128, 7), rnd(1, 40)],
        },
        Case {
            name: "maxpool_kernel_5x4".into(),
            covers: "MaxPool2d with a 5x4 kernel, stride 1x2, pads 4/0/1/3",
            model: model(
                vec![2, 7, 9],
                0,
                vec![Node::MaxPool(max_pool(
                    0,
                    win([5, 4], [1, 2], [4, 0, 1, 3]),
                ))],
            ),
            inputs: vec![rnd(2, 126)],
        },
        Case {
            name: "avgpool_kernel_4x5_include_pad".into(),
            covers: "AvgPool2d with a 4x5 kernel, stride 2x3, pads 3/1/2/4, counting padding",
            model: model(
                vec![1, 6, 6],
                -20,
                vec![Node::AvgPool(pool(
                    0,
                    win([4, 5], [2, 3], [3, 1, 2, 4]),
                    true,
                ))],
            ),
            inputs: vec![rnd(3, 36)],
        },
        Case {
            name: "avgpool_stride_over_kernel".into(),
            covers: "AvgPool2d 2x2 with stride 3x4 (rows and columns skipped)",
            model: model(
                vec![1, 9, 10],
                0,
                vec![Node::AvgPool(pool(0, win([2, 2], [3, 4], [0; 4]), false))],
            ),
            inputs: vec![rnd(4, 90)],
        },
        Case {
            name: "maxpool_stride_over_kernel".into(),
            covers: "MaxPool2d 1x2 with stride 4x3 and side padding",
            model: model(
                vec![3, 8, 8],
                0,
                vec![Node::MaxPool(max_pool(
                    0,
                    win([1, 2], [4, 3], [0, 1, 0, 1]),
                ))],
            ),
            inputs: vec![rnd(5, 192)],
        },
        Case {
            name: "conv1d_grouped".into(),
            covers: "grouped, not depthwise, Conv1d: 4 -> 6 channels in 2 groups, kernel 3, stride 2",
            model: model(
                vec![4, 11],
                2,
                vec![conv1d(
                    0,
                    6,
                    2,
                    3,
                    2,
                    [1, 2],
                    plain(vec![
                        rq(HALF, -4),
                        rq(0x5000_0000, -4),
                        rq(0x6000_0000, -5),
                        rq(0x7000_0000, -3),
                        rq(i32::MAX, -6),
                        rq(0x4800_0000, -4),
                    ]),
                    vec![-100, -10, 0, 10, 100, 1000],
                    rnd(6, 36),
                )],
            ),
            inputs: vec![rnd(7, 44)],
        },
        Case {
            name: "clamp_min_eq_max".into(),
            covers: "Clamp with min = max: every value becomes 17",
            model: model(
                vec![256],
                0,
                vec![Node::Clamp(Clamp {
                    input: 0,
                    min: 17,
                    max: 17,
                })],
            ),
            inputs: vec![all_int8()],
        },
        Case {
            name: "clamp_min_eq_max_extremes".into(),
            covers: "Clamp to [-128, -128] then to [127, 127]",
            model: model(
                vec![256],
                0,
                vec![
                    Node::Clamp(Clamp {
                        input: 0,
                        min: -128,
                        max: -128,
                    }),
                    Node::Clamp(Clamp {
                        input: 1,
                        min: 127,
                        max: 127,
                    }),
                ],
            ),
            inputs: vec![all_int8()],
        },
        Case {
            name: "graph_older_and_unused".into(),
            covers: "nodes reading older tensors (the input, a tensor two nodes back) and an unused tensor",
            model: model(
                vec![6],
                0,
                vec![
                    dense(
                        0,
                        6,
                        output(vec![rq(HALF, -2)], 1, -128, 127),
                        vec![5, -5, 50, -50, 0, 7],
                        seq(36, -90, 5),
                    ),
                    lut(1, 0, |i| (127 - i as i32) as i8),
                    Node::Clamp(Clamp {
                        input: 0,
                        min: -50,
                        max: 50,
                    }),
                    dense(
                        1,
                        6,
                        plain(vec![rq(0x4800_0000, -7)]),
                        vec![0, 1, 2, 3, 4, 5],
                        seq(36, 100, -6),
                    ),
                    add(
                        4,
                        3,
                        rq(HALF, -1),
                        rq(HALF, -1),
                        output(vec![rq(HALF, -19)], 0, -128, 127),
                    ),
                ],
            ),
            inputs: vec![seq(6, -128, 50), seq(6, 127, -40)],
        },
        Case {
            name: "cnn_768_inputs".into(),
            covers: "a [3, 16, 16] input (768 elements): strided Conv2d with ReLU, MaxPool, Flatten, Dense",
            model: model(
                vec![3, 16, 16],
                -128,
                vec![
                    conv(
                        0,
                        4,
                        1,
                        win([3, 3], [2, 2], [1, 1, 1, 1]),
                        output(
                            vec![
                                rq(HALF, -10),
                                rq(0x5000_0000, -10),
                                rq(0x6000_0000, -11),
                                rq(0x7000_0000, -9),
                            ],
                            -128,
                            -128,
                            127,
                        ),
                        vec![-3000, 0, 3000, 100],
                        rnd(8, 108),
                    ),
                    Node::MaxPool(max_pool(1, win([2, 2], [2, 2], [0; 4]))),
                    Node::Reshape(Reshape {
                        input: 2,
                        shape: vec![64],
                    }),
                    dense(3, 5, plain(vec![rq(HALF, -11)]), vec![0; 5], rnd(9, 320)),
                ],
            ),
            inputs: vec![rnd(10, 768), rnd(11, 768)],
        },
        Case {
            name: "requant_edge_zero_point_pos".into(),
            covers: "accumulators ±(2^31 − 129) with multiplier 2^31 − 1 and zero point +127: bound(MBQ) + |zp| = 2^31 − 1 exactly",
            model: requant_edge_model(REQUANT_EDGE, 127),
            inputs: vec![vec![127], vec![-128], vec![0]],
        },
        Case {
            name: "requant_edge_zero_point_neg".into(),
            covers: "the same accumulators with zero point −127",
            model: requant_edge_model(REQUANT_EDGE, -127),
            inputs: vec![vec![127], vec![-128], vec![0]],
        },
        Case {
            name: "dense_600_inputs".into(),
            covers: "Dense over a [2, 300] input (600 elements, 300 per row)",
            model: model(
                vec![2, 300],
                0,
                vec![dense(
                    0,
                    3,
                    plain(vec![rq(HALF, -9)]),
                    vec![0, 1000, -1000],
                    rnd(12, 900),
                )],
            ),
            inputs: vec![rnd(13, 600)],
        },
    ]
}

/// Offset of the first node's tag in a model whose input has rank 1.
const RANK1_TAG: usize = 4 + 1 + 5 + 5 + 1 + 5 + 2;

/// A valid one-Dense model (input `[4]`) that the rejections break one field at a time.
fn base() -> Model {
    model(
        vec![4],
        0,
        vec![dense(
            0,
            2,
            plain(vec![rq(HALF, -3)]),
            vec![1, -1],
            vec![1, 2, 3, 4, 5, 6, 7, 8],
        )],
    )
}

/// `base()` with its Dense changed by `f`.
fn base_dense(f: impl FnOnce(&mut Dense)) -> Vec<u8> {
    let mut m = base();
    if let Node::Dense(d) = &mut m.nodes[0] {
        f(d);
    }
    encode(&m)
}

/// `base()` with `node` appended (it reads tensor 1, `[2]`, or whatever it names).
fn base_then(node: Node) -> Vec<u8> {
    let mut m = base();
    m.nodes.push(node);
    encode(&m)
}

/// A one-node model.
fn single(input_shape: Vec<u32>, node: Node) -> Vec<u8> {
    encode(&model(input_shape, 0, vec![node]))
}

fn conv_on(input_shape: Vec<u32>, oc: u32, groups: u32, window: Window) -> Vec<u8> {
    let c = input_shape[0];
    let fan_in =
        (c / groups.max(1)) as usize * window.kernel[0] as usize * window.kernel[1] as usize;
    single(
        input_shape,
        conv(
            0,
            oc,
            groups,
            window,
            plain(vec![rq(HALF, -3)]),
            vec![0; oc as usize],
            vec![1; oc as usize * fan_in],
        ),
    )
}

fn add_of(a_requant: Requant, b_requant: Requant, out: Requant) -> Vec<u8> {
    single(vec![4], add(0, 0, a_requant, b_requant, plain(vec![out])))
}

fn patched(mut bytes: Vec<u8>, at: usize, value: u8) -> Vec<u8> {
    bytes[at] = value;
    bytes
}

fn clamps(input_shape: Vec<u32>, n: usize) -> Vec<u8> {
    let nodes = (0..n)
        .map(|i| {
            Node::Clamp(Clamp {
                input: i as TensorId,
                min: -1,
                max: 1,
            })
        })
        .collect();
    encode(&model(input_shape, 0, nodes))
}

/// One invalid model per validation rule of `docs/SPEC.md` §4 that a small model can break.
/// (Not covered: the 16 MiB size limit and the 2^30 MAC limit need models of megabytes or
/// over 64 KiB; `precompile/tests/malformed.rs` covers them.)
pub fn rejections() -> Vec<Rejection> {
    let ok = encode(&base());
    let r = |name, covers, bytes, rule| Rejection {
        name,
        covers,
        bytes,
        rule,
    };
    let square = |k: u16, s: u16, p: u16| win([k, k], [s, s], [p; 4]);
    vec![
        r("reject_empty", "no bytes at all", vec![], Code::Truncated),
        r(
            "reject_bad_magic",
            "magic is not MYLN",
            patched(ok.clone(), 0, b'X'),
            Code::BadMagic,
        ),
        r(
            "reject_version_5",
            "format version 5",
            patched(ok.clone(), 4, 5),
            Code::BadVersion,
        ),
        r(
            "reject_version_0",
            "format version 0",
            patched(ok.clone(), 4, 0),
            Code::BadVersion,
        ),
        r(
            "reject_truncated_header",
            "ends inside the input scale",
            ok[..12].to_vec(),
            Code::Truncated,
        ),
        r(
            "reject_truncated_weights",
            "ends one byte before the last weight",
            ok[..ok.len() - 1].to_vec(),
            Code::Truncated,
        ),
        r(
            "reject_trailing_byte",
            "one byte after the last node",
            [ok.clone(), vec![0]].concat(),
            Code::TrailingBytes,
        ),
        r(
            "reject_op_tag_0",
            "op tag 0x00",
            patched(ok.clone(), RANK1_TAG, 0x00),
            Code::UnknownOp,
        ),
        r(
            "reject_op_tag_18",
            "op tag 0x18 (one past TreeEnsemble, the last op)",
            patched(ok.clone(), RANK1_TAG, 0x18),
            Code::UnknownOp,
        ),
        r(
            "reject_per_channel_flag_2",
            "per_channel flag = 2",
            patched(ok.clone(), RANK1_TAG + 7, 2),
            Code::BadFlag,
        ),
        r(
            "reject_count_include_pad_2",
            "count_include_pad flag = 2",
            {
                let b = single(vec![1, 2, 2], Node::AvgPool(pool(0, square(2, 1, 1), true)));
                let last = b.len() - 1;
                patched(b, last, 2)
            },
            Code::BadFlag,
        ),
        r(
            "reject_per_channel_one_channel",
            "per_channel = 1 on a layer with one output channel",
            base_dense(|d| {
                d.out_features = 1;
                d.out.requant = vec![rq(HALF, -3), rq(HALF, -2)];
                d.bias = vec![0];
                d.weights = vec![1; 4];
            }),
            Code::PerChannelNotCanonical,
        ),
        r(
            "reject_requant_mult_small",
            "requant mult 2^30 - 1 (not normalised)",
            base_dense(|d| d.out.requant = vec![rq(HALF - 1, -3)]),
            Code::MultNotNormalized,
        ),
        r(
            "reject_requant_mult_negative",
            "negative requant mult",
            base_dense(|d| d.out.requant = vec![rq(-HALF, -3)]),
            Code::MultNotNormalized,
        ),
        r(
            "reject_input_scale_small",
            "input scale mult below 2^30",
            encode(&Model {
                input_quant: vec![Quant {
                    scale: Scale {
                        mult: 12345,
                        shift: -6,
                    },
                    zero_point: 0,
                }],
                ..base()
            }),
            Code::MultNotNormalized,
        ),
        r(
            "reject_output_scale_small",
            "output scale mult below 2^30",
            encode(&Model {
                output_scale: Scale { mult: 0, shift: -6 },
                ..base()
            }),
            Code::MultNotNormalized,
        ),
        r(
            "reject_add_requant_small",
            "Add operand multiplier below 2^30",
            add_of(rq(7, -1), rq(HALF, -1), rq(HALF, -19)),
            Code::MultNotNormalized,
        ),
        r(
            "reject_requant_shift_31",
            "requant shift +31",
            base_dense(|d| d.out.requant = vec![rq(HALF, 31)]),
            Code::ShiftOutOfRange,
        ),
        r(
            "reject_requant_shift_minus_32",
            "requant shift -32",
            base_dense(|d| d.out.requant = vec![rq(HALF, -32)]),
            Code::ShiftOutOfRange,
        ),
        r(
            "reject_add_shift_minus_32",
            "Add output shift -32",
            add_of(rq(HALF, -1), rq(HALF, -1), rq(HALF, -32)),
            Code::ShiftOutOfRange,
        ),
        r(
            "reject_zero_nodes",
            "a graph without nodes",
            encode(&model(vec![4], 0, vec![])),
            Code::NodeCount,
        ),
        r(
            "reject_257_nodes",
            "257 nodes (limit 256)",
            clamps(vec![4], 257),
            Code::NodeCount,
        ),
        r(
            "reject_reads_own_output",
            "node 0 reads tensor 1, its own output",
            base_dense(|d| d.input = 1),
            Code::BadTensorRef,
        ),
        r(
            "reject_reads_later_tensor",
            "node 1 reads tensor 3, produced later",
            encode(&Model {
                // Built without `model()`, which infers the output scale of valid graphs only.
                nodes: vec![
                    Node::Clamp(Clamp {
                        input: 0,
                        min: -1,
                        max: 1,
                    }),
                    Node::Clamp(Clamp {
                        input: 3,
                        min: -1,
                        max: 1,
                    }),
                    Node::Clamp(Clamp {
                        input: 2,
                        min: -1,
                        max: 1,
                    }),
                ],
                ..model(vec![4], 0, vec![])
            }),
            Code::BadTensorRef,
        ),
        r(
            "reject_add_operand_later",
            "Add's second operand is its own output",
            single(
                vec![4],
                add(0, 1, rq(HALF, -1), rq(HALF, -1), plain(vec![rq(HALF, -19)])),
            ),
            Code::BadTensorRef,
        ),
        r(
            "reject_input_rank_0",
            "input of rank 0",
            single(
                vec![],
                Node::Clamp(Clamp {
                    input: 0,
                    min: 0,
                    max: 1,
                }),
            ),
            Code::BadRank,
        ),
        r(
            "reject_input_rank_5",
            "input of rank 5",
            single(
                vec![1, 1, 1, 1, 4],
                Node::Clamp(Clamp {
                    input: 0,
                    min: 0,
                    max: 1,
                }),
            ),
            Code::BadRank,
        ),
        r(
            "reject_input_zero_dim",
            "input dimension 0",
            single(
                vec![3, 0],
                Node::Clamp(Clamp {
                    input: 0,
                    min: 0,
                    max: 1,
                }),
            ),
            Code::ZeroDim,
        ),
        r(
            "reject_input_over_2_20",
            "input of 2^20 + 1 elements",
            single(
                vec![(1 << 20) + 1],
                Node::Clamp(Clamp {
                    input: 0,
                    min: 0,
                    max: 1,
                }),
            ),
            Code::TensorTooLarge,
        ),
        r(
            "reject_reshape_rank_5",
            "Reshape to rank 5",
            base_then(Node::Reshape(Reshape {
                input: 1,
                shape: vec![1, 1, 1, 1, 2],
            })),
            Code::BadRank,
        ),
        r(
            "reject_reshape_zero_dim",
            "Reshape to a shape with a 0",
            base_then(Node::Reshape(Reshape {
                input: 1,
                shape: vec![2, 0],
            })),
            Code::ZeroDim,
        ),
        r(
            "reject_reshape_count",
            "Reshape [2] to [3]",
            base_then(Node::Reshape(Reshape {
                input: 1,
                shape: vec![3],
            })),
            Code::ReshapeMismatch,
        ),
        r(
            "reject_tensor_over_2_20",
            "a Conv2d output of 2^21 elements",
            conv_on(vec![1, 1024, 1024], 2, 1, square(1, 1, 0)),
            Code::TensorTooLarge,
        ),
        r(
            "reject_conv2d_rank_2",
            "Conv2d on a rank-2 tensor",
            conv_on(vec![2, 4], 1, 1, square(1, 1, 0)),
            Code::InputRank,
        ),
        r(
            "reject_conv1d_rank_3",
            "Conv1d on a rank-3 tensor",
            single(
                vec![1, 2, 4],
                conv1d(
                    0,
                    1,
                    1,
                    1,
                    1,
                    [0, 0],
                    plain(vec![rq(HALF, -3)]),
                    vec![0],
                    vec![1],
                ),
            ),
            Code::InputRank,
        ),
        r(
            "reject_maxpool_rank_1",
            "MaxPool2d on a rank-1 tensor",
            base_then(Node::MaxPool(max_pool(1, square(1, 1, 0)))),
            Code::InputRank,
        ),
        r(
            "reject_avgpool_rank_4",
            "AvgPool2d on a rank-4 tensor",
            single(
                vec![1, 1, 2, 2],
                Node::AvgPool(pool(0, square(1, 1, 0), false)),
            ),
            Code::InputRank,
        ),
        r(
            "reject_groups_0",
            "Conv2d with 0 groups",
            conv_on(vec![2, 3, 3], 2, 0, square(1, 1, 0)),
            Code::BadGroups,
        ),
        r(
            "reject_groups_input",
            "2 groups over 3 input channels",
            conv_on(vec![3, 3, 3], 2, 2, square(1, 1, 0)),
            Code::BadGroups,
        ),
        r(
            "reject_groups_output",
            "2 groups over 3 output channels",
            conv_on(vec![2, 3, 3], 3, 2, square(1, 1, 0)),
            Code::BadGroups,
        ),
        r(
            "reject_conv_zero_channels",
            "Conv2d with 0 output channels",
            conv_on(vec![1, 3, 3], 0, 1, square(1, 1, 0)),
            Code::ZeroDim,
        ),
        r(
            "reject_dense_zero_features",
            "Dense with 0 output features",
            base_dense(|d| {
                d.out_features = 0;
                d.bias = vec![];
                d.weights = vec![];
            }),
            Code::ZeroDim,
        ),
        r(
            "reject_kernel_0",
            "MaxPool2d with a 0x0 kernel",
            single(vec![1, 3, 3], Node::MaxPool(max_pool(0, square(0, 1, 0)))),
            Code::ZeroKernelOrStride,
        ),
        r(
            "reject_stride_0",
            "Conv2d with stride 0",
            conv_on(vec![1, 3, 3], 1, 1, square(2, 0, 0)),
            Code::ZeroKernelOrStride,
        ),
        r(
            "reject_pad_eq_kernel",
            "padding 3 with kernel 3",
            conv_on(vec![1, 3, 3], 1, 1, square(3, 1, 3)),
            Code::PadTooLarge,
        ),
        r(
            "reject_kernel_over_input",
            "a 5x5 window on a 3x3 map padded by 0",
            single(
                vec![1, 3, 3],
                Node::AvgPool(pool(0, square(5, 1, 0), false)),
            ),
            Code::KernelTooLarge,
        ),
        r(
            "reject_add_shapes",
            "Add of [2] and [4]",
            base_then(add(
                1,
                0,
                rq(HALF, -1),
                rq(HALF, -1),
                plain(vec![rq(HALF, -19)]),
            )),
            Code::AddShapeMismatch,
        ),
        r(
            "reject_act_range_empty",
            "fused activation range [5, 4]",
            base_dense(|d| (d.out.act_min, d.out.act_max) = (5, 4)),
            Code::EmptyClamp,
        ),
        r(
            "reject_clamp_empty",
            "Clamp range [5, 4]",
            base_then(Node::Clamp(Clamp {
                input: 1,
                min: 5,
                max: 4,
            })),
            Code::EmptyClamp,
        ),
        r(
            "reject_softmax_exp0",
            "Softmax with exp_table[0] = 0",
            base_then(softmax(1, |_| 0)),
            Code::ExpTableZero,
        ),
        r(
            "reject_dense_bias_overflow",
            "|bias| + 255 * sum|w| above 2^31 - 1",
            base_dense(|d| d.bias = vec![i32::MAX - 100, 0]),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_dense_shift_overflow",
            "the accumulator bound times 2^shift above 2^31 - 1",
            base_dense(|d| d.out.requant = vec![rq(HALF, 30)]),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_conv_weight_overflow",
            "a Conv2d channel whose weights and bias can exceed int32",
            single(
                vec![1, 2, 2],
                conv(
                    0,
                    1,
                    1,
                    square(2, 1, 0),
                    plain(vec![rq(HALF, -3)]),
                    vec![i32::MIN + 1],
                    vec![1; 4],
                ),
            ),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_add_operand_shift",
            "Add operand shift +4: 255 * 2^24 overflows",
            add_of(rq(HALF, 4), rq(HALF, -1), rq(HALF, -19)),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_add_output_shift",
            "Add output shift +4 on a sum near 2^29",
            add_of(rq(i32::MAX, 0), rq(i32::MAX, 0), rq(HALF, 4)),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_im2col_limit",
            "a 3x3 Conv2d over a 1024x1024 map: im2col 9 * 2^20 > 2^22",
            conv_on(vec![1, 1024, 1024], 1, 1, square(3, 1, 1)),
            Code::Im2colTooLarge,
        ),
        r(
            "reject_elementwise_limit",
            "a 64x64 MaxPool over a 1024x1024 map: over 2^26 elementwise steps",
            single(
                vec![1, 1024, 1024],
                Node::MaxPool(max_pool(0, square(64, 1, 0))),
            ),
            Code::TooManyElems,
        ),
        r(
            "reject_activation_limit",
            "16 Clamps of a 2^20-element input: 17 * 2^20 activation elements > 2^24",
            clamps(vec![1 << 20], 16),
            Code::TooManyActivations,
        ),
        r(
            "reject_scale_shift_64",
            "input scale shift 64 (scales take -64..=63)",
            encode(&Model {
                input_quant: vec![Quant {
                    scale: Scale {
                        mult: HALF,
                        shift: 64,
                    },
                    zero_point: 0,
                }],
                ..base()
            }),
            Code::ShiftOutOfRange,
        ),
        r(
            "reject_softmax_output_scale",
            "a Softmax output declared with scale 1/128 instead of the fixed 1/256",
            encode(&Model {
                output_scale: Scale {
                    mult: HALF,
                    shift: -6,
                },
                ..model(vec![4], 0, vec![softmax(0, |_| 1)])
            }),
            Code::OutputScaleMismatch,
        ),
        r(
            "reject_pool_output_scale",
            "a MaxPool-only graph declaring an output scale other than the input's",
            encode(&Model {
                output_scale: PROB,
                ..model(
                    vec![1, 2, 2],
                    0,
                    vec![Node::MaxPool(max_pool(0, square(2, 1, 0)))],
                )
            }),
            Code::OutputScaleMismatch,
        ),
        r(
            "reject_per_channel_all_equal",
            "per_channel = 1 with every multiplier equal",
            base_dense(|d| d.out.requant = vec![rq(HALF, -3), rq(HALF, -3)]),
            Code::PerChannelNotCanonical,
        ),
        r(
            "reject_count_include_pad_no_pads",
            "count_include_pad = 1 with all pads zero",
            single(vec![1, 2, 2], Node::AvgPool(pool(0, square(2, 1, 0), true))),
            Code::PadFlagNotCanonical,
        ),
        r(
            "reject_requant_zero_point_pos",
            "bound(MBQ) + |zero point| = 2^31 with zero point +127",
            requant_edge(REQUANT_EDGE + 1, 127),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_requant_zero_point_neg",
            "bound(MBQ) + |zero point| = 2^31 with zero point -128",
            requant_edge(REQUANT_EDGE, -128),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_add_zero_point",
            "Add: S = 2^31 - 128 fits, but bound(S, out) + |zero point -128| = 2^31 + 1",
            single(
                vec![4],
                add(
                    0,
                    0,
                    rq(1_077_952_510, 3),
                    rq(1_077_952_510, 3),
                    output(vec![rq(i32::MAX, 0)], -128, -128, 127),
                ),
            ),
            Code::AccumulatorOverflow,
        ),
    ]
    .into_iter()
    .chain(ops::rejections())
    .chain(gather::rejections())
    .chain(trees::rejections())
    .collect()
}

/// Largest `|bias| + 255 · Σ|w|` with multiplier `(2^31 − 1, 0)` and zero point ±127 that
/// passes `bound(B) + |zero_point| ≤ 2^31 − 1`: `bound = ⌊B · (2^31 − 1) / 2^31⌋ + 2 = B + 1`.
const REQUANT_EDGE: i64 = (1 << 31) - 129;

/// A Dense `[1] → [2]` whose channels reach accumulators `+b` and `−b` (input zero point
/// −128, so `x − zp` spans 0..=255), with `b` = `bound_b` and output zero point `zero_point`.
fn requant_edge(bound_b: i64, zero_point: i8) -> Vec<u8> {
    encode(&requant_edge_model(bound_b, zero_point))
}

fn requant_edge_model(bound_b: i64, zero_point: i8) -> Model {
    let bias = (bound_b - 255) as i32;
    model(
        vec![1],
        -128,
        vec![dense(
            0,
            2,
            output(vec![rq(i32::MAX, 0)], zero_point, -128, 127),
            vec![bias, -bias],
            vec![1, -1],
        )],
    )
}
