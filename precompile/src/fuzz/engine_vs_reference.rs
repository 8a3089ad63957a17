//! The engine (burn) against the scalar reference, byte for byte, on valid models.
//!
//! Two kinds of input:
//! - bytes starting with the `.myl` magic are a model (mutations of the shipped and golden
//!   models reach extreme multipliers, shifts and zero points the generator never picks);
//!   invalid ones are skipped;
//! - anything else seeds the random valid-model generator (`testkit`): bytes 0..8 are the
//!   seed, byte 8 the node budget (its high bit: a model with index inputs and Gathers), the
//!   rest is cycled into an input.
//!
//! Every model also runs on a pseudo-random input and on the extreme inputs (all −128, all
//! 127, all the input zero point), each with pseudo-random ids and with every id at its
//! limit's last row. Models are kept small so each execution stays fast: this
//! target checks results, not pricing (slow shapes are the adversarial search's job).

use crate::input::Input;
use crate::model::{AvgPool, MaxPool, Model, Node, Window};
use crate::precompile::model_info;
use crate::random::{self, Rng};
use crate::{decode, encode, reference, Engine};

/// Largest `modelInfo.inferGas` fuzzed (a few milliseconds of engine + reference work).
const MAX_INFER_GAS: u64 = 300_000;
/// Largest kernel side and padding fuzzed: the scalar reference visits every window position,
/// padding included, so huge windows would turn executions into timeouts rather than checks.
const MAX_WINDOW: u16 = 16;
/// Most nodes (before the optional head) of a generated model.
const MAX_GENERATED_NODES: usize = 8;

fn small_windows(model: &Model) -> bool {
    let ok = |w: &Window| w.kernel.iter().chain(&w.pads).all(|&v| v <= MAX_WINDOW);
    model.nodes.iter().all(|n| match n {
        Node::Conv(c) => ok(&c.window),
        Node::MaxPool(MaxPool { window, .. }) | Node::AvgPool(AvgPool { window, .. }) => ok(window),
        _ => true,
    })
}

/// FNV-1a: a seed for the pseudo-random input of a decoded model.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One execution of the `engine_vs_reference` target.
pub fn run(data: &[u8]) {
    let (valid, tail, seed) = if data.starts_with(b"MYLN") {
        let Ok(valid) = decode(data) else {
            return;
        };
        (valid, &[][..], fnv(data))
    } else {
        let mut seed = [0u8; 8];
        let n = data.len().min(8);
        seed[..n].copy_from_slice(&data[..n]);
        let seed = u64::from_le_bytes(seed);
        let knobs = data.get(8).copied().unwrap_or(0);
        let budget = 1 + (knobs & 0x7f) as usize % MAX_GENERATED_NODES;
        let rng = &mut Rng::new(seed);
        let model = if knobs & 0x80 != 0 {
            random::indexed_model(rng, budget)
        } else {
            random::model_of(&random::spec(rng, budget, random::KINDS))
        };
        let bytes = encode(&model);
        let parsed = decode(&bytes)
            .unwrap_or_else(|e| panic!("generator made an invalid model: {e}\n{model:?}"));
        assert_eq!(parsed.model(), &model, "decode(encode(m)) != m");
        (parsed, data.get(9..).unwrap_or_default(), seed)
    };
    if !small_windows(valid.model()) {
        return;
    }
    let engine = Engine::new(valid);
    if model_info(&engine, data.len()).inferGas > MAX_INFER_GAS {
        return;
    }
    let (model, analysis) = (engine.model(), engine.analysis());
    let len = analysis.input_len();
    let mut inputs = vec![
        random::input(&mut Rng::new(seed ^ 0x5eed), len),
        vec![i8::MIN; len],
        vec![i8::MAX; len],
        vec![model.input_zero_point(); len],
    ];
    if !tail.is_empty() {
        inputs.push(tail.iter().cycle().take(len).map(|&b| b as i8).collect());
    }
    let ids = [
        random::ids(&mut Rng::new(seed ^ 0x1d5), model),
        random::last_ids(model),
    ];
    for values in &inputs {
        for ids in &ids {
            let input = Input {
                values: values.clone(),
                ids: ids.clone(),
            };
            let expected = reference::run_input(engine.valid(), &input);
            assert_eq!(expected.len(), analysis.output_len());
            let got = engine.run_input(&input);
            assert!(
                got == expected,
                "engine != reference\nmodel {model:?}\ninput {input:?}\nengine    {got:?}\nreference {expected:?}"
            );
        }
    }
}
