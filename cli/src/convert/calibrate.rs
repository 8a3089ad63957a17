//! What the calibration rows decide: the range of every activation tensor and, optionally,
//! a correction of every layer's bias.
//!
//! **Ranges.** A first float pass records each tensor's minimum and maximum. With
//! [`Calibration::Minmax`] that is the range. The other modes make a second pass that fills
//! a histogram per tensor over that range and choose a narrower one from it: a few extreme
//! values otherwise stretch the scale of the whole tensor, and every other value loses
//! precision for them.
//!
//! **Bias correction.** Rounding weights and inputs shifts the mean of a layer's output a
//! little, the same way on every row, and a following least-squares layer can amplify such
//! a shift into a different argmax. After lowering, [`bias_shift`] measures, for every
//! Dense/Conv node, the mean of its accumulator in real units over the calibration rows
//! (from the integer model's own input to that node) and the mean of the float tensor it
//! approximates before its activation, per output channel; the difference is subtracted
//! from the float bias and the model lowered again. Layers are linear, so the accumulator's
//! mean is the layer applied to the mean input ([`mean_accumulator`]): no integer
//! accumulator is materialised per row.

use std::collections::HashMap;

use anyhow::{bail, ensure, Result};
use indicatif::{ProgressBar, ProgressStyle};
use myelin_precompile::input::Input;
use myelin_precompile::model::{self as m, Node as MNode, Output, TensorId};
use myelin_precompile::ValidModel;

use super::float::{Runner, Tensor};
use super::graph::Graph;
use super::layers;
use super::lower::{BiasShift, Lowered, Ranges};
use super::quant;
use super::{batch, CHUNK};
use crate::npy;

/// How activation ranges are chosen from the calibration rows. The default is min/max:
/// clipping helps tensors with long tails, but on the models measured here (the shipped
/// ones, issue 12's sensitive CNN, the synthetic graphs of the tests) it gained no
/// agreement and raised the largest errors, while bias correction gained all of it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Calibration {
    /// The observed minimum and maximum of every tensor.
    #[default]
    Minmax,
    /// The 0.01 % and 99.99 % quantiles of every tensor (never wider than min/max).
    Percentile,
    /// The range that minimises the expected squared error of every tensor: clipping error
    /// of the values outside it, rounding error `scale² / 12` of the values inside.
    Mse,
}

/// Bins of each tensor's histogram: at least 8 per int8 step of the widest range.
const BINS: usize = 2048;
/// Fraction of values [`Calibration::Percentile`] leaves outside the range on each side.
const PERCENTILE_TAIL: f64 = 1e-4;
/// Candidate ends per side [`Calibration::Mse`] tries: `k / MSE_STEPS` of the observed end.
const MSE_STEPS: usize = 128;
/// Rounds of bias correction: each re-measures with the corrections so far, so the
/// correction of a layer sees its inputs as corrected upstream.
const BIAS_ROUNDS: usize = 3;

/// The calibration rows as the float interpreter reads them.
pub(super) struct Rows<'a> {
    graph: &'a Graph,
    x: &'a npy::Array,
    data: Vec<f32>,
    sample_shape: &'a [usize],
}

impl<'a> Rows<'a> {
    pub(super) fn new(
        graph: &'a Graph,
        x: &'a npy::Array,
        sample_shape: &'a [usize],
    ) -> Result<Self> {
        let data = x.to_f32();
        ensure!(
            data.iter().all(|v| v.is_finite()),
            "calibration data contains NaN or infinite values"
        );
        Ok(Rows {
            graph,
            x,
            data,
            sample_shape,
        })
    }

    /// One float pass over every row, `CHUNK` rows per call, showing every tensor to
    /// `observe`.
    pub(super) fn pass(
        &self,
        bar: &ProgressBar,
        observe: &mut dyn FnMut(&str, &Tensor),
    ) -> Result<()> {
        let runner = Runner::new(self.graph);
        let rows = self.x.rows();
        for start in (0..rows).step_by(CHUNK) {
            let end = (start + CHUNK).min(rows);
            runner.run(
                batch(
                    self.graph,
                    self.x,
                    &self.data,
                    self.sample_shape,
                    start,
                    end,
                ),
                observe,
            )?;
            bar.inc((end - start) as u64);
        }
        Ok(())
    }

    /// The range of each element of the float input (each feature of a `[N, F]` input).
    pub(super) fn feature_ranges(&self) -> Vec<(f64, f64)> {
        let n: usize = self.sample_shape.iter().product();
        let mut r = vec![(f64::INFINITY, f64::NEG_INFINITY); n];
        for row in self.data.chunks(self.x.row_len()) {
            for ((lo, hi), &v) in r.iter_mut().zip(&row[..n]) {
                (*lo, *hi) = (lo.min(v as f64), hi.max(v as f64));
            }
        }
        r
    }

    /// The rows as `model`'s inputs: quantized with its input quantization, ids after.
    pub(super) fn quantized(&self, model: &ValidModel) -> Result<Vec<Input>> {
        self.data
            .chunks(self.x.row_len())
            .map(|row| super::row_input(model, row))
            .collect()
    }
}

/// The range of every tensor the graph computes on `rows`.
pub(super) fn ranges(rows: &Rows<'_>, mode: Calibration, progress: bool) -> Result<Ranges> {
    let passes = if mode == Calibration::Minmax { 1 } else { 2 };
    let bar = if progress {
        ProgressBar::new((rows.x.rows() * passes) as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("calibrating {bar:40} {pos}/{len} rows [{elapsed_precise}]")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut ranges = Ranges::new();
    let mut bad: Option<String> = None;
    rows.pass(&bar, &mut |name: &str, t: &Tensor| {
        let (lo, hi) = t
            .data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if !(lo.is_finite() && hi.is_finite()) && bad.is_none() {
            bad = Some(name.to_string());
        }
        let (lo, hi) = (lo as f64, hi as f64);
        let r = ranges.entry(name.to_string()).or_insert((lo, hi));
        *r = (r.0.min(lo), r.1.max(hi));
    })?;
    if let Some(name) = bad {
        bail!("tensor `{name}` takes non-finite values on the calibration data");
    }
    if mode != Calibration::Minmax {
        let mut hists: HashMap<String, Histogram> = ranges
            .iter()
            .map(|(name, &r)| (name.clone(), Histogram::new(r)))
            .collect();
        rows.pass(&bar, &mut |name: &str, t: &Tensor| {
            if let Some(h) = hists.get_mut(name) {
                t.data.iter().for_each(|&v| h.add(v));
            }
        })?;
        for (name, h) in hists {
            let (lo, hi) = match mode {
                Calibration::Percentile => h.percentile(),
                _ => h.mse(),
            };
            ranges.insert(name, (lo, hi));
        }
    }
    bar.finish_and_clear();
    Ok(ranges)
}

/// Counts of a tensor's values in [`BINS`] equal bins over its observed range (widened to
/// contain 0, as [`quant::act_quant`] widens it).
struct Histogram {
    lo: f64,
    width: f64,
    counts: Vec<u64>,
}

impl Histogram {
    fn new((lo, hi): (f64, f64)) -> Histogram {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        Histogram {
            lo,
            width: (hi - lo) / BINS as f64,
            counts: vec![0; BINS],
        }
    }

    fn add(&mut self, v: f32) {
        let i = if self.width > 0.0 {
            ((v as f64 - self.lo) / self.width) as usize
        } else {
            0
        };
        self.counts[i.min(BINS - 1)] += 1;
    }

    fn hi(&self) -> f64 {
        self.lo + self.width * BINS as f64
    }

    /// The bin centres with their counts, empty bins left out.
    fn values(&self) -> impl Iterator<Item = (f64, f64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(|(i, &c)| (self.lo + (i as f64 + 0.5) * self.width, c as f64))
    }

    fn percentile(&self) -> (f64, f64) {
        let tail = PERCENTILE_TAIL * self.counts.iter().sum::<u64>() as f64;
        let bins = self.counts.iter().copied().enumerate();
        let first = past_tail(tail, bins.clone()).unwrap_or(0);
        let last = past_tail(tail, bins.rev()).unwrap_or(BINS - 1);
        let lo = self.lo + first as f64 * self.width;
        let hi = self.lo + (last + 1) as f64 * self.width;
        (lo.min(0.0), hi.max(0.0))
    }

    /// The ends minimising [`Histogram::error`]: the upper end first (the lower one at the
    /// observed minimum), then the lower one. Ties keep the wider range.
    fn mse(&self) -> (f64, f64) {
        let (lo, hi) = (self.lo, self.hi());
        let step = |end: f64, k: usize| end * k as f64 / MSE_STEPS as f64;
        let hi = self
            .best((1..=MSE_STEPS).rev().map(|k| (lo, step(hi, k))))
            .1;
        self.best((1..=MSE_STEPS).rev().map(|k| (step(lo, k), hi)))
    }

    /// The candidate range of least [`Histogram::error`], the first of equal ones.
    fn best(&self, candidates: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
        let mut best = (f64::INFINITY, (self.lo, self.hi()));
        for r in candidates {
            let e = self.error(r);
            if e < best.0 {
                best = (e, r);
            }
        }
        best.1
    }

    /// Expected squared error of quantizing the histogram's values with the range `(lo, hi)`.
    fn error(&self, (lo, hi): (f64, f64)) -> f64 {
        let q = quant::act_quant(lo, hi);
        let (min, max) = (quant::dequantize(-128, q), quant::dequantize(127, q));
        let inside = q.scale * q.scale / 12.0;
        self.values()
            .map(|(v, c)| {
                c * if v < min {
                    (min - v).powi(2)
                } else if v > max {
                    (v - max).powi(2)
                } else {
                    inside
                }
            })
            .sum()
    }
}

/// The first bin of `bins` (counts in some order) where the cumulative count passes `tail`.
fn past_tail(tail: f64, bins: impl Iterator<Item = (usize, u64)>) -> Option<usize> {
    let mut cum = 0.0;
    for (i, c) in bins {
        cum += c as f64;
        if cum > tail {
            return Some(i);
        }
    }
    None
}

/// The bias correction of every Dense/Conv layer of `lowered` (see the module doc), after
/// [`BIAS_ROUNDS`] rounds; `lower` lowers the graph again with a given correction and
/// `validate` checks a lowered model.
pub(super) fn bias_shift(
    rows: &Rows<'_>,
    mut lowered: Lowered,
    lower: impl Fn(&BiasShift) -> Result<Lowered>,
    validate: impl Fn(&Lowered) -> Result<ValidModel>,
) -> Result<(Lowered, BiasShift)> {
    let targets = float_channel_means(rows, &lowered)?;
    let mut shift = BiasShift::new();
    for _ in 0..BIAS_ROUNDS {
        let model = validate(&lowered)?;
        let qrows = rows.quantized(&model)?;
        for (&node, name) in &lowered.pre_activation {
            let Some(target) = targets.get(name) else {
                continue;
            };
            let Some(mean) = mean_accumulator(&model, &lowered, node, &qrows)? else {
                continue;
            };
            if mean.len() != target.len() {
                continue; // the float tensor's channels are not the layer's: leave it
            }
            let s = shift
                .entry(name.clone())
                .or_insert_with(|| vec![0.0; target.len()]);
            for ((s, m), t) in s.iter_mut().zip(mean).zip(target) {
                *s += m - t;
            }
        }
        lowered = lower(&shift)?;
    }
    Ok((lowered, shift))
}

/// Per output channel, the float mean over the rows (and positions) of the tensor each
/// layer approximates before its activation.
fn float_channel_means(rows: &Rows<'_>, lowered: &Lowered) -> Result<HashMap<String, Vec<f64>>> {
    // channel axis of each wanted tensor (batch axis included): 1 for Conv, last for Dense
    let wanted: HashMap<&str, bool> = lowered
        .pre_activation
        .iter()
        .map(|(&n, name)| {
            let conv = matches!(lowered.model.nodes[n], MNode::Conv(_));
            (name.as_str(), conv)
        })
        .collect();
    let mut sums: HashMap<String, (Vec<f64>, u64)> = HashMap::new();
    rows.pass(&ProgressBar::hidden(), &mut |name: &str, t: &Tensor| {
        let Some(&conv) = wanted.get(name) else {
            return;
        };
        let (channels, inner) = if conv {
            (t.shape[1], t.shape[2..].iter().product())
        } else {
            (*t.shape.last().unwrap_or(&1), 1)
        };
        let (sum, count) = sums
            .entry(name.to_string())
            .or_insert_with(|| (vec![0.0; channels], 0));
        for (i, &v) in t.data.iter().enumerate() {
            sum[(i / inner) % channels] += v as f64;
        }
        *count += (t.data.len() / channels) as u64;
    })?;
    Ok(sums
        .into_iter()
        .map(|(name, (sum, count))| {
            let mean = sum.iter().map(|s| s / count.max(1) as f64).collect();
            (name, mean)
        })
        .collect())
}

/// Per output channel, the mean over `qrows` and output positions of Dense/Conv node
/// `node`'s accumulator in real units (`multiplier · output scale` per step): the layer
/// applied to the mean of its integer input. `None` for other nodes or a node whose
/// tensors are not known.
fn mean_accumulator(
    model: &ValidModel,
    lowered: &Lowered,
    node: usize,
    qrows: &[Input],
) -> Result<Option<Vec<f64>>> {
    let model_nodes = &model.model().nodes;
    let (input, out, bias, weights): (_, &Output, &[i32], &[i8]) = match &model_nodes[node] {
        MNode::Dense(d) => (d.input, &d.out, &d.bias, &d.weights),
        MNode::Conv(c) => (c.input, &c.out, &c.bias, &c.weights),
        _ => return Ok(None),
    };
    let (Some(x), Some(y)) = (
        lowered.tensors.get(&input),
        lowered.tensors.get(&(node as TensorId + 1)),
    ) else {
        return Ok(None);
    };
    let values = layers::tensor_rows(model, input, x.q, qrows)?;
    let len = values.first().map_or(0, Vec::len);
    let mut mean = vec![0.0; len];
    for row in &values {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += (v as i32 - x.q.zp as i32) as f64;
        }
    }
    mean.iter_mut()
        .for_each(|v| *v /= values.len().max(1) as f64);
    let shape = &model.analysis().shapes[input as usize];
    let columns = match &model_nodes[node] {
        MNode::Conv(c) => conv_column_means(c, shape, &mean),
        _ => dense_column_means(shape, &mean),
    };
    let channels = bias.len();
    let fan_in = weights.len() / channels;
    Ok(Some(
        (0..channels)
            .map(|o| {
                let w = &weights[o * fan_in..(o + 1) * fan_in];
                // Dense columns are shared by every channel, Conv's are per channel
                let offset = if columns.len() == fan_in {
                    0
                } else {
                    o * fan_in
                };
                let cols = &columns[offset..][..fan_in];
                let acc: f64 = w.iter().zip(cols).map(|(&w, c)| w as f64 * c).sum();
                (acc + bias[o] as f64) * out.requant_of(o).to_f64() * y.q.scale
            })
            .collect(),
    ))
}

/// Dense over the last axis of `shape`: the mean of each input feature over the leading
/// positions (one set for all channels: they read the same columns).
fn dense_column_means(shape: &[u32], mean: &[f64]) -> Vec<f64> {
    let k = *shape.last().unwrap_or(&1) as usize;
    let positions = (mean.len() / k.max(1)).max(1);
    (0..k)
        .map(|i| (0..positions).map(|p| mean[p * k + i]).sum::<f64>() / positions as f64)
        .collect()
}

/// Conv: for each output channel's weights `[in_channels / groups][kh][kw]`, the mean over
/// output positions of the input value each weight multiplies (0, the zero point, outside
/// the map), laid out channel after channel.
fn conv_column_means(c: &m::Conv, shape: &[u32], mean: &[f64]) -> Vec<f64> {
    let (ch, h, w) = match *shape {
        [ch, l] => (ch as usize, 1, l as usize),
        [ch, h, w] => (ch as usize, h as usize, w as usize),
        _ => return Vec::new(),
    };
    let win = &c.window;
    let [kh, kw] = win.kernel.map(usize::from);
    let [sh, sw] = win.stride.map(usize::from);
    let [pt, pl, pb, pr] = win.pads.map(usize::from);
    let oh = (h + pt + pb - kh) / sh + 1;
    let ow = (w + pl + pr - kw) / sw + 1;
    let at = |ci: usize, i: usize, j: usize| -> f64 {
        let mut sum = 0.0;
        for r in 0..oh {
            let y = (r * sh + i) as isize - pt as isize;
            if y < 0 || y >= h as isize {
                continue;
            }
            for q in 0..ow {
                let x = (q * sw + j) as isize - pl as isize;
                if x >= 0 && x < w as isize {
                    sum += mean[(ci * h + y as usize) * w + x as usize];
                }
            }
        }
        sum / (oh * ow) as f64
    };
    let groups = c.groups as usize;
    let (icg, ocg) = (ch / groups, c.out_channels as usize / groups);
    (0..c.out_channels as usize)
        .flat_map(|o| {
            let g = o / ocg;
            (0..icg).flat_map(move |ic| {
                (0..kh).flat_map(move |i| (0..kw).map(move |j| (g * icg + ic, i, j)))
            })
        })
        .map(|(ci, i, j)| at(ci, i, j))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::quant::ActQuant;

    fn roundtrip(x: f64, q: ActQuant) -> f64 {
        quant::dequantize(quant::quantize(x, q), q)
    }

    fn hist(values: &[f32]) -> Histogram {
        let (lo, hi) = values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let mut h = Histogram::new((lo as f64, hi as f64));
        values.iter().for_each(|&v| h.add(v));
        h
    }

    #[test]
    fn one_outlier_no_longer_sets_the_scale() {
        // 10,000 values in [0, 1] and one at 50
        let mut v: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        v.push(50.0);
        let h = hist(&v);
        let (lo, hi) = h.percentile();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.99 && hi < 1.1, "{hi}");
        // the bulk keeps a much finer step than min/max would give it
        let q = quant::act_quant(lo, hi);
        assert!((roundtrip(0.5, q) - 0.5).abs() < 0.01);
        // one value clipped by 49 costs more than the rounding of all others: MSE keeps it
        assert!(h.mse().1 > 45.0);
    }

    #[test]
    fn mse_clips_a_rare_outlier_of_a_large_tensor() {
        // a million values in [0, 1] and one at 2: halving the step of every value saves
        // more than clipping the one costs (int8 rounding is fine: only such cases clip)
        let mut v: Vec<f32> = (0..1_000_000).map(|i| i as f32 / 1e6).collect();
        v.push(2.0);
        let h = hist(&v);
        let (lo, hi) = h.mse();
        assert_eq!(lo, 0.0);
        assert!(hi < 0.9 * h.hi(), "{hi}");
        assert!(h.error((lo, hi)) < h.error((h.lo, h.hi())));
    }

    /// The column means give the mean over output positions of a padded, strided, grouped
    /// convolution of the map, as the convolution computed position by position does.
    #[test]
    fn conv_column_means_average_the_convolution() {
        let (ch, h, w, out_channels, groups) = (4usize, 5usize, 6usize, 6usize, 2usize);
        let map: Vec<f64> = (0..ch * h * w)
            .map(|i| ((i * 37) % 11) as f64 - 5.0)
            .collect();
        let conv = m::Conv {
            input: 0,
            one_d: false,
            out_channels: out_channels as u32,
            window: m::Window {
                kernel: [3, 2],
                stride: [2, 1],
                pads: [1, 0, 2, 1],
            },
            groups: groups as u32,
            out: Output {
                requant: vec![m::Scale::from_f64(0.5).unwrap()],
                zero_point: 0,
                act_min: -128,
                act_max: 127,
            },
            bias: vec![0; out_channels],
            weights: (0..out_channels * 2 * 3 * 2)
                .map(|i| (i % 7) as i8 - 3)
                .collect(),
        };
        let cols = conv_column_means(&conv, &[ch as u32, h as u32, w as u32], &map);
        let (oh, ow) = ((h + 1 + 2 - 3) / 2 + 1, (w + 1 - 2) + 1);
        let fan_in = 2 * 3 * 2;
        for o in 0..out_channels {
            let g = o / (out_channels / groups);
            let mut direct = 0.0;
            for r in 0..oh {
                for q in 0..ow {
                    for ic in 0..2 {
                        for i in 0..3 {
                            for j in 0..2 {
                                let (y, x) = ((r * 2 + i) as isize - 1, (q + j) as isize);
                                if (0..h as isize).contains(&y) && (0..w as isize).contains(&x) {
                                    let wgt = conv.weights[o * fan_in + (ic * 3 + i) * 2 + j];
                                    let c = g * 2 + ic;
                                    direct +=
                                        wgt as f64 * map[(c * h + y as usize) * w + x as usize];
                                }
                            }
                        }
                    }
                }
            }
            let via_cols: f64 = conv.weights[o * fan_in..(o + 1) * fan_in]
                .iter()
                .zip(&cols[o * fan_in..])
                .map(|(&w, c)| w as f64 * c)
                .sum();
            assert!(
                (via_cols - direct / (oh * ow) as f64).abs() < 1e-9,
                "channel {o}"
            );
        }
    }

    #[test]
    fn uniform_values_keep_their_range() {
        let v: Vec<f32> = (0..=1000).map(|i| -1.0 + i as f32 / 500.0).collect();
        let (lo, hi) = hist(&v).mse();
        assert!(lo < -0.97 && hi > 0.97, "{lo} {hi}");
        let (lo, hi) = hist(&[0.0; 10]).mse();
        assert_eq!((lo, hi), (0.0, 0.0));
    }
}
