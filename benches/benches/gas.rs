//! Gas calibration and engine speed, on this machine, in one run.
//!
//! - `gas/<shape>`: one inference of models that stress one cost term each (MACs in dense or
//!   convolution layers, elementwise steps, per-node overhead), plus a cold model load; the
//!   throughput is set to the gas charged, so criterion prints "gas/s" as `elem/s`:
//!   ns per gas = 1e9 / that. The schedule in `precompile/src/gas.rs` keeps every shape at or
//!   below ~20 ns/gas (README, "Gas").
//! - `engine_vs_reference/*`: the burn engine and the scalar reference on the same model: the
//!   speed ratio of the engine to the baseline measured in the same run.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use myelin_precompile::model::*;
use myelin_precompile::random::Rng;
use myelin_precompile::{decode, encode, gas, reference, validate, Engine};

fn output(shift: i8) -> Output {
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

fn base(input_shape: Vec<u32>, nodes: Vec<Node>) -> Model {
    let scale = Scale {
        mult: 1 << 30,
        shift: -6,
    };
    Model {
        input_shape,
        input_quant: Quant {
            scale,
            zero_point: 0,
        },
        output_scale: scale,
        nodes,
    }
}

fn dense(rng: &mut Rng, input: TensorId, k: u32, n: u32) -> Node {
    let weights = (0..k * n).map(|_| rng.range(-20, 20) as i8).collect();
    Node::Dense(Dense {
        input,
        out_features: n,
        out: output(-10),
        bias: vec![0; n as usize],
        weights,
    })
}

fn conv(rng: &mut Rng, input: TensorId, c: u32, oc: u32, groups: u32) -> Node {
    let fan_in = c / groups * 9;
    let weights = (0..oc * fan_in).map(|_| rng.range(-20, 20) as i8).collect();
    let window = Window {
        kernel: [3, 3],
        stride: [1, 1],
        pads: [1, 1, 1, 1],
    };
    Node::Conv(Conv {
        input,
        one_d: false,
        out_channels: oc,
        window,
        groups,
        out: output(-10),
        bias: vec![0; oc as usize],
        weights,
    })
}

/// Models that each stress one term of the schedule.
fn shapes() -> Vec<(&'static str, Model)> {
    let mut rng = Rng::new(1);
    let mlp = base(
        vec![512],
        vec![
            dense(&mut rng, 0, 512, 512),
            dense(&mut rng, 1, 512, 512),
            dense(&mut rng, 2, 512, 10),
        ],
    );
    let batch_rows = base(vec![64, 256], vec![dense(&mut rng, 0, 256, 256)]);
    let cnn = base(
        vec![16, 32, 32],
        vec![conv(&mut rng, 0, 16, 32, 1), conv(&mut rng, 1, 32, 32, 1)],
    );
    let depthwise = base(vec![64, 32, 32], vec![conv(&mut rng, 0, 64, 64, 64)]);
    let pool = base(
        vec![32, 64, 64],
        vec![
            Node::MaxPool(Pool {
                input: 0,
                window: Window {
                    kernel: [3, 3],
                    stride: [1, 1],
                    pads: [1, 1, 1, 1],
                },
                count_include_pad: false,
            }),
            Node::AvgPool(Pool {
                input: 1,
                window: Window {
                    kernel: [3, 3],
                    stride: [1, 1],
                    pads: [1, 1, 1, 1],
                },
                count_include_pad: false,
            }),
        ],
    );
    let table: Box<[i8; 256]> = Box::new(std::array::from_fn(|i| (i as i32 - 128) as i8));
    let elementwise = base(
        vec![65536],
        (0..8)
            .map(|i| {
                if i % 2 == 0 {
                    Node::Lut {
                        input: i,
                        zero_point: 0,
                        table: table.clone(),
                    }
                } else {
                    Node::Clamp {
                        input: i,
                        min: -100,
                        max: 100,
                    }
                }
            })
            .collect(),
    );
    let add_softmax = base(
        vec![256, 256],
        vec![
            Node::Add(Add {
                a: 0,
                b: 0,
                a_requant: Scale {
                    mult: 1 << 30,
                    shift: 0,
                },
                b_requant: Scale {
                    mult: 1 << 30,
                    shift: 0,
                },
                out: output(-19),
            }),
            Node::Softmax {
                input: 1,
                exp_table: Box::new(std::array::from_fn(|d| {
                    (65534.0 * (-(d as f64) / 16.0).exp()) as u16 + 1
                })),
            },
        ],
    );
    let many_nodes = base(
        vec![4],
        (0..256)
            .map(|i| Node::Clamp {
                input: i,
                min: -100,
                max: 100,
            })
            .collect(),
    );
    vec![
        ("mlp_512", mlp),
        ("dense_64_rows", batch_rows),
        ("cnn_16x32x32", cnn),
        ("depthwise_64x32x32", depthwise),
        ("pools_32x64x64", pool),
        ("lut_clamp_64k", elementwise),
        ("add_softmax_256x256", add_softmax),
        ("256_tiny_nodes", many_nodes),
    ]
}

fn bench_gas(c: &mut Criterion) {
    let mut group = c.benchmark_group("gas");
    group.sample_size(10);
    for (name, model) in shapes() {
        let analysis = validate::validate(&model).expect("bench models are valid");
        let gas = gas::inference(&analysis);
        let input = vec![7i8; analysis.input_len()];
        let engine = Engine::new(model, analysis);
        group.throughput(Throughput::Elements(gas));
        group.bench_function(BenchmarkId::new("infer", name), |b| {
            b.iter(|| engine.run(&input))
        });
    }
    // Cold load: parse + validate + prepare a 1 MiB model, priced by gas::load(size, cold).
    let mut rng = Rng::new(2);
    let big = encode(&base(vec![1024], vec![dense(&mut rng, 0, 1024, 1024)]));
    group.throughput(Throughput::Elements(gas::load(big.len(), false)));
    group.bench_function(BenchmarkId::new("load_cold", "1MiB"), |b| {
        b.iter(|| {
            let (m, a) = decode(&big).expect("valid");
            Engine::new(m, a)
        })
    });
    group.finish();
}

fn bench_engine_vs_reference(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_vs_reference");
    group.sample_size(10);
    for (name, model) in shapes()
        .into_iter()
        .filter(|(n, _)| ["mlp_512", "cnn_16x32x32"].contains(n))
    {
        let analysis = validate::validate(&model).expect("valid");
        let input = vec![7i8; analysis.input_len()];
        let engine = Engine::new(model.clone(), analysis.clone());
        group.throughput(Throughput::Elements(analysis.total.macs));
        group.bench_function(BenchmarkId::new("engine", name), |b| {
            b.iter(|| engine.run(&input))
        });
        group.bench_function(BenchmarkId::new("reference", name), |b| {
            b.iter(|| reference::run(&model, &analysis, &input))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_gas, bench_engine_vs_reference);
criterion_main!(benches);
