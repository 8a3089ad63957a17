//! Lowering of a calibrated ONNX graph to a quantized Myelin model.
//!
//! Nodes are visited in order. Linear layers (Gemm, MatMul, Conv, a lone BatchNormalization)
//! and the other nodes with a requantized output (Add, Sub, Mul, MatMul of two activations,
//! ReduceSum/ReduceMean, LayerNorm) stay *pending* in float until something forces them out, so that a
//! following BatchNormalization or constant Add/Sub folds into a layer's weights and bias,
//! and a following Relu/Clip becomes their fused activation — each only when the pending
//! tensor has no other reader. Every Myelin tensor takes its quantization from the calibrated
//! range of the ONNX tensor it stands for (after fusion: the Relu's output; Concat
//! requantizes each input to it), except where the format fixes it (pools, Clamp, Reshape,
//! Transpose, Slice, Pad, ReduceMax, Resize keep their input's; Sigmoid, Tanh, Softmax have
//! fixed outputs).
//!
//! Elementwise ops stay pending too, as a [`Chain`]: the rule is that any chain `f(x)` of
//! elementwise unary ops, Relu/Clip, Add/Sub/Mul/Div/Pow by a scalar constant, and
//! Add/Sub/Mul/Div of two chains of the same tensor `x` (one of them not `x` itself) is one
//! Lut of `f`, quantized from the calibrated range of the chain's last tensor. So SiLU is
//! detected as a Mul whose inputs are `x` and a chain of `x` (`Sigmoid(x)`), and the
//! decomposed GELU as Mul/Add/Div steps of chains of `x` — no pattern list. A constant
//! Add/Sub/Mul/Div per channel right after a layer read only there is folded into the layer
//! first (exact), before it would become a table.
//!
//! ONNX axes count the batch axis, Myelin axes do not: axes, perms and pads are read over the
//! ONNX rank (batch first, which they must leave alone) and shifted down by one.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::rc::Rc;

use anyhow::{anyhow, bail, ensure, Context, Result};
use myelin_precompile::model::{self as m, Model, Quant, Scale, TensorId};
use myelin_precompile::ops::layernorm::MAX_ROW;

use super::float::{
    self, bn_affine, clip_bounds, reshape_target, softmax_is_last_axis, unary_fn, Scalar,
};
use super::graph::{Const, Graph, Node};
use super::quant::{self, ActQuant};
use super::{ml, ops};

mod embedding;
mod tree;
pub(super) use embedding::lower_gather;
use embedding::IdSlice;
pub(super) use tree::lower_tree_ensemble;

/// Calibrated `(min, max)` of every ONNX tensor, by name (f64: a QDQ model's range
/// `[(qmin − z)·s, (qmax − z)·s]` then gives back its f32 scale `s` exactly).
pub type Ranges = HashMap<String, (f64, f64)>;

/// A Myelin tensor: id, shape (no batch axis) and quantization.
#[derive(Clone, Debug)]
struct Act {
    id: TensorId,
    shape: Vec<usize>,
    q: ActQuant,
}

#[derive(Clone, Debug)]
enum LayerKind {
    Dense,
    Conv {
        window: float::Window,
        groups: usize,
        one_d: bool,
    },
}

/// A linear layer still in float: `weights` is `[channels][fan_in]`.
#[derive(Debug)]
struct Layer {
    kind: LayerKind,
    input: Act,
    weights: Vec<f64>,
    bias: Vec<f64>,
    out_shape: Vec<usize>,
}

impl Layer {
    fn channels(&self) -> usize {
        self.bias.len()
    }

    /// Axis of the output channels in the ONNX tensor (batch axis included), for folding
    /// per-channel constants: the last axis for Dense, axis 1 for convolutions.
    fn channel_axis(&self) -> usize {
        match self.kind {
            LayerKind::Dense => self.out_shape.len(), // last axis
            LayerKind::Conv { .. } => 1,
        }
    }
}

/// The nodes that requantize into an output with a fused activation.
#[derive(Debug)]
enum PendingOp {
    Layer(Layer),
    /// `a + b`, or `a − b` when `sub`, of equal shapes.
    Add {
        a: Act,
        b: Act,
        sub: bool,
    },
    /// `scale · a · b`, `b` broadcast to `a` (`scale`: positive constants multiplied or
    /// divided in afterwards, 1 if none).
    Mul {
        a: Act,
        b: Act,
        scale: f64,
    },
    /// `scale · ([..., M, K] × [..., K, N])`, both activations; `scale` is 1, or the positive
    /// scalar of a Mul/Div read right after (attention's `/ √d`), folded into the multiplier.
    MatMul {
        a: Act,
        b: Act,
        out_shape: Vec<usize>,
        scale: f64,
    },
    /// `scale · Σ x` over `axis` (kept): `scale` is 1 for ReduceSum, `1 / L` for ReduceMean.
    ReduceSum {
        x: Act,
        axis: usize,
        scale: f64,
        out_shape: Vec<usize>,
    },
    /// `(x − mean) / √(var + eps) · gamma + beta` over the last axis of `x`, in float.
    LayerNorm {
        x: Act,
        eps: f64,
        gamma: Vec<f64>,
        beta: Vec<f64>,
    },
}

/// A layer, Add, Sub, Mul, MatMul, ReduceSum or LayerNorm not emitted yet. `name` is the ONNX tensor it currently computes.
#[derive(Debug)]
struct Pending {
    op: PendingOp,
    name: String,
    sources: Vec<String>,
}

impl Pending {
    fn out_shape(&self) -> &[usize] {
        match &self.op {
            PendingOp::Layer(l) => &l.out_shape,
            PendingOp::Add { a, .. } | PendingOp::Mul { a, .. } => &a.shape,
            PendingOp::LayerNorm { x, .. } => &x.shape,
            PendingOp::MatMul { out_shape, .. } | PendingOp::ReduceSum { out_shape, .. } => {
                out_shape
            }
        }
    }
}

enum Val {
    Act(Act),
    Pending(Pending),
    Chain(Chain),
    Affine(Affine),
}

/// `a · x + c` per feature (the last axis) of the activation `x`, not emitted yet: a Scaler.
/// A MatMul/Gemm by constant weights reading it folds it into its weights and bias, exactly
/// (`W · (a·x + c) + b = (W·a) · x + (W·c + b)`), each reader its own copy; any other reader
/// gets it as a diagonal Dense layer.
#[derive(Clone)]
struct Affine {
    x: Act,
    a: Vec<f64>,
    c: Vec<f64>,
    sources: Vec<String>,
}

impl Affine {
    /// Folds the map into a layer reading it: `[channels][fan_in]` weights and their bias.
    fn fold_into(&self, weights: &mut [f64], bias: &mut [f64]) {
        let fan_in = self.a.len();
        for (row, b) in weights.chunks_mut(fan_in).zip(bias) {
            *b += row.iter().zip(&self.c).map(|(w, c)| w * c).sum::<f64>();
            row.iter_mut().zip(&self.a).for_each(|(w, a)| *w *= a);
        }
    }

    /// The map as a pending diagonal Dense layer computing the ONNX tensor `name`.
    fn layer(self, name: &str) -> Pending {
        let out_shape = self.x.shape.clone();
        let layer = Layer {
            kind: LayerKind::Dense,
            input: self.x,
            weights: diagonal(&self.a),
            bias: self.c,
            out_shape,
        };
        Pending {
            op: PendingOp::Layer(layer),
            name: name.to_string(),
            sources: self.sources,
        }
    }
}

/// The `n × n` matrix with `a` on its diagonal: a per-feature scale as a Dense layer.
fn diagonal(a: &[f64]) -> Vec<f64> {
    let n = a.len();
    let mut w = vec![0.0; n * n];
    a.iter().enumerate().for_each(|(i, &v)| w[i * n + i] = v);
    w
}

/// `f(x)` of one activation `x`, not emitted yet: a chain of elementwise ops whose only
/// activation input is `x` (unary ops, Add/Sub/Mul/Div/Pow by a scalar constant, and
/// Add/Sub/Mul/Div of two such chains of the same `x`). Whatever the chain, `f` maps int8 to
/// int8, so it becomes ONE Lut when something reads it as a tensor: SiLU `x · Sigmoid(x)`,
/// the GELU `torch.onnx.export` writes (`Div(x, √2)` → Erf → `Add(·, 1)` → `Mul(x, ·)` →
/// `Mul(·, 0.5)`, in any order of the constant steps) and `Pow(x, 2)` after a layer are one
/// table each. A chain read by several nodes is emitted once (then cached as a tensor);
/// combining two chains does not emit either, so `Sigmoid(x)` read by `Mul(x, ·)` and by
/// another node costs two tables, never a Mul.
#[derive(Clone)]
struct Chain {
    x: Act,
    f: Scalar,
    /// The output quantization fixed by the last op (Sigmoid, Tanh: TFLite's), else the
    /// calibrated range of the chain's output.
    fixed: Option<ActQuant>,
    /// The ONNX nodes folded in, in order.
    sources: Vec<String>,
}

impl Chain {
    /// The identity chain of `x`: the start of every chain.
    fn of(x: Act) -> Chain {
        Chain {
            x,
            f: Rc::new(|v| v),
            fixed: None,
            sources: Vec::new(),
        }
    }

    /// `g ∘ self`, with `node` as its last source.
    fn then(self, node: &Node, g: impl Fn(f64) -> f64 + 'static) -> Chain {
        let f = self.f;
        let mut sources = self.sources;
        sources.push(node.name.clone());
        Chain {
            x: self.x,
            f: Rc::new(move |v| g(f(v))),
            fixed: None,
            sources,
        }
    }

    /// `op(self(x), other(x))` of two chains of the same `x`, with `node` as its last source.
    fn zip(self, other: Chain, node: &Node, op: fn(f64, f64) -> f64) -> Chain {
        let (f, g) = (self.f, other.f);
        let mut sources = self.sources;
        for s in other.sources {
            if !sources.contains(&s) {
                sources.push(s); // shared steps (a chain read twice) are listed once
            }
        }
        sources.push(node.name.clone());
        Chain {
            x: self.x,
            f: Rc::new(move |v| op(f(v), g(v))),
            fixed: None,
            sources,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Activation {
    None,
    Relu,
    Clip(f32, f32),
}

pub struct Lowered {
    pub model: Model,
    /// Per Myelin node, the ONNX nodes it was made from.
    pub sources: Vec<String>,
    /// What each Myelin tensor (by id) approximates, where it stands for an ONNX tensor.
    pub tensors: HashMap<TensorId, TensorQuant>,
    /// Per Dense/Conv node (by index), the ONNX tensor its accumulator approximates: its
    /// output before a fused Relu/Clip, which bias correction compares means with.
    pub pre_activation: HashMap<usize, String>,
    pub report: String,
}

/// The ONNX tensor a Myelin tensor stands for and its quantization (`real = (q − zp) · scale`).
#[derive(Clone, Debug)]
pub struct TensorQuant {
    pub onnx: String,
    pub q: ActQuant,
}

/// Float amounts subtracted from the biases of layers (bias correction), keyed by the ONNX
/// tensor of the layer's output before its activation.
pub type BiasShift = HashMap<String, Vec<f64>>;

/// The state of [`lower`] between nodes.
pub(super) struct Lowerer<'a> {
    graph: &'a Graph,
    ranges: &'a Ranges,
    consumers: HashMap<String, usize>,
    vals: HashMap<String, Val>,
    nodes: Vec<m::Node>,
    sources: Vec<String>,
    report: String,
    /// Outputs of the nodes already lowered as part of an earlier node's pattern (the
    /// decomposed LayerNorm): visiting them does nothing.
    folded: HashSet<String>,
    /// ONNX tensors that hold integer ids (graph inputs and columns selected from them).
    ids: HashMap<String, IdSlice>,
    /// Per index input, the limit of each id: the rows of the smallest table reading it.
    limits: Vec<Vec<u16>>,
    bias_shift: &'a BiasShift,
    tensors: HashMap<TensorId, TensorQuant>,
    pre_activation: HashMap<usize, String>,
    /// A fused activation's output → the tensor it was fused onto.
    fused_onto: HashMap<String, String>,
    /// The quantization of each feature of the model input, when it is quantized per feature
    /// (tensor 0 is then plain int8 values, scale 1 and zero point 0, to the graph).
    features: Option<Vec<ActQuant>>,
}

/// Lowers `graph` (whose tensors were calibrated into `ranges`, and the input's features
/// into `feature_ranges` when rows were given) for inputs of `input_shape` (batch axis
/// dropped), subtracting `bias_shift` from the biases of the layers it names.
pub fn lower(
    graph: &Graph,
    ranges: &Ranges,
    feature_ranges: &[(f64, f64)],
    input_shape: &[usize],
    bias_shift: &BiasShift,
) -> Result<Lowered> {
    let mut l = Lowerer {
        graph,
        ranges,
        consumers: graph.consumers(),
        vals: HashMap::new(),
        nodes: Vec::new(),
        sources: Vec::new(),
        report: String::new(),
        folded: HashSet::new(),
        ids: HashMap::new(),
        limits: Vec::new(),
        bias_shift,
        tensors: HashMap::new(),
        pre_activation: HashMap::new(),
        fused_onto: HashMap::new(),
        features: None,
    };
    for (k, input) in graph.id_inputs.iter().enumerate() {
        let slice = IdSlice {
            input: k,
            start: 0,
            count: input.per_row,
            shape: input.shape.clone(),
        };
        l.ids.insert(input.name.clone(), slice);
        // Positions no table reads accept any id.
        l.limits.push(vec![u16::MAX; input.per_row]);
    }
    let per_feature = match input_shape {
        [f] if feature_ranges.len() == *f && folds_per_feature(graph) => {
            let qs = (feature_ranges.iter())
                .map(|&(lo, hi)| stored(quant::act_quant(lo, hi)))
                .collect::<Result<Vec<_>>>()?;
            // all equal: the per-tensor quantization says the same
            Some(qs).filter(|qs| qs.windows(2).any(|p| p[0] != p[1]))
        }
        _ => None,
    };
    let (input_quant, input_q) = match per_feature {
        Some(qs) => {
            let (quants, acts): (Vec<Quant>, Vec<ActQuant>) = qs.into_iter().unzip();
            let _ = writeln!(
                l.report,
                "input `{}` {:?}: quantized per feature from its calibrated range, scales {}, \
                 zero points {}..{}",
                graph.input,
                input_shape,
                fmt_range(acts.iter().map(|q| q.scale)),
                acts.iter().map(|q| q.zp).min().unwrap_or(0),
                acts.iter().map(|q| q.zp).max().unwrap_or(0),
            );
            l.features = Some(acts);
            (quants, ActQuant { scale: 1.0, zp: 0 })
        }
        None => {
            let (lo, hi) = l.range(&graph.input)?;
            let (quant, input_q) = stored(quant::act_quant(lo, hi))?;
            let _ = writeln!(
                l.report,
                "input `{}` {:?}: calibrated range [{lo:.6}, {hi:.6}] -> scale {:.6e}, zero \
                 point {}",
                graph.input, input_shape, input_q.scale, input_q.zp
            );
            (vec![quant], input_q)
        }
    };
    l.set(
        &graph.input,
        Val::Act(Act {
            id: 0,
            shape: input_shape.to_vec(),
            q: input_q,
        }),
    );
    for node in &graph.nodes {
        l.node(node)
            .with_context(|| format!("converting {}", node.describe()))?;
    }
    let out = l.act(&graph.output).context("graph output")?;
    if out.id as usize != l.nodes.len() || l.nodes.is_empty() {
        // The output is an earlier tensor (e.g. an Identity chain): make it the last one.
        let shape = u32_shape(&out.shape)?;
        l.emit(
            m::Node::Reshape(m::Reshape {
                input: out.id,
                shape,
            }),
            "(output)".into(),
            "keeps the output last".into(),
        );
    }
    let output_scale = Scale::from_f64(out.q.scale)
        .ok_or_else(|| anyhow!("output scale {} is not representable", out.q.scale))?;
    let _ = writeln!(
        l.report,
        "output `{}` {:?}: scale {:.6e}, zero point {}",
        graph.output, out.shape, out.q.scale, out.q.zp
    );
    let model = Model {
        input_shape: u32_shape(input_shape)?,
        input_quant,
        output_scale,
        index_inputs: l
            .limits
            .into_iter()
            .map(|limits| m::IndexInput { limits })
            .collect(),
        nodes: l.nodes,
    };
    Ok(Lowered {
        model,
        sources: l.sources,
        tensors: l.tensors,
        pre_activation: l.pre_activation,
        report: l.report,
    })
}

/// An input quantization as the model stores it (a fixed-point scale), and exactly that
/// scale as the lowering uses it from then on.
fn stored(aq: ActQuant) -> Result<(Quant, ActQuant)> {
    let scale = Scale::from_f64(aq.scale)
        .ok_or_else(|| anyhow!("input scale {} is not representable", aq.scale))?;
    let quant = Quant {
        scale,
        zero_point: aq.zp,
    };
    Ok((
        quant,
        ActQuant {
            scale: scale.to_f64(),
            zp: aq.zp,
        },
    ))
}

/// Whether the model input is quantized per feature: when every node reading it takes each
/// feature at its own scale and zero point exactly — a tree ensemble (each split compares
/// one feature) or a Scaler (a per-feature affine map, which folds into the Dense layer
/// after it or becomes a diagonal Dense, whose weight columns take the scales and whose bias
/// takes the zero points). A feature then spans its own range, not the widest feature's.
fn folds_per_feature(graph: &Graph) -> bool {
    let mut readers = (graph.nodes.iter())
        .filter(|n| n.inputs.contains(&graph.input))
        .peekable();
    graph.output != graph.input
        && readers.peek().is_some()
        && readers.all(|n| matches!(n.op.as_str(), "TreeEnsembleRegressor" | "Scaler"))
}

fn u32_shape(shape: &[usize]) -> Result<Vec<u32>> {
    shape
        .iter()
        .map(|&d| u32::try_from(d).map_err(|_| anyhow!("dimension {d} is too large")))
        .collect()
}

fn u16_of(v: usize, what: &str) -> Result<u16> {
    u16::try_from(v).map_err(|_| anyhow!("{what} {v} does not fit the format (max 65535)"))
}

fn model_window(w: &float::Window) -> Result<m::Window> {
    Ok(m::Window {
        kernel: [
            u16_of(w.kernel[0], "kernel")?,
            u16_of(w.kernel[1], "kernel")?,
        ],
        stride: [
            u16_of(w.stride[0], "stride")?,
            u16_of(w.stride[1], "stride")?,
        ],
        pads: [
            u16_of(w.pads[0], "padding")?,
            u16_of(w.pads[1], "padding")?,
            u16_of(w.pads[2], "padding")?,
            u16_of(w.pads[3], "padding")?,
        ],
    })
}

/// A constant broadcast against a layer output of `rank` axes (batch included) that varies
/// only along `axis` (with `channels` entries) or is a scalar: its per-channel values.
fn channel_vector(c: &Const, rank: usize, axis: usize, channels: usize) -> Option<Vec<f64>> {
    let v = c.f32();
    if v.len() == 1 {
        return Some(vec![v[0] as f64; channels]);
    }
    if c.dims.len() > rank || v.len() != channels {
        return None;
    }
    let offset = rank - c.dims.len();
    let ok = c.dims.iter().enumerate().all(|(i, &d)| {
        if i + offset == axis {
            d == channels
        } else {
            d == 1
        }
    });
    ok.then(|| v.iter().map(|&x| x as f64).collect())
}

/// The output of a node that requantizes an int32 accumulator whose unit is `acc_scale`
/// (Mul and MatMul: the product of the input scales; ReduceSum: the input scale, over `L` for
/// a mean) to `q`, and its report line.
fn acc_output(
    shape: &[usize],
    acc_scale: f64,
    q: ActQuant,
    (act_min, act_max): (i8, i8),
    act_note: &str,
) -> Result<(m::Output, String)> {
    let requant = quant::requant(acc_scale / q.scale)?;
    let detail = format!(
        "{shape:?}, out scale {:.4e} zp {}, act [{act_min}, {act_max}]{act_note}, multiplier {:.4e}",
        q.scale,
        q.zp,
        requant.to_f64()
    );
    let out = m::Output {
        requant: vec![requant],
        zero_point: q.zp,
        act_min,
        act_max,
    };
    Ok((out, detail))
}

fn fmt_range(v: impl Iterator<Item = f64>) -> String {
    let (lo, hi) = v.fold((f64::INFINITY, 0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
    if (hi - lo).abs() <= hi * 1e-9 {
        format!("{hi:.3e}")
    } else {
        format!("{lo:.3e}..{hi:.3e}")
    }
}

impl Lowerer<'_> {
    fn range(&self, name: &str) -> Result<(f64, f64)> {
        self.ranges.get(name).copied().ok_or_else(|| {
            anyhow!(
                "tensor `{name}` has no range: it was never seen during calibration, and no \
                     QuantizeLinear gives its scale (pass --calib rows)"
            )
        })
    }

    fn konst(&self, name: &str) -> Option<&Const> {
        self.graph.consts.get(name)
    }

    fn single_reader(&self, name: &str) -> bool {
        self.consumers.get(name).copied().unwrap_or(0) == 1
    }

    fn emit(&mut self, node: m::Node, source: String, detail: String) -> TensorId {
        let id = self.nodes.len();
        let _ = writeln!(
            self.report,
            "node {id:>3} {:<9} <- {source}: {detail}",
            node.op_name()
        );
        self.nodes.push(node);
        self.sources.push(source);
        (id + 1) as TensorId
    }

    /// The Myelin tensor for ONNX tensor `name`, emitting it if it is still pending.
    fn act(&mut self, name: &str) -> Result<Act> {
        match self.vals.remove(name) {
            Some(Val::Act(a)) => {
                self.vals.insert(name.to_string(), Val::Act(a.clone()));
                Ok(a)
            }
            Some(Val::Pending(p)) => {
                let a = self.materialize(p, Activation::None)?;
                self.set(name, Val::Act(a.clone()));
                Ok(a)
            }
            Some(Val::Chain(c)) => {
                let a = self.emit_chain(name, c)?;
                self.set(name, Val::Act(a.clone()));
                Ok(a)
            }
            Some(Val::Affine(f)) => {
                let a = self.materialize(f.layer(name), Activation::None)?;
                self.set(name, Val::Act(a.clone()));
                Ok(a)
            }
            None if self.ids.contains_key(name) => bail!(
                "`{name}` holds integer ids: only an embedding lookup (Gather of a constant \
                 table) can read them"
            ),
            None if self.konst(name).is_some() => {
                bail!("constant `{name}` used where an activation is expected (constant folding is not supported)")
            }
            None => bail!("tensor `{name}` is not produced by any supported node"),
        }
    }

    /// The Lut of the chain that computes the ONNX tensor `name`.
    fn emit_chain(&mut self, name: &str, c: Chain) -> Result<Act> {
        let q = match c.fixed {
            Some(q) => q,
            None => {
                let (lo, hi) = self.range(name)?;
                quant::act_quant(lo, hi)
            }
        };
        let table = quant::lut(|v| (c.f)(v), c.x.q, q);
        let detail = format!(
            "{:?}, table of {} node(s), out scale {:.4e} zp {}",
            c.x.shape,
            c.sources.len(),
            q.scale,
            q.zp
        );
        let node = m::Node::Lut(m::Lut {
            input: c.x.id,
            zero_point: q.zp,
            table,
        });
        let id = self.emit(node, c.sources.join(" + "), detail);
        Ok(Act {
            id,
            shape: c.x.shape,
            q,
        })
    }

    /// `name` as a chain: its pending chain, or the identity chain of its tensor.
    fn chain(&mut self, name: &str) -> Result<Chain> {
        if let Some(Val::Chain(c)) = self.vals.get(name) {
            return Ok(c.clone());
        }
        Ok(Chain::of(self.act(name)?))
    }

    /// The input `name` of a MatMul/Gemm by constant weights, and the Scaler to fold into
    /// the layer when `name` is one's output.
    fn layer_input(&mut self, name: &str) -> Result<(Act, Option<Affine>)> {
        if let Some(Val::Affine(f)) = self.vals.get(name) {
            return Ok((f.x.clone(), Some(f.clone())));
        }
        Ok((self.act(name)?, None))
    }

    /// The tensor id that `name` is, or is a pending chain of (`None` while pending).
    fn chain_base(&self, name: &str) -> Option<TensorId> {
        match self.vals.get(name)? {
            Val::Act(a) => Some(a.id),
            Val::Chain(c) => Some(c.x.id),
            Val::Pending(_) | Val::Affine(_) => None,
        }
    }

    /// `op(a, b)` as one chain, when one of `a`, `b` is a pending chain and both are functions
    /// of the same tensor (two plain tensors stay a Myelin Add/Sub/Mul: cheaper than a table
    /// and exact).
    fn zip_chains(
        &mut self,
        node: &Node,
        (a, b): (&str, &str),
        op: fn(f64, f64) -> f64,
    ) -> Result<Option<Chain>> {
        let is_chain = |n: &str| matches!(self.vals.get(n), Some(Val::Chain(_)));
        let same = self.chain_base(a).is_some() && self.chain_base(a) == self.chain_base(b);
        if !(same && (is_chain(a) || is_chain(b))) {
            return Ok(None);
        }
        Ok(Some(self.chain(a)?.zip(self.chain(b)?, node, op)))
    }

    /// The pending value `name`, taken out for fusion, if it is pending and read only once.
    fn take_pending(&mut self, name: &str) -> Option<Pending> {
        if !self.single_reader(name) || !matches!(self.vals.get(name), Some(Val::Pending(_))) {
            return None;
        }
        match self.vals.remove(name) {
            Some(Val::Pending(p)) => Some(p),
            _ => None,
        }
    }

    fn set(&mut self, name: &str, v: Val) {
        if let Val::Act(a) = &v {
            // the first ONNX tensor a Myelin tensor is stored under is the one it computes
            self.tensors.entry(a.id).or_insert_with(|| TensorQuant {
                onnx: name.to_string(),
                q: a.q,
            });
        }
        self.vals.insert(name.to_string(), v);
    }

    fn act_bounds(act: Activation, q: ActQuant) -> Result<(i8, i8)> {
        let (lo, hi) = match act {
            Activation::None => (-128, 127),
            Activation::Relu => (q.zp, 127),
            Activation::Clip(lo, hi) => {
                (quant::quantize(lo as f64, q), quant::quantize(hi as f64, q))
            }
        };
        ensure!(
            lo <= hi,
            "clip range quantizes to the empty range [{lo}, {hi}]"
        );
        Ok((lo, hi))
    }

    /// Emits a pending node with a fused activation; its output is quantized from the
    /// calibrated range of `p.name`.
    fn materialize(&mut self, p: Pending, act: Activation) -> Result<Act> {
        let (lo, hi) = self.range(&p.name)?;
        let q = quant::act_quant(lo, hi);
        let (act_min, act_max) = Self::act_bounds(act, q)?;
        let source = p.sources.join(" + ");
        let shape = p.out_shape().to_vec();
        let act_note = match act {
            Activation::None => String::new(),
            Activation::Relu => " relu".into(),
            Activation::Clip(a, b) => format!(" clip({a}, {b})"),
        };
        let id = match p.op {
            PendingOp::Layer(mut layer) => {
                let pre = self.fused_onto.get(&p.name).unwrap_or(&p.name).clone();
                if let Some(shift) = self.bias_shift.get(&pre) {
                    layer.bias.iter_mut().zip(shift).for_each(|(b, d)| *b -= d);
                }
                self.pre_activation.insert(self.nodes.len(), pre);
                // A per-feature quantized input `s_j · (q_j − zp_j)`: the scales multiply the
                // weight columns (against an input of scale 1), the zero points go into the
                // bias once the weights are integers.
                let features = self.features.as_ref().filter(|_| layer.input.id == 0);
                if let Some(f) = features {
                    ensure!(
                        matches!(layer.kind, LayerKind::Dense),
                        "internal error: a convolution of the per-feature quantized input"
                    );
                    for row in layer.weights.chunks_mut(f.len()) {
                        row.iter_mut().zip(f).for_each(|(w, q)| *w *= q.scale);
                    }
                }
                let mut ql = quant::quantize_layer(
                    &layer.weights,
                    &layer.bias,
                    layer.input.q.scale,
                    q.scale,
                )
                .with_context(|| format!("quantizing {source}"))?;
                if let Some(f) = features {
                    let zero_points: Vec<i8> = f.iter().map(|q| q.zp).collect();
                    quant::fold_zero_points(&mut ql, &zero_points)
                        .with_context(|| format!("quantizing {source}"))?;
                }
                let detail = format!(
                    "{:?} -> {:?}, out scale {:.4e} zp {}, act [{act_min}, {act_max}]{act_note}, \
                     weight scales {}, multipliers {}",
                    layer.input.shape,
                    shape,
                    q.scale,
                    q.zp,
                    fmt_range(ql.weight_scales.iter().copied()),
                    fmt_range(ql.requant.iter().map(|s| s.to_f64())),
                );
                let out = m::Output {
                    requant: ql.requant,
                    zero_point: q.zp,
                    act_min,
                    act_max,
                };
                let channels = u32::try_from(layer.channels())?;
                let node = match layer.kind {
                    LayerKind::Dense => m::Node::Dense(m::Dense {
                        input: layer.input.id,
                        out_features: channels,
                        out,
                        bias: ql.bias,
                        weights: ql.weights,
                    }),
                    LayerKind::Conv {
                        window,
                        groups,
                        one_d,
                    } => m::Node::Conv(m::Conv {
                        input: layer.input.id,
                        one_d,
                        out_channels: channels,
                        window: model_window(&window)?,
                        groups: u32::try_from(groups)?,
                        out,
                        bias: ql.bias,
                        weights: ql.weights,
                    }),
                };
                self.emit(node, source, detail)
            }
            PendingOp::Add { a, b, sub } => {
                let twice_max = 2.0 * a.q.scale.max(b.q.scale);
                let a_requant = quant::requant(a.q.scale / twice_max)?;
                let b_requant = quant::requant(b.q.scale / twice_max)?;
                let out_rq = quant::requant(twice_max / ((1u64 << 20) as f64 * q.scale))?;
                let detail = format!(
                    "{shape:?}, out scale {:.4e} zp {}, act [{act_min}, {act_max}]{act_note}, multipliers a {:.4e} b {:.4e} out {:.4e}",
                    q.scale,
                    q.zp,
                    a_requant.to_f64(),
                    b_requant.to_f64(),
                    out_rq.to_f64()
                );
                let add = m::Add {
                    a: a.id,
                    b: b.id,
                    a_requant,
                    b_requant,
                    out: m::Output {
                        requant: vec![out_rq],
                        zero_point: q.zp,
                        act_min,
                        act_max,
                    },
                };
                let node = if sub {
                    m::Node::Sub(m::Sub(add))
                } else {
                    m::Node::Add(add)
                };
                self.emit(node, source, detail)
            }
            PendingOp::Mul { a, b, scale } => {
                let (out, detail) = acc_output(
                    &shape,
                    a.q.scale * b.q.scale * scale,
                    q,
                    (act_min, act_max),
                    &act_note,
                )?;
                let node = m::Node::Mul(m::Mul {
                    a: a.id,
                    b: b.id,
                    out,
                });
                self.emit(node, source, detail)
            }
            PendingOp::MatMul { a, b, scale, .. } => {
                let (out, detail) = acc_output(
                    &shape,
                    a.q.scale * b.q.scale * scale,
                    q,
                    (act_min, act_max),
                    &act_note,
                )?;
                let node = m::Node::MatMul(m::MatMul {
                    a: a.id,
                    b: b.id,
                    out,
                });
                self.emit(node, source, detail)
            }
            PendingOp::ReduceSum { x, axis, scale, .. } => {
                let (out, detail) =
                    acc_output(&shape, x.q.scale * scale, q, (act_min, act_max), &act_note)?;
                let node = m::Node::ReduceSum(m::ReduceSum {
                    input: x.id,
                    axis: u8::try_from(axis)?,
                    out,
                });
                self.emit(node, source, detail)
            }
            PendingOp::LayerNorm {
                x,
                eps,
                gamma,
                beta,
            } => {
                let ql = quant::quantize_layer_norm(&gamma, &beta, eps, x.q.scale, q.scale)
                    .with_context(|| format!("quantizing {source}"))?;
                let detail = format!(
                    "{shape:?}, epsilon {}, gamma scale {:.4e}, out scale {:.4e} zp {}, \
                     act [{act_min}, {act_max}]{act_note}, multiplier {:.4e}",
                    ql.epsilon,
                    ql.gamma_scale,
                    q.scale,
                    q.zp,
                    ql.requant.to_f64()
                );
                let node = m::Node::LayerNorm(m::LayerNorm {
                    input: x.id,
                    epsilon: ql.epsilon,
                    gamma: ql.gamma,
                    beta: ql.beta,
                    out: m::Output {
                        requant: vec![ql.requant],
                        zero_point: q.zp,
                        act_min,
                        act_max,
                    },
                });
                self.emit(node, source, detail)
            }
        };
        Ok(Act { id, shape, q })
    }

    /// Lowers `node` with the function of its row in [`ops`].
    fn node(&mut self, node: &Node) -> Result<()> {
        let out = node
            .outputs
            .first()
            .ok_or_else(|| anyhow!("node has no output"))?
            .clone();
        if self.folded.contains(&out) {
            return Ok(());
        }
        (ops::find(node)?.lower)(self, node, out)
    }

    /// Reshape `x` to `shape` (`[0]` = flatten), emitting nothing if the shape is unchanged.
    fn reshape(&mut self, node: &Node, x: Act, shape: Vec<usize>) -> Result<Act> {
        let shape = if shape == [0] {
            vec![x.shape.iter().product()]
        } else {
            shape
        };
        if shape == x.shape {
            return Ok(x);
        }
        let detail = format!("{:?} -> {shape:?}", x.shape);
        let id = self.emit(
            m::Node::Reshape(m::Reshape {
                input: x.id,
                shape: u32_shape(&shape)?,
            }),
            node.name.clone(),
            detail,
        );
        Ok(Act { id, shape, q: x.q })
    }

    /// `x` repeated along each axis where it has size 1 and `shape` has more: a Concat of
    /// copies per such axis, at `x`'s own quantization (multiplier 1: exact copies). This is
    /// how Add, Sub and the leading axes of MatMul broadcast, which Myelin does not.
    fn broadcast_to(&mut self, node: &Node, mut x: Act, shape: &[usize]) -> Result<Act> {
        for axis in 0..shape.len() {
            let n = shape[axis];
            if x.shape[axis] == n {
                continue;
            }
            ensure!(
                x.shape[axis] == 1 && n <= u8::MAX as usize,
                "cannot broadcast {:?} to {shape:?}",
                x.shape
            );
            let copy = (x.id, quant::requant(1.0)?);
            let mut out = x.shape.clone();
            out[axis] = n;
            let detail = format!("{:?} -> {out:?}, axis {axis}, {n} copies", x.shape);
            let id = self.emit(
                m::Node::Concat(m::Concat {
                    inputs: vec![copy; n],
                    axis: u8::try_from(axis)?,
                    zero_point: x.q.zp,
                }),
                format!("{} (broadcast)", node.name),
                detail,
            );
            x = Act {
                id,
                shape: out,
                q: x.q,
            };
        }
        Ok(x)
    }
}

/// Input 0 of `node`, which every lowered op reads.
fn in0(node: &Node) -> Result<&str> {
    node.input(0).ok_or_else(|| anyhow!("missing input 0"))
}

// One function per row of the [`ops`] table (free functions, not methods: a method's fn item
// is not general over the lowerer's lifetime, so it would not coerce to the table's fn
// pointer type).

pub(super) fn lower_identity(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let name = in0(node)?;
    let v = match lowerer.take_pending(name) {
        Some(mut p) => {
            p.name = out.clone();
            Val::Pending(p)
        }
        None => match lowerer.vals.get(name) {
            Some(Val::Chain(c)) => Val::Chain(c.clone()),
            Some(Val::Affine(f)) => Val::Affine(f.clone()),
            _ => Val::Act(lowerer.act(name)?),
        },
    };
    lowerer.set(&out, v);
    Ok(())
}

/// Dropout at inference and Cast to float: the identity.
pub(super) fn lower_dropout(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    float::check_dropout(lowerer.graph, node)?;
    lower_identity(lowerer, node, out)
}

pub(super) fn lower_cast(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    float::check_cast(node)?;
    lower_identity(lowerer, node, out)
}

/// Scaler: a pending per-feature affine map (see [`Affine`]).
pub(super) fn lower_scaler(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    let (offset, scale) = ml::scaler_params(node, *x.shape.last().unwrap_or(&1))?;
    // (x − offset) · scale
    let a: Vec<f64> = scale.iter().map(|&s| s as f64).collect();
    let c = (offset.iter().zip(&a))
        .map(|(&o, s)| -(o as f64) * s)
        .collect();
    let f = Affine {
        x,
        a,
        c,
        sources: vec![node.name.clone()],
    };
    lowerer.set(&out, Val::Affine(f));
    Ok(())
}

/// Normalizer divides each row by a norm of the row: no Myelin op computes that.
pub(super) fn lower_normalizer(_: &mut Lowerer<'_>, node: &Node, _: String) -> Result<()> {
    let (norm, by) = ml::normalizer_norm(node)?;
    bail!(
        "unsupported: Normalizer norm={norm} is not linear (it divides each row by its {by}); \
         normalize the rows before the model"
    )
}

/// Relu and Clip: the fused activation of a pending producer read only here, one more step
/// of a pending chain, else a Clamp (or nothing when the bounds are the full int8 range).
pub(super) fn lower_activation(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let act = if node.op == "Relu" {
        Activation::Relu
    } else {
        let (lo, hi) = clip_bounds(lowerer.graph, node)?;
        Activation::Clip(lo, hi)
    };
    let name = in0(node)?;
    if let Some(Val::Chain(c)) = lowerer.vals.get(name) {
        let c = c.clone();
        let c = match act {
            Activation::Clip(lo, hi) => c.then(node, move |v| v.max(lo as f64).min(hi as f64)),
            _ => c.then(node, |v| v.max(0.0)),
        };
        lowerer.set(&out, Val::Chain(c));
        return Ok(());
    }
    if let Some(mut p) = lowerer.take_pending(name) {
        lowerer.fused_onto.insert(out.clone(), p.name.clone());
        p.name = out.clone();
        p.sources.push(node.name.clone());
        let a = lowerer.materialize(p, act)?;
        lowerer.set(&out, Val::Act(a));
    } else {
        let x = lowerer.act(name)?;
        let (min, max) = Lowerer::act_bounds(act, x.q)?;
        let y = if (min, max) == (-128, 127) {
            x // already within the bounds (e.g. a ReLU of a non-negative tensor)
        } else {
            let id = lowerer.emit(
                m::Node::Clamp(m::Clamp {
                    input: x.id,
                    min,
                    max,
                }),
                node.name.clone(),
                format!("{:?}, [{min}, {max}]", x.shape),
            );
            Act { id, ..x }
        };
        lowerer.set(&out, Val::Act(y));
    }
    Ok(())
}

/// The elementwise unary ops: one more step of the chain of their input (a Lut when read).
/// Sigmoid and Tanh fix the output quantization (TFLite's), the others take the calibrated
/// range of their output.
pub(super) fn lower_unary(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let g = unary_fn(node)?;
    let mut c = lowerer.chain(in0(node)?)?.then(node, move |v| g(v));
    c.fixed = match node.op.as_str() {
        "Sigmoid" => Some(quant::SIGMOID_OUT),
        "Tanh" => Some(quant::TANH_OUT),
        _ => None,
    };
    lowerer.set(&out, Val::Chain(c));
    Ok(())
}

pub(super) fn lower_softmax(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    ensure!(
        softmax_is_last_axis(node, lowerer.graph.opset, x.shape.len() + 1)?,
        "Softmax must normalise the last axis"
    );
    let exp_table = quant::softmax_table(x.q.scale);
    let detail = format!("{:?}, exp table for input scale {:.4e}", x.shape, x.q.scale);
    let id = lowerer.emit(
        m::Node::Softmax(m::Softmax {
            input: x.id,
            exp_table,
        }),
        node.name.clone(),
        detail,
    );
    lowerer.set(
        &out,
        Val::Act(Act {
            id,
            shape: x.shape,
            q: quant::SOFTMAX_OUT,
        }),
    );
    Ok(())
}

pub(super) fn lower_gemm(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    // transA = 1 is refused by `float::gemm`, which the load-time pass runs first
    let (x, affine) = lowerer.layer_input(in0(node)?)?;
    ensure!(
        x.shape.len() == 1,
        "Gemm input must be [N, K]; got [N, {:?}]",
        x.shape
    );
    let bname = node.input(1).ok_or_else(|| anyhow!("missing B"))?;
    let b = lowerer
        .konst(bname)
        .ok_or_else(|| anyhow!("B `{bname}` must be a constant"))?;
    ensure!(b.dims.len() == 2, "B must be 2-D");
    let (alpha, beta) = (
        node.float("alpha", 1.0)? as f64,
        node.float("beta", 1.0)? as f64,
    );
    let k = x.shape[0];
    let trans_b = node.int("transB", 0)? != 0;
    let (bk, n) = if trans_b {
        (b.dims[1], b.dims[0])
    } else {
        (b.dims[0], b.dims[1])
    };
    ensure!(bk == k, "B has inner dimension {bk}, the input has {k}");
    let bv = b.f32();
    let mut weights = Vec::with_capacity(n * k);
    for o in 0..n {
        for i in 0..k {
            let w = if trans_b {
                bv[o * k + i]
            } else {
                bv[i * n + o]
            };
            weights.push(alpha * w as f64);
        }
    }
    let bias = match node.input(2) {
        None => vec![0.0; n],
        Some(cname) => {
            let c = lowerer
                .konst(cname)
                .ok_or_else(|| anyhow!("C `{cname}` must be a constant"))?;
            let v = channel_vector(c, 2, 1, n).ok_or_else(|| {
                anyhow!("C {:?} does not broadcast to [N, {n}] per output", c.dims)
            })?;
            v.iter().map(|c| beta * c).collect()
        }
    };
    let layer = Layer {
        kind: LayerKind::Dense,
        input: x,
        weights,
        bias,
        out_shape: vec![n],
    };
    pending_dense(lowerer, node, out, layer, affine);
    Ok(())
}

/// Sets `out` to the pending Dense `layer` of `node`, with the Scaler `affine` before it
/// folded in.
fn pending_dense(
    lowerer: &mut Lowerer<'_>,
    node: &Node,
    out: String,
    mut layer: Layer,
    affine: Option<Affine>,
) {
    let mut sources = Vec::new();
    if let Some(f) = affine {
        f.fold_into(&mut layer.weights, &mut layer.bias);
        sources = f.sources;
    }
    sources.push(node.name.clone());
    let p = Pending {
        op: PendingOp::Layer(layer),
        name: out.clone(),
        sources,
    };
    lowerer.set(&out, Val::Pending(p));
}

/// MatMul by a constant `[K, N]` matrix: a Dense layer; of two activations: a MatMul node.
pub(super) fn lower_matmul(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let bname = node.input(1).ok_or_else(|| anyhow!("missing B"))?;
    let Some(b) = lowerer.konst(bname).cloned() else {
        return lower_matmul_of_acts(lowerer, node, out, bname);
    };
    let (x, affine) = lowerer.layer_input(in0(node)?)?;
    let r = b.dims.len();
    ensure!(
        r >= 2 && b.dims[..r - 2].iter().all(|&d| d == 1),
        "B {:?} must be a constant [K, N] (leading axes of size 1 broadcast) or an activation",
        b.dims
    );
    let (k, n) = (b.dims[r - 2], b.dims[r - 1]);
    ensure!(
        x.shape.last() == Some(&k),
        "input {:?} does not end in K = {k}",
        x.shape
    );
    let bv = b.f32();
    let weights = (0..n)
        .flat_map(|o| (0..k).map(move |i| (o, i)))
        .map(|(o, i)| bv[i * n + o] as f64)
        .collect();
    let mut out_shape = x.shape.clone();
    *out_shape.last_mut().unwrap() = n;
    let layer = Layer {
        kind: LayerKind::Dense,
        input: x,
        weights,
        bias: vec![0.0; n],
        out_shape,
    };
    pending_dense(lowerer, node, out, layer, affine);
    Ok(())
}

pub(super) fn lower_add(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    add_or_sub(lowerer, node, out, false)
}

pub(super) fn lower_sub(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    add_or_sub(lowerer, node, out, true)
}

/// The two inputs of a binary op.
fn in01(node: &Node) -> Result<(&str, &str)> {
    Ok((
        in0(node)?,
        node.input(1).ok_or_else(|| anyhow!("missing input 1"))?,
    ))
}

/// A per-channel fold of a constant into the layer producing an operand (see
/// [`const_operand`]): the layer and the constant's per-channel values.
type Fold = fn(&mut Layer, &[f64]);

/// A binary op of an activation and a constant (`op(x, c)`, or `op(c, x)` when the constant
/// is input 0):
/// 1. with `fold` (for `x op c`, and for `c op x` when `op` commutes: Add, Mul — PyTorch writes
///    a rank-3 `nn.Linear` as `Add(bias, MatMul(x, Wᵀ))`), when `x` is a pending
///    MatMul/Gemm/Conv read only here and `c` is per channel (or a scalar): folded into its
///    weights and bias; when `x` is a pending Mul or MatMul of two activations and `c` a
///    positive scalar of a Mul/Div: folded into its multiplier;
/// 2. else, when `c` is a scalar: one more step of the chain of `x` (a Lut when read);
/// 3. else an error naming both fixes.
fn const_operand(
    lowerer: &mut Lowerer<'_>,
    node: &Node,
    out: String,
    op: fn(f64, f64) -> f64,
    fold: Option<Fold>,
) -> Result<()> {
    let (na, nb) = in01(node)?;
    let c_first = lowerer.konst(na).is_some();
    let (xname, cname) = if c_first { (nb, na) } else { (na, nb) };
    let c = lowerer
        .konst(cname)
        .cloned()
        .ok_or_else(|| anyhow!("`{cname}` is not a constant"))?;
    let commutes = matches!(node.op.as_str(), "Add" | "Mul");
    if let (Some(fold), false) = (fold, c_first && !commutes) {
        if let Some(mut p) = lowerer.take_pending(xname) {
            let v = match &p.op {
                PendingOp::Layer(l) => {
                    channel_vector(&c, l.out_shape.len() + 1, l.channel_axis(), l.channels())
                }
                _ => None,
            };
            if let (PendingOp::Layer(layer), Some(v)) = (&mut p.op, v) {
                fold(layer, &v);
                p.name = out.clone();
                p.sources.push(node.name.clone());
                lowerer.set(&out, Val::Pending(p));
                return Ok(());
            }
            lowerer.set(xname, Val::Pending(p));
        }
    }
    // A positive scalar multiplying or dividing a Mul or MatMul of two activations read only
    // here scales the product: it folds into the requantization multiplier.
    if matches!((node.op.as_str(), c_first), ("Mul", _) | ("Div", false)) && c.numel() == 1 {
        let v = c.f32()[0] as f64;
        let k = if c_first { op(v, 1.0) } else { op(1.0, v) };
        if let Some(mut p) = (k > 0.0 && k.is_finite())
            .then(|| lowerer.take_pending(xname))
            .flatten()
        {
            if let PendingOp::Mul { scale, .. } | PendingOp::MatMul { scale, .. } = &mut p.op {
                *scale *= k;
                p.name = out.clone();
                p.sources.push(node.name.clone());
                lowerer.set(&out, Val::Pending(p));
                return Ok(());
            }
            lowerer.set(xname, Val::Pending(p));
        }
    }
    let x_rank = match lowerer.vals.get(xname) {
        Some(Val::Act(a)) => a.shape.len(),
        Some(Val::Chain(ch)) => ch.x.shape.len(),
        Some(Val::Pending(p)) => p.out_shape().len(),
        Some(Val::Affine(f)) => f.x.shape.len(),
        None => bail!("tensor `{xname}` is not produced by any supported node"),
    };
    let scalar = (c.numel() == 1 && c.dims.len() <= x_rank + 1).then(|| c.f32()[0] as f64);
    let Some(k) = scalar else {
        let folds = if fold.is_some() && (!c_first || commutes) {
            "per-channel constants fold into the weights and bias of the MatMul/Gemm/Conv that \
             produces the other operand when this node is its only reader; "
        } else {
            ""
        };
        bail!(
            "{} of `{xname}` and the constant `{cname}` {:?}: {folds}scalar constants become \
             a lookup table; fold this constant into the model before export",
            node.op,
            c.dims
        );
    };
    let chain = lowerer.chain(xname)?;
    let chain = if c_first {
        chain.then(node, move |v| op(k, v))
    } else {
        chain.then(node, move |v| op(v, k))
    };
    lowerer.set(&out, Val::Chain(chain));
    Ok(())
}

/// Add and Sub: of two activations, one chain when both are functions of one tensor (see
/// [`Chain`]), else a pending Add or Sub node; of an activation and a constant, see
/// [`const_operand`] (`x − c` folds as the bias `−c`).
fn add_or_sub(lowerer: &mut Lowerer<'_>, node: &Node, out: String, sub: bool) -> Result<()> {
    let (na, nb) = in01(node)?;
    let op: fn(f64, f64) -> f64 = if sub { |a, b| a - b } else { |a, b| a + b };
    match (lowerer.konst(na).is_some(), lowerer.konst(nb).is_some()) {
        (false, false) => {
            if let Some(c) = lowerer.zip_chains(node, (na, nb), op)? {
                lowerer.set(&out, Val::Chain(c));
                return Ok(());
            }
            let a = lowerer.act(na)?;
            let b = lowerer.act(nb)?;
            let shape = broadcast_shape(node, &a.shape, &b.shape)?;
            let a = lowerer.broadcast_to(node, a, &shape)?;
            let b = lowerer.broadcast_to(node, b, &shape)?;
            let p = Pending {
                op: PendingOp::Add { a, b, sub },
                name: out.clone(),
                sources: vec![node.name.clone()],
            };
            lowerer.set(&out, Val::Pending(p));
            Ok(())
        }
        (true, true) => bail!(
            "{} of two constants (constant folding is not supported)",
            node.op
        ),
        _ => {
            let fold: Fold = if sub {
                |l, v| l.bias.iter_mut().zip(v).for_each(|(b, c)| *b -= c)
            } else {
                |l, v| l.bias.iter_mut().zip(v).for_each(|(b, c)| *b += c)
            };
            const_operand(lowerer, node, out, op, Some(fold))
        }
    }
}

/// Scales output channel `o` of a layer (weights and bias) by `v[o]`.
fn scale_channels(l: &mut Layer, v: &[f64]) {
    let fan_in = l.weights.len() / l.channels();
    for ((row, b), s) in l.weights.chunks_mut(fan_in).zip(&mut l.bias).zip(v) {
        row.iter_mut().for_each(|w| *w *= s);
        *b *= s;
    }
}

/// Mul: of two activations, one chain when both are functions of one tensor (SiLU), else a
/// pending Mul node (either operand may be the broadcast one: the product commutes); of an
/// activation and a constant, see [`const_operand`].
pub(super) fn lower_mul(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let (na, nb) = in01(node)?;
    if lowerer.konst(na).is_some() != lowerer.konst(nb).is_some() {
        return const_operand(lowerer, node, out, |a, b| a * b, Some(scale_channels));
    }
    ensure!(
        lowerer.konst(na).is_none(),
        "Mul of two constants (constant folding is not supported)"
    );
    if let Some(c) = lowerer.zip_chains(node, (na, nb), |a, b| a * b)? {
        lowerer.set(&out, Val::Chain(c));
        return Ok(());
    }
    let a = lowerer.act(na)?;
    let b = lowerer.act(nb)?;
    let shape = broadcast_shape(node, &a.shape, &b.shape)?;
    // Myelin Mul broadcasts its second operand: the product commutes, so an operand already
    // of the full shape goes first; when neither is (`[4, 1] · [1, 8]`), `a` is repeated.
    let (a, b) = if a.shape == shape {
        (a, b)
    } else if b.shape == shape {
        (b, a)
    } else {
        (lowerer.broadcast_to(node, a, &shape)?, b)
    };
    let p = Pending {
        op: PendingOp::Mul { a, b, scale: 1.0 },
        name: out.clone(),
        sources: vec![node.name.clone()],
    };
    lowerer.set(&out, Val::Pending(p));
    Ok(())
}

/// Div: by a constant, see [`const_operand`] (`x / c` folds as the scale `1 / c`); of two
/// activations, only as one chain of a single tensor (no Myelin op divides).
pub(super) fn lower_div(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let (na, nb) = in01(node)?;
    if lowerer.konst(na).is_some() != lowerer.konst(nb).is_some() {
        let fold: Fold = |l, v| scale_channels(l, &v.iter().map(|c| 1.0 / c).collect::<Vec<_>>());
        return const_operand(lowerer, node, out, |a, b| a / b, Some(fold));
    }
    let c = lowerer.zip_chains(node, (na, nb), |a, b| a / b)?;
    let c = c.ok_or_else(|| {
        anyhow!(
            "Div of two activations is supported only when both are elementwise functions of \
             one tensor (one lookup table); divide by a constant, or multiply instead"
        )
    })?;
    lowerer.set(&out, Val::Chain(c));
    Ok(())
}

/// Pow with a constant base or exponent: a step of a chain (`Pow(x, 2)`, `Pow(2, x)`).
pub(super) fn lower_pow(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let (na, nb) = in01(node)?;
    ensure!(
        lowerer.konst(na).is_some() != lowerer.konst(nb).is_some(),
        "Pow is supported with one scalar constant operand (`x^c` or `c^x`, one lookup \
         table); for `x · y` of activations use Mul"
    );
    const_operand(lowerer, node, out, f64::powf, None)
}

pub(super) fn lower_batch_norm(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let (a, c) = bn_affine(lowerer.graph, node)?;
    let name = in0(node)?;
    if let Some(mut p) = lowerer.take_pending(name) {
        let foldable = match &p.op {
            PendingOp::Layer(l) => l.channel_axis() == 1 && l.channels() == a.len(),
            _ => false,
        };
        if let (true, PendingOp::Layer(l)) = (foldable, &mut p.op) {
            let fan_in = l.weights.len() / l.channels();
            for (o, row) in l.weights.chunks_mut(fan_in).enumerate() {
                row.iter_mut().for_each(|w| *w *= a[o]);
                l.bias[o] = l.bias[o] * a[o] + c[o];
            }
            p.name = out.clone();
            p.sources.push(node.name.clone());
            lowerer.set(&out, Val::Pending(p));
            return Ok(());
        }
        lowerer.set(name, Val::Pending(p));
    }
    // A lone BatchNormalization is a per-channel affine map: a depthwise 1×1
    // convolution (or a diagonal Dense on a vector).
    let x = lowerer.act(name)?;
    let ch = x.shape[0];
    ensure!(
        ch == a.len(),
        "input has {ch} channels, the parameters {}",
        a.len()
    );
    let (kind, weights) = match x.shape.len() {
        1 => (LayerKind::Dense, diagonal(&a)),
        2 | 3 => {
            let window = float::Window::unpadded([1, 1]);
            (
                LayerKind::Conv {
                    window,
                    groups: ch,
                    one_d: x.shape.len() == 2,
                },
                a,
            )
        }
        r => bail!(
            "BatchNormalization over a rank-{} tensor is not supported",
            r + 1
        ),
    };
    let out_shape = x.shape.clone();
    let layer = Layer {
        kind,
        input: x,
        weights,
        bias: c,
        out_shape,
    };
    let p = Pending {
        op: PendingOp::Layer(layer),
        name: out.clone(),
        sources: vec![node.name.clone()],
    };
    lowerer.set(&out, Val::Pending(p));
    Ok(())
}

pub(super) fn lower_conv(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    let wname = node.input(1).ok_or_else(|| anyhow!("missing weights"))?;
    let w = lowerer
        .konst(wname)
        .ok_or_else(|| anyhow!("weights `{wname}` must be a constant"))?;
    let (dims, w) = float::dilated_weights(node, &w.dims, &w.f32())?;
    let spatial = x.shape.len().checked_sub(1).filter(|s| (1..=2).contains(s));
    let spatial = spatial.ok_or_else(|| {
        anyhow!(
            "Conv input must be [N, C, H, W] or [N, C, L]; got [N, {:?}]",
            x.shape
        )
    })?;
    ensure!(
        dims.len() == spatial + 2,
        "weights {dims:?} do not match the input rank"
    );
    let groups = node.int("group", 1)? as usize;
    let (c, oc) = (x.shape[0], dims[0]);
    ensure!(
        groups >= 1
            && c.is_multiple_of(groups)
            && oc.is_multiple_of(groups)
            && dims[1] == c / groups,
        "weights {dims:?} do not fit {c} input channels in {groups} groups"
    );
    let (h, wd) = if spatial == 2 {
        (x.shape[1], x.shape[2])
    } else {
        (1, x.shape[1])
    };
    let window = float::Window::from_node(node, spatial, Some(&dims[2..]), [h, wd])?;
    let [oh, ow] = window.output(node, h, wd)?;
    let bias = match node.input(2) {
        None => vec![0.0; oc],
        Some(b) => lowerer
            .konst(b)
            .ok_or_else(|| anyhow!("bias `{b}` must be a constant"))?
            .f32()
            .iter()
            .map(|&v| v as f64)
            .collect(),
    };
    ensure!(
        bias.len() == oc,
        "bias has {} values for {oc} channels",
        bias.len()
    );
    let out_shape = if spatial == 2 {
        vec![oc, oh, ow]
    } else {
        vec![oc, ow]
    };
    let kind = LayerKind::Conv {
        window,
        groups,
        one_d: spatial == 1,
    };
    let weights = w.iter().map(|&v| v as f64).collect();
    let layer = Layer {
        kind,
        input: x,
        weights,
        bias,
        out_shape,
    };
    let p = Pending {
        op: PendingOp::Layer(layer),
        name: out.clone(),
        sources: vec![node.name.clone()],
    };
    lowerer.set(&out, Val::Pending(p));
    Ok(())
}

/// MaxPool, AveragePool and GlobalAveragePool (an average over the whole map).
pub(super) fn lower_pool(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    ensure!(
        node.outputs.len() == 1,
        "the Indices output is not supported"
    );
    let x = lowerer.act(in0(node)?)?;
    ensure!(
        x.shape.len() == 3,
        "pooling needs a [N, C, H, W] input; got [N, {:?}]",
        x.shape
    );
    let window = if node.op == "GlobalAveragePool" {
        float::Window::unpadded([x.shape[1], x.shape[2]])
    } else {
        float::Window::from_node(node, 2, None, [x.shape[1], x.shape[2]])?
    };
    let [oh, ow] = window.output(node, x.shape[1], x.shape[2])?;
    // Without padding the flag changes nothing, and 0 is its canonical encoding.
    let count_include_pad = window.count_include_pad(node)?;
    let (input, window) = (x.id, model_window(&window)?);
    let shape = vec![x.shape[0], oh, ow];
    let detail = format!(
        "{:?} -> {shape:?}, kernel {:?} stride {:?} pads {:?}",
        x.shape, window.kernel, window.stride, window.pads
    );
    let mnode = if node.op == "MaxPool" {
        m::Node::MaxPool(m::MaxPool { input, window })
    } else {
        m::Node::AvgPool(m::AvgPool {
            input,
            window,
            count_include_pad,
        })
    };
    let id = lowerer.emit(mnode, node.name.clone(), detail);
    lowerer.set(&out, Val::Act(Act { id, shape, q: x.q }));
    Ok(())
}

pub(super) fn lower_flatten(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    let rank = x.shape.len() as i64 + 1;
    let axis = node.int("axis", 1)?;
    ensure!(
        axis == 1 || axis == 1 - rank,
        "Flatten axis {axis} would merge the batch axis; only axis=1 is supported"
    );
    let y = lowerer.reshape(node, x, vec![0])?;
    lowerer.set(&out, Val::Act(y));
    Ok(())
}

pub(super) fn lower_reshape(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    let mut with_batch = vec![1];
    with_batch.extend(&x.shape);
    let target = reshape_target(lowerer.graph, node, &with_batch)?;
    ensure!(
        target.len() >= 2 && target[0] == 1,
        "Reshape to {target:?} (for one sample) does not keep the batch axis first"
    );
    let y = lowerer.reshape(node, x, target[1..].to_vec())?;
    lowerer.set(&out, Val::Act(y));
    Ok(())
}

fn lower_matmul_of_acts(
    lowerer: &mut Lowerer<'_>,
    node: &Node,
    out: String,
    bname: &str,
) -> Result<()> {
    let a = lowerer.act(in0(node)?)?;
    let b = lowerer.act(bname)?;
    let r = a.shape.len();
    ensure!(
        r >= 2 && b.shape.len() == r && a.shape[r - 1] == b.shape[r - 2],
        "MatMul of activations [N, {:?}] and [N, {:?}]: only [N, ..., M, K] × [N, ..., K, P] \
         is supported (equal ranks; leading axes equal or 1)",
        a.shape,
        b.shape
    );
    let lead = broadcast_shape(node, &a.shape[..r - 2], &b.shape[..r - 2])?;
    let a_shape = [lead.as_slice(), &a.shape[r - 2..]].concat();
    let b_shape = [lead.as_slice(), &b.shape[r - 2..]].concat();
    let a = lowerer.broadcast_to(node, a, &a_shape)?;
    let b = lowerer.broadcast_to(node, b, &b_shape)?;
    let mut out_shape = a.shape.clone();
    out_shape[r - 1] = b.shape[r - 1];
    let p = Pending {
        op: PendingOp::MatMul {
            a,
            b,
            out_shape,
            scale: 1.0,
        },
        name: out.clone(),
        sources: vec![node.name.clone()],
    };
    lowerer.set(&out, Val::Pending(p));
    Ok(())
}

/// The NumPy broadcast of two activation shapes (batch axis dropped). Their ranks must be
/// equal: both ONNX tensors lead with the batch axis, and NumPy's right alignment would put
/// the batch axis of the shorter one against another axis of the longer one.
fn broadcast_shape(node: &Node, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let fits = a.len() == b.len() && a.iter().zip(b).all(|(&x, &y)| x == y || x == 1 || y == 1);
    ensure!(
        fits,
        "{} of [N, {a:?}] and [N, {b:?}]: the operands must broadcast (equal ranks, each dim \
         equal or 1)",
        node.op
    );
    Ok(a.iter().zip(b).map(|(&x, &y)| x.max(y)).collect())
}

/// A Myelin axis (no batch axis) from an index into the ONNX axes (batch axis first, never
/// 0: the float helpers reject it).
fn myelin_axis(onnx_axis: usize) -> usize {
    onnx_axis - 1
}

pub(super) fn lower_transpose(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    let perm: Vec<usize> = float::transpose_perm(node, x.shape.len() + 1)?[1..]
        .iter()
        .map(|&p| myelin_axis(p))
        .collect();
    if perm.iter().copied().eq(0..perm.len()) {
        lowerer.set(&out, Val::Act(x));
        return Ok(());
    }
    let shape: Vec<usize> = perm.iter().map(|&p| x.shape[p]).collect();
    let detail = format!("{:?} -> {shape:?}, perm {perm:?}", x.shape);
    let perm = perm
        .iter()
        .map(|&p| u8::try_from(p))
        .collect::<Result<_, _>>()?;
    let id = lowerer.emit(
        m::Node::Transpose(m::Transpose { input: x.id, perm }),
        node.name.clone(),
        detail,
    );
    lowerer.set(&out, Val::Act(Act { id, shape, q: x.q }));
    Ok(())
}

/// Concat of activations: each input requantized to the output's calibrated quantization.
pub(super) fn lower_concat(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let xs = (0..node.inputs.len())
        .map(|i| {
            let name = node.input(i).ok_or_else(|| anyhow!("missing input {i}"))?;
            lowerer.act(name)
        })
        .collect::<Result<Vec<_>>>()?;
    let rank = xs.first().ok_or_else(|| anyhow!("no inputs"))?.shape.len();
    let axis = myelin_axis(float::data_axis(node, node.int("axis", 0)?, rank + 1)?);
    let fits = |x: &Act| {
        x.shape.len() == rank && (0..rank).all(|a| a == axis || x.shape[a] == xs[0].shape[a])
    };
    ensure!(
        xs.iter().all(fits),
        "input shapes {:?} differ off the concatenation axis",
        xs.iter().map(|x| &x.shape).collect::<Vec<_>>()
    );
    let (lo, hi) = lowerer.range(&out)?;
    let q = quant::act_quant(lo, hi);
    let inputs = xs
        .iter()
        .map(|x| Ok((x.id, quant::requant(x.q.scale / q.scale)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut shape = xs[0].shape.clone();
    shape[axis] = xs.iter().map(|x| x.shape[axis]).sum();
    let detail = format!(
        "{:?} -> {shape:?}, axis {axis}, out scale {:.4e} zp {}, multipliers {}",
        xs.iter().map(|x| &x.shape).collect::<Vec<_>>(),
        q.scale,
        q.zp,
        fmt_range(inputs.iter().map(|(_, r)| r.to_f64()))
    );
    let id = lowerer.emit(
        m::Node::Concat(m::Concat {
            inputs,
            axis: u8::try_from(axis)?,
            zero_point: q.zp,
        }),
        node.name.clone(),
        detail,
    );
    lowerer.set(&out, Val::Act(Act { id, shape, q }));
    Ok(())
}

/// ReduceSum, ReduceMean (a ReduceSum by `1 / L`) and ReduceMax over one axis; `keepdims = 0`
/// adds a Reshape dropping the axis. A ReduceMean over the last axis that starts a decomposed
/// LayerNorm (see [`Lowerer::decomposed_layer_norm`]) is that whole LayerNorm instead.
pub(super) fn lower_reduce(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    let (axis, keepdims) = float::reduce_axis(lowerer.graph, node, x.shape.len() + 1)?;
    let axis = myelin_axis(axis);
    let mut kept = x.shape.clone();
    kept[axis] = 1;
    let dropped: Vec<usize> = (0..x.shape.len())
        .filter(|&a| a != axis)
        .map(|a| x.shape[a])
        .collect();
    ensure!(
        keepdims || !dropped.is_empty(),
        "keepdims=0 would leave no axis besides the batch axis; export with keepdims=1"
    );
    if node.op == "ReduceMax" {
        let y = if x.shape[axis] == 1 {
            x // the maximum over one element is the element
        } else {
            let detail = format!("{:?} -> {kept:?}, axis {axis}", x.shape);
            let id = lowerer.emit(
                m::Node::ReduceMax(m::ReduceMax {
                    input: x.id,
                    axis: u8::try_from(axis)?,
                }),
                node.name.clone(),
                detail,
            );
            Act {
                id,
                shape: kept,
                q: x.q,
            }
        };
        let y = if keepdims {
            y
        } else {
            lowerer.reshape(node, y, dropped)?
        };
        lowerer.set(&out, Val::Act(y));
        return Ok(());
    }
    if node.op == "ReduceMean" && keepdims && axis + 1 == x.shape.len() {
        let l = x.shape[axis];
        if let Some(ln) = lowerer.decomposed_layer_norm(node, x.shape.len() + 1, l) {
            let mut sources = vec![node.name.clone()];
            for (name, output) in ln.rest {
                sources.push(name);
                lowerer.folded.insert(output);
            }
            let params = (ln.eps, ln.gamma, ln.beta);
            return pending_layer_norm(lowerer, x, params, ln.out, sources);
        }
    }
    let scale = if node.op == "ReduceMean" {
        1.0 / x.shape[axis] as f64
    } else {
        1.0
    };
    let p = Pending {
        op: PendingOp::ReduceSum {
            x,
            axis,
            scale,
            out_shape: kept,
        },
        name: out.clone(),
        sources: vec![node.name.clone()],
    };
    if keepdims {
        lowerer.set(&out, Val::Pending(p));
    } else {
        let y = lowerer.materialize(p, Activation::None)?;
        let y = lowerer.reshape(node, y, dropped)?;
        lowerer.set(&out, Val::Act(y));
    }
    Ok(())
}

/// Pad with zeros (the zero point: real zero).
pub(super) fn lower_pad(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    let pads = float::pad_amounts(lowerer.graph, node, x.shape.len() + 1)?[1..].to_vec();
    if pads.iter().all(|&p| p == (0, 0)) {
        lowerer.set(&out, Val::Act(x));
        return Ok(());
    }
    let shape: Vec<usize> = x
        .shape
        .iter()
        .zip(&pads)
        .map(|(d, (b, a))| b + d + a)
        .collect();
    let detail = format!("{:?} -> {shape:?}, pads {pads:?}", x.shape);
    let pads = pads
        .iter()
        .map(|&(b, a)| Ok((u32::try_from(b)?, u32::try_from(a)?)))
        .collect::<Result<_>>()?;
    let id = lowerer.emit(
        m::Node::Pad(m::Pad { input: x.id, pads }),
        node.name.clone(),
        detail,
    );
    lowerer.set(&out, Val::Act(Act { id, shape, q: x.q }));
    Ok(())
}

/// Resize and Upsample: nearest neighbour by integer factors on H and W.
pub(super) fn lower_resize(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    let [fh, fw] = float::resize_factors(lowerer.graph, node, x.shape.len() + 1)?;
    if (fh, fw) == (1, 1) {
        lowerer.set(&out, Val::Act(x));
        return Ok(());
    }
    let shape = vec![x.shape[0], x.shape[1] * fh, x.shape[2] * fw];
    let detail = format!("{:?} -> {shape:?}, factors {fh}x{fw}", x.shape);
    let id = lowerer.emit(
        m::Node::Resize(m::Resize {
            input: x.id,
            factors: [u16_of(fh, "resize factor")?, u16_of(fw, "resize factor")?],
        }),
        node.name.clone(),
        detail,
    );
    lowerer.set(&out, Val::Act(Act { id, shape, q: x.q }));
    Ok(())
}

pub(super) fn lower_slice(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    let with_batch = [&[1], x.shape.as_slice()].concat();
    let ranges = float::slice_ranges(lowerer.graph, node, &with_batch)?[1..].to_vec();
    if ranges.iter().zip(&x.shape).all(|(r, &d)| r.1 == d) {
        lowerer.set(&out, Val::Act(x));
        return Ok(());
    }
    let shape: Vec<usize> = ranges.iter().map(|r| r.1).collect();
    let detail = format!(
        "{:?} -> {shape:?}, (start, count, step) {ranges:?}",
        x.shape
    );
    let axes = ranges
        .iter()
        .map(|&(start, count, step)| {
            Ok(m::SliceRange {
                start: u32::try_from(start)?,
                end: u32::try_from(start + (count - 1) * step + 1)?,
                step: u32::try_from(step)?,
            })
        })
        .collect::<Result<_>>()?;
    let id = lowerer.emit(
        m::Node::Slice(m::Slice { input: x.id, axes }),
        node.name.clone(),
        detail,
    );
    lowerer.set(&out, Val::Act(Act { id, shape, q: x.q }));
    Ok(())
}

/// Squeeze and Unsqueeze: a Reshape (nothing when the shape does not change).
pub(super) fn lower_squeeze(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    let with_batch = [&[1], x.shape.as_slice()].concat();
    let shape = float::squeeze_shape(lowerer.graph, node, &with_batch)?[1..].to_vec();
    ensure!(
        !shape.is_empty(),
        "the result would have no axis besides the batch axis; keep a size-1 axis"
    );
    let y = lowerer.reshape(node, x, shape)?;
    lowerer.set(&out, Val::Act(y));
    Ok(())
}

/// LayerNormalization over the last axis with constant Scale and B: a pending LayerNorm (so
/// that a following Relu/Clip fuses into its output).
pub(super) fn lower_layer_norm(lowerer: &mut Lowerer<'_>, node: &Node, out: String) -> Result<()> {
    let x = lowerer.act(in0(node)?)?;
    float::check_layer_norm(node, x.shape.len() + 1)?;
    let param = |i: usize, default: f64| -> Result<Vec<f64>> {
        let l = x.shape[x.shape.len() - 1];
        let Some(name) = node.input(i) else {
            return Ok(vec![default; l]);
        };
        let c = lowerer
            .konst(name)
            .ok_or_else(|| anyhow!("`{name}` must be a constant"))?;
        channel_vector(c, x.shape.len() + 1, x.shape.len(), l).ok_or_else(|| {
            anyhow!(
                "`{name}` {:?} does not broadcast along the last axis (of {l})",
                c.dims
            )
        })
    };
    let (gamma, beta) = (param(1, 1.0)?, param(2, 0.0)?);
    let eps = node.float("epsilon", 1e-5)? as f64;
    pending_layer_norm(lowerer, x, (eps, gamma, beta), out, vec![node.name.clone()])
}

/// Sets `out` to a pending LayerNorm of `x` with float `(ε, γ, β)`, made from `sources`.
fn pending_layer_norm(
    lowerer: &mut Lowerer<'_>,
    x: Act,
    (eps, gamma, beta): (f64, Vec<f64>, Vec<f64>),
    out: String,
    sources: Vec<String>,
) -> Result<()> {
    let l = gamma.len();
    ensure!(
        l <= MAX_ROW as usize,
        "rows of {l} elements: Myelin LayerNorm takes at most {MAX_ROW}"
    );
    let p = Pending {
        op: PendingOp::LayerNorm {
            x,
            eps,
            gamma,
            beta,
        },
        name: out.clone(),
        sources,
    };
    lowerer.set(&out, Val::Pending(p));
    Ok(())
}

/// A decomposed LayerNorm found by [`Lowerer::decomposed_layer_norm`].
struct Decomposed {
    eps: f64,
    gamma: Vec<f64>,
    beta: Vec<f64>,
    /// The ONNX tensor it computes (the last node's output).
    out: String,
    /// Its nodes after the first ReduceMean: (name, output).
    rest: Vec<(String, String)>,
}

impl Lowerer<'_> {
    /// The node of type `op` that is the only reader of tensor `t` (which is then not the
    /// graph output either).
    fn only_reader(&self, t: &str, op: &str) -> Option<&Node> {
        if self.consumers.get(t) != Some(&1) {
            return None;
        }
        let n = self
            .graph
            .nodes
            .iter()
            .find(|n| n.inputs.iter().any(|i| i == t))?;
        (n.op == op).then_some(n)
    }

    /// The value of a scalar constant.
    fn scalar(&self, name: &str) -> Option<f64> {
        let c = self.konst(name)?;
        (c.numel() == 1).then(|| c.f32()[0] as f64)
    }

    /// Whether `node` is a ReduceMean over the last of `rank` axes (batch included) that keeps
    /// it.
    fn is_row_mean(&self, node: &Node, rank: usize) -> bool {
        node.op == "ReduceMean"
            && float::reduce_axis(self.graph, node, rank).ok() == Some((rank - 1, true))
    }

    /// For a binary `node` reading `t`, its other input if that is a constant along the last
    /// of `rank` axes (`l` values) or a scalar: the per-position values.
    fn row_const(&self, node: &Node, t: &str, rank: usize, l: usize) -> Option<Vec<f64>> {
        let (a, b) = in01(node).ok()?;
        let other = match (a == t, b == t) {
            (true, false) => b,
            (false, true) => a,
            _ => return None,
        };
        channel_vector(self.konst(other)?, rank, rank - 1, l)
    }

    /// The decomposed LayerNorm that `torch.onnx.export` writes for `nn.LayerNorm` before
    /// opset 17, when `mean` (a ReduceMean over the last of `rank` axes, batch included, of
    /// length `l`, that keeps it) starts exactly this pattern:
    ///
    /// ```text
    /// mean = ReduceMean(x)          (last axis, keepdims)   read only by d
    /// d    = Sub(x, mean)                                   read only by p and n
    /// p    = Pow(d, 2)                                      read only by var
    /// var  = ReduceMean(p)          (last axis, keepdims)   read only by e
    /// e    = Add(var, ε)            (either order)          read only by s
    /// s    = Sqrt(e)                                        read only by n
    /// n    = Div(d, s)
    /// then, each the only reader of the tensor before it:
    ///        Mul(·, γ)              (either order; optional)
    ///        Add(·, β)              (either order; optional)
    /// ```
    ///
    /// with `ε` and `2` scalar constants and `γ`, `β` constants along the last axis (or
    /// scalars). "Read only by" is what makes folding safe: no intermediate is needed
    /// elsewhere (nor is it the graph output). Anything else is `None`, and the nodes are
    /// lowered one by one (where the Sub of the mean fails: it broadcasts).
    fn decomposed_layer_norm(&self, mean: &Node, rank: usize, l: usize) -> Option<Decomposed> {
        let (x, mean_out) = (mean.input(0)?, mean.outputs.first()?);
        let sub = self.only_reader(mean_out, "Sub")?;
        let d = sub.outputs.first()?;
        if in01(sub).ok()? != (x, mean_out.as_str()) || self.consumers.get(d) != Some(&2) {
            return None;
        }
        let readers: Vec<&Node> = (self.graph.nodes.iter())
            .filter(|n| n.inputs.iter().any(|i| i == d))
            .collect();
        let pow = readers.iter().find(|n| n.op == "Pow")?;
        let div = readers.iter().find(|n| n.op == "Div")?;
        let p = pow.outputs.first()?;
        if in0(pow).ok()? != d || self.scalar(pow.input(1)?) != Some(2.0) {
            return None;
        }
        let var = self.only_reader(p, "ReduceMean")?;
        let v = var.outputs.first()?;
        if !self.is_row_mean(var, rank) {
            return None;
        }
        let add = self.only_reader(v, "Add")?;
        let e = add.outputs.first()?;
        let eps = match in01(add).ok()? {
            (a, c) | (c, a) if a == v => self.scalar(c)?,
            _ => return None,
        };
        let sqrt = self.only_reader(e, "Sqrt")?;
        let s = sqrt.outputs.first()?;
        if self.only_reader(s, "Div").map(|n| &n.name) != Some(&div.name)
            || in01(div).ok()? != (d.as_str(), s.as_str())
        {
            return None;
        }
        let mut found = Decomposed {
            eps,
            gamma: vec![1.0; l],
            beta: vec![0.0; l],
            out: div.outputs.first()?.clone(),
            rest: Vec::new(),
        };
        for n in [sub, pow, var, add, sqrt, div] {
            found
                .rest
                .push((n.name.clone(), n.outputs.first()?.clone()));
        }
        for (op, slot) in [("Mul", &mut found.gamma), ("Add", &mut found.beta)] {
            let Some(n) = self.only_reader(&found.out, op) else {
                continue;
            };
            if let Some(v) = self.row_const(n, &found.out, rank, l) {
                *slot = v;
                found.out = n.outputs.first()?.clone();
                found.rest.push((n.name.clone(), found.out.clone()));
            }
        }
        Some(found)
    }
}
