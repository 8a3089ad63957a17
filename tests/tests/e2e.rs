//! End to end: real signed transactions in blocks, executed by alloy-evm's block executor
//! with `MyelinEvmFactory`, against contracts compiled by the project's Foundry build.

use alloy_primitives::{keccak256, Address, Bytes, B256, U256};
use alloy_sol_types::{sol, SolCall, SolConstructor, SolError, SolInterface};
use myelin_precompile::abi::IMyelin::{self, IMyelinErrors};
use myelin_precompile::error::{Code, HEADER};
use myelin_precompile::evm::DEFAULT_ADDRESS as MYELIN;
use myelin_precompile::model::*;
use myelin_precompile::{decode, encode, fixed, gas, Engine};
use myelin_reth::{Activation, MyelinConfig};
use myelin_tests::chain::{artifact, Chain, Tx};
use revm::context_interface::result::{ExecutionResult, HaltReason, OutOfGasError};

sol! {
    contract DigitGame {
        constructor(bytes32 model_, uint256 minConfidence_);
        function draw(bytes pixels) external returns (uint8 digit, bool scored);
        function classify(bytes pixels) external view returns (uint8 digit, uint256 confidence);
        function score(address player) external view returns (uint256);
        function target() external view returns (uint8);
    }
    contract Probe {
        function staticForward(address to, bytes data) external view returns (bool ok, bytes ret);
        function callThenRevert(address to, bytes data) external;
        function delegateForward(address to, bytes data) external returns (bool ok, bytes ret);
        error Forwarded(bool ok, bytes ret);
    }
}

/// A 64 → 10 classifier with a Softmax head: class c's weights light up on pixel row c mod 8,
/// so a drawing with one bright row r is classified as digit r (8 and 9 never win).
fn digit_model() -> Model {
    let weights: Vec<i8> = (0..10)
        .flat_map(|c| (0..64).map(move |p| if p / 8 == c { 60 } else { -3 }))
        .collect();
    let scale = Scale {
        mult: 1 << 30,
        shift: -7,
    }; // 1/256: input pixels in [0, 1)
    Model {
        input_shape: vec![64],
        input_quant: vec![Quant {
            scale,
            zero_point: -128,
        }],
        output_scale: Scale {
            mult: 1 << 30,
            shift: -7,
        },
        index_inputs: Vec::new(),
        nodes: vec![
            Node::Dense(Dense {
                input: 0,
                out_features: 10,
                out: Output {
                    requant: vec![Scale {
                        mult: 1 << 30,
                        shift: -9,
                    }],
                    zero_point: 0,
                    act_min: -128,
                    act_max: 127,
                },
                bias: (0..10).map(|c| -c * 50).collect(),
                weights,
            }),
            Node::Softmax(Softmax {
                input: 1,
                exp_table: Box::new(std::array::from_fn(|d| {
                    ((-(d as f64) / 12.0).exp() * 65535.0).round() as u16
                })),
            }),
        ],
    }
}

/// 64 pixels (0..=16) with row `row` fully bright.
fn drawing(row: usize) -> Vec<u8> {
    (0..64).map(|p| if p / 8 == row { 16 } else { 0 }).collect()
}

fn output_bytes(r: &ExecutionResult) -> Bytes {
    r.output().cloned().unwrap_or_default()
}

fn revert_error(r: &ExecutionResult) -> IMyelinErrors {
    match r {
        ExecutionResult::Revert { output, .. } => {
            IMyelinErrors::abi_decode(output).expect("an IMyelin error")
        }
        other => panic!("expected a revert, got {other:?}"),
    }
}

fn infer(id: B256, input: &[u8]) -> Bytes {
    IMyelin::inferCall {
        id,
        input: input.to_vec().into(),
    }
    .abi_encode()
    .into()
}

fn publish(model: &[u8]) -> Bytes {
    IMyelin::publishModelCall {
        model: model.to_vec().into(),
    }
    .abi_encode()
    .into()
}

/// Intrinsic gas of a call transaction under Prague/Osaka (EIP-7623 floor included), given
/// the gas used by execution.
fn tx_gas(calldata: &[u8], execution: u64) -> u64 {
    let zeros = calldata.iter().filter(|&&b| b == 0).count() as u64;
    let nonzeros = calldata.len() as u64 - zeros;
    let standard = 21_000 + 4 * zeros + 16 * nonzeros + execution;
    let floor = 21_000 + 10 * (zeros + 4 * nonzeros);
    standard.max(floor)
}

struct Setup {
    chain: Chain,
    model: Vec<u8>,
    id: B256,
    game: Address,
    probe: Address,
}

/// Block 1: publish the model, deploy DigitGame and Probe.
fn setup() -> Setup {
    let mut chain = Chain::new(MyelinConfig::default());
    let model = encode(&digit_model());
    let id = keccak256(&model);
    let game = chain.next_contract(1);
    let probe = chain.next_contract(2);
    let ctor = DigitGame::constructorCall {
        model_: id,
        minConfidence_: U256::from(5u64) * U256::from(10u64).pow(U256::from(17)),
    };
    let game_code = [
        artifact("DigitGame.sol", "DigitGame").to_vec(),
        ctor.abi_encode(),
    ]
    .concat();
    let results = chain.block(vec![
        Tx::call(MYELIN, publish(&model)),
        Tx::create(game_code),
        Tx::create(artifact("Probe.sol", "Probe")),
    ]);
    assert!(results.iter().all(|r| r.success), "{results:#?}");
    assert_eq!(results[0].logs, 1, "publish emits ModelPublished");
    assert_eq!(output_bytes(&results[0].result), Bytes::from(id.to_vec()));
    Setup {
        chain,
        model,
        id,
        game,
        probe,
    }
}

#[test]
fn contract_consumes_model_published_in_previous_block() {
    let Setup {
        mut chain,
        id,
        game,
        model,
        ..
    } = setup();
    let r = chain.block(vec![Tx::call(
        game,
        DigitGame::drawCall {
            pixels: drawing(0).into(),
        }
        .abi_encode(),
    )]);
    assert!(r[0].success, "{:?}", r[0].result);
    let ret =
        DigitGame::drawCall::abi_decode_returns(&output_bytes(&r[0].result)).expect("draw returns");
    assert_eq!((ret.digit, ret.scored), (0, true));
    assert_eq!(r[0].logs, 1, "Drawn event");
    println!(
        "DigitGame.draw in block 2: digit {} scored {} gas {}",
        ret.digit, ret.scored, r[0].gas_used
    );

    // The contract's verdict is exactly the engine's: recompute it off-chain.
    let valid = decode(&model).expect("valid");
    let input_quant = valid.model().input_quant[0];
    let x: Vec<i8> = drawing(3)
        .iter()
        .map(|&p| {
            fixed::quantize(
                alloy_primitives::I256::try_from(p as u64 * 10u64.pow(18) / 16).unwrap(),
                18,
                input_quant,
            )
        })
        .collect();
    let probs = Engine::new(valid).run(&x);
    let best = (0..probs.len())
        .max_by_key(|&i| (probs[i], std::cmp::Reverse(i)))
        .unwrap();
    let c = chain.call(
        game,
        DigitGame::classifyCall {
            pixels: drawing(3).into(),
        }
        .abi_encode(),
    );
    let ret =
        DigitGame::classifyCall::abi_decode_returns(&output_bytes(&c)).expect("classify returns");
    assert_eq!(ret.digit as usize, best);
    assert_eq!(ret.digit, 3);
    let expected_conf = U256::from((probs[best] as i64 + 128) as u64)
        * U256::from(10u64).pow(U256::from(18))
        / U256::from(256u64);
    assert_eq!(ret.confidence, expected_conf);

    // The game advanced: target is 1 now, a drawing of 0 no longer scores.
    let r = chain.block(vec![Tx::call(
        game,
        DigitGame::drawCall {
            pixels: drawing(0).into(),
        }
        .abi_encode(),
    )]);
    let ret = DigitGame::drawCall::abi_decode_returns(&output_bytes(&r[0].result)).unwrap();
    assert_eq!((ret.digit, ret.scored), (0, false));
    let _ = id;
}

#[test]
fn infer_returns_engine_output_and_charges_the_published_gas() {
    let Setup {
        mut chain,
        id,
        model,
        ..
    } = setup();
    let valid = decode(&model).unwrap();
    let input: Vec<u8> = (0..64).map(|i| (i * 7 % 256) as u8).collect();
    let expected =
        Engine::new(valid.clone()).run(&input.iter().map(|&b| b as i8).collect::<Vec<_>>());
    let data = infer(id, &input);
    let r = chain.block(vec![Tx::call(MYELIN, data.clone())]);
    assert!(r[0].success);
    let out = IMyelin::inferCall::abi_decode_returns(&output_bytes(&r[0].result)).unwrap();
    assert_eq!(
        out.to_vec(),
        expected.iter().map(|&v| v as u8).collect::<Vec<_>>()
    );
    let precompile_gas = gas::infer_call(&valid, model.len());
    assert_eq!(
        r[0].gas_used,
        tx_gas(&data, precompile_gas),
        "receipt gas = intrinsic + modelInfo.inferGas"
    );

    // modelInfo publishes that number.
    let info = chain.call(MYELIN, IMyelin::modelInfoCall { id }.abi_encode());
    let info = IMyelin::modelInfoCall::abi_decode_returns(&output_bytes(&info)).unwrap();
    assert_eq!(info.inferGas, precompile_gas);
    assert_eq!(
        (info.inputShape, info.outputShape, info.macs),
        (vec![64], vec![10], 64 * 16) // 10 outputs run (and are charged) as a 16-lane panel
    );
    println!(
        "infer: precompile gas {precompile_gas}, tx gas {}",
        r[0].gas_used
    );
}

#[test]
fn bad_input_reverts_with_abi_errors() {
    let Setup { mut chain, id, .. } = setup();
    let unknown = B256::repeat_byte(9);
    let mut bad_model = encode(&digit_model());
    bad_model.push(0);
    let r = chain.block(vec![
        Tx::call(MYELIN, infer(unknown, &[0; 64])),
        Tx::call(MYELIN, infer(id, &[0; 63])),
        Tx::call(MYELIN, publish(&bad_model)),
        Tx::call(MYELIN, vec![1, 2, 3]),
        Tx::call(MYELIN, infer(id, &[0; 64])).value(U256::from(1)),
    ]);
    assert!(r.iter().all(|x| !x.success));
    assert_eq!(
        revert_error(&r[0].result),
        IMyelinErrors::UnknownModel(IMyelin::UnknownModel { id: unknown })
    );
    assert_eq!(
        revert_error(&r[1].result),
        IMyelinErrors::InvalidInputLength(IMyelin::InvalidInputLength {
            expected: U256::from(64),
            actual: U256::from(63)
        })
    );
    // Exact revert bytes: the code of TrailingBytes, at the header (SPEC §8).
    assert_eq!(
        revert_error(&r[2].result),
        IMyelinErrors::InvalidModel(IMyelin::InvalidModel {
            code: Code::TrailingBytes.number(),
            node: HEADER,
        })
    );
    assert_eq!(
        revert_error(&r[3].result),
        IMyelinErrors::MalformedCall(IMyelin::MalformedCall {})
    );
    assert_eq!(
        revert_error(&r[4].result),
        IMyelinErrors::ValueNotAccepted(IMyelin::ValueNotAccepted {})
    );
}

#[test]
fn too_little_gas_halts_and_consumes_everything() {
    let Setup {
        mut chain,
        id,
        model,
        ..
    } = setup();
    let valid = decode(&model).unwrap();
    let data = infer(id, &[0; 64]);
    let limit = tx_gas(&data, gas::infer_call(&valid, model.len())) - 1;
    let r = chain.block(vec![Tx::call(MYELIN, data).gas(limit)]);
    assert!(
        matches!(
            r[0].result,
            ExecutionResult::Halt {
                reason: HaltReason::OutOfGas(OutOfGasError::Precompile),
                ..
            }
        ),
        "{:?}",
        r[0].result
    );
    assert_eq!(r[0].gas_used, limit);
}

#[test]
fn static_publish_delegatecall_and_reverted_publish() {
    let Setup {
        mut chain, probe, ..
    } = setup();
    // Another function: the same graph over inputs with another zero point. (The output
    // scale is not free to change: the final Softmax fixes it, SPEC §4.2.)
    let base = digit_model();
    let other = encode(&Model {
        input_quant: vec![Quant {
            zero_point: -127,
            ..base.input_quant[0]
        }],
        ..base
    });
    let other_id = keccak256(&other);
    // STATICCALL publishModel: refused.
    let c = chain.call(
        probe,
        Probe::staticForwardCall {
            to: MYELIN,
            data: publish(&other),
        }
        .abi_encode(),
    );
    let ret = Probe::staticForwardCall::abi_decode_returns(&output_bytes(&c)).unwrap();
    assert!(!ret.ok);
    assert_eq!(
        IMyelinErrors::abi_decode(&ret.ret).unwrap(),
        IMyelinErrors::WriteInStaticContext(IMyelin::WriteInStaticContext {})
    );
    // DELEGATECALL: refused.
    let c = chain.call(
        probe,
        Probe::delegateForwardCall {
            to: MYELIN,
            data: infer(other_id, &[0; 64]),
        }
        .abi_encode(),
    );
    let ret = Probe::delegateForwardCall::abi_decode_returns(&output_bytes(&c)).unwrap();
    assert_eq!(
        IMyelinErrors::abi_decode(&ret.ret).unwrap(),
        IMyelinErrors::IndirectCall(IMyelin::IndirectCall {})
    );
    // A publish inside a call that reverts is undone (journaled state).
    let r = chain.block(vec![
        Tx::call(
            probe,
            Probe::callThenRevertCall {
                to: MYELIN,
                data: publish(&other),
            }
            .abi_encode(),
        ),
        Tx::call(MYELIN, infer(other_id, &[0; 64])),
    ]);
    let forwarded = match &r[0].result {
        ExecutionResult::Revert { output, .. } => Probe::Forwarded::abi_decode(output).unwrap(),
        other => panic!("{other:?}"),
    };
    assert!(
        forwarded.ok,
        "the inner publish succeeded before the revert"
    );
    assert_eq!(
        revert_error(&r[1].result),
        IMyelinErrors::UnknownModel(IMyelin::UnknownModel { id: other_id })
    );
}

#[test]
fn chunked_upload_across_blocks() {
    let mut chain = Chain::new(MyelinConfig::default());
    // A model of ~70 KB, sent as three chunks of at most 24,576 bytes.
    let big = Model {
        input_shape: vec![256],
        nodes: vec![Node::Dense(Dense {
            input: 0,
            out_features: 272,
            out: Output {
                requant: vec![Scale {
                    mult: 1 << 30,
                    shift: -10,
                }],
                zero_point: 0,
                act_min: -128,
                act_max: 127,
            },
            bias: vec![0; 272],
            weights: (0..256 * 272)
                .map(|i| ((i * 31 % 255) - 127) as i8)
                .collect(),
        })],
        ..digit_model()
    };
    let bytes = encode(&big);
    assert!(bytes.len() > 65_536);
    let id = keccak256(&bytes);
    let chunks: Vec<&[u8]> = bytes.chunks(gas::MAX_CHUNK_BYTES).collect();
    assert_eq!(chunks.len(), 3);
    let write = |chunk: &[u8]| {
        IMyelin::writeChunkCall {
            chunk: chunk.to_vec().into(),
        }
        .abi_encode()
    };
    let commit = IMyelin::commitUploadCall {
        id,
        chunks: chunks.iter().map(keccak256).collect(),
    }
    .abi_encode();
    let io = |calldata: &[u8]| gas::CALL_BASE + gas::IO_BYTE * (calldata.len() as u64 + 32);

    // Block 1: two chunks, each stored as code at CREATE prices.
    let r = chain.block(vec![
        Tx::call(MYELIN, write(chunks[0])),
        Tx::call(MYELIN, write(chunks[1])),
    ]);
    assert!(r.iter().all(|x| x.success), "{r:#?}");
    let created = io(&write(chunks[0]))
        + gas::ACCOUNT_COLD
        + gas::CREATE_BASE
        + gas::STORE_BYTE * chunks[0].len() as u64;
    assert_eq!(r[0].gas_used, tx_gas(&write(chunks[0]), created));
    assert_eq!(
        IMyelin::writeChunkCall::abi_decode_returns(&output_bytes(&r[0].result)).unwrap(),
        keccak256(chunks[0])
    );

    // Block 2: committing early names the missing chunk; writing a chunk again only looks
    // it up (content-addressed: anyone's identical chunk is the same state).
    let r = chain.block(vec![
        Tx::call(MYELIN, commit.clone()),
        Tx::call(MYELIN, write(chunks[0])),
    ]);
    assert_eq!(
        revert_error(&r[0].result),
        IMyelinErrors::UploadMismatch(IMyelin::UploadMismatch {
            id: keccak256(chunks[2]),
            code: 2
        })
    );
    assert!(r[1].success);
    assert_eq!(
        r[1].gas_used,
        tx_gas(&write(chunks[0]), io(&write(chunks[0])) + gas::ACCOUNT_COLD)
    );

    // Block 3: the last chunk, then the commit, which reads the chunks like EXTCODECOPY.
    let r = chain.block(vec![
        Tx::call(MYELIN, write(chunks[2])),
        Tx::call(MYELIN, commit.clone()),
    ]);
    assert!(r.iter().all(|x| x.success), "{r:#?}");
    assert_eq!(
        IMyelin::commitUploadCall::abi_decode_returns(&output_bytes(&r[1].result)).unwrap(),
        id
    );
    assert_eq!(r[1].logs, 1, "ModelPublished");
    let reads: u64 = chunks
        .iter()
        .map(|c| gas::ACCOUNT_COLD + gas::COPY_WORD * gas::words(c.len()) as u64)
        .sum();
    let committed = io(&commit)
        + reads
        + gas::HASH_WORD * gas::words(bytes.len()) as u64
        + gas::SLOAD_COLD
        + gas::publish(bytes.len());
    assert_eq!(r[1].gas_used, tx_gas(&commit, committed));
    assert!(r[1].gas_used < 1 << 24, "fits an EIP-7825 transaction");
    println!(
        "upload of {} bytes: chunk writes {} gas each (block 1), commit {} gas",
        bytes.len(),
        r[0].gas_used,
        r[1].gas_used
    );

    let r = chain.block(vec![Tx::call(MYELIN, infer(id, &[1; 256]))]);
    assert!(r[0].success);
    assert_eq!(
        IMyelin::inferCall::abi_decode_returns(&output_bytes(&r[0].result))
            .unwrap()
            .len(),
        272
    );
}

#[test]
fn activation_block_and_restart() {
    let config = MyelinConfig {
        activation: Activation::Block(3),
        ..MyelinConfig::default()
    };
    let mut chain = Chain::new(config);
    let model = encode(&digit_model());
    let id = keccak256(&model);
    // Blocks 1 and 2: the address is an empty account; calls succeed and do nothing.
    let r = chain.block(vec![Tx::call(MYELIN, publish(&model))]);
    assert!(r[0].success && r[0].logs == 0 && output_bytes(&r[0].result).is_empty());
    chain.block(vec![]);
    // Block 3: active.
    let r = chain.block(vec![Tx::call(MYELIN, publish(&model))]);
    assert!(r[0].success && r[0].logs == 1);
    // A restarted node (fresh factory, empty cache) reads the model from state.
    chain.restart(config);
    let c = chain.call(MYELIN, infer(id, &[0; 64]));
    assert!(c.is_success(), "{c:?}");
    assert_eq!(
        IMyelin::inferCall::abi_decode_returns(&output_bytes(&c))
            .unwrap()
            .len(),
        10
    );
}
