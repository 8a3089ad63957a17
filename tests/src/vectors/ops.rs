//! Vectors for the operators added after v1's first ten (Transpose, Slice, Pad, Concat, Mul,
//! Sub, ReduceSum, ReduceMax, Resize, MatMul, LayerNorm): at least three models each, and a
//! rejection for every rule they add.

use super::*;

/// One Slice axis taking `n` elements from `start` by `step` (`end` tight, as canonical).
fn take(start: u32, n: u32, step: u32) -> SliceRange {
    SliceRange {
        start,
        end: start + (n - 1) * step + 1,
        step,
    }
}

fn transpose(input: TensorId, perm: &[u8]) -> Node {
    Node::Transpose(Transpose {
        input,
        perm: perm.to_vec(),
    })
}

fn slice(input: TensorId, axes: Vec<SliceRange>) -> Node {
    Node::Slice(Slice { input, axes })
}

fn pad(input: TensorId, pads: &[(u32, u32)]) -> Node {
    Node::Pad(Pad {
        input,
        pads: pads.to_vec(),
    })
}

fn concat(inputs: &[(TensorId, Requant)], axis: u8, zero_point: i8) -> Node {
    Node::Concat(Concat {
        inputs: inputs.to_vec(),
        axis,
        zero_point,
    })
}

fn mul(a: TensorId, b: TensorId, out: Output) -> Node {
    Node::Mul(Mul { a, b, out })
}

fn reduce_sum(input: TensorId, axis: u8, out: Output) -> Node {
    Node::ReduceSum(ReduceSum { input, axis, out })
}

fn reduce_max(input: TensorId, axis: u8) -> Node {
    Node::ReduceMax(ReduceMax { input, axis })
}

fn resize(input: TensorId, factors: [u16; 2]) -> Node {
    Node::Resize(Resize { input, factors })
}

fn matmul(a: TensorId, b: TensorId, out: Output) -> Node {
    Node::MatMul(MatMul { a, b, out })
}

/// LayerNorm over rows of `l` with `gamma` = `g(i)`, `beta` = `b(i)`.
fn layernorm(
    input: TensorId,
    l: usize,
    epsilon: u32,
    g: impl Fn(usize) -> i16,
    b: impl Fn(usize) -> i32,
    out: Output,
) -> Node {
    Node::LayerNorm(LayerNorm {
        input,
        epsilon,
        gamma: (0..l).map(g).collect(),
        beta: (0..l).map(b).collect(),
        out,
    })
}

/// The requant that copies (`2^30 · 2^(1 − 31)` = 1).
const COPY: Requant = Requant {
    mult: HALF,
    shift: 1,
};

pub fn cases() -> Vec<Case> {
    vec![
        // Transpose
        case(
            "transpose_2d",
            "Transpose [3, 4] -> [4, 3]",
            model(vec![3, 4], 0, vec![transpose(0, &[1, 0])]),
            vec![seq(12, -60, 11)],
        ),
        case(
            "transpose_4d",
            "Transpose [2, 3, 2, 2] by perm [3, 1, 0, 2]",
            model(vec![2, 3, 2, 2], 5, vec![transpose(0, &[3, 1, 0, 2])]),
            vec![seq(24, -128, 11), rnd(31, 24)],
        ),
        case(
            "transpose_then_dense",
            "Transpose then Dense over the new last axis",
            model(
                vec![2, 3],
                -3,
                vec![
                    transpose(0, &[1, 0]),
                    dense(
                        1,
                        2,
                        plain(vec![rq(HALF, -2)]),
                        vec![5, -5],
                        vec![3, -1, 2, 7],
                    ),
                ],
            ),
            vec![seq(6, -100, 37)],
        ),
        // Slice
        case(
            "slice_strided",
            "Slice every 3rd row from 1 and every 2nd column of a [2, 5, 6] map",
            model(
                vec![2, 5, 6],
                0,
                vec![slice(0, vec![take(0, 2, 1), take(1, 2, 3), take(0, 3, 2)])],
            ),
            vec![seq(60, -120, 4)],
        ),
        case(
            "slice_tail",
            "Slice the last 3 elements of a sequence",
            model(vec![10], 0, vec![slice(0, vec![take(7, 3, 1)])]),
            vec![seq(10, 1, 3)],
        ),
        case(
            "slice_rank4",
            "Slice on every axis of a rank-4 tensor",
            model(
                vec![2, 3, 4, 5],
                7,
                vec![slice(
                    0,
                    vec![take(1, 1, 1), take(0, 2, 2), take(1, 3, 1), take(4, 1, 3)],
                )],
            ),
            vec![rnd(32, 120)],
        ),
        // Pad
        case(
            "pad_2d",
            "Pad [2, 3] by (1, 0) and (2, 1) with the zero point -5",
            model(vec![2, 3], -5, vec![pad(0, &[(1, 0), (2, 1)])]),
            vec![seq(6, 10, 20)],
        ),
        case(
            "pad_then_conv",
            "Pad a [1, 3, 3] map by 1 on H and W, then a 3x3 Conv2d without padding",
            model(
                vec![1, 3, 3],
                4,
                vec![
                    pad(0, &[(0, 0), (1, 1), (1, 1)]),
                    conv(
                        1,
                        1,
                        1,
                        win([3, 3], [1, 1], [0; 4]),
                        plain(vec![rq(HALF, -3)]),
                        vec![0],
                        seq(9, -4, 1),
                    ),
                ],
            ),
            vec![seq(9, -128, 31)],
        ),
        case(
            "pad_rank4",
            "Pad every axis of a rank-4 tensor",
            model(
                vec![1, 2, 2, 2],
                0,
                vec![pad(0, &[(1, 1), (0, 2), (1, 0), (0, 1)])],
            ),
            vec![seq(8, 1, 1)],
        ),
        // Concat
        case(
            "concat_copy",
            "Concat of the input with itself on axis 0 (requant 1: a copy)",
            model(vec![2, 3], 0, vec![concat(&[(0, COPY), (0, COPY)], 0, 0)]),
            vec![all_int8()[..6].to_vec(), seq(6, 127, -50)],
        ),
        case(
            "concat_rescale",
            "Concat of branches with different scales and zero points, ties in MBQ",
            model(
                vec![4],
                -10,
                vec![
                    dense(
                        0,
                        4,
                        output(vec![rq(HALF, -1)], 3, -128, 127),
                        vec![1, 2, 3, 4],
                        seq(16, -8, 1),
                    ),
                    concat(&[(0, rq(0x6000_0000, 0)), (1, rq(HALF, 0))], 0, 20),
                ],
            ),
            vec![seq(4, -128, 85), vec![-11, -9, 0, 127]],
        ),
        case(
            "concat_last_axis_three",
            "Concat of three [2, 1, 2] tensors on the last axis",
            model(
                vec![2, 1, 2],
                1,
                vec![
                    Node::Clamp(Clamp {
                        input: 0,
                        min: -20,
                        max: 20,
                    }),
                    concat(
                        &[(0, COPY), (1, rq(0x4000_0001, 0)), (0, rq(i32::MAX, -1))],
                        2,
                        -1,
                    ),
                ],
            ),
            vec![seq(4, -128, 85)],
        ),
        // Mul
        case(
            "mul_square",
            "Mul of the input by itself",
            model(vec![8], 3, vec![mul(0, 0, plain(vec![rq(HALF, -7)]))]),
            vec![seq(8, -128, 36), vec![3, 4, 2, -128, 127, 127, -128, 0]],
        ),
        case(
            "mul_broadcast_row",
            "Mul of a [2, 3] input by its per-column maxima [1, 3] (broadcast)",
            model(
                vec![2, 3],
                -2,
                vec![
                    reduce_max(0, 0),
                    mul(0, 1, output(vec![rq(HALF, -8)], 5, -100, 100)),
                ],
            ),
            vec![seq(6, -90, 40)],
        ),
        case(
            "mul_scalar",
            "Mul of a [2, 2, 2] map by a scalar (its ReduceMax over a flattened copy)",
            model(
                vec![2, 2, 2],
                0,
                vec![
                    Node::Reshape(Reshape {
                        input: 0,
                        shape: vec![8],
                    }),
                    reduce_max(1, 0),
                    mul(0, 2, plain(vec![rq(0x5555_5555, -6)])),
                ],
            ),
            vec![seq(8, -50, 17)],
        ),
        // Sub
        case(
            "sub_self",
            "Sub of the input from itself: every output is the zero point",
            model(
                vec![5],
                9,
                vec![Node::Sub(Sub(Add {
                    a: 0,
                    b: 0,
                    a_requant: rq(HALF, 0),
                    b_requant: rq(HALF, 0),
                    out: output(vec![rq(HALF, -19)], -7, -128, 127),
                }))],
            ),
            vec![seq(5, -128, 60)],
        ),
        case(
            "sub_residual",
            "Sub of a Dense branch from the input (different operand scales)",
            model(
                vec![3],
                0,
                vec![
                    dense(
                        0,
                        3,
                        plain(vec![rq(HALF, -1)]),
                        vec![0, 7, -7],
                        seq(9, -3, 1),
                    ),
                    Node::Sub(Sub(Add {
                        a: 0,
                        b: 1,
                        a_requant: rq(HALF, 0),
                        b_requant: rq(0x7000_0000, -1),
                        out: output(vec![rq(HALF, -19)], 1, -128, 127),
                    })),
                ],
            ),
            vec![seq(3, -128, 100), vec![127, 0, -1]],
        ),
        case(
            "sub_saturates",
            "Sub whose differences leave int8 and clamp",
            model(
                vec![4],
                0,
                vec![
                    Node::Clamp(Clamp {
                        input: 0,
                        min: 0,
                        max: 127,
                    }),
                    Node::Sub(Sub(Add {
                        a: 1,
                        b: 0,
                        a_requant: rq(HALF, 0),
                        b_requant: rq(HALF, 0),
                        out: output(vec![rq(HALF, -18)], 0, -128, 127),
                    })),
                ],
            ),
            vec![vec![-128, -1, 0, 127]],
        ),
        // ReduceSum
        case(
            "reduce_sum_last",
            "ReduceSum over the last axis of [3, 4]",
            model(
                vec![3, 4],
                2,
                vec![reduce_sum(0, 1, plain(vec![rq(HALF, -1)]))],
            ),
            vec![seq(12, -128, 23)],
        ),
        case(
            "reduce_mean_first",
            "ReduceMean over axis 0 of [3, 2] as ReduceSum with multiplier 1/3 (ties round)",
            model(
                vec![3, 2],
                0,
                vec![reduce_sum(0, 0, plain(vec![rq(0x5555_5555, -1)]))],
            ),
            vec![vec![1, 2, 1, 2, 1, 2], seq(6, -128, 51)],
        ),
        case(
            "reduce_sum_rank4",
            "ReduceSum over a middle axis of a rank-4 tensor, with a fused clamp",
            model(
                vec![2, 3, 2, 2],
                -1,
                vec![reduce_sum(
                    0,
                    2,
                    output(vec![rq(0x7fff_0000, -2)], 10, -50, 60),
                )],
            ),
            vec![rnd(33, 24)],
        ),
        // ReduceMax
        case(
            "reduce_max_last",
            "ReduceMax over the last axis of [2, 5]",
            model(vec![2, 5], 0, vec![reduce_max(0, 1)]),
            vec![seq(10, -128, 25), rnd(34, 10)],
        ),
        case(
            "reduce_max_channels",
            "ReduceMax over the channels of a [3, 2, 2] map",
            model(vec![3, 2, 2], 0, vec![reduce_max(0, 0)]),
            vec![rnd(35, 12)],
        ),
        case(
            "reduce_max_rank4",
            "ReduceMax over axis 1 of a rank-4 tensor",
            model(vec![2, 4, 1, 3], -9, vec![reduce_max(0, 1)]),
            vec![rnd(36, 24)],
        ),
        // Resize
        case(
            "resize_2x2",
            "Resize nearest by 2x2",
            model(vec![1, 2, 2], 0, vec![resize(0, [2, 2])]),
            vec![vec![1, 2, 3, 4]],
        ),
        case(
            "resize_width_3",
            "Resize nearest by 1x3 on two channels",
            model(vec![2, 2, 3], 0, vec![resize(0, [1, 3])]),
            vec![seq(12, -128, 20)],
        ),
        case(
            "resize_then_pool",
            "Resize 3x1 then MaxPool 3x1 (recovers the input)",
            model(
                vec![1, 2, 2],
                0,
                vec![
                    resize(0, [3, 1]),
                    Node::MaxPool(MaxPool {
                        input: 1,
                        window: win([3, 1], [3, 1], [0; 4]),
                    }),
                ],
            ),
            vec![vec![-5, 100, 7, -128]],
        ),
        // MatMul
        case(
            "matmul_qkt",
            "MatMul of a [4, 6] input by its transpose (Q · Kᵀ)",
            model(
                vec![4, 6],
                1,
                vec![
                    transpose(0, &[1, 0]),
                    matmul(0, 1, plain(vec![rq(HALF, -12)])),
                ],
            ),
            vec![rnd(37, 24)],
        ),
        case(
            "matmul_batched",
            "batched MatMul [2, 3, 4] x [2, 4, 3]",
            model(
                vec![2, 3, 4],
                0,
                vec![
                    transpose(0, &[0, 2, 1]),
                    matmul(0, 1, output(vec![rq(0x6000_0000, -11)], -3, -128, 127)),
                ],
            ),
            vec![rnd(38, 24), seq(24, -128, 11)],
        ),
        // LayerNorm
        case(
            "layernorm_rows",
            "LayerNorm over rows of 8 (unit gamma, no beta); ties in DIVROUND",
            model(
                vec![3, 8],
                0,
                vec![layernorm(
                    0,
                    8,
                    1,
                    |_| 4096,
                    |_| 0,
                    plain(vec![rq(HALF, -11)]),
                )],
            ),
            vec![seq(24, -128, 11), vec![5; 24], rnd(40, 24)],
        ),
        case(
            "layernorm_affine",
            "LayerNorm with per-position gamma and beta and a large epsilon",
            model(
                vec![2, 5],
                -20,
                vec![layernorm(
                    0,
                    5,
                    60_000,
                    |i| [-8000, 3000, 16000, -1, 32767][i],
                    |i| [0, -1 << 20, 1 << 22, 7, -5][i],
                    output(vec![rq(0x6000_0000, -13)], 3, -128, 127),
                )],
            ),
            vec![
                rnd(41, 10),
                vec![127, -128, 127, -128, 0, -20, -20, -20, -20, -20],
            ],
        ),
        case(
            "layernorm_after_dense",
            "Dense then LayerNorm then Dense (a transformer block's shape)",
            model(
                vec![6],
                0,
                vec![
                    dense(0, 6, plain(vec![rq(HALF, -4)]), vec![0; 6], seq(36, -30, 2)),
                    layernorm(
                        1,
                        6,
                        100,
                        |i| 2048 + 512 * i as i16,
                        |i| 1000 * i as i32,
                        plain(vec![rq(HALF, -10)]),
                    ),
                    dense(2, 2, plain(vec![rq(HALF, -7)]), vec![1, -1], seq(12, -6, 1)),
                ],
            ),
            vec![seq(6, -100, 40), rnd(42, 6)],
        ),
        case(
            "attention_head",
            "a tiny attention head: softmax(X · Xᵀ) · X",
            model(
                vec![3, 4],
                0,
                vec![
                    transpose(0, &[1, 0]),
                    matmul(0, 1, plain(vec![rq(HALF, -10)])),
                    softmax(2, |d| ((-(d as f64) / 8.0).exp() * 65535.0).round() as u16),
                    matmul(3, 0, plain(vec![rq(HALF, -8)])),
                ],
            ),
            vec![rnd(39, 12), seq(12, -60, 10)],
        ),
    ]
}

pub fn rejections() -> Vec<Rejection> {
    let r = |name, covers, bytes, rule| Rejection {
        name,
        covers,
        bytes,
        rule,
    };
    let on = |shape: Vec<u32>, node: Node| single(shape, node);
    vec![
        r(
            "reject_transpose_perm",
            "Transpose perm [0, 0]",
            on(vec![2, 3], transpose(0, &[0, 0])),
            Code::BadPermutation,
        ),
        r(
            "reject_transpose_identity",
            "Transpose by the identity permutation",
            on(vec![2, 3], transpose(0, &[0, 1])),
            Code::IdentityNotCanonical,
        ),
        r(
            "reject_transpose_rank",
            "a perm of rank 3 for a rank-2 input",
            on(vec![2, 3], transpose(0, &[2, 1, 0])),
            Code::InputRank,
        ),
        r(
            "reject_slice_step_0",
            "Slice with step 0",
            on(
                vec![5],
                slice(
                    0,
                    vec![SliceRange {
                        start: 0,
                        end: 3,
                        step: 0,
                    }],
                ),
            ),
            Code::BadSlice,
        ),
        r(
            "reject_slice_loose_end",
            "Slice end 4 with step 2 from 0 (canonical end is 3)",
            on(
                vec![5],
                slice(
                    0,
                    vec![SliceRange {
                        start: 0,
                        end: 4,
                        step: 2,
                    }],
                ),
            ),
            Code::BadSlice,
        ),
        r(
            "reject_slice_past_end",
            "Slice end past the axis",
            on(vec![5], slice(0, vec![take(3, 3, 1)])),
            Code::BadSlice,
        ),
        r(
            "reject_slice_everything",
            "Slice taking every element",
            on(vec![2, 3], slice(0, vec![take(0, 2, 1), take(0, 3, 1)])),
            Code::IdentityNotCanonical,
        ),
        r(
            "reject_pad_nothing",
            "Pad by zero everywhere",
            on(vec![2, 3], pad(0, &[(0, 0), (0, 0)])),
            Code::IdentityNotCanonical,
        ),
        r(
            "reject_pad_too_large",
            "Pad to more than 2^20 elements",
            on(vec![4], pad(0, &[(1 << 20, 0)])),
            Code::TensorTooLarge,
        ),
        r(
            "reject_concat_one_input",
            "Concat of a single input",
            on(vec![4], concat(&[(0, COPY)], 0, 0)),
            Code::ConcatShapeMismatch,
        ),
        r(
            "reject_concat_axis",
            "Concat on axis 1 of rank-1 inputs",
            on(vec![4], concat(&[(0, COPY), (0, COPY)], 1, 0)),
            Code::BadAxis,
        ),
        r(
            "reject_concat_shapes",
            "Concat of [2, 2] and its flattened [4] on axis 0 (ranks differ)",
            encode(&model(
                vec![2, 2],
                0,
                vec![
                    Node::Reshape(Reshape {
                        input: 0,
                        shape: vec![4],
                    }),
                    concat(&[(0, COPY), (1, COPY)], 0, 0),
                ],
            )),
            Code::ConcatShapeMismatch,
        ),
        r(
            "reject_concat_overflow",
            "Concat requant shift +24: 255 · 2^24 overflows int32",
            on(vec![4], concat(&[(0, COPY), (0, rq(HALF, 24))], 0, 0)),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_mul_broadcast",
            "Mul of [4] by [2]",
            base_then(mul(0, 1, plain(vec![rq(HALF, -8)]))),
            Code::BroadcastMismatch,
        ),
        r(
            "reject_mul_overflow",
            "Mul output shift +16: 65025 · 2^16 overflows int32",
            on(vec![4], mul(0, 0, plain(vec![rq(HALF, 16)]))),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_sub_shapes",
            "Sub of [4] and [2]",
            base_then(Node::Sub(Sub(Add {
                a: 0,
                b: 1,
                a_requant: rq(HALF, 0),
                b_requant: rq(HALF, 0),
                out: plain(vec![rq(HALF, -19)]),
            }))),
            Code::AddShapeMismatch,
        ),
        r(
            "reject_reduce_axis",
            "ReduceSum over axis 2 of a rank-2 tensor",
            on(vec![2, 3], reduce_sum(0, 2, plain(vec![rq(HALF, -2)]))),
            Code::BadAxis,
        ),
        r(
            "reject_reduce_sum_overflow",
            "ReduceSum over 2^20 elements with shift +12: 255 · 2^20 · 2^12 overflows",
            on(vec![1 << 20], reduce_sum(0, 0, plain(vec![rq(HALF, 12)]))),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_reduce_max_size_1",
            "ReduceMax over an axis of size 1",
            on(vec![1, 3], reduce_max(0, 0)),
            Code::IdentityNotCanonical,
        ),
        r(
            "reject_resize_zero",
            "Resize by 0x2",
            on(vec![1, 2, 2], resize(0, [0, 2])),
            Code::ZeroKernelOrStride,
        ),
        r(
            "reject_resize_identity",
            "Resize by 1x1",
            on(vec![1, 2, 2], resize(0, [1, 1])),
            Code::IdentityNotCanonical,
        ),
        r(
            "reject_resize_rank",
            "Resize of a rank-2 tensor",
            on(vec![2, 2], resize(0, [2, 2])),
            Code::InputRank,
        ),
        r(
            "reject_layernorm_epsilon_0",
            "LayerNorm with epsilon 0",
            on(
                vec![4],
                layernorm(0, 4, 0, |_| 1, |_| 0, plain(vec![rq(HALF, -8)])),
            ),
            Code::ZeroEpsilon,
        ),
        r(
            "reject_layernorm_overflow",
            "LayerNorm gamma 32767 with output shift +2: 2^15 · 32767 · 4 overflows",
            on(
                vec![4],
                layernorm(0, 4, 1, |_| 32767, |_| 0, plain(vec![rq(HALF, 2)])),
            ),
            Code::AccumulatorOverflow,
        ),
        r(
            "reject_layernorm_row_too_long",
            "LayerNorm over rows of 4097",
            on(
                vec![4097],
                layernorm(0, 4097, 1, |_| 1, |_| 0, plain(vec![rq(HALF, -8)])),
            ),
            Code::TensorTooLarge,
        ),
        r(
            "reject_matmul_shapes",
            "MatMul [2, 3] x [2, 3]",
            on(vec![2, 3], matmul(0, 0, plain(vec![rq(HALF, -8)]))),
            Code::MatMulShapeMismatch,
        ),
        r(
            "reject_matmul_overflow",
            "MatMul with K = 4096 and shift +4: 65025 · 4096 · 16 overflows",
            encode(&model(
                vec![2, 4096],
                0,
                vec![
                    transpose(0, &[1, 0]),
                    matmul(0, 1, plain(vec![rq(HALF, 4)])),
                ],
            )),
            Code::AccumulatorOverflow,
        ),
    ]
}
