//! The scalar reference implementation: `docs/SPEC.md` §3 transcribed into plain loops, one
//! output element at a time, with no burn and no cleverness (each operator's loops are its
//! `Op::reference`, in `ops/`). It is slow on purpose; tests run the engine against it on
//! random models, byte for byte.

use crate::input::Input;
use crate::ops::Ctx;
use crate::validate::ValidModel;

/// Runs a validated model without index inputs on one input of `analysis().input_len()`
/// int8 values.
pub fn run(m: &ValidModel, input: &[i8]) -> Vec<i8> {
    run_input(
        m,
        &Input {
            values: input.to_vec(),
            ids: Vec::new(),
        },
    )
}

/// Runs a validated model on a checked [`Input`].
pub fn run_input(m: &ValidModel, input: &Input) -> Vec<i8> {
    let (model, analysis) = (m.model(), m.analysis());
    let mut tensors: Vec<Vec<i8>> = vec![input.values.clone()];
    for (node, op) in model.nodes.iter().enumerate() {
        let y = op.reference(&Ctx {
            values: &tensors,
            ids: &input.ids,
            shapes: &analysis.shapes,
            zero_points: &analysis.zero_points,
            node,
        });
        tensors.push(y);
    }
    tensors.pop().unwrap_or_default()
}
