//! Post-training quantization arithmetic (TFLite's scheme): asymmetric int8 activations from
//! calibrated ranges, symmetric per-channel int8 weights, int32 biases, fixed-point
//! multipliers, and the lookup tables of Lut and Softmax.

use anyhow::{ensure, Result};
use myelin_precompile::model::{Scale, MULT_MIN};
use myelin_precompile::ops::layernorm::NORM_BITS;

/// Quantization of an activation tensor: `real = (q − zp) · scale`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActQuant {
    pub scale: f64,
    pub zp: i8,
}

/// Asymmetric int8 quantization of the range `[min, max]`, widened to contain 0 so that real
/// zero (ReLU's floor, padding) is exact.
pub fn act_quant(min: f64, max: f64) -> ActQuant {
    let (min, max) = (min.min(0.0), max.max(0.0));
    let span = max - min;
    // An all-zero tensor: any scale represents it; pick one that keeps multipliers sane.
    let scale = if span > 1e-12 {
        span / 255.0
    } else {
        1.0 / 255.0
    };
    let zp = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i8;
    ActQuant { scale, zp }
}

/// `clamp(round(x / scale) + zp)` for a real `x`; infinities map to the int8 ends.
pub fn quantize(x: f64, q: ActQuant) -> i8 {
    if x == f64::NEG_INFINITY {
        return -128;
    }
    if x == f64::INFINITY {
        return 127;
    }
    ((x / q.scale).round() + q.zp as f64).clamp(-128.0, 127.0) as i8
}

pub fn dequantize(v: i8, q: ActQuant) -> f64 {
    (v as i32 - q.zp as i32) as f64 * q.scale
}

/// Smallest multiplier the format can hold: `mult = 2^30`, `shift = −31`, i.e. `2^−32`.
const MIN_MULTIPLIER: Scale = Scale {
    mult: MULT_MIN,
    shift: -31,
};

/// The fixed-point form of a requantization multiplier. Multipliers below `2^−32` (a channel
/// whose accumulator can never move the output by one step) become `2^−32`; multipliers of
/// `2^30` and more cannot be represented and are an error.
pub fn requant(m: f64) -> Result<Scale> {
    ensure!(
        m.is_finite() && m > 0.0,
        "requantization multiplier {m} is not a positive number"
    );
    if m < MIN_MULTIPLIER.to_f64() {
        return Ok(MIN_MULTIPLIER);
    }
    let s = Scale::from_f64(m).filter(|s| s.shift <= 30);
    s.ok_or_else(|| anyhow::anyhow!("requantization multiplier {m:e} is too large (the output range is far narrower than the input's)"))
}

/// A Dense/Conv layer quantized per output channel.
pub struct QuantLayer {
    pub weights: Vec<i8>,
    pub bias: Vec<i32>,
    /// One multiplier per channel (collapsed to one when all are equal).
    pub requant: Vec<Scale>,
    /// Per-channel weight scales, for the report.
    pub weight_scales: Vec<f64>,
}

/// Largest quantized bias magnitude the converter produces (`2^24`): far inside int32, so
/// the accumulator bound of validation holds with room for the weights and a left shift.
const MAX_BIAS_STEPS: f64 = (1u32 << 24) as f64;

/// Symmetric per-channel weights `s_w[o] = max|w[o]| / 127`, biases
/// `round(b / (s_in · s_w[o]))`, multipliers `s_in · s_w[o] / s_out`. Weights that already
/// lie on one int8 grid for the whole layer (quantized per tensor before: a QDQ model's)
/// keep that grid ([`tensor_grid`]), so their integers are the file's.
///
/// Two guards for degenerate channels: an all-zero weight row gets `s_w = s_out / s_in`
/// (multiplier 1: the bias is quantized at the output scale), and a channel whose weights are
/// negligible next to its bias (a dead ReLU unit after weight decay: |w| ~ 1e-12, b ~ −0.2)
/// gets `s_w` raised until the bias is at most 2^24 steps; its weights then round to ~0,
/// which is what they are worth.
pub fn quantize_layer(weights: &[f64], bias: &[f64], s_in: f64, s_out: f64) -> Result<QuantLayer> {
    let channels = bias.len();
    let fan_in = weights.len() / channels;
    let mut out = QuantLayer {
        weights: Vec::with_capacity(weights.len()),
        bias: Vec::with_capacity(channels),
        requant: Vec::with_capacity(channels),
        weight_scales: Vec::with_capacity(channels),
    };
    let grid = tensor_grid(weights);
    for (o, row) in weights.chunks(fan_in).enumerate() {
        let wmax = row.iter().fold(0f64, |m, w| m.max(w.abs()));
        let s_w = match grid {
            Some(s) => s,
            None if wmax > 0.0 => wmax / 127.0,
            None => s_out / s_in,
        };
        let s_w = s_w.max(bias[o].abs() / (s_in * MAX_BIAS_STEPS));
        out.weights.extend(
            row.iter()
                .map(|w| (w / s_w).round().clamp(-127.0, 127.0) as i8),
        );
        let b = (bias[o] / (s_in * s_w)).round();
        ensure!(
            b.abs() < i32::MAX as f64,
            "channel {o}: bias {} is {b:e} steps of the accumulator scale, beyond int32",
            bias[o]
        );
        out.bias.push(b as i32);
        out.requant
            .push(requant(s_in * s_w / s_out).map_err(|e| e.context(format!("channel {o}")))?);
        out.weight_scales.push(s_w);
    }
    if out.requant.windows(2).all(|p| p[0] == p[1]) {
        out.requant.truncate(1);
    }
    Ok(out)
}

/// Folds the zero points of a layer's input columns into its bias, for an input whose
/// tensor zero point (which the integer layer subtracts) is 0 while each column has its own
/// (a model input quantized per feature): `Σ w·(q − zp) + b = Σ w·q + (b − Σ w·zp)`, exact in
/// integers.
pub fn fold_zero_points(layer: &mut QuantLayer, zero_points: &[i8]) -> Result<()> {
    let fan_in = zero_points.len();
    for (o, (row, b)) in layer
        .weights
        .chunks(fan_in)
        .zip(&mut layer.bias)
        .enumerate()
    {
        let shift: i64 = row
            .iter()
            .zip(zero_points)
            .map(|(&w, &z)| w as i64 * z as i64)
            .sum();
        *b = i32::try_from(*b as i64 - shift).map_err(|_| {
            anyhow::anyhow!("channel {o}: the bias with the input zero points is beyond int32")
        })?;
    }
    Ok(())
}

/// The step `s = max|w| / 127` of a symmetric per-tensor int8 grid, if every weight is a whole
/// number of steps (to within the f32 rounding of `k · s`, far below half a step). Trained
/// float weights never are; weights dequantized from a per-tensor int8 tensor always are.
fn tensor_grid(weights: &[f64]) -> Option<f64> {
    let s = weights.iter().fold(0f64, |m, w| m.max(w.abs())) / 127.0;
    let on_grid = |w: &f64| {
        let k = w / s;
        (k - k.round()).abs() < 1e-4
    };
    (s > 0.0 && weights.iter().all(on_grid)).then_some(s)
}

/// A LayerNorm's integer parameters (SPEC §3.2 LayerNorm).
pub struct QuantLayerNorm {
    pub epsilon: u32,
    pub gamma: Vec<i16>,
    pub beta: Vec<i32>,
    pub requant: Scale,
    /// The scale `s_g` of `gamma` (one for the row), for the report.
    pub gamma_scale: f64,
}

/// Largest `|gamma|` (`2^14`): 14 bits of precision for the widest `γ · √L`, with room below
/// the i16 limit.
const LN_GAMMA_STEPS: f64 = (1u32 << 14) as f64;
/// Bound on `2^15 · |gamma| + |beta|` (`2^30`): validation requires it to survive
/// requantization in int32; half of the range leaves room for rounding and the zero point.
const LN_ACC_MAX: f64 = (1u32 << 30) as f64;

/// LayerNorm over rows of `L = gamma.len()` of an input of scale `s_in` (float `eps`, affine
/// `γ`, `β`) into an output of scale `s_out`.
///
/// The integer op computes `n = 2^15 · c / ⌊√(Σc² + epsilon)⌋` with `c = L · (x − mean) / s_in`,
/// so `Σc² = L³ · var / s_in²`: the float ε is `epsilon = round(ε · L³ / s_in²)` (at least 1,
/// which validation requires), and `n / 2^15 = normalized / √L`. Hence `gamma = γ · √L / s_g`,
/// `beta = β / s_acc` with `s_acc = s_g / 2^15`, and the multiplier `s_acc / s_out`, for one
/// scale `s_g` chosen as fine as both bounds allow: `|gamma| ≤ 2^14` and
/// `2^15 · |gamma| + |beta| ≤ 2^30` (a β large next to `γ · √L` costs gamma bits, not a
/// failed validation).
pub fn quantize_layer_norm(
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
    s_in: f64,
    s_out: f64,
) -> Result<QuantLayerNorm> {
    let l = gamma.len() as f64;
    let e = (eps * l.powi(3) / (s_in * s_in)).round();
    ensure!(
        e <= u32::MAX as f64,
        "epsilon {eps} is {e:e} in units of the integer variance, beyond u32: it dominates \
         the variance of any row of this input (its calibrated range is too narrow for it)"
    );
    let g: Vec<f64> = gamma.iter().map(|g| g * l.sqrt()).collect();
    let g_max = g.iter().fold(0f64, |m, v| m.max(v.abs()));
    let b_max = beta.iter().fold(0f64, |m, v| m.max(v.abs()));
    let norm = (1u32 << NORM_BITS) as f64;
    // One step of gamma (`2^15`) below the bound: room for rounding gamma and beta up.
    let s_g = (g_max / LN_GAMMA_STEPS).max((g_max + b_max) * norm / (LN_ACC_MAX - norm));
    // γ = β = 0: the output is 0 whatever the scale.
    let s_g = if s_g > 0.0 { s_g } else { 1.0 };
    let s_acc = s_g / norm;
    Ok(QuantLayerNorm {
        epsilon: e.max(1.0) as u32,
        gamma: g.iter().map(|v| (v / s_g).round() as i16).collect(),
        beta: beta.iter().map(|v| (v / s_acc).round() as i32).collect(),
        requant: requant(s_acc / s_out)?,
        gamma_scale: s_g,
    })
}

/// Table of an elementwise function: `table[i] = quantize_out(f(dequantize_in(i − 128)))`.
pub fn lut(f: impl Fn(f64) -> f64, input: ActQuant, output: ActQuant) -> Box<[i8; 256]> {
    let mut t = Box::new([0i8; 256]);
    for (i, v) in t.iter_mut().enumerate() {
        *v = quantize(f(dequantize((i as i32 - 128) as i8, input)), output);
    }
    t
}

/// Softmax weights `exp_table[d] = round(65535 · exp(−d · s_in))`, at least 1 at `d = 0`.
pub fn softmax_table(s_in: f64) -> Box<[u16; 256]> {
    let mut t = Box::new([0u16; 256]);
    for (d, v) in t.iter_mut().enumerate() {
        *v = (65535.0 * (-(d as f64) * s_in).exp())
            .round()
            .clamp(0.0, 65535.0) as u16;
    }
    t[0] = t[0].max(1);
    t
}

/// Quantization of Sigmoid's output (TFLite: scale 1/256, zero point −128).
pub const SIGMOID_OUT: ActQuant = ActQuant {
    scale: 1.0 / 256.0,
    zp: -128,
};
/// Quantization of Tanh's output (TFLite: scale 1/128, zero point 0).
pub const TANH_OUT: ActQuant = ActQuant {
    scale: 1.0 / 128.0,
    zp: 0,
};
/// Quantization of Softmax's output (fixed by the format).
pub const SOFTMAX_OUT: ActQuant = ActQuant {
    scale: 1.0 / 256.0,
    zp: -128,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_range_contains_zero() {
        let q = act_quant(0.0, 6.0);
        assert_eq!(q.zp, -128);
        assert!((q.scale - 6.0 / 255.0).abs() < 1e-12);
        let q = act_quant(1.0, 2.0); // widened to [0, 2]
        assert_eq!(q.zp, -128);
        let q = act_quant(-1.0, 1.0);
        assert_eq!(q.zp, -1); // round(−128 + 127.5): ties away from zero
    }

    #[test]
    fn requant_multipliers() {
        assert_eq!(
            requant(0.5).unwrap(),
            Scale {
                mult: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(requant(1e-30).unwrap(), MIN_MULTIPLIER);
        assert!(requant(2f64.powi(31)).is_err());
    }

    #[test]
    fn per_channel_layer() {
        let q = quantize_layer(&[1.0, -0.5, 0.0, 0.0], &[0.25, 0.1], 0.01, 0.02).unwrap();
        assert_eq!(q.weights, vec![127, -64, 0, 0]);
        assert_eq!(q.bias[0], (0.25f64 / (0.01 / 127.0)).round() as i32);
        assert_eq!(q.bias[1], 5); // zero row: quantized at the output scale
        assert_eq!(q.requant.len(), 2);
        // a dead unit: tiny weights, ordinary bias
        let q = quantize_layer(&[1e-12, -1e-13], &[-0.2], 0.01, 0.05).unwrap();
        assert_eq!(q.bias[0], -(1 << 24));
        assert_eq!(q.weights, vec![0, 0]);
    }

    #[test]
    fn weights_on_a_per_tensor_grid_keep_their_integers() {
        // a QDQ model's per-tensor int8 weights, dequantized in f32: channel 1 stays at the
        // tensor's step instead of a finer one of its own
        let s = 0.013f32;
        let w: Vec<f64> = [127i8, -40, 3, -2, 5, 0]
            .iter()
            .map(|&k| (k as f32 * s) as f64)
            .collect();
        let b = (1234.0 * 0.5 * s as f64) as f32 as f64;
        let q = quantize_layer(&w, &[0.0, b], 0.5, 0.1).unwrap();
        assert_eq!(q.weights, vec![127, -40, 3, -2, 5, 0]);
        assert_eq!(q.bias, vec![0, 1234]);
        // trained weights are not on a grid: per channel as usual
        assert_eq!(tensor_grid(&[0.3, -0.1234567, 0.05]), None);
    }

    #[test]
    fn layer_norm_bounds_hold_when_beta_dominates() {
        // γ · √L = 0.71 takes the full 2^14 steps; a β 2800 times larger costs gamma bits
        // (12 steps left) instead of breaking the bound 2^15 · |gamma| + |beta| ≤ 2^30
        for beta in [0.5, 2000.0] {
            let q = quantize_layer_norm(&[0.5, -0.25], &[beta, 0.0], 1e-5, 0.01, 0.1).unwrap();
            let acc = |i: usize| ((q.gamma[i] as i64).abs() << 15) + (q.beta[i] as i64).abs();
            assert!(acc(0) <= 1 << 30 && acc(1) <= 1 << 30, "{beta}");
            assert_eq!(q.gamma[0] == 1 << 14, beta < 1.0);
            assert_eq!(q.gamma[1], -q.gamma[0] / 2);
        }
        // ε · L³ / s² = 1e-5 · 8 / 1e-4
        let q = quantize_layer_norm(&[1.0, 1.0], &[0.0, 0.0], 1e-5, 0.01, 0.1).unwrap();
        assert_eq!(q.epsilon, 1);
        assert!(quantize_layer_norm(&[1.0; 2], &[0.0; 2], 1e9, 0.01, 0.1).is_err());
    }

    #[test]
    fn softmax_table_starts_at_full_weight() {
        let t = softmax_table(0.1);
        assert_eq!(t[0], 65535);
        assert!(t.windows(2).all(|p| p[0] >= p[1]));
    }
}
