//! Benchmarks only: see `benches/gas.rs` (`cargo bench -p myelin-benches`).
