//! `myelin conformance`: one line per vector, a summary, and a failing exit status when a
//! vector fails (the committed vectors themselves are checked in `tests/tests/vectors.rs`).

use std::path::Path;
use std::process::Command;

use myelin_cli::conformance::{self, Expect};

#[test]
fn reports_each_vector_and_fails_on_a_wrong_one() {
    let committed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/v1.json"),
    )
    .unwrap();
    let vectors = conformance::parse(&committed).unwrap();
    let good = vectors
        .iter()
        .find(|v| matches!(v.expect, Expect::Output { .. }))
        .unwrap()
        .clone();
    let mut bad = good.clone();
    bad.name = "tampered".into();
    if let Expect::Output { infer_gas, .. } = &mut bad.expect {
        *infer_gas -= 1;
    }
    let run = |vectors: &[conformance::Vector]| {
        let path = std::env::temp_dir().join(format!(
            "myelin-conformance-{}-{}.json",
            vectors.len(),
            std::process::id()
        ));
        std::fs::write(&path, serde_json::to_string(vectors).unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_myelin"))
            .arg("conformance")
            .arg(&path)
            .output()
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap())
    };

    let (ok, stdout) = run(std::slice::from_ref(&good));
    assert!(ok, "{stdout}");
    assert_eq!(stdout, format!("ok    {}\n1 passed, 0 failed\n", good.name));

    let (ok, stdout) = run(&[good.clone(), bad]);
    assert!(!ok, "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], format!("ok    {}", good.name));
    assert!(lines[1].starts_with("FAIL  tampered: "), "{stdout}");
    assert_eq!(lines[2], "1 passed, 1 failed");
}
