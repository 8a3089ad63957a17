//! Vectors for TreeEnsemble and per-feature input quantization (format v3/v4): thresholds
//! hit exactly and from either side, the extreme int8 values, per-feature scales, leaves
//! that add to one output or to all, every post-transform (none, logistic as a Lut, softmax),
//! several rows, the deepest tree allowed, the overflow edge, and a rejection for each rule
//! they add.

use super::*;

fn split(feature: u16, threshold: i8) -> TreeNode {
    TreeNode::Split { feature, threshold }
}

fn leaf(values: &[i32]) -> TreeNode {
    TreeNode::Leaf(values.to_vec())
}

fn tree(target: u16, nodes: Vec<TreeNode>) -> Tree {
    Tree { target, nodes }
}

fn ensemble(input: TensorId, outputs: u16, out: Output, base: &[i32], trees: Vec<Tree>) -> Node {
    Node::TreeEnsemble(TreeEnsemble {
        input,
        outputs,
        out,
        base: base.to_vec(),
        trees,
    })
}

/// A per-feature quantization of `f` features: feature `j` has scale `2^(j − 4)` (times a
/// multiplier that varies with `j`) and zero point `10·j − 20`, as raw tabular features of
/// very different ranges would.
fn feature_quants(f: u32) -> Vec<Quant> {
    (0..f)
        .map(|j| Quant {
            scale: Scale {
                mult: HALF + (j as i32) * 0x0123_4567,
                shift: j as i8 - 4,
            },
            zero_point: (10 * j as i32 - 20) as i8,
        })
        .collect()
}

/// A model on `input_shape` quantized per feature (its last axis), running `nodes`.
fn featured(input_shape: Vec<u32>, nodes: Vec<Node>) -> Model {
    let f = *input_shape.last().expect("rank ≥ 1");
    let mut m = model(input_shape, 0, nodes);
    m.input_quant = feature_quants(f);
    if let Some(fixed) = myelin_precompile::validate::fixed_output_scale(&m) {
        m.output_scale = fixed;
    }
    m
}

/// A depth-2 regression tree over features 0 and 1 (threshold `t` at the root).
fn stump(t: i8) -> Tree {
    tree(
        0,
        vec![
            split(0, t),
            split(1, -1),
            leaf(&[100]),
            leaf(&[-100]),
            leaf(&[1000]),
        ],
    )
}

/// Unit multiplier of `2^shift`.
fn pow2(shift: i8) -> Output {
    plain(vec![rq(HALF, shift + 1)])
}

/// Input rows where feature 0 is `t − 1`, `t`, `t + 1` in turn (feature 1 alternating).
fn around(t: i8, f: usize) -> Vec<Vec<i8>> {
    [t as i32 - 1, t as i32, t as i32 + 1]
        .iter()
        .enumerate()
        .map(|(k, &x)| {
            let mut row = vec![0i8; f];
            row[0] = x.clamp(-128, 127) as i8;
            row[1] = if k % 2 == 0 { -1 } else { 0 };
            row
        })
        .collect()
}

/// A chain of `depth` splits on feature 0 at thresholds −122, −114, … (each right child the
/// next split), its leaves numbered by depth.
fn chain(depth: usize) -> Tree {
    let mut nodes = Vec::new();
    for d in 0..depth {
        nodes.push(split(0, (d as i32 * 8 - 122) as i8));
        nodes.push(leaf(&[d as i32]));
    }
    nodes.push(leaf(&[depth as i32]));
    tree(0, nodes)
}

pub fn cases() -> Vec<Case> {
    let logistic = |i: usize| {
        let x = (i as f64 - 128.0 + 20.0) / 16.0;
        ((256.0 / (1.0 + (-x).exp())).round() - 128.0).clamp(-128.0, 127.0) as i8
    };
    vec![
        case(
            "tree_threshold_exact",
            "a split at threshold 10: 9 and 10 go left (x ≤ t), 11 goes right",
            featured(vec![2], vec![ensemble(0, 1, pow2(-3), &[3], vec![stump(10)])]),
            around(10, 2),
        ),
        case(
            "tree_threshold_extremes",
            "thresholds −128 (only −128 goes left) and 126 (only 127 goes right), inputs at both ends",
            featured(
                vec![3],
                vec![ensemble(
                    0,
                    1,
                    pow2(-2),
                    &[0],
                    vec![
                        tree(0, vec![split(0, -128), leaf(&[50]), leaf(&[-50])]),
                        tree(0, vec![split(2, 126), leaf(&[7]), leaf(&[-7])]),
                    ],
                )],
            ),
            vec![
                vec![-128, 0, -128],
                vec![127, 0, 127],
                vec![-127, 0, 126],
                vec![-128, 127, 127],
            ],
        ),
        case(
            "tree_per_feature_quant",
            "a version-3 model: five features, each with its own scale and zero point, a depth-3 tree over all of them",
            featured(
                vec![5],
                vec![ensemble(
                    0,
                    1,
                    output(vec![rq(0x5A82_7999, -4)], -3, -128, 127),
                    &[-250],
                    vec![tree(
                        0,
                        vec![
                            split(4, 0),
                            split(3, 50),
                            split(2, -50),
                            leaf(&[10]),
                            leaf(&[20]),
                            leaf(&[30]),
                            split(1, 100),
                            leaf(&[40]),
                            split(0, -100),
                            leaf(&[-50]),
                            leaf(&[600]),
                        ],
                    )],
                )],
            ),
            vec![
                vec![0, 0, 0, 0, 0],
                vec![-101, 101, 5, 60, 1],
                vec![-100, 100, -51, 50, 1],
                vec![127, 127, 127, 127, 127],
            ],
        ),
        case(
            "tree_forest_every_output",
            "a random-forest style ensemble: three outputs, leaves adding to every output, a per-output multiplier",
            featured(
                vec![4],
                vec![ensemble(
                    0,
                    3,
                    output(
                        vec![rq(HALF, -5), rq(0x7000_0000, -6), rq(0x4100_0000, -4)],
                        5,
                        -100,
                        100,
                    ),
                    &[0, 100, -100],
                    (0..5)
                        .map(|t| {
                            tree(
                                ALL_OUTPUTS,
                                vec![
                                    split(t % 4, (t as i32 * 20 - 40) as i8),
                                    leaf(&[300 * t as i32, -200, 17]),
                                    split((t + 1) % 4, 0),
                                    leaf(&[-1000, 400, 0]),
                                    leaf(&[0, 0, 999]),
                                ],
                            )
                        })
                        .collect(),
                )],
            ),
            vec![
                vec![0, 0, 0, 0],
                vec![-128, 127, -128, 127],
                vec![50, -50, 25, -25],
            ],
        ),
        case(
            "tree_boosted_softmax",
            "gradient boosting over three classes (one target per tree, two rounds), base values, then Softmax",
            featured(
                vec![3],
                vec![
                    ensemble(
                        0,
                        3,
                        plain(vec![rq(HALF, -3)]),
                        &[-40, 25, 0],
                        (0..6)
                            .map(|t| {
                                tree(
                                    (t % 3) as u16,
                                    vec![
                                        split((t % 3) as u16, (10 * t - 20) as i8),
                                        leaf(&[200]),
                                        leaf(&[-150 + 40 * t]),
                                    ],
                                )
                            })
                            .collect(),
                    ),
                    softmax(1, |d| (65535.0 * (-(d as f64) / 16.0).exp()).round() as u16),
                ],
            ),
            vec![vec![0, 0, 0], vec![-30, 40, 120], vec![127, -128, 0]],
        ),
        case(
            "tree_binary_logistic",
            "a binary classifier as onnxruntime computes it: two outputs, leaves [−w, w], then a sigmoid Lut",
            featured(
                vec![2],
                vec![
                    ensemble(
                        0,
                        2,
                        plain(vec![rq(HALF, -4)]),
                        &[-120, 120],
                        vec![
                            tree(
                                ALL_OUTPUTS,
                                vec![split(0, 3), leaf(&[400, -400]), leaf(&[-300, 300])],
                            ),
                            tree(
                                ALL_OUTPUTS,
                                vec![split(1, -60), leaf(&[-90, 90]), leaf(&[160, -160])],
                            ),
                        ],
                    ),
                    lut(1, -128, logistic),
                ],
            ),
            vec![vec![3, -60], vec![4, -59], vec![-128, 127]],
        ),
        case(
            "tree_rows",
            "an input of three rows of four features: each row walks every tree",
            featured(
                vec![3, 4],
                vec![ensemble(0, 1, pow2(-5), &[0], vec![stump(0), stump(-64), stump(64)])],
            ),
            vec![
                seq(12, -60, 11),
                vec![0, -1, 0, 0, -64, -1, 9, 9, 64, 0, 1, 1],
            ],
        ),
        case(
            "tree_leaf_only_and_deepest",
            "a tree that is a single leaf next to a chain of 32 splits (the deepest allowed): every walk takes 32 steps",
            featured(
                vec![2],
                vec![ensemble(
                    0,
                    1,
                    pow2(0),
                    &[0],
                    vec![tree(0, vec![leaf(&[-5])]), chain(32)],
                )],
            ),
            vec![vec![-128, 0], vec![0, 0], vec![126, 0], vec![127, 0]],
        ),
        case(
            "tree_overflow_edge",
            "leaf sums at the int32 overflow bound: base + the largest leaves is 2^31 − 129 with zero point ±127",
            featured(
                vec![2],
                vec![ensemble(
                    0,
                    2,
                    output(vec![rq(i32::MAX, 0)], -127, -128, 127),
                    &[(1 << 30) - 129, -((1 << 30) - 129)],
                    vec![tree(
                        ALL_OUTPUTS,
                        vec![
                            split(1, 0),
                            leaf(&[1 << 30, -(1 << 30)]),
                            leaf(&[-(1 << 30), 1 << 30]),
                        ],
                    )],
                )],
            ),
            vec![vec![0, 0], vec![0, 1]],
        ),
        case(
            "tree_v4_with_ids",
            "a version-4 model (per-feature quantization and an index input): an embedding row concatenated with the features, then a tree over both",
            {
                let mut m = featured(
                    vec![2],
                    vec![
                        Node::Gather(Gather {
                            index: 0,
                            start: 0,
                            count: 1,
                            rows: 3,
                            dim: 2,
                            zero_point: 0,
                            table: vec![-100, 100, 0, 0, 100, -100],
                        }),
                        Node::Reshape(Reshape {
                            input: 1,
                            shape: vec![2],
                        }),
                        Node::Concat(Concat {
                            inputs: vec![(0, rq(HALF, 1)), (2, rq(HALF, 1))],
                            axis: 0,
                            zero_point: 0,
                        }),
                        ensemble(
                            3,
                            1,
                            pow2(-2),
                            &[0],
                            vec![tree(
                                0,
                                vec![split(2, 0), leaf(&[-100]), split(0, 0), leaf(&[50]), leaf(&[200])],
                            )],
                        ),
                    ],
                );
                m.index_inputs = vec![IndexInput { limits: vec![3] }];
                m
            },
            vec![
                vec![0, 0, 0, 0],
                vec![1, 0, 0, 2],
                vec![-1, 5, 0, 1],
            ],
        ),
    ]
}

pub fn rejections() -> Vec<Rejection> {
    let one = |nodes: Vec<Tree>, outputs: u16| {
        featured(
            vec![2],
            vec![ensemble(
                0,
                outputs,
                pow2(0),
                &vec![0; outputs as usize],
                nodes,
            )],
        )
    };
    // Version 3 of a one-feature input: two quantizations written for one feature (the
    // reader stops at the feature count).
    let mut one_feature = model(
        vec![1],
        0,
        vec![ensemble(0, 1, pow2(0), &[0], vec![stump(0)])],
    );
    one_feature.input_quant = feature_quants(2);
    let mut all_equal = one(vec![stump(0)], 1);
    all_equal.input_quant = vec![feature_quants(1)[0]; 2];
    vec![
        rejection(
            "reject_feature_quant_one_feature",
            "version 3 with an input of one feature (version 1 is its encoding)",
            one_feature,
            Code::FeatureQuantNotCanonical,
        ),
        rejection(
            "reject_feature_quant_all_equal",
            "version 3 whose per-feature quantizations are all equal",
            all_equal,
            Code::FeatureQuantNotCanonical,
        ),
        rejection(
            "reject_tree_none",
            "a TreeEnsemble of no trees",
            one(vec![], 1),
            Code::BadTree,
        ),
        rejection(
            "reject_tree_target",
            "a tree adding to output 2 of 2",
            one(vec![tree(2, vec![leaf(&[1])])], 2),
            Code::BadTree,
        ),
        rejection(
            "reject_tree_every_output_of_one",
            "a tree adding to every output of a one-output ensemble (target 0 is its encoding)",
            one(vec![tree(ALL_OUTPUTS, vec![leaf(&[1])])], 1),
            Code::BadTree,
        ),
        rejection(
            "reject_tree_feature",
            "a split on feature 2 of a two-feature input",
            one(vec![tree(0, vec![split(2, 0), leaf(&[1]), leaf(&[2])])], 1),
            Code::BadFeature,
        ),
        rejection(
            "reject_tree_too_deep",
            "a chain of 33 splits",
            one(vec![chain(33)], 1),
            Code::TreeTooDeep,
        ),
        rejection(
            "reject_tree_overflow",
            "leaf sums one past the int32 overflow bound",
            featured(
                vec![2],
                vec![ensemble(
                    0,
                    2,
                    output(vec![rq(i32::MAX, 0)], -127, -128, 127),
                    &[(1 << 30) - 128, 0],
                    vec![tree(
                        ALL_OUTPUTS,
                        vec![split(1, 0), leaf(&[1 << 30, 0]), leaf(&[0, 0])],
                    )],
                )],
            ),
            Code::AccumulatorOverflow,
        ),
    ]
}
