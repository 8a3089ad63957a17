//! The committed golden vectors, checked against both the engine and the scalar reference,
//! and against what the case builders produce today (so an accidental change to a builder or
//! to the arithmetic shows up as a diff, not a silent rewrite).

use myelin_precompile::{decode, reference, Engine};
use myelin_tests::vectors;

fn unhex_i8(s: &str) -> Vec<i8> {
    hex::decode(s)
        .expect("hex")
        .into_iter()
        .map(|b| b as i8)
        .collect()
}

#[test]
fn committed_vectors_hold() {
    let committed = vectors::load();
    assert!(
        committed.len() >= 50,
        "at least 50 vectors, found {}",
        committed.len()
    );
    for v in &committed {
        let bytes = hex::decode(&v.model).expect("hex");
        let (model, analysis) = decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let input = unhex_i8(&v.input);
        let expected = unhex_i8(&v.output);
        assert_eq!(
            (analysis.total.macs, analysis.total.elems),
            (v.macs, v.elems),
            "{}: cost",
            v.name
        );
        assert_eq!(
            reference::run(&model, &analysis, &input),
            expected,
            "{}: reference",
            v.name
        );
        let engine = Engine::new(model, analysis);
        assert_eq!(engine.run(&input), expected, "{}: engine", v.name);
    }
}

#[test]
fn builders_reproduce_committed_vectors() {
    assert_eq!(
        vectors::build(),
        vectors::load(),
        "run `cargo run -p myelin-tests --bin gen-vectors` only if the change is intended"
    );
}
