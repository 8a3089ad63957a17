//! cargo-fuzz target `engine_vs_reference`: the body is `myelin_precompile::fuzz::engine_vs_reference` (see its docs), shared
//! with the corpus replay test that runs in every CI run.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| myelin_precompile::fuzz::engine_vs_reference::run(data));
