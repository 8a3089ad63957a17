//! The committed golden vectors, checked three ways: through the precompile as a transaction
//! would run them (the conformance runner: id, revert bytes, `modelInfo` figures, output and
//! gas of a cold `infer`), directly against the engine and the scalar reference, and against
//! what the case builders produce today (so an accidental change to a builder or to the
//! arithmetic shows up as a diff, not a silent rewrite).

use myelin_cli::conformance::{self, Expect, ExpectedError, Vector};
use myelin_precompile::{decode, gas, reference, Engine};
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
    let rejections = committed
        .iter()
        .filter(|v| matches!(v.expect, Expect::Error { .. }))
        .count();
    assert!(committed.len() >= 200, "{} vectors", committed.len());
    assert!(rejections >= 30, "{rejections} rejection vectors");
    for v in &committed {
        conformance::check(v).unwrap_or_else(|e| panic!("{}: {e}", v.name));
        let bytes = hex::decode(&v.model).expect("hex");
        match &v.expect {
            Expect::Error { error } => {
                let e = decode(&bytes).expect_err(&v.name);
                assert_eq!(&ExpectedError::of(&e), error, "{}: error", v.name);
            }
            Expect::Output {
                input,
                output,
                infer_gas,
                macs,
                elems,
            } => {
                let valid = decode(&bytes).unwrap_or_else(|e| panic!("{}: {e}", v.name));
                let analysis = valid.analysis();
                let raw: Vec<u8> = unhex_i8(input).into_iter().map(|b| b as u8).collect();
                let input = myelin_precompile::input::decode(&valid, &raw)
                    .unwrap_or_else(|e| panic!("{}: input {e:?}", v.name));
                let expected = unhex_i8(output);
                assert_eq!(
                    (analysis.total.macs, analysis.total.elems),
                    (*macs, *elems),
                    "{}: cost",
                    v.name
                );
                assert_eq!(
                    gas::infer_call(&valid, bytes.len()),
                    *infer_gas,
                    "{}: gas",
                    v.name
                );
                assert_eq!(
                    reference::run_input(&valid, &input),
                    expected,
                    "{}: reference",
                    v.name
                );
                let engine = Engine::new(valid.clone());
                assert_eq!(engine.run_input(&input), expected, "{}: engine", v.name);
            }
        }
    }
}

#[test]
fn builders_reproduce_committed_vectors() {
    assert_eq!(
        vectors::build(),
        vectors::load(),
        "run `cargo build --workspace --bins && target/debug/gen-vectors` only if the change is intended"
    );
}

/// The runner is not a rubber stamp: each field a client could get wrong makes it fail.
#[test]
fn the_runner_rejects_wrong_expectations() {
    let committed = vectors::load();
    let valid = committed
        .iter()
        .find(|v| matches!(v.expect, Expect::Output { .. }))
        .expect("a valid vector");
    let invalid = committed
        .iter()
        .find(|v| matches!(v.expect, Expect::Error { .. }))
        .expect("a rejection vector");
    let tamper = |v: &Vector, f: &dyn Fn(&mut Vector)| {
        let mut v = v.clone();
        f(&mut v);
        conformance::check(&v)
    };
    assert!(tamper(valid, &|v| v.id = "00".repeat(32)).is_err());
    assert!(tamper(
        valid,
        &|v| if let Expect::Output { output, .. } = &mut v.expect {
            output.replace_range(..2, if output.starts_with("00") { "01" } else { "00" });
        }
    )
    .is_err());
    assert!(tamper(
        valid,
        &|v| if let Expect::Output { infer_gas, .. } = &mut v.expect {
            *infer_gas += 1;
        }
    )
    .is_err());
    assert!(tamper(
        valid,
        &|v| if let Expect::Output { macs, .. } = &mut v.expect {
            *macs += 1;
        }
    )
    .is_err());
    assert!(tamper(
        invalid,
        &|v| if let Expect::Error { error } = &mut v.expect {
            error.code += 1;
        }
    )
    .is_err());
    assert!(tamper(
        invalid,
        &|v| if let Expect::Error { error } = &mut v.expect {
            error.node ^= 1;
        }
    )
    .is_err());
    // A valid model expected to be rejected, and a rejected one expected to run.
    assert!(tamper(valid, &|v| v.expect = invalid.expect.clone()).is_err());
    assert!(tamper(invalid, &|v| v.expect = valid.expect.clone()).is_err());
}
