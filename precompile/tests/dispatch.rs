//! The precompile's dispatch over an in-memory host: gas warm/cold per transaction, batches,
//! fixed point, and that the node-local cache changes neither gas nor results.

use alloy_primitives::{keccak256, Address, Bytes, B256, I256, U256};
use alloy_sol_types::SolCall;
use myelin_precompile::abi::IMyelin;
use myelin_precompile::memhost::MemHost;
use myelin_precompile::random::{self, Rng};
use myelin_precompile::validate::ValidModel;
use myelin_precompile::{decode, encode, fixed, gas, CallContext, Engine, Myelin, Outcome};

const CTX: CallContext = CallContext {
    caller: Address::ZERO,
    value: U256::ZERO,
    is_static: false,
    is_direct: true,
    gas_limit: 30_000_000,
};

fn call(m: &Myelin, host: &mut MemHost, data: &[u8]) -> (u64, Bytes) {
    match m.call(host, &CTX, data) {
        Ok(Outcome::Success { gas_used, output }) => (gas_used, output),
        other => panic!("{other:?}"),
    }
}

fn published(seed: u64) -> (Myelin, MemHost, Vec<u8>, B256) {
    let model = encode(&random::model(&mut Rng::new(seed), 5));
    let id = keccak256(&model);
    let (m, mut host) = (Myelin::new(4), MemHost::default());
    let (gas_used, out) = call(
        &m,
        &mut host,
        &IMyelin::publishModelCall {
            model: model.clone().into(),
        }
        .abi_encode(),
    );
    assert_eq!(out.as_ref(), id.as_slice());
    let calldata = 4 + 32 * 2 + model.len().div_ceil(32) * 32; // selector, offset, length, data
    assert_eq!(
        gas_used,
        gas::CALL_BASE
            + gas::IO_BYTE * (calldata as u64 + 32)
            + gas::SLOAD_COLD
            + gas::publish(model.len())
    );
    host.new_tx();
    (m, host, model, id)
}

#[test]
fn second_load_in_a_transaction_is_warm() {
    let (m, mut host, model, id) = published(3);
    let valid = decode(&model).unwrap();
    let a = valid.analysis();
    let data = IMyelin::inferCall {
        id,
        input: vec![1u8; a.input_len()].into(),
    }
    .abi_encode();
    let (cold, out1) = call(&m, &mut host, &data);
    let (warm, out2) = call(&m, &mut host, &data);
    assert_eq!(out1, out2);
    assert_eq!(cold, gas::infer_call(&valid, model.len()));
    let cold_load = gas::load(model.len(), false) + gas::prepare(a);
    assert_eq!(
        cold - warm,
        gas::SLOAD_COLD - gas::SLOAD_WARM + cold_load - gas::LOAD_WARM
    );
    host.new_tx();
    assert_eq!(
        call(&m, &mut host, &data).0,
        cold,
        "warmth does not outlive the transaction"
    );
}

#[test]
fn the_node_cache_changes_neither_gas_nor_results() {
    let (m, mut host, model, id) = published(4);
    let valid = decode(&model).unwrap();
    let a = valid.analysis();
    let data = IMyelin::inferCall {
        id,
        input: vec![9u8; a.input_len()].into(),
    }
    .abi_encode();
    let with_cache = call(&m, &mut host, &data); // the publish filled the cache
    host.new_tx();
    let without = call(&Myelin::new(1), &mut host, &data); // a fresh node: loads from state
    assert_eq!(with_cache, without);
}

#[test]
fn batch_charges_one_load_and_one_inference_per_input() {
    let (m, mut host, model, id) = published(5);
    let valid = decode(&model).unwrap();
    let a = valid.analysis();
    let inputs: Vec<Bytes> = (0..3u8).map(|i| vec![i; a.input_len()].into()).collect();
    let data = IMyelin::inferBatchCall {
        id,
        inputs: inputs.clone(),
    }
    .abi_encode();
    let (gas_used, out) = call(&m, &mut host, &data);
    let outs = IMyelin::inferBatchCall::abi_decode_returns(&out).unwrap();
    let engine = Engine::new(valid.clone());
    for (x, y) in inputs.iter().zip(&outs) {
        let x: Vec<i8> = x.iter().map(|&b| b as i8).collect();
        assert_eq!(
            y.iter().map(|&b| b as i8).collect::<Vec<_>>(),
            engine.run(&x)
        );
    }
    let io = gas::IO_BYTE * (data.len() + out.len()) as u64;
    assert_eq!(
        gas_used,
        gas::CALL_BASE
            + io
            + gas::SLOAD_COLD
            + gas::load(model.len(), false)
            + gas::prepare(a)
            + 3 * gas::inference(&valid)
    );
}

/// `inferFixed(id, x, 6)` through the precompile.
fn infer_fixed(m: &Myelin, host: &mut MemHost, id: B256, x: &[I256]) -> Vec<I256> {
    let data = IMyelin::inferFixedCall {
        id,
        input: x.to_vec(),
        decimals: 6,
    }
    .abi_encode();
    let (_, out) = call(m, host, &data);
    IMyelin::inferFixedCall::abi_decode_returns(&out).unwrap()
}

/// The engine's output for the int8 input `q`, dequantized to 6 decimals (SPEC §6).
fn engine_fixed(valid: &ValidModel, q: &[i8]) -> Vec<I256> {
    let oq = myelin_precompile::model::Quant {
        scale: valid.model().output_scale,
        zero_point: valid.analysis().output_zero_point(),
    };
    Engine::new(valid.clone())
        .run(q)
        .into_iter()
        .map(|y| fixed::dequantize(y, 6, oq))
        .collect()
}

#[test]
fn infer_fixed_quantizes_and_dequantizes_by_the_spec() {
    let (m, mut host, model, id) = published(6);
    let valid = decode(&model).unwrap();
    let x: Vec<I256> = (0..valid.analysis().input_len() as i64)
        .map(|i| I256::try_from(i * 1_000_000 - 3_000_000).unwrap())
        .collect();
    let q: Vec<i8> = x
        .iter()
        .map(|&v| fixed::quantize(v, 6, valid.model().input_quant[0]))
        .collect();
    assert_eq!(infer_fixed(&m, &mut host, id, &x), engine_fixed(&valid, &q));
}

/// A model quantized per feature (format v3): `inferFixed` quantizes input value `i` with
/// feature `i mod F`'s scale and zero point (SPEC §6), and `modelInfo` lists them.
#[test]
fn infer_fixed_quantizes_each_feature_with_its_own() {
    let mut rng = Rng::new(3);
    let model = (0..)
        .map(|_| random::tree_model(&mut rng))
        .find(|m| m.input_shape.len() == 2)
        .expect("some tree models have several rows");
    let bytes = encode(&model);
    assert_eq!(bytes[4], 3, "a per-feature model is version 3");
    let (m, mut host) = (Myelin::new(4), MemHost::default());
    call(
        &m,
        &mut host,
        &IMyelin::publishModelCall {
            model: bytes.clone().into(),
        }
        .abi_encode(),
    );
    let id = keccak256(&bytes);
    let valid = decode(&bytes).unwrap();
    let n = valid.analysis().input_len() as i64;
    let x: Vec<I256> = (0..n)
        .map(|i| I256::try_from((i * 7919 % 201 - 100) * 37_000).unwrap())
        .collect();
    let per_feature: Vec<i8> = x
        .iter()
        .enumerate()
        .map(|(i, &v)| fixed::quantize(v, 6, valid.model().element_quant(i)))
        .collect();
    let first_only: Vec<i8> = x
        .iter()
        .map(|&v| fixed::quantize(v, 6, valid.model().input_quant[0]))
        .collect();
    assert_ne!(
        per_feature, first_only,
        "the features' quantizations matter here"
    );
    assert_eq!(
        infer_fixed(&m, &mut host, id, &x),
        engine_fixed(&valid, &per_feature)
    );

    let (_, out) = call(&m, &mut host, &IMyelin::modelInfoCall { id }.abi_encode());
    let info = IMyelin::modelInfoCall::abi_decode_returns(&out).unwrap();
    let listed: Vec<(i32, i8, i8)> = info
        .inputFeatures
        .iter()
        .map(|q| (q.scaleMult, q.scaleShift, q.zeroPoint))
        .collect();
    let quants: Vec<(i32, i8, i8)> = valid
        .model()
        .input_quant
        .iter()
        .map(|q| (q.scale.mult, q.scale.shift, q.zero_point))
        .collect();
    assert_eq!(listed, quants);
    assert_eq!(
        (
            info.input.scaleMult,
            info.input.scaleShift,
            info.input.zeroPoint
        ),
        (0, 0, 0)
    );
}

#[test]
fn out_of_gas_before_any_work() {
    let (m, mut host, model, id) = published(7);
    let valid = decode(&model).unwrap();
    let a = valid.analysis();
    let data = IMyelin::inferCall {
        id,
        input: vec![0u8; a.input_len()].into(),
    }
    .abi_encode();
    let need = gas::infer_call(&valid, model.len());
    let ctx = CallContext {
        gas_limit: need - 1,
        ..CTX
    };
    assert_eq!(m.call(&mut host, &ctx, &data), Ok(Outcome::OutOfGas));
    let ctx = CallContext {
        gas_limit: need,
        ..CTX
    };
    assert!(matches!(
        m.call(&mut host, &ctx, &data),
        Ok(Outcome::Success { .. })
    ));
}

fn revert(m: &Myelin, host: &mut MemHost, data: &[u8]) -> Vec<u8> {
    match m.call(host, &CTX, data) {
        Ok(Outcome::Revert { output, .. }) => output.to_vec(),
        other => panic!("{other:?}"),
    }
}

/// Rejections carry numbers, never text: the exact revert bytes of SPEC §8.
#[test]
fn rejections_are_codes() {
    use alloy_sol_types::SolError;
    use myelin_precompile::error::{Code, HEADER};
    let (m, mut host, _, id) = published(5);
    let bad_version = IMyelin::publishModelCall {
        model: b"MYLN\x05".to_vec().into(),
    }
    .abi_encode();
    assert_eq!(
        revert(&m, &mut host, &bad_version),
        IMyelin::InvalidModel {
            code: Code::BadVersion.number(),
            node: HEADER,
        }
        .abi_encode()
    );
    let too_many_decimals = IMyelin::inferFixedCall {
        id,
        input: vec![],
        decimals: fixed::MAX_DECIMALS + 1,
    }
    .abi_encode();
    assert_eq!(
        revert(&m, &mut host, &too_many_decimals),
        IMyelin::InvalidDecimals { decimals: 39 }.abi_encode()
    );
    // A stored model that no longer decodes (corrupt state) is an internal error, not the
    // caller's invalid model. A fresh precompile has no cached copy to hide it.
    host.code.insert(
        myelin_precompile::precompile::addr::model(id),
        Bytes::from_static(b"MYLN"),
    );
    let infer = IMyelin::inferCall {
        id,
        input: Bytes::new(),
    }
    .abi_encode();
    assert_eq!(
        revert(&Myelin::new(4), &mut host, &infer),
        IMyelin::InternalError {}.abi_encode()
    );
}
