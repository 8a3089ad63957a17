//! Library half of the `myelin` command: ONNX → Myelin conversion and `.npy` I/O.

pub mod convert;
pub mod npy;
