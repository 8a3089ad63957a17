//! Every way a model can be malformed is rejected with its specific error, never a panic.

use myelin_precompile::model::*;
use myelin_precompile::random::{self, Rng};
use myelin_precompile::{decode, encode, ModelError};

fn small() -> Model {
    Model {
        input_shape: vec![4],
        input_quant: Quant {
            scale: Scale {
                mult: 1 << 30,
                shift: -6,
            },
            zero_point: 0,
        },
        output_scale: Scale {
            mult: 1 << 30,
            shift: -6,
        },
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

fn dense_mut(m: &mut Model) -> &mut Dense {
    match &mut m.nodes[0] {
        Node::Dense(d) => d,
        _ => unreachable!(),
    }
}

fn reject(m: &Model) -> ModelError {
    decode(&encode(m)).expect_err("model must be rejected")
}

#[test]
fn valid_model_round_trips() {
    let bytes = encode(&small());
    let (m, a) = decode(&bytes).unwrap();
    assert_eq!(m, small());
    assert_eq!(a.total.macs, 8);
}

#[test]
fn every_truncation_is_rejected() {
    let bytes = encode(&small());
    for n in 0..bytes.len() {
        match decode(&bytes[..n]) {
            Err(ModelError::Truncated { .. }) => {}
            Err(ModelError::BadMagic) if n >= 4 => panic!("prefix {n}: magic is intact"),
            Err(_) if n < 4 => {}
            other => panic!("prefix of {n} bytes: expected Truncated, got {other:?}"),
        }
    }
}

#[test]
fn trailing_bytes() {
    let mut bytes = encode(&small());
    bytes.push(0);
    assert_eq!(decode(&bytes), Err(ModelError::TrailingBytes(1)));
}

#[test]
fn bad_magic_and_version() {
    let mut bytes = encode(&small());
    bytes[0] = b'X';
    assert_eq!(decode(&bytes), Err(ModelError::BadMagic));
    let mut bytes = encode(&small());
    bytes[4] = 2;
    assert_eq!(decode(&bytes), Err(ModelError::UnsupportedVersion(2)));
}

#[test]
fn unknown_op_tag() {
    let mut bytes = encode(&small());
    let tag_at = 4 + 1 + 1 + 4 + 5 + 1 + 5 + 2; // magic version rank dim scale zp scale n_nodes
    assert_eq!(bytes[tag_at], 0x01);
    bytes[tag_at] = 0x7F;
    assert_eq!(
        decode(&bytes),
        Err(ModelError::UnknownOp { node: 0, tag: 0x7F })
    );
}

#[test]
fn huge_dimensions() {
    let mut m = small();
    m.input_shape = vec![1 << 16, 1 << 16, 4];
    assert!(matches!(
        reject(&m),
        ModelError::LimitExceeded {
            what: "elements of one tensor",
            ..
        }
    ));
    let mut m = small();
    m.input_shape = vec![0, 4];
    assert!(matches!(reject(&m), ModelError::InvalidInput(_)));
    let mut m = small();
    m.input_shape = vec![1, 1, 1, 1, 4];
    assert!(matches!(
        reject(&m),
        ModelError::Invalid { op: "shape", .. }
    ));
}

#[test]
fn huge_declared_arrays_fail_before_allocating() {
    let mut m = small();
    dense_mut(&mut m).out_features = u32::MAX;
    // The declared bias/weights would need 16+ GiB: it is reported as truncation at once.
    assert!(matches!(
        decode(&encode(&m)),
        Err(ModelError::Truncated { .. })
    ));
}

#[test]
fn overflow_prone_weights() {
    let mut m = small();
    dense_mut(&mut m).bias = vec![i32::MAX - 100, 0];
    assert!(matches!(
        reject(&m),
        ModelError::AccumulatorOverflow { node: 0, .. }
    ));
    // A left shift can overflow too, even when the raw accumulator fits.
    let mut m = small();
    dense_mut(&mut m).out.requant = vec![Scale {
        mult: 1 << 30,
        shift: 30,
    }];
    assert!(matches!(
        reject(&m),
        ModelError::AccumulatorOverflow { node: 0, .. }
    ));
}

#[test]
fn non_canonical_fields() {
    let mut m = small();
    dense_mut(&mut m).out.requant = vec![Scale {
        mult: (1 << 30) - 1,
        shift: -3,
    }];
    assert!(matches!(
        reject(&m),
        ModelError::NonCanonical { field: "mult", .. }
    ));
    let mut m = small();
    m.input_quant.scale.mult = 12345;
    assert!(matches!(
        reject(&m),
        ModelError::NonCanonical { field: "mult", .. }
    ));
    // per_channel flag must be 0 or 1
    let mut bytes = encode(&small());
    let flag_at = 4 + 1 + 1 + 4 + 5 + 1 + 5 + 2 + 1 + 2 + 4;
    assert_eq!(bytes[flag_at], 0);
    bytes[flag_at] = 2;
    assert!(matches!(
        decode(&bytes),
        Err(ModelError::NonCanonical {
            field: "per_channel",
            ..
        })
    ));
}

#[test]
fn requant_shift_out_of_range() {
    let mut m = small();
    dense_mut(&mut m).out.requant = vec![Scale {
        mult: 1 << 30,
        shift: -32,
    }];
    assert!(matches!(
        reject(&m),
        ModelError::Invalid { op: "Dense", .. }
    ));
}

#[test]
fn graph_errors() {
    let mut m = small();
    dense_mut(&mut m).input = 1; // reads its own output
    assert!(matches!(
        reject(&m),
        ModelError::Invalid { op: "graph", .. }
    ));
    let mut m = small();
    m.nodes.push(Node::Reshape {
        input: 1,
        shape: vec![3],
    });
    assert!(matches!(
        reject(&m),
        ModelError::Invalid {
            node: 1,
            op: "Reshape",
            ..
        }
    ));
    let mut m = small();
    m.nodes.push(Node::Clamp {
        input: 1,
        min: 5,
        max: 4,
    });
    assert!(matches!(
        reject(&m),
        ModelError::Invalid {
            node: 1,
            op: "Clamp",
            ..
        }
    ));
    let mut m = small();
    m.nodes.push(Node::Softmax {
        input: 1,
        exp_table: Box::new([0; 256]),
    });
    assert!(matches!(
        reject(&m),
        ModelError::Invalid {
            node: 1,
            op: "Softmax",
            ..
        }
    ));
    let mut m = small();
    m.nodes.push(Node::MaxPool(Pool {
        input: 1,
        window: Window {
            kernel: [1, 1],
            stride: [1, 1],
            pads: [0; 4],
        },
        count_include_pad: false,
    }));
    assert!(matches!(
        reject(&m),
        ModelError::Invalid {
            node: 1,
            op: "MaxPool2d",
            ..
        }
    ));
    let mut m = small();
    m.nodes.clear();
    assert_eq!(decode(&encode(&m)), Err(ModelError::NodeCount(0)));
}

#[test]
fn window_errors() {
    let conv = |window: Window| Model {
        input_shape: vec![1, 3, 3],
        nodes: vec![Node::Conv(Conv {
            input: 0,
            one_d: false,
            out_channels: 1,
            window,
            groups: 1,
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
    };
    let w = |k: u16, s: u16, p: u16| Window {
        kernel: [k, k],
        stride: [s, s],
        pads: [p; 4],
    };
    assert!(decode(&encode(&conv(w(3, 1, 1)))).is_ok());
    for bad in [w(3, 1, 3), w(3, 0, 0), w(5, 1, 0)] {
        assert!(
            matches!(reject(&conv(bad)), ModelError::Invalid { op: "Conv2d", .. }),
            "{bad:?}"
        );
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
