//! Time one global pool over a 1 Mi-element map, read from the input and from an
//! intermediate tensor, against its gas: pools read their input in place through the backend
//! extension (`precompile/src/host.rs`), where burn's `into_data` of a shared tensor copied
//! it element by element (~38 ns each, once charged as 12 elements per input element).
//!
//! `CARGO_TARGET_DIR=target-release cargo build --release --workspace --examples &&
//! target-release/release/examples/probe`

#[path = "../benches/common/mod.rs"]
mod common;

use std::time::Instant;

use common::*;
use myelin_precompile::model::*;
use myelin_precompile::{decode, encode, gas, Engine};

/// Best of 5 runs of the model's inference: gas, time, ns per gas.
fn time(what: &str, nodes: Vec<Node>) {
    let valid = decode(&encode(&base(vec![1, 1024, 1024], nodes))).expect("valid model");
    let gas = gas::inference(&valid);
    let x = vec![1i8; valid.analysis().input_len()];
    let engine = Engine::new(valid);
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            engine.run(&x);
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    println!(
        "{what}: gas {gas}, {:.2} ms, {:.1} ns/gas",
        best * 1e3,
        best * 1e9 / gas as f64
    );
}

fn main() {
    let global = |input| {
        let window = Window {
            kernel: [1024, 1024],
            stride: [1, 1],
            pads: [0; 4],
        };
        pool(input, window, false, false)
    };
    time("global pool of the input", vec![global(0)]);
    time("4 global pools of the input", vec![global(0); 4]);
    time("clamp", vec![clamp(0)]);
    time(
        "clamp, 3 global pools of it",
        vec![clamp(0), global(1), global(1), global(1)],
    );
}
