//! Shared pieces of the workspace integration tests.

pub mod vectors;
