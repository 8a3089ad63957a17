//! The integer model's intermediate tensors against the float tensors they approximate:
//! which layer loses accuracy (`myelin compare`), and the integer inputs of the layers that
//! bias correction measures.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Result};
use indicatif::ProgressBar;
use myelin_precompile::input::Input;
use myelin_precompile::model::{Model, Scale, TensorId};
use myelin_precompile::{validate, Engine, ValidModel};

use super::calibrate::Rows;
use super::float::Tensor;
use super::graph::Graph;
use super::quant::{self, ActQuant};
use super::Converted;
use crate::npy;

/// The int8 values of tensor `id` of `model` (quantized with `q`) for each row: the rows
/// themselves for the input, else the output of the model cut after the node that writes it
/// (a prefix of a valid model is valid: nodes only read earlier tensors; its output scale is
/// the tensor's, which validation checks where the graph fixes it).
pub(super) fn tensor_rows(
    model: &ValidModel,
    id: TensorId,
    q: ActQuant,
    rows: &[Input],
) -> Result<Vec<Vec<i8>>> {
    if id == 0 {
        return Ok(rows.iter().map(|r| r.values.clone()).collect());
    }
    let m = model.model();
    let prefix = Model {
        input_shape: m.input_shape.clone(),
        input_quant: m.input_quant.clone(),
        output_scale: Scale::from_f64(q.scale)
            .ok_or_else(|| anyhow!("tensor {id}: scale {} is not representable", q.scale))?,
        index_inputs: m.index_inputs.clone(),
        nodes: m.nodes[..id as usize].to_vec(),
    };
    let prefix = validate::validate(prefix).map_err(|e| {
        anyhow!(
            "internal error: the model cut after node {} is invalid: {e}",
            id - 1
        )
    })?;
    let engine = Engine::new(prefix);
    Ok(rows.iter().map(|r| engine.run_input(r)).collect())
}

/// How far one Myelin node's output is from the float tensor it approximates, over rows.
#[derive(Clone, Debug)]
pub struct LayerError {
    pub node: usize,
    pub op: &'static str,
    /// The ONNX tensor the node's output stands for.
    pub onnx: String,
    pub mean_abs: f64,
    pub max_abs: f64,
    /// `max − min` of the float tensor over the rows: the errors' yardstick.
    pub range: f64,
}

/// Every node's [`LayerError`] on the rows of `x`, for `converted` made from the ONNX model
/// at `onnx_path` (nodes that stand for no ONNX tensor, such as a final Reshape, are left
/// out).
pub fn layer_errors(
    onnx_path: &Path,
    converted: &Converted,
    x: &npy::Array,
) -> Result<Vec<LayerError>> {
    let graph = Graph::load(onnx_path)?;
    let sample_shape = graph.sample_shape(&x.shape[1..])?;
    // The graph the conversion lowered: shape chains folded, recurrences unrolled.
    let graph = super::shape_fold::fold(&graph, &sample_shape)?;
    let rows = Rows::new(&graph, x, &sample_shape)?;
    let model = &converted.model;
    let nodes = &model.model().nodes;
    let wanted: Vec<(usize, &super::TensorQuant)> = (0..nodes.len())
        .filter_map(|n| converted.tensors.get(&(n as TensorId + 1)).map(|t| (n, t)))
        .collect();
    let mut float: std::collections::HashMap<&str, Vec<f32>> = wanted
        .iter()
        .map(|(_, t)| (t.onnx.as_str(), Vec::new()))
        .collect();
    rows.pass(&ProgressBar::hidden(), &mut |name: &str, t: &Tensor| {
        if let Some(v) = float.get_mut(name) {
            v.extend_from_slice(&t.data);
        }
    })?;
    let qrows = rows.quantized(model)?;
    let mut out = Vec::new();
    for (n, t) in wanted {
        let f = &float[t.onnx.as_str()];
        let q = tensor_rows(model, n as TensorId + 1, t.q, &qrows)?.concat();
        if f.len() != q.len() {
            continue; // a tensor of another layout (cannot happen for lowered nodes)
        }
        let (mut sum, mut max) = (0.0, 0f64);
        for (&f, &q) in f.iter().zip(&q) {
            let e = (quant::dequantize(q, t.q) - f as f64).abs();
            sum += e;
            max = max.max(e);
        }
        let (lo, hi) = f
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        out.push(LayerError {
            node: n,
            op: nodes[n].op_name(),
            onnx: t.onnx.clone(),
            mean_abs: sum / f.len().max(1) as f64,
            max_abs: max,
            range: (hi - lo) as f64,
        });
    }
    Ok(out)
}

/// A table of [`LayerError`]s, one line per node.
pub fn format_layer_errors(errors: &[LayerError]) -> String {
    let mut s = format!(
        "{:>4}  {:<9} {:<32} {:>10} {:>10} {:>10} {:>8}\n",
        "node", "op", "approximates", "range", "mean err", "max err", "mean/rng"
    );
    for e in errors {
        let _ = writeln!(
            s,
            "{:>4}  {:<9} {:<32} {:>10.4} {:>10.5} {:>10.5} {:>7.3}%",
            e.node,
            e.op,
            e.onnx,
            e.range,
            e.mean_abs,
            e.max_abs,
            100.0 * e.mean_abs / e.range.max(f64::MIN_POSITIVE)
        );
    }
    s
}
