//! The engine (burn) against the scalar reference, byte for byte, on hundreds of random valid
//! models and inputs per run; plus canonical round trips of every generated model.

use myelin_precompile::random::{self, Rng};
use myelin_precompile::{decode, encode, reference, validate, Engine};
use proptest::prelude::*;

fn check_seed(seed: u64) {
    let mut rng = Rng::new(seed);
    let model = random::model(&mut rng, 6);
    let analysis = validate::validate(&model)
        .unwrap_or_else(|e| panic!("seed {seed}: generator made an invalid model: {e}\n{model:?}"));
    let bytes = encode(&model);
    let (parsed, parsed_analysis) = decode(&bytes).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(parsed, model, "seed {seed}: decode(encode(m)) != m");
    assert_eq!(parsed_analysis, analysis);
    let engine = Engine::new(parsed, parsed_analysis);
    for _ in 0..3 {
        let input = random::input(&mut rng, analysis.input_len());
        let expected = reference::run(&model, &analysis, &input);
        let got = engine.run(&input);
        assert_eq!(
            got, expected,
            "seed {seed}: engine != reference\nmodel {model:?}\ninput {input:?}"
        );
        assert_eq!(got.len(), analysis.output_len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn engine_matches_reference(seed in any::<u64>()) {
        check_seed(seed);
    }
}

/// Fixed seeds, so every run also covers the same known models.
#[test]
fn engine_matches_reference_on_fixed_seeds() {
    for seed in 0..200 {
        check_seed(seed);
    }
}
