//! Replays the committed seed corpus of every cargo-fuzz target (`fuzz/corpus/<target>/`)
//! through the target's own body (`myelin_precompile::fuzz`): a smoke run of each target in
//! every CI run, without the nightly toolchain that `cargo fuzz run` needs.

use std::path::Path;

use myelin_precompile::fuzz;

/// Runs `target` on every file of its corpus and returns how many it ran.
fn replay(name: &str, target: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    for file in &files {
        let data = std::fs::read(file).expect("a corpus file");
        let run = std::panic::catch_unwind(|| target(&data));
        assert!(run.is_ok(), "{name}: {} fails", file.display());
    }
    files.len()
}

#[test]
fn decode_corpus() {
    assert!(replay("decode", fuzz::decode::run) >= 10);
}

#[test]
fn engine_vs_reference_corpus() {
    assert!(replay("engine_vs_reference", fuzz::engine_vs_reference::run) >= 10);
}

#[test]
fn dispatch_corpus() {
    assert!(replay("dispatch", fuzz::dispatch::run) >= 5);
}
