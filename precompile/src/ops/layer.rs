//! What Dense and Conv share: the requantized output (codec, checks, overflow proof) and the
//! bias and weight arrays (the engine's prepared form is the matrix kernel's, `gemm/`). Add
//! and the other requantizing operators use the output too.

use super::Checked;
use crate::codec::Reader;
use crate::error::{Code, ModelError};
use crate::model::{Requant, Scale};
use crate::quant::mbq;
use crate::validate::{check_act, check_requant, not_encodable, requant_bound};

/// Requantization of a layer's int32 accumulators back to int8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// One multiplier for the whole layer, or one per output channel.
    pub requant: Vec<Requant>,
    pub zero_point: i8,
    /// Fused activation: results are clamped to `[act_min, act_max]` (ReLU, ReLU6, none).
    pub act_min: i8,
    pub act_max: i8,
}

impl Output {
    /// The multiplier of output channel `channel`.
    pub fn requant_of(&self, channel: usize) -> Requant {
        self.requant[if self.requant.len() == 1 { 0 } else { channel }]
    }

    pub(crate) fn read(r: &mut Reader<'_>, channels: u32) -> Result<Output, ModelError> {
        let per_channel = r.flag("per_channel")?;
        if per_channel && channels < 2 {
            // One channel has one multiplier: only the per-tensor encoding is canonical.
            return Err(r.error(
                Code::PerChannelNotCanonical,
                format!("per_channel = 1 with {channels} channel(s)"),
            ));
        }
        let count = if per_channel { channels as usize } else { 1 };
        r.reserve(count, 5)?;
        let requant = (0..count).map(|_| r.scale()).collect::<Result<_, _>>()?;
        Ok(Output {
            requant,
            zero_point: r.i8()?,
            act_min: r.i8()?,
            act_max: r.i8()?,
        })
    }

    /// Operators with one output multiplier (Add, Sub, Mul, ReduceSum, MatMul, LayerNorm):
    /// an in-memory model with several is not encodable.
    pub(crate) fn expect_single(&self, node: usize, op: &str) -> Result<(), ModelError> {
        if self.requant.len() != 1 {
            return Err(not_encodable(
                node,
                format!("{op} has exactly one output multiplier"),
            ));
        }
        Ok(())
    }

    /// SPEC §4.1's parameter checks of a single-multiplier output: the multiplier, then the
    /// fused clamp.
    pub(crate) fn check_single(&self, node: usize) -> Result<(), ModelError> {
        check_requant(node, self.requant[0])?;
        check_act(node, self.act_min, self.act_max)
    }

    /// That every `|acc| ≤ bound` survives requantization by the single multiplier (§4.3);
    /// the node then takes this output's zero point and has no parameters.
    pub(crate) fn bounded(&self, node: usize, bound: u64) -> Result<Checked, ModelError> {
        requant_bound(node, bound, self.requant[0], self.zero_point)?;
        Ok(Checked {
            zero_point: self.zero_point,
            params: 0,
        })
    }

    pub(crate) fn write(&self, w: &mut Vec<u8>) {
        w.push((self.requant.len() > 1) as u8);
        for &rq in &self.requant {
            put_scale(w, rq);
        }
        w.extend_from_slice(&[
            self.zero_point as u8,
            self.act_min as u8,
            self.act_max as u8,
        ]);
    }

    /// SPEC §3's `REQUANT`: `clamp(MBQ(acc, multiplier of channel) + zero_point, act)`.
    pub fn apply(&self, acc: i32, channel: usize) -> i8 {
        let v = mbq(acc, self.requant_of(channel)).unwrap_or_else(|| {
            unreachable!("validation proves every accumulator survives requantization")
        }) + self.zero_point as i32;
        v.clamp(self.act_min as i32, self.act_max as i32) as i8
    }
}

pub(crate) fn put_scale(w: &mut Vec<u8>, s: Scale) {
    w.extend_from_slice(&s.mult.to_le_bytes());
    w.push(s.shift as u8);
}

/// Reads `channels` biases and `channels · fan_in` weights (failing before allocating if the
/// bytes are not there).
pub(crate) fn read_params(
    r: &mut Reader<'_>,
    channels: u32,
    fan_in: u64,
) -> Result<(Vec<i32>, Vec<i8>), ModelError> {
    r.reserve(channels as usize, 4)?;
    let bias = (0..channels).map(|_| r.i32()).collect::<Result<_, _>>()?;
    let n = (channels as u64).saturating_mul(fan_in);
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    let weights = r.take(n)?.iter().map(|&b| b as i8).collect();
    Ok((bias, weights))
}

pub(crate) fn write_params(w: &mut Vec<u8>, bias: &[i32], weights: &[i8]) {
    for b in bias {
        w.extend_from_slice(&b.to_le_bytes());
    }
    w.extend(weights.iter().map(|&v| v as u8));
}

pub(crate) fn zero_channels(node: usize, channels: u32) -> Result<(), ModelError> {
    if channels == 0 {
        return Err(ModelError::at(
            Code::ZeroDim,
            node,
            "a layer needs at least one output channel".to_string(),
        ));
    }
    Ok(())
}

/// In-memory models only: the arrays have the lengths the shapes require.
pub(crate) fn check_arrays(
    node: usize,
    channels: u32,
    fan_in: u64,
    out: &Output,
    bias: &[i32],
    weights: usize,
) -> Result<(), ModelError> {
    let rq = out.requant.len();
    if rq != 1 && rq != channels as usize {
        return Err(not_encodable(
            node,
            format!("{rq} multipliers for {channels} channels"),
        ));
    }
    if bias.len() != channels as usize || weights as u64 != channels as u64 * fan_in {
        return Err(not_encodable(
            node,
            format!(
                "{} biases and {weights} weights; shapes need {channels} and {}",
                bias.len(),
                channels as u64 * fan_in
            ),
        ));
    }
    Ok(())
}

/// Checks an output that may have one multiplier per channel, in SPEC order: each
/// multiplier, the per-channel encoding, the fused clamp.
pub(crate) fn check_output(node: usize, out: &Output) -> Result<(), ModelError> {
    for &rq in &out.requant {
        check_requant(node, rq)?;
    }
    if out.requant.len() > 1 && out.requant.windows(2).all(|p| p[0] == p[1]) {
        return Err(ModelError::at(
            Code::PerChannelNotCanonical,
            node,
            "per-channel multipliers that are all equal (per_channel = 0 is canonical)",
        ));
    }
    check_act(node, out.act_min, out.act_max)
}

/// Checks a layer's parameters in SPEC order: each multiplier, the per-channel encoding, the
/// fused clamp, then for every output channel that the largest possible accumulator
/// `|bias| + 255 · Σ|w|` survives requantization in int32.
pub(crate) fn check(
    node: usize,
    out: &Output,
    bias: &[i32],
    weights: &[i8],
) -> Result<(), ModelError> {
    check_output(node, out)?;
    let fan_in = weights.len() / bias.len();
    for (ch, row) in weights.chunks(fan_in).enumerate() {
        let abs_w: u64 = row.iter().map(|&w| (w as i64).unsigned_abs()).sum();
        let bound = (bias[ch] as i64).unsigned_abs() + 255 * abs_w;
        requant_bound(node, bound, out.requant_of(ch), out.zero_point)?;
    }
    Ok(())
}
