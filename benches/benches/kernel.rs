//! The int8 matrix kernel (`precompile/src/gemm/`) against burn-ndarray's Int32 matmul — the
//! engine's matrix path before the kernel — on the same shapes, in one run. Throughput is
//! set to the multiply-accumulates, so criterion's `elem/s` reads as MAC/s.
//!
//! - `gemm/<shape>/burn_int32`: the old engine's product, `W · xᵀ` with int32 tensors.
//! - `gemm/<shape>/<path>`: the kernel forced onto each instruction-set path this CPU has,
//!   including building the left operand and the fused requantization epilogue.
//!
//! Shapes: a vector×matrix Dense (1×512×512), a batch of rows (64×256×256), and the im2col
//! product of a 3×3 convolution from 32 to 32 channels over a 32×32 map (32×288×1024).
//!
//! - `models/<name>/{engine,reference}`: one whole inference of the example models in
//!   `models/` on the engine and on the scalar reference (throughput: one inference).

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use myelin_precompile::gemm::{gemm, with_path, Epilogue, Lhs, Packed, Path};
use myelin_precompile::model::{Output, Scale};
use myelin_precompile::{decode, reference, Engine};

fn device() -> Device {
    #[allow(deprecated)] // the engine's backend
    Device::ndarray()
}

fn burn_matmul(m: usize, k: usize, n: usize, a: &[i64], b: &[i64]) -> Tensor<3, Int> {
    // As the engine multiplied before the kernel: weight rows [N, K] times xᵀ [K, M].
    let w = Tensor::<3, Int>::from_data(
        TensorData::new(b.iter().map(|&v| v as i32).collect(), [1, n, k]),
        (&device(), DType::I32),
    );
    let x = Tensor::<3, Int>::from_data(
        TensorData::new(a.iter().map(|&v| v as i32).collect(), [1, m, k]),
        (&device(), DType::I32),
    );
    w.matmul(x.swap_dims(1, 2))
}

fn bench_gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.sample_size(20);
    let out = Output {
        requant: vec![Scale {
            mult: 1 << 30,
            shift: -12,
        }],
        zero_point: 0,
        act_min: -128,
        act_max: 127,
    };
    for (name, m, k, n) in [
        ("1x512x512", 1, 512, 512),
        ("64x256x256", 64, 256, 256),
        ("conv_32x288x1024", 32, 288, 1024),
    ] {
        let a: Vec<i64> = (0..m * k).map(|i| (i * 37 % 255) as i64 - 127).collect();
        let b: Vec<i64> = (0..k * n).map(|i| (i * 91 % 255) as i64 - 127).collect();
        group.throughput(Throughput::Elements((m * k * n) as u64));
        group.bench_function(BenchmarkId::new(name, "burn_int32"), |bench| {
            bench.iter(|| burn_matmul(m, k, n, &a, &b).into_data())
        });
        // Dense packs its int8 weights (`W = Bᵀ`, row-major [N][K]) as int8; the im2col
        // matrix is 16-bit (x − zp).
        let packed = if name.starts_with("conv") {
            Packed::from_rows(k, n, |kk, row| {
                for (j, v) in row.iter_mut().enumerate() {
                    *v = b[kk * n + j] as i16;
                }
            })
        } else {
            let w: Vec<i8> = (0..n * k).map(|i| b[(i % k) * n + i / k] as i8).collect();
            Packed::from_int8_transposed(k, n, &w)
        };
        let bias = vec![0; n];
        let epilogue = Epilogue {
            out: &out,
            bias: &bias,
            channels_on_rows: false,
            channel_offset: 0,
            row_stride: n,
            offset: 0,
        };
        for &path in Path::available() {
            group.bench_function(BenchmarkId::new(name, format!("{path:?}")), |bench| {
                bench.iter(|| {
                    with_path(path, || {
                        let mut y = vec![0i64; m * n];
                        gemm(&Lhs::from_rows(&a, m, k, 0), &packed, &epilogue, &mut y);
                        y
                    })
                })
            });
        }
    }
    group.finish();
}

fn bench_models(c: &mut Criterion) {
    let mut group = c.benchmark_group("models");
    group.sample_size(50);
    group.throughput(Throughput::Elements(1));
    for name in ["digits_mlp", "digits_cnn", "digits_transformer"] {
        let path = format!("{}/../models/{name}.myl", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).expect("the example models are committed");
        let valid = decode(&bytes).expect("a valid model");
        let input = vec![3i8; valid.analysis().input_len()];
        let engine = Engine::new(valid.clone());
        group.bench_function(BenchmarkId::new(name, "engine"), |b| {
            b.iter(|| engine.run(&input))
        });
        group.bench_function(BenchmarkId::new(name, "reference"), |b| {
            b.iter(|| reference::run(&valid, &input))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_gemm, bench_models);
criterion_main!(benches);
