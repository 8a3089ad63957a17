//! The engine's own kernels, run inside burn as a backend extension (`#[backend_extension]`,
//! burn 0.22): the ndarray backend lends a kernel its input activations in place — no
//! `into_data` copy — and wraps the returned values as the output tensor without copying.
//! Every operator passes its kernel as a closure: one call per node, whatever the kernel
//! does — except Concat, whose n inputs take one call each ([`visit`]): an n-ary kernel does
//! not compile (burn 0.22.1's macro accepts a `Vec<IntTensor<Self>>` argument in the trait,
//! but its dispatch glue hands the backend the `Vec` of dispatch tensors unconverted).
#![allow(deprecated)] // burn marks ndarray as deprecated in favour of `flex`; we need ndarray

use burn::backend::backend_extension;
use burn::backend::tensor::IntTensor;
use burn::backend::{Backend, Dispatch, TensorMetadata};
use burn::tensor::TensorData;
use burn_ndarray::{NdArray, NdArrayTensor};

use crate::engine::EngineTensor;

/// A node's kernel: from the values of one input (flat, row-major, int64 as the engine holds
/// activations) to its output values.
pub type Unary<'a> = dyn Fn(&[i64]) -> Vec<i64> + 'a;
/// The same for a node of two inputs.
pub type Binary<'a> = dyn Fn(&[i64], &[i64]) -> Vec<i64> + 'a;

#[backend_extension(NdArray)]
pub trait HostOps: Backend {
    /// `kernel` on one activation.
    fn host_unary(x: IntTensor<Self>, kernel: &Unary<'_>) -> IntTensor<Self>;
    /// `kernel` on two activations.
    fn host_binary(a: IntTensor<Self>, b: IntTensor<Self>, kernel: &Binary<'_>) -> IntTensor<Self>;
}

/// The values of an int64 activation, borrowed when contiguous (always, for the engine's flat
/// tensors) and copied otherwise.
fn with_values<R>(t: &NdArrayTensor, f: impl FnOnce(&[i64]) -> R) -> R {
    match t {
        NdArrayTensor::I64(storage) => {
            let view = storage.view();
            match view.as_slice() {
                Some(values) => f(values),
                None => f(&view.iter().copied().collect::<Vec<_>>()),
            }
        }
        other => unreachable!("engine activations are int64, got {:?}", other.dtype()),
    }
}

fn wrap(values: Vec<i64>) -> NdArrayTensor {
    let len = values.len();
    NdArrayTensor::from_data(TensorData::new(values, [len]))
}

impl HostOps for NdArray {
    fn host_unary(x: NdArrayTensor, kernel: &Unary<'_>) -> NdArrayTensor {
        wrap(with_values(&x, kernel))
    }

    fn host_binary(a: NdArrayTensor, b: NdArrayTensor, kernel: &Binary<'_>) -> NdArrayTensor {
        wrap(with_values(&a, |a| with_values(&b, |b| kernel(a, b))))
    }
}

/// Runs `kernel` on activation `x` through the extension.
pub fn unary(x: &EngineTensor, kernel: &Unary<'_>) -> EngineTensor {
    EngineTensor::from_dispatch(Dispatch::host_unary(x.clone().into_dispatch(), kernel))
}

/// Runs `kernel` on activations `a` and `b` through the extension.
pub fn binary(a: &EngineTensor, b: &EngineTensor, kernel: &Binary<'_>) -> EngineTensor {
    EngineTensor::from_dispatch(Dispatch::host_binary(
        a.clone().into_dispatch(),
        b.clone().into_dispatch(),
        kernel,
    ))
}

/// Runs `visit` on the values of activation `x` through the extension, for a kernel that
/// writes into a buffer of its own rather than returning a tensor (Concat: each input into
/// its blocks of the joined output). The extension's result, an empty tensor, is dropped.
pub fn visit(x: &EngineTensor, visit: &dyn Fn(&[i64])) {
    unary(x, &|values| {
        visit(values);
        Vec::new()
    });
}
