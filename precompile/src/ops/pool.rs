//! MaxPool2d and AvgPool2d (SPEC §3.5, tags 0x04 and 0x05) over a `[C, H, W]` map; the
//! output keeps the input's quantization. Both share one separable kernel that never
//! materialises padding.

use std::ops::Range;

use super::window::{chw, chw_usize, Window};
use super::{input_scale, Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::EngineTensor;
use crate::error::{Code, ModelError};
use crate::model::{Scale, TensorId};
use crate::quant::div_round;
use crate::validate::{checked_elems, expect_rank, numel};

const TAG_MAX: u8 = 0x04;
const TAG_AVG: u8 = 0x05;

/// The maximum of each window's positions inside the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaxPool {
    pub input: TensorId,
    pub window: Window,
}

/// The mean of each window, rounded half away from zero.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AvgPool {
    pub input: TensorId,
    pub window: Window,
    /// Padded positions count (holding the zero point) in the divisor.
    pub count_include_pad: bool,
}

fn output_shape(
    node: usize,
    input: TensorId,
    window: &Window,
    shapes: &[Vec<u32>],
) -> Result<Vec<u32>, ModelError> {
    let first = &shapes[input as usize];
    expect_rank(node, first, 3)?;
    let [oh, ow] = window.output(node, first[1], first[2])?;
    let s = vec![first[0], oh, ow];
    checked_elems(node, &s)?;
    Ok(s)
}

/// Elements charged per AvgPool output for its rounded division by the window's size: an
/// int64 divide by a run-time divisor, ~20 ns on the reference machine, which the search
/// found dominating windows of two positions (AvgPool 18×19, stride 16360, over a 2×1 map:
/// 26.7 ns/gas before this charge).
pub const AVG_DIVIDE_ELEMS: u64 = 6;

/// The input, read in place (one element each, for a copy if it is not contiguous); per
/// output, the window's positions inside the map (at most min(KH, H) · min(KW, W), which
/// bounds both passes of the separable kernel) and `per_output` more; the output written and
/// handed to burn.
fn cost(input: &[u32], window: &Window, out: &[u32], per_output: u64) -> Cost {
    let [_, h, w] = chw(input);
    let inside = (window.kernel[0] as u64).min(h) * (window.kernel[1] as u64).min(w);
    Cost {
        macs: 0,
        elems: numel(input) + numel(out) * (inside + 2 + per_output),
    }
}

/// The clipped row and column ranges of every output's window (validation guarantees that
/// each window overlaps the map, so no range is empty).
fn windows(win: &Window, [h, w]: [usize; 2], [oh, ow]: [usize; 2]) -> [Vec<Range<usize>>; 2] {
    let clip = |n: usize, size: usize, axis: usize| -> Vec<Range<usize>> {
        let (k, st, p) = (
            win.kernel[axis] as usize,
            win.stride[axis] as usize,
            win.pads[axis] as usize,
        );
        (0..n)
            .map(|o| (o * st).saturating_sub(p)..(o * st + k).saturating_sub(p).min(size))
            .collect()
    };
    [clip(oh, h, 0), clip(ow, w, 1)]
}

/// The column ranges some window covers, merged where they overlap or touch (`cols` is in
/// increasing order): folding only these keeps a stride that skips columns from paying for
/// them.
fn covered(cols: &[Range<usize>]) -> Vec<Range<usize>> {
    let mut spans: Vec<Range<usize>> = Vec::new();
    for c in cols {
        match spans.last_mut() {
            Some(last) if c.start <= last.end => last.end = last.end.max(c.end),
            _ => spans.push(c.clone()),
        }
    }
    spans
}

/// Pools the map of `input` separably, never materialising padding: for each output row, its
/// window rows are folded column by column over the covered columns (whole contiguous rows,
/// vectorisable), then each output folds its window's columns of that folded row and
/// `finish(folded, positions)` gives its value. Both passes do at most the window positions
/// gas counts per output row; a tall window no longer walks a new cache line per position (a
/// 1023×4 window over 1024×1024 ran at 16 ns/gas as a direct loop). `fold` is associative and
/// exact (max, or an int64 sum that cannot overflow), so the order changes nothing.
fn run_engine(
    cx: &Ctx<'_, EngineTensor>,
    input: TensorId,
    win: &Window,
    fold: impl Fn(i64, i64) -> i64,
    finish: impl Fn(i64, usize) -> i64,
) -> EngineTensor {
    let [ch, h, w] = chw_usize(cx.shape(input));
    let [_, oh, ow] = chw_usize(cx.out_shape());
    let [rows, cols] = windows(win, [h, w], [oh, ow]);
    let spans = covered(&cols);
    // Through the backend extension: the map is read in place, not copied out of burn.
    crate::host::unary(cx.value(input), &|x| {
        let mut y = Vec::with_capacity(ch * oh * ow);
        let mut folded = vec![0i64; w];
        for plane in x.chunks(h * w) {
            for r in &rows {
                for s in &spans {
                    let row = |i: usize| &plane[i * w + s.start..i * w + s.end];
                    let acc = &mut folded[s.clone()];
                    acc.copy_from_slice(row(r.start));
                    for i in r.start + 1..r.end {
                        for (a, &v) in acc.iter_mut().zip(row(i)) {
                            *a = fold(*a, v);
                        }
                    }
                }
                for c in &cols {
                    let v = folded[c.clone()]
                        .iter()
                        .copied()
                        .reduce(&fold)
                        .unwrap_or_else(|| unreachable!("every window overlaps the map"));
                    y.push(finish(v, r.len() * c.len()));
                }
            }
        }
        y
    })
}

/// SPEC §3.5 one window position at a time: `Some(v)` inside the map, `None` in the padding.
fn reference(
    cx: &Ctx<'_, Vec<i8>>,
    input: TensorId,
    win: &Window,
    fold: impl Fn(&mut dyn Iterator<Item = Option<i32>>) -> i8,
) -> Vec<i8> {
    let x = cx.value(input);
    let [ch, h, w] = chw_usize(cx.shape(input));
    let [_, oh, ow] = chw_usize(cx.out_shape());
    let [kh, kw] = win.kernel.map(|v| v as usize);
    let [sh, sw] = win.stride.map(|v| v as usize);
    let (pt, pl) = (win.pads[0] as isize, win.pads[1] as isize);
    let mut y = Vec::with_capacity(ch * oh * ow);
    for c in 0..ch {
        for r in 0..oh {
            for s in 0..ow {
                let mut window =
                    (0..kh)
                        .flat_map(|i| (0..kw).map(move |j| (i, j)))
                        .map(|(i, j)| {
                            let yy = (r * sh + i) as isize - pt;
                            let xx = (s * sw + j) as isize - pl;
                            if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                                None
                            } else {
                                Some(x[(c * h + yy as usize) * w + xx as usize] as i32)
                            }
                        });
                y.push(fold(&mut window));
            }
        }
    }
    y
}

impl Op for MaxPool {
    const TAGS: &'static [u8] = &[TAG_MAX];
    type Prepared = MaxPool;

    fn name(&self) -> &'static str {
        "MaxPool2d"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(MaxPool {
            input: r.tensor(shapes)?,
            window: Window::read(r)?,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG_MAX);
        w.extend_from_slice(&self.input.to_le_bytes());
        self.window.write(w);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        output_shape(node, self.input, &self.window, shapes)
    }

    fn check(
        &self,
        _: usize,
        zps: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        Ok(Checked::keeps_input(zps, self.input))
    }

    fn fixed_scale(&self, scales: &[Option<Scale>]) -> Option<Scale> {
        input_scale(scales, self.input)
    }

    fn cost(&self, shapes: &[Vec<u32>], out: &[u32]) -> Cost {
        cost(&shapes[self.input as usize], &self.window, out, 0)
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        reference(cx, self.input, &self.window, |window| {
            window
                .flatten()
                .max()
                .unwrap_or_else(|| unreachable!("every window overlaps the map")) as i8
        })
    }

    fn prepare(&self) -> MaxPool {
        self.clone()
    }

    fn run(p: &MaxPool, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        run_engine(cx, p.input, &p.window, i64::max, |max, _| max)
    }
}

impl Op for AvgPool {
    const TAGS: &'static [u8] = &[TAG_AVG];
    type Prepared = AvgPool;

    fn name(&self) -> &'static str {
        "AvgPool2d"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(AvgPool {
            input: r.tensor(shapes)?,
            window: Window::read(r)?,
            count_include_pad: r.flag("count_include_pad")?,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG_AVG);
        w.extend_from_slice(&self.input.to_le_bytes());
        self.window.write(w);
        w.push(self.count_include_pad as u8);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        output_shape(node, self.input, &self.window, shapes)
    }

    fn check(
        &self,
        node: usize,
        zps: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        if self.count_include_pad && self.window.pads == [0; 4] {
            // Without padding both flag values compute the same: 0 is the canonical one.
            return Err(ModelError::at(
                Code::PadFlagNotCanonical,
                node,
                "count_include_pad = 1 without padding",
            ));
        }
        Ok(Checked::keeps_input(zps, self.input))
    }

    fn fixed_scale(&self, scales: &[Option<Scale>]) -> Option<Scale> {
        input_scale(scales, self.input)
    }

    fn cost(&self, shapes: &[Vec<u32>], out: &[u32]) -> Cost {
        cost(
            &shapes[self.input as usize],
            &self.window,
            out,
            AVG_DIVIDE_ELEMS,
        )
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let zx = cx.zp(self.input) as i64;
        reference(cx, self.input, &self.window, |window| {
            let (mut sum, mut count) = (0i64, 0i64);
            for v in window {
                match v {
                    Some(v) => sum += v as i64,
                    None if self.count_include_pad => sum += zx,
                    None => continue,
                }
                count += 1;
            }
            div_round(sum, count) as i8
        })
    }

    fn prepare(&self) -> AvgPool {
        self.clone()
    }

    fn run(p: &AvgPool, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let kk = p.window.kernel[0] as i64 * p.window.kernel[1] as i64;
        let z = cx.zp(p.input) as i64;
        run_engine(
            cx,
            p.input,
            &p.window,
            |a, b| a + b,
            |sum, inside| {
                let inside = inside as i64;
                // Padded positions hold the zero point when they count.
                if p.count_include_pad {
                    div_round(sum + z * (kk - inside), kk)
                } else {
                    div_round(sum, inside)
                }
            },
        )
    }
}

#[cfg(feature = "testkit")]
/// A random MaxPool or AvgPool reading tensor `cur`, a `[C, H, W]` map.
pub fn random(rng: &mut crate::random::Rng, cur: TensorId, shape: &[u32]) -> crate::ops::Node {
    let window = crate::random::window(rng, shape[1], shape[2], false);
    // Canonical: the flag is 0 when there is no padding (drawn anyway, so seeds keep their
    // models).
    let count_include_pad = rng.chance(50) && window.pads != [0; 4];
    if rng.chance(50) {
        crate::ops::Node::MaxPool(MaxPool { input: cur, window })
    } else {
        crate::ops::Node::AvgPool(AvgPool {
            input: cur,
            window,
            count_include_pad,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{check, model, window};
    use crate::ops::Node;

    /// Windows and padding larger than the map, and (on a wider map) the shapes where the
    /// separable kernel's column merge matters: a stride that skips columns, and a tall,
    /// narrow window.
    #[test]
    fn windows_and_padding_larger_than_the_map() {
        for (map, kernel, stride, pads) in [
            ([2, 3, 4], [7, 5], [1, 2], [6, 4, 6, 4]),
            ([2, 3, 4], [9, 9], [4, 3], [8, 0, 1, 8]),
            ([2, 3, 4], [2, 3], [5, 7], [1, 2, 0, 0]),
            ([2, 3, 4], [3, 3], [1, 1], [0, 0, 0, 0]),
            ([2, 5, 9], [1, 1], [1, 3], [0, 0, 0, 0]),
            ([2, 5, 9], [4, 1], [1, 2], [3, 0, 3, 0]),
        ] {
            let win = window(kernel, stride, pads);
            for node in [
                Node::MaxPool(MaxPool {
                    input: 0,
                    window: win,
                }),
                Node::AvgPool(AvgPool {
                    input: 0,
                    window: win,
                    count_include_pad: false,
                }),
                Node::AvgPool(AvgPool {
                    input: 0,
                    window: win,
                    // Without padding only 0 is canonical (SPEC §4.2).
                    count_include_pad: pads != [0; 4],
                }),
            ] {
                check(model(map.to_vec(), vec![node]));
            }
        }
    }

    /// The separable kernel folds only the columns some window covers: disjoint windows (a
    /// stride past the kernel) stay apart, overlapping and touching ones merge.
    #[test]
    fn covered_columns_merge_only_where_windows_meet() {
        assert_eq!(covered(&[0..2, 5..7, 10..12]), vec![0..2, 5..7, 10..12]);
        assert_eq!(covered(&[0..3, 1..4, 2..5]), vec![0..5]);
        assert_eq!(covered(&[0..2, 2..4, 6..8]), vec![0..4, 6..8]);
    }

    #[test]
    fn cost_counts_only_window_positions_inside_the_map() {
        // Kernel 8191 with padding 8190 on a 1×1 map: 1024×1024 outputs, one position each.
        let node = MaxPool {
            input: 0,
            window: Window {
                kernel: [8191, 8191],
                stride: [8, 8],
                pads: [8190; 4],
            },
        };
        let cost = node.cost(&[vec![1, 1, 1]], &[1, 1024, 1024]);
        assert_eq!(cost.elems, 1 + (1 << 20) * 3);
    }
}
