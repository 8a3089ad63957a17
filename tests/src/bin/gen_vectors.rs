//! Regenerates `tests/vectors/v1.json` from the scalar reference. Run it only on purpose
//! (a spec change): `cargo run -p myelin-tests --bin gen-vectors`, then review the diff.

fn main() {
    let vectors = myelin_tests::vectors::build();
    let json = serde_json::to_string_pretty(&vectors).expect("vectors serialize");
    std::fs::write(myelin_tests::vectors::VECTORS_PATH, json + "\n").expect("write vectors");
    println!(
        "wrote {} vectors to {}",
        vectors.len(),
        myelin_tests::vectors::VECTORS_PATH
    );
}
