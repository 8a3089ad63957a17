//! Static cost of one node (`docs/SPEC.md` §5): the work the engine does on it, counted from
//! the node and the tensor shapes alone, so gas is known before anything runs.
//!
//! `elems` counts every element the engine writes (each at most 8 bytes): copies and casts of
//! the input, im2col buffers, every whole-tensor pass of requantization, the output. That is
//! what makes gas bound both time and peak memory; an operator that reads or writes something
//! not counted here is a denial-of-service bug. The pass counts below are those of
//! `engine.rs`, and change with it.

use crate::model::*;
use crate::validate::numel;

/// Work of one node. `macs` are int8×int8 multiply-accumulates; `elems` are the elements
/// materialised (written) by the engine's passes over the node's tensors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    pub macs: u64,
    pub elems: u64,
}

/// Whole-tensor passes over a Dense/Conv output: the matmul result, its relayout, the cast
/// to int64 and the bias, then requantization (14 passes of `MultiplyByQuantizedMultiplier`,
/// the zero point and the clamp).
pub const LAYER_OUT_PASSES: u64 = 20;
/// Passes of Add per element: subtract and lift each input (4), rescale each (2 · 14), sum
/// (1), requantize the sum (16).
pub const ADD_PASSES: u64 = 49;
/// Passes of Softmax per element: difference to the row maximum, table lookup, scale, the
/// rounded division (6), zero point, clamp, plus the row max and sum (2 more reads).
pub const SOFTMAX_PASSES: u64 = 14;
/// Extra elements charged per group of a convolution, for the batched matmul's per-group
/// setup (index vectors, slicing, one general matrix product call): that overhead is paid
/// even when a group computes a single output, as in a depthwise convolution with 2^20
/// channels.
pub const GROUP_ELEMS: u64 = 16;
/// Elements charged per input element read into a flat host vector (Conv, pools): burn's
/// `into_data` of a tensor still referenced elsewhere copies it element by element, measured
/// at ~38 ns per element on the reference machine (`benches/examples/probe.rs`), i.e. about
/// 10 element passes at `ELEM_MILLI`; 12 keeps a margin.
pub const READ_PASSES: u64 = 12;
/// Extra elements charged per row of Softmax (the row max, sum and broadcast's per-lane
/// setup): measured ~155 ns per row on rows of 2 (`benches/benches/search.rs`), so 24.
pub const SOFTMAX_ROW_ELEMS: u64 = 24;

/// `[C, H, W]` of a feature map (`[C, L]` is `[C, 1, L]`).
pub fn chw(shape: &[u32]) -> [u64; 3] {
    match *shape {
        [c, l] => [c as u64, 1, l as u64],
        [c, h, w] => [c as u64, h as u64, w as u64],
        _ => [numel(shape), 1, 1],
    }
}

/// Cost of `node`, whose output has shape `out`; `shapes` holds every earlier tensor's shape.
/// The node must have passed validation's shape checks.
pub fn node_cost(node: &Node, shapes: &[Vec<u32>], out: &[u32]) -> Cost {
    let input = &shapes[node.inputs()[0] as usize];
    let (n_in, n_out) = (numel(input), numel(out));
    let elems = |elems| Cost { macs: 0, elems };
    match node {
        // Subtract the zero point, cast, and the matmul's standard-layout copy of the
        // transposed input (3 passes over the input), matmul + requantize.
        Node::Dense(d) => {
            let k = *input.last().unwrap_or(&1) as u64;
            Cost {
                macs: n_in / k * d.out_features as u64 * k,
                elems: 3 * n_in + LAYER_OUT_PASSES * n_out,
            }
        }
        // Input read into a flat vector (`READ_PASSES`), im2col written by a direct loop
        // (padding is never materialised; inputs the stride skips are read once, in that
        // copy), turned into a tensor and copied to standard layout as the matmul's transposed
        // right operand (3 passes), matmul + requantize, per-group matmul setup.
        Node::Conv(c) => {
            let fan_in = c.weights.len() as u64 / c.out_channels as u64;
            let im2col = n_out / c.out_channels as u64 * fan_in * c.groups as u64;
            Cost {
                macs: n_out * fan_in,
                elems: READ_PASSES * n_in
                    + 3 * im2col
                    + LAYER_OUT_PASSES * n_out
                    + GROUP_ELEMS * c.groups as u64,
            }
        }
        // Input read into a flat vector (`READ_PASSES`); per output, a direct loop over the window's
        // positions inside the map (at most min(KH, H) · min(KW, W)); the output written
        // and turned into a tensor.
        Node::MaxPool(p) | Node::AvgPool(p) => {
            let [_, h, w] = chw(input);
            let inside = (p.window.kernel[0] as u64).min(h) * (p.window.kernel[1] as u64).min(w);
            elems(READ_PASSES * n_in + n_out * (inside + 2))
        }
        Node::Add(_) => elems(ADD_PASSES * n_out),
        Node::Clamp { .. } => elems(n_out),
        // Same buffer, new shape: only the node's fixed cost.
        Node::Reshape { .. } => elems(0),
        // Offset by 128, gather.
        Node::Lut { .. } => elems(2 * n_out),
        Node::Softmax { .. } => {
            let rows = n_out / *out.last().unwrap_or(&1) as u64;
            elems(SOFTMAX_PASSES * n_out + SOFTMAX_ROW_ELEMS * rows)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_cost_counts_only_window_positions_inside_the_map() {
        // Kernel 8191 with padding 8190 on a 1×1 map: 1024×1024 outputs, one position each.
        let node = Node::MaxPool(Pool {
            input: 0,
            window: Window {
                kernel: [8191, 8191],
                stride: [8, 8],
                pads: [8190; 4],
            },
            count_include_pad: false,
        });
        let cost = node_cost(&node, &[vec![1, 1, 1]], &[1, 1024, 1024]);
        assert_eq!(cost.elems, READ_PASSES + (1 << 20) * 3);
    }

    #[test]
    fn conv_cost_counts_the_whole_input_even_when_the_stride_skips_it() {
        let node = Node::Conv(Conv {
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
        });
        let cost = node_cost(&node, &[vec![1, 1024, 1024]], &[1, 1, 1]);
        // The whole input read + 3 · im2col (1) + 20 · output (1) + one group.
        assert_eq!(
            cost.elems,
            READ_PASSES * (1 << 20) + 3 + LAYER_OUT_PASSES + GROUP_ELEMS
        );
        assert_eq!(cost.macs, 1);
    }
}
