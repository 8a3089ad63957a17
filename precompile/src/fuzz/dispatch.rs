//! Arbitrary calls into the precompile (`Myelin::call`) over the in-memory host, with two
//! small models already published.
//!
//! The input is a sequence of up to `MAX_CALLS` calls, each a 7-byte header followed by its
//! calldata: `flags: u8`, `gas: u32` (little-endian, capped at `MAX_GAS`), `len: u16`
//! (little-endian; a short final call takes what is left). Flag bits: 0 static, 1 one wei of
//! value, 2 indirect (DELEGATECALL), 3 new transaction first (transient storage cleared),
//! 4 second caller. Sequences reach uploads and publish-then-infer; seeds embed the ids of
//! the published models (`corpus/dispatch/`).
//!
//! Checked for every call: no host error and no panic; Success and Revert never use more gas
//! than given. And since the node-local model cache may change speed only, the sequence runs
//! twice, on a precompile whose cache already holds the published models and on one with a
//! single-entry cold cache: outcomes and final state must be identical.

use std::sync::OnceLock;

use crate::abi::IMyelin;
use crate::memhost::MemHost;
use crate::precompile::slot;
use crate::{CallContext, Myelin, Outcome};
use alloy_primitives::{keccak256, Address, Bytes, U256};
use alloy_sol_types::SolCall;

const MAX_CALLS: usize = 6;
/// A call cannot carry more gas than a block holds.
const MAX_GAS: u64 = 30_000_000;
const HEADER: usize = 7;
const CALLERS: [Address; 2] = [Address::repeat_byte(0xa1), Address::repeat_byte(0xb2)];
/// Published before every execution: a small MLP, a small CNN and a model with an index
/// input (its ids travel after the features and are range-checked).
const MODELS: [&[u8]; 3] = [
    include_bytes!("../../../models/diabetes_reg.myl"),
    include_bytes!("../../../models/digits_cnn.myl"),
    include_bytes!("../../../models/diabetes_embed.myl"),
];

struct Call<'a> {
    ctx: CallContext,
    new_tx: bool,
    data: &'a [u8],
}

fn parse(mut data: &[u8]) -> Vec<Call<'_>> {
    let mut calls = Vec::new();
    while data.len() >= HEADER && calls.len() < MAX_CALLS {
        let flags = data[0];
        let gas = u32::from_le_bytes([data[1], data[2], data[3], data[4]]) as u64;
        let len = (u16::from_le_bytes([data[5], data[6]]) as usize).min(data.len() - HEADER);
        calls.push(Call {
            ctx: CallContext {
                caller: CALLERS[(flags >> 4 & 1) as usize],
                value: U256::from(flags >> 1 & 1),
                is_static: flags & 1 != 0,
                is_direct: flags & 4 == 0,
                gas_limit: gas.min(MAX_GAS),
            },
            new_tx: flags & 8 != 0,
            data: &data[HEADER..HEADER + len],
        });
        data = &data[HEADER + len..];
    }
    calls
}

fn call(myelin: &Myelin, host: &mut MemHost, ctx: &CallContext, data: &[u8]) -> Outcome {
    myelin
        .call(host, ctx, data)
        .unwrap_or_else(|e| panic!("host error from the in-memory host: {e}"))
}

/// The state every execution starts from: every model published, in a fresh transaction.
fn published() -> &'static MemHost {
    static HOST: OnceLock<MemHost> = OnceLock::new();
    HOST.get_or_init(|| {
        let mut host = MemHost::default();
        let ctx = CallContext {
            caller: CALLERS[0],
            value: U256::ZERO,
            is_static: false,
            is_direct: true,
            gas_limit: MAX_GAS,
        };
        for model in MODELS {
            let data = IMyelin::publishModelCall {
                model: Bytes::from_static(model),
            }
            .abi_encode();
            let outcome = call(&Myelin::new(1), &mut host, &ctx, &data);
            assert!(
                matches!(outcome, Outcome::Success { .. }),
                "publishing a shipped model failed: {outcome:?}"
            );
        }
        host.new_tx();
        host
    })
}

/// Runs the calls; returns every outcome and the final state.
fn run_calls(myelin: &Myelin, calls: &[Call<'_>]) -> (Vec<Outcome>, MemHost) {
    let mut host = published().clone();
    let outcomes = calls
        .iter()
        .map(|c| {
            if c.new_tx {
                host.new_tx();
            }
            let outcome = call(myelin, &mut host, &c.ctx, c.data);
            if let Outcome::Success { gas_used, .. } | Outcome::Revert { gas_used, .. } = outcome {
                assert!(
                    gas_used <= c.ctx.gas_limit,
                    "gas used {gas_used} > limit {}",
                    c.ctx.gas_limit
                );
            }
            outcome
        })
        .collect();
    (outcomes, host)
}

/// One execution of the `dispatch` target.
pub fn run(data: &[u8]) {
    let calls = parse(data);
    if calls.is_empty() {
        return;
    }
    // Warm: every published model already prepared in the node-local cache.
    let warm = Myelin::default();
    for model in MODELS {
        let info = IMyelin::modelInfoCall {
            id: keccak256(model),
        }
        .abi_encode();
        let ctx = CallContext {
            caller: CALLERS[0],
            value: U256::ZERO,
            is_static: true,
            is_direct: true,
            gas_limit: MAX_GAS,
        };
        call(&warm, &mut published().clone(), &ctx, &info);
    }
    let (warm_outcomes, warm_host) = run_calls(&warm, &calls);
    let (cold_outcomes, cold_host) = run_calls(&Myelin::new(1), &calls);
    assert_eq!(
        warm_outcomes, cold_outcomes,
        "the model cache changed an outcome"
    );
    assert_eq!(warm_host.storage, cold_host.storage);
    // Every transient slot but the node-local cache epoch, which numbers transactions per node.
    let consensus = |h: &MemHost| {
        let mut t = h.transient.clone();
        t.remove(&slot::epoch());
        t
    };
    assert_eq!(consensus(&warm_host), consensus(&cold_host));
    assert_eq!(warm_host.code, cold_host.code);
    assert_eq!(warm_host.logs, cold_host.logs);
}
