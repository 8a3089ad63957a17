//! Vectors for index inputs (format v2) and Gather: embedding lookups at the table's edges,
//! several index inputs, ids mixed with int8 features, and a rejection for each rule they
//! add. An input here is what `infer` takes: the int8 values, then each id as two bytes,
//! big-endian.

use myelin_precompile::input::{self, Input};

use super::*;

fn gather(index: u8, start: u16, count: u16, rows: u16, dim: u32, zero_point: i8) -> Node {
    Node::Gather(Gather {
        index,
        start,
        count,
        rows,
        dim,
        zero_point,
        table: rnd(
            0x6A7 + rows as u64 * 31 + dim as u64,
            rows as usize * dim as usize,
        ),
    })
}

/// `model(input_shape, ..)` with index inputs of these limits.
fn indexed(input_shape: Vec<u32>, limits: &[&[u16]], nodes: Vec<Node>) -> Model {
    let mut m = model(input_shape, 0, nodes);
    m.index_inputs = limits
        .iter()
        .map(|l| IndexInput { limits: l.to_vec() })
        .collect();
    m
}

/// The `infer` input of `values` and `ids`, as the vectors carry it.
fn call_input(values: Vec<i8>, ids: &[&[u16]]) -> Vec<i8> {
    let x = Input {
        values,
        ids: ids.iter().map(|i| i.to_vec()).collect(),
    };
    input::encode(&x).into_iter().map(|b| b as i8).collect()
}

pub fn cases() -> Vec<Case> {
    // An embedding table of 300 rows: ids above 255 need both bytes.
    let big = indexed(vec![1], &[&[300, 300]], vec![gather(0, 0, 2, 300, 3, -7)]);
    vec![
        case(
            "gather_edges",
            "Gather of the first and last rows of a 300-row table (ids 0, 255, 256, 299)",
            big,
            vec![
                call_input(vec![5], &[&[0, 299]]),
                call_input(vec![-5], &[&[255, 256]]),
            ],
        ),
        case(
            "gather_window",
            "Gather of ids 1..3 of a 4-id input (start and count) whose other limits differ",
            indexed(
                vec![2],
                &[&[1, 7, 7, 65535]],
                vec![gather(0, 1, 2, 7, 4, 12)],
            ),
            vec![
                call_input(vec![1, 2], &[&[0, 6, 0, 65534]]),
                call_input(vec![3, 4], &[&[0, 3, 5, 0]]),
            ],
        ),
        case(
            "gather_two_inputs_with_features",
            "two index inputs, their embeddings concatenated with int8 features, then Dense",
            indexed(
                vec![4],
                &[&[5], &[3, 9]],
                vec![
                    gather(0, 0, 1, 5, 2, 3),
                    gather(1, 0, 2, 9, 2, -4),
                    Node::Reshape(Reshape {
                        input: 2,
                        shape: vec![4],
                    }),
                    Node::Reshape(Reshape {
                        input: 1,
                        shape: vec![2],
                    }),
                    Node::Concat(Concat {
                        inputs: vec![(0, rq(HALF, 1)), (4, rq(HALF, 0)), (3, rq(0x6000_0000, 0))],
                        axis: 0,
                        zero_point: 1,
                    }),
                    dense(5, 3, plain(vec![rq(HALF, -6)]), vec![10, -10, 0], seq(30, -15, 1)),
                ],
            ),
            vec![
                call_input(vec![10, -20, 30, -40], &[&[4], &[2, 8]]),
                call_input(vec![127, -128, 0, 1], &[&[0], &[0, 0]]),
                call_input(vec![-1, -1, -1, -1], &[&[2], &[1, 5]]),
            ],
        ),
        case(
            "gather_output_is_model_output",
            "a Gather as the last node: the declared output scale is free, the zero point the table's",
            indexed(vec![1], &[&[2]], vec![gather(0, 0, 1, 2, 6, -128)]),
            vec![call_input(vec![0], &[&[1]]), call_input(vec![0], &[&[0]])],
        ),
    ]
}

pub fn rejections() -> Vec<Rejection> {
    let one = |limits: &[&[u16]], node: Node| indexed(vec![1], limits, vec![node]);
    let mut v2_empty = encode(&model(vec![1], 0, vec![gather(0, 0, 1, 1, 1, 0)]));
    v2_empty[4] = 2;
    // The index-input list sits between the output scale and n_nodes: an empty one.
    let header = 4 + 1 + 1 + 4 + 5 + 1 + 5;
    v2_empty.insert(header, 0);
    vec![
        Rejection {
            name: "reject_v2_without_index_inputs",
            covers: "version 2 with an empty index-input list (v1 is its encoding)",
            bytes: v2_empty,
            rule: Code::BadIndexInputs,
        },
        rejection(
            "reject_index_inputs_9",
            "nine index inputs",
            one(&[&[2u16][..]; 9], gather(0, 0, 1, 2, 1, 0)),
            Code::BadIndexInputs,
        ),
        rejection(
            "reject_index_input_too_long",
            "an index input of 1025 ids",
            one(&[&[2u16; 1025][..]], gather(0, 0, 1, 2, 1, 0)),
            Code::BadIndexInputs,
        ),
        rejection(
            "reject_index_limit_0",
            "an id limit of 0",
            one(&[&[2, 0]], gather(0, 0, 1, 2, 1, 0)),
            Code::BadIndexInputs,
        ),
        rejection(
            "reject_gather_missing_input",
            "Gather of index input 1 of a model with one",
            one(&[&[2]], gather(1, 0, 1, 2, 1, 0)),
            Code::BadIndexRead,
        ),
        rejection(
            "reject_gather_past_end",
            "Gather of ids 1..3 of an input of 2",
            one(&[&[2, 2]], gather(0, 1, 2, 2, 1, 0)),
            Code::BadIndexRead,
        ),
        rejection(
            "reject_gather_in_v1",
            "Gather in a model without index inputs",
            model(vec![1], 0, vec![gather(0, 0, 1, 2, 1, 0)]),
            Code::BadIndexRead,
        ),
        rejection(
            "reject_gather_table_too_small",
            "a 4-row table for ids of limit 5",
            one(&[&[5]], gather(0, 0, 1, 4, 2, 0)),
            Code::TableTooSmall,
        ),
        rejection(
            "reject_gather_dim_0",
            "a table of width 0",
            one(&[&[1]], gather(0, 0, 1, 1, 0, 0)),
            Code::ZeroDim,
        ),
    ]
}
