//! Conformance vectors (`docs/SPEC.md`, "Conformance vectors"): the JSON schema of
//! `tests/vectors/*.json` and a runner that plays each vector through the precompile exactly
//! as a transaction would (ABI calldata in, returndata or revert bytes and gas out), so the
//! same file checks this implementation and any other client.

use std::io::Write;

use alloy_primitives::keccak256;
use alloy_sol_types::{SolCall, SolError};
use myelin_precompile::abi::IMyelin;
use myelin_precompile::memhost::MemHost;
use myelin_precompile::{CallContext, ModelError, Myelin, Outcome};
use serde::{Deserialize, Serialize};

/// One vector. Byte strings are lowercase hex without `0x`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vector {
    pub name: String,
    /// What the vector pins (free text).
    pub covers: String,
    /// The model bytes (`.myl`).
    pub model: String,
    /// `keccak256(model)`: the id `publishModel` returns.
    pub id: String,
    #[serde(flatten)]
    pub expect: Expect,
}

/// What a conforming implementation does with the vector's model.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Expect {
    /// A valid model: `publishModel` succeeds, `modelInfo` reports these figures, and a cold
    /// `infer(id, input)` returns `output` using exactly `inferGas` gas.
    Output {
        input: String,
        output: String,
        #[serde(rename = "inferGas")]
        infer_gas: u64,
        macs: u64,
        elems: u64,
    },
    /// An invalid model: `publishModel` reverts with `InvalidModel(code, node)`.
    Error { error: ExpectedError },
}

/// The arguments of the `InvalidModel` revert (`docs/SPEC.md` §8): the first failing check's
/// code and the node it failed at (`0xFFFF` for the header and whole-model checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedError {
    pub code: u16,
    pub node: u16,
}

impl ExpectedError {
    pub fn of(e: &ModelError) -> Self {
        ExpectedError {
            code: e.code(),
            node: e.node,
        }
    }

    /// The exact revert bytes of `publishModel`.
    pub fn revert_data(self) -> Vec<u8> {
        IMyelin::InvalidModel {
            code: self.code,
            node: self.node,
        }
        .abi_encode()
    }
}

pub fn parse(json: &str) -> Result<Vec<Vector>, serde_json::Error> {
    serde_json::from_str(json)
}

fn unhex(what: &str, s: &str) -> Result<Vec<u8>, String> {
    hex::decode(s).map_err(|e| format!("{what} is not hex: {e}"))
}

const CTX: CallContext = CallContext {
    caller: alloy_primitives::Address::ZERO,
    value: alloy_primitives::U256::ZERO,
    is_static: false,
    is_direct: true,
    gas_limit: 1 << 40,
};

/// Plays `v` through a fresh precompile and state, each call in its own transaction (so
/// every model load is cold); `Err` says what differs.
pub fn check(v: &Vector) -> Result<(), String> {
    let model = unhex("model", &v.model)?;
    let id = keccak256(&model);
    if unhex("id", &v.id)? != id.as_slice() {
        return Err(format!("id: keccak256(model) is {id}"));
    }
    let myelin = Myelin::new(1);
    let mut host = MemHost::default();
    let mut call = |data: Vec<u8>| {
        host.new_tx();
        let Ok(outcome) = myelin.call(&mut host, &CTX, &data);
        outcome
    };
    let published = call(
        IMyelin::publishModelCall {
            model: model.into(),
        }
        .abi_encode(),
    );
    match &v.expect {
        Expect::Error { error } => match published {
            Outcome::Revert { output, .. } if output.as_ref() == error.revert_data() => Ok(()),
            other => Err(format!(
                "publishModel: expected revert {}, got {}",
                hex::encode(error.revert_data()),
                describe(&other)
            )),
        },
        Expect::Output {
            input,
            output,
            infer_gas,
            macs,
            elems,
        } => {
            match &published {
                Outcome::Success { output, .. } if output.as_ref() == id.as_slice() => {}
                other => return Err(format!("publishModel: {}", describe(other))),
            }
            let info = match call(IMyelin::modelInfoCall { id }.abi_encode()) {
                Outcome::Success { output, .. } => {
                    IMyelin::modelInfoCall::abi_decode_returns(&output)
                        .map_err(|e| format!("modelInfo returndata: {e}"))?
                }
                other => return Err(format!("modelInfo: {}", describe(&other))),
            };
            let got = (info.inferGas, info.macs, info.elems);
            if got != (*infer_gas, *macs, *elems) {
                return Err(format!(
                    "modelInfo (inferGas, macs, elems) = {got:?}, expected {:?}",
                    (infer_gas, macs, elems)
                ));
            }
            let data = IMyelin::inferCall {
                id,
                input: unhex("input", input)?.into(),
            }
            .abi_encode();
            match call(data) {
                Outcome::Success {
                    gas_used,
                    output: ret,
                } => {
                    let out = IMyelin::inferCall::abi_decode_returns(&ret)
                        .map_err(|e| format!("infer returndata: {e}"))?;
                    if hex::encode(&out) != *output {
                        return Err(format!("infer returned {}", hex::encode(&out)));
                    }
                    if gas_used != *infer_gas {
                        return Err(format!("infer used {gas_used} gas, expected {infer_gas}"));
                    }
                    Ok(())
                }
                other => Err(format!("infer: {}", describe(&other))),
            }
        }
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::Success { output, .. } => format!("success {}", hex::encode(output)),
        Outcome::Revert { output, .. } => format!("revert {}", hex::encode(output)),
        Outcome::OutOfGas => "out of gas".into(),
    }
}

/// Checks every vector, writing one `ok`/`FAIL` line each and a summary to `out`; returns
/// the number of failures.
pub fn run(vectors: &[Vector], out: &mut impl Write) -> std::io::Result<usize> {
    let mut failed = 0;
    for v in vectors {
        match check(v) {
            Ok(()) => writeln!(out, "ok    {}", v.name)?,
            Err(why) => {
                failed += 1;
                writeln!(out, "FAIL  {}: {why}", v.name)?;
            }
        }
    }
    writeln!(out, "{} passed, {failed} failed", vectors.len() - failed)?;
    Ok(failed)
}
