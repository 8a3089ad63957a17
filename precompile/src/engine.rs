//! The inference engine: the spec's integer semantics on burn's ndarray backend with Int
//! tensors. Matrix products (Dense, convolutions over an im2col matrix, MatMul) run on the
//! int8 matrix kernel (`gemm/`) with requantization fused, and pooling as a direct loop over
//! each window's positions inside the map, both inside burn through the backend extension
//! (`host.rs`); the other operators requantize with whole-tensor int64 arithmetic. No kernel
//! materialises padding beyond what gas (`cost.rs`) counts. Nothing here depends on thread
//! count or CPU: integer sums are exact in any order, and validation proves that none of them
//! can overflow.
//!
//! Rounding is expressed with sign/abs and truncating division, which is equal to gemmlowp's
//! mask-and-threshold form (`docs/SPEC.md` §3) and broadcasts per-channel parameters for free.

use burn::tensor::{DType, Device, Element, Int, Tensor, TensorData};

use crate::input::Input;
use crate::model::*;
use crate::ops::{Ctx, Prepared};
use crate::validate::{Analysis, ValidModel};

/// Dtype of activations and of everything elementwise.
pub(crate) const WIDE: DType = DType::I64;

pub(crate) type T<const D: usize> = Tensor<D, Int>;
/// An activation as the engine holds it: flat, int64.
pub type EngineTensor = T<1>;

pub(crate) fn device() -> Device {
    #[allow(deprecated)] // burn marks ndarray as deprecated in favour of `flex`; we need ndarray
    Device::ndarray()
}

pub(crate) fn tensor<E: Element, const D: usize>(
    values: Vec<E>,
    shape: [usize; D],
    dtype: DType,
) -> T<D> {
    T::<D>::from_data(TensorData::new(values, shape), (&device(), dtype))
}

/// Per-channel requantization constants, shaped to broadcast over a layer's output
/// (`[1, N]` for Dense, `[OC, 1]` for convolutions).
pub struct RequantParams {
    left_pow: T<2>,
    mult: T<2>,
    pow: T<2>,
    half: T<2>,
}

impl RequantParams {
    pub(crate) fn new(rqs: &[Requant], shape: [usize; 2]) -> Self {
        let col = |f: &dyn Fn(&Requant) -> i64| tensor(rqs.iter().map(f).collect(), shape, WIDE);
        RequantParams {
            left_pow: col(&|r| 1i64 << r.shift.max(0)),
            mult: col(&|r| r.mult as i64),
            pow: col(&|r| 1i64 << (-(r.shift as i32)).max(0)),
            half: col(&|r| (1i64 << (-(r.shift as i32)).max(0)) / 2),
        }
    }

    /// `MultiplyByQuantizedMultiplier` on a whole int64 tensor.
    pub(crate) fn apply(&self, x: T<2>) -> T<2> {
        let ab = (x * self.left_pow.clone()) * self.mult.clone();
        // SaturatingRoundingDoublingHighMul (saturation is unreachable: mult < 2^31 and the
        // lifted accumulator is proven below 2^31): nudge 2^30 if ab >= 0 else 1 - 2^30.
        let nonneg = ab.clone().greater_equal_elem(0).int().cast(WIDE);
        let nudge = nonneg
            .mul_scalar((1i64 << 31) - 1)
            .add_scalar(1 - (1i64 << 30));
        let high = (ab + nudge).div_scalar(1i64 << 31);
        // RoundingDivideByPOT: sign(x) · ((|x| + 2^(e−1)) / 2^e), ties away from zero.
        let sign = high.clone().sign();
        sign * ((high.abs() + self.half.clone()) / self.pow.clone())
    }
}

/// A validated model with its tensors prepared for burn. Build once per model (the node-local
/// cache holds these), run many times.
pub struct Engine {
    valid: ValidModel,
    prepared: Vec<Prepared>,
}

/// `REQUANT` on a whole tensor of accumulators.
pub(crate) fn requantize(acc: T<2>, p: &RequantParams, out: &Output) -> T<2> {
    p.apply(acc)
        .add_scalar(out.zero_point as i64)
        .clamp(out.act_min as i64, out.act_max as i64)
}

/// `n / d` rounded to nearest with ties away from zero, for `d > 0`.
pub(crate) fn div_round<const D: usize>(n: T<D>, d: T<D>) -> T<D> {
    let sign = n.clone().sign();
    sign * ((n.abs() + d.clone().div_scalar(2)) / d)
}

/// The values of an activation tensor, for the kernels that loop over them directly.
pub(crate) fn values<const D: usize>(t: T<D>) -> Vec<i64> {
    t.into_data().try_into_vec_as::<i64>().unwrap_or_default()
}

/// The one-thread rayon pool every inference runs in (see [`Engine::run`]), or `None` if the
/// operating system refused the thread. Then inferences run on the caller's thread with
/// rayon's global pool: the same bytes, only the speed differs, where a panic would turn the
/// call into `InternalError` on this node alone and split it from the chain.
fn single_thread() -> Option<&'static rayon::ThreadPool> {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .thread_name(|_| "myelin-engine".into())
            .build()
            .ok()
    })
    .as_ref()
}

impl Engine {
    pub fn new(valid: ValidModel) -> Self {
        let prepared = valid.model().nodes.iter().map(|n| n.prepare()).collect();
        Engine { valid, prepared }
    }

    pub fn valid(&self) -> &ValidModel {
        &self.valid
    }

    pub fn model(&self) -> &Model {
        self.valid.model()
    }

    pub fn analysis(&self) -> &Analysis {
        self.valid.analysis()
    }

    /// Runs one inference of a model without index inputs. `input` must hold exactly
    /// `analysis().input_len()` values (the precompile checks this before charging gas and
    /// calling).
    pub fn run(&self, input: &[i8]) -> Vec<i8> {
        self.run_input(&Input {
            values: input.to_vec(),
            ids: Vec::new(),
        })
    }

    /// Runs one inference on a checked [`Input`] (`crate::input::decode` makes one).
    pub fn run_input(&self, input: &Input) -> Vec<i8> {
        // burn-ndarray parallelises some kernels (batched matmul) on rayon. Inside a block
        // that buys little and costs a thread wake-up per operation (measured: ~200 µs per
        // two-row Dense node on a busy 2-core machine, 4x its gas), and it would let one
        // call take every core. One inference runs on one thread; results never depend on it.
        // The pool's thread takes the caller's kernel path (forced by tests and benchmarks).
        let path = crate::gemm::current_path();
        match single_thread() {
            Some(pool) => {
                pool.install(|| crate::gemm::with_path(path, || self.run_on_this_thread(input)))
            }
            None => self.run_on_this_thread(input),
        }
    }

    fn run_on_this_thread(&self, input: &Input) -> Vec<i8> {
        let a = self.analysis();
        let mut tensors: Vec<T<1>> = Vec::with_capacity(self.prepared.len() + 1);
        let x = &input.values;
        tensors.push(tensor(
            x.iter().map(|&v| v as i64).collect(),
            [x.len()],
            WIDE,
        ));
        for (node, prepared) in self.prepared.iter().enumerate() {
            let y = prepared.run(&Ctx {
                values: &tensors,
                ids: &input.ids,
                shapes: &a.shapes,
                zero_points: &a.zero_points,
                node,
            });
            tensors.push(y);
        }
        let out = tensors
            .pop()
            .unwrap_or_else(|| unreachable!("a model has at least one node"));
        values(out).into_iter().map(|v| v as i8).collect()
    }
}
