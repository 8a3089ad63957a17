//! Myelin: deterministic integer inference inside the EVM.
//!
//! Data flow: model bytes → [`codec::decode`] (parse + [`validate`]) → [`engine::Engine`]
//! (burn, int tensors) → int8 outputs. [`reference`] is the scalar twin the engine is tested
//! against; [`quant`] holds the fixed-point primitives both follow. `docs/SPEC.md` is the
//! normative description of all of it.
//!
//! In the EVM: [`precompile::Myelin`] decodes `IMyelin` calls ([`abi`]), charges [`gas`],
//! keeps models as chain state and runs the engine; [`evm`] adapts it to alloy-evm.

pub mod abi;
pub mod cache;
pub mod codec;
pub mod cost;
pub mod engine;
pub mod error;
pub mod evm;
pub mod fixed;
#[cfg(feature = "testkit")]
pub mod fuzz;
pub mod gas;
pub mod gemm;
pub mod host;
pub mod input;
pub mod limits;
pub mod memhost;
pub mod model;
pub mod ops;
pub mod precompile;
pub mod quant;
#[cfg(feature = "testkit")]
pub mod random;
pub mod reference;
pub mod validate;

pub use codec::{decode, encode};
pub use engine::Engine;
pub use error::ModelError;
pub use model::Model;
pub use precompile::{CallContext, Host, Myelin, Outcome};
pub use validate::{Analysis, ValidModel};
