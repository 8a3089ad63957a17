//! The bodies of the cargo-fuzz targets (`fuzz/`), as plain functions of the input bytes:
//! libFuzzer drives them under `cargo fuzz run`, and `precompile/tests/fuzz_corpus.rs`
//! replays the committed seed corpus (`fuzz/corpus/<target>/`) through the very same checks
//! in every test run, a smoke run that needs no nightly toolchain. Each panics on a finding.

pub mod decode;
pub mod dispatch;
pub mod engine_vs_reference;
