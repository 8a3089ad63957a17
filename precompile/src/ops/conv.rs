//! Conv2d and Conv1d (SPEC §3.4, tags 0x02 and 0x03): grouped convolution over a `[C, H, W]`
//! (or `[C, L]`) map; padding holds the input zero point, i.e. real zero.

use super::layer::{self, Output};
use super::window::{chw_usize, Window};
use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::{Cost, GEMM_OUT_PASSES, PACK_PASSES};
use crate::engine::EngineTensor;
use crate::error::{Code, ModelError};
use crate::gemm::{gemm, lhs_len, packed_len, padded_macs, padded_outputs, Epilogue, Lhs, Packed};
use crate::limits::MAX_IM2COL_ELEMS;
use crate::model::{Scale, TensorId};
use crate::validate::{check_groups, checked_elems, expect_rank, not_encodable, numel};

const TAG_2D: u8 = 0x02;
const TAG_1D: u8 = 0x03;

/// Extra elements charged per group of a convolution, for the batched matmul's per-group
/// setup (index vectors, slicing, one general matrix product call): that overhead is paid
/// even when a group computes a single output, as in a depthwise convolution with 2^20
/// channels.
pub const GROUP_ELEMS: u64 = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conv {
    pub input: TensorId,
    /// `true` for Conv1d: the input is `[C, L]` and is treated as `[C, 1, L]`.
    pub one_d: bool,
    pub out_channels: u32,
    pub window: Window,
    pub groups: u32,
    pub out: Output,
    pub bias: Vec<i32>,
    /// `[out_channels][in_channels / groups][kernel_h][kernel_w]`, as PyTorch's `Conv2d.weight`.
    pub weights: Vec<i8>,
}

/// The layer as the kernel wants it: each group's weights as the left operand rows.
pub struct Prepared {
    input: TensorId,
    window: Window,
    weights: Vec<Lhs>,
    bias: Vec<i32>,
    out: Output,
}

impl Conv {
    fn fan_in(&self) -> u64 {
        self.weights.len() as u64 / self.out_channels as u64
    }
}

impl Op for Conv {
    const TAGS: &'static [u8] = &[TAG_2D, TAG_1D];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        if self.one_d {
            "Conv1d"
        } else {
            "Conv2d"
        }
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(tag: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        let one_d = tag == TAG_1D;
        let input = r.tensor(shapes)?;
        let in_channels = r.input_shape(input, shapes)?[0];
        let out_channels = r.u32()?;
        let groups = r.u32()?;
        check_groups(r.node(), in_channels, out_channels, groups)?;
        let window = if one_d {
            let (k, s, pl, pr) = (r.u16()?, r.u16()?, r.u16()?, r.u16()?);
            Window {
                kernel: [1, k],
                stride: [1, s],
                pads: [0, pl, 0, pr],
            }
        } else {
            Window::read(r)?
        };
        let out = Output::read(r, out_channels)?;
        let fan_in =
            (in_channels / groups) as u64 * window.kernel[0] as u64 * window.kernel[1] as u64;
        let (bias, weights) = layer::read_params(r, out_channels, fan_in)?;
        Ok(Conv {
            input,
            one_d,
            out_channels,
            window,
            groups,
            out,
            bias,
            weights,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(if self.one_d { TAG_1D } else { TAG_2D });
        w.extend_from_slice(&self.input.to_le_bytes());
        w.extend_from_slice(&self.out_channels.to_le_bytes());
        w.extend_from_slice(&self.groups.to_le_bytes());
        if self.one_d {
            let win = &self.window;
            for v in [win.kernel[1], win.stride[1], win.pads[1], win.pads[3]] {
                w.extend_from_slice(&v.to_le_bytes());
            }
        } else {
            self.window.write(w);
        }
        self.out.write(w);
        layer::write_params(w, &self.bias, &self.weights);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let first = &shapes[self.input as usize];
        check_groups(node, first[0], self.out_channels, self.groups)?;
        let (ch, h, w) = if self.one_d {
            expect_rank(node, first, 2)?;
            let win = &self.window;
            if win.kernel[0] != 1 || win.stride[0] != 1 || win.pads[0] != 0 || win.pads[2] != 0 {
                return Err(not_encodable(
                    node,
                    "a 1-D window has kernel 1, stride 1, no padding on its first axis".into(),
                ));
            }
            (first[0], 1, first[1])
        } else {
            expect_rank(node, first, 3)?;
            (first[0], first[1], first[2])
        };
        let [oh, ow] = self.window.output(node, h, w)?;
        layer::zero_channels(node, self.out_channels)?;
        let s = if self.one_d {
            vec![self.out_channels, ow]
        } else {
            vec![self.out_channels, oh, ow]
        };
        checked_elems(node, &s)?;
        let fan_in =
            (ch / self.groups) as u64 * self.window.kernel[0] as u64 * self.window.kernel[1] as u64;
        layer::check_arrays(
            node,
            self.out_channels,
            fan_in,
            &self.out,
            &self.bias,
            self.weights.len(),
        )?;
        Ok(s)
    }

    fn check(
        &self,
        node: usize,
        _: &[i8],
        _: &[Vec<u32>],
        out: &[u32],
    ) -> Result<Checked, ModelError> {
        layer::check(node, &self.out, &self.bias, &self.weights)?;
        let spatial = numel(out) / self.out_channels as u64;
        let im2col = spatial * self.fan_in() * self.groups as u64;
        if im2col > MAX_IM2COL_ELEMS {
            return Err(ModelError::at(
                Code::Im2colTooLarge,
                node,
                format!("im2col of {im2col} elements exceeds {MAX_IM2COL_ELEMS}"),
            ));
        }
        Ok(Checked {
            zero_point: self.out.zero_point,
            params: self.weights.len() as u64 + self.bias.len() as u64,
        })
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    /// Each group's weights as int16 rows of even length.
    fn prepared_elems(&self) -> u64 {
        self.groups as u64 * lhs_len(self.out_channels as u64 / self.groups as u64, self.fan_in())
    }

    /// The input (borrowed in place; a copy if not contiguous), each group's im2col matrix
    /// packed as it is written (padding to whole kernel panels included; the map's padding
    /// is never materialised beyond it), the product padded to whole panels and pairs, the
    /// fused epilogue, and per-group setup (a depthwise layer of 2^20 channels pays it 2^20
    /// times).
    fn cost(&self, shapes: &[Vec<u32>], out: &[u32]) -> Cost {
        let (n_in, n_out) = (numel(&shapes[self.input as usize]), numel(out));
        let g = self.groups as u64;
        let positions = n_out / self.out_channels as u64;
        let per_group = self.out_channels as u64 / g;
        Cost {
            macs: g.saturating_mul(padded_macs(per_group, self.fan_in(), positions)),
            elems: n_in
                + PACK_PASSES * g.saturating_mul(packed_len(self.fan_in(), positions))
                + GEMM_OUT_PASSES * g.saturating_mul(padded_outputs(per_group, positions))
                + GROUP_ELEMS * g,
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let x = cx.value(self.input);
        let zx = cx.zp(self.input) as i32;
        let [ch, h, w] = chw_usize(cx.shape(self.input));
        let [oc, oh, ow] = chw_usize(cx.out_shape());
        let [kh, kw] = self.window.kernel.map(|v| v as usize);
        let [sh, sw] = self.window.stride.map(|v| v as usize);
        let (pt, pl) = (self.window.pads[0] as isize, self.window.pads[1] as isize);
        let g = self.groups as usize;
        let (icg, ocg) = (ch / g, oc / g);
        let mut y = Vec::with_capacity(oc * oh * ow);
        for o in 0..oc {
            let group = o / ocg;
            for r in 0..oh {
                for s in 0..ow {
                    let mut acc = self.bias[o];
                    for ic in 0..icg {
                        let cin = group * icg + ic;
                        for i in 0..kh {
                            for j in 0..kw {
                                let yy = (r * sh + i) as isize - pt;
                                let xx = (s * sw + j) as isize - pl;
                                // Padding holds the zero point, so it contributes 0.
                                if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                                    continue;
                                }
                                let v = x[(cin * h + yy as usize) * w + xx as usize] as i32 - zx;
                                let wt = self.weights[((o * icg + ic) * kh + i) * kw + j] as i32;
                                acc += wt * v;
                            }
                        }
                    }
                    y.push(self.out.apply(acc, o));
                }
            }
        }
        y
    }

    fn prepare(&self) -> Prepared {
        let g = self.groups as usize;
        let per_group = self.out_channels as usize / g;
        let fan_in = self.fan_in() as usize;
        let weights = (0..g)
            .map(|group| {
                let w = &self.weights[group * per_group * fan_in..][..per_group * fan_in];
                Lhs::new(per_group, fan_in, |o, kk| w[o * fan_in + kk] as i16)
            })
            .collect();
        Prepared {
            input: self.input,
            window: self.window,
            weights,
            bias: self.bias.clone(),
            out: self.out.clone(),
        }
    }

    /// Per group, `W_g · cols_g`: the weights are the left rows, the im2col matrix (one
    /// column per output position, packed as it is written) the right operand, so the
    /// product is already channel-major and a depthwise layer wastes no kernel lanes.
    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let dims = chw_usize(cx.shape(p.input));
        let [oc, oh, ow] = chw_usize(cx.out_shape());
        let zp = cx.zp(p.input) as i64;
        crate::host::unary(cx.value(p.input), &|x| {
            let mut y = vec![0; oc * oh * ow];
            let per_group = oc / p.weights.len();
            for (group, w) in p.weights.iter().enumerate() {
                let cols = im2col(x, dims, zp, &p.window, p.weights.len(), group, [oh, ow]);
                let epilogue = Epilogue {
                    out: &p.out,
                    bias: &p.bias,
                    channels_on_rows: true,
                    channel_offset: group * per_group,
                    row_stride: oh * ow,
                    offset: group * per_group * oh * ow,
                };
                gemm(w, &cols, &epilogue, &mut y);
            }
            y
        })
    }
}

/// Group `group`'s im2col matrix of a `[C, H, W]` map, `[C/G·KH·KW, OH·OW]` (rows in the
/// weights' `[ic][kh][kw]` order), packed for the kernel as it is written: `x − zp` for
/// positions inside the map, 0 in the padding. No padded copy of the map is made and only
/// the positions some window covers are read.
fn im2col(
    x: &[i64],
    [ch, h, w]: [usize; 3],
    zp: i64,
    window: &Window,
    groups: usize,
    group: usize,
    [oh, ow]: [usize; 2],
) -> Packed {
    let [kh, kw] = window.kernel.map(|k| k as usize);
    let [sh, sw] = window.stride.map(|s| s as usize);
    let (pt, pl) = (window.pads[0] as usize, window.pads[1] as usize);
    let icg = ch / groups;
    Packed::from_rows(icg * kh * kw, oh * ow, |kk, row| {
        let (ic, i, j) = (kk / (kh * kw), kk / kw % kh, kk % kw);
        let plane = &x[(group * icg + ic) * h * w..][..h * w];
        for r in 0..oh {
            // A row above the map wraps to a huge value: outside, like below.
            let yy = (r * sh + i).wrapping_sub(pt);
            if yy >= h {
                continue; // the row is zeroed: padding
            }
            for s in 0..ow {
                let xx = (s * sw + j).wrapping_sub(pl);
                if xx < w {
                    row[r * ow + s] = (plane[yy * w + xx] - zp) as i16;
                }
            }
        }
    })
}

#[cfg(feature = "testkit")]
impl Conv {
    /// A random convolution reading tensor `cur`, a `[C, H, W]` or `[C, L]` map.
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId, shape: &[u32]) -> Self {
        let one_d = shape.len() == 2;
        let (c, h, w) = if one_d {
            (shape[0], 1, shape[1])
        } else {
            (shape[0], shape[1], shape[2])
        };
        let groups = if c > 1 && rng.chance(40) { c } else { 1 };
        let out_channels = groups * rng.range(1, 3) as u32;
        let window = crate::random::window(rng, h, w, one_d);
        let fan_in = (c / groups) as u64 * window.kernel[0] as u64 * window.kernel[1] as u64;
        let out = crate::random::output(rng, out_channels, fan_in);
        let (bias, weights) = crate::random::layer_params(rng, out_channels, fan_in);
        Conv {
            input: cur,
            one_d,
            out_channels,
            window,
            groups,
            out,
            bias,
            weights,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::testing::{check, model, window};
    use crate::ops::Node;

    #[test]
    fn skipping_strides_padding_and_groups() {
        let conv = |c: u32, oc: u32, groups: u32, win: Window, one_d: bool| {
            let fan_in = (c / groups) as usize * win.kernel[0] as usize * win.kernel[1] as usize;
            Node::Conv(Conv {
                input: 0,
                one_d,
                out_channels: oc,
                window: win,
                groups,
                out: Output {
                    requant: vec![Scale {
                        mult: 1 << 30,
                        shift: -4,
                    }],
                    zero_point: -5,
                    act_min: -128,
                    act_max: 127,
                },
                bias: (0..oc as i32).map(|o| o * 7 - 3).collect(),
                weights: (0..oc as usize * fan_in)
                    .map(|i| (i * 13 % 9) as i8 - 4)
                    .collect(),
            })
        };
        for (kernel, stride, pads) in [
            ([3, 3], [1, 1], [1, 1, 1, 1]),
            ([2, 2], [7, 9], [1, 1, 1, 1]),
            ([5, 4], [2, 3], [4, 0, 2, 3]),
            ([1, 1], [8, 8], [0, 0, 0, 0]),
        ] {
            let win = window(kernel, stride, pads);
            check(model(vec![4, 6, 7], vec![conv(4, 6, 2, win, false)]));
            check(model(vec![4, 6, 7], vec![conv(4, 4, 4, win, false)]));
            let win1 = window([1, kernel[1]], [1, stride[1]], [0, pads[1], 0, pads[3]]);
            check(model(vec![4, 9], vec![conv(4, 2, 2, win1, true)]));
        }
    }

    #[test]
    fn cost_counts_the_whole_input_even_when_the_stride_skips_it() {
        let node = Conv {
            input: 0,
            one_d: false,
            out_channels: 1,
            window: Window {
                kernel: [1, 1],
                stride: [1024, 1024],
                pads: [0; 4],
            },
            groups: 1,
            out: Output {
                requant: vec![Scale {
                    mult: 1 << 30,
                    shift: 0,
                }],
                zero_point: 0,
                act_min: -128,
                act_max: 127,
            },
            bias: vec![0],
            weights: vec![1],
        };
        let cost = node.cost(&[vec![1, 1024, 1024]], &[1, 1, 1]);
        // The whole input + one packed panel of one pair + the epilogue + one group.
        assert_eq!(
            cost.elems,
            (1 << 20) + PACK_PASSES * 2 * 16 + GEMM_OUT_PASSES * 16 + GROUP_ELEMS
        );
        assert_eq!(cost.macs, 2 * 16);
    }
}
