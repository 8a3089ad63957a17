//! The scalar reference implementation: `docs/SPEC.md` §3 transcribed into plain loops, one
//! output element at a time, with no burn and no cleverness. It is slow on purpose; tests run
//! the engine against it on random models, byte for byte.

use crate::model::*;
use crate::quant::{div_round, mbq};
use crate::validate::{Analysis, SOFTMAX_ZERO_POINT};

/// Runs a validated model on one input of `analysis.input_len()` int8 values.
pub fn run(model: &Model, analysis: &Analysis, input: &[i8]) -> Vec<i8> {
    let mut tensors: Vec<Vec<i8>> = vec![input.to_vec()];
    for (i, node) in model.nodes.iter().enumerate() {
        let shape_of = |id: TensorId| analysis.shapes[id as usize].as_slice();
        let zp_of = |id: TensorId| analysis.zero_points[id as usize] as i32;
        let out_shape = &analysis.shapes[i + 1];
        let y = match node {
            Node::Dense(d) => {
                let x = &tensors[d.input as usize];
                let k = *shape_of(d.input).last().unwrap() as usize;
                let n = d.out_features as usize;
                let zx = zp_of(d.input);
                let mut y = Vec::with_capacity(x.len() / k * n);
                for row in x.chunks(k) {
                    for o in 0..n {
                        let mut acc = d.bias[o];
                        for (&w, &x) in d.weights[o * k..(o + 1) * k].iter().zip(row) {
                            acc += w as i32 * (x as i32 - zx);
                        }
                        y.push(requantize(acc, &d.out, o));
                    }
                }
                y
            }
            Node::Conv(c) => conv(
                c,
                &tensors[c.input as usize],
                shape_of(c.input),
                zp_of(c.input),
                out_shape,
            ),
            Node::MaxPool(p) | Node::AvgPool(p) => {
                let is_max = matches!(node, Node::MaxPool(_));
                pool(
                    p,
                    is_max,
                    &tensors[p.input as usize],
                    shape_of(p.input),
                    zp_of(p.input),
                    out_shape,
                )
            }
            Node::Add(a) => {
                let (xa, xb) = (&tensors[a.a as usize], &tensors[a.b as usize]);
                let (za, zb) = (zp_of(a.a), zp_of(a.b));
                xa.iter()
                    .zip(xb)
                    .map(|(&qa, &qb)| {
                        let sa = mbq((qa as i32 - za) << 20, a.a_requant).unwrap();
                        let sb = mbq((qb as i32 - zb) << 20, a.b_requant).unwrap();
                        requantize(sa + sb, &a.out, 0)
                    })
                    .collect()
            }
            Node::Clamp { input, min, max } => tensors[*input as usize]
                .iter()
                .map(|&x| x.clamp(*min, *max))
                .collect(),
            Node::Reshape { input, .. } => tensors[*input as usize].clone(),
            Node::Lut { input, table, .. } => tensors[*input as usize]
                .iter()
                .map(|&x| table[(x as i32 + 128) as usize])
                .collect(),
            Node::Softmax { input, exp_table } => {
                let x = &tensors[*input as usize];
                let l = *shape_of(*input).last().unwrap() as usize;
                let mut y = Vec::with_capacity(x.len());
                for row in x.chunks(l) {
                    let max = *row.iter().max().unwrap() as i32;
                    let e: Vec<i64> = row
                        .iter()
                        .map(|&v| exp_table[(max - v as i32) as usize] as i64)
                        .collect();
                    let sum: i64 = e.iter().sum();
                    for ei in e {
                        let p = div_round(256 * ei, sum) + SOFTMAX_ZERO_POINT as i64;
                        y.push(p.clamp(-128, 127) as i8);
                    }
                }
                y
            }
        };
        tensors.push(y);
    }
    tensors.pop().unwrap()
}

/// `clamp(mbq(acc, multiplier of channel) + zero_point, act_min, act_max)`.
fn requantize(acc: i32, out: &Output, channel: usize) -> i8 {
    let rq = out.requant[if out.requant.len() == 1 { 0 } else { channel }];
    let v = mbq(acc, rq).unwrap() + out.zero_point as i32;
    v.clamp(out.act_min as i32, out.act_max as i32) as i8
}

/// `(c, h, w)` of a `[C, H, W]` tensor, or of a `[C, L]` tensor seen as `[C, 1, L]`.
fn chw(shape: &[u32]) -> (usize, usize, usize) {
    match *shape {
        [c, l] => (c as usize, 1, l as usize),
        [c, h, w] => (c as usize, h as usize, w as usize),
        _ => unreachable!("validated rank"),
    }
}

fn conv(c: &Conv, x: &[i8], in_shape: &[u32], zx: i32, out_shape: &[u32]) -> Vec<i8> {
    let (ch, h, w) = chw(in_shape);
    let (oc, oh, ow) = chw(out_shape);
    let [kh, kw] = c.window.kernel.map(|v| v as usize);
    let [sh, sw] = c.window.stride.map(|v| v as usize);
    let (pt, pl) = (c.window.pads[0] as isize, c.window.pads[1] as isize);
    let g = c.groups as usize;
    let (icg, ocg) = (ch / g, oc / g);
    let mut y = Vec::with_capacity(oc * oh * ow);
    for o in 0..oc {
        let group = o / ocg;
        for r in 0..oh {
            for s in 0..ow {
                let mut acc = c.bias[o];
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
                            let wt = c.weights[((o * icg + ic) * kh + i) * kw + j] as i32;
                            acc += wt * v;
                        }
                    }
                }
                y.push(requantize(acc, &c.out, o));
            }
        }
    }
    y
}

fn pool(p: &Pool, is_max: bool, x: &[i8], in_shape: &[u32], zx: i32, out_shape: &[u32]) -> Vec<i8> {
    let (ch, h, w) = chw(in_shape);
    let (_, oh, ow) = chw(out_shape);
    let [kh, kw] = p.window.kernel.map(|v| v as usize);
    let [sh, sw] = p.window.stride.map(|v| v as usize);
    let (pt, pl) = (p.window.pads[0] as isize, p.window.pads[1] as isize);
    let mut y = Vec::with_capacity(ch * oh * ow);
    for c in 0..ch {
        for r in 0..oh {
            for s in 0..ow {
                let (mut max, mut sum, mut count) = (i32::MIN, 0i64, 0i64);
                for i in 0..kh {
                    for j in 0..kw {
                        let yy = (r * sh + i) as isize - pt;
                        let xx = (s * sw + j) as isize - pl;
                        if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                            if p.count_include_pad {
                                sum += zx as i64;
                                count += 1;
                            }
                            continue;
                        }
                        let v = x[(c * h + yy as usize) * w + xx as usize] as i32;
                        max = max.max(v);
                        sum += v as i64;
                        count += 1;
                    }
                }
                y.push(if is_max {
                    max as i8
                } else {
                    div_round(sum, count) as i8
                });
            }
        }
    }
    y
}
