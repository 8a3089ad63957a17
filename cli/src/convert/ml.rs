//! ONNX-ML (`ai.onnx.ml`): the tree ensembles, linear models and preprocessing nodes that
//! scikit-learn (skl2onnx), XGBoost and LightGBM (onnxmltools) export.
//!
//! **Load-time rewrite** ([`expand`], run first by `shape_fold::fold`): a classifier or
//! regressor becomes the node that computes its raw scores, then its `post_transform` as an
//! op of the [`ops`] table — LinearClassifier and LinearRegressor a Gemm, TreeEnsembleClassifier
//! a TreeEnsembleRegressor with one target per class; LOGISTIC a Sigmoid, SOFTMAX a Softmax
//! over the classes. So the raw scores are a tensor of their own, which calibration measures
//! (an int8 tree ensemble's output range is that of its sums, not of the probabilities), and
//! the post-transforms reuse the Lut and Softmax lowerings. A binary classifier whose trees
//! weigh only class 0 (every binary export of these converters) gets the two columns
//! onnxruntime outputs for it, from trees whose leaves hold `[−w, w]`: base `[−b, b]` then a
//! Sigmoid, `[σ(−s), σ(s)]`, for LOGISTIC (boosting); base `[1 − b, b]`, `[1 − s, s]`, for
//! NONE with non-negative weights (random forests' averaged probabilities). A classifier's
//! `label` output must be unread: the graph output is its probabilities (see
//! `graph::graph_output`), and the label branch was pruned.
//!
//! **Rows** (float evaluations here, lowerings in `lower`): TreeEnsembleRegressor (SUM or
//! AVERAGE of its trees' leaves, `post_transform` NONE once rewritten), Scaler, Normalizer
//! (evaluated, but never lowered: no norm is linear) and ZipMap (the identity on its
//! probabilities). Node comparisons are float32 against the float32 threshold, as in
//! onnxruntime; `nodes_missing_value_tracks_true` is ignored (inputs are never NaN:
//! calibration and data rows are checked to be finite).
//!
//! [`route`] is the one place where a float split becomes an int8 one (see its doc).

use std::collections::{BTreeSet, HashMap};

use anyhow::{anyhow, bail, ensure, Context, Result};

use super::float::{Env, Runner, Tensor};
use super::graph::{Attr, Const, ConstData, Graph, Node};

/// The op types [`expand`] rewrites into ops of the table (for the unsupported-op error).
pub(super) const OPS: &[&str] = &[
    "TreeEnsembleClassifier",
    "LinearClassifier",
    "LinearRegressor",
];

/// A split's comparison of the input value with its threshold: true sends it to the
/// split's `truenodeids` child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
}

impl Mode {
    /// The mode named `s`, or `None` for `LEAF`.
    fn parse(s: &str) -> Result<Option<Mode>> {
        Ok(Some(match s {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "LEAF" => return Ok(None),
            "BRANCH_EQ" | "BRANCH_NEQ" => bail!(
                "{s} splits are not supported: a tree ensemble's int8 splits compare with `≤`, and \
                 equality with a float threshold has no such form"
            ),
            other => bail!("`{other}` is not an ONNX-ML node mode"),
        }))
    }

    pub(super) fn holds<T: PartialOrd>(self, v: T, threshold: T) -> bool {
        match self {
            Mode::Leq => v <= threshold,
            Mode::Lt => v < threshold,
            Mode::Gte => v >= threshold,
            Mode::Gt => v > threshold,
        }
    }
}

#[derive(Clone, Debug)]
pub(super) enum TreeNode {
    /// Goes to node `yes` when `mode.holds(x[feature], threshold)`, else to node `no`.
    Split {
        feature: usize,
        mode: Mode,
        threshold: f32,
        yes: usize,
        no: usize,
    },
    /// `(target, weight)` pairs added to the outputs.
    Leaf(Vec<(usize, f64)>),
}

/// One tree: nodes by index, children by index.
#[derive(Clone, Debug)]
pub(super) struct Tree {
    pub(super) root: usize,
    pub(super) nodes: Vec<TreeNode>,
}

/// A TreeEnsembleRegressor (`post_transform` NONE): `y[t] = base[t] + Σ` over trees of the
/// weights for target `t` of the leaf the row reaches (AVERAGE: divided by the tree count,
/// folded into the weights).
#[derive(Clone, Debug)]
pub(super) struct Ensemble {
    pub(super) targets: usize,
    pub(super) base: Vec<f64>,
    pub(super) trees: Vec<Tree>,
}

/// Attribute `key`, which the op requires.
fn required<T>(node: &Node, key: &str, v: Option<T>) -> Result<T> {
    v.ok_or_else(|| anyhow!("{}: missing attribute `{key}`", node.describe()))
}

impl Ensemble {
    pub(super) fn from_node(node: &Node) -> Result<Ensemble> {
        let post = node.string("post_transform")?;
        ensure!(
            post.as_deref().unwrap_or("NONE") == "NONE",
            "{}: internal error: post_transform {post:?} was not split off at load time",
            node.describe()
        );
        let targets = usize::try_from(node.int("n_targets", 1)?)
            .ok()
            .filter(|&t| t >= 1)
            .ok_or_else(|| anyhow!("{}: n_targets must be at least 1", node.describe()))?;
        let ints = |key: &str| required(node, key, node.ints(key)?);
        let (tree_ids, node_ids) = (ints("nodes_treeids")?, ints("nodes_nodeids")?);
        let (features, yes, no) = (
            ints("nodes_featureids")?,
            ints("nodes_truenodeids")?,
            ints("nodes_falsenodeids")?,
        );
        let modes = required(node, "nodes_modes", node.strings("nodes_modes")?)?;
        let values = required(node, "nodes_values", node.floats("nodes_values")?)?;
        let n = tree_ids.len();
        ensure!(
            [&node_ids, &features, &yes, &no]
                .iter()
                .all(|v| v.len() == n)
                && modes.len() == n
                && values.len() == n,
            "{}: the nodes_* attributes have different lengths",
            node.describe()
        );
        // Trees in the order their ids first appear; nodes by (tree id, node id).
        let mut ids: Vec<i64> = Vec::new();
        let mut index: HashMap<i64, usize> = HashMap::new();
        let mut at: HashMap<(i64, i64), (usize, usize)> = HashMap::new();
        let mut trees: Vec<Tree> = Vec::new();
        for i in 0..n {
            let t = *index.entry(tree_ids[i]).or_insert_with(|| {
                ids.push(tree_ids[i]);
                trees.push(Tree {
                    root: 0,
                    nodes: Vec::new(),
                });
                trees.len() - 1
            });
            let local = trees[t].nodes.len();
            ensure!(
                at.insert((tree_ids[i], node_ids[i]), (t, local)).is_none(),
                "{}: tree {} has two nodes {}",
                node.describe(),
                tree_ids[i],
                node_ids[i]
            );
            trees[t].nodes.push(TreeNode::Leaf(Vec::new()));
        }
        let child = |i: usize, id: i64| -> Result<usize> {
            at.get(&(tree_ids[i], id)).map(|&(_, c)| c).ok_or_else(|| {
                anyhow!(
                    "{}: node {} of tree {} points to node {id}, which it does not have",
                    node.describe(),
                    node_ids[i],
                    tree_ids[i]
                )
            })
        };
        for i in 0..n {
            let Some(mode) = Mode::parse(&modes[i]).with_context(|| node.describe())? else {
                continue;
            };
            let feature = usize::try_from(features[i])
                .map_err(|_| anyhow!("{}: negative feature id", node.describe()))?;
            let split = TreeNode::Split {
                feature,
                mode,
                threshold: values[i],
                yes: child(i, yes[i])?,
                no: child(i, no[i])?,
            };
            let (t, local) = at[&(tree_ids[i], node_ids[i])];
            trees[t].nodes[local] = split;
        }
        let weights = required(node, "target_weights", node.floats("target_weights")?)?;
        let (w_trees, w_nodes, w_targets) = (
            ints("target_treeids")?,
            ints("target_nodeids")?,
            ints("target_ids")?,
        );
        ensure!(
            [&w_trees, &w_nodes, &w_targets]
                .iter()
                .all(|v| v.len() == weights.len()),
            "{}: the target_* attributes have different lengths",
            node.describe()
        );
        let per_tree = match node.string("aggregate_function")?.as_deref() {
            None | Some("SUM") => 1.0,
            Some("AVERAGE") => 1.0 / trees.len().max(1) as f64,
            Some(other) => bail!(
                "{}: aggregate_function {other} is not supported (SUM, AVERAGE)",
                node.describe()
            ),
        };
        for k in 0..weights.len() {
            let place = at.get(&(w_trees[k], w_nodes[k]));
            let target = usize::try_from(w_targets[k]).ok().filter(|&t| t < targets);
            let (Some(&(t, local)), Some(target)) = (place, target) else {
                bail!(
                    "{}: weight {k} is for node {} of tree {} and target {}, which do not exist",
                    node.describe(),
                    w_nodes[k],
                    w_trees[k],
                    w_targets[k]
                );
            };
            let TreeNode::Leaf(leaf) = &mut trees[t].nodes[local] else {
                bail!(
                    "{}: weight {k} is on node {} of tree {}, which is a split",
                    node.describe(),
                    w_nodes[k],
                    w_trees[k]
                );
            };
            leaf.push((target, weights[k] as f64 * per_tree));
        }
        for (tree, id) in trees.iter_mut().zip(&ids) {
            tree.root = root(tree).with_context(|| format!("{}: tree {id}", node.describe()))?;
        }
        let base: Vec<f64> = (node.floats("base_values")?.unwrap_or_default())
            .iter()
            .map(|&b| b as f64)
            .collect();
        ensure!(
            base.is_empty() || base.len() == targets,
            "{}: {} base values for {targets} targets",
            node.describe(),
            base.len()
        );
        Ok(Ensemble {
            targets,
            base: if base.is_empty() {
                vec![0.0; targets]
            } else {
                base
            },
            trees,
        })
    }

    /// The outputs for one row, in f64 (sums of float32 leaf weights).
    pub(super) fn eval(&self, x: &[f32]) -> Vec<f64> {
        let mut y = self.base.clone();
        for tree in &self.trees {
            let mut i = tree.root;
            loop {
                match &tree.nodes[i] {
                    TreeNode::Split {
                        feature,
                        mode,
                        threshold,
                        yes,
                        no,
                    } => {
                        i = if mode.holds(x[*feature], *threshold) {
                            *yes
                        } else {
                            *no
                        }
                    }
                    TreeNode::Leaf(w) => {
                        w.iter().for_each(|&(t, v)| y[t] += v);
                        break;
                    }
                }
            }
        }
        y
    }

    /// The largest feature index a split reads, plus one.
    pub(super) fn features(&self) -> usize {
        let splits = self.trees.iter().flat_map(|t| &t.nodes);
        splits
            .filter_map(|n| match n {
                TreeNode::Split { feature, .. } => Some(feature + 1),
                TreeNode::Leaf(_) => None,
            })
            .max()
            .unwrap_or(0)
    }
}

/// The root of `tree`: the one node no split points to, from which every node is reached at
/// most once (so that walks end and the preorder of the lowering is finite).
fn root(tree: &Tree) -> Result<usize> {
    let n = tree.nodes.len();
    let mut pointed = vec![0usize; n];
    for node in &tree.nodes {
        if let TreeNode::Split { yes, no, .. } = node {
            pointed[*yes] += 1;
            pointed[*no] += 1;
        }
    }
    let roots: Vec<usize> = (0..n).filter(|&i| pointed[i] == 0).collect();
    ensure!(
        roots.len() == 1 && pointed.iter().all(|&p| p <= 1),
        "its nodes are not one tree ({} roots)",
        roots.len()
    );
    Ok(roots[0])
}

/// Where a split sends an int8 input value `q` whose real value is `value(q)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// Every int8 value takes the same branch: the "yes" one if true.
    Always(bool),
    /// `q ≤ threshold` goes left, the rest right; the left branch is the "yes" one if
    /// `yes_left`.
    Split { threshold: i8, yes_left: bool },
}

/// The int8 form of the split `mode(x, threshold)` on an input whose int8 value `q` stands
/// for `value(q)` (increasing in `q`: a positive scale). The split is decided for each of the
/// 256 values exactly as the float model decides it on `value(q)` (an f64: `(q − zp) · scale`
/// is exact in f64 for a fixed-point scale), so the int8 tree takes the float tree's branch
/// for every input it can be given, not only for those seen in calibration. `≤` and `<` send
/// the values that hold left; `≥` and `>` hold on the high values, so those go right and the
/// children swap.
pub(super) fn route(mode: Mode, threshold: f32, value: impl Fn(i8) -> f64) -> Result<Route> {
    let yes_left = matches!(mode, Mode::Leq | Mode::Lt);
    let t = threshold as f64;
    let left: Vec<bool> = (i8::MIN..=i8::MAX)
        .map(|q| mode.holds(value(q), t) == yes_left)
        .collect();
    let n = left.iter().take_while(|&&l| l).count();
    ensure!(
        left[n..].iter().all(|&l| !l),
        "internal error: the dequantized values are not increasing"
    );
    Ok(match n {
        0 => Route::Always(!yes_left),
        256 => Route::Always(yes_left),
        _ => Route::Split {
            threshold: (n as i32 - 129) as i8,
            yes_left,
        },
    })
}

pub(super) fn eval_tree_ensemble(
    runner: &Runner<'_>,
    node: &Node,
    env: &Env<'_>,
) -> Result<Tensor> {
    let x = runner.get(env, node, 0)?;
    let ens = Ensemble::from_node(node)?;
    let f = rows_of(node, &x, ens.features())?;
    let data = (x.data.chunks(f))
        .flat_map(|row| ens.eval(row))
        .map(|v| v as f32)
        .collect();
    Ok(Tensor::new(vec![x.shape[0], ens.targets], data))
}

/// The features per row of `x`, which must be `[N, F]` with `F ≥ needed`.
fn rows_of(node: &Node, x: &Tensor, needed: usize) -> Result<usize> {
    ensure!(
        x.shape.len() == 2 && x.shape[1] >= needed.max(1),
        "{}: the input must be [N, F] with F ≥ {needed}; got {:?}",
        node.describe(),
        x.shape
    );
    Ok(x.shape[1])
}

/// A Scaler's `offset` and `scale` per feature (one value applies to all).
pub(super) fn scaler_params(node: &Node, features: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let get = |key: &str| -> Result<Vec<f32>> {
        let v = required(node, key, node.floats(key)?)?;
        match v.len() {
            1 => Ok(vec![v[0]; features]),
            n if n == features => Ok(v),
            n => bail!(
                "{}: {n} values of `{key}` for {features} features",
                node.describe()
            ),
        }
    };
    Ok((get("offset")?, get("scale")?))
}

/// Scaler: `(x − offset) · scale` per feature, in float32 like onnxruntime.
pub(super) fn eval_scaler(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let x = runner.get(env, node, 0)?;
    let f = rows_of(node, &x, 1)?;
    let (offset, scale) = scaler_params(node, f)?;
    let data = (x.data.iter().enumerate())
        .map(|(i, &v)| (v - offset[i % f]) * scale[i % f])
        .collect();
    Ok(Tensor::new(x.shape, data))
}

/// Normalizer's `norm` and what it divides each row by.
pub(super) fn normalizer_norm(node: &Node) -> Result<(String, &'static str)> {
    let norm = node.string("norm")?.unwrap_or_else(|| "MAX".into());
    let by = match norm.as_str() {
        "MAX" => "largest value",
        "L1" => "sum of absolute values",
        "L2" => "Euclidean norm",
        other => bail!("{}: norm `{other}` is not MAX, L1 or L2", node.describe()),
    };
    Ok((norm, by))
}

/// Normalizer: each row divided by its norm (rows of norm 0 unchanged), in float32 like
/// onnxruntime.
pub(super) fn eval_normalizer(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let x = runner.get(env, node, 0)?;
    let f = rows_of(node, &x, 1)?;
    let (norm, _) = normalizer_norm(node)?;
    let mut data = Vec::with_capacity(x.data.len());
    for row in x.data.chunks(f) {
        let d = match norm.as_str() {
            "MAX" => row.iter().fold(f32::MIN, |m, &v| m.max(v)),
            "L1" => row.iter().map(|v| v.abs()).sum(),
            _ => row.iter().map(|v| v * v).sum::<f32>().sqrt(),
        };
        data.extend(row.iter().map(|&v| if d != 0.0 { v / d } else { v }));
    }
    Ok(Tensor::new(x.shape, data))
}

/// Rewrites the ONNX-ML classifiers and regressors of `graph` (see the module doc).
pub(super) fn expand(graph: &Graph) -> Result<Graph> {
    let consumers = graph.consumers();
    let mut out = Graph {
        nodes: Vec::new(),
        ..graph.clone()
    };
    for node in &graph.nodes {
        let done = match node.op.as_str() {
            "TreeEnsembleClassifier" => tree_classifier(&mut out, node, &consumers),
            "TreeEnsembleRegressor" => {
                let mut scores = node.clone();
                scores.attrs.insert("post_transform".into(), text("NONE"));
                then_post_transform(&mut out, node, scores, &node.outputs[0])
            }
            "LinearClassifier" | "LinearRegressor" => linear(&mut out, node, &consumers),
            _ => {
                out.nodes.push(node.clone());
                Ok(())
            }
        };
        done.with_context(|| format!("converting {}", node.describe()))?;
    }
    Ok(out)
}

fn text(s: &str) -> Attr {
    Attr::Str(s.into())
}

/// A classifier's scores output (its second), once its label output is known to be unread.
fn scores_output<'n>(node: &'n Node, consumers: &HashMap<String, usize>) -> Result<&'n str> {
    let [label, scores] = &node.outputs[..] else {
        bail!("a classifier has two outputs, label and scores");
    };
    ensure!(
        consumers.get(label).copied().unwrap_or(0) == 0,
        "its label output `{label}` is read; only the scores (probabilities) are supported: take \
         the label as the argmax of the probabilities after the model"
    );
    Ok(scores)
}

/// Adds `scores` (a node computing the raw scores, outputs not set) and the op of `node`'s
/// `post_transform`, so that together they write `y`.
fn then_post_transform(out: &mut Graph, node: &Node, mut scores: Node, y: &str) -> Result<()> {
    let post = node.string("post_transform")?;
    let op = match post.as_deref().unwrap_or("NONE") {
        "NONE" => {
            scores.outputs = vec![y.to_string()];
            out.nodes.push(scores);
            return Ok(());
        }
        "LOGISTIC" => "Sigmoid",
        "SOFTMAX" => "Softmax",
        other => bail!("post_transform {other} is not supported (NONE, LOGISTIC, SOFTMAX)"),
    };
    let raw = format!("{}/scores", node.name);
    scores.outputs = vec![raw.clone()];
    out.nodes.push(scores);
    out.nodes.push(Node {
        name: format!("{}/{op}", node.name),
        op: op.into(),
        inputs: vec![raw],
        outputs: vec![y.to_string()],
        attrs: HashMap::from([("axis".to_string(), Attr::Int(-1))]),
    });
    Ok(())
}

/// The number of class labels of a classifier.
fn class_count(node: &Node, ints: &str, strings: &str) -> Result<usize> {
    let n = match (node.ints(ints)?, node.strings(strings)?) {
        (Some(v), _) => v.len(),
        (None, Some(v)) => v.len(),
        (None, None) => bail!("missing attribute `{ints}` (or `{strings}`)"),
    };
    Ok(n)
}

/// TreeEnsembleClassifier → TreeEnsembleRegressor of its class scores (one target per class,
/// or the two columns of a binary classifier), then its post-transform.
fn tree_classifier(out: &mut Graph, node: &Node, consumers: &HashMap<String, usize>) -> Result<()> {
    let y = scores_output(node, consumers)?;
    let classes = class_count(node, "classlabels_int64s", "classlabels_strings")?;
    let ints = |key: &str| required(node, key, node.ints(key)?);
    let (trees, nodes, ids) = (
        ints("class_treeids")?,
        ints("class_nodeids")?,
        ints("class_ids")?,
    );
    let weights = required(node, "class_weights", node.floats("class_weights")?)?;
    let base = node.floats("base_values")?.unwrap_or_default();
    let post = node.string("post_transform")?;
    let post = post.as_deref().unwrap_or("NONE");
    let mut scores = Node {
        name: node.name.clone(),
        op: "TreeEnsembleRegressor".into(),
        inputs: node.inputs.clone(),
        outputs: Vec::new(),
        attrs: (node.attrs.iter())
            .filter(|(k, _)| k.starts_with("nodes_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    let binary = classes == 2 && ids.iter().all(|&c| c == 0);
    let (targets, base, post) =
        if binary {
            ensure!(
                base.len() <= 1,
                "a binary classifier with {} base values (onnxruntime reads one)",
                base.len()
            );
            let b = base.first().copied().unwrap_or(0.0);
            let positive = weights.iter().all(|&w| w >= 0.0);
            let (base, post) =
                match (positive, post) {
                    (true, "NONE") => (vec![1.0 - b, b], "NONE"),
                    (false, "LOGISTIC") => (vec![-b, b], "LOGISTIC"),
                    (positive, post) => bail!(
                "a binary classifier with {} weights and post_transform {post}: onnxruntime's \
                 two columns for it are not supported (NONE with non-negative weights, as \
                 random forests export, and LOGISTIC with weights of both signs, as gradient \
                 boosting exports, are)",
                if positive { "non-negative" } else { "mixed-sign" }
            ),
                };
            // class 0 gets −w, class 1 gets w, at every leaf
            let twice = |v: &[i64]| v.iter().flat_map(|&x| [x, x]).collect::<Vec<_>>();
            scores.attrs.extend([
                ("target_treeids".into(), Attr::Ints(twice(&trees))),
                ("target_nodeids".into(), Attr::Ints(twice(&nodes))),
                (
                    "target_ids".into(),
                    Attr::Ints(ids.iter().flat_map(|_| [0, 1]).collect()),
                ),
                (
                    "target_weights".into(),
                    Attr::Floats(weights.iter().flat_map(|&w| [-w, w]).collect()),
                ),
            ]);
            (2, base, post)
        } else {
            ensure!(
                classes > 2,
                "a classifier of {classes} classes whose weights are on classes {:?}: only binary \
             classifiers weighing class 0 alone and classifiers of 3 or more classes are \
             supported",
                ids.iter().collect::<BTreeSet<_>>()
            );
            ensure!(
                base.is_empty() || base.len() == classes,
                "{} base values for {classes} classes",
                base.len()
            );
            scores.attrs.extend([
                ("target_treeids".into(), Attr::Ints(trees)),
                ("target_nodeids".into(), Attr::Ints(nodes)),
                ("target_ids".into(), Attr::Ints(ids)),
                ("target_weights".into(), Attr::Floats(weights)),
            ]);
            (classes, base, post)
        };
    scores.attrs.extend([
        ("n_targets".into(), Attr::Int(targets as i64)),
        ("base_values".into(), Attr::Floats(base)),
        ("aggregate_function".into(), text("SUM")),
        ("post_transform".into(), text("NONE")),
    ]);
    let mut with_post = node.clone();
    with_post.attrs.insert("post_transform".into(), text(post));
    then_post_transform(out, &with_post, scores, y)
}

/// LinearClassifier and LinearRegressor → Gemm `x · Cᵀ + intercepts` (C: `[targets, F]`),
/// then the post-transform.
fn linear(out: &mut Graph, node: &Node, consumers: &HashMap<String, usize>) -> Result<()> {
    let coefficients = required(node, "coefficients", node.floats("coefficients")?)?;
    let (y, targets) = if node.op == "LinearClassifier" {
        let y = scores_output(node, consumers)?;
        let t = node.floats("intercepts")?.map_or(0, |v| v.len());
        ensure!(
            t >= 2,
            "{t} rows of coefficients: the one-row form of a binary classifier is not \
             supported (export one row per class)"
        );
        (y, t)
    } else {
        let t = usize::try_from(node.int("targets", 1)?)?;
        (node.outputs[0].as_str(), t)
    };
    ensure!(
        targets >= 1 && !coefficients.is_empty() && coefficients.len() % targets == 0,
        "{} coefficients for {targets} targets",
        coefficients.len()
    );
    let features = coefficients.len() / targets;
    let intercepts = node
        .floats("intercepts")?
        .unwrap_or_else(|| vec![0.0; targets]);
    ensure!(
        intercepts.len() == targets,
        "{} intercepts for {targets} targets",
        intercepts.len()
    );
    let c_name = format!("{}/coefficients", node.name);
    let b_name = format!("{}/intercepts", node.name);
    let konst = |dims, v| Const {
        dims,
        data: ConstData::F32(v),
    };
    out.consts
        .insert(c_name.clone(), konst(vec![targets, features], coefficients));
    out.consts
        .insert(b_name.clone(), konst(vec![targets], intercepts));
    let gemm = Node {
        name: node.name.clone(),
        op: "Gemm".into(),
        inputs: vec![node.inputs[0].clone(), c_name, b_name],
        outputs: Vec::new(),
        attrs: HashMap::from([("transB".to_string(), Attr::Int(1))]),
    };
    then_post_transform(out, node, gemm, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::quant::act_quant;
    use myelin_precompile::model::Scale;

    /// Deterministic pseudo-random numbers (xorshift).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// For random input quantizations (fixed-point scales, zero points anywhere in int8) and
    /// thresholds (inside, at the edges of and outside the representable range, and exactly
    /// on dequantized values), every mode's int8 split sends each of the 256 values where the
    /// float split sends its dequantized value.
    #[test]
    fn int8_splits_decide_every_value_like_the_float_split() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let modes = [Mode::Leq, Mode::Lt, Mode::Gte, Mode::Gt];
        for case in 0..2000 {
            let (lo, hi) = (rng.uniform(-50.0, 10.0), rng.uniform(-10.0, 1e3));
            let q = act_quant(lo.min(hi), lo.max(hi));
            let scale = Scale::from_f64(q.scale).unwrap().to_f64();
            let value = |v: i8| (v as i32 - q.zp as i32) as f64 * scale;
            let threshold = match case % 4 {
                // exactly a dequantized value (as f32: on it or next to it)
                0 => value((rng.next() % 256) as u8 as i8) as f32,
                1 => rng.uniform(value(-128) * 1.5 - 1.0, value(127) * 1.5 + 1.0) as f32,
                _ => rng.uniform(value(-128), value(127)) as f32,
            };
            for mode in modes {
                let r = route(mode, threshold, value).unwrap();
                for v in i8::MIN..=i8::MAX {
                    let float_yes = mode.holds(value(v), threshold as f64);
                    let int_yes = match r {
                        Route::Always(yes) => yes,
                        Route::Split {
                            threshold: t,
                            yes_left,
                        } => (v <= t) == yes_left,
                    };
                    assert_eq!(int_yes, float_yes, "{mode:?} {threshold} {q:?} q={v}");
                }
            }
        }
        // thresholds beyond the range decide the split for every value
        let value = |v: i8| v as f64;
        assert_eq!(route(Mode::Leq, 1e9, value).unwrap(), Route::Always(true));
        assert_eq!(route(Mode::Gt, 1e9, value).unwrap(), Route::Always(false));
        assert_eq!(
            route(Mode::Lt, -128.0, value).unwrap(),
            Route::Always(false)
        );
        assert_eq!(
            route(Mode::Gte, 0.5, value).unwrap(),
            Route::Split {
                threshold: 0,
                yes_left: false
            }
        );
    }
}
