//! The largest model of three families whose cold `infer` fits one 2^24-gas transaction under
//! the current schedule, with its MACs, gas, one inference's time and the peak resident
//! memory that inference adds to the prepared model (README, "Largest model per
//! transaction").
//!
//! `CARGO_TARGET_DIR=target-release cargo bench --workspace --bench capacity` (a bench target,
//! so it builds with the same features as the other benches and rebuilds nothing).
//!
//! Families: an MLP `d → d → d → 10`; a CNN on a `3 × s × s` image (3×3 convolutions 3→16,
//! 16→32 stride 2, 32→64 stride 2, then Dense → 10); a MobileNet-v1-like network (width 1.0:
//! a 3×3 stem and 13 depthwise + pointwise blocks, global average pool, Dense → 1000) on a
//! `3 × s × s` image. Each is scaled by its size knob until validation (the model limits of
//! SPEC §4) or the 2^24 budget stops it.

mod common;

use std::time::Instant;

use common::*;
use myelin_precompile::model::*;
use myelin_precompile::random::Rng;
use myelin_precompile::{decode, encode, gas, Engine, ValidModel};

const BUDGET: u64 = 1 << 24;

/// A family: its name, its size knob's name, the model at a knob value, the first value tried.
type Family = (&'static str, &'static str, fn(u32) -> Model, u32);

fn window(k: u16, s: u16, p: u16) -> Window {
    Window {
        kernel: [k, k],
        stride: [s, s],
        pads: [p; 4],
    }
}

fn mlp(d: u32) -> Model {
    let mut rng = Rng::new(1);
    base(
        vec![d],
        vec![
            dense(&mut rng, 0, d, d, 1),
            dense(&mut rng, 1, d, d, 1),
            dense(&mut rng, 2, d, 10, 1),
        ],
    )
}

fn cnn(s: u32) -> Model {
    let mut rng = Rng::new(2);
    let o = s.div_ceil(4);
    base(
        vec![3, s, s],
        vec![
            conv_window(&mut rng, 0, 3, 16, 1, window(3, 1, 1), false),
            conv_window(&mut rng, 1, 16, 32, 1, window(3, 2, 1), false),
            conv_window(&mut rng, 2, 32, 64, 1, window(3, 2, 1), false),
            Node::Reshape(Reshape {
                input: 3,
                shape: vec![64 * o * o],
            }),
            dense(&mut rng, 4, 64 * o * o, 10, 1),
        ],
    )
}

fn mobilenet(s: u32) -> Model {
    let mut rng = Rng::new(3);
    let mut nodes = vec![conv_window(&mut rng, 0, 3, 32, 1, window(3, 2, 1), false)];
    let mut side = s.div_ceil(2);
    let mut c = 32;
    let blocks = [
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (512, 1),
        (1024, 2),
        (1024, 1),
    ];
    for (oc, stride) in blocks {
        let t = nodes.len() as TensorId;
        nodes.push(conv_window(
            &mut rng,
            t,
            c,
            c,
            c,
            window(3, stride, 1),
            false,
        ));
        nodes.push(conv_window(
            &mut rng,
            t + 1,
            c,
            oc,
            1,
            window(1, 1, 0),
            false,
        ));
        side = side.div_ceil(stride as u32);
        c = oc;
    }
    let t = nodes.len() as TensorId;
    nodes.push(pool(t, window(side as u16, side as u16, 0), true, false));
    nodes.push(Node::Reshape(Reshape {
        input: t + 1,
        shape: vec![c],
    }));
    nodes.push(dense(&mut rng, t + 2, c, 1000, 1));
    base(vec![3, s, s], nodes)
}

/// The model at `knob` if it is valid and its cold infer fits the budget: (model, gas, size).
fn fits(build: fn(u32) -> Model, knob: u32) -> Option<(ValidModel, u64, usize)> {
    let bytes = encode(&build(knob));
    let size = bytes.len();
    let valid = decode(&bytes).ok()?; // the byte-size limit too, not only the model's checks
    let gas = gas::infer_call(&valid, size);
    (gas <= BUDGET).then_some((valid, gas, size))
}

/// Resets the peak resident memory the kernel reports (`VmHWM`) to the current one.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory of this process since the last reset (VmHWM), in bytes.
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    let families: [Family; 3] = [
        ("MLP d→d→d→10", "d", mlp, 8),
        ("CNN 3 convs + Dense", "s", cnn, 4),
        ("MobileNet-v1-like (27 convs)", "s", mobilenet, 8),
    ];
    println!("| family | largest | MACs | size | cold infer gas | limited by | time | peak memory added (bound) |");
    println!("|---|---|---|---|---|---|---|---|");
    for (name, knob, build, start) in families {
        // Double, then bisect, on the largest knob that fits.
        let (mut lo, mut hi) = (start, start);
        while fits(build, hi).is_some() && hi < 1 << 20 {
            lo = hi;
            hi *= 2;
        }
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            if fits(build, mid).is_some() {
                lo = mid
            } else {
                hi = mid
            }
        }
        let Some((valid, gas, size)) = fits(build, lo) else {
            println!("| {name} | none fits | | | | | | |");
            continue;
        };
        let over = encode(&build(lo + 1));
        let limited = match decode(&over) {
            Err(e) => format!("model limits ({e})"),
            Ok(v) => format!(
                "gas ({} at {knob} = {})",
                gas::infer_call(&v, over.len()),
                lo + 1
            ),
        };
        let macs = valid.analysis().total.macs;
        let input = vec![3i8; valid.analysis().input_len()];
        let bound = 8 * (valid.analysis().total.elems + 2 * input.len() as u64);
        let engine = Engine::new(valid);
        reset_peak();
        let before = peak_rss();
        let t = Instant::now();
        engine.run(&input);
        let time = t.elapsed();
        let added = peak_rss().saturating_sub(before);
        println!(
            "| {name} | {knob} = {lo} | {:.1}M | {:.2} MiB | {gas} | {limited} | {:.1} ms | {:.1} MiB ({:.0} MiB) |",
            macs as f64 / 1e6,
            size as f64 / (1 << 20) as f64,
            time.as_secs_f64() * 1e3,
            added as f64 / (1 << 20) as f64,
            bound as f64 / (1 << 20) as f64,
        );
    }
}
