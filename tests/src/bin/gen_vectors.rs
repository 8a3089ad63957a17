//! Regenerates `tests/vectors/v1.json`: outputs from the scalar reference, gas from the
//! schedule, errors from the decoder. Run it only on purpose (a spec or gas change):
//! `cargo build --workspace --bins && target/debug/gen-vectors`, then review the diff.

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
