//! The engine (burn) against the scalar reference, byte for byte, on hundreds of random valid
//! models and inputs per run, once per instruction-set path of the matrix kernel; plus
//! canonical round trips of every generated model.
//!
//! Models are drawn from a proptest `Strategy` over [`random::Spec`] (input shape, op kinds,
//! parameter seeds), so a failure shrinks to a model with few nodes and small dimensions
//! before it is reported; fixed seeds of [`random::model`] cover the same known models on
//! every run.

use myelin_precompile::gemm::{with_path, Path};
use myelin_precompile::input::Input;
use myelin_precompile::model::Model;
use myelin_precompile::random::{self, Rng, Spec};
use myelin_precompile::{decode, encode, reference, validate, Engine};
use proptest::prelude::*;

/// Validates, round-trips and runs `model` on three inputs drawn from `rng`; `what` names the
/// model in failure messages.
fn check_model(model: &Model, rng: &mut Rng, what: &str) {
    let valid = validate::validate(model.clone())
        .unwrap_or_else(|e| panic!("{what}: generator made an invalid model: {e}\n{model:?}"));
    let bytes = encode(model);
    let parsed = decode(&bytes).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(parsed, valid, "{what}: decode(encode(m)) != m");
    let engine = Engine::new(parsed);
    for _ in 0..3 {
        let input = Input {
            values: random::input(rng, valid.analysis().input_len()),
            ids: random::ids(rng, model),
        };
        let expected = reference::run_input(&valid, &input);
        // Every matrix-kernel path this CPU has (AVX-512 VNNI, AVX2, NEON, scalar), forced.
        for &path in Path::available() {
            let got = with_path(path, || engine.run_input(&input));
            assert_eq!(
                got, expected,
                "{what}: engine on {path:?} != reference\nmodel {model:?}\ninput {input:?}"
            );
            assert_eq!(got.len(), valid.analysis().output_len());
        }
    }
}

/// Input shapes of every rank, simplest first (proptest shrinks toward the first choice and
/// toward the low end of each range).
fn input_shape() -> impl Strategy<Value = Vec<u32>> {
    prop_oneof![
        (1u32..=24).prop_map(|n| vec![n]),
        (1u32..=3, 1u32..=16).prop_map(|(a, b)| vec![a, b]),
        (1u32..=4, 2u32..=9, 2u32..=9).prop_map(|(c, h, w)| vec![c, h, w]),
        prop::collection::vec(1u32..=4, 4),
    ]
}

/// 1 to 7 nodes of any kind (all 22 of `random::Spec`); shrinking drops nodes and lowers
/// kinds and seeds.
fn spec() -> impl Strategy<Value = Spec> {
    (
        input_shape(),
        any::<u64>(),
        prop::collection::vec((0..random::KINDS, any::<u64>()), 1..=7),
    )
        .prop_map(|(input_shape, quant_seed, nodes)| Spec {
            input_shape,
            quant_seed,
            nodes,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_reference(spec in spec(), input_seed in any::<u64>()) {
        let model = random::model_of(&spec);
        check_model(&model, &mut Rng::new(input_seed), &format!("{spec:?}"));
    }
}

/// Fixed seeds, so every run also covers the same known models.
#[test]
fn engine_matches_reference_on_fixed_seeds() {
    for seed in 0..200 {
        let mut rng = Rng::new(seed);
        let model = random::model(&mut rng, 6);
        check_model(&model, &mut rng, &format!("seed {seed}"));
    }
}

/// Models with index inputs (format v2): Gathers of random ids, then nodes of every kind.
#[test]
fn engine_matches_reference_with_index_inputs() {
    let mut gathers = 0;
    for seed in 0..200 {
        let mut rng = Rng::new(seed);
        let model = random::indexed_model(&mut rng, 4);
        gathers += model
            .nodes
            .iter()
            .filter(|n| n.op_name() == "Gather")
            .count();
        check_model(&model, &mut rng, &format!("indexed seed {seed}"));
    }
    assert!(gathers > 200, "{gathers} Gathers");
}

/// Tree ensembles on per-feature quantized inputs (format v3), with and without a
/// post-transform, on random inputs and on the extremes (every feature at −128, at 127, and
/// at each split's threshold, so comparisons that tie are exercised).
#[test]
fn engine_matches_reference_on_tree_models() {
    use myelin_precompile::model::{Node, TreeNode};
    for seed in 0..200 {
        let mut rng = Rng::new(seed);
        let model = random::tree_model(&mut rng);
        check_model(&model, &mut rng, &format!("tree seed {seed}"));
        let valid = validate::validate(model.clone()).unwrap();
        let engine = Engine::new(valid.clone());
        let len = valid.analysis().input_len();
        let Node::TreeEnsemble(t) = &model.nodes[0] else {
            unreachable!("tree_model starts with its ensemble")
        };
        let thresholds = t
            .trees
            .iter()
            .flat_map(|tree| &tree.nodes)
            .filter_map(|n| match n {
                TreeNode::Split { threshold, .. } => Some(*threshold),
                TreeNode::Leaf(_) => None,
            });
        for x in [i8::MIN, i8::MAX].into_iter().chain(thresholds) {
            let input = vec![x; len];
            assert_eq!(
                engine.run(&input),
                reference::run(&valid, &input),
                "tree seed {seed}, every feature {x}"
            );
        }
    }
}

/// The strategy reaches every op and ranks 1 to 4, so the property above tests them all.
#[test]
fn specs_cover_every_op_and_rank() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut ops, mut ranks) = (std::collections::BTreeSet::new(), [false; 4]);
    for _ in 0..300 {
        let model = random::model_of(&spec().new_tree(&mut runner).unwrap().current());
        ranks[model.input_shape.len() - 1] = true;
        ops.extend(model.nodes.iter().map(|n| n.op_name()));
    }
    assert_eq!(ranks, [true; 4]);
    assert_eq!(ops.len(), 22, "ops reached: {ops:?}");
}
