//! Library half of the `myelin` command: ONNX → Myelin conversion, `.npy` I/O, and the
//! directory-backed state `myelin precompile` runs the real precompile over, and the
//! conformance-vector runner.

pub mod conformance;
pub mod convert;
pub mod npy;
pub mod store;
