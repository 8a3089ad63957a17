//! The operators, one module each. A module holds everything about its operator, side by
//! side: the node's fields and their codec (tag and payload), its analysis (output shape,
//! the checks SPEC §4 makes in their order, including its overflow bound; zero point,
//! parameters, fixed output scale; static cost, SPEC §5), the scalar reference kernel (SPEC
//! §3 in plain loops), the burn engine kernel with its prepared state, and (with the
//! `testkit` feature) its random generator for the differential test.
//!
//! [`operators!`] lists them once and generates the [`Node`] enum and every dispatch over it
//! (codec, analysis, cost, reference, engine, names). No dispatch has a wildcard arm: an
//! operator that misses a piece does not compile.
//!
//! Adding an operator: its module implementing [`Op`], one line in the list below, one row
//! in the converter's table (`cli/src/convert/ops.rs`), SPEC, vectors.

pub mod add;
pub mod clamp;
pub mod concat;
pub mod conv;
pub mod dense;
pub mod gather;
pub mod layer;
pub mod layernorm;
pub mod layout;
pub mod lut;
pub mod matmul;
pub mod mul;
pub mod pad;
pub mod pool;
pub mod reduce;
pub mod reshape;
pub mod resize;
pub mod slice;
pub mod softmax;
pub mod transpose;
pub mod tree;
pub mod window;

use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::EngineTensor;
use crate::error::ModelError;
use crate::model::{IndexInput, Scale, TensorId};

/// The tensors a node sees while it runs (reference or engine): every earlier tensor's
/// value, and every tensor's shape and zero point from the analysis.
pub struct Ctx<'a, V> {
    pub values: &'a [V],
    /// The call's ids, one list per index input (Gather reads them).
    pub ids: &'a [Vec<u16>],
    pub shapes: &'a [Vec<u32>],
    pub zero_points: &'a [i8],
    /// Index of the running node: its output is tensor `node + 1`.
    pub node: usize,
}

impl<V> Ctx<'_, V> {
    pub fn value(&self, id: TensorId) -> &V {
        &self.values[id as usize]
    }
    pub fn shape(&self, id: TensorId) -> &[u32] {
        &self.shapes[id as usize]
    }
    pub fn zp(&self, id: TensorId) -> i8 {
        self.zero_points[id as usize]
    }
    /// Shape of the node's output.
    pub fn out_shape(&self) -> &[u32] {
        &self.shapes[self.node + 1]
    }
}

/// What [`Op::check`] learns about a valid node.
pub struct Checked {
    /// Zero point of the node's output.
    pub zero_point: i8,
    /// Stored parameters: weights, biases, 256 per table.
    pub params: u64,
}

impl Checked {
    /// What an operator that keeps its input's quantization (a layout change, Clamp, a pool,
    /// ReduceMax) learns: the input's zero point, no parameters.
    pub fn keeps_input(zero_points: &[i8], input: TensorId) -> Checked {
        Checked {
            zero_point: zero_points[input as usize],
            params: 0,
        }
    }
}

/// The fixed scale of tensor `input`, for operators that keep their input's quantization.
pub fn input_scale(scales: &[Option<Scale>], input: TensorId) -> Option<Scale> {
    scales.get(input as usize).copied().flatten()
}

/// One operator. `node` arguments are the node's index, for errors.
pub trait Op: Sized {
    /// Tags of its encodings (Conv: 2-D and 1-D).
    const TAGS: &'static [u8];
    /// Prepared state the engine keeps for the node (weights as tensors, tables).
    type Prepared;

    /// Name in errors and `myelin inspect`.
    fn name(&self) -> &'static str;
    /// The tensors it reads, in order.
    fn inputs(&self) -> Vec<TensorId>;

    /// Reads the payload after `tag`. Checks only what reading needs (SPEC §4.1): the
    /// tensors it reads as they are read, and whatever sizes the arrays that follow.
    fn read(tag: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError>;
    /// Writes tag and payload.
    fn write(&self, w: &mut Vec<u8>);

    /// Its output shape from the shapes of earlier tensors, after its shape checks (the
    /// tensors it reads have been checked), and for in-memory models that its arrays have
    /// the lengths the shapes require.
    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError>;
    /// Its parameter checks (SPEC order, overflow bounds included), given every earlier
    /// tensor's zero point and shape and its own output shape.
    fn check(
        &self,
        node: usize,
        zero_points: &[i8],
        shapes: &[Vec<u32>],
        out: &[u32],
    ) -> Result<Checked, ModelError>;
    /// Its checks of the model's index inputs, made before its shape (SPEC §4.1): only an
    /// operator that reads ids (Gather) has any.
    fn check_ids(&self, _node: usize, _inputs: &[IndexInput]) -> Result<(), ModelError> {
        Ok(())
    }
    /// The scale its output must have when the graph fixes it (`scales[i]`: tensor `i`'s,
    /// if fixed); `None` when the node sets a new one.
    fn fixed_scale(&self, scales: &[Option<Scale>]) -> Option<Scale>;
    /// Elements of the kernel operands preparing it packs (SPEC §7, `PREPARE_ELEM_MILLI`);
    /// none for the burn kernels, whose prepared tensors the per-byte load price covers.
    fn prepared_elems(&self) -> u64 {
        0
    }
    /// Elements of its prepared kernel operands that every inference streams through the
    /// kernel again (SPEC §7, `STREAM_MILLI`): Dense's packed weights, each read once per
    /// inference and, for a layer larger than the caches, from memory. A convolution's
    /// weights are read once per 16 output positions, which its MACs (8 per byte) pay for.
    fn streamed_elems(&self) -> u64 {
        0
    }
    /// Its static cost (SPEC §5): every element the engine writes for it, and its MACs.
    fn cost(&self, shapes: &[Vec<u32>], out: &[u32]) -> Cost;

    /// SPEC §3 on plain integers.
    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8>;

    /// Builds its engine state once per model: everything [`Op::run`] needs (weights as
    /// tensors, tables, and the node's small fields).
    fn prepare(&self) -> Self::Prepared;
    /// Runs it on burn tensors, from its prepared state alone.
    fn run(prepared: &Self::Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor;
}

/// Generates [`Node`] and its dispatch from the operator list.
macro_rules! operators {
    ($($variant:ident($ty:ty),)*) => {
        /// One node of the graph.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Node {
            $($variant($ty),)*
        }

        /// A node's engine state.
        pub enum Prepared {
            $($variant(Box<<$ty as Op>::Prepared>),)*
        }

        impl Node {
            /// Name in errors and `myelin inspect`.
            pub fn op_name(&self) -> &'static str {
                match self {
                    $(Node::$variant(op) => op.name(),)*
                }
            }

            /// The tensors this node reads, in order.
            pub fn inputs(&self) -> Vec<TensorId> {
                match self {
                    $(Node::$variant(op) => op.inputs(),)*
                }
            }

            /// Reads one node (tag and payload); an unknown tag is `UnknownOp`.
            pub(crate) fn read(r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Node, ModelError> {
                let tag = r.u8()?;
                $(
                    if <$ty as Op>::TAGS.contains(&tag) {
                        return Ok(Node::$variant(<$ty as Op>::read(tag, r, shapes)?));
                    }
                )*
                Err(r.unknown_op(tag))
            }

            pub(crate) fn write(&self, w: &mut Vec<u8>) {
                match self {
                    $(Node::$variant(op) => op.write(w),)*
                }
            }

            pub(crate) fn own_output_shape(
                &self,
                node: usize,
                shapes: &[Vec<u32>],
            ) -> Result<Vec<u32>, ModelError> {
                match self {
                    $(Node::$variant(op) => op.output_shape(node, shapes),)*
                }
            }

            pub(crate) fn check(
                &self,
                node: usize,
                zero_points: &[i8],
                shapes: &[Vec<u32>],
                out: &[u32],
            ) -> Result<Checked, ModelError> {
                match self {
                    $(Node::$variant(op) => op.check(node, zero_points, shapes, out),)*
                }
            }

            pub(crate) fn check_ids(
                &self,
                node: usize,
                inputs: &[IndexInput],
            ) -> Result<(), ModelError> {
                match self {
                    $(Node::$variant(op) => op.check_ids(node, inputs),)*
                }
            }

            pub(crate) fn fixed_scale(&self, scales: &[Option<Scale>]) -> Option<Scale> {
                match self {
                    $(Node::$variant(op) => op.fixed_scale(scales),)*
                }
            }

            pub fn prepared_elems(&self) -> u64 {
                match self {
                    $(Node::$variant(op) => op.prepared_elems(),)*
                }
            }

            pub fn streamed_elems(&self) -> u64 {
                match self {
                    $(Node::$variant(op) => op.streamed_elems(),)*
                }
            }

            pub fn cost(&self, shapes: &[Vec<u32>], out: &[u32]) -> Cost {
                match self {
                    $(Node::$variant(op) => op.cost(shapes, out),)*
                }
            }

            pub(crate) fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
                match self {
                    $(Node::$variant(op) => op.reference(cx),)*
                }
            }

            pub(crate) fn prepare(&self) -> Prepared {
                match self {
                    $(Node::$variant(op) => Prepared::$variant(Box::new(op.prepare())),)*
                }
            }
        }

        impl Prepared {
            pub(crate) fn run(&self, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
                match self {
                    $(Prepared::$variant(p) => <$ty as Op>::run(p, cx),)*
                }
            }
        }
    };
}

operators! {
    Dense(dense::Dense),
    Conv(conv::Conv),
    MaxPool(pool::MaxPool),
    AvgPool(pool::AvgPool),
    Add(add::Add),
    Clamp(clamp::Clamp),
    Reshape(reshape::Reshape),
    Lut(lut::Lut),
    Softmax(softmax::Softmax),
    Transpose(transpose::Transpose),
    Slice(slice::Slice),
    Pad(pad::Pad),
    Concat(concat::Concat),
    Mul(mul::Mul),
    Sub(add::Sub),
    ReduceSum(reduce::ReduceSum),
    ReduceMax(reduce::ReduceMax),
    Resize(resize::Resize),
    MatMul(matmul::MatMul),
    LayerNorm(layernorm::LayerNorm),
    Gather(gather::Gather),
    TreeEnsemble(tree::TreeEnsemble),
}

/// Test helpers for the operators' own tests.
#[cfg(test)]
pub(crate) mod testing {
    use crate::engine::Engine;
    use crate::model::{Model, Node, Quant, Scale};
    use crate::ops::window::Window;
    use crate::reference;
    use crate::validate::validate;

    /// A model of `nodes` over an input of `input_shape` (scale 2^-7, zero point 3).
    pub fn model(input_shape: Vec<u32>, nodes: Vec<Node>) -> Model {
        let scale = Scale {
            mult: 1 << 30,
            shift: -6,
        };
        Model {
            input_shape,
            input_quant: vec![Quant {
                scale,
                zero_point: 3,
            }],
            output_scale: scale,
            index_inputs: Vec::new(),
            nodes,
        }
    }

    pub fn window(kernel: [u16; 2], stride: [u16; 2], pads: [u16; 4]) -> Window {
        Window {
            kernel,
            stride,
            pads,
        }
    }

    /// Engine and scalar reference agree byte for byte on `m`.
    pub fn check(m: Model) {
        let m = validate(m).expect("test models are valid");
        let input: Vec<i8> = (0..m.analysis().input_len())
            .map(|i| (i * 37 + 11) as u8 as i8)
            .collect();
        let want = reference::run(&m, &input);
        assert_eq!(Engine::new(m).run(&input), want);
    }
}
