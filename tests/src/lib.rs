//! Shared pieces of the workspace integration tests.

pub mod chain;
pub mod vectors;
