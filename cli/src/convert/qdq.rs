//! Models already quantized by onnxruntime's static quantizer in the QDQ format
//! (`quantize_static(..., quant_format=QuantFormat.QDQ)`): every quantized activation passes
//! through a QuantizeLinear → DequantizeLinear pair, and weights and biases are integer
//! initializers read through a DequantizeLinear. The converter keeps their quantization
//! instead of calibrating its own:
//!
//! - A DequantizeLinear of constants is a float constant ([`dequantize_const`], folded when
//!   the graph is loaded). The layer is then quantized from those values
//!   ([`super::quant::quantize_layer`]), which gives back the file's int8 weights when they
//!   are symmetric, per channel (onnxruntime's `per_channel=True`: each channel's largest
//!   weight is ±127 steps, so `s_w = max|w| / 127` is the file's scale) or per tensor (the
//!   weights lie on one grid, which the quantizer keeps), and its int32 biases, whose scale
//!   is `s_in · s_w` (checked on onnxruntime's output of both kinds: every weight and bias
//!   tensor appears verbatim in the `.myl`). Weights with a zero point or 7-bit ranges
//!   (`reduce_range`) are re-quantized from their values.
//! - A QuantizeLinear / DequantizeLinear of an activation evaluates as what it computes in
//!   float (rounding to the grid, clamping) and lowers to nothing: [`ranges`] turns its
//!   scale `s` and zero point `z` into the range `[(qmin − z)·s, (qmax − z)·s]` of the
//!   tensor it quantizes and of its outputs, which [`super::quant::act_quant`] maps back to
//!   scale `s` and zero point `z` (int8), or `z − 128` (uint8, onnxruntime's default for
//!   activations: the same real grid shifted into int8, exactly). Scales enter the model as
//!   requantization multipliers computed from them; where the format stores a scale itself
//!   (the model's input and output) it is `Scale::from_f64(s)`, `mult · 2^(shift − 31)` with
//!   `mult` the nearest 31-bit integer (ties away from zero): a relative error below 2^−31.
//!   Where the format fixes a tensor's quantization (Softmax, Sigmoid, Tanh outputs; pools
//!   and layout ops keep their input's) the format wins.
//!
//! The QOperator format (QLinearConv, QLinearMatMul, …) is not read: the unsupported-op
//! error says to quantize with `QuantFormat.QDQ` instead.

use anyhow::{anyhow, bail, ensure, Result};
use std::collections::HashMap;

use super::float::{Env, Runner, Tensor};
use super::graph::{Const, ConstData, Graph, Node};
use super::lower::Ranges;

/// The float values of `DequantizeLinear(x, scale, zero_point)` of constants:
/// `(x − zero_point) · scale`, per tensor or per slice along `axis` (default 1).
pub fn dequantize_const(node: &Node, consts: &HashMap<String, Const>) -> Result<Const> {
    let get = |i: usize| node.input(i).and_then(|n| consts.get(n));
    let x = get(0).ok_or_else(|| anyhow!("missing input x"))?;
    let scale = get(1).ok_or_else(|| anyhow!("missing scale"))?;
    let (step, zero) = params(node, &x.dims, scale, get(2))?;
    let values = x.f32();
    let data = values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = step.channel(i);
            ((v as f64 - zero[c]) * step.scales[c]) as f32
        })
        .collect();
    Ok(Const {
        dims: x.dims.clone(),
        data: ConstData::F32(data),
    })
}

/// Scales and zero points of a Q/DQ node over a tensor of `dims`, one per slice of its axis
/// (or one for the whole tensor).
struct Steps {
    scales: Vec<f64>,
    /// Elements per step of the axis (the product of the dims after it).
    inner: usize,
}

impl Steps {
    fn channel(&self, i: usize) -> usize {
        (i / self.inner) % self.scales.len()
    }
}

fn params(
    node: &Node,
    dims: &[usize],
    scale: &Const,
    zero_point: Option<&Const>,
) -> Result<(Steps, Vec<f64>)> {
    let scales: Vec<f64> = scale.f32().iter().map(|&s| s as f64).collect();
    ensure!(
        scales.iter().all(|s| s.is_finite() && *s > 0.0),
        "scales must be positive, got {scales:?}"
    );
    let inner = if scales.len() == 1 {
        1
    } else {
        let rank = dims.len() as i64;
        let axis = node.int("axis", 1)?;
        let axis = if axis < 0 { axis + rank } else { axis };
        ensure!(
            (0..rank).contains(&axis) && dims[axis as usize] == scales.len(),
            "{} scales do not match axis {axis} of {dims:?}",
            scales.len()
        );
        dims[axis as usize + 1..].iter().product()
    };
    let zero = match zero_point {
        None => vec![0.0; scales.len()],
        Some(z) => {
            let z: Vec<f64> = z.f32().iter().map(|&v| v as f64).collect();
            ensure!(
                z.len() == scales.len(),
                "{} zero points for {} scales",
                z.len(),
                scales.len()
            );
            z
        }
    };
    Ok((Steps { scales, inner }, zero))
}

/// The quantization of a Q/DQ node on an activation: one scale, one zero point, and the
/// integer range of its type.
struct ActGrid {
    scale: f64,
    zero: f64,
    qmin: f64,
    qmax: f64,
}

impl ActGrid {
    fn of(graph: &Graph, node: &Node) -> Result<ActGrid> {
        let get = |i: usize| node.input(i).and_then(|n| graph.consts.get(n));
        let scale = get(1).ok_or_else(|| {
            anyhow!(
                "{}: the scale must be a constant (onnxruntime writes an initializer)",
                node.describe()
            )
        })?;
        ensure!(
            scale.numel() == 1,
            "{}: activations must be quantized per tensor, not per axis ({} scales); \
             quantize activations per tensor (onnxruntime's default)",
            node.describe(),
            scale.numel()
        );
        let zp = get(2);
        let (steps, zero) =
            params(node, &[], scale, zp).map_err(|e| anyhow!("{}: {e}", node.describe()))?;
        // no zero point means uint8, as ONNX specifies
        let unsigned = node.input(2).is_none_or(|z| graph.uint8.contains(z));
        let (qmin, qmax) = if unsigned {
            (0.0, 255.0)
        } else {
            (-128.0, 127.0)
        };
        if let Some(z) = zp {
            ensure!(
                matches!(z.data, ConstData::I64(_)),
                "{}: zero point of type float: only int8 and uint8 quantization is supported \
                 (quantize with QuantType.QUInt8 or QInt8)",
                node.describe()
            );
        }
        Ok(ActGrid {
            scale: steps.scales[0],
            zero: zero[0],
            qmin,
            qmax,
        })
    }

    /// The real range the grid covers: `[(qmin − z)·s, (qmax − z)·s]`.
    fn range(&self) -> (f64, f64) {
        (
            (self.qmin - self.zero) * self.scale,
            (self.qmax - self.zero) * self.scale,
        )
    }
}

/// The range of every tensor a QuantizeLinear or DequantizeLinear of the graph reads or
/// writes, from its scale and zero point (see the module doc); empty for a float model.
pub fn ranges(graph: &Graph) -> Result<Ranges> {
    let mut ranges = Ranges::new();
    for node in &graph.nodes {
        match node.op.as_str() {
            "QuantizeLinear" | "DequantizeLinear" => {
                let r = ActGrid::of(graph, node)?.range();
                let tensors = node
                    .inputs
                    .iter()
                    .take(1)
                    .chain(node.outputs.iter().take(1));
                for t in tensors {
                    ranges.insert(t.clone(), r);
                }
            }
            op if op.starts_with("QLinear") || op.starts_with("ConvInteger") => bail!(
                "unsupported ONNX op `{op}` (node `{}`): the QOperator format is not read; \
                 quantize with onnxruntime's quant_format=QuantFormat.QDQ instead",
                node.name
            ),
            _ => {}
        }
    }
    Ok(ranges)
}

/// QuantizeLinear in float: `clamp(round_half_even(x / s) + z, qmin, qmax)`, the integers
/// as floats (the following DequantizeLinear scales them back).
pub(super) fn eval_quantize(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let g = ActGrid::of(runner.graph(), node)?;
    let x = runner.get(env, node, 0)?;
    let data = x
        .data
        .iter()
        .map(|&v| ((v as f64 / g.scale).round_ties_even() + g.zero).clamp(g.qmin, g.qmax) as f32)
        .collect();
    Ok(Tensor::new(x.shape, data))
}

/// DequantizeLinear of an activation in float: `(q − z) · s`.
pub(super) fn eval_dequantize(runner: &Runner<'_>, node: &Node, env: &Env<'_>) -> Result<Tensor> {
    let g = ActGrid::of(runner.graph(), node)?;
    let x = runner.get(env, node, 0)?;
    let data = x
        .data
        .iter()
        .map(|&v| ((v as f64 - g.zero) * g.scale) as f32)
        .collect();
    Ok(Tensor::new(x.shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str]) -> Node {
        Node {
            name: "q".into(),
            op: op.into(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec!["y".into()],
            attrs: HashMap::new(),
        }
    }

    fn konst(dims: &[usize], data: ConstData) -> Const {
        Const {
            dims: dims.to_vec(),
            data,
        }
    }

    #[test]
    fn per_channel_weights_dequantize_along_axis_0() {
        let consts = HashMap::from([
            (
                "w".to_string(),
                konst(&[2, 2], ConstData::I64(vec![127, -3, 2, -127])),
            ),
            (
                "s".to_string(),
                konst(&[2], ConstData::F32(vec![0.5, 0.25])),
            ),
            ("z".to_string(), konst(&[2], ConstData::I64(vec![0, 0]))),
        ]);
        let mut n = node("DequantizeLinear", &["w", "s", "z"]);
        n.attrs
            .insert("axis".into(), super::super::graph::Attr::Int(0));
        let c = dequantize_const(&n, &consts).unwrap();
        assert_eq!(c.f32(), vec![63.5, -1.5, 0.5, -31.75]);
    }

    #[test]
    fn uint8_activation_maps_to_int8_by_shifting_the_zero_point() {
        let g = ActGrid {
            scale: 0.02f32 as f64, // ONNX scales are f32
            zero: 37.0,
            qmin: 0.0,
            qmax: 255.0,
        };
        let (lo, hi) = g.range();
        let q = super::super::quant::act_quant(lo, hi);
        assert_eq!(q.zp as i32, 37 - 128);
        assert_eq!(q.scale, 0.02f32 as f64);
    }
}
