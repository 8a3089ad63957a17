//! ONNX LSTM and GRU (forward, default activations, fixed sequence length), unrolled when the
//! graph is loaded into the ONNX ops the converter already evaluates and lowers: one MatMul +
//! Add for the input projections of every timestep at once, then per step Slice, Gemm (the
//! recurrent projection), Add, Sigmoid / Tanh (lookup tables), Mul, Sub. The float
//! interpreter then runs exactly the unrolled computation, so every intermediate the lowering
//! quantizes has its own calibrated range, and no int8 operator is specific to recurrence.
//!
//! ONNX recurrent nodes are sequence-first (layout 0: `X` is `[T, N, F]`, `Y` `[T, 1, N, H]`,
//! `Y_h` `[1, N, H]`): their batch axis is not first, and Myelin tensors have no batch axis.
//! `torch.onnx.export` of a `batch_first=True` module writes exactly that layout between two
//! transposes, which the unrolling absorbs (see [`plan`]): it reads the batch-first input
//! `[N, T, F]` and produces `Y` as `[N, T, H]` and `Y_h`, `Y_c` as `[N, H]`.

use std::collections::{HashMap, HashSet};

use anyhow::{anyhow, bail, ensure, Result};

use super::float::const_ints;
use super::graph::{Attr, Const, ConstData, Graph, Node};

/// The op types unrolled here.
pub(super) const OPS: &[&str] = &["LSTM", "GRU"];

/// How the nodes around the recurrent nodes change (see [`plan`]).
#[derive(Default)]
pub(super) struct Plan {
    /// Nodes dropped: the Transpose that makes `X` sequence-first, the Squeeze of `Y`.
    pub(super) skip: HashSet<String>,
    /// Nodes replaced by an Identity of the given tensor of an unrolling (the readers of `Y`,
    /// `Y_h`, `Y_c` that make them batch-first again).
    pub(super) identity: HashMap<String, String>,
    /// Per recurrent node: its batch-first input `[N, T, F]`.
    pub(super) source: HashMap<String, String>,
}

/// The batch-first tensor an unrolled node's output `i` (`Y`, `Y_h`, `Y_c`) stands for.
fn output_name(node: &Node, i: usize) -> String {
    format!("{}/{}", node.name, ["Y", "Y_h", "Y_c"][i])
}

/// Finds, for every LSTM/GRU node, the pattern `torch.onnx.export` writes around it for a
/// `batch_first=True` module, the only forms whose batch axis can be dropped:
///
/// ```text
/// X   = Transpose(x, perm=[1, 0, 2])        x: [N, T, F], read only by the node
/// Y  → Squeeze(axes=[1]) → Transpose(perm=[1, 0, 2])       [N, T, H]
/// Y_h, Y_c → Squeeze(axes=[0]) or Gather(scalar 0 or −1, axis=0)      [N, H]
/// ```
///
/// Anything else is an error naming the node and the form to export.
pub(super) fn plan(graph: &Graph) -> Result<Plan> {
    let mut plan = Plan::default();
    let consumers = graph.consumers();
    let readers = |t: &str| -> Vec<&Node> {
        (graph.nodes.iter())
            .filter(|n| n.inputs.iter().any(|i| i == t))
            .collect()
    };
    let is_perm_102 =
        |n: &Node| n.op == "Transpose" && n.ints("perm").ok() == Some(Some(vec![1, 0, 2]));
    let axes = |n: &Node| const_ints(graph, n, 1, "axes").ok().flatten();
    for node in graph.nodes.iter().filter(|n| OPS.contains(&n.op.as_str())) {
        let x = node
            .input(0)
            .ok_or_else(|| anyhow!("{}: missing X", node.describe()))?;
        let transpose = (graph.nodes.iter())
            .find(|n| n.outputs.first().map(String::as_str) == Some(x))
            .filter(|n| is_perm_102(n) && consumers.get(x) == Some(&1));
        let Some(transpose) = transpose else {
            bail!(
                "{}: X `{x}` must be a batch-first tensor [N, T, F] made sequence-first by \
                 Transpose(perm=[1, 0, 2]), as torch.onnx.export writes for batch_first=True \
                 (Myelin tensors have no batch axis, and X's is axis 1)",
                node.describe()
            );
        };
        plan.skip.insert(transpose.name.clone());
        plan.source
            .insert(node.name.clone(), transpose.inputs[0].clone());
        for (i, out) in node.outputs.iter().enumerate().take(3) {
            if out.is_empty() {
                continue;
            }
            ensure!(
                *out != graph.output,
                "{}: its output `{out}` is the graph output; read it batch-first (Squeeze, \
                 Transpose) as torch.onnx.export writes for batch_first=True",
                node.describe()
            );
            for r in readers(out) {
                if i == 0 {
                    let transpose = (r.op == "Squeeze" && axes(r) == Some(vec![1]))
                        .then(|| readers(&r.outputs[0]))
                        .filter(|t| t.len() == 1 && consumers.get(&r.outputs[0]) == Some(&1))
                        .map(|t| t[0])
                        .filter(|t| is_perm_102(t));
                    let Some(transpose) = transpose else {
                        bail!(
                            "{}: Y is read by {}; only Squeeze(axes=[1]) then \
                             Transpose(perm=[1, 0, 2]) (torch's batch_first output) is supported",
                            node.describe(),
                            r.describe()
                        );
                    };
                    plan.skip.insert(r.name.clone());
                    plan.identity
                        .insert(transpose.name.clone(), output_name(node, 0));
                } else {
                    let index = r
                        .input(1)
                        .and_then(|n| graph.consts.get(n))
                        .filter(|c| c.dims.is_empty())
                        .and_then(|c| c.i64().ok());
                    let ok = (r.op == "Squeeze" && axes(r) == Some(vec![0]))
                        || (r.op == "Gather"
                            && r.int("axis", 0).ok() == Some(0)
                            && matches!(index.as_deref(), Some([0] | [-1])));
                    ensure!(
                        ok,
                        "{}: output {i} is read by {}; only Squeeze(axes=[0]) or Gather(0 or -1, \
                         axis=0) of Y_h / Y_c is supported (both give [N, H])",
                        node.describe(),
                        r.describe()
                    );
                    plan.identity.insert(r.name.clone(), output_name(node, i));
                }
            }
        }
    }
    Ok(plan)
}

/// Builds the nodes of one unrolling, naming each tensor and constant after the recurrent
/// node (`<node>/t3/h`), so that conversion reports and errors point at it.
struct Unroll<'g> {
    graph: &'g mut Graph,
    name: String,
    nodes: Vec<Node>,
}

impl Unroll<'_> {
    fn konst(&mut self, tag: &str, dims: Vec<usize>, data: ConstData) -> String {
        let name = format!("{}/{tag}", self.name);
        self.graph.consts.insert(name.clone(), Const { dims, data });
        name
    }

    fn op(&mut self, op: &str, tag: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        let name = format!("{}/{tag}", self.name);
        self.nodes.push(Node {
            name: name.clone(),
            op: op.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![name.clone()],
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        });
        name
    }

    /// Elements `start..end` of axis 1 of a `[N, L]` tensor.
    fn slice(&mut self, tag: &str, x: &str, start: usize, end: usize) -> String {
        let attrs = vec![
            ("starts", Attr::Ints(vec![start as i64])),
            ("ends", Attr::Ints(vec![end as i64])),
            ("axes", Attr::Ints(vec![1])),
        ];
        self.op("Slice", tag, &[x], attrs)
    }

    /// `x · Wᵀ + bias` of `x: [N, K]` by `w: [n, K]` (`n` rows of a weight matrix).
    fn gemm(
        &mut self,
        tag: &str,
        x: &str,
        (w, n): (Vec<f32>, usize),
        bias: Option<Vec<f32>>,
    ) -> String {
        let k = w.len() / n;
        let w = self.konst(&format!("{tag}.weight"), vec![n, k], ConstData::F32(w));
        let mut inputs = vec![x.to_string(), w];
        if let Some(b) = bias {
            inputs.push(self.konst(&format!("{tag}.bias"), vec![n], ConstData::F32(b)));
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.op("Gemm", tag, &inputs, vec![("transB", Attr::Int(1))])
    }

    fn binary(&mut self, op: &str, tag: &str, a: &str, b: &str) -> String {
        self.op(op, tag, &[a, b], vec![])
    }

    fn unary(&mut self, op: &str, tag: &str, x: &str) -> String {
        self.op(op, tag, &[x], vec![])
    }

    /// The state `[N, H]` before the first step, as an activation: a Gemm of `x` (`[N, 1]`)
    /// by zero weights whose bias is the constant initial state. Its calibrated range is the
    /// state's own, so it quantizes exactly (zeros exactly to the zero point).
    fn initial(&mut self, tag: &str, x: &str, state: Vec<f32>) -> String {
        let h = state.len();
        self.gemm(tag, x, (vec![0.0; h], h), Some(state))
    }

    /// `Y` as `[N, T, H]`: the states joined along axis 1 and reshaped.
    fn stack(&mut self, states: &[String], h: usize) -> String {
        let refs: Vec<&str> = states.iter().map(String::as_str).collect();
        let joined = if refs.len() == 1 {
            refs[0].to_string()
        } else {
            self.op("Concat", "Y.concat", &refs, vec![("axis", Attr::Int(1))])
        };
        let shape = self.konst(
            "Y.shape",
            vec![3],
            ConstData::I64(vec![0, states.len() as i64, h as i64]),
        );
        // named as `output_name(node, 0)`
        self.op("Reshape", "Y", &[&joined, &shape], vec![])
    }
}

/// A constant input of a recurrent node as floats, `None` when omitted.
fn const_input(graph: &Graph, node: &Node, i: usize, what: &str) -> Result<Option<Vec<f32>>> {
    let Some(name) = node.input(i) else {
        return Ok(None);
    };
    let c = graph.consts.get(name).ok_or_else(|| {
        anyhow!(
            "{}: {what} `{name}` must be a constant (an initial state computed by the model is \
             not supported)",
            node.describe()
        )
    })?;
    Ok(Some(c.f32()))
}

/// Checks the attributes the unrolling supports: forward direction, layout 0, the default
/// activations, no clipping (and no coupled input/forget gate or peepholes for LSTM).
fn check(graph: &Graph, node: &Node, t: usize) -> Result<()> {
    let direction = node
        .string("direction")?
        .unwrap_or_else(|| "forward".into());
    ensure!(
        direction == "forward",
        "{}: direction `{direction}`: only forward is supported (export a unidirectional \
         module)",
        node.describe()
    );
    ensure!(
        node.int("layout", 0)? == 0,
        "{}: layout 1 is not supported (torch.onnx.export writes layout 0)",
        node.describe()
    );
    let defaults: &[&str] = if node.op == "LSTM" {
        &["Sigmoid", "Tanh", "Tanh"]
    } else {
        &["Sigmoid", "Tanh"]
    };
    if let Some(a) = node.strings("activations")? {
        ensure!(
            a == defaults,
            "{}: activations {a:?}: only the defaults {defaults:?} are supported",
            node.describe()
        );
    }
    ensure!(
        !node.attrs.contains_key("clip"),
        "{}: clip is not supported",
        node.describe()
    );
    ensure!(
        node.int("input_forget", 0)? == 0,
        "{}: input_forget=1 is not supported",
        node.describe()
    );
    ensure!(
        node.op != "LSTM" || node.input(7).is_none(),
        "{}: peephole weights P are not supported",
        node.describe()
    );
    if let Some(lens) = const_input(graph, node, 4, "sequence_lens")? {
        ensure!(
            lens.iter().all(|&l| l as usize == t),
            "{}: sequence_lens {lens:?}: only the full length {t} is supported",
            node.describe()
        );
    }
    Ok(())
}

/// Unrolls the LSTM or GRU `node` whose batch-first input `x` has shape `[_, T, F]`, adding
/// its weights to `graph`'s constants; returns the nodes, in order. Equations (ONNX, default
/// activations; `·` per element, `W`, `R` the gate rows of the weights, `Wb`, `Rb` the biases):
///
/// ```text
/// GRU  z, r = σ(x Wᵀ + h Rᵀ + Wb + Rb)              (gate order z, r, h)
///      ĥ = tanh(x Whᵀ + r · (h Rhᵀ + Rbh) + Wbh)      linear_before_reset = 1 (torch)
///      ĥ = tanh(x Whᵀ + (r · h) Rhᵀ + Rbh + Wbh)      linear_before_reset = 0
///      h' = ĥ + z · (h − ĥ)                          (= (1 − z) · ĥ + z · h)
/// LSTM i, o, f = σ(…), c̃ = tanh(…)                   (gate order i, o, f, c)
///      c' = f · c + i · c̃,  h' = o · tanh(c')
/// ```
///
/// The input projections of all steps are one MatMul + Add (a Dense over `[N, T, F]`, with
/// every bias that does not sit behind `r`), flattened to `[N, T · G · H]` so that each
/// step's gates are a Slice of axis 1.
pub(super) fn expand(
    graph: &mut Graph,
    node: &Node,
    x: &str,
    x_shape: &[usize],
) -> Result<Vec<Node>> {
    let lstm = node.op == "LSTM";
    let gates = if lstm { 4 } else { 3 };
    let [_, t, f] = *x_shape else {
        bail!(
            "{}: the batch-first input must be [N, T, F]; got {x_shape:?}",
            node.describe()
        );
    };
    check(graph, node, t)?;
    let w = const_input(graph, node, 1, "W")?.ok_or_else(|| anyhow!("missing W"))?;
    let r = const_input(graph, node, 2, "R")?.ok_or_else(|| anyhow!("missing R"))?;
    let h = w.len() / (gates * f).max(1);
    ensure!(
        h >= 1
            && w.len() == gates * h * f
            && r.len() == gates * h * h
            && node.int("hidden_size", h as i64)? == h as i64,
        "{}: W ({} values) and R ({}) do not fit {gates} gates of input size {f}",
        node.describe(),
        w.len(),
        r.len()
    );
    let b = const_input(graph, node, 3, "B")?.unwrap_or(vec![0.0; 2 * gates * h]);
    ensure!(
        b.len() == 2 * gates * h,
        "{}: B has {} values, not {}",
        node.describe(),
        b.len(),
        2 * gates * h
    );
    let state = |i: usize, what: &str| -> Result<Vec<f32>> {
        let v = const_input(graph, node, i, what)?.unwrap_or(vec![0.0; h]);
        ensure!(
            v.len() == h,
            "{}: {what} has {} values; only one state [1, 1, {h}] broadcast over the batch is              supported",
            node.describe(),
            v.len()
        );
        Ok(v)
    };
    let h0 = state(5, "initial_h")?;
    let c0 = if lstm {
        state(6, "initial_c")?
    } else {
        Vec::new()
    };
    let lbr = node.int("linear_before_reset", 0)? != 0;
    let (wb, rb) = b.split_at(gates * h);
    let mut u = Unroll {
        graph,
        name: node.name.clone(),
        nodes: Vec::new(),
    };

    // input projections of every step: [N, T, F] × [F, G·H] + bias, flattened
    let g = gates * h;
    let mut wt = vec![0.0; f * g];
    for (o, row) in w.chunks(f).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            wt[i * g + o] = v;
        }
    }
    let bias_x: Vec<f32> = (0..g)
        .map(|j| {
            wb[j]
                + if lstm || j < 2 * h || !lbr {
                    rb[j]
                } else {
                    0.0
                }
        })
        .collect();
    let wt = u.konst("W_t", vec![f, g], ConstData::F32(wt));
    let bias_x = u.konst("B_x", vec![g], ConstData::F32(bias_x));
    let gx = u.binary("MatMul", "x_proj", x, &wt);
    let gx = u.binary("Add", "x_proj_bias", &gx, &bias_x);
    let flat = u.konst(
        "x_proj.shape",
        vec![2],
        ConstData::I64(vec![0, (t * g) as i64]),
    );
    let gx = u.binary("Reshape", "x_proj_flat", &gx, &flat);

    let one = u.slice("state_src", &gx, 0, 1);
    let mut hs = Vec::with_capacity(t);
    let mut hp = u.initial("h0", &one, h0);
    let mut cp = if lstm {
        u.initial("c0", &one, c0)
    } else {
        String::new()
    };
    let rows = |from: usize, to: usize| (r[from * h * h..to * h * h].to_vec(), (to - from) * h);
    for s in 0..t {
        let at = |tag: &str| format!("t{s}/{tag}");
        let base = s * g;
        if lstm {
            let gxs = u.slice(&at("x_gates"), &gx, base, base + g);
            let ghs = u.gemm(&at("h_gates"), &hp, rows(0, 4), None);
            let pre = u.binary("Add", &at("gates"), &gxs, &ghs);
            let iof = u.slice(&at("iof_pre"), &pre, 0, 3 * h);
            let iof = u.unary("Sigmoid", &at("iof"), &iof);
            let cc = u.slice(&at("c_pre"), &pre, 3 * h, 4 * h);
            let cc = u.unary("Tanh", &at("c_cand"), &cc);
            let i = u.slice(&at("i"), &iof, 0, h);
            let o = u.slice(&at("o"), &iof, h, 2 * h);
            let fg = u.slice(&at("f"), &iof, 2 * h, 3 * h);
            let keep = u.binary("Mul", &at("f_c"), &fg, &cp);
            let add = u.binary("Mul", &at("i_c"), &i, &cc);
            cp = u.binary("Add", &at("c"), &keep, &add);
            let tc = u.unary("Tanh", &at("tanh_c"), &cp);
            hp = u.binary("Mul", &at("h"), &o, &tc);
        } else {
            let gx_zr = u.slice(&at("x_zr"), &gx, base, base + 2 * h);
            let gx_h = u.slice(&at("x_h"), &gx, base + 2 * h, base + g);
            let gh_zr = u.gemm(&at("h_zr"), &hp, rows(0, 2), None);
            let zr = u.binary("Add", &at("zr_pre"), &gx_zr, &gh_zr);
            let zr = u.unary("Sigmoid", &at("zr"), &zr);
            let z = u.slice(&at("z"), &zr, 0, h);
            let rg = u.slice(&at("r"), &zr, h, 2 * h);
            let rh = if lbr {
                let gh_h = u.gemm(&at("h_h"), &hp, rows(2, 3), Some(rb[2 * h..].to_vec()));
                u.binary("Mul", &at("r_h"), &rg, &gh_h)
            } else {
                let rhp = u.binary("Mul", &at("r_hprev"), &rg, &hp);
                u.gemm(&at("r_h"), &rhp, rows(2, 3), None)
            };
            let cand = u.binary("Add", &at("cand_pre"), &gx_h, &rh);
            let cand = u.unary("Tanh", &at("cand"), &cand);
            let d = u.binary("Sub", &at("h_minus_cand"), &hp, &cand);
            let zd = u.binary("Mul", &at("z_d"), &z, &d);
            hp = u.binary("Add", &at("h"), &cand, &zd);
        }
        hs.push(hp.clone());
    }
    u.stack(&hs, h);
    let last = [("Y_h", hp), ("Y_c", cp)];
    for (i, (tag, v)) in last.iter().enumerate() {
        if !v.is_empty() && node.outputs.get(i + 1).is_some_and(|o| !o.is_empty()) {
            u.op("Identity", tag, &[v.as_str()], vec![]);
        }
    }
    Ok(u.nodes)
}
