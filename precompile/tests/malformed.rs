//! Every way a model can be malformed is rejected with its exact `(code, node)` (SPEC §4, §8),
//! never a panic; when several checks fail, the first in SPEC order decides; and the decoder
//! and the in-memory validator agree on every model the encoding can express.

use myelin_precompile::error::{Code, HEADER};
use myelin_precompile::model::*;
use myelin_precompile::random::{self, Rng};
use myelin_precompile::validate::{self, SOFTMAX_SCALE};
use myelin_precompile::{decode, encode, reference, Engine, ModelError};

fn small() -> Model {
    Model {
        input_shape: vec![4],
        input_quant: vec![Quant {
            scale: Scale {
                mult: 1 << 30,
                shift: -6,
            },
            zero_point: 0,
        }],
        output_scale: Scale {
            mult: 1 << 30,
            shift: -6,
        },
        index_inputs: Vec::new(),
        nodes: vec![Node::Dense(Dense {
            input: 0,
            out_features: 2,
            out: Output {
                requant: vec![Scale {
                    mult: 1 << 30,
                    shift: -3,
                }],
                zero_point: 0,
                act_min: -128,
                act_max: 127,
            },
            bias: vec![1, -1],
            weights: vec![1, 2, 3, 4, 5, 6, 7, 8],
        })],
    }
}

/// Bytes of the header of `small()`: magic version rank dim scale zp scale n_nodes.
const HEADER_LEN: usize = 4 + 1 + 1 + 4 + 5 + 1 + 5 + 2;

fn dense_mut(m: &mut Model) -> &mut Dense {
    match &mut m.nodes[0] {
        Node::Dense(d) => d,
        _ => unreachable!(),
    }
}

fn identity_window() -> Window {
    Window {
        kernel: [1, 1],
        stride: [1, 1],
        pads: [0; 4],
    }
}

/// `(code, node)` of decoding `bytes`, the pair the precompile returns.
fn err(bytes: &[u8]) -> (Code, u16) {
    match decode(bytes) {
        Err(ModelError { code, node, .. }) => (code, node),
        Ok(_) => panic!("model must be rejected"),
    }
}

/// `(code, node)` of an in-memory model, checked both ways: encoded and decoded, and by the
/// validator directly. Both must name the same check.
fn reject(m: &Model) -> (Code, u16) {
    let decoded = err(&encode(m));
    let e = validate::validate(m.clone()).expect_err("the validator must reject it too");
    assert_eq!((e.code, e.node), decoded, "decoder and validator disagree");
    decoded
}

#[test]
fn valid_model_round_trips() {
    let bytes = encode(&small());
    let v = decode(&bytes).unwrap();
    assert_eq!(v.model(), &small());
    // 4 inputs × 2 outputs, charged as the kernel runs it: one 16-column panel.
    assert_eq!(v.analysis().total.macs, 4 * 16);
}

#[test]
fn every_truncation_is_rejected() {
    let bytes = encode(&small());
    for n in 0..bytes.len() {
        let node = if n < HEADER_LEN { HEADER } else { 0 };
        assert_eq!(
            err(&bytes[..n]),
            (Code::Truncated, node),
            "prefix of {n} bytes"
        );
    }
}

#[test]
fn header_errors() {
    let mut bytes = encode(&small());
    bytes.push(0);
    assert_eq!(err(&bytes), (Code::TrailingBytes, HEADER));
    let mut bytes = encode(&small());
    bytes[0] = b'X';
    assert_eq!(err(&bytes), (Code::BadMagic, HEADER));
    let mut bytes = encode(&small());
    bytes[4] = 5;
    assert_eq!(err(&bytes), (Code::BadVersion, HEADER));
    assert_eq!(
        err(&vec![0; (1 << 24) + 1]),
        (Code::TooLarge, HEADER),
        "size is checked before the magic"
    );
    let mut m = small();
    m.nodes.clear();
    assert_eq!(reject(&m), (Code::NodeCount, HEADER));
}

/// `small()` with an index input of `limits` whose ids 0..2 a Gather of 3 rows looks up,
/// its `[2, 4]` rows added to the Dense's input: a v2 model.
fn indexed(limits: Vec<u16>) -> Model {
    let mut m = small();
    m.index_inputs = vec![IndexInput { limits }];
    m.nodes.push(Node::Gather(Gather {
        index: 0,
        start: 0,
        count: 2,
        rows: 3,
        dim: 4,
        zero_point: 5,
        table: (0..12).collect(),
    }));
    m
}

fn gather(m: &mut Model) -> &mut Gather {
    match &mut m.nodes[1] {
        Node::Gather(g) => g,
        _ => unreachable!(),
    }
}

#[test]
fn index_input_errors() {
    // Only the ids read count: the third id's limit of 9 needs no 9th row.
    let good = indexed(vec![3, 2, 9]);
    let bytes = encode(&good);
    assert_eq!(bytes[4], 2, "a model with index inputs is version 2");
    assert_eq!(decode(&bytes).unwrap().model(), &good);
    for n in 0..bytes.len() {
        assert_eq!(err(&bytes[..n]).0, Code::Truncated, "prefix of {n} bytes");
    }
    // The list sits between the output scale and n_nodes.
    let at = HEADER_LEN - 2;
    let mut v2_empty = encode(&small());
    v2_empty[4] = 2;
    v2_empty.insert(at, 0);
    assert_eq!(err(&v2_empty), (Code::BadIndexInputs, HEADER));
    let mut many = good.clone();
    many.index_inputs = vec![IndexInput { limits: vec![3] }; 9];
    assert_eq!(reject(&many), (Code::BadIndexInputs, HEADER));
    for limits in [vec![], vec![3; 1025], vec![3, 0, 9]] {
        assert_eq!(reject(&indexed(limits)), (Code::BadIndexInputs, HEADER));
    }
    for (change, code) in [
        (&|g: &mut Gather| g.index = 1, Code::BadIndexRead),
        (&|g: &mut Gather| g.count = 0, Code::BadIndexRead),
        (&|g: &mut Gather| g.start = 2, Code::BadIndexRead),
        (&|g: &mut Gather| g.rows = 2, Code::TableTooSmall),
    ] as [(&dyn Fn(&mut Gather), Code); 4]
    {
        let mut m = good.clone();
        change(gather(&mut m));
        let g = gather(&mut m);
        g.table.resize(g.rows as usize * g.dim as usize, 0);
        assert_eq!(reject(&m), (code, 1));
    }
    let mut m = good.clone();
    gather(&mut m).dim = 0;
    gather(&mut m).table.clear();
    assert_eq!(reject(&m), (Code::ZeroDim, 1));
    // A v1 model has no index inputs to read.
    let mut m = good.clone();
    m.index_inputs.clear();
    assert_eq!(reject(&m), (Code::BadIndexRead, 1));
}

#[test]
fn unknown_op_tag() {
    let mut bytes = encode(&small());
    assert_eq!(bytes[HEADER_LEN], 0x01);
    bytes[HEADER_LEN] = 0x7F;
    assert_eq!(err(&bytes), (Code::UnknownOp, 0));
    bytes[HEADER_LEN] = 0x00;
    assert_eq!(err(&bytes), (Code::UnknownOp, 0));
}

#[test]
fn declared_shapes() {
    let mut m = small();
    m.input_shape = vec![1 << 16, 1 << 16, 4];
    assert_eq!(reject(&m), (Code::TensorTooLarge, HEADER));
    let mut m = small();
    m.input_shape = vec![0, 4];
    assert_eq!(reject(&m), (Code::ZeroDim, HEADER));
    let mut m = small();
    m.input_shape = vec![1, 1, 1, 1, 4];
    assert_eq!(reject(&m), (Code::BadRank, HEADER));
    // A Reshape's declared shape, at its node.
    let mut m = small();
    m.nodes.push(Node::Reshape(Reshape {
        input: 1,
        shape: vec![],
    }));
    assert_eq!(reject(&m), (Code::BadRank, 1));
    m.nodes[1] = Node::Reshape(Reshape {
        input: 1,
        shape: vec![2, 0],
    });
    assert_eq!(reject(&m), (Code::ZeroDim, 1));
    m.nodes[1] = Node::Reshape(Reshape {
        input: 1,
        shape: vec![3],
    });
    assert_eq!(reject(&m), (Code::ReshapeMismatch, 1));
    // A pool whose output outgrows the limit, through padding.
    let mut m = small();
    m.input_shape = vec![1, 1, 1];
    m.nodes = vec![Node::MaxPool(MaxPool {
        input: 0,
        window: Window {
            kernel: [2000, 2000],
            stride: [1, 1],
            pads: [1999; 4],
        },
    })];
    m.output_scale = m.input_quant[0].scale;
    assert_eq!(reject(&m), (Code::TensorTooLarge, 0));
}

#[test]
fn huge_declared_arrays_fail_before_allocating() {
    let mut m = small();
    dense_mut(&mut m).out_features = u32::MAX;
    // The declared bias/weights would need 16+ GiB: it is reported as truncation at once.
    assert_eq!(err(&encode(&m)), (Code::Truncated, 0));
}

#[test]
fn scales_and_multipliers() {
    let mut m = small();
    dense_mut(&mut m).out.requant = vec![Scale {
        mult: (1 << 30) - 1,
        shift: -3,
    }];
    assert_eq!(reject(&m), (Code::MultNotNormalized, 0));
    let mut m = small();
    dense_mut(&mut m).out.requant = vec![Scale {
        mult: 1 << 30,
        shift: -32,
    }];
    assert_eq!(reject(&m), (Code::ShiftOutOfRange, 0));
    let mut m = small();
    m.input_quant[0].scale.mult = 12345;
    assert_eq!(reject(&m), (Code::MultNotNormalized, HEADER));
    let mut m = small();
    m.output_scale.mult = -1;
    assert_eq!(reject(&m), (Code::MultNotNormalized, HEADER));
    // Input and output scale shifts: −64..=63.
    for (shift, ok) in [(-65, false), (-64, true), (63, true), (64, false)] {
        for input in [true, false] {
            let mut m = small();
            let s = if input {
                &mut m.input_quant[0].scale.shift
            } else {
                &mut m.output_scale.shift
            };
            *s = shift;
            if ok {
                assert!(decode(&encode(&m)).is_ok(), "shift {shift}");
            } else {
                assert_eq!(reject(&m), (Code::ShiftOutOfRange, HEADER), "shift {shift}");
            }
        }
    }
}

#[test]
fn flags_and_canonical_forms() {
    // per_channel must be 0 or 1
    let mut bytes = encode(&small());
    let flag_at = HEADER_LEN + 1 + 2 + 4;
    assert_eq!(bytes[flag_at], 0);
    bytes[flag_at] = 2;
    assert_eq!(err(&bytes), (Code::BadFlag, 0));
    // per_channel = 1 on one channel: rejected as soon as the flag is read
    let mut m = small();
    let d = dense_mut(&mut m);
    d.out_features = 1;
    d.bias = vec![0];
    d.weights = vec![1; 4];
    let mut bytes = encode(&m);
    bytes[flag_at] = 1;
    assert_eq!(err(&bytes), (Code::PerChannelNotCanonical, 0));
    // per_channel = 1 with equal multipliers: one function, two encodings
    let mut m = small();
    let rq = dense_mut(&mut m).out.requant[0];
    dense_mut(&mut m).out.requant = vec![rq, rq];
    assert_eq!(reject(&m), (Code::PerChannelNotCanonical, 0));
    dense_mut(&mut m).out.requant[1].mult += 1;
    assert!(decode(&encode(&m)).is_ok());
    // count_include_pad = 1 without padding
    let pool = |pads: [u16; 4], flag: bool| {
        let mut m = small();
        m.input_shape = vec![1, 2, 2];
        m.output_scale = m.input_quant[0].scale;
        m.nodes = vec![Node::AvgPool(AvgPool {
            input: 0,
            window: Window {
                kernel: [2, 2],
                stride: [1, 1],
                pads,
            },
            count_include_pad: flag,
        })];
        m
    };
    assert_eq!(reject(&pool([0; 4], true)), (Code::PadFlagNotCanonical, 0));
    assert!(decode(&encode(&pool([0; 4], false))).is_ok());
    assert!(decode(&encode(&pool([0, 0, 0, 1], true))).is_ok());
    let mut bytes = encode(&pool([0; 4], false));
    *bytes.last_mut().unwrap() = 2;
    assert_eq!(err(&bytes), (Code::BadFlag, 0));
}

#[test]
fn output_scale_fixed_by_the_graph() {
    let softmax = |output_scale: Scale, reshape: bool| {
        let mut m = small();
        m.output_scale = output_scale;
        m.nodes.push(Node::Softmax(Softmax {
            input: 1,
            exp_table: Box::new([1; 256]),
        }));
        if reshape {
            m.nodes.push(Node::Reshape(Reshape {
                input: 2,
                shape: vec![1, 2],
            }));
        }
        m
    };
    assert_eq!(
        SOFTMAX_SCALE.to_f64(),
        1.0 / 256.0,
        "mult 2^30, shift −7 is 1/256"
    );
    for reshape in [false, true] {
        assert!(decode(&encode(&softmax(SOFTMAX_SCALE, reshape))).is_ok());
        let other = Scale {
            mult: (1 << 30) + 1,
            shift: -7,
        };
        assert_eq!(
            reject(&softmax(other, reshape)),
            (Code::OutputScaleMismatch, HEADER)
        );
    }
    // A graph that only clamps its input keeps the input's scale.
    let mut m = small();
    m.nodes = vec![Node::Clamp(Clamp {
        input: 0,
        min: 0,
        max: 127,
    })];
    m.output_scale.shift = -5;
    assert_eq!(reject(&m), (Code::OutputScaleMismatch, HEADER));
    m.output_scale = m.input_quant[0].scale;
    assert!(decode(&encode(&m)).is_ok());
}

/// A one-weight Dense at the requantization bound: `|MBQ(acc)| + |zero_point| ≤ 2^31 − 1`
/// with `mult = 2^31 − 1`, shift 0 (SPEC §4: `bound(MBQ(B)) = B + 1` here, so the largest
/// accumulator bound `B = |bias| + 255` allowed is `2^31 − 2 − |zero_point|`).
fn edge(bias: i32, input_zp: i8, zero_point: i8) -> Model {
    Model {
        input_shape: vec![1],
        input_quant: vec![Quant {
            scale: Scale {
                mult: 1 << 30,
                shift: 0,
            },
            zero_point: input_zp,
        }],
        output_scale: Scale {
            mult: 1 << 30,
            shift: 0,
        },
        index_inputs: Vec::new(),
        nodes: vec![Node::Dense(Dense {
            input: 0,
            out_features: 1,
            out: Output {
                requant: vec![Scale {
                    mult: i32::MAX,
                    shift: 0,
                }],
                zero_point,
                act_min: -128,
                act_max: 127,
            },
            bias: vec![bias],
            weights: vec![1],
        })],
    }
}

#[test]
fn requantization_bound_edge_on_both_signs() {
    const MAX: i64 = i32::MAX as i64;
    // Positive: acc = bias + (x + 128) reaches B = 2^31 − 129 at x = 127; zero point +127.
    let pos = (MAX - 1 - 127 - 255) as i32;
    // Negative: acc = bias + (x − 127) reaches −B = −(2^31 − 130) at x = −128; zero point −128.
    let neg = -(MAX - 1 - 128 - 255) as i32;
    for (bias, input_zp, zp, past, extreme_x, expected) in [
        (pos, -128, 127, pos + 1, 127i8, 127i8),
        (neg, 127, -128, neg - 1, -128, -128),
    ] {
        let m = edge(bias, input_zp, zp);
        let valid = decode(&encode(&m)).expect("exactly at the bound: valid");
        let inputs: Vec<Vec<i8>> = (-128..=127).map(|x| vec![x]).collect();
        let engine = Engine::new(valid.clone());
        for x in &inputs {
            assert_eq!(
                engine.run(x),
                reference::run(&valid, x),
                "bias {bias}, x {x:?}"
            );
        }
        assert_eq!(engine.run(&[extreme_x]), vec![expected]);
        assert_eq!(
            reject(&edge(past, input_zp, zp)),
            (Code::AccumulatorOverflow, 0),
            "one past the bound"
        );
    }
    // The case of issue 11: an accumulator that fits int32 and shifts fine, but whose
    // requantized value plus the zero point would not.
    assert_eq!(
        reject(&edge(i32::MAX - 255 - 2, -128, 5)),
        (Code::AccumulatorOverflow, 0)
    );
}

#[test]
fn overflow_prone_weights() {
    let mut m = small();
    dense_mut(&mut m).bias = vec![i32::MAX - 100, 0];
    assert_eq!(reject(&m), (Code::AccumulatorOverflow, 0));
    // A left shift can overflow too, even when the raw accumulator fits.
    let mut m = small();
    dense_mut(&mut m).out.requant = vec![Scale {
        mult: 1 << 30,
        shift: 30,
    }];
    assert_eq!(reject(&m), (Code::AccumulatorOverflow, 0));
}

#[test]
fn graph_errors() {
    let mut m = small();
    dense_mut(&mut m).input = 1; // reads its own output
    assert_eq!(reject(&m), (Code::BadTensorRef, 0));
    let mut m = small();
    m.nodes.push(Node::Clamp(Clamp {
        input: 1,
        min: 5,
        max: 4,
    }));
    assert_eq!(reject(&m), (Code::EmptyClamp, 1));
    let mut m = small();
    dense_mut(&mut m).out.act_min = 1;
    dense_mut(&mut m).out.act_max = 0;
    assert_eq!(reject(&m), (Code::EmptyClamp, 0));
    let mut m = small();
    m.nodes.push(Node::Softmax(Softmax {
        input: 1,
        exp_table: Box::new([0; 256]),
    }));
    assert_eq!(reject(&m), (Code::ExpTableZero, 1));
    let mut m = small();
    m.nodes.push(Node::MaxPool(MaxPool {
        input: 1,
        window: identity_window(),
    }));
    assert_eq!(reject(&m), (Code::InputRank, 1));
    let mut m = small();
    m.nodes.push(Node::Reshape(Reshape {
        input: 1,
        shape: vec![1, 2],
    }));
    m.nodes.push(Node::Add(Add {
        a: 1,
        b: 2,
        a_requant: Scale {
            mult: 1 << 30,
            shift: 0,
        },
        b_requant: Scale {
            mult: 1 << 30,
            shift: 0,
        },
        out: Output {
            requant: vec![Scale {
                mult: 1 << 30,
                shift: -20,
            }],
            zero_point: 0,
            act_min: -128,
            act_max: 127,
        },
    }));
    assert_eq!(reject(&m), (Code::AddShapeMismatch, 2));
    let mut m = small();
    dense_mut(&mut m).out_features = 0;
    dense_mut(&mut m).bias.clear();
    dense_mut(&mut m).weights.clear();
    assert_eq!(reject(&m), (Code::ZeroDim, 0));
}

fn conv(window: Window, groups: u32, input_shape: Vec<u32>) -> Model {
    Model {
        input_shape,
        nodes: vec![Node::Conv(Conv {
            input: 0,
            one_d: false,
            out_channels: 1,
            window,
            groups,
            out: Output {
                requant: vec![Scale {
                    mult: 1 << 30,
                    shift: -3,
                }],
                zero_point: 0,
                act_min: -128,
                act_max: 127,
            },
            bias: vec![0],
            weights: vec![1; (window.kernel[0] as usize) * (window.kernel[1] as usize)],
        })],
        ..small()
    }
}

#[test]
fn window_errors() {
    let w = |k: u16, s: u16, p: u16| Window {
        kernel: [k, k],
        stride: [s, s],
        pads: [p; 4],
    };
    assert!(decode(&encode(&conv(w(3, 1, 1), 1, vec![1, 3, 3]))).is_ok());
    for (bad, code) in [
        (w(3, 1, 3), Code::PadTooLarge),
        (w(3, 0, 0), Code::ZeroKernelOrStride),
        (w(5, 1, 0), Code::KernelTooLarge),
    ] {
        assert_eq!(reject(&conv(bad, 1, vec![1, 3, 3])), (code, 0), "{bad:?}");
    }
    assert_eq!(
        reject(&conv(w(1, 1, 0), 2, vec![1, 3, 3])),
        (Code::BadGroups, 0)
    );
    assert_eq!(
        reject(&conv(w(1, 1, 0), 1, vec![1, 9])),
        (Code::InputRank, 0)
    );
}

/// When several checks fail, the first in SPEC order decides.
#[test]
fn check_order() {
    // Conv groups are checked before the input's rank (the decoder needs them to read on).
    assert_eq!(
        reject(&conv(identity_window(), 0, vec![1, 9])),
        (Code::BadGroups, 0)
    );
    // A node is checked completely before the next one is read.
    let mut m = small();
    dense_mut(&mut m).out.act_min = 1;
    dense_mut(&mut m).out.act_max = 0;
    m.nodes.push(Node::Clamp(Clamp {
        input: 1,
        min: 0,
        max: 0,
    }));
    let mut bytes = encode(&m);
    bytes.pop();
    assert_eq!(err(&bytes), (Code::EmptyClamp, 0));
    // Header fields are checked as they are read: the zero dimension before the truncation.
    let mut m = small();
    m.input_shape = vec![0];
    assert_eq!(err(&encode(&m)[..12]), (Code::ZeroDim, HEADER));
    // Trailing bytes come before the whole-model checks.
    let mut m = small();
    m.output_scale.shift = -5;
    m.nodes = vec![Node::Clamp(Clamp {
        input: 0,
        min: 0,
        max: 1,
    })];
    let mut bytes = encode(&m);
    assert_eq!(err(&bytes), (Code::OutputScaleMismatch, HEADER));
    bytes.push(0);
    assert_eq!(err(&bytes), (Code::TrailingBytes, HEADER));
    // Tensor references are checked as they are read, before the fields that follow.
    let mut m = small();
    m.nodes.push(Node::Reshape(Reshape {
        input: 5,
        shape: vec![],
    }));
    assert_eq!(reject(&m), (Code::BadTensorRef, 1));
    // A multiplier's mult before its shift; multipliers before the fused clamp.
    let mut m = small();
    dense_mut(&mut m).out.requant = vec![Scale { mult: 0, shift: 99 }];
    dense_mut(&mut m).out.act_min = 1;
    dense_mut(&mut m).out.act_max = 0;
    assert_eq!(reject(&m), (Code::MultNotNormalized, 0));
}

/// Field mutations of random valid models: the decoder (on the encoded bytes) and the
/// validator (on the model) always name the same `(code, node)`, or both accept.
#[test]
fn decoder_and_validator_agree() {
    let mut rng = Rng::new(11);
    let mut rejected = 0;
    for _ in 0..400 {
        let mut m = if rng.chance(25) {
            random::indexed_model(&mut rng, 3)
        } else {
            random::model(&mut rng, 5)
        };
        for _ in 0..rng.range(1, 3) {
            mutate(&mut rng, &mut m);
        }
        let by_validator = validate::validate(m.clone())
            .map(|_| ())
            .map_err(|e| (e.code, e.node));
        let by_decoder = decode(&encode(&m))
            .map(|_| ())
            .map_err(|e| (e.code, e.node));
        assert_eq!(by_validator, by_decoder, "{m:?}");
        rejected += by_decoder.is_err() as u32;
    }
    assert!(
        rejected > 80,
        "mutations should often break the model: {rejected}"
    );
}

/// Changes one field without changing any tensor's shape (a different shape would leave the
/// parameter arrays of later layers with lengths the encoding cannot express).
fn mutate(rng: &mut Rng, m: &mut Model) {
    let i = rng.range(0, m.nodes.len() as i64 - 1) as usize;
    // A reference to a tensor that is not produced before node `i`.
    let forward = |rng: &mut Rng| rng.range(i as i64 + 1, i as i64 + 3) as u16;
    match rng.range(0, 5) {
        0 => m.input_quant[0].scale.shift = rng.range(-70, 70) as i8,
        1 => m.output_scale.mult = rng.range(1 << 29, i32::MAX as i64) as i32,
        _ => match &mut m.nodes[i] {
            Node::Dense(Dense { out, bias, .. }) | Node::Conv(Conv { out, bias, .. }) => {
                match rng.range(0, 3) {
                    0 => out.act_min = rng.i8(),
                    1 => out.requant[0].shift = rng.range(-33, 32) as i8,
                    2 => bias[0] = rng.range(i32::MIN as i64, i32::MAX as i64) as i32,
                    _ => out.zero_point = rng.i8(),
                }
            }
            Node::AvgPool(p) => p.count_include_pad = !p.count_include_pad,
            Node::MaxPool(p) => p.input = forward(rng),
            Node::Add(a) => match rng.range(0, 2) {
                0 => a.a_requant.shift = rng.range(-5, 5) as i8,
                1 => a.b = rng.range(0, i as i64 + 2) as u16,
                _ => a.out.requant[0].mult = rng.range(0, i32::MAX as i64) as i32,
            },
            Node::Clamp(Clamp { input, min, .. }) => {
                if rng.chance(50) {
                    *min = rng.i8();
                } else {
                    *input = forward(rng);
                }
            }
            // Rank 5, a zero dimension, or twice the elements: rejected at this node.
            Node::Reshape(Reshape { shape, .. }) => shape.push(rng.range(0, 1) as u32 * 2),
            Node::Lut(Lut { input, .. }) => *input = forward(rng),
            Node::Softmax(Softmax { exp_table, .. }) => exp_table[0] = rng.range(0, 1) as u16,
            Node::Transpose(t) => t.perm[0] = t.perm.len() as u8,
            Node::Slice(sl) => sl.axes[0].step = 0,
            Node::Pad(p) => p.input = forward(rng),
            Node::Concat(c) => c.inputs[0].1.shift = rng.range(-33, 32) as i8,
            Node::Mul(mu) => mu.out.requant[0].shift = rng.range(-33, 32) as i8,
            Node::Sub(Sub(a)) => a.a_requant.shift = rng.range(-5, 5) as i8,
            Node::ReduceSum(r) => r.axis = 7,
            Node::ReduceMax(r) => r.input = forward(rng),
            Node::Resize(r) => r.factors = [0, 1],
            Node::MatMul(mm) => mm.out.act_min = rng.i8(),
            Node::LayerNorm(ln) => ln.epsilon = 0,
            Node::Gather(g) => match rng.range(0, 3) {
                0 => g.index = rng.range(1, 9) as u8,
                1 => g.start = g.start.wrapping_add(rng.range(1, 8) as u16),
                2 => g.count = 0,
                _ => {
                    if let Some(input) = m.index_inputs.first_mut() {
                        input.limits[0] = rng.range(0, 60) as u16;
                    }
                }
            },
            Node::TreeEnsemble(t) => match rng.range(0, 2) {
                0 => t.trees[0].target = rng.range(0, 4) as u16,
                1 => {
                    if let Some(TreeNode::Split { feature, .. }) = t.trees[0].nodes.first_mut() {
                        *feature = rng.range(0, 40) as u16;
                    }
                }
                _ => t.base[0] = i32::MAX,
            },
        },
    }
}

/// Random byte corruptions of random valid models never panic the decoder.
#[test]
fn corrupted_models_never_panic() {
    let mut rng = Rng::new(7);
    for _ in 0..300 {
        let mut bytes = encode(&random::model(&mut rng, 5));
        for _ in 0..rng.range(1, 4) {
            let i = rng.range(0, bytes.len() as i64 - 1) as usize;
            bytes[i] = rng.next_u64() as u8;
        }
        let _ = decode(&bytes);
        let cut = rng.range(0, bytes.len() as i64) as usize;
        let _ = decode(&bytes[..cut]);
    }
}
