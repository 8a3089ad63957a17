//! Post-training quantization of a float ONNX model (PyTorch export patterns; axes, pads and
//! scales as attributes or constant inputs, whichever the opset uses; the ONNX-ML tree
//! ensembles, linear models and preprocessing of scikit-learn, XGBoost and LightGBM exports)
//! to a Myelin model (`docs/SPEC.md`; format v1 to v4, as the model's input needs).
//!
//! 1. [`graph`] decodes the ONNX file ([`proto`] is the protobuf subset read), keeping the
//!    nodes its one converted output depends on (a classifier's probabilities, not its label
//!    branch); [`shape_fold`] rewrites ONNX-ML classifiers and regressors into their raw
//!    scores and post-transform ([`ml`]), folds what is the same for every input (shape
//!    chains, constant subgraphs) and unrolls LSTM/GRU ([`recurrent`]).
//! 2. [`float`] runs the float graph on every calibration row and [`calibrate`] chooses the
//!    range of every tensor (min/max, percentile or MSE-optimal clipping); a model already
//!    quantized in the QDQ format brings its own scales ([`qdq`]) and needs no rows.
//! 3. [`lower`] maps ONNX nodes to Myelin nodes (folding BatchNormalization and constant
//!    biases and scales, fusing Relu/Clip, turning each chain of elementwise ops of one
//!    tensor into one lookup table, folding a Scaler into the Dense after it, turning each
//!    tree ensemble's float splits into exact int8 ones) and quantizes them with [`quant`]'s
//!    TFLite-style scheme. With bias correction, [`calibrate`] then measures the mean error
//!    of every layer on the calibration rows and the graph is lowered again with corrected
//!    biases.
//!
//! The model input is quantized per tensor, from its calibrated range, except when only tree
//! ensembles and Scalers read it: then each feature gets its own asymmetric int8 scale and
//! zero point from its calibrated range (format v3), which the splits and the first Dense
//! layer take in exactly, so that a feature of range 0..0.2 next to one of 0..4000 keeps
//! its resolution.
//! 4. The model is checked with `myelin_precompile::validate::validate` and round-tripped
//!    through the canonical encoding.
//!
//! [`layers`] measures, node by node, how far the integer model is from the float one.
//!
//! Steps 2 and 3 handle each ONNX op type through its row in [`ops`], the one list of the
//! supported op types.
//!
//! The ONNX batch axis is dropped: a model with input `[N, 1, 8, 8]` becomes a Myelin model
//! with input `[1, 8, 8]`.

mod calibrate;
pub mod float;
pub mod graph;
mod layers;
mod lower;
mod ml;
mod ops;
pub mod proto;
mod qdq;
pub mod quant;
mod recurrent;
mod shape_fold;

use std::path::Path;

use std::collections::HashMap;

use anyhow::{anyhow, ensure, Result};
use myelin_precompile::error::{Code, HEADER};
use myelin_precompile::input::Input;
use myelin_precompile::model::{Model, TensorId};
use myelin_precompile::validate::{self, ValidModel};
use myelin_precompile::ModelError;

use crate::npy;
pub use calibrate::Calibration;
use calibrate::Rows;
use float::{Feed, Runner, Tensor};
use graph::{Dim, Graph};
pub use layers::{format_layer_errors, layer_errors, LayerError};
pub use lower::TensorQuant;
use lower::{BiasShift, Ranges};

/// Options of [`convert`].
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Show a progress bar (on stderr) over the calibration rows.
    pub progress: bool,
    /// How activation ranges are chosen from the calibration rows.
    pub calibration: Calibration,
    /// Correct every layer's bias by its mean error on the calibration rows (not for QDQ
    /// models, whose biases are kept as quantized).
    pub bias_correction: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            progress: false,
            calibration: Calibration::default(),
            bias_correction: true,
        }
    }
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
    /// What each Myelin tensor approximates (for [`layer_errors`]).
    pub tensors: HashMap<TensorId, TensorQuant>,
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
    convert(onnx_path, Some(calib), opts)
}

/// [`convert_onnx`], where the calibration rows are optional for a QDQ model (whose
/// QuantizeLinear nodes give every range); with rows, they calibrate what the QDQ nodes
/// leave unquantized.
pub fn convert(
    onnx_path: &Path,
    calib: Option<&npy::Array>,
    opts: &ConvertOptions,
) -> Result<Converted> {
    let graph = Graph::load(onnx_path)?;
    let fixed = qdq::ranges(&graph)?;
    let is_qdq = !fixed.is_empty();
    let sample_shape = match calib {
        Some(calib) => {
            ensure!(
                calib.shape.len() >= 2 && calib.rows() > 0,
                "calibration data must be [samples, ...] with at least one sample; got {:?}",
                calib.shape
            );
            graph.sample_shape(&calib.shape[1..])?
        }
        None => {
            ensure!(
                is_qdq,
                "calibration rows are needed (--calib): the model is a float model, with no \
                 QuantizeLinear nodes to take scales from"
            );
            declared_sample_shape(&graph)?
        }
    };
    let onnx_nodes = graph.nodes.len();
    let graph = shape_fold::fold(&graph, &sample_shape)?;
    let rows = calib
        .map(|c| Rows::new(&graph, c, &sample_shape))
        .transpose()?;
    let mut ranges = match &rows {
        Some(rows) => calibrate::ranges(rows, opts.calibration, opts.progress)?,
        None => Ranges::new(),
    };
    ranges.extend(fixed); // a QDQ model's own scales win
    let features = rows.as_ref().map_or(Vec::new(), Rows::feature_ranges);
    let lower_with =
        |shift: &BiasShift| lower::lower(&graph, &ranges, &features, &sample_shape, shift);
    let validate = |l: &lower::Lowered| {
        validate::validate(l.model.clone()).map_err(|e| explain(e, &l.model, &l.sources))
    };
    let mut lowered = lower_with(&BiasShift::new())?;
    let mut how = match (calib, is_qdq) {
        (None, _) => "scales and zero points of its QuantizeLinear nodes (QDQ)".to_string(),
        (Some(c), true) => format!(
            "scales of its QuantizeLinear nodes (QDQ), the rest calibrated on {} rows ({:?})",
            c.rows(),
            opts.calibration
        ),
        (Some(c), false) => format!("calibrated on {} rows ({:?})", c.rows(), opts.calibration),
    };
    if let (Some(rows), true, false) = (&rows, opts.bias_correction, is_qdq) {
        let (corrected, shift) = calibrate::bias_shift(rows, lowered, lower_with, validate)?;
        lowered = corrected;
        let largest = shift.values().flatten().fold(0f64, |m, d| m.max(d.abs()));
        how.push_str(&format!(
            ", bias correction of {} layers (largest {largest:.3e})",
            shift.len()
        ));
    }
    let model = validate(&lowered)?;
    let bytes = myelin_precompile::encode(model.model());
    let decoded = myelin_precompile::decode(&bytes)
        .map_err(|e| anyhow!("internal error: the encoded model does not decode: {e}"))?;
    ensure!(
        decoded == model,
        "internal error: the encoding does not round-trip"
    );
    let analysis = model.analysis();
    let mut report = format!(
        "{} -> Myelin (format v{}): {} ONNX nodes -> {} Myelin nodes, {how}\n",
        onnx_path.display(),
        bytes[4],
        onnx_nodes,
        lowered.model.nodes.len(),
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
        tensors: lowered.tensors,
    })
}

/// The input shape the model declares, without its batch axis (when no rows tell it).
fn declared_sample_shape(graph: &Graph) -> Result<Vec<usize>> {
    let dims: Option<Vec<usize>> = graph
        .input_dims
        .iter()
        .skip(1)
        .map(|d| match d {
            Dim::Known(v) => Some(*v),
            Dim::Symbolic(_) => None,
        })
        .collect();
    let dims = dims.ok_or_else(|| {
        anyhow!(
            "the input shape {:?} has symbolic dimensions besides the batch axis: pass --calib \
             rows to fix it",
            graph.input_dims
        )
    })?;
    graph.sample_shape(&dims)
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

/// Rows `start..end` of `x` as one batch: the float input `[rows, ...sample_shape]` and, for
/// each integer input of `graph`, its ids `[rows, ...shape]` (a row holds the float values,
/// then the ids).
fn batch(
    graph: &Graph,
    x: &npy::Array,
    data: &[f32],
    sample_shape: &[usize],
    start: usize,
    end: usize,
) -> Feed {
    let (len, rows) = (x.row_len(), end - start);
    let with_batch = |shape: &[usize]| [&[rows][..], shape].concat();
    let row = |r: usize| &data[(start + r) * len..(start + r + 1) * len];
    let mut at: usize = sample_shape.iter().product();
    let columns = |from: usize, to: usize| -> Vec<f32> {
        (0..rows).flat_map(|r| row(r)[from..to].to_vec()).collect()
    };
    let ids = graph
        .id_inputs
        .iter()
        .map(|i| {
            let t = Tensor::new(with_batch(&i.shape), columns(at, at + i.per_row));
            at += i.per_row;
            t
        })
        .collect();
    Feed {
        input: Tensor::new(
            with_batch(sample_shape),
            columns(0, sample_shape.iter().product()),
        ),
        ids,
    }
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
        let y = runner.run(
            batch(&graph, x, &data, &sample_shape, start, end),
            &mut |_, _| {},
        )?;
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

/// Quantizes one float input row with the model's input quantization (each feature with its
/// own if it has one per feature): `q = clamp(round(x / scale) + zero_point, −128, 127)`.
pub fn quantize_input(model: &Model, x: &[f32]) -> Vec<i8> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let q = model.element_quant(i);
            ((v as f64 / q.scale.to_f64()).round() + q.zero_point as f64).clamp(-128.0, 127.0) as i8
        })
        .collect()
}

/// Values per `.npy` row of `model`'s inputs: the int8 input's, then one per id.
pub fn row_len(model: &ValidModel) -> usize {
    myelin_precompile::input::fixed_len(model)
}

/// One `.npy` row as the model's input: the first values quantized with the input's
/// parameters, the rest the ids of its index inputs (whole numbers below their limits).
pub fn row_input(model: &ValidModel, row: &[f32]) -> Result<Input> {
    let n = model.analysis().input_len();
    ensure!(
        row.len() == row_len(model),
        "a row has {} values; the model takes {n} features and {} ids",
        row.len(),
        row_len(model) - n
    );
    let (values, mut ids) = row.split_at(n);
    let ids = model
        .model()
        .index_inputs
        .iter()
        .enumerate()
        .map(|(k, input)| {
            let (these, rest) = ids.split_at(input.limits.len());
            ids = rest;
            these
                .iter()
                .zip(&input.limits)
                .enumerate()
                .map(|(j, (&v, &limit))| {
                    ensure!(
                        v.fract() == 0.0 && v >= 0.0 && v < limit as f32,
                        "id {j} of index input {k} is {v}; it must be a whole number in 0..{limit}"
                    );
                    Ok(v as u16)
                })
                .collect::<Result<Vec<u16>>>()
        })
        .collect::<Result<_>>()?;
    Ok(Input {
        values: quantize_input(model.model(), values),
        ids,
    })
}

/// Dequantizes one int8 output row: `(q − zero_point) · output_scale`.
pub fn dequantize_output(model: &ValidModel, q: &[i8]) -> Vec<f32> {
    let (analysis, model) = (model.analysis(), model.model());
    let s = model.output_scale.to_f64();
    let zp = analysis.output_zero_point() as f64;
    q.iter().map(|&v| ((v as f64 - zp) * s) as f32).collect()
}
