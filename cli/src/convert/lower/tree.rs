//! A TreeEnsembleRegressor (what every ONNX-ML tree ensemble is after the load-time rewrite,
//! see [`ml`]) as one Myelin TreeEnsemble.
//!
//! - **Splits.** Each float split becomes the int8 comparison that routes every int8 value
//!   of its feature exactly as the float split routes the value it stands for ([`ml::route`]),
//!   with the feature's own quantization when the model input is quantized per feature. A
//!   split that every int8 value takes the same way is dropped, with the subtree never
//!   taken; `≥`/`>` splits swap their children. Trees are written in preorder.
//! - **Leaves.** One accumulator scale for the whole ensemble, chosen so that the largest
//!   possible sum (`|base| + Σ` over trees of the largest `|leaf|`, per output) is
//!   [`SUM_STEPS`] steps: far inside int32 (validation proves that bound survives
//!   requantization), and fine enough that the rounding of hundreds of leaves stays far below
//!   an output step. Leaf and base values round to nearest.
//! - **Targets.** A tree whose leaves all add to one output keeps that target and one value
//!   per leaf; a tree adding to several (the `[−w, w]` leaves of a binary classifier) adds to
//!   all outputs. A tree reduced to one leaf is a constant: it joins the base values.
//! - **Output.** Quantized from the calibrated range of the ensemble's sums (the raw scores,
//!   before any post-transform).

use myelin_precompile::limits::{MAX_TREES, MAX_TREE_DEPTH};
use myelin_precompile::model::{Tree, TreeEnsemble, TreeNode, ALL_OUTPUTS};

use super::super::ml::{self, Ensemble, Route};
use super::*;

/// Steps of the accumulator that the largest possible sum of an ensemble takes (`2^24`).
const SUM_STEPS: f64 = (1u32 << 24) as f64;

/// A node of a Myelin tree being built: leaves hold one float per output.
enum Step {
    Split { feature: u16, threshold: i8 },
    Leaf(Vec<f64>),
}

/// A Myelin tree being built, in preorder.
struct Built {
    nodes: Vec<Step>,
}

impl Built {
    fn leaves(&self) -> impl Iterator<Item = &[f64]> {
        self.nodes.iter().filter_map(|n| match n {
            Step::Leaf(v) => Some(v.as_slice()),
            Step::Split { .. } => None,
        })
    }
}

pub(in crate::convert) fn lower_tree_ensemble(
    lowerer: &mut Lowerer<'_>,
    node: &Node,
    out: String,
) -> Result<()> {
    let ens = Ensemble::from_node(node)?;
    let x = lowerer.act(in0(node)?)?;
    let &[features] = &x.shape[..] else {
        bail!("the input must be [N, F]; got [N, {:?}]", x.shape);
    };
    ensure!(
        ens.features() <= features,
        "a split reads feature {} of {features}",
        ens.features().saturating_sub(1)
    );
    // The real value of int8 value `q` of feature `j`.
    let quants: Vec<ActQuant> = match lowerer.features.as_ref().filter(|_| x.id == 0) {
        Some(per_feature) => per_feature.clone(),
        None => vec![x.q; features],
    };
    let outputs = ens.targets;
    let mut base = ens.base.clone();
    let mut trees = Vec::new();
    let mut dropped = 0;
    for tree in &ens.trees {
        let built = build(tree, outputs, &quants, &mut dropped)?;
        match &built.nodes[..] {
            [Step::Leaf(leaf)] => base.iter_mut().zip(leaf).for_each(|(b, v)| *b += v),
            _ => trees.push(built),
        }
    }
    if trees.is_empty() {
        // every tree was a constant: keep one leaf of zeros (an ensemble has a tree)
        trees.push(Built {
            nodes: vec![Step::Leaf(vec![0.0; outputs])],
        });
    }
    ensure!(
        trees.len() <= MAX_TREES,
        "{} trees: a Myelin TreeEnsemble holds at most {MAX_TREES} (split the ensemble)",
        trees.len()
    );
    // the largest possible |sum| per output, in real units
    let mut bound: Vec<f64> = base.iter().map(|b| b.abs()).collect();
    for t in &trees {
        for (o, b) in bound.iter_mut().enumerate() {
            *b += t.leaves().fold(0f64, |m, v| m.max(v[o].abs()));
        }
    }
    let largest = bound.iter().fold(0f64, |m, &b| m.max(b));
    let acc_scale = if largest > 0.0 {
        largest / SUM_STEPS
    } else {
        1.0
    };
    let steps = |v: f64| (v / acc_scale).round() as i32;
    let (lo, hi) = lowerer.range(&out)?;
    let q = quant::act_quant(lo, hi);
    let requant = quant::requant(acc_scale / q.scale)?;
    let mut depth = 0;
    let mut splits = 0;
    let trees: Vec<Tree> = trees
        .iter()
        .map(|t| {
            let targets: Vec<usize> = (0..outputs)
                .filter(|&o| t.leaves().any(|v| v[o] != 0.0))
                .collect();
            let (target, width) = match targets[..] {
                [] => (0, 1),
                [o] => (o, 1),
                _ => (ALL_OUTPUTS as usize, outputs),
            };
            let nodes = (t.nodes.iter())
                .map(|n| match n {
                    &Step::Split { feature, threshold } => TreeNode::Split { feature, threshold },
                    Step::Leaf(v) if width == 1 => TreeNode::Leaf(vec![steps(v[target])]),
                    Step::Leaf(v) => TreeNode::Leaf(v.iter().map(|&v| steps(v)).collect()),
                })
                .collect();
            let tree = Tree {
                target: target as u16,
                nodes,
            };
            depth = depth.max(tree.depth().unwrap_or(0));
            splits += t.nodes.len() - t.leaves().count();
            tree
        })
        .collect();
    ensure!(
        depth <= MAX_TREE_DEPTH,
        "a tree of depth {depth}: a Myelin TreeEnsemble allows {MAX_TREE_DEPTH}"
    );
    let detail = format!(
        "{features} features -> {outputs}, {} trees of depth <= {depth}, splits {splits} \
         (+{dropped} dropped: decided by the input quantization), sum scale {acc_scale:.4e}, \
         out scale {:.4e} zp {}, multiplier {:.4e}",
        trees.len(),
        q.scale,
        q.zp,
        requant.to_f64()
    );
    let ensemble = TreeEnsemble {
        input: x.id,
        outputs: u16_of(outputs, "outputs")?,
        out: m::Output {
            requant: vec![requant],
            zero_point: q.zp,
            act_min: i8::MIN,
            act_max: i8::MAX,
        },
        base: base.iter().map(|&b| steps(b)).collect(),
        trees,
    };
    let id = lowerer.emit(m::Node::TreeEnsemble(ensemble), node.name.clone(), detail);
    lowerer.set(
        &out,
        Val::Act(Act {
            id,
            shape: vec![outputs],
            q,
        }),
    );
    Ok(())
}

/// `tree` in preorder with int8 splits (see the module doc), counting the splits every int8
/// value takes one way into `dropped`.
fn build(
    tree: &ml::Tree,
    outputs: usize,
    quants: &[ActQuant],
    dropped: &mut usize,
) -> Result<Built> {
    let mut nodes = Vec::new();
    let mut pending = vec![tree.root];
    while let Some(i) = pending.pop() {
        match &tree.nodes[i] {
            ml::TreeNode::Split {
                feature,
                mode,
                threshold,
                yes,
                no,
            } => {
                let q = quants[*feature];
                let value = |v: i8| quant::dequantize(v, q);
                match ml::route(*mode, *threshold, value)? {
                    Route::Always(true) => {
                        *dropped += 1;
                        pending.push(*yes);
                    }
                    Route::Always(false) => {
                        *dropped += 1;
                        pending.push(*no);
                    }
                    Route::Split {
                        threshold,
                        yes_left,
                    } => {
                        let (left, right) = if yes_left { (*yes, *no) } else { (*no, *yes) };
                        let feature = u16_of(*feature, "feature")?;
                        nodes.push(Step::Split { feature, threshold });
                        // the left subtree is read first: pushed last
                        pending.extend([right, left]);
                    }
                }
            }
            ml::TreeNode::Leaf(weights) => {
                let mut v = vec![0.0; outputs];
                weights.iter().for_each(|&(t, w)| v[t] += w);
                nodes.push(Step::Leaf(v));
            }
        }
    }
    Ok(Built { nodes })
}
