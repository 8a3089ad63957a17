//! The pass between loading a graph and running it: everything that is the same for every
//! input is computed once, here, so that the float interpreter and the lowering only see
//! per-sample computation.
//!
//! - **Shape chains.** `torch.onnx.export` writes `x.view(x.size(0), -1)` and
//!   `x.reshape(b, n, h, d)` as `Shape → Gather/Slice → Unsqueeze → Concat (with constants)
//!   → Reshape`, and a zero state `torch.zeros(…, x.size(0), …)` as `… → ConstantOfShape` or
//!   `Expand`. Shapes are static here except for the batch size, so these integer chains are
//!   evaluated with the batch size as an unknown ([`Ints`]). A value that does not depend on
//!   it becomes a constant; one that does may only be a Reshape's target at the batch
//!   position (it becomes `0`, "copy the batch size", exact for every batch), or the shape
//!   of a ConstantOfShape / Expand of a constant (the batch dimension becomes 1, which
//!   broadcasts like the batch size); anything else that reads it is an error naming it.
//! - **Constant subgraphs.** A node whose inputs are all constants (a Gather of an
//!   initializer by constant indices, weights scaled or transposed in the graph, …) is
//!   evaluated and becomes a constant.
//! - **Gather of an activation** by a constant scalar index (`x[:, 3]`) becomes a Slice and a
//!   Squeeze of that axis; by a contiguous range of indices, a Slice.
//! - **LSTM and GRU** are unrolled ([`recurrent`]).
//! - **ONNX-ML classifiers and regressors** become the op computing their raw scores and
//!   their post-transform ([`ml`]), first.
//!
//! Shapes come from running the graph on one all-zero sample while it is rewritten (each
//! node with its row in [`ops`]): axis 0 of every activation is the batch axis.

use std::collections::{HashMap, HashSet};

use anyhow::{anyhow, bail, ensure, Context, Result};

use super::float::{self, Env, Runner, Tensor};
use super::graph::{Attr, Const, ConstData, Graph, Node};
use super::ops;
use super::proto::data_type;
use super::{ml, recurrent};

/// The op types this pass removes, besides [`recurrent::OPS`] (for the unsupported-op error).
pub(super) const OPS: &[&str] = &["Shape", "ConstantOfShape", "Expand"];

/// An integer tensor known at load time, `None` standing for the batch size.
#[derive(Clone, Debug)]
struct Ints {
    dims: Vec<usize>,
    v: Vec<Option<i64>>,
}

impl Ints {
    fn known(&self) -> Option<Vec<i64>> {
        self.v.iter().copied().collect()
    }

    /// The values when none is the batch size.
    fn values(&self, node: &Node) -> Result<Vec<i64>> {
        self.known().ok_or_else(|| {
            anyhow!(
                "{}: computes with the batch size, which a Myelin model does not have (only a \
                 Reshape target or a constant's shape may hold it)",
                node.describe()
            )
        })
    }
}

/// `data[…, idx, …]` along `axis` of a tensor of `dims` (ONNX Gather; negative indices count
/// from the end).
fn gather<T: Copy>(
    node: &Node,
    (dims, data): (&[usize], &[T]),
    axis: usize,
    (idx_dims, idx): (&[usize], &[i64]),
) -> Result<(Vec<usize>, Vec<T>)> {
    let n = dims[axis];
    let inner: usize = dims[axis + 1..].iter().product();
    let outer: usize = dims[..axis].iter().product();
    let idx = idx
        .iter()
        .map(|&i| {
            let j = if i < 0 { i + n as i64 } else { i };
            ensure!(
                (0..n as i64).contains(&j),
                "{}: index {i} is out of range for an axis of {n}",
                node.describe()
            );
            Ok(j as usize)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(outer * idx.len() * inner);
    for o in 0..outer {
        for &i in &idx {
            out.extend_from_slice(&data[(o * n + i) * inner..][..inner]);
        }
    }
    let out_dims = [&dims[..axis], idx_dims, &dims[axis + 1..]].concat();
    Ok((out_dims, out))
}

/// `axis` (negative counts from the end) of a rank-`rank` tensor.
fn norm_axis(node: &Node, axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    ensure!(
        (0..rank as i64).contains(&a),
        "{}: axis {axis} is out of range for rank {rank}",
        node.describe()
    );
    Ok(a as usize)
}

/// Rewrites `graph` (see the module documentation) for samples of `sample_shape` (batch
/// axis dropped).
pub fn fold(graph: &Graph, sample_shape: &[usize]) -> Result<Graph> {
    let graph = &ml::expand(graph)?;
    let plan = recurrent::plan(graph)?;
    let mut f = Folder {
        out: Graph {
            nodes: Vec::new(),
            ..graph.clone()
        },
        env: HashMap::new(),
        batch: HashMap::new(),
        ids: graph.id_inputs.iter().map(|i| i.name.clone()).collect(),
    };
    let zeros = |shape: &[usize]| {
        let shape = [&[1], shape].concat();
        let n = shape.iter().product();
        Tensor::new(shape, vec![0.0; n])
    };
    f.env.insert(graph.input.clone(), zeros(sample_shape));
    for i in &graph.id_inputs {
        f.env.insert(i.name.clone(), zeros(&i.shape));
    }
    for node in &graph.nodes {
        if plan.skip.contains(&node.name) {
            continue;
        }
        if let Some(src) = plan.identity.get(&node.name) {
            let id = Node {
                name: node.name.clone(),
                op: "Identity".into(),
                inputs: vec![src.clone()],
                outputs: node.outputs[..1].to_vec(),
                attrs: HashMap::new(),
            };
            f.visit(id)?;
        } else if recurrent::OPS.contains(&node.op.as_str()) {
            let x = &plan.source[&node.name];
            let x_shape = f.env.get(x).map(|t| t.shape.clone());
            let x_shape = x_shape.ok_or_else(|| {
                anyhow!("{}: its input `{x}` is not an activation", node.describe())
            })?;
            for n in recurrent::expand(&mut f.out, node, x, &x_shape)? {
                f.visit(n)?;
            }
        } else {
            f.visit(node.clone())?;
        }
    }
    f.out.prune();
    Ok(f.out)
}

struct Folder {
    /// The rewritten graph so far.
    out: Graph,
    /// Every activation so far, for one all-zero sample.
    env: HashMap<String, Tensor>,
    /// Integer tensors that hold the batch size.
    batch: HashMap<String, Ints>,
    /// Tensors of integer ids (id inputs and columns selected from them): their Gathers are
    /// embedding lookups and selections, kept for the lowering.
    ids: HashSet<String>,
}

impl Folder {
    /// The integer tensor `name`: a constant, or a value holding the batch size.
    fn ints(&self, name: &str) -> Option<Ints> {
        if let Some(v) = self.batch.get(name) {
            return Some(v.clone());
        }
        match self.out.consts.get(name)? {
            Const {
                dims,
                data: ConstData::I64(v),
            } => Some(Ints {
                dims: dims.clone(),
                v: v.iter().map(|&x| Some(x)).collect(),
            }),
            _ => None,
        }
    }

    /// The known values of integer input `i`, or attribute `attr` when the input is omitted.
    fn known(&self, node: &Node, i: usize, attr: &str) -> Result<Option<Vec<i64>>> {
        match node.input(i) {
            Some(name) => {
                let v = self
                    .ints(name)
                    .ok_or_else(|| anyhow!("{}: `{name}` must be a constant", node.describe()))?;
                Ok(Some(v.values(node)?))
            }
            None => node.ints(attr),
        }
    }

    fn set_const(&mut self, node: &Node, c: Const) {
        self.out.consts.insert(node.outputs[0].clone(), c);
    }

    /// Folds, rewrites or keeps `node` (evaluating it on the sample for the shapes).
    fn visit(&mut self, node: Node) -> Result<()> {
        self.visit_inner(node.clone())
            .with_context(|| format!("loading {}", node.describe()))
    }

    fn visit_inner(&mut self, mut node: Node) -> Result<()> {
        ensure!(!node.outputs.is_empty(), "the node has no output");
        if let Some(v) = self.integer_op(&node)? {
            let to_float = node.op == "Cast" && node.int("to", 0)? == i64::from(data_type::FLOAT);
            match v.known() {
                Some(k) if to_float => self.set_const(
                    &node,
                    Const {
                        dims: v.dims,
                        data: ConstData::F32(k.iter().map(|&x| x as f32).collect()),
                    },
                ),
                Some(k) => self.set_const(
                    &node,
                    Const {
                        dims: v.dims,
                        data: ConstData::I64(k),
                    },
                ),
                None => {
                    ensure!(
                        !to_float,
                        "casts the batch size to float; Myelin models have no batch size"
                    );
                    self.batch.insert(node.outputs[0].clone(), v);
                }
            }
            return Ok(());
        }
        match node.op.as_str() {
            "ConstantOfShape" => return self.constant_of_shape(&node),
            "Expand" => return self.expand(node),
            // Id columns selected from ids are ids too; a lookup by ids is an embedding.
            "Gather" if node.input(0).is_some_and(|x| self.ids.contains(x)) => {
                self.ids.insert(node.outputs[0].clone());
            }
            "Gather" if node.inputs.iter().any(|i| self.ids.contains(i)) => {}
            "Gather" => return self.gather(&node),
            "Reshape" => {
                if let Some(v) = node.input(1).and_then(|s| self.batch.get(s)) {
                    // the batch size at the batch position is "copy the batch size"
                    let mut spec = Vec::with_capacity(v.v.len());
                    for (i, d) in v.v.iter().enumerate() {
                        spec.push(match d {
                            Some(d) => *d,
                            None if i == 0 => 0,
                            None => bail!(
                                "the target shape holds the batch size at axis {i}; only axis 0 \
                                 can (Myelin models have no batch axis)"
                            ),
                        });
                    }
                    let name = format!("{}/shape", node.outputs[0]);
                    let c = Const {
                        dims: vec![spec.len()],
                        data: ConstData::I64(spec),
                    };
                    self.out.consts.insert(name.clone(), c);
                    node.inputs[1] = name;
                }
            }
            _ => {}
        }
        if let Some(name) = node.inputs.iter().find(|i| self.batch.contains_key(*i)) {
            bail!(
                "reads `{name}`, which holds the batch size; Myelin models have no batch axis, so \
                 it may only be a Reshape target (at axis 0) or the shape of a constant"
            );
        }
        let op = ops::find(&node)?;
        let all_const = node.inputs.iter().any(|i| !i.is_empty())
            && (node.inputs.iter())
                .filter(|i| !i.is_empty())
                .all(|i| self.out.consts.contains_key(i));
        let runner = Runner::new(&self.out);
        let local: Env<'_> = (node.inputs.iter())
            .filter_map(|i| self.env.get_key_value(i.as_str()))
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        let y = (op.eval)(&runner, &node, &local)?;
        if all_const {
            self.set_const(
                &node,
                Const {
                    dims: y.shape,
                    data: ConstData::F32(y.data),
                },
            );
        } else {
            self.env.insert(node.outputs[0].clone(), y);
            self.out.nodes.push(node);
        }
        Ok(())
    }

    /// The integer ops of shape chains, on integer constants and values holding the batch
    /// size; `None` when `node` is not one (or not on integers).
    fn integer_op(&self, node: &Node) -> Result<Option<Ints>> {
        let x = node.input(0).unwrap_or_default();
        if node.op == "Shape" {
            let dims: Vec<Option<i64>> = if let Some(t) = self.env.get(x) {
                let rest = t.shape[1..].iter().map(|&d| Some(d as i64));
                std::iter::once(None).chain(rest).collect()
            } else if let Some(c) = self.out.consts.get(x) {
                c.dims.iter().map(|&d| Some(d as i64)).collect()
            } else {
                bail!("unknown tensor `{x}`")
            };
            let r = dims.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (s, e) = (clamp(node.int("start", 0)?), clamp(node.int("end", r)?));
            let v = dims[s..e.max(s)].to_vec();
            return Ok(Some(Ints {
                dims: vec![v.len()],
                v,
            }));
        }
        let inputs: Vec<&str> = node.inputs.iter().map(String::as_str).collect();
        let ints = |s: &&str| s.is_empty() || self.ints(s).is_some();
        if inputs.is_empty() || !inputs.iter().all(ints) {
            return Ok(None);
        }
        let a = self.ints(x).ok_or_else(|| anyhow!("missing input 0"))?;
        let rank = a.dims.len();
        Ok(Some(match node.op.as_str() {
            "Identity" | "Cast" => a,
            "Gather" => {
                let idx = self
                    .ints(inputs[1])
                    .ok_or_else(|| anyhow!("missing indices"))?;
                let axis = norm_axis(node, node.int("axis", 0)?, rank)?;
                let (dims, v) =
                    gather(node, (&a.dims, &a.v), axis, (&idx.dims, &idx.values(node)?))?;
                Ints { dims, v }
            }
            "Slice" => {
                ensure!(
                    rank == 1,
                    "slices a rank-{rank} integer tensor; only 1-D is supported"
                );
                let starts = self.known(node, 1, "starts")?.unwrap_or_default();
                let ends = self.known(node, 2, "ends")?.unwrap_or_default();
                let axes = self.known(node, 3, "axes")?.unwrap_or(vec![0]);
                let steps = self.known(node, 4, "steps")?.unwrap_or(vec![1]);
                ensure!(
                    starts.len() == 1 && ends.len() == 1 && matches!(axes[..], [0] | [-1]),
                    "only one axis of a 1-D integer tensor can be sliced"
                );
                ensure!(
                    steps == [1],
                    "steps {steps:?}: only 1 is supported on shapes"
                );
                let n = a.v.len() as i64;
                let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
                let (s, e) = (clamp(starts[0]), clamp(ends[0]));
                let v = a.v[s..e.max(s)].to_vec();
                Ints {
                    dims: vec![v.len()],
                    v,
                }
            }
            "Unsqueeze" | "Squeeze" => {
                let axes = self.known(node, 1, "axes")?;
                let dims = if node.op == "Unsqueeze" {
                    let axes = axes.ok_or_else(|| anyhow!("missing axes"))?;
                    let out_rank = rank + axes.len();
                    let axes = (axes.iter())
                        .map(|&x| norm_axis(node, x, out_rank))
                        .collect::<Result<Vec<_>>>()?;
                    let mut rest = a.dims.iter();
                    (0..out_rank)
                        .map(|i| {
                            if axes.contains(&i) {
                                1
                            } else {
                                *rest.next().unwrap_or(&1)
                            }
                        })
                        .collect()
                } else {
                    let axes = match axes {
                        Some(axes) => (axes.iter())
                            .map(|&x| norm_axis(node, x, rank))
                            .collect::<Result<Vec<_>>>()?,
                        None => (0..rank).filter(|&i| a.dims[i] == 1).collect(),
                    };
                    (0..rank)
                        .filter(|i| !axes.contains(i))
                        .map(|i| a.dims[i])
                        .collect()
                };
                Ints { dims, v: a.v }
            }
            "Concat" => {
                ensure!(
                    rank == 1,
                    "joins rank-{rank} integer tensors; only 1-D is supported"
                );
                let mut v = Vec::new();
                for i in &inputs {
                    v.extend(self.ints(i).ok_or_else(|| anyhow!("missing input"))?.v);
                }
                Ints {
                    dims: vec![v.len()],
                    v,
                }
            }
            "Add" | "Sub" | "Mul" | "Div" => {
                let b = self
                    .ints(inputs[1])
                    .ok_or_else(|| anyhow!("missing input 1"))?;
                let (av, bv) = (a.values(node)?, b.values(node)?);
                let (dims, n) = if av.len() >= bv.len() {
                    (a.dims.clone(), av.len())
                } else {
                    (b.dims.clone(), bv.len())
                };
                ensure!(
                    av.len() == n || av.len() == 1 && bv.len() == n || bv.len() == 1,
                    "integer operands of {} and {} values do not broadcast",
                    av.len(),
                    bv.len()
                );
                let at = |v: &[i64], i: usize| v[if v.len() == 1 { 0 } else { i }];
                let v = (0..n)
                    .map(|i| {
                        let (x, y) = (at(&av, i), at(&bv, i));
                        Ok(Some(match node.op.as_str() {
                            "Add" => x + y,
                            "Sub" => x - y,
                            "Mul" => x * y,
                            _ => x
                                .checked_div(y)
                                .ok_or_else(|| anyhow!("division by zero"))?,
                        }))
                    })
                    .collect::<Result<_>>()?;
                Ints { dims, v }
            }
            _ => return Ok(None),
        }))
    }

    /// ConstantOfShape of a (folded) shape: a constant, the batch size as 1 (it broadcasts).
    fn constant_of_shape(&mut self, node: &Node) -> Result<()> {
        let name = node.input(0).ok_or_else(|| anyhow!("missing input"))?;
        let shape = self
            .ints(name)
            .ok_or_else(|| anyhow!("the shape `{name}` must be computable at load time"))?;
        let dims: Vec<usize> = shape
            .v
            .iter()
            .map(|d| d.unwrap_or(1).max(0) as usize)
            .collect();
        let n = dims.iter().product();
        let data = match node.attrs.get("value") {
            Some(Attr::Tensor(c)) => match &c.data {
                ConstData::I64(v) => ConstData::I64(vec![v.first().copied().unwrap_or(0); n]),
                ConstData::F32(v) => ConstData::F32(vec![v.first().copied().unwrap_or(0.0); n]),
            },
            _ => ConstData::F32(vec![0.0; n]),
        };
        self.set_const(node, Const { dims, data });
        Ok(())
    }

    /// Expand of a constant: the constant broadcast to the shape (the batch size as 1); of an
    /// activation to its own shape: the identity.
    fn expand(&mut self, mut node: Node) -> Result<()> {
        let (x, s) = (
            node.input(0).unwrap_or_default(),
            node.input(1).unwrap_or_default(),
        );
        let shape = self
            .ints(s)
            .ok_or_else(|| anyhow!("the shape `{s}` must be computable at load time"))?;
        if let Some(c) = self.out.consts.get(x) {
            let dims: Vec<usize> = shape
                .v
                .iter()
                .map(|d| d.unwrap_or(1).max(0) as usize)
                .collect();
            let ones = Tensor::new(dims.clone(), vec![1.0; dims.iter().product()]);
            let y = float::broadcast(
                &node,
                &Tensor::new(c.dims.clone(), c.f32()),
                &ones,
                |v, _| v,
            )?;
            let c = Const {
                dims: y.shape,
                data: ConstData::F32(y.data),
            };
            self.set_const(&node, c);
            return Ok(());
        }
        let t = self
            .env
            .get(x)
            .ok_or_else(|| anyhow!("unknown tensor `{x}`"))?;
        let same = shape.v.len() == t.shape.len()
            && (shape.v.iter().zip(&t.shape).enumerate()).all(|(i, (d, &n))| {
                *d == Some(n as i64) || *d == Some(1) || (i == 0 && d.is_none())
            });
        ensure!(
            same,
            "expands {:?} to {:?}: only an Expand of an activation to its own shape is supported",
            t.shape,
            shape.v
        );
        node.op = "Identity".into();
        node.inputs.truncate(1);
        self.visit_inner(node)
    }

    /// Gather of a constant by constant indices: a constant. Of an activation by a constant
    /// scalar index: a Slice of that axis and a Squeeze of it; by a contiguous ascending range
    /// of indices: a Slice.
    fn gather(&mut self, node: &Node) -> Result<()> {
        let (x, i) = (
            node.input(0).unwrap_or_default(),
            node.input(1).unwrap_or_default(),
        );
        let idx = self.out.consts.get(i).cloned().ok_or_else(|| {
            anyhow!("the indices `{i}` must be constant (a Gather by computed indices has no Myelin form)")
        })?;
        let iv = idx.i64()?;
        if let Some(c) = self.out.consts.get(x).cloned() {
            let axis = norm_axis(node, node.int("axis", 0)?, c.dims.len())?;
            let (dims, v) = gather(node, (&c.dims, &c.f32()), axis, (&idx.dims, &iv))?;
            self.set_const(
                node,
                Const {
                    dims,
                    data: ConstData::F32(v),
                },
            );
            return Ok(());
        }
        let shape = self
            .env
            .get(x)
            .map(|t| t.shape.clone())
            .ok_or_else(|| anyhow!("unknown tensor `{x}`"))?;
        let axis = float::data_axis(node, node.int("axis", 0)?, shape.len())?;
        let n = shape[axis] as i64;
        let start = iv
            .first()
            .map(|&v| if v < 0 { v + n } else { v })
            .unwrap_or(0);
        let contiguous = iv
            .iter()
            .enumerate()
            .all(|(k, &v)| (if v < 0 { v + n } else { v }) == start + k as i64);
        ensure!(
            idx.dims.len() <= 1 && !iv.is_empty() && contiguous && (0..n).contains(&start),
            "indices {iv:?} of an activation: only a scalar or a contiguous ascending range is \
             supported (a Slice)"
        );
        let scalar = idx.dims.is_empty();
        let out = node.outputs[0].clone();
        let sliced = if scalar {
            format!("{out}/slice")
        } else {
            out.clone()
        };
        let ints = |v: i64| Attr::Ints(vec![v]);
        let attrs = [
            ("starts", ints(start)),
            ("ends", ints(start + iv.len() as i64)),
            ("axes", ints(axis as i64)),
        ];
        let slice = Node {
            name: node.name.clone(),
            op: "Slice".into(),
            inputs: vec![x.to_string()],
            outputs: vec![sliced.clone()],
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        };
        self.visit_inner(slice)?;
        if scalar {
            let squeeze = Node {
                name: format!("{}/squeeze", node.name),
                op: "Squeeze".into(),
                inputs: vec![sliced],
                outputs: vec![out],
                attrs: HashMap::from([("axes".to_string(), ints(axis as i64))]),
            };
            self.visit_inner(squeeze)?;
        }
        Ok(())
    }
}
