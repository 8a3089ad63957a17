//! Adversarial search for underpriced models: does any valid model cost more than ~20 ns of
//! CPU per gas of its inference, or more peak memory per gas than SPEC §5 bounds
//! (`8 · 1000 / ELEM_MILLI` bytes: every element the engine writes is counted, at most 8
//! bytes each)?
//!
//! ```text
//! CARGO_TARGET_DIR=target-release cargo bench --workspace --bench search -- [--quick] [--seed N] [--family a,b]
//! ```
//!
//! 1. The known attacks (issue 10's table) are measured first, each as a fixed model.
//! 2. For every operator family a parametric generator turns a vector of knobs (shapes,
//!    windows, strides, paddings, groups, node counts, fan-out) into a model; a hill climber
//!    with random restarts mutates the knobs (×2, ÷2, ±1, random) and keeps a mutant when its
//!    ns per gas rises. Models that validation rejects score 0 (rejection is a fine outcome
//!    for an attack), as do models over `GAS_CAP`.
//! 3. Cold model loads (parse + validate + prepare) are searched the same way against
//!    `gas::load`.
//!
//! Each case is timed as the best of a few runs (the machine is shared: best-of filters
//! other processes' noise) and its CPU time is read from `/proc/self/stat`, so a kernel that
//! spreads work over threads cannot hide it; the score is the larger of the two. Peak
//! resident memory above the pre-run level comes from `VmHWM` after resetting it through
//! `/proc/self/clear_refs`. The run ends with the worst shapes found, by ns/gas and by
//! bytes/gas. `--quick` bounds the search to a few minutes; the default is ~20 minutes.

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::*;
use myelin_precompile::input::{self, Input};
use myelin_precompile::model::*;
use myelin_precompile::random::{self, Rng};
use myelin_precompile::{decode, encode, gas, limits, Engine};

/// Largest inference gas measured: EIP-7825's transaction cap (2^24). Larger models cannot
/// be called on a chain that keeps the cap; their price scales the same way.
const GAS_CAP: u64 = 1 << 24;

/// One measured case.
#[derive(Clone)]
struct Measure {
    gas: u64,
    /// Best wall time of one run.
    wall_ns: f64,
    /// Mean CPU time of one run (all threads), when the runs were long enough to tell.
    cpu_ns: Option<f64>,
    /// Peak resident memory above the level before the first run.
    rss: Option<u64>,
}

impl Measure {
    fn ns(&self) -> f64 {
        self.wall_ns.max(self.cpu_ns.unwrap_or(0.0))
    }
    fn ns_per_gas(&self) -> f64 {
        self.ns() / self.gas as f64
    }
    fn bytes_per_gas(&self) -> f64 {
        self.rss.unwrap_or(0) as f64 / self.gas as f64
    }
}

/// CPU time of the process (user + system), in clock ticks of 10 ms.
fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak-RSS counter to the current RSS (Linux `clear_refs` 5) and returns it.
fn reset_peak() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_kb("VmRSS:")
}

struct Timing {
    min_time: Duration,
    max_runs: u32,
}

/// Times `f` (whose gas is `gas`): best wall time of runs until `min_time` has passed (at
/// least one run, more only while a run is under a second).
fn time(gas: u64, t: &Timing, mut f: impl FnMut()) -> Measure {
    let base = reset_peak();
    let ticks = cpu_ticks();
    let start = Instant::now();
    let (mut best, mut runs) = (f64::INFINITY, 0u32);
    loop {
        let t0 = Instant::now();
        f();
        let dt = t0.elapsed();
        best = best.min(dt.as_nanos() as f64);
        runs += 1;
        if start.elapsed() >= t.min_time || runs >= t.max_runs || dt > Duration::from_secs(1) {
            break;
        }
    }
    let total = start.elapsed();
    let rss = match (base, status_kb("VmHWM:")) {
        (Some(b), Some(p)) => Some(p.saturating_sub(b) * 1024),
        _ => None,
    };
    // Ticks are 10 ms: trust them only over a quarter second.
    let cpu_ns = match (ticks, cpu_ticks()) {
        (Some(a), Some(b)) if total > Duration::from_millis(250) => {
            Some((b - a) as f64 * 1e7 / runs as f64)
        }
        _ => None,
    };
    Measure {
        gas,
        wall_ns: best,
        cpu_ns,
        rss,
    }
}

/// Measures one inference of `model`, or says why it is not a candidate.
fn infer(model: &Model, t: &Timing) -> Result<Measure, String> {
    let bytes = encode(model);
    let valid = decode(&bytes).map_err(|e| format!("rejected: {e}"))?;
    let a = valid.analysis();
    // Every call pays IO_BYTE per input and output byte (calldata, returndata) besides the
    // inference: creating the input tensor and reading the output back are that work.
    let gas =
        gas::inference(&valid) + gas::IO_BYTE * (input::byte_len(&valid) + a.output_len()) as u64;
    if gas > GAS_CAP {
        return Err(format!("{gas} gas > cap"));
    }
    let x = Input {
        values: vec![7i8; a.input_len()],
        ids: random::last_ids(model),
    };
    let engine = Engine::new(valid);
    Ok(time(gas, t, || {
        std::hint::black_box(engine.run_input(&x));
    }))
}

/// Measures a cold load of `model` (parse + validate + prepare) against its gas
/// (`gas::load` + `gas::prepare`).
fn load(model: &Model, t: &Timing) -> Result<Measure, String> {
    let bytes = encode(model);
    if bytes.len() > limits::MAX_MODEL_BYTES {
        return Err("too large".into());
    }
    let valid = decode(&bytes).map_err(|e| format!("rejected: {e}"))?;
    let gas = gas::load(bytes.len(), false) + gas::prepare(valid.analysis());
    Ok(time(gas, t, || {
        let valid = decode(&bytes).unwrap_or_else(|_| unreachable!("decoded above"));
        std::hint::black_box(Engine::new(valid));
    }))
}

fn win(kernel: [u32; 2], stride: [u32; 2], pads: [u32; 4]) -> Window {
    let u = |v: u32| v.min(u16::MAX as u32) as u16;
    Window {
        kernel: kernel.map(u),
        stride: stride.map(u),
        pads: pads.map(u),
    }
}

/// A parametric family: knob names with their ranges, and the model they describe.
struct Family {
    name: &'static str,
    knobs: &'static [(&'static str, u32, u32)],
    /// Starting points (the known attacks of the family and a friendly shape).
    seeds: &'static [&'static [u32]],
    build: fn(&[u32], &mut Rng) -> Model,
    /// Measures a cold load instead of an inference.
    is_load: bool,
}

/// Conv2d/Conv1d knobs: groups, in/out channels per group, map, kernel, stride, padding
/// (clipped below the kernel), fan-out (nodes all reading the input).
fn conv_family(k: &[u32], rng: &mut Rng, one_d: bool) -> Model {
    let [g, icg, ocg, h, w, kh, kw, sh, sw, p, nodes] = k[..11] else {
        unreachable!("11 knobs")
    };
    let (h, mut kh, sh) = if one_d { (1, 1, 1) } else { (h, kh, sh) };
    // Within the 16 MiB model limit (a larger model could never be published, and building
    // its weights would take gigabytes): halve the largest weight dimension until one node
    // fits, then keep as many nodes as fit.
    let (mut icg, mut ocg, mut kw) = (icg, ocg, kw);
    let weights = |d: [u32; 4]| g as u64 * d.iter().map(|&v| v as u64).product::<u64>();
    while weights([icg, ocg, kh, kw]) > limits::MAX_MODEL_BYTES as u64 {
        let largest = [&mut icg, &mut ocg, &mut kh, &mut kw]
            .into_iter()
            .max_by_key(|v| **v)
            .unwrap_or_else(|| unreachable!("four dimensions"));
        *largest = (*largest / 2).max(1);
        if weights([icg, ocg, kh, kw]) == g as u64 {
            break; // groups alone exceed the limit: validation rejects the model
        }
    }
    let nodes =
        nodes.min((limits::MAX_MODEL_BYTES as u64 / weights([icg, ocg, kh, kw])).max(1) as u32);
    let pv = |kern: u32| p.min(kern - 1);
    let window = win(
        [kh, kw],
        [sh, sw],
        [
            if one_d { 0 } else { pv(kh) },
            pv(kw),
            if one_d { 0 } else { pv(kh) },
            pv(kw),
        ],
    );
    let shape = if one_d {
        vec![g * icg, w]
    } else {
        vec![g * icg, h, w]
    };
    let nodes = (0..nodes)
        .map(|_| conv_window(rng, 0, g * icg, g * ocg, g, window, one_d))
        .collect();
    base(shape, nodes)
}

/// `nodes` nodes of one kind in a chain over a `[rows, len]` tensor.
fn chain(rows: u32, len: u32, nodes: u32, node: impl Fn(TensorId) -> Node) -> Model {
    let shape = if rows == 1 {
        vec![len]
    } else {
        vec![rows, len]
    };
    base(shape, (0..nodes as TensorId).map(node).collect())
}

const M: u32 = 1 << 20;

fn families() -> Vec<Family> {
    vec![
        Family {
            name: "dense",
            knobs: &[("rows", 1, M), ("k", 1, M), ("n", 1, M), ("nodes", 1, 256)],
            seeds: &[
                &[1, 512, 512, 1],
                &[1, 1, 1, 256],
                &[M, 1, 1, 1],
                &[1024, 1024, 1, 1],
                // Weights beyond the caches, streamed once per inference (`STREAM_MILLI`):
                // one row, and 5 rows (two row tiles) over panels larger than L2.
                &[1, 4000, 4000, 1],
                &[5, 200_000, 80, 1],
            ],
            build: |k, rng| {
                let [rows, kk, n, nodes] = k[..4] else {
                    unreachable!()
                };
                // Every node reads the input (fan-out), so shapes stay fixed. No more nodes
                // than the 16 MiB model limit can hold (more could never be published).
                let nodes = nodes
                    .min((limits::MAX_MODEL_BYTES as u64 / (kk as u64 * n as u64)).max(1) as u32);
                let shape = if rows == 1 { vec![kk] } else { vec![rows, kk] };
                base(shape, (0..nodes).map(|_| dense(rng, 0, kk, n, 1)).collect())
            },
            is_load: false,
        },
        Family {
            name: "conv2d",
            knobs: &[
                ("groups", 1, M),
                ("in/group", 1, 4096),
                ("out/group", 1, 4096),
                ("h", 1, 4096),
                ("w", 1, 4096),
                ("kh", 1, 4096),
                ("kw", 1, 4096),
                ("sh", 1, 65535),
                ("sw", 1, 65535),
                ("pad", 0, 65535),
                ("nodes", 1, 256),
            ],
            seeds: &[
                &[1, 16, 32, 32, 32, 3, 3, 1, 1, 1, 1],
                &[1, 1, 1, 1024, 1024, 1, 1, 1024, 1024, 0, 1],
                &[M, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1],
                &[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 256],
                &[1, 1, 1, 1024, 1024, 1, 1, 1024, 1024, 0, 256],
                &[1, 1, 1, 1, 1, 2047, 2047, 1, 1, 2046, 1],
            ],
            build: |k, rng| conv_family(k, rng, false),
            is_load: false,
        },
        Family {
            name: "conv1d",
            knobs: &[
                ("groups", 1, M),
                ("in/group", 1, 4096),
                ("out/group", 1, 4096),
                ("-", 1, 1),
                ("l", 1, M),
                ("-", 1, 1),
                ("k", 1, 65535),
                ("-", 1, 1),
                ("s", 1, 65535),
                ("pad", 0, 65535),
                ("nodes", 1, 256),
            ],
            seeds: &[
                &[1, 1, 1, 1, M, 1, 3, 1, 1, 1, 1],
                &[1, 16, 16, 1, 4096, 1, 3, 1, 1, 1, 1],
                &[1, 1, 1, 1, M, 1, 1, 1, 65535, 0, 256],
            ],
            build: |k, rng| conv_family(k, rng, true),
            is_load: false,
        },
        Family {
            name: "pool",
            knobs: &[
                ("avg", 0, 1),
                ("include_pad", 0, 1),
                ("c", 1, M),
                ("h", 1, M),
                ("w", 1, M),
                ("kh", 1, 65535),
                ("kw", 1, 65535),
                ("sh", 1, 65535),
                ("sw", 1, 65535),
                ("pad", 0, 65535),
                ("nodes", 1, 256),
            ],
            seeds: &[
                &[0, 0, 1, 1, 1, 8191, 8191, 8, 8, 8190, 1],
                &[1, 1, 1, 1, 1, 8191, 8191, 8, 8, 8190, 1],
                &[0, 0, 1, 1024, 1024, 1024, 1024, 1, 1, 0, 1],
                &[1, 0, 1, 1024, 1024, 1024, 1024, 1, 1, 0, 1],
                &[0, 0, 32, 64, 64, 3, 3, 1, 1, 1, 1],
                &[1, 0, 1, 1024, 1024, 1024, 1024, 1, 1, 0, 256],
            ],
            build: |k, _| {
                let [avg, inc, c, h, w, kh, kw, sh, sw, p, nodes] = k[..11] else {
                    unreachable!()
                };
                let window = win(
                    [kh, kw],
                    [sh, sw],
                    [p.min(kh - 1), p.min(kw - 1), p.min(kh - 1), p.min(kw - 1)],
                );
                let node = pool(0, window, avg == 1, inc == 1);
                base(vec![c, h, w], vec![node; nodes as usize])
            },
            is_load: false,
        },
        Family {
            name: "elementwise",
            knobs: &[
                ("kind: add clamp reshape lut softmax", 0, 4),
                ("rows", 1, M),
                ("len", 1, M),
                ("nodes", 1, 256),
            ],
            seeds: &[
                &[0, 1, M, 1],
                &[0, 1, 1, 256],
                &[1, 1, 4, 256],
                &[2, 1, M, 256],
                &[3, 1, 65536, 8],
                &[4, 256, 256, 1],
                &[4, M, 1, 1],
                &[4, 1, 1, 256],
            ],
            build: |k, _| {
                let [kind, rows, len, nodes] = k[..4] else {
                    unreachable!()
                };
                chain(rows, len, nodes, |i| match kind {
                    0 => add(i, i),
                    1 => clamp(i),
                    2 => Node::Reshape(Reshape {
                        input: i,
                        shape: vec![rows * len],
                    }),
                    3 => lut(i),
                    _ => softmax(i),
                })
            },
            is_load: false,
        },
        Family {
            name: "layout",
            knobs: &[
                ("kind: transpose slice pad resize", 0, 3),
                ("c", 1, M),
                ("h", 1, M),
                ("w", 1, M),
                ("param", 1, 65535),
                ("nodes", 1, 256),
            ],
            seeds: &[
                &[0, 64, 64, 64, 1, 1],
                &[0, 1, 1, 1, 1, 256],
                &[1, 1, 1024, 1024, 1024, 1],
                &[2, 1, 1, 1, 65535, 8],
                &[3, 1, 1, 1, 1024, 1],
                &[3, 256, 2, 2, 2, 64],
            ],
            build: |k, _| {
                let [kind, c, h, w, param, nodes] = k[..6] else {
                    unreachable!()
                };
                let node = |_| match kind {
                    0 => Node::Transpose(Transpose {
                        input: 0,
                        perm: if param % 2 == 0 {
                            vec![2, 0, 1]
                        } else {
                            vec![1, 0, 2]
                        },
                    }),
                    1 => {
                        let step = param.clamp(2, w.max(2));
                        let full = |d: u32| SliceRange {
                            start: 0,
                            end: d,
                            step: 1,
                        };
                        Node::Slice(Slice {
                            input: 0,
                            axes: vec![
                                full(c),
                                full(h),
                                SliceRange {
                                    start: 0,
                                    end: (w - 1) / step * step + 1,
                                    step,
                                },
                            ],
                        })
                    }
                    2 => Node::Pad(Pad {
                        input: 0,
                        pads: vec![(0, 0), (0, 0), (param, param)],
                    }),
                    _ => Node::Resize(Resize {
                        input: 0,
                        factors: [param.min(65535) as u16, 2],
                    }),
                };
                base(vec![c, h, w], (0..nodes).map(node).collect())
            },
            is_load: false,
        },
        Family {
            name: "binary",
            knobs: &[
                ("kind: concat mul sub matmul", 0, 3),
                ("rows", 1, M),
                ("len", 1, M),
                ("inputs", 2, 255),
                ("nodes", 1, 256),
            ],
            seeds: &[
                &[0, 1, 1, 255, 256],
                &[0, 1, 4096, 2, 1],
                &[1, 1, M, 2, 1],
                &[1, 1, 1, 2, 256],
                &[2, 1, 1, 2, 256],
                &[3, 64, 64, 2, 1],
                &[3, 2, 512, 2, 1],
                &[3, 1, 1, 2, 255],
            ],
            build: |k, _| {
                let [kind, rows, len, inputs, nodes] = k[..5] else {
                    unreachable!()
                };
                let unit = Scale {
                    mult: 1 << 30,
                    shift: 1,
                };
                let shape = vec![rows, len];
                match kind {
                    0 => base(
                        shape,
                        (0..nodes)
                            .map(|_| {
                                Node::Concat(Concat {
                                    inputs: vec![(0, unit); inputs as usize],
                                    axis: 0,
                                    zero_point: 0,
                                })
                            })
                            .collect(),
                    ),
                    1 => base(
                        shape,
                        (0..nodes)
                            .map(|_| {
                                Node::Mul(Mul {
                                    a: 0,
                                    b: 0,
                                    out: output(-8),
                                })
                            })
                            .collect(),
                    ),
                    2 => base(
                        shape,
                        (0..nodes)
                            .map(|_| {
                                let Node::Add(a) = add(0, 0) else {
                                    unreachable!("add() makes an Add")
                                };
                                Node::Sub(Sub(a))
                            })
                            .collect(),
                    ),
                    _ => {
                        // X · Xᵀ, `nodes` times: [rows, len] × [len, rows].
                        let mut ns = vec![Node::Transpose(Transpose {
                            input: 0,
                            perm: vec![1, 0],
                        })];
                        let shift = -(8 + (len as f64).log2().ceil() as i8).min(31);
                        ns.extend((0..nodes.min(255)).map(|_| {
                            Node::MatMul(MatMul {
                                a: 0,
                                b: 1,
                                out: output(shift),
                            })
                        }));
                        base(shape, ns)
                    }
                }
            },
            is_load: false,
        },
        Family {
            name: "reduce",
            knobs: &[
                ("kind: sum max", 0, 1),
                ("outer", 1, M),
                ("l", 2, M),
                ("inner", 1, M),
                ("nodes", 1, 256),
            ],
            seeds: &[
                &[0, M / 2, 2, 1, 1],
                &[1, M / 2, 2, 1, 1],
                &[0, 1, M, 1, 1],
                &[1, 1, 2, M / 2, 8],
                &[0, 1, 2, 1, 256],
            ],
            build: |k, _| {
                let [kind, outer, l, inner, nodes] = k[..5] else {
                    unreachable!()
                };
                let shift = -(1 + (l as f64).log2().ceil() as i8).min(31);
                let node = |_| {
                    if kind == 0 {
                        Node::ReduceSum(ReduceSum {
                            input: 0,
                            axis: 1,
                            out: output(shift),
                        })
                    } else {
                        Node::ReduceMax(ReduceMax { input: 0, axis: 1 })
                    }
                };
                base(vec![outer, l, inner], (0..nodes).map(node).collect())
            },
            is_load: false,
        },
        Family {
            name: "layernorm",
            knobs: &[("rows", 1, M), ("len", 1, 4096), ("nodes", 1, 256)],
            seeds: &[&[1, 1, 256], &[M / 2, 2, 1], &[1, 4096, 1], &[256, 64, 4]],
            build: |k, _| {
                let [rows, len, nodes] = k[..3] else {
                    unreachable!()
                };
                let node = |_| {
                    Node::LayerNorm(LayerNorm {
                        input: 0,
                        epsilon: 1,
                        gamma: vec![4096; len as usize],
                        beta: vec![0; len as usize],
                        out: output(-12),
                    })
                };
                base(vec![rows, len], (0..nodes).map(node).collect())
            },
            is_load: false,
        },
        Family {
            name: "gather",
            knobs: &[
                ("ids", 1, 1024),
                ("dim", 1, 4096),
                ("rows", 1, 4096),
                ("nodes", 1, 256),
            ],
            seeds: &[
                &[1, 1, 1, 256],
                &[1024, 1024, 1, 1],
                &[1024, 1, 4096, 4],
                &[64, 64, 64, 64],
            ],
            build: |k, rng| {
                let [ids, dim, rows, nodes] = k[..4] else {
                    unreachable!()
                };
                // Tables of at most 16 MiB in all: the model-size limit.
                let rows = rows.min((1 << 24) / (dim * nodes)).max(1);
                let mut m = base(
                    vec![1],
                    (0..nodes)
                        .map(|_| {
                            Node::Gather(Gather {
                                index: 0,
                                start: 0,
                                count: ids as u16,
                                rows: rows as u16,
                                dim,
                                zero_point: 0,
                                table: rng.bytes((rows * dim) as usize),
                            })
                        })
                        .collect(),
                );
                m.index_inputs = vec![IndexInput {
                    limits: vec![rows as u16; ids as usize],
                }];
                m
            },
            is_load: false,
        },
        Family {
            name: "tree",
            knobs: &[
                ("rows", 1, 1024),
                ("features", 2, 1024),
                ("trees", 1, 4096),
                ("depth", 0, 32),
                ("complete levels", 0, 12),
                ("outputs", 1, 64),
                ("every output", 0, 1),
                ("nodes", 1, 256),
            ],
            seeds: &[
                &[1, 30, 100, 6, 6, 1, 0, 1],
                &[64, 30, 100, 6, 6, 1, 0, 1],
                &[1, 2, 4096, 1, 1, 64, 1, 1],
                &[1024, 2, 1, 32, 0, 1, 0, 1],
                &[1, 2, 1, 1, 1, 1, 0, 256],
                &[16, 1024, 4096, 32, 0, 1, 0, 1],
            ],
            build: tree_family,
            is_load: false,
        },
        Family {
            name: "load",
            knobs: &[
                ("kind: dense conv lut trees", 0, 3),
                ("size", 1, 4096),
                ("nodes", 1, 256),
            ],
            seeds: &[
                &[0, 1024, 1],
                &[0, 1, 256],
                &[1, 64, 16],
                &[2, 1, 256],
                &[3, 4096, 1],
                &[3, 1, 256],
            ],
            build: |k, rng| {
                let [kind, size, nodes] = k[..3] else {
                    unreachable!()
                };
                match kind {
                    0 => base(
                        vec![size],
                        (0..nodes as TensorId)
                            .map(|i| dense(rng, i, size, size, 20))
                            .collect(),
                    ),
                    1 => base(
                        vec![size, 3, 3],
                        (0..nodes as TensorId)
                            .map(|i| conv(rng, i, size, size, 1))
                            .collect(),
                    ),
                    2 => chain(1, size, nodes, lut),
                    // `size` trees of depth 8 per node, one value per leaf
                    _ => tree_family(&[1, 30, size, 8, 8, 1, 0, nodes], rng),
                }
            },
            is_load: true,
        },
    ]
}

/// Tree-ensemble knobs: rows, features, trees, depth, complete levels, outputs, leaves for
/// every output or one, ensembles reading the input. Trees are cut to keep the model within
/// the 16 MiB limit.
fn tree_family(k: &[u32], rng: &mut Rng) -> Model {
    let [rows, features, trees, depth, full, outputs, all, nodes] = k[..8] else {
        unreachable!()
    };
    let all = all == 1 && outputs >= 2;
    let width = if all { outputs as usize } else { 1 };
    let full = full.min(depth);
    let leaves = (1u64 << full) + (depth - full) as u64;
    let tree_bytes = leaves * (2 + 4 * width as u64) + (leaves - 1) * 3 + 2;
    let trees = (trees as u64)
        .min((15 << 20) / (tree_bytes * nodes as u64))
        .max(1);
    let ensemble = |rng: &mut Rng| {
        Node::TreeEnsemble(TreeEnsemble {
            input: 0,
            outputs: outputs as u16,
            out: output(-10),
            base: vec![0; outputs as usize],
            trees: (0..trees)
                .map(|t| {
                    let target = if all {
                        ALL_OUTPUTS
                    } else {
                        (t % outputs as u64) as u16
                    };
                    tree_of(rng, features, depth, full, target, width)
                })
                .collect(),
        })
    };
    base(
        vec![rows, features],
        (0..nodes).map(|_| ensemble(rng)).collect(),
    )
}

/// The attacks of issue 10, as models (inference unless noted).
fn attacks() -> Vec<(&'static str, Model, bool)> {
    let mut rng = Rng::new(10);
    let fam = families();
    let mut build = |name: &str, knobs: &[u32]| {
        let f = fam
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| unreachable!());
        (f.build)(knobs, &mut rng)
    };
    vec![
        (
            "maxpool k=8191 s=8 pad 8190 on a 1x1 map",
            build("pool", &[0, 0, 1, 1, 1, 8191, 8191, 8, 8, 8190, 1]),
            false,
        ),
        (
            "avgpool (incl. pad) same",
            build("pool", &[1, 1, 1, 1, 1, 8191, 8191, 8, 8, 8190, 1]),
            false,
        ),
        (
            "global maxpool 1024x1024",
            build("pool", &[0, 0, 1, 1024, 1024, 1024, 1024, 1, 1, 0, 1]),
            false,
        ),
        (
            "global avgpool 1024x1024",
            build("pool", &[1, 0, 1, 1024, 1024, 1024, 1024, 1, 1, 0, 1]),
            false,
        ),
        (
            "conv 1x1 stride 1024 on 1024x1024",
            build("conv2d", &[1, 1, 1, 1024, 1024, 1, 1, 1024, 1024, 0, 1]),
            false,
        ),
        (
            "conv1d L=1M k=3",
            build("conv1d", &[1, 1, 1, 1, M, 1, 3, 1, 1, 1, 1]),
            false,
        ),
        (
            "256 tiny convs",
            build("conv2d", &[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 256]),
            false,
        ),
        (
            "depthwise 1M channels",
            build("conv2d", &[M, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1]),
            false,
        ),
        (
            "256 convs reading one 1M input (stride 1024)",
            build("conv2d", &[1, 1, 1, 1024, 1024, 1, 1, 1024, 1024, 0, 256]),
            false,
        ),
        (
            "256 global pools reading one 1M input",
            build("pool", &[1, 0, 1, 1024, 1024, 1024, 1024, 1, 1, 0, 256]),
            false,
        ),
        ("256 tiny Dense", build("dense", &[1, 1, 1, 256]), false),
        ("256 tiny Add", build("elementwise", &[0, 1, 1, 256]), false),
        (
            "256 tiny Softmax",
            build("elementwise", &[4, 1, 1, 256]),
            false,
        ),
        ("cold load 1 MiB dense", build("load", &[0, 1024, 1]), true),
    ]
}

/// Candidates re-timed before the final ranking.
const CONFIRM: usize = 10;

/// Builds family `f`'s model for knobs `k` and measures it, returning the model too.
fn measure(f: &Family, k: &[u32], rng: &mut Rng, t: &Timing) -> Result<(Measure, Model), String> {
    let model = (f.build)(k, rng);
    let m = if f.is_load {
        load(&model, t)
    } else {
        infer(&model, t)
    }?;
    Ok((m, model))
}

fn describe(f: &Family, k: &[u32]) -> String {
    let mut s = String::new();
    for ((name, _, _), v) in f.knobs.iter().zip(k) {
        if *name != "-" {
            let _ = write!(s, "{name}={v} ");
        }
    }
    s.trim_end().to_string()
}

fn row(what: &str, r: &Result<Measure, String>) {
    match r {
        Ok(m) => println!(
            "| {what} | {} | {:.2} ms | {:.1} | {} |",
            m.gas,
            m.ns() / 1e6,
            m.ns_per_gas(),
            m.rss
                .map(|b| format!("{:.1} MB, {:.2} B/gas", b as f64 / 1e6, m.bytes_per_gas()))
                .unwrap_or_else(|| "n/a".into()),
        ),
        Err(e) => println!("| {what} | {e} | | | |"),
    }
}

/// A knob value drawn log-uniformly from its range.
fn random_knob(rng: &mut Rng, lo: u32, hi: u32) -> u32 {
    let bits = 64 - (hi as u64).leading_zeros() as i64;
    let v = 1u64 << rng.range(0, bits);
    (v + rng.range(0, v as i64) as u64).clamp(lo as u64, hi as u64) as u32
}

fn mutate(rng: &mut Rng, f: &Family, k: &[u32]) -> Vec<u32> {
    let mut k = k.to_vec();
    for _ in 0..rng.range(1, 2) {
        let i = rng.range(0, f.knobs.len() as i64 - 1) as usize;
        let (_, lo, hi) = f.knobs[i];
        let v = k[i] as u64;
        let n = match rng.range(0, 4) {
            0 => v * 2,
            1 => v / 2,
            2 => v + 1,
            3 => v.saturating_sub(1),
            _ => random_knob(rng, lo, hi) as u64,
        };
        k[i] = n.clamp(lo as u64, hi as u64) as u32;
    }
    k
}

struct Found {
    what: String,
    m: Measure,
    /// How to build it again: a family's index and knobs (its weights are random, its
    /// shapes and gas the same), or `None` for a known attack (the list is rebuilt).
    source: Option<(usize, Vec<u32>)>,
}

/// A short description of the model actually built (generators clip knobs to the model
/// size limit, so the knobs alone can mislead): its input shape and each run of nodes.
fn summary(m: &Model) -> String {
    let node = |n: &Node| match n {
        Node::Dense(d) => format!(
            "Dense {}→{}",
            d.weights.len() / d.out_features.max(1) as usize,
            d.out_features
        ),
        Node::Conv(c) => format!(
            "Conv{} oc={} g={} k={:?} s={:?} p={:?}",
            if c.one_d { "1d" } else { "2d" },
            c.out_channels,
            c.groups,
            c.window.kernel,
            c.window.stride,
            c.window.pads
        ),
        Node::MaxPool(MaxPool { window, .. }) | Node::AvgPool(AvgPool { window, .. }) => format!(
            "{} k={:?} s={:?} p={:?}",
            n.op_name(),
            window.kernel,
            window.stride,
            window.pads
        ),
        Node::Transpose(t) => format!("Transpose {:?}", t.perm),
        Node::Slice(sl) => format!("Slice {:?}", sl.axes),
        Node::Pad(p) => format!("Pad {:?}", p.pads),
        Node::Concat(c) => format!("Concat×{} axis {}", c.inputs.len(), c.axis),
        Node::ReduceSum(r) => format!("ReduceSum axis {}", r.axis),
        Node::ReduceMax(r) => format!("ReduceMax axis {}", r.axis),
        Node::Resize(r) => format!("Resize {:?}", r.factors),
        Node::Gather(g) => format!("Gather {} ids of {}×{}", g.count, g.rows, g.dim),
        Node::TreeEnsemble(t) => format!(
            "TreeEnsemble {} trees depth {} → {} outputs ({} nodes)",
            t.trees.len(),
            t.depth(),
            t.outputs,
            t.trees.iter().map(|t| t.nodes.len()).sum::<usize>()
        ),
        Node::Add(_)
        | Node::Sub(_)
        | Node::Mul(_)
        | Node::MatMul(_)
        | Node::LayerNorm(_)
        | Node::Clamp(_)
        | Node::Reshape(_)
        | Node::Lut(_)
        | Node::Softmax(_) => n.op_name().into(),
    };
    let mut s = format!("in {:?}:", m.input_shape);
    let mut runs: Vec<(String, usize)> = Vec::new();
    for n in &m.nodes {
        let d = node(n);
        match runs.last_mut() {
            Some((last, count)) if *last == d => *count += 1,
            _ => runs.push((d, 1)),
        }
    }
    for (d, count) in runs {
        let _ = write!(s, " {count}× {d};");
    }
    s.trim_end_matches(';').to_string()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(1);
    // `--family a,b` searches only those families (and skips the known attacks).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--family")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').map(str::to_string).collect());
    // Whole-search budget per family, and timing per case.
    let (budget, timing) = if quick {
        (
            Duration::from_secs(25),
            Timing {
                min_time: Duration::from_millis(30),
                max_runs: 5,
            },
        )
    } else {
        (
            Duration::from_secs(200),
            Timing {
                min_time: Duration::from_millis(200),
                max_runs: 20,
            },
        )
    };
    let mut rng = Rng::new(seed);
    println!(
        "Budget: 20 ns/gas; memory bound 8 · 1000 / ELEM_MILLI = {} bytes per gas.\n",
        8000 / gas::ELEM_MILLI
    );
    println!("## Known attacks (issue 10)\n");
    println!("| case | gas | time | ns/gas | peak RSS |\n|---|---|---|---|---|");
    let mut found: Vec<Found> = Vec::new();
    for (what, model, is_load) in attacks().into_iter().filter(|_| only.is_none()) {
        let r = if is_load {
            load(&model, &timing)
        } else {
            infer(&model, &timing)
        };
        row(what, &r);
        if let Ok(m) = r {
            found.push(Found {
                what: format!("{what} ({})", summary(&model)),
                m,
                source: None,
            });
        }
    }
    println!(
        "\n## Hill climbing (seed {seed}, {} s per family)\n",
        budget.as_secs()
    );
    println!("| family: knobs | gas | time | ns/gas | peak RSS |\n|---|---|---|---|---|");
    let families = families();
    for (fi, f) in families.iter().enumerate() {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == f.name))
        {
            continue;
        }
        let measure = |k: &[u32], rng: &mut Rng| measure(f, k, rng, &timing);
        let start = Instant::now();
        let mut starts: Vec<Vec<u32>> = f.seeds.iter().map(|s| s.to_vec()).collect();
        let (mut best_k, mut best): (Vec<u32>, Option<Measure>) = (starts[0].clone(), None);
        while start.elapsed() < budget {
            // A climb: from a seed (then random restarts), accept mutants that score higher.
            let mut k = starts.pop().unwrap_or_else(|| {
                f.knobs
                    .iter()
                    .map(|&(_, lo, hi)| random_knob(&mut rng, lo, hi))
                    .collect()
            });
            let mut score = measure(&k, &mut rng).ok().map(|(m, model)| {
                found.push(Found {
                    what: format!("{}: {}", f.name, summary(&model)),
                    m: m.clone(),
                    source: Some((fi, k.clone())),
                });
                m
            });
            let mut stale = 0;
            while stale < 12 && start.elapsed() < budget {
                let cand = mutate(&mut rng, f, &k);
                match measure(&cand, &mut rng) {
                    Ok((m, model)) => {
                        found.push(Found {
                            what: format!("{}: {}", f.name, summary(&model)),
                            m: m.clone(),
                            source: Some((fi, cand.clone())),
                        });
                        if score
                            .as_ref()
                            .is_some_and(|s| m.ns_per_gas() <= s.ns_per_gas())
                        {
                            stale += 1;
                        } else {
                            k = cand;
                            score = Some(m);
                            stale = 0;
                        }
                    }
                    Err(_) => stale += 1,
                }
            }
            if let Some(s) = score {
                if best
                    .as_ref()
                    .is_none_or(|b| s.ns_per_gas() > b.ns_per_gas())
                {
                    best_k = k;
                    best = Some(s);
                }
            }
        }
        let what = format!("{}: {}", f.name, describe(f, &best_k));
        row(
            &what,
            &best.ok_or_else(|| "no valid model found".to_string()),
        );
    }
    // A climb selects for noise too (a run slowed by another process scores high), so the
    // worst candidates are built again and re-timed with many more runs before they count.
    found.sort_by(|a, b| b.m.ns_per_gas().total_cmp(&a.m.ns_per_gas()));
    found.dedup_by(|a, b| a.what == b.what);
    let confirm = Timing {
        min_time: Duration::from_millis(500),
        max_runs: 40,
    };
    let attack_models = attacks();
    let mut confirmed: Vec<Found> = Vec::new();
    // The overall worst, and each family's two worst (one family's noise must not crowd out
    // every other family's candidates).
    let family_worst = (0..families.len()).flat_map(|fi| {
        found
            .iter()
            .filter(move |f| f.source.as_ref().is_some_and(|(i, _)| *i == fi))
            .take(2)
    });
    let mut candidates: Vec<&Found> = found.iter().take(CONFIRM).chain(family_worst).collect();
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|f| seen.insert(f.what.clone()));
    for f in candidates {
        let m = match &f.source {
            Some((fi, k)) => measure(&families[*fi], k, &mut rng, &confirm).map(|(m, _)| m),
            None => attack_models
                .iter()
                .find(|(what, _, _)| f.what.starts_with(what))
                .map_or(Err("not rebuilt".into()), |(_, model, is_load)| {
                    if *is_load {
                        load(model, &confirm)
                    } else {
                        infer(model, &confirm)
                    }
                }),
        };
        if let Ok(m) = m {
            confirmed.push(Found {
                what: f.what.clone(),
                m,
                source: None,
            });
        }
    }
    confirmed.sort_by(|a, b| b.m.ns_per_gas().total_cmp(&a.m.ns_per_gas()));
    println!(
        "\n## Worst found by ns/gas (the {CONFIRM} worst and each family's 2 worst, re-timed: best of up to 40 runs)\n"
    );
    println!("| case | gas | time | ns/gas | peak RSS |\n|---|---|---|---|---|");
    for f in &confirmed {
        row(&f.what, &Ok(f.m.clone()));
    }
    found.sort_by(|a, b| b.m.bytes_per_gas().total_cmp(&a.m.bytes_per_gas()));
    println!("\n## Worst found by peak RSS per gas\n");
    println!("| case | gas | time | ns/gas | peak RSS |\n|---|---|---|---|---|");
    for f in found.iter().take(5) {
        row(&f.what, &Ok(f.m.clone()));
    }
    found.sort_by_key(|f| std::cmp::Reverse(f.m.rss.unwrap_or(0)));
    if let Some(f) = found.first() {
        println!("\nLargest peak RSS of any case: {}", f.what);
        row(&f.what, &Ok(f.m.clone()));
    }
}
