//! The inference engine: the spec's integer semantics on burn's ndarray backend with Int
//! tensors. Matrix products (Dense, convolutions over an im2col matrix, MatMul) run on the
//! int8 matrix kernel (`gemm/`) with requantization fused, pooling as a separable fold over
//! the window positions inside the map, and the elementwise, reduction, normalization,
//! lookup, layout and tree operators as one pass each, all inside burn through the backend
//! extension (`host.rs`), which lends them activations in place (Concat writes each input
//! into its place in the joined output, one call per input). No kernel materialises padding
//! beyond what gas (`cost.rs`) counts. Nothing here depends on thread count or CPU (an
//! inference runs on the calling thread alone): integer sums are exact in any order, and
//! validation proves that none of them can overflow.
//!
//! Requantization is one int64 function ([`mbq_wide`]) shared by every kernel; the scalar
//! reference computes the same in int32 with gemmlowp's primitives (`quant.rs`), and the
//! differential test holds the two together.

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

/// `MultiplyByQuantizedMultiplier` of one requantization as the engine's kernels compute it:
/// in int64, where the lifted value cannot overflow, with gemmlowp's mask-and-threshold
/// rounding (`docs/SPEC.md` §3) — step for step [`crate::quant::mbq`] without its int32
/// saturation case, unreachable because multipliers are below 2^31 and validation proves
/// every lifted value below 2^31. The matrix kernel's epilogue computes it on its lanes; the
/// other operators' kernels through [`Requantizer`].
#[inline(always)]
pub(crate) fn mbq_wide(x: i64, left: u32, mult: i64, right: u32) -> i64 {
    let ab = (x << left) * mult;
    let nudge = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    let high = (ab + nudge) / (1i64 << 31);
    let mask = (1i64 << right) - 1;
    let threshold = (mask >> 1) + (high < 0) as i64;
    (high >> right) + ((high & mask) > threshold) as i64
}

/// One multiplier's constants for [`mbq_wide`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rescale {
    left: u32,
    mult: i64,
    right: u32,
}

impl Rescale {
    pub(crate) fn new(rq: Requant) -> Self {
        Rescale {
            left: rq.shift.max(0) as u32,
            mult: rq.mult as i64,
            right: (-(rq.shift as i32)).max(0) as u32,
        }
    }

    #[inline(always)]
    pub(crate) fn apply(self, x: i64) -> i64 {
        mbq_wide(x, self.left, self.mult, self.right)
    }
}

/// SPEC §3's `REQUANT` of a node's output (one multiplier, or one per channel): rescale, add
/// the zero point, clamp to the activation range — [`Output::apply`] in the engine's form.
pub(crate) struct Requantizer {
    rescale: Vec<Rescale>,
    zero_point: i64,
    min: i64,
    max: i64,
}

impl Requantizer {
    pub(crate) fn new(out: &Output) -> Self {
        Requantizer {
            rescale: out.requant.iter().map(|&rq| Rescale::new(rq)).collect(),
            zero_point: out.zero_point as i64,
            min: out.act_min as i64,
            max: out.act_max as i64,
        }
    }

    /// `REQUANT(acc)` on channel `ch` (any channel when the output has one multiplier).
    #[inline(always)]
    pub(crate) fn apply(&self, acc: i64, ch: usize) -> i64 {
        let rescale = match self.rescale.as_slice() {
            [one] => *one,
            all => all[ch],
        };
        (rescale.apply(acc) + self.zero_point).clamp(self.min, self.max)
    }
}

/// A validated model with its tensors prepared for burn. Build once per model (the node-local
/// cache holds these), run many times.
pub struct Engine {
    valid: ValidModel,
    prepared: Vec<Prepared>,
    /// Per node, the tensors it is the last to read (or, for a tensor nobody reads, its
    /// producer): released as soon as the node has run.
    last_reads: Vec<Vec<usize>>,
}

/// The values of the model's output tensor.
fn values<const D: usize>(t: T<D>) -> Vec<i64> {
    t.into_data().try_into_vec_as::<i64>().unwrap_or_default()
}

impl Engine {
    pub fn new(valid: ValidModel) -> Self {
        let nodes = &valid.model().nodes;
        let prepared = nodes.iter().map(|n| n.prepare()).collect();
        // Tensor `t ≥ 1` is node `t − 1`'s output; the model's output (the last) is kept.
        let mut last = (0..nodes.len())
            .map(|t| t.saturating_sub(1))
            .collect::<Vec<_>>();
        for (node, n) in nodes.iter().enumerate() {
            for t in n.inputs() {
                last[t as usize] = node;
            }
        }
        let mut last_reads = vec![Vec::new(); nodes.len()];
        for (t, &node) in last.iter().enumerate() {
            last_reads[node].push(t);
        }
        Engine {
            valid,
            prepared,
            last_reads,
        }
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

    /// Runs one inference on a checked [`Input`] (`crate::input::decode` makes one), on the
    /// calling thread alone: burn-ndarray is built without its rayon parallelism (workspace
    /// `Cargo.toml`) and the kernels are sequential, so a call never wakes or occupies
    /// another core, and its bytes cannot depend on threads. Each intermediate tensor is
    /// released after its last reader, so an inference holds only the tensors still to be
    /// read (gas bounds what it writes in all, SPEC §5; this keeps chains far below that).
    pub fn run_input(&self, input: &Input) -> Vec<i8> {
        let a = self.analysis();
        let mut tensors: Vec<T<1>> = Vec::with_capacity(self.prepared.len() + 1);
        let x = &input.values;
        tensors.push(tensor(
            x.iter().map(|&v| v as i64).collect(),
            [x.len()],
            WIDE,
        ));
        let released = tensor(Vec::<i64>::new(), [0], WIDE);
        for (node, prepared) in self.prepared.iter().enumerate() {
            let y = prepared.run(&Ctx {
                values: &tensors,
                ids: &input.ids,
                shapes: &a.shapes,
                zero_points: &a.zero_points,
                node,
            });
            tensors.push(y);
            for &t in &self.last_reads[node] {
                tensors[t] = released.clone();
            }
        }
        let out = tensors
            .pop()
            .unwrap_or_else(|| unreachable!("a model has at least one node"));
        values(out).into_iter().map(|v| v as i8).collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::model::{Clamp, Node};
    use crate::ops::testing::{check, model};

    /// Tensors are released after their last reader: an unused intermediate tensor (t1), one
    /// read again much later (t0 by the last node), and a chain all give the reference's
    /// bytes.
    #[test]
    fn released_tensors_are_never_read_again() {
        let clamp = |input, min| {
            Node::Clamp(Clamp {
                input,
                min,
                max: 100,
            })
        };
        check(model(
            vec![4, 4],
            vec![
                clamp(0, -5),
                clamp(0, -3),
                clamp(2, 0),
                clamp(3, 1),
                clamp(0, 2),
            ],
        ));
    }
}
