//! TreeEnsemble (SPEC §3.2, tag 0x17): gradient-boosted trees and random forests over the
//! last axis of an int8 tensor, for regression and classification.
//!
//! Each split compares one quantized feature with an int8 threshold, `x[feature] ≤
//! threshold` going left; the converter turns a float threshold and ONNX-ML's comparison
//! mode into that one integer comparison, exact for every int8 input (SPEC §3.2). Each leaf
//! adds int32 values, at one fixed accumulator scale, to one output (the tree's target) or to
//! all of them; the sums start from per-output base values and are requantized to int8 like a
//! Dense layer's accumulators. A post-transform (logistic, softmax) is a following Lut or
//! Softmax node.
//!
//! Trees are stored in preorder (a split, its left subtree, its right subtree), which needs
//! no child pointers: every byte string parses as at most one forest, and no tree can have a
//! cycle or a dangling child. The engine walks all trees of all rows at once, one level per
//! step, gathering each walk's node, feature value and threshold from flat node tables (the
//! tree-traversal strategy of tensor compilers such as Hummingbird) in a kernel of its own
//! inside burn (`host.rs`; burn's `select` on ndarray costs ~100 ns per gathered index, ten
//! times the scalar reference's whole walk): a leaf points to itself, so every walk takes
//! exactly the ensemble's greatest depth in steps, and the cost is known before anything runs.

use super::layer::{self, Output};
use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::{Cost, REQUANT_PASSES};
use crate::engine::{EngineTensor, Requantizer};
use crate::error::{Code, ModelError};
use crate::limits::{MAX_TREES, MAX_TREE_DEPTH};
use crate::model::{Scale, TensorId};
use crate::validate::{checked_elems, not_encodable, numel, requant_bound};

const TAG: u8 = 0x17;
/// A tree's target meaning "every output": its leaves hold one value per output.
pub const ALL_OUTPUTS: u16 = 0xFFFF;
/// The feature field of a leaf.
const LEAF: u16 = 0xFFFF;

/// Elements charged per walk (one row through one tree) per level: reading the node's
/// feature, the input value and the threshold, comparing and taking a child — a few
/// dependent loads from tables that stay in cache for any ensemble of a few MB.
pub const TREE_STEP_PASSES: u64 = 2;
/// Elements charged per level on top of its walks (the pass over the walks).
pub const TREE_LEVEL_ELEMS: u64 = 16;
/// Prepared elements charged per tree node when a model is loaded cold (at
/// `PREPARE_ELEM_MILLI`: 6.4 gas per node): decoding a node, checking it and laying it out in
/// the engine's tables costs 65–90 ns, far more than the per-byte load price pays for the three
/// to six bytes it takes (measured on ~1 MiB of trees, `benches/benches/gas.rs`, and on up to
/// 16 MiB by the search's load family).
pub const TREE_PREPARE_ELEMS: u64 = 64;

/// One node of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeNode {
    /// Go to the left subtree if `x[feature] ≤ threshold`, else to the right one.
    Split { feature: u16, threshold: i8 },
    /// Values added to the outputs: one (to the tree's target) or one per output.
    Leaf(Vec<i32>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The output its leaves add to, or [`ALL_OUTPUTS`].
    pub target: u16,
    /// Preorder: each split is followed by its left subtree, then its right subtree.
    pub nodes: Vec<TreeNode>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEnsemble {
    pub input: TensorId,
    /// Outputs per row (classes, or regression targets).
    pub outputs: u16,
    pub out: Output,
    /// Starting value of each output's sum (ONNX-ML's base values), at the leaves' scale.
    pub base: Vec<i32>,
    pub trees: Vec<Tree>,
}

/// Values each leaf of a tree with `target` holds: one, or one per output.
fn leaf_width(target: u16, outputs: u16) -> usize {
    if target == ALL_OUTPUTS {
        outputs as usize
    } else {
        1
    }
}

impl Tree {
    /// Values each leaf of this tree holds.
    pub fn width(&self, outputs: u16) -> usize {
        leaf_width(self.target, outputs)
    }

    /// The tree's depth (splits on its longest path; 0 for a single leaf), or `None` unless
    /// `nodes` is exactly one complete tree in preorder.
    pub fn depth(&self) -> Option<u32> {
        let mut pending = vec![0u32]; // depths of the subtrees still to read
        let mut depth = 0;
        for node in &self.nodes {
            let d = pending.pop()?;
            match node {
                TreeNode::Split { .. } => pending.extend([d + 1, d + 1]),
                TreeNode::Leaf(_) => depth = depth.max(d),
            }
        }
        pending.is_empty().then_some(depth)
    }

    /// Index of each node's children: `(i + 1, right)` for a split, `(i, i)` for a leaf
    /// (which the engine's walk never leaves). `nodes` must be one complete tree.
    fn children(&self) -> Vec<(usize, usize)> {
        // Where the subtree at `i` ends, filled from the last node back.
        let n = self.nodes.len();
        let mut end = vec![0; n];
        let mut children = vec![(0, 0); n];
        for i in (0..n).rev() {
            match self.nodes[i] {
                TreeNode::Split { .. } => {
                    let right = end[i + 1];
                    children[i] = (i + 1, right);
                    end[i] = end[right];
                }
                TreeNode::Leaf(_) => {
                    children[i] = (i, i);
                    end[i] = i + 1;
                }
            }
        }
        children
    }

    /// The leaf row `x` reaches: plain SPEC §3.2 on one row.
    fn leaf(&self, x: &[i8]) -> &[i32] {
        let mut i = 0;
        loop {
            match &self.nodes[i] {
                TreeNode::Split { feature, threshold } => {
                    if x[*feature as usize] <= *threshold {
                        i += 1;
                    } else {
                        i = self.right_of(i);
                    }
                }
                TreeNode::Leaf(values) => return values,
            }
        }
    }

    /// The right child of the split at `i`: the node after its left subtree.
    fn right_of(&self, i: usize) -> usize {
        let mut need = 1; // subtrees still to skip
        let mut j = i + 1;
        while need > 0 {
            // Each node is one subtree read; a split opens two more.
            if let TreeNode::Split { .. } = self.nodes[j] {
                need += 2;
            }
            need -= 1;
            j += 1;
        }
        j
    }
}

/// The ensemble as the engine walks it: the nodes of all trees in flat tables, indexed by a
/// node's position in the ensemble.
pub struct Prepared {
    input: TensorId,
    outputs: usize,
    depth: u32,
    /// Every tree's nodes, one table.
    nodes: Vec<FlatNode>,
    /// Per node: where its leaf values start in `values` (0 for a split).
    value_at: Vec<u32>,
    values: Vec<i64>,
    /// Per tree: its root and its target.
    roots: Vec<u32>,
    targets: Vec<u16>,
    base: Vec<i64>,
    out: Requantizer,
}

/// A node as the engine walks it: everything one step reads in 16 bytes, so a step is one
/// load from the table and a branch-free choice of child.
#[derive(Clone, Copy)]
struct FlatNode {
    /// The feature it reads (0 for a leaf).
    feature: u32,
    /// Its threshold (127 for a leaf: every int8 value goes left, to itself).
    threshold: i32,
    /// Left and right child (a leaf's are itself).
    children: [u32; 2],
}

impl TreeEnsemble {
    /// The greatest depth of its trees: the levels every walk takes.
    pub fn depth(&self) -> u32 {
        self.trees.iter().filter_map(Tree::depth).max().unwrap_or(0)
    }

    fn features(shapes: &[Vec<u32>], input: TensorId) -> u32 {
        *shapes[input as usize].last().unwrap_or(&1)
    }
}

/// Reads one tree's nodes in preorder: each split's depth is checked as it is read (which
/// bounds the reader's stack), each leaf's values are reserved before they are read.
fn read_nodes(r: &mut Reader<'_>, width: usize) -> Result<Vec<TreeNode>, ModelError> {
    let mut nodes = Vec::new();
    let mut pending = vec![0u32];
    while let Some(d) = pending.pop() {
        let feature = r.u16()?;
        if feature == LEAF {
            r.reserve(width, 4)?;
            let values = (0..width).map(|_| r.i32()).collect::<Result<_, _>>()?;
            nodes.push(TreeNode::Leaf(values));
        } else {
            if d >= MAX_TREE_DEPTH {
                return Err(too_deep(r.node()));
            }
            nodes.push(TreeNode::Split {
                feature,
                threshold: r.i8()?,
            });
            pending.extend([d + 1, d + 1]);
        }
    }
    Ok(nodes)
}

fn too_deep(node: usize) -> ModelError {
    ModelError::at(
        Code::TreeTooDeep,
        node,
        format!("a tree deeper than {MAX_TREE_DEPTH}"),
    )
}

/// A tree's target is an output, or all of them when there are at least two (with one
/// output, "all" would be a second encoding of target 0).
fn check_target(node: usize, target: u16, outputs: u16) -> Result<(), ModelError> {
    if target < outputs || (target == ALL_OUTPUTS && outputs >= 2) {
        return Ok(());
    }
    Err(ModelError::at(
        Code::BadTree,
        node,
        format!("tree target {target} with {outputs} outputs"),
    ))
}

fn check_tree_count(node: usize, trees: usize) -> Result<(), ModelError> {
    if trees == 0 || trees > MAX_TREES {
        return Err(ModelError::at(
            Code::BadTree,
            node,
            format!("{trees} trees; an ensemble has 1 to {MAX_TREES}"),
        ));
    }
    Ok(())
}

impl Op for TreeEnsemble {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "TreeEnsemble"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    /// Input, output count, output requantization, base values, tree count (checked), then
    /// each tree: its target (checked: it sets the leaves' width) and its nodes.
    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        let input = r.tensor(shapes)?;
        let outputs = r.u16()?;
        let out = Output::read(r, outputs as u32)?;
        r.reserve(outputs as usize, 4)?;
        let base = (0..outputs).map(|_| r.i32()).collect::<Result<_, _>>()?;
        let count = r.u16()? as usize;
        check_tree_count(r.node(), count)?;
        let mut trees = Vec::with_capacity(count);
        for _ in 0..count {
            let target = r.u16()?;
            check_target(r.node(), target, outputs)?;
            trees.push(Tree {
                target,
                nodes: read_nodes(r, leaf_width(target, outputs))?,
            });
        }
        Ok(TreeEnsemble {
            input,
            outputs,
            out,
            base,
            trees,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        w.extend_from_slice(&self.outputs.to_le_bytes());
        self.out.write(w);
        for b in &self.base {
            w.extend_from_slice(&b.to_le_bytes());
        }
        w.extend_from_slice(&(self.trees.len() as u16).to_le_bytes());
        for tree in &self.trees {
            w.extend_from_slice(&tree.target.to_le_bytes());
            for node in &tree.nodes {
                match node {
                    TreeNode::Split { feature, threshold } => {
                        w.extend_from_slice(&feature.to_le_bytes());
                        w.push(*threshold as u8);
                    }
                    TreeNode::Leaf(values) => {
                        w.extend_from_slice(&LEAF.to_le_bytes());
                        for v in values {
                            w.extend_from_slice(&v.to_le_bytes());
                        }
                    }
                }
            }
        }
    }

    /// The input with its last axis replaced by the outputs. For in-memory models, the
    /// checks reading makes (tree count, targets, depth) and that the arrays are encodable.
    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        if self.outputs == 0 {
            return Err(ModelError::at(
                Code::ZeroDim,
                node,
                "a TreeEnsemble of no outputs",
            ));
        }
        let mut s = shapes[self.input as usize].clone();
        *s.last_mut().unwrap_or(&mut 0) = self.outputs as u32;
        checked_elems(node, &s)?;
        check_tree_count(node, self.trees.len())?;
        let rq = self.out.requant.len();
        if (rq != 1 && rq != self.outputs as usize) || self.base.len() != self.outputs as usize {
            return Err(not_encodable(
                node,
                format!(
                    "{rq} multipliers and {} base values for {} outputs",
                    self.base.len(),
                    self.outputs
                ),
            ));
        }
        for tree in &self.trees {
            check_target(node, tree.target, self.outputs)?;
            let depth = tree.depth().ok_or_else(|| {
                not_encodable(node, "nodes that are not one tree in preorder".into())
            })?;
            if depth > MAX_TREE_DEPTH {
                return Err(too_deep(node));
            }
            let width = tree.width(self.outputs);
            if tree
                .nodes
                .iter()
                .any(|n| matches!(n, TreeNode::Leaf(v) if v.len() != width))
            {
                return Err(not_encodable(
                    node,
                    format!("leaves must hold {width} values"),
                ));
            }
        }
        Ok(s)
    }

    /// The output's multipliers, per-output encoding and clamp; every split's feature, tree by
    /// tree in preorder; then for every output that its largest possible sum (the base value
    /// plus each tree's largest leaf value for it, in magnitude) survives requantization.
    fn check(
        &self,
        node: usize,
        _: &[i8],
        shapes: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        layer::check_output(node, &self.out)?;
        let features = Self::features(shapes, self.input);
        for tree in &self.trees {
            for n in &tree.nodes {
                if let TreeNode::Split { feature, .. } = n {
                    if *feature as u32 >= features {
                        return Err(ModelError::at(
                            Code::BadFeature,
                            node,
                            format!("a split reads feature {feature} of {features}"),
                        ));
                    }
                }
            }
        }
        let mut bound: Vec<u64> = self
            .base
            .iter()
            .map(|b| (*b as i64).unsigned_abs())
            .collect();
        let mut params = self.base.len() as u64;
        for tree in &self.trees {
            let mut largest = vec![0u64; tree.width(self.outputs)];
            for n in &tree.nodes {
                params += 1;
                if let TreeNode::Leaf(values) = n {
                    params += values.len() as u64;
                    for (l, v) in largest.iter_mut().zip(values) {
                        *l = (*l).max((*v as i64).unsigned_abs());
                    }
                }
            }
            if tree.target == ALL_OUTPUTS {
                bound.iter_mut().zip(&largest).for_each(|(b, l)| *b += l);
            } else {
                bound[tree.target as usize] += largest[0];
            }
        }
        for (o, &b) in bound.iter().enumerate() {
            requant_bound(node, b, self.out.requant_of(o), self.out.zero_point)?;
        }
        Ok(Checked {
            zero_point: self.out.zero_point,
            params,
        })
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    /// `TREE_PREPARE_ELEMS` per tree node.
    fn prepared_elems(&self) -> u64 {
        let nodes: usize = self.trees.iter().map(|t| t.nodes.len()).sum();
        TREE_PREPARE_ELEMS * nodes as u64
    }

    /// Per level of the deepest tree, every walk's step and the level's fixed overhead; the
    /// walks' starting nodes; per row, every leaf value added and the row's base values; the
    /// requantization of the sums.
    fn cost(&self, shapes: &[Vec<u32>], out: &[u32]) -> Cost {
        let rows = numel(&shapes[self.input as usize]) / Self::features(shapes, self.input) as u64;
        let walks = rows * self.trees.len() as u64;
        let leaf_values: u64 = self
            .trees
            .iter()
            .map(|t| t.width(self.outputs) as u64)
            .sum();
        let depth = self.depth() as u64;
        Cost {
            macs: 0,
            elems: depth * (TREE_STEP_PASSES * walks + TREE_LEVEL_ELEMS)
                + walks
                + rows * (leaf_values + self.outputs as u64)
                + REQUANT_PASSES * numel(out),
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let x = cx.value(self.input);
        let f = *cx.shape(self.input).last().unwrap_or(&1) as usize;
        let n = self.outputs as usize;
        let mut y = Vec::with_capacity(x.len() / f * n);
        for row in x.chunks(f) {
            let mut acc = self.base.clone();
            for tree in &self.trees {
                let leaf = tree.leaf(row);
                if tree.target == ALL_OUTPUTS {
                    acc.iter_mut().zip(leaf).for_each(|(a, v)| *a += v);
                } else {
                    acc[tree.target as usize] += leaf[0];
                }
            }
            y.extend(acc.iter().enumerate().map(|(o, &a)| self.out.apply(a, o)));
        }
        y
    }

    fn prepare(&self) -> Prepared {
        let mut p = Prepared {
            input: self.input,
            outputs: self.outputs as usize,
            depth: self.depth(),
            nodes: vec![],
            value_at: vec![],
            values: vec![],
            roots: vec![],
            targets: self.trees.iter().map(|t| t.target).collect(),
            base: self.base.iter().map(|&b| b as i64).collect(),
            out: Requantizer::new(&self.out),
        };
        for tree in &self.trees {
            let first = p.nodes.len();
            p.roots.push(first as u32);
            for (node, (l, r)) in tree.nodes.iter().zip(tree.children()) {
                let children = [(first + l) as u32, (first + r) as u32];
                match node {
                    TreeNode::Split { feature, threshold } => {
                        p.nodes.push(FlatNode {
                            feature: *feature as u32,
                            threshold: *threshold as i32,
                            children,
                        });
                        p.value_at.push(0);
                    }
                    TreeNode::Leaf(v) => {
                        p.nodes.push(FlatNode {
                            feature: 0,
                            threshold: i8::MAX as i32,
                            children,
                        });
                        p.value_at.push(p.values.len() as u32);
                        p.values.extend(v.iter().map(|&v| v as i64));
                    }
                }
            }
        }
        p
    }

    /// All walks at once, level by level (a leaf loops to itself), so that the independent
    /// walks of a level overlap their loads; inside burn through the backend extension,
    /// reading the input in place; then each row's leaf values summed and requantized.
    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let f = *cx.shape(p.input).last().unwrap_or(&1) as usize;
        let trees = p.roots.len().max(1);
        crate::host::unary(cx.value(p.input), &|x| {
            // Walk `r · trees + t` is row `r` through tree `t`.
            let mut at: Vec<u32> = Vec::with_capacity(x.len() / f * trees);
            for _ in x.chunks_exact(f) {
                at.extend_from_slice(&p.roots);
            }
            for _ in 0..p.depth {
                for (walks, features) in at.chunks_exact_mut(trees).zip(x.chunks_exact(f)) {
                    for at in walks {
                        let node = &p.nodes[*at as usize];
                        let value = features[node.feature as usize];
                        *at = node.children[(value > node.threshold as i64) as usize];
                    }
                }
            }
            let mut acc = Vec::with_capacity(x.len() / f * p.outputs);
            for walks in at.chunks_exact(trees) {
                let start = acc.len();
                acc.extend_from_slice(&p.base);
                let row = &mut acc[start..];
                for (&leaf, &target) in walks.iter().zip(&p.targets) {
                    let v = &p.values[p.value_at[leaf as usize] as usize..];
                    if target == ALL_OUTPUTS {
                        row.iter_mut().zip(v).for_each(|(a, v)| *a += v);
                    } else {
                        row[target as usize] += v[0];
                    }
                }
                for (ch, a) in row.iter_mut().enumerate() {
                    *a = p.out.apply(*a, ch);
                }
            }
            acc
        })
    }
}

#[cfg(feature = "testkit")]
impl TreeEnsemble {
    /// A random ensemble reading tensor `cur` of shape `shape`: thresholds anywhere in int8
    /// (so walks reach every depth, and the extremes go all one way), leaves small enough
    /// that typical sums land in the output's range.
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId, shape: &[u32]) -> Self {
        let features = *shape.last().unwrap_or(&1) as i64;
        let outputs = rng.range(1, 4) as u16;
        let trees = (0..rng.range(1, 12))
            .map(|_| {
                let target = if outputs >= 2 && rng.chance(40) {
                    ALL_OUTPUTS
                } else {
                    rng.range(0, outputs as i64 - 1) as u16
                };
                let width = leaf_width(target, outputs);
                let depth_limit = rng.range(0, 6) as u32;
                let mut nodes = Vec::new();
                let mut pending = vec![0u32];
                while let Some(d) = pending.pop() {
                    if d < depth_limit && rng.chance(70) {
                        nodes.push(TreeNode::Split {
                            feature: rng.range(0, features - 1) as u16,
                            threshold: rng.i8(),
                        });
                        pending.extend([d + 1, d + 1]);
                    } else {
                        let values = (0..width).map(|_| rng.range(-3000, 3000) as i32).collect();
                        nodes.push(TreeNode::Leaf(values));
                    }
                }
                Tree { target, nodes }
            })
            .collect();
        let mut out = crate::random::output(rng, outputs as u32, 1);
        for rq in &mut out.requant {
            rq.shift = rng.range(-8, -4) as i8;
        }
        TreeEnsemble {
            input: cur,
            outputs,
            out,
            base: (0..outputs)
                .map(|_| rng.range(-5000, 5000) as i32)
                .collect(),
            trees,
        }
    }
}
