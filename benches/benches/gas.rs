//! Gas calibration and engine speed, on this machine, in one run.
//!
//! - `gas/<shape>`: one inference of models that stress one cost term each (MACs in dense or
//!   convolution layers, elementwise steps, per-node overhead), plus a cold model load; the
//!   throughput is set to the gas charged, so criterion prints "gas/s" as `elem/s`:
//!   ns per gas = 1e9 / that. The schedule in `precompile/src/gas.rs` keeps every shape at or
//!   below ~20 ns/gas (README, "Gas").
//! - `engine_vs_reference/*`: the burn engine and the scalar reference on the same model: the
//!   speed ratio of the engine to the baseline measured in the same run.

mod common;

use common::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use myelin_precompile::model::*;
use myelin_precompile::random::Rng;
use myelin_precompile::{decode, encode, gas, reference, validate, Engine};

/// Models that each stress one term of the schedule.
fn shapes() -> Vec<(&'static str, Model)> {
    let mut rng = Rng::new(1);
    let mlp = base(
        vec![512],
        vec![
            dense(&mut rng, 0, 512, 512, 20),
            dense(&mut rng, 1, 512, 512, 20),
            dense(&mut rng, 2, 512, 10, 20),
        ],
    );
    let batch_rows = base(vec![64, 256], vec![dense(&mut rng, 0, 256, 256, 20)]);
    // One row through ~16 MB of weights: far beyond the caches, the kernel streams every
    // weight from memory once per inference (the slowest MACs there are).
    let streamed = base(vec![4000], vec![dense(&mut rng, 0, 4000, 4000, 1)]);
    let cnn = base(
        vec![16, 32, 32],
        vec![conv(&mut rng, 0, 16, 32, 1), conv(&mut rng, 1, 32, 32, 1)],
    );
    let depthwise = base(vec![64, 32, 32], vec![conv(&mut rng, 0, 64, 64, 64)]);
    let win3 = Window {
        kernel: [3, 3],
        stride: [1, 1],
        pads: [1, 1, 1, 1],
    };
    let pools = base(
        vec![32, 64, 64],
        vec![pool(0, win3, false, false), pool(1, win3, true, false)],
    );
    let conv1d = base(
        vec![16, 4096],
        vec![conv_window(
            &mut rng,
            0,
            16,
            16,
            1,
            Window {
                kernel: [1, 3],
                stride: [1, 1],
                pads: [0, 1, 0, 1],
            },
            true,
        )],
    );
    let elementwise = base(
        vec![65536],
        (0..8)
            .map(|i| if i % 2 == 0 { lut(i) } else { clamp(i) })
            .collect(),
    );
    let add_softmax = base(vec![256, 256], vec![add(0, 0), softmax(1)]);
    let many_nodes = base(vec![4], (0..256).map(clamp).collect());
    // The slowest node kinds at their smallest: per-node overhead (`KERNEL_NODE`, one kernel
    // call each; Concat's further call per input is charged as its elements).
    let tiny_adds = base(vec![1], (0..256).map(|i| add(i, i)).collect());
    let unit = Scale {
        mult: 1 << 30,
        shift: 1,
    };
    let tiny_concats = base(
        vec![1],
        (0..256)
            .map(|_| {
                Node::Concat(Concat {
                    inputs: vec![(0, unit), (0, unit)],
                    axis: 0,
                    zero_point: 0,
                })
            })
            .collect(),
    );
    let tiny_dense = base(
        vec![1],
        (0..256).map(|i| dense(&mut rng, i, 1, 1, 20)).collect(),
    );
    // Tree ensembles: the 100 trees of depth 6 on one row, the same on 64 rows
    // (per-walk cost), one chain-deep tree (per-level overhead), many stumps (per-tree work).
    let trees = base(vec![30], vec![forest(&mut rng, 0, 30, 100, 6, 1)]);
    let tree_rows = base(vec![64, 30], vec![forest(&mut rng, 0, 30, 100, 6, 1)]);
    let deep_tree = base(vec![30], vec![forest(&mut rng, 0, 30, 1, 12, 1)]);
    let stumps = base(vec![30], vec![forest(&mut rng, 0, 30, 4096, 1, 10)]);
    vec![
        ("trees_100x6", trees),
        ("trees_100x6_64_rows", tree_rows),
        ("tree_depth_12", deep_tree),
        ("stumps_4096", stumps),
        ("mlp_512", mlp),
        ("dense_64_rows", batch_rows),
        ("dense_1x4000x4000_streamed", streamed),
        ("cnn_16x32x32", cnn),
        ("depthwise_64x32x32", depthwise),
        ("conv1d_16x4096", conv1d),
        ("pools_32x64x64", pools),
        ("lut_clamp_64k", elementwise),
        ("add_softmax_256x256", add_softmax),
        ("256_tiny_nodes", many_nodes),
        ("256_tiny_adds", tiny_adds),
        ("256_tiny_concats", tiny_concats),
        ("256_tiny_dense", tiny_dense),
    ]
}

fn bench_gas(c: &mut Criterion) {
    let mut group = c.benchmark_group("gas");
    group.sample_size(10);
    for (name, model) in shapes() {
        let valid = validate::validate(model).expect("bench models are valid");
        let gas = gas::inference(&valid);
        let input = vec![7i8; valid.analysis().input_len()];
        let engine = Engine::new(valid);
        group.throughput(Throughput::Elements(gas));
        group.bench_function(BenchmarkId::new("infer", name), |b| {
            b.iter(|| engine.run(&input))
        });
    }
    // Cold load: parse + validate + prepare a 1 MiB model, priced by gas::load + gas::prepare.
    let mut rng = Rng::new(2);
    let big = encode(&base(vec![1024], vec![dense(&mut rng, 0, 1024, 1024, 20)]));
    let analysis = decode(&big).expect("valid").analysis().clone();
    group.throughput(Throughput::Elements(
        gas::load(big.len(), false) + gas::prepare(&analysis),
    ));
    group.bench_function(BenchmarkId::new("load_cold", "1MiB"), |b| {
        b.iter(|| Engine::new(decode(&big).expect("valid")))
    });
    // The same for ~1 MiB of trees: 2000 trees of depth 6, a quarter of a million tree nodes
    // (the most nodes per byte a model can hold is one leaf per 6 bytes).
    let trees = encode(&base(vec![30], vec![forest(&mut rng, 0, 30, 2000, 6, 1)]));
    let analysis = decode(&trees).expect("valid").analysis().clone();
    group.throughput(Throughput::Elements(
        gas::load(trees.len(), false) + gas::prepare(&analysis),
    ));
    group.bench_function(BenchmarkId::new("load_cold", "trees_1MiB"), |b| {
        b.iter(|| Engine::new(decode(&trees).expect("valid")))
    });
    group.finish();
}

fn bench_engine_vs_reference(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine_vs_reference");
    group.sample_size(10);
    for (name, model) in shapes()
        .into_iter()
        .filter(|(n, _)| ["mlp_512", "cnn_16x32x32", "trees_100x6"].contains(n))
    {
        let valid = validate::validate(model).expect("valid");
        let input = vec![7i8; valid.analysis().input_len()];
        let engine = Engine::new(valid.clone());
        group.throughput(Throughput::Elements(valid.analysis().total.macs));
        group.bench_function(BenchmarkId::new("engine", name), |b| {
            b.iter(|| engine.run(&input))
        });
        group.bench_function(BenchmarkId::new("reference", name), |b| {
            b.iter(|| reference::run(&valid, &input))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_gas, bench_engine_vs_reference);
criterion_main!(benches);
