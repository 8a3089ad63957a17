//! A float32 interpreter for the ONNX op subset the converter supports. It runs the graph
//! exactly as written (batch axis included, BatchNormalization unfolded), so it is both the
//! calibration engine and the float reference of `myelin compare`. Sums accumulate in f64.

use std::collections::HashMap;
use std::f64::consts::SQRT_2;
use std::rc::Rc;

use anyhow::{anyhow, bail, ensure, Context, Result};

use super::graph::{Attr, Graph, Node};
use super::ops;
use super::proto::data_type;

/// The tensors computed so far, by ONNX name.
pub(super) type Env<'a> = HashMap<&'a str, Tensor>;

/// A dense float tensor in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Tensor {
        debug_assert_eq!(shape.iter().product::<usize>(), data.len());
        Tensor { shape, data }
    }

    fn map(&self, f: impl Fn(f32) -> f32) -> Tensor {
        Tensor::new(
            self.shape.clone(),
            self.data.iter().map(|&x| f(x)).collect(),
        )
    }
}

/// Kernel, strides and pads of a convolution or pooling node over 1 or 2 spatial axes,
/// always expressed in 2-D (a 1-D window has kernel height 1). The pads are explicit and the
/// output size is floor mode: [`Window::from_node`] turns `auto_pad` and `ceil_mode` into
/// pads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    /// The part of the bottom and right pads that only stands for `ceil_mode = 1` (window
    /// positions past the padded input, which no pool counts).
    pub ceil_pads: [usize; 2],
}

impl Window {
    /// A window without padding.
    pub fn unpadded(kernel: [usize; 2]) -> Window {
        Window {
            kernel,
            stride: [1, 1],
            pads: [0; 4],
            ceil_pads: [0; 2],
        }
    }

    /// Reads `kernel` (a Conv's weight dims, after [`dilated_weights`]) or else
    /// `kernel_shape` (pools, whose `dilations` must be 1), `strides`, `pads`, over an input
    /// of spatial size `[h, w]` (`[1, L]` in 1-D).
    ///
    /// `auto_pad` becomes explicit pads: `VALID` none, `SAME_UPPER`/`SAME_LOWER` the total
    /// `(⌈in / stride⌉ − 1) · stride + kernel − in` split evenly, the odd one at the end
    /// (UPPER) or the start (LOWER). `ceil_mode = 1` (pools) becomes extra bottom/right
    /// padding that completes the last window, dropping a last window that would start in the
    /// end padding (PyTorch's rule, which the ONNX reference follows); the pool semantics
    /// then decide if that is exact (see [`Window::count_include_pad`]).
    pub fn from_node(
        node: &Node,
        spatial: usize,
        kernel: Option<&[usize]>,
        [h, w]: [usize; 2],
    ) -> Result<Window> {
        let kernel_given = kernel;
        ensure!(
            spatial == 1 || spatial == 2,
            "{}: only 1-D and 2-D windows are supported",
            node.describe()
        );
        let kernel: Vec<usize> = match (kernel, node.ints("kernel_shape")?) {
            (Some(k), _) => k.to_vec(),
            (None, Some(k)) => k.iter().map(|&v| v as usize).collect(),
            (None, None) => bail!("{}: missing kernel_shape", node.describe()),
        };
        let strides: Vec<usize> = node
            .ints("strides")?
            .map(|s| s.iter().map(|&v| v as usize).collect())
            .unwrap_or(vec![1; spatial]);
        let pads: Vec<usize> = node
            .ints("pads")?
            .map(|s| s.iter().map(|&v| v as usize).collect())
            .unwrap_or(vec![0; 2 * spatial]);
        if let (None, Some(d)) = (kernel_given, node.ints("dilations")?) {
            ensure!(
                d.iter().all(|&v| v == 1),
                "{}: dilations {d:?} are not supported on pools (only 1)",
                node.describe()
            );
        }
        ensure!(
            kernel.len() == spatial && strides.len() == spatial && pads.len() == 2 * spatial,
            "{}: window attributes do not match {spatial} spatial axes",
            node.describe()
        );
        ensure!(
            kernel.iter().chain(&strides).all(|&v| v >= 1),
            "{}: kernel and strides must be at least 1",
            node.describe()
        );
        let mut win = if spatial == 2 {
            Window {
                kernel: [kernel[0], kernel[1]],
                stride: [strides[0], strides[1]],
                pads: [pads[0], pads[1], pads[2], pads[3]],
                ceil_pads: [0; 2],
            }
        } else {
            Window {
                kernel: [1, kernel[0]],
                stride: [1, strides[0]],
                pads: [0, pads[0], 0, pads[1]],
                ceil_pads: [0; 2],
            }
        };
        let auto_pad = node.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
        let first_axis = 2 - spatial; // a 1-D window leaves its height alone
        match auto_pad.as_str() {
            "NOTSET" => {}
            "VALID" => win.pads = [0; 4],
            "SAME_UPPER" | "SAME_LOWER" => {
                for (axis, size) in [h, w].into_iter().enumerate().skip(first_axis) {
                    let (k, s) = (win.kernel[axis], win.stride[axis]);
                    let total = ((size.div_ceil(s) - 1) * s + k).saturating_sub(size);
                    let small = total / 2;
                    let (before, after) = if auto_pad == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    win.pads[axis] = before;
                    win.pads[axis + 2] = after;
                }
            }
            other => bail!(
                "{}: auto_pad={other} is not an ONNX value (NOTSET, SAME_UPPER, SAME_LOWER, \
                 VALID)",
                node.describe()
            ),
        }
        if node.int("ceil_mode", 0)? != 0 {
            for (axis, size) in [h, w].into_iter().enumerate().skip(first_axis) {
                let (k, s) = (win.kernel[axis], win.stride[axis]);
                let (before, padded) = (win.pads[axis], size + win.pads[axis] + win.pads[axis + 2]);
                ensure!(
                    padded >= k,
                    "{}: kernel {k} is larger than the padded input {padded}",
                    node.describe()
                );
                let mut out = (padded - k).div_ceil(s) + 1;
                if (out - 1) * s >= size + before {
                    out -= 1; // the last window would start in the end padding
                }
                let extra = ((out - 1) * s + k).saturating_sub(padded);
                win.pads[axis + 2] += extra;
                win.ceil_pads[axis] = extra;
            }
        }
        Ok(win)
    }

    /// Whether an AveragePool divides by the whole window (`count_include_pad = 1`) over
    /// padding that exists: padding added for `ceil_mode` never counts in ONNX, so an
    /// AveragePool that counts its declared pads and also needs ceil padding has no Myelin
    /// equivalent (an error naming the fix).
    pub fn count_include_pad(&self, node: &Node) -> Result<bool> {
        let flag = node.int("count_include_pad", 0)? != 0;
        let [cb, cr] = self.ceil_pads;
        let declared = [
            self.pads[0],
            self.pads[1],
            self.pads[2] - cb,
            self.pads[3] - cr,
        ];
        let include = flag && declared != [0; 4];
        ensure!(
            !include || self.ceil_pads == [0; 2],
            "{}: ceil_mode=1 with count_include_pad=1 and pads {declared:?} divides the last \
             windows by a count Myelin cannot express; export with ceil_mode=0 (or \
             count_include_pad=0)",
            node.describe()
        );
        Ok(include)
    }

    /// Output `[oh, ow]` over an `[h, w]` map (floor mode over the explicit pads).
    pub fn output(&self, node: &Node, h: usize, w: usize) -> Result<[usize; 2]> {
        let mut out = [0; 2];
        for (axis, size) in [h, w].into_iter().enumerate() {
            let padded = size + self.pads[axis] + self.pads[axis + 2];
            let k = self.kernel[axis];
            ensure!(
                padded >= k,
                "{}: kernel {k} is larger than the padded input {padded}",
                node.describe()
            );
            out[axis] = (padded - k) / self.stride[axis] + 1;
        }
        Ok(out)
    }
}

/// `[N, C, H, W]` dims of a rank-3 (`[N, C, L]`, as H = 1) or rank-4 tensor.
fn nchw(node: &Node, shape: &[usize]) -> Result<[usize; 4]> {
    match *shape {
        [n, c, l] => Ok([n, c, 1, l]),
        [n, c, h, w] => Ok([n, c, h, w]),
        _ => bail!(
            "{}: expected a [N, C, H, W] or [N, C, L] input, got {shape:?}",
            node.describe()
        ),
    }
}

/// The float interpreter over a loaded graph.
/// One batch of graph inputs: the float input and each integer input's ids (as f32, exact
/// below 2^24), batch axis first.
pub struct Feed {
    pub input: Tensor,
    pub ids: Vec<Tensor>,
}

impl From<Tensor> for Feed {
    fn from(input: Tensor) -> Feed {
        Feed {
            input,
            ids: Vec::new(),
        }
    }
}

pub struct Runner<'g> {
    graph: &'g Graph,
}

impl<'g> Runner<'g> {
    pub fn new(graph: &'g Graph) -> Self {
        Runner { graph }
    }

    /// Runs the graph on `feed` (batch axis first) and returns the output. `observe` sees
    /// the float input and every intermediate tensor by its ONNX name.
    pub fn run(
        &self,
        feed: impl Into<Feed>,
        observe: &mut dyn FnMut(&str, &Tensor),
    ) -> Result<Tensor> {
        let g = self.graph;
        let Feed { input, ids } = feed.into();
        ensure!(
            ids.len() == g.id_inputs.len(),
            "{} id tensors for {} integer inputs",
            ids.len(),
            g.id_inputs.len()
        );
        observe(&g.input, &input);
        let mut env: Env<'_> = HashMap::from([(g.input.as_str(), input)]);
        env.extend(g.id_inputs.iter().map(|i| i.name.as_str()).zip(ids));
        for node in &g.nodes {
            let y = self
                .eval(node, &env)
                .with_context(|| format!("running {}", node.describe()))?;
            let out = node
                .outputs
                .first()
                .ok_or_else(|| anyhow!("{} has no output", node.describe()))?;
            observe(out, &y);
            env.insert(out.as_str(), y);
        }
        env.remove(g.output.as_str())
            .or_else(|| {
                g.consts
                    .get(&g.output)
                    .map(|c| Tensor::new(c.dims.clone(), c.f32()))
            })
            .ok_or_else(|| anyhow!("graph output `{}` is never produced", g.output))
    }

    /// The graph being run.
    pub(super) fn graph(&self) -> &'g Graph {
        self.graph
    }

    /// Input `i` of `node`: a tensor computed so far or a constant.
    pub(super) fn get(&self, env: &Env<'_>, node: &Node, i: usize) -> Result<Tensor> {
        let name = node
            .input(i)
            .ok_or_else(|| anyhow!("{}: missing input {i}", node.describe()))?;
        if let Some(t) = env.get(name) {
            return Ok(t.clone());
        }
        let c = self
            .graph
            .consts
            .get(name)
            .ok_or_else(|| anyhow!("{}: unknown tensor `{name}`", node.describe()))?;
        Ok(Tensor::new(c.dims.clone(), c.f32()))
    }

    /// Evaluates `node` with the float function of its row in [`ops`].
    fn eval(&self, node: &Node, env: &Env<'_>) -> Result<Tensor> {
        (ops::find(node)?.eval)(self, node, env)
    }
}

// One function per row of the [`ops`] table (free functions, not methods: a method's fn item
// is not general over the runner's lifetime, so it would not coerce to the table's fn
// pointer type).

pub(super) fn eval_identity(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    runner.get(env, node, 0)
}

pub(super) fn eval_relu(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    Ok(runner.get(env, node, 0)?.map(|v| v.max(0.0)))
}

/// The elementwise unary ops (Sigmoid, Tanh, the activations PyTorch exports, Erf, Exp, …):
/// [`unary_fn`] in f64.
pub(super) fn eval_unary(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let f = unary_fn(node)?;
    Ok(runner.get(env, node, 0)?.map(|v| f(v as f64) as f32))
}

/// A real function of one real, shareable: the steps of an elementwise chain (see `lower`).
pub type Scalar = Rc<dyn Fn(f64) -> f64>;

/// The function of an elementwise unary op, with its attributes (ONNX defaults). The float
/// interpreter and the Lut tables of the lowering both evaluate it, so they agree exactly.
pub fn unary_fn(node: &Node) -> Result<Scalar> {
    let sigmoid = |v: f64| 1.0 / (1.0 + (-v).exp());
    Ok(match node.op.as_str() {
        "Sigmoid" => Rc::new(sigmoid),
        "Tanh" => Rc::new(f64::tanh),
        "HardSigmoid" => {
            let (a, b) = (
                node.float("alpha", 0.2)? as f64,
                node.float("beta", 0.5)? as f64,
            );
            Rc::new(move |v| (a * v + b).clamp(0.0, 1.0))
        }
        "HardSwish" => Rc::new(|v| v * (v / 6.0 + 0.5).clamp(0.0, 1.0)),
        "LeakyRelu" => {
            let a = node.float("alpha", 0.01)? as f64;
            Rc::new(move |v| if v >= 0.0 { v } else { a * v })
        }
        "Elu" => {
            let a = node.float("alpha", 1.0)? as f64;
            Rc::new(move |v| if v > 0.0 { v } else { a * v.exp_m1() })
        }
        "Selu" => {
            let a = node.float("alpha", 1.673_263_2)? as f64;
            let g = node.float("gamma", 1.050_701)? as f64;
            Rc::new(move |v| g * if v > 0.0 { v } else { a * v.exp_m1() })
        }
        "Gelu" => match node.string("approximate")?.as_deref() {
            None | Some("none") => Rc::new(|v| 0.5 * v * (1.0 + erf(v / SQRT_2))),
            Some("tanh") => Rc::new(|v| {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh())
            }),
            Some(other) => bail!(
                "{}: approximate=`{other}` is not an ONNX value (none, tanh)",
                node.describe()
            ),
        },
        "Erf" => Rc::new(erf),
        "Exp" => Rc::new(f64::exp),
        "Log" => Rc::new(f64::ln),
        "Sqrt" => Rc::new(f64::sqrt),
        "Reciprocal" => Rc::new(f64::recip),
        // ln(1 + e^v) without overflow for large v
        "Softplus" => Rc::new(|v| v.max(0.0) + (-v.abs()).exp().ln_1p()),
        "Softsign" => Rc::new(|v| v / (1.0 + v.abs())),
        "Neg" => Rc::new(|v| -v),
        "Abs" => Rc::new(f64::abs),
        other => bail!(
            "{}: `{other}` is not an elementwise unary op",
            node.describe()
        ),
    })
}

/// The error function (Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7: far below
/// an int8 step, and the float interpreter uses the same function as the tables).
pub fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    (1.0 - poly * (-x * x).exp()).copysign(x)
}

pub(super) fn eval_clip(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let (lo, hi) = clip_bounds(runner.graph, node)?;
    Ok(runner.get(env, node, 0)?.map(|v| v.max(lo).min(hi)))
}

pub(super) fn eval_add(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    broadcast(
        node,
        &runner.get(env, node, 0)?,
        &runner.get(env, node, 1)?,
        |x, y| x + y,
    )
}

pub(super) fn eval_sub(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    broadcast(
        node,
        &runner.get(env, node, 0)?,
        &runner.get(env, node, 1)?,
        |x, y| x - y,
    )
}

pub(super) fn eval_mul(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    broadcast(
        node,
        &runner.get(env, node, 0)?,
        &runner.get(env, node, 1)?,
        |x, y| x * y,
    )
}

pub(super) fn eval_div(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    broadcast(
        node,
        &runner.get(env, node, 0)?,
        &runner.get(env, node, 1)?,
        |x, y| x / y,
    )
}

pub(super) fn eval_pow(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    broadcast(
        node,
        &runner.get(env, node, 0)?,
        &runner.get(env, node, 1)?,
        f32::powf,
    )
}

/// Dropout at inference: the identity (see [`check_dropout`]).
pub(super) fn eval_dropout(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    check_dropout(runner.graph, node)?;
    runner.get(env, node, 0)
}

/// Cast to float of a float tensor: the identity (see [`check_cast`]).
pub(super) fn eval_cast(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    check_cast(node)?;
    runner.get(env, node, 0)
}

/// A Dropout is the identity at inference, when its `mask` output (which would be all ones)
/// is unread and its `training_mode` input, if any, is a constant false.
pub fn check_dropout(graph: &Graph, node: &Node) -> Result<()> {
    if let Some(mask) = node.outputs.get(1).filter(|m| !m.is_empty()) {
        let read = *mask == graph.output || graph.nodes.iter().any(|n| n.inputs.contains(mask));
        ensure!(
            !read,
            "{}: its mask output `{mask}` is read; only the inference form (output 0 alone) \
             is supported",
            node.describe()
        );
    }
    if let Some(name) = node.input(2) {
        let training = graph.consts.get(name).map(|c| c.f32());
        ensure!(
            training.is_some_and(|v| v.iter().all(|&t| t == 0.0)),
            "{}: training_mode `{name}` is not the constant false; export the model in eval \
             mode (model.eval())",
            node.describe()
        );
    }
    Ok(())
}

/// Every activation is float, so only a Cast to float (`to` = 1) is the identity.
pub fn check_cast(node: &Node) -> Result<()> {
    let to = node.int("to", 0)?;
    ensure!(
        to == i64::from(data_type::FLOAT),
        "{}: Cast to element type {to}: only Cast to float (1) of a float tensor is supported \
         (remove the cast, or cast after the model)",
        node.describe()
    );
    Ok(())
}

/// `Gather` along `axis` (numpy's `take`): an embedding lookup, a selection of id columns,
/// or a constant-index pick. Indices may be negative (counted from the end).
pub(super) fn eval_gather(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let (data, indices) = (runner.get(env, node, 0)?, runner.get(env, node, 1)?);
    let rank = data.shape.len() as i64;
    let axis = node.int("axis", 0)?;
    // Any axis, the batch axis included: the table of an embedding lookup has none.
    let axis = usize::try_from(if axis < 0 { axis + rank } else { axis })
        .ok()
        .filter(|&a| a < data.shape.len())
        .ok_or_else(|| anyhow!("Gather axis {axis} of a rank-{rank} tensor"))?;
    let dim = data.shape[axis];
    let outer: usize = data.shape[..axis].iter().product();
    let inner: usize = data.shape[axis + 1..].iter().product();
    let picks = indices
        .data
        .iter()
        .map(|&i| {
            let i = i as i64;
            let i = if i < 0 { i + dim as i64 } else { i };
            usize::try_from(i)
                .ok()
                .filter(|&i| i < dim)
                .ok_or_else(|| anyhow!("Gather index {i} out of 0..{dim}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(outer * picks.len() * inner);
    for o in 0..outer {
        for &p in &picks {
            let at = (o * dim + p) * inner;
            out.extend_from_slice(&data.data[at..at + inner]);
        }
    }
    let shape = [
        &data.shape[..axis],
        &indices.shape[..],
        &data.shape[axis + 1..],
    ]
    .concat();
    Ok(Tensor::new(shape, out))
}

pub(super) fn eval_transpose(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let t = runner.get(env, node, 0)?;
    let perm = transpose_perm(node, t.shape.len())?;
    let shape: Vec<usize> = perm.iter().map(|&p| t.shape[p]).collect();
    let st = strides(&t.shape);
    let mut data = Vec::with_capacity(t.data.len());
    for_each_index(&shape, |i| {
        data.push(t.data[i.iter().zip(&perm).map(|(&v, &p)| v * st[p]).sum::<usize>()]);
    });
    Ok(Tensor::new(shape, data))
}

pub(super) fn eval_concat(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let ts = (0..node.inputs.len())
        .map(|i| runner.get(env, node, i))
        .collect::<Result<Vec<_>>>()?;
    let first = ts
        .first()
        .ok_or_else(|| anyhow!("{}: no inputs", node.describe()))?;
    let axis = data_axis(node, node.int("axis", 0)?, first.shape.len())?;
    let fits = |t: &Tensor| {
        t.shape.len() == first.shape.len()
            && (0..t.shape.len()).all(|a| a == axis || t.shape[a] == first.shape[a])
    };
    ensure!(
        ts.iter().all(fits),
        "{}: input shapes {:?} differ off axis {axis}",
        node.describe(),
        ts.iter().map(|t| &t.shape).collect::<Vec<_>>()
    );
    let outer: usize = first.shape[..axis].iter().product();
    let mut shape = first.shape.clone();
    shape[axis] = ts.iter().map(|t| t.shape[axis]).sum();
    let mut data = Vec::with_capacity(shape.iter().product());
    for o in 0..outer {
        for t in &ts {
            let block = t.data.len() / outer;
            data.extend_from_slice(&t.data[o * block..(o + 1) * block]);
        }
    }
    Ok(Tensor::new(shape, data))
}

/// ReduceSum, ReduceMean and ReduceMax over one axis.
pub(super) fn eval_reduce(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let t = runner.get(env, node, 0)?;
    let (axis, keepdims) = reduce_axis(runner.graph, node, t.shape.len())?;
    let len = t.shape[axis];
    let inner: usize = t.shape[axis + 1..].iter().product();
    let outer = t.data.len() / (len * inner).max(1);
    let mut data = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        for i in 0..inner {
            let lane = (0..len).map(|k| t.data[(o * len + k) * inner + i]);
            data.push(match node.op.as_str() {
                "ReduceMax" => lane.fold(f32::NEG_INFINITY, f32::max),
                "ReduceMean" => (lane.map(f64::from).sum::<f64>() / len as f64) as f32,
                _ => lane.map(f64::from).sum::<f64>() as f32,
            });
        }
    }
    let mut shape = t.shape.clone();
    if keepdims {
        shape[axis] = 1;
    } else {
        shape.remove(axis);
    }
    Ok(Tensor::new(shape, data))
}

pub(super) fn eval_pad(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let t = runner.get(env, node, 0)?;
    let pads = pad_amounts(runner.graph, node, t.shape.len())?;
    let shape: Vec<usize> = t
        .shape
        .iter()
        .zip(&pads)
        .map(|(d, (b, a))| b + d + a)
        .collect();
    let st = strides(&t.shape);
    let mut data = Vec::with_capacity(shape.iter().product());
    for_each_index(&shape, |i| {
        let mut at = 0;
        for (a, &v) in i.iter().enumerate() {
            match v.checked_sub(pads[a].0).filter(|&j| j < t.shape[a]) {
                Some(j) => at += j * st[a],
                None => return data.push(0.0),
            }
        }
        data.push(t.data[at]);
    });
    Ok(Tensor::new(shape, data))
}

/// Resize and Upsample (nearest, integer factors on H and W).
pub(super) fn eval_resize(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let t = runner.get(env, node, 0)?;
    let [fh, fw] = resize_factors(runner.graph, node, t.shape.len())?;
    let idx: Vec<Vec<usize>> = t
        .shape
        .iter()
        .zip([1, 1, fh, fw])
        .map(|(&d, f)| (0..d * f).map(|i| i / f).collect())
        .collect();
    Ok(select(&t, &idx))
}

pub(super) fn eval_slice(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let t = runner.get(env, node, 0)?;
    let idx: Vec<Vec<usize>> = slice_ranges(runner.graph, node, &t.shape)?
        .iter()
        .map(|&(start, count, step)| (0..count).map(|k| start + k * step).collect())
        .collect();
    Ok(select(&t, &idx))
}

/// Squeeze and Unsqueeze.
pub(super) fn eval_squeeze(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let t = runner.get(env, node, 0)?;
    let shape = squeeze_shape(runner.graph, node, &t.shape)?;
    Ok(Tensor::new(shape, t.data))
}

pub(super) fn eval_gemm(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    gemm(
        node,
        &runner.get(env, node, 0)?,
        &runner.get(env, node, 1)?,
        node.input(2)
            .map(|_| runner.get(env, node, 2))
            .transpose()?,
    )
}

pub(super) fn eval_matmul(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    matmul(node, &runner.get(env, node, 0)?, &runner.get(env, node, 1)?)
}

pub(super) fn eval_conv(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let w = runner.get(env, node, 1)?;
    let (dims, data) = dilated_weights(node, &w.shape, &w.data)?;
    conv(
        node,
        &runner.get(env, node, 0)?,
        &Tensor::new(dims, data),
        node.input(2)
            .map(|_| runner.get(env, node, 2))
            .transpose()?,
    )
}

pub(super) fn eval_batch_norm(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let t = runner.get(env, node, 0)?;
    let (a, c) = bn_affine(runner.graph, node)?;
    ensure!(
        t.shape.len() >= 2 && t.shape[1] == a.len(),
        "{}: channel count mismatch",
        node.describe()
    );
    let ch = t.shape[1];
    let inner: usize = t.shape[2..].iter().product();
    let data = t.data.iter().enumerate().map(|(i, &v)| {
        let c_i = (i / inner) % ch;
        (a[c_i] * v as f64 + c[c_i]) as f32
    });
    Ok(Tensor::new(t.shape.clone(), data.collect()))
}

/// MaxPool and AveragePool.
pub(super) fn eval_pool(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    pool(node, &runner.get(env, node, 0)?)
}

pub(super) fn eval_global_average_pool(
    runner: &Runner<'_>,
    node: &Node,
    env: &Env<'_>,
) -> Result<Tensor> {
    let t = runner.get(env, node, 0)?;
    ensure!(
        t.shape.len() >= 3,
        "{}: expected [N, C, ...]",
        node.describe()
    );
    let (n, c) = (t.shape[0], t.shape[1]);
    let inner: usize = t.shape[2..].iter().product();
    let data = t
        .data
        .chunks(inner)
        .map(|ch| (ch.iter().map(|&v| v as f64).sum::<f64>() / inner as f64) as f32);
    let mut shape = vec![n, c];
    shape.extend(std::iter::repeat_n(1, t.shape.len() - 2));
    Ok(Tensor::new(shape, data.collect()))
}

pub(super) fn eval_flatten(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let t = runner.get(env, node, 0)?;
    let r = t.shape.len() as i64;
    let mut axis = node.int("axis", 1)?;
    if axis < 0 {
        axis += r;
    }
    ensure!(
        (0..=r).contains(&axis),
        "{}: axis out of range",
        node.describe()
    );
    let outer: usize = t.shape[..axis as usize].iter().product();
    Ok(Tensor::new(
        vec![outer, t.data.len() / outer.max(1)],
        t.data,
    ))
}

pub(super) fn eval_reshape(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let t = runner.get(env, node, 0)?;
    let shape = reshape_target(runner.graph, node, &t.shape)?;
    Ok(Tensor::new(shape, t.data))
}

/// LayerNormalization (opset 17) over the last axis (see [`check_layer_norm`]): each row
/// `(x − mean) / √(var + ε)` in f64, then `· Scale + B` broadcast as ONNX does.
pub(super) fn eval_layer_norm(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let x = runner.get(env, node, 0)?;
    check_layer_norm(node, x.shape.len())?;
    let eps = node.float("epsilon", 1e-5)? as f64;
    let l = *x.shape.last().unwrap_or(&1);
    let mut y = Vec::with_capacity(x.data.len());
    for row in x.data.chunks(l.max(1)) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / l as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / l as f64;
        let inv = 1.0 / (var + eps).sqrt();
        y.extend(row.iter().map(|&v| ((v as f64 - mean) * inv) as f32));
    }
    let y = Tensor::new(x.shape.clone(), y);
    let y = broadcast(node, &y, &runner.get(env, node, 1)?, |v, g| v * g)?;
    match node.input(2) {
        Some(_) => broadcast(node, &y, &runner.get(env, node, 2)?, |v, b| v + b),
        None => Ok(y),
    }
}

/// A LayerNormalization the converter supports over a rank-`rank` input (batch included):
/// normalizing the last axis only (Myelin's LayerNorm rows), and without the optional
/// `Mean` / `InvStdDev` outputs (training-only statistics). `stash_type` (the precision of
/// the statistics) is ignored: they are computed in f64 here and exactly in integers there.
pub fn check_layer_norm(node: &Node, rank: usize) -> Result<()> {
    let axis = data_axis(node, node.int("axis", -1)?, rank)?;
    ensure!(
        axis == rank - 1,
        "{}: normalizes axes {axis}.. of a rank-{rank} tensor; only the last axis is \
         supported (Myelin LayerNorm normalizes rows of the last axis)",
        node.describe()
    );
    ensure!(
        node.outputs.iter().skip(1).all(|o| o.is_empty()),
        "{}: the Mean and InvStdDev outputs are not supported",
        node.describe()
    );
    Ok(())
}

pub(super) fn eval_softmax(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    softmax(node, runner.graph.opset, &runner.get(env, node, 0)?)
}

/// Clip bounds from inputs 1, 2 (opset ≥ 11) or the `min`/`max` attributes (older opsets).
pub fn clip_bounds(graph: &Graph, node: &Node) -> Result<(f32, f32)> {
    let scalar = |i: usize, attr: &str, default: f32| -> Result<f32> {
        match node.input(i) {
            Some(name) => {
                let c = graph.consts.get(name).ok_or_else(|| {
                    anyhow!(
                        "{}: bound `{name}` must be a constant (initializer or Constant)",
                        node.describe()
                    )
                })?;
                let v = c.f32();
                ensure!(
                    v.len() == 1,
                    "{}: bound `{name}` must be a scalar",
                    node.describe()
                );
                Ok(v[0])
            }
            None => node.float(attr, default),
        }
    };
    Ok((
        scalar(1, "min", f32::NEG_INFINITY)?,
        scalar(2, "max", f32::INFINITY)?,
    ))
}

/// Per-channel `y = a · x + c` of an inference BatchNormalization.
pub fn bn_affine(graph: &Graph, node: &Node) -> Result<(Vec<f64>, Vec<f64>)> {
    ensure!(
        node.outputs.len() == 1,
        "{}: training-mode BatchNormalization is not supported",
        node.describe()
    );
    let param = |i: usize| -> Result<Vec<f32>> {
        let name = node
            .input(i)
            .ok_or_else(|| anyhow!("{}: missing input {i}", node.describe()))?;
        let c = graph
            .consts
            .get(name)
            .ok_or_else(|| anyhow!("{}: parameter `{name}` must be a constant", node.describe()))?;
        Ok(c.f32())
    };
    let (gamma, beta, mean, var) = (param(1)?, param(2)?, param(3)?, param(4)?);
    let eps = node.float("epsilon", 1e-5)? as f64;
    let n = gamma.len();
    ensure!(
        beta.len() == n && mean.len() == n && var.len() == n,
        "{}: parameter lengths differ",
        node.describe()
    );
    let a: Vec<f64> = (0..n)
        .map(|i| gamma[i] as f64 / (var[i] as f64 + eps).sqrt())
        .collect();
    let c = (0..n)
        .map(|i| beta[i] as f64 - a[i] * mean[i] as f64)
        .collect();
    Ok((a, c))
}

/// Target shape of a Reshape (constant shape input; `0` copies, `-1` infers).
pub fn reshape_target(graph: &Graph, node: &Node, in_shape: &[usize]) -> Result<Vec<usize>> {
    let name = node
        .input(1)
        .ok_or_else(|| anyhow!("{}: missing shape input", node.describe()))?;
    let spec = graph
        .consts
        .get(name)
        .ok_or_else(|| {
            anyhow!(
                "{}: the shape `{name}` must be a constant (dynamic shapes are not supported)",
                node.describe()
            )
        })?
        .i64()
        .with_context(|| node.describe())?;
    ensure!(
        node.int("allowzero", 0)? == 0,
        "{}: allowzero=1 is not supported",
        node.describe()
    );
    let numel: usize = in_shape.iter().product();
    let mut out = Vec::with_capacity(spec.len());
    let mut infer = None;
    for (i, &d) in spec.iter().enumerate() {
        match d {
            0 => out.push(
                *in_shape
                    .get(i)
                    .ok_or_else(|| anyhow!("{}: 0 copies a missing axis", node.describe()))?,
            ),
            -1 => {
                ensure!(
                    infer.is_none(),
                    "{}: more than one -1 in shape",
                    node.describe()
                );
                infer = Some(i);
                out.push(1);
            }
            d if d > 0 => out.push(d as usize),
            d => bail!("{}: invalid dimension {d}", node.describe()),
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        ensure!(
            known > 0 && numel.is_multiple_of(known),
            "{}: cannot reshape {in_shape:?} to {spec:?}",
            node.describe()
        );
        out[i] = numel / known;
    }
    ensure!(
        out.iter().product::<usize>() == numel,
        "{}: cannot reshape {in_shape:?} to {spec:?}",
        node.describe()
    );
    Ok(out)
}

/// `f(a, b)` elementwise with NumPy broadcasting.
pub(super) fn broadcast(
    node: &Node,
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(f32, f32) -> f32,
) -> Result<Tensor> {
    if a.shape == b.shape {
        return Ok(Tensor::new(
            a.shape.clone(),
            a.data.iter().zip(&b.data).map(|(&x, &y)| f(x, y)).collect(),
        ));
    }
    let r = a.shape.len().max(b.shape.len());
    let pad = |s: &[usize]| {
        let mut v = vec![1; r - s.len()];
        v.extend_from_slice(s);
        v
    };
    let (sa, sb) = (pad(&a.shape), pad(&b.shape));
    let mut out = Vec::with_capacity(r);
    for (&x, &y) in sa.iter().zip(&sb) {
        ensure!(
            x == y || x == 1 || y == 1,
            "{}: shapes {:?} and {:?} do not broadcast",
            node.describe(),
            a.shape,
            b.shape
        );
        out.push(x.max(y));
    }
    let strides = |s: &[usize]| {
        let mut st = vec![0; r];
        let mut acc = 1;
        for i in (0..r).rev() {
            st[i] = if s[i] == 1 { 0 } else { acc };
            acc *= s[i];
        }
        st
    };
    let (ta, tb) = (strides(&sa), strides(&sb));
    let n: usize = out.iter().product();
    let mut data = Vec::with_capacity(n);
    let mut idx = vec![0usize; r];
    for _ in 0..n {
        let (mut oa, mut ob) = (0, 0);
        for i in 0..r {
            oa += idx[i] * ta[i];
            ob += idx[i] * tb[i];
        }
        data.push(f(a.data[oa], b.data[ob]));
        for i in (0..r).rev() {
            idx[i] += 1;
            if idx[i] < out[i] {
                break;
            }
            idx[i] = 0;
        }
    }
    Ok(Tensor::new(out, data))
}

fn gemm(node: &Node, a: &Tensor, b: &Tensor, c: Option<Tensor>) -> Result<Tensor> {
    ensure!(
        node.int("transA", 0)? == 0,
        "{}: transA=1 contracts over the first axis of the activation A, its batch axis: no \
         per-sample operator computes that; export `x @ W.T` (transA=0, any transB)",
        node.describe()
    );
    ensure!(
        a.shape.len() == 2 && b.shape.len() == 2,
        "{}: Gemm takes 2-D operands",
        node.describe()
    );
    let tb = node.int("transB", 0)? != 0;
    let (alpha, beta) = (
        node.float("alpha", 1.0)? as f64,
        node.float("beta", 1.0)? as f64,
    );
    let (m, k) = (a.shape[0], a.shape[1]);
    let (k2, n) = if tb {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    ensure!(
        k == k2,
        "{}: inner dimensions {k} and {k2} differ",
        node.describe()
    );
    let av = |i: usize, j: usize| a.data[i * k + j] as f64;
    let bv = |i: usize, j: usize| if tb { b.data[j * k + i] } else { b.data[i * n + j] } as f64;
    let mut y = Tensor::new(vec![m, n], vec![0.0; m * n]);
    for i in 0..m {
        for j in 0..n {
            let s: f64 = (0..k).map(|p| av(i, p) * bv(p, j)).sum();
            y.data[i * n + j] = (alpha * s) as f32;
        }
    }
    match c {
        Some(c) => {
            let c = c.map(|v| (beta * v as f64) as f32);
            broadcast(node, &y, &c, |x, y| x + y)
        }
        None => Ok(y),
    }
}

fn matmul(node: &Node, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let r = b.shape.len();
    if r < 2 || b.shape[..r - 2].iter().any(|&d| d != 1) {
        return batched_matmul(node, a, b);
    }
    // a constant `[1, …, K, N]` broadcasts as `[K, N]`
    let b = &Tensor::new(b.shape[r - 2..].to_vec(), b.data.clone());
    ensure!(
        a.shape.len() >= 2,
        "{}: only [.., M, K] × [K, N] MatMul is supported",
        node.describe()
    );
    let k = *a.shape.last().unwrap();
    let (k2, n) = (b.shape[0], b.shape[1]);
    ensure!(
        k == k2,
        "{}: inner dimensions {k} and {k2} differ",
        node.describe()
    );
    let mut shape = a.shape.clone();
    *shape.last_mut().unwrap() = n;
    let mut data = Vec::with_capacity(a.data.len() / k * n);
    for row in a.data.chunks(k) {
        for j in 0..n {
            data.push(
                (0..k)
                    .map(|p| row[p] as f64 * b.data[p * n + j] as f64)
                    .sum::<f64>() as f32,
            );
        }
    }
    Ok(Tensor::new(shape, data))
}

/// `[..., M, K] × [..., K, N]` of equal ranks, the leading axes broadcasting (NumPy: each
/// equal or 1).
fn batched_matmul(node: &Node, a: &Tensor, b: &Tensor) -> Result<Tensor> {
    let r = a.shape.len();
    let lead_fits = |(&x, &y): (&usize, &usize)| x == y || x == 1 || y == 1;
    ensure!(
        r >= 3
            && b.shape.len() == r
            && a.shape[..r - 2]
                .iter()
                .zip(&b.shape[..r - 2])
                .all(lead_fits)
            && a.shape[r - 1] == b.shape[r - 2],
        "{}: MatMul of {:?} by {:?}: only [..., M, K] × [K, N] and [..., M, K] × [..., K, N] \
         of equal ranks (leading axes equal or 1) are supported",
        node.describe(),
        a.shape,
        b.shape
    );
    let (m, k, n) = (a.shape[r - 2], a.shape[r - 1], b.shape[r - 1]);
    let lead: Vec<usize> = (0..r - 2).map(|i| a.shape[i].max(b.shape[i])).collect();
    // matrix index of an operand at a leading index: its size-1 axes repeat
    let matrix = |shape: &[usize], i: &[usize]| {
        (0..r - 2).fold(0, |acc, ax| {
            acc * shape[ax] + if shape[ax] == 1 { 0 } else { i[ax] }
        })
    };
    let mut shape = lead.clone();
    shape.extend([m, n]);
    let mut data = Vec::with_capacity(shape.iter().product());
    for_each_index(&lead, |i| {
        let am = &a.data[matrix(&a.shape, i) * m * k..][..m * k];
        let bm = &b.data[matrix(&b.shape, i) * k * n..][..k * n];
        for row in am.chunks(k) {
            for j in 0..n {
                data.push(
                    (0..k)
                        .map(|p| row[p] as f64 * bm[p * n + j] as f64)
                        .sum::<f64>() as f32,
                );
            }
        }
    });
    Ok(Tensor::new(shape, data))
}

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut st = vec![1; shape.len()];
    for i in (1..shape.len()).rev() {
        st[i - 1] = st[i] * shape[i];
    }
    st
}

/// Calls `f` with every index of `shape`, in row-major order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(&[usize])) {
    let mut idx = vec![0; shape.len()];
    for _ in 0..shape.iter().product::<usize>() {
        f(&idx);
        for a in (0..shape.len()).rev() {
            idx[a] += 1;
            if idx[a] < shape[a] {
                break;
            }
            idx[a] = 0;
        }
    }
}

/// The elements of `t` at the positions `idx[a]` of every axis `a` (Slice, nearest Resize).
fn select(t: &Tensor, idx: &[Vec<usize>]) -> Tensor {
    let shape: Vec<usize> = idx.iter().map(Vec::len).collect();
    let st = strides(&t.shape);
    let mut data = Vec::with_capacity(shape.iter().product());
    for_each_index(&shape, |i| {
        let at = i.iter().zip(idx).zip(&st).map(|((&v, ix), s)| ix[v] * s);
        data.push(t.data[at.sum::<usize>()]);
    });
    Tensor::new(shape, data)
}

/// `axis` (negative counts from the end) as an index into `rank` axes, the batch axis
/// included; the batch axis itself is an error, since Myelin tensors have none.
pub fn data_axis(node: &Node, axis: i64, rank: usize) -> Result<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    ensure!(
        (0..rank as i64).contains(&a),
        "{}: axis {axis} is out of range for rank {rank}",
        node.describe()
    );
    ensure!(
        a != 0,
        "{}: axis {axis} is the batch axis; Myelin tensors have no batch axis, so only the \
         other axes are supported",
        node.describe()
    );
    Ok(a as usize)
}

/// Integers given by constant input `i` (newer opsets) or, when that input is absent, by
/// attribute `attr` (older opsets).
pub fn const_ints(graph: &Graph, node: &Node, i: usize, attr: &str) -> Result<Option<Vec<i64>>> {
    let Some(name) = node.input(i) else {
        return node.ints(attr);
    };
    let c = graph.consts.get(name).ok_or_else(|| {
        anyhow!(
            "{}: `{attr}` (`{name}`) must be a constant (dynamic shapes are not supported; \
             export with static shapes)",
            node.describe()
        )
    })?;
    Ok(Some(c.i64().with_context(|| node.describe())?))
}

/// The permutation of a Transpose over `rank` axes (batch included), which must keep the
/// batch axis first.
pub fn transpose_perm(node: &Node, rank: usize) -> Result<Vec<usize>> {
    let perm: Vec<usize> = match node.ints("perm")? {
        Some(p) => p
            .iter()
            .map(|&v| usize::try_from(v))
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow!("{}: negative axis in perm {p:?}", node.describe()))?,
        None => (0..rank).rev().collect(),
    };
    let mut sorted = perm.clone();
    sorted.sort_unstable();
    ensure!(
        sorted.iter().copied().eq(0..rank),
        "{}: perm {perm:?} is not a permutation of {rank} axes",
        node.describe()
    );
    ensure!(
        perm[0] == 0,
        "{}: perm {perm:?} moves the batch axis; only permutations that keep axis 0 first \
         are supported",
        node.describe()
    );
    Ok(perm)
}

/// The one axis (index into `rank` axes, batch included) of a ReduceSum, ReduceMean or
/// ReduceMax, and whether it is kept (`keepdims`).
pub fn reduce_axis(graph: &Graph, node: &Node, rank: usize) -> Result<(usize, bool)> {
    let axes = const_ints(graph, node, 1, "axes")?.unwrap_or_default();
    ensure!(
        axes.len() == 1,
        "{}: reduces over axes {axes:?} (none means all, the batch axis included); only one \
         axis is supported: chain one reduction per axis",
        node.describe()
    );
    Ok((
        data_axis(node, axes[0], rank)?,
        node.int("keepdims", 1)? != 0,
    ))
}

/// `(before, after)` per axis (batch included) of a constant-mode Pad by zero.
pub fn pad_amounts(graph: &Graph, node: &Node, rank: usize) -> Result<Vec<(usize, usize)>> {
    let mode = node.string("mode")?.unwrap_or_else(|| "constant".into());
    ensure!(
        mode == "constant",
        "{}: mode `{mode}` is not supported; only constant padding with 0 is",
        node.describe()
    );
    let value = match node.input(2) {
        Some(name) => {
            let c = graph.consts.get(name).ok_or_else(|| {
                anyhow!(
                    "{}: the pad value `{name}` must be a constant",
                    node.describe()
                )
            })?;
            c.f32().first().copied().unwrap_or(0.0)
        }
        None => node.float("value", 0.0)?,
    };
    ensure!(
        value == 0.0,
        "{}: pad value {value} is not supported; only 0 (real zero) is",
        node.describe()
    );
    let pads = const_ints(graph, node, 1, "pads")?
        .ok_or_else(|| anyhow!("{}: missing pads", node.describe()))?;
    let axes: Vec<usize> = match const_ints(graph, node, 3, "axes")? {
        Some(axes) => axes
            .iter()
            .map(|&a| usize::try_from(if a < 0 { a + rank as i64 } else { a }))
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow!("{}: axes {axes:?} out of range", node.describe()))?,
        None => (0..rank).collect(),
    };
    ensure!(
        pads.len() == 2 * axes.len() && axes.iter().all(|&a| a < rank),
        "{}: {} pads for axes {axes:?} of a rank-{rank} tensor",
        node.describe(),
        pads.len()
    );
    ensure!(
        pads.iter().all(|&p| p >= 0),
        "{}: negative pads {pads:?} (cropping) are not supported; use Slice",
        node.describe()
    );
    let mut out = vec![(0, 0); rank];
    for (i, &a) in axes.iter().enumerate() {
        out[a] = (pads[i] as usize, pads[i + axes.len()] as usize);
    }
    ensure!(
        out[0] == (0, 0),
        "{}: pads {pads:?} pad the batch axis; only the other axes can be padded",
        node.describe()
    );
    Ok(out)
}

/// `[fh, fw]` of a Resize or Upsample that repeats every element of an `[N, C, H, W]`
/// tensor (nearest neighbour, integer scales on H and W).
pub fn resize_factors(graph: &Graph, node: &Node, rank: usize) -> Result<[usize; 2]> {
    ensure!(
        rank == 4,
        "{}: only [N, C, H, W] inputs are supported, got rank {rank}",
        node.describe()
    );
    let mode = node.string("mode")?.unwrap_or_else(|| "nearest".into());
    ensure!(
        mode == "nearest",
        "{}: mode `{mode}` is not supported; only nearest is",
        node.describe()
    );
    if node.op == "Resize" && graph.opset >= 11 {
        let ctm = node
            .string("coordinate_transformation_mode")?
            .unwrap_or_else(|| "half_pixel".into());
        let nearest = node
            .string("nearest_mode")?
            .unwrap_or_else(|| "round_prefer_floor".into());
        // With an integer factor f, output x maps to x / f (asymmetric, floored) or
        // (x + 0.5) / f − 0.5 (half pixel), strictly within 0.5 of ⌊x / f⌋: every rounding
        // takes that element.
        let ok = matches!(ctm.as_str(), "half_pixel" | "pytorch_half_pixel")
            || (ctm == "asymmetric" && nearest == "floor");
        ensure!(
            ok,
            "{}: coordinate_transformation_mode `{ctm}` with nearest_mode `{nearest}` is not \
             supported; export with half_pixel, pytorch_half_pixel, or asymmetric with floor",
            node.describe()
        );
    }
    let scales_input = if node.op == "Resize" && graph.opset >= 11 {
        2
    } else {
        1
    };
    let scales = match node.input(scales_input) {
        Some(name) => graph
            .consts
            .get(name)
            .ok_or_else(|| {
                anyhow!(
                    "{}: scales `{name}` must be a constant (dynamic shapes are not supported)",
                    node.describe()
                )
            })?
            .f32(),
        None => match node.attrs.get("scales") {
            Some(Attr::Floats(f)) => f.clone(),
            _ => Vec::new(),
        },
    };
    ensure!(
        !scales.is_empty(),
        "{}: no constant scales (resizing to `sizes` is not supported; export with a scale \
         factor)",
        node.describe()
    );
    let int = |s: f32| (s >= 1.0 && s.fract() == 0.0).then_some(s as usize);
    match (
        scales.as_slice(),
        scales.get(2).copied().and_then(int),
        scales.get(3).copied().and_then(int),
    ) {
        ([n, c, _, _], Some(fh), Some(fw)) if *n == 1.0 && *c == 1.0 => Ok([fh, fw]),
        _ => bail!(
            "{}: scales {scales:?}: only integer factors ≥ 1 on H and W ([1, 1, fh, fw]) are \
             supported",
            node.describe()
        ),
    }
}

/// Per axis of a tensor of `shape` (batch included), the positions a Slice takes as
/// `(start, count, step)`; the batch axis is taken whole.
pub fn slice_ranges(
    graph: &Graph,
    node: &Node,
    shape: &[usize],
) -> Result<Vec<(usize, usize, usize)>> {
    let rank = shape.len();
    let get =
        |i: usize, attr: &str| -> Result<Option<Vec<i64>>> { const_ints(graph, node, i, attr) };
    let missing = |what: &str| anyhow!("{}: missing {what}", node.describe());
    let starts = get(1, "starts")?.ok_or_else(|| missing("starts"))?;
    let ends = get(2, "ends")?.ok_or_else(|| missing("ends"))?;
    let axes = get(3, "axes")?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = get(4, "steps")?.unwrap_or_else(|| vec![1; starts.len()]);
    ensure!(
        ends.len() == starts.len() && axes.len() == starts.len() && steps.len() == starts.len(),
        "{}: starts, ends, axes and steps differ in length",
        node.describe()
    );
    let mut out: Vec<(usize, usize, usize)> = shape.iter().map(|&d| (0, d, 1)).collect();
    for i in 0..axes.len() {
        let (start, end, step) = (starts[i], ends[i], steps[i]);
        let a = if axes[i] < 0 {
            axes[i] + rank as i64
        } else {
            axes[i]
        };
        ensure!(
            (0..rank as i64).contains(&a),
            "{}: axis {} is out of range for rank {rank}",
            node.describe(),
            axes[i]
        );
        ensure!(
            step >= 1,
            "{}: step {step}: only steps ≥ 1 are supported",
            node.describe()
        );
        if a == 0 {
            ensure!(
                start == 0 && step == 1 && end >= i32::MAX as i64,
                "{}: slices the batch axis; only the other axes can be sliced",
                node.describe()
            );
            continue;
        }
        let dim = shape[a as usize] as i64;
        let clamp = |v: i64| (if v < 0 { v + dim } else { v }).clamp(0, dim);
        let (s, e) = (clamp(start), clamp(end));
        ensure!(
            e > s,
            "{}: the slice [{start}:{end}:{step}] of axis {a} (size {dim}) is empty",
            node.describe()
        );
        let count = (e - s + step - 1) / step;
        out[a as usize] = (
            s as usize,
            count as usize,
            if count == 1 { 1 } else { step as usize },
        );
    }
    Ok(out)
}

/// The output shape of a Squeeze or Unsqueeze of a tensor of `shape` (batch included) over
/// explicit axes, none of them the batch axis.
pub fn squeeze_shape(graph: &Graph, node: &Node, shape: &[usize]) -> Result<Vec<usize>> {
    let axes = const_ints(graph, node, 1, "axes")?.ok_or_else(|| {
        anyhow!(
            "{}: no axes (a Squeeze of every size-1 axis could drop the batch axis); export \
             with explicit axes",
            node.describe()
        )
    })?;
    let squeeze = node.op == "Squeeze";
    let rank = if squeeze {
        shape.len()
    } else {
        shape.len() + axes.len()
    };
    let mut axes = axes
        .iter()
        .map(|&a| data_axis(node, a, rank))
        .collect::<Result<Vec<_>>>()?;
    axes.sort_unstable();
    ensure!(
        axes.windows(2).all(|p| p[0] < p[1]),
        "{}: repeated axes",
        node.describe()
    );
    if squeeze {
        ensure!(
            axes.iter().all(|&a| shape[a] == 1),
            "{}: squeezes axes {axes:?} of {shape:?}, not all of size 1",
            node.describe()
        );
        Ok((0..rank)
            .filter(|a| !axes.contains(a))
            .map(|a| shape[a])
            .collect())
    } else {
        let mut dims = shape.iter();
        Ok((0..rank)
            .map(|a| {
                if axes.contains(&a) {
                    1
                } else {
                    *dims.next().unwrap_or(&1)
                }
            })
            .collect())
    }
}

/// A Conv's weights `[OC, IC/G, (KH,) KW]` with its `dilations` applied: each kernel axis
/// zero-expanded from `k` to `(k − 1) · d + 1` taps (tap `i` moves to `i · d`). The inserted
/// taps are zeros, so an undilated convolution with these weights is exactly the dilated one
/// (only more MACs), and the integer Conv needs no dilation.
pub fn dilated_weights(node: &Node, dims: &[usize], w: &[f32]) -> Result<(Vec<usize>, Vec<f32>)> {
    let spatial = dims.len().saturating_sub(2);
    let d: Vec<usize> = match node.ints("dilations")? {
        Some(d) => d.iter().map(|&v| v.max(0) as usize).collect(),
        None => vec![1; spatial],
    };
    ensure!(
        d.len() == spatial && d.iter().all(|&v| v >= 1),
        "{}: dilations {d:?} do not fit weights {dims:?}",
        node.describe()
    );
    if d.iter().all(|&v| v == 1) {
        return Ok((dims.to_vec(), w.to_vec()));
    }
    let mut out_dims = dims.to_vec();
    for (a, &da) in d.iter().enumerate() {
        out_dims[2 + a] = (dims[2 + a] - 1) * da + 1;
    }
    let mut out = vec![0.0; out_dims.iter().product()];
    let (st_in, st_out) = (strides(dims), strides(&out_dims));
    for_each_index(dims, |i| {
        let from: usize = i.iter().zip(&st_in).map(|(v, s)| v * s).sum();
        let to: usize = (i.iter().enumerate())
            .map(|(a, &v)| v * if a >= 2 { d[a - 2] } else { 1 } * st_out[a])
            .sum();
        out[to] = w[from];
    });
    Ok((out_dims, out))
}

fn conv(node: &Node, x: &Tensor, w: &Tensor, b: Option<Tensor>) -> Result<Tensor> {
    let [n, c, h, wd] = nchw(node, &x.shape)?;
    let spatial = x.shape.len() - 2;
    ensure!(
        w.shape.len() == x.shape.len(),
        "{}: weight rank differs from input rank",
        node.describe()
    );
    let oc = w.shape[0];
    let g = node.int("group", 1)? as usize;
    ensure!(
        g >= 1 && c.is_multiple_of(g) && oc.is_multiple_of(g) && w.shape[1] == c / g,
        "{}: group/channel mismatch",
        node.describe()
    );
    let win = Window::from_node(node, spatial, Some(&w.shape[2..]), [h, wd])?;
    let [oh, ow] = win.output(node, h, wd)?;
    let [kh, kw] = win.kernel;
    let (icg, ocg) = (c / g, oc / g);
    let bias = b.map(|b| b.data).unwrap_or(vec![0.0; oc]);
    ensure!(
        bias.len() == oc,
        "{}: bias length {} != {oc}",
        node.describe(),
        bias.len()
    );
    let mut y = Vec::with_capacity(n * oc * oh * ow);
    for s in 0..n {
        for (o, &b0) in bias.iter().enumerate() {
            let grp = o / ocg;
            for r in 0..oh {
                for q in 0..ow {
                    let mut acc = b0 as f64;
                    for ic in 0..icg {
                        let ci = grp * icg + ic;
                        for i in 0..kh {
                            let yy = (r * win.stride[0] + i) as isize - win.pads[0] as isize;
                            if yy < 0 || yy >= h as isize {
                                continue;
                            }
                            for j in 0..kw {
                                let xx = (q * win.stride[1] + j) as isize - win.pads[1] as isize;
                                if xx < 0 || xx >= wd as isize {
                                    continue;
                                }
                                let xv =
                                    x.data[((s * c + ci) * h + yy as usize) * wd + xx as usize];
                                acc +=
                                    w.data[((o * icg + ic) * kh + i) * kw + j] as f64 * xv as f64;
                            }
                        }
                    }
                    y.push(acc as f32);
                }
            }
        }
    }
    let shape = if spatial == 1 {
        vec![n, oc, ow]
    } else {
        vec![n, oc, oh, ow]
    };
    Ok(Tensor::new(shape, y))
}

fn pool(node: &Node, x: &Tensor) -> Result<Tensor> {
    ensure!(
        x.shape.len() == 4,
        "{}: only 2-D pooling ([N, C, H, W]) is supported",
        node.describe()
    );
    let [n, c, h, w] = nchw(node, &x.shape)?;
    let win = Window::from_node(node, 2, None, [h, w])?;
    let [oh, ow] = win.output(node, h, w)?;
    let is_max = node.op == "MaxPool";
    ensure!(
        !is_max || node.outputs.len() == 1,
        "{}: the Indices output is not supported",
        node.describe()
    );
    let include_pad = win.count_include_pad(node)?;
    let mut y = Vec::with_capacity(n * c * oh * ow);
    for plane in x.data.chunks(h * w) {
        for r in 0..oh {
            for q in 0..ow {
                let (mut max, mut sum, mut count) = (f32::NEG_INFINITY, 0f64, 0usize);
                for i in 0..win.kernel[0] {
                    for j in 0..win.kernel[1] {
                        let yy = (r * win.stride[0] + i) as isize - win.pads[0] as isize;
                        let xx = (q * win.stride[1] + j) as isize - win.pads[1] as isize;
                        if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                            count += include_pad as usize;
                            continue;
                        }
                        let v = plane[yy as usize * w + xx as usize];
                        max = max.max(v);
                        sum += v as f64;
                        count += 1;
                    }
                }
                y.push(if is_max {
                    max
                } else {
                    (sum / count as f64) as f32
                });
            }
        }
    }
    Ok(Tensor::new(vec![n, c, oh, ow], y))
}

/// The axis Softmax normalises over, as an index into `rank` axes, if it is the last one.
pub fn softmax_is_last_axis(node: &Node, opset: i64, rank: usize) -> Result<bool> {
    let default = if opset >= 13 { -1 } else { 1 };
    let mut axis = node.int("axis", default)?;
    if axis < 0 {
        axis += rank as i64;
    }
    ensure!(
        (0..rank as i64).contains(&axis),
        "{}: axis out of range",
        node.describe()
    );
    // Before opset 13 the input is coerced to 2-D at `axis`; that is the last axis only when
    // `axis` is.
    Ok(axis as usize == rank - 1)
}

fn softmax(node: &Node, opset: i64, x: &Tensor) -> Result<Tensor> {
    let rank = x.shape.len();
    let default = if opset >= 13 { -1 } else { 1 };
    let mut axis = node.int("axis", default)?;
    if axis < 0 {
        axis += rank as i64;
    }
    ensure!(
        (0..rank as i64).contains(&axis),
        "{}: axis out of range",
        node.describe()
    );
    let axis = axis as usize;
    // (outer, len, inner) view: opset ≥ 13 normalises one axis, older opsets everything from
    // `axis` on.
    let (len, inner) = if opset >= 13 {
        (x.shape[axis], x.shape[axis + 1..].iter().product())
    } else {
        (x.shape[axis..].iter().product(), 1)
    };
    let outer = x.data.len() / (len * inner).max(1);
    let mut y = vec![0f32; x.data.len()];
    for o in 0..outer {
        for i in 0..inner {
            let at = |k: usize| (o * len + k) * inner + i;
            let m = (0..len)
                .map(|k| x.data[at(k)])
                .fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f64> = (0..len)
                .map(|k| ((x.data[at(k)] - m) as f64).exp())
                .collect();
            let s: f64 = e.iter().sum();
            for k in 0..len {
                y[at(k)] = (e[k] / s) as f32;
            }
        }
    }
    Ok(Tensor::new(x.shape.clone(), y))
}
