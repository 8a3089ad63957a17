//! Post-training quantization of a float ONNX model (PyTorch export patterns; axes, pads and
//! scales as attributes or constant inputs, whichever the opset uses) to a Myelin model
//! (format v1, `docs/SPEC.md`).
//!
//! 1. [`graph`] decodes the ONNX file ([`proto`] is the protobuf subset read); [`shape_fold`]
//!    folds what is the same for every input (shape chains, constant subgraphs) and unrolls
//!    LSTM/GRU ([`recurrent`]).
//! 2. [`float`] runs the float graph on every calibration row and records the range of every
//!    tensor.
//! 3. [`lower`] maps ONNX nodes to Myelin nodes (folding BatchNormalization and constant
//!    biases and scales, fusing Relu/Clip, turning each chain of elementwise ops of one
//!    tensor into one lookup table) and quantizes them with [`quant`]'s TFLite-style scheme.
//! 4. The model is checked with `myelin_precompile::validate::validate` and round-tripped
//!    through the canonical encoding.
//!
//! Steps 2 and 3 handle each ONNX op type through its row in [`ops`], the one list of the
//! supported op types.
//!
//! The ONNX batch axis is dropped: a model with input `[N, 1, 8, 8]` becomes a Myelin model
//! with input `[1, 8, 8]`.

pub mod float;
pub mod graph;
mod lower;
mod ops;
pub mod proto;
pub mod quant;
mod recurrent;
mod shape_fold;

use std::path::Path;

use anyhow::{anyhow, bail, ensure, Result};
use indicatif::{ProgressBar, ProgressStyle};
use myelin_precompile::error::{Code, HEADER};
use myelin_precompile::model::Model;
use myelin_precompile::validate::{self, ValidModel};
use myelin_precompile::ModelError;

use crate::npy;
use float::{Runner, Tensor};
use graph::Graph;
use lower::Ranges;

/// Options of [`convert_onnx`].
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Show a progress bar (on stderr) over the calibration rows.
    pub progress: bool,
}

/// A converted model and a human-readable account of the conversion.
#[derive(Clone, Debug)]
pub struct Converted {
    pub model: ValidModel,
    /// Canonical encoding (`.myl` bytes).
    pub bytes: Vec<u8>,
    /// Per node: the ONNX nodes it came from, the Myelin op, shapes, scales and zero points,
    /// multipliers; then totals.
    pub report: String,
}

/// Rows per float-interpreter call (calibration and [`run_float`]).
const CHUNK: usize = 32;

/// Quantizes the float ONNX model at `onnx_path`, calibrating activation ranges on `calib`
/// (first axis = samples, the rest = the model's input shape without its batch axis).
pub fn convert_onnx(
    onnx_path: &Path,
    calib: &npy::Array,
    opts: &ConvertOptions,
) -> Result<Converted> {
    let graph = Graph::load(onnx_path)?;
    ensure!(
        calib.shape.len() >= 2 && calib.rows() > 0,
        "calibration data must be [samples, ...] with at least one sample; got {:?}",
        calib.shape
    );
    let sample_shape = graph.sample_shape(&calib.shape[1..])?;
    let onnx_nodes = graph.nodes.len();
    let graph = shape_fold::fold(&graph, &sample_shape)?;
    let ranges = calibrate(&graph, calib, &sample_shape, opts.progress)?;
    let lowered = lower::lower(&graph, &ranges, &sample_shape)?;
    let model = validate::validate(lowered.model.clone())
        .map_err(|e| explain(e, &lowered.model, &lowered.sources))?;
    let bytes = myelin_precompile::encode(model.model());
    let decoded = myelin_precompile::decode(&bytes)
        .map_err(|e| anyhow!("internal error: the encoded model does not decode: {e}"))?;
    ensure!(
        decoded == model,
        "internal error: the encoding does not round-trip"
    );
    let analysis = model.analysis();
    let mut report = format!(
        "{} -> Myelin v1: {} ONNX nodes -> {} Myelin nodes, calibrated on {} rows\n",
        onnx_path.display(),
        onnx_nodes,
        lowered.model.nodes.len(),
        calib.rows()
    );
    report.push_str(&lowered.report);
    report.push_str(&format!(
        "total: {} bytes, {} parameters, {} MACs, {} elementwise steps\n",
        bytes.len(),
        analysis.params,
        analysis.total.macs,
        analysis.total.elems
    ));
    Ok(Converted {
        model,
        bytes,
        report,
    })
}

/// Adds to a validation error which layer failed and which ONNX nodes it came from.
fn explain(e: ModelError, model: &Model, sources: &[String]) -> anyhow::Error {
    let node = Some(e.node as usize).filter(|_| e.node != HEADER);
    let op = node
        .and_then(|n| model.nodes.get(n))
        .map(|n| n.op_name())
        .unwrap_or("model");
    let from = node
        .and_then(|n| sources.get(n))
        .map(|s| format!(" (converted from ONNX {s})"))
        .unwrap_or_default();
    match (e.code, node) {
        (Code::AccumulatorOverflow, Some(n)) => anyhow!(
            "the converted model fails validation: layer {n} ({op}){from}: {}, which overflows \
             int32 after requantization; its weights are too large for its fan-in (retrain \
             with weight decay, or split the layer)",
            e.detail
        ),
        _ => anyhow!("the converted model fails validation: {e}{from}"),
    }
}

/// Rows `start..end` of `x` as one batch tensor `[rows, ...sample_shape]`.
fn batch(x: &npy::Array, data: &[f32], sample_shape: &[usize], start: usize, end: usize) -> Tensor {
    let len = x.row_len();
    let mut shape = vec![end - start];
    shape.extend_from_slice(sample_shape);
    Tensor::new(shape, data[start * len..end * len].to_vec())
}

fn calibrate(
    graph: &Graph,
    calib: &npy::Array,
    sample_shape: &[usize],
    progress: bool,
) -> Result<Ranges> {
    let data = calib.to_f32();
    ensure!(
        data.iter().all(|v| v.is_finite()),
        "calibration data contains NaN or infinite values"
    );
    let bar = if progress {
        ProgressBar::new(calib.rows() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("calibrating {bar:40} {pos}/{len} rows [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let runner = Runner::new(graph);
    let mut ranges = Ranges::new();
    let mut bad: Option<String> = None;
    for start in (0..calib.rows()).step_by(CHUNK) {
        let end = (start + CHUNK).min(calib.rows());
        let mut observe = |name: &str, t: &Tensor| {
            let (lo, hi) = t
                .data
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            if !(lo.is_finite() && hi.is_finite()) && bad.is_none() {
                bad = Some(name.to_string());
            }
            let r = ranges.entry(name.to_string()).or_insert((lo, hi));
            *r = (r.0.min(lo), r.1.max(hi));
        };
        runner.run(batch(calib, &data, sample_shape, start, end), &mut observe)?;
        bar.inc((end - start) as u64);
    }
    bar.finish_and_clear();
    if let Some(name) = bad {
        bail!("tensor `{name}` takes non-finite values on the calibration data");
    }
    Ok(ranges)
}

/// Runs the float ONNX model on `x` (first axis = samples) and returns `[N, ...]` outputs.
pub fn run_float(onnx_path: &Path, x: &npy::Array) -> Result<npy::Array> {
    let graph = Graph::load(onnx_path)?;
    ensure!(
        x.shape.len() >= 2,
        "inputs must be [samples, ...]; got {:?}",
        x.shape
    );
    let sample_shape = graph.sample_shape(&x.shape[1..])?;
    let graph = shape_fold::fold(&graph, &sample_shape)?;
    let data = x.to_f32();
    let runner = Runner::new(&graph);
    let mut out_shape = None;
    let mut out = Vec::new();
    for start in (0..x.rows()).step_by(CHUNK) {
        let end = (start + CHUNK).min(x.rows());
        let y = runner.run(batch(x, &data, &sample_shape, start, end), &mut |_, _| {})?;
        ensure!(
            y.shape.first() == Some(&(end - start)),
            "the output {:?} does not keep the batch axis first",
            y.shape
        );
        out_shape.get_or_insert_with(|| y.shape[1..].to_vec());
        out.extend_from_slice(&y.data);
    }
    let mut shape = vec![x.rows()];
    shape.extend(out_shape.unwrap_or_default());
    ensure!(
        shape.iter().product::<usize>() == out.len(),
        "inconsistent output shapes across batches"
    );
    Ok(npy::Array::f32(shape, out))
}

/// Quantizes one float input row with the model's input quantization:
/// `q = clamp(round(x / scale) + zero_point, −128, 127)`.
pub fn quantize_input(model: &Model, x: &[f32]) -> Vec<i8> {
    let s = model.input_quant.scale.to_f64();
    let zp = model.input_quant.zero_point as f64;
    x.iter()
        .map(|&v| ((v as f64 / s).round() + zp).clamp(-128.0, 127.0) as i8)
        .collect()
}

/// Dequantizes one int8 output row: `(q − zero_point) · output_scale`.
pub fn dequantize_output(model: &ValidModel, q: &[i8]) -> Vec<f32> {
    let (analysis, model) = (model.analysis(), model.model());
    let s = model.output_scale.to_f64();
    let zp = analysis.output_zero_point() as f64;
    q.iter().map(|&v| ((v as f64 - zp) * s) as f32).collect()
}
