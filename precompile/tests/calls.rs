//! Call-level rules of the precompile over an in-memory host: canonical calldata (aliased,
//! overlapping, huge or padded encodings rejected before anything is materialised, with the
//! memory of the call measured), uploads as content-addressed chunks at EVM prices, and the
//! model length slot priced like SLOAD with per-transaction warmth.

// The workspace denies unsafe code; this test's only unsafe is a counting global allocator
// that forwards to `System`, the one way to measure what a call allocates.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use alloy_primitives::{keccak256, Address, Bytes, B256, I256, U256};
use alloy_sol_types::abi::AbiDecoderConfig;
use alloy_sol_types::{SolCall, SolInterface};
use myelin_precompile::abi::{self, IMyelin, IMyelin::IMyelinCalls};
use myelin_precompile::memhost::MemHost;
use myelin_precompile::model::{Dense, Node, Output, Scale, MULT_MIN};
use myelin_precompile::precompile::{addr, UploadError};
use myelin_precompile::random::{self, Rng};
use myelin_precompile::{decode, encode, gas, limits, CallContext, Myelin, Outcome};

/// Counts the bytes allocated and not yet freed by the current thread, and their peak, so a
/// test can bound the memory one call takes (tests run in parallel threads).
struct PeakAlloc;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| {
            l.set(l.get() + layout.size() as isize);
            let _ = PEAK.try_with(|p| p.set(p.get().max(l.get())));
        });
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Runs `f` and returns its result with the peak of bytes it had allocated at once.
fn peak_memory<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let out = f();
    (out, (PEAK.with(Cell::get) - base) as usize)
}

const CTX: CallContext = CallContext {
    caller: Address::ZERO,
    value: U256::ZERO,
    is_static: false,
    is_direct: true,
    gas_limit: 1 << 40,
};

fn call(m: &Myelin, host: &mut MemHost, data: &[u8]) -> Outcome {
    m.call(host, &CTX, data).unwrap_or_else(|e| match e {})
}

fn success(outcome: Outcome) -> (u64, Bytes) {
    match outcome {
        Outcome::Success { gas_used, output } => (gas_used, output),
        other => panic!("expected success, got {other:?}"),
    }
}

fn reverted(outcome: Outcome) -> (u64, IMyelin::IMyelinErrors) {
    match outcome {
        Outcome::Revert { gas_used, output } => (
            gas_used,
            IMyelin::IMyelinErrors::abi_decode(&output).expect("an IMyelin error"),
        ),
        other => panic!("expected a revert, got {other:?}"),
    }
}

fn io(calldata: usize, returndata: usize) -> u64 {
    gas::CALL_BASE + gas::IO_BYTE * (calldata + returndata) as u64
}

fn word(v: usize) -> [u8; 32] {
    U256::from(v).to_be_bytes()
}

fn malformed() -> IMyelin::IMyelinErrors {
    IMyelin::IMyelinErrors::MalformedCall(IMyelin::MalformedCall {})
}

/// `inferBatch(id, inputs)` with every element's offset given explicitly (relative to the
/// first element head, as the ABI counts them) and `tail` appended after the heads.
fn batch_with_offsets(offsets: &[usize], tail: &[u8]) -> Vec<u8> {
    let mut d = IMyelin::inferBatchCall::SELECTOR.to_vec();
    d.extend_from_slice(&[7; 32]); // id
    d.extend_from_slice(&word(64)); // offset of `inputs`
    d.extend_from_slice(&word(offsets.len()));
    for &o in offsets {
        d.extend_from_slice(&word(o));
    }
    d.extend_from_slice(tail);
    d
}

/// A `bytes` tail: length word, data, zero padding.
fn bytes_tail(data: &[u8]) -> Vec<u8> {
    let mut t = word(data.len()).to_vec();
    t.extend_from_slice(data);
    t.resize(32 + data.len().div_ceil(32) * 32, 0);
    t
}

/// One call of every `IMyelin` function, with sizes drawn from `rng`.
fn sample_calls(rng: &mut Rng) -> Vec<IMyelinCalls> {
    let blob = |rng: &mut Rng| -> Bytes {
        let n = rng.range(0, 70) as usize;
        Bytes::from(
            rng.bytes(n)
                .into_iter()
                .map(|b| b as u8)
                .collect::<Vec<u8>>(),
        )
    };
    let id = B256::repeat_byte(rng.range(0, 255) as u8);
    let n = rng.range(0, 4) as usize;
    vec![
        IMyelinCalls::publishModel(IMyelin::publishModelCall { model: blob(rng) }),
        IMyelinCalls::writeChunk(IMyelin::writeChunkCall { chunk: blob(rng) }),
        IMyelinCalls::commitUpload(IMyelin::commitUploadCall {
            id,
            chunks: (0..n).map(|i| B256::repeat_byte(i as u8)).collect(),
        }),
        IMyelinCalls::infer(IMyelin::inferCall {
            id,
            input: blob(rng),
        }),
        IMyelinCalls::inferFixed(IMyelin::inferFixedCall {
            id,
            input: (0..n)
                .map(|i| I256::try_from(i as i64 - 2).unwrap())
                .collect(),
            decimals: rng.range(0, 255) as u8,
        }),
        IMyelinCalls::inferBatch(IMyelin::inferBatchCall {
            id,
            inputs: (0..n).map(|_| blob(rng)).collect(),
        }),
        IMyelinCalls::modelInfo(IMyelin::modelInfoCall { id }),
    ]
}

#[test]
fn every_function_accepts_its_canonical_encoding() {
    let mut rng = Rng::new(1);
    let calls = sample_calls(&mut rng);
    let mut selectors: Vec<[u8; 4]> = calls.iter().map(|c| c.selector()).collect();
    selectors.sort();
    assert_eq!(
        selectors,
        IMyelinCalls::SELECTORS,
        "one sample per function"
    );
    for _ in 0..200 {
        for c in sample_calls(&mut rng) {
            let data = c.abi_encode();
            assert_eq!(abi::decode_call(&data), Some(c), "{}", hex::encode(&data));
        }
    }
}

/// Random corruptions of valid calldata: whatever `decode_call` accepts re-encodes to the
/// very same bytes (one encoding per call), and it agrees with alloy's strict decoder.
#[test]
fn only_the_canonical_encoding_is_accepted() {
    let mut rng = Rng::new(2);
    let strict = AbiDecoderConfig::new().strict(true);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..3_000 {
        for c in sample_calls(&mut rng) {
            let mut d = c.abi_encode();
            let words = (d.len() - 4) / 32;
            match rng.range(0, 5) {
                0 => {
                    let i = rng.range(0, d.len() as i64 - 1) as usize;
                    d[i] ^= 1u8 << rng.range(0, 7);
                }
                1 if words > 0 => {
                    // Replace a word with a small value: offsets, lengths and counts.
                    let w = rng.range(0, words as i64 - 1) as usize;
                    let v = rng.range(0, 2 * d.len() as i64) as usize;
                    d[4 + 32 * w..4 + 32 * (w + 1)].copy_from_slice(&word(v));
                }
                2 => d.truncate(rng.range(0, d.len() as i64 - 1) as usize),
                3 => d.extend(std::iter::repeat_n(0, rng.range(1, 64) as usize)),
                _ => {}
            }
            let ours = abi::decode_call(&d);
            if let Some(c) = &ours {
                assert_eq!(c.abi_encode(), d);
                accepted += 1;
            } else {
                rejected += 1;
            }
            assert_eq!(
                ours.is_some(),
                IMyelinCalls::abi_decode_with_config(&d, strict).is_ok(),
                "{}",
                hex::encode(&d)
            );
        }
    }
    assert!(
        accepted > 1_000 && rejected > 1_000,
        "{accepted} {rejected}"
    );
}

#[test]
fn aliased_batch_is_malformed_before_anything_is_materialised() {
    // 5,600 inputs whose offsets all point at one 178 KB blob: decoding it naively copies
    // ~1 GB. The walk rejects it at the second offset, having allocated nothing.
    let n = 5_600;
    let blob = bytes_tail(&vec![0x55; 178_000]);
    let data = batch_with_offsets(&vec![32 * n; n], &blob);
    let m = Myelin::new(1);
    let mut host = MemHost::default();
    let (outcome, peak) = peak_memory(|| call(&m, &mut host, &data));
    let (gas_used, err) = reverted(outcome);
    assert_eq!(err, malformed());
    assert_eq!(gas_used, io(data.len(), 0));
    assert!(peak < 4_096, "the call allocated {peak} bytes");
    // Beyond MAX_BATCH too: canonical first, so still MalformedCall.
    assert!(n > gas::MAX_BATCH);
}

#[test]
fn overlapping_gapped_and_reordered_offsets_are_malformed() {
    let a = bytes_tail(&[1; 40]); // 96 bytes
    let b = bytes_tail(&[2; 8]); // 64 bytes
    let tail = [a.clone(), b.clone()].concat();
    let canonical = batch_with_offsets(&[64, 64 + 96], &tail);
    assert!(abi::decode_call(&canonical).is_some());
    for offsets in [
        [64, 64],           // aliased
        [64, 64 + 32],      // the second starts inside the first
        [96, 96 + 96],      // a gap before the first
        [64 + 64, 64],      // reordered
        [64, 64 + 96 + 32], // a gap between them
    ] {
        let d = batch_with_offsets(&offsets, &[tail.clone(), vec![0; 32]].concat());
        assert_eq!(abi::decode_call(&d), None, "{offsets:?}");
        let d = batch_with_offsets(&offsets, &tail);
        assert_eq!(abi::decode_call(&d), None, "{offsets:?}");
    }
    // The top-level offset too: `inputs` must start right after the two heads.
    let mut d = canonical.clone();
    d[4 + 32..4 + 64].copy_from_slice(&word(96));
    assert_eq!(abi::decode_call(&d), None);
}

#[test]
fn huge_counts_and_lengths_are_malformed_at_once() {
    let m = Myelin::new(1);
    let mut host = MemHost::default();
    // A count whose heads alone would overrun the calldata, one beyond 2^64, one at 2^255.
    for count in [U256::from(1_000_000), U256::from(1u128 << 64), U256::MAX] {
        let mut d = batch_with_offsets(&[], &[0; 64]);
        d[4 + 64..4 + 96].copy_from_slice(&count.to_be_bytes::<32>());
        let (outcome, peak) = peak_memory(|| call(&m, &mut host, &d));
        assert_eq!(reverted(outcome).1, malformed(), "{count}");
        assert!(peak < 4_096);
    }
    // A `bytes` length past the end.
    let mut d = IMyelin::inferCall {
        id: B256::ZERO,
        input: vec![1; 10].into(),
    }
    .abi_encode();
    d[4 + 64..4 + 96].copy_from_slice(&word(33));
    assert_eq!(abi::decode_call(&d), None);
}

#[test]
fn trailing_bytes_and_dirty_padding_are_malformed() {
    let infer = IMyelin::inferCall {
        id: B256::ZERO,
        input: vec![1; 5].into(),
    }
    .abi_encode();
    assert!(abi::decode_call(&infer).is_some());
    for extra in [vec![0u8], vec![0; 32]] {
        assert_eq!(abi::decode_call(&[infer.clone(), extra].concat()), None);
    }
    let mut dirty = infer.clone();
    *dirty.last_mut().unwrap() = 1; // padding after the 5 input bytes
    assert_eq!(abi::decode_call(&dirty), None);
    let fixed = IMyelin::inferFixedCall {
        id: B256::ZERO,
        input: vec![I256::ONE],
        decimals: 18,
    }
    .abi_encode();
    assert!(abi::decode_call(&fixed).is_some());
    let mut dirty = fixed.clone();
    dirty[4 + 64] = 1; // a high byte of the uint8 `decimals`
    assert_eq!(abi::decode_call(&dirty), None);
    let mut dirty = fixed;
    dirty[4 + 32] = 0x80; // the high byte of an offset
    assert_eq!(abi::decode_call(&dirty), None);
    // Too short for a selector, an unknown selector.
    assert_eq!(abi::decode_call(&[1, 2, 3]), None);
    assert_eq!(abi::decode_call(&[0xde, 0xad, 0xbe, 0xef]), None);
}

#[test]
fn batch_too_large_comes_after_the_canonical_check() {
    let inputs: Vec<Bytes> = vec![Bytes::from(vec![1u8]); gas::MAX_BATCH + 1];
    let data = IMyelin::inferBatchCall {
        id: B256::ZERO,
        inputs,
    }
    .abi_encode();
    let m = Myelin::new(1);
    let mut host = MemHost::default();
    let (gas_used, err) = reverted(call(&m, &mut host, &data));
    assert_eq!(
        err,
        IMyelin::IMyelinErrors::BatchTooLarge(IMyelin::BatchTooLarge {
            count: U256::from(gas::MAX_BATCH + 1),
            max: U256::from(gas::MAX_BATCH),
        })
    );
    assert_eq!(gas_used, io(data.len(), 0));
}

/// A model, published through `publishModel` in its own transaction.
fn published(seed: u64) -> (Myelin, MemHost, Vec<u8>, B256) {
    let model = encode(&random::model(&mut Rng::new(seed), 4));
    let (m, mut host) = (Myelin::new(4), MemHost::default());
    let data = IMyelin::publishModelCall {
        model: model.clone().into(),
    }
    .abi_encode();
    let (gas_used, out) = success(call(&m, &mut host, &data));
    let id = keccak256(&model);
    assert_eq!(out.as_ref(), id.as_slice());
    assert_eq!(
        gas_used,
        io(data.len(), 32) + gas::SLOAD_COLD + gas::publish(model.len())
    );
    assert_eq!(
        gas::publish(model.len()),
        gas::CREATE_BASE
            + gas::STORE_BYTE * model.len() as u64
            + gas::SSTORE_SET
            + gas::load(model.len(), false)
    );
    host.new_tx();
    (m, host, model, id)
}

#[test]
fn the_model_length_slot_is_priced_like_sload() {
    let (m, mut host, model, id) = published(11);
    // Publishing again: only the (cold, then warm) slot read.
    let data = IMyelin::publishModelCall {
        model: model.clone().into(),
    }
    .abi_encode();
    let logs = host.logs.len();
    assert_eq!(
        success(call(&m, &mut host, &data)).0,
        io(data.len(), 32) + gas::SLOAD_COLD
    );
    assert_eq!(
        success(call(&m, &mut host, &data)).0,
        io(data.len(), 32) + gas::SLOAD_WARM
    );
    assert_eq!(host.logs.len(), logs, "no event for an existing model");

    // An unknown model costs a cold SLOAD before UnknownModel.
    host.new_tx();
    let unknown = IMyelin::inferCall {
        id: B256::repeat_byte(3),
        input: Bytes::new(),
    }
    .abi_encode();
    let (gas_used, _) = reverted(call(&m, &mut host, &unknown));
    assert_eq!(gas_used, io(unknown.len(), 0) + gas::SLOAD_COLD);
    // A reverted call raises no warmth: the same call is cold again.
    assert_eq!(reverted(call(&m, &mut host, &unknown)).0, gas_used);

    // A load that reverts afterwards (wrong input length) leaves the model cold too, so the
    // next infer in the transaction pays exactly `modelInfo.inferGas`.
    let valid = decode(&model).unwrap();
    let a = valid.analysis();
    let infer = |n: usize| {
        IMyelin::inferCall {
            id,
            input: vec![0; n].into(),
        }
        .abi_encode()
    };
    let (gas_used, _) = reverted(call(&m, &mut host, &infer(a.input_len() + 1)));
    assert_eq!(
        gas_used,
        io(infer(a.input_len() + 1).len(), 0)
            + gas::SLOAD_COLD
            + gas::load(model.len(), false)
            + gas::prepare(a)
    );
    let cold = success(call(&m, &mut host, &infer(a.input_len()))).0;
    assert_eq!(cold, gas::infer_call(&valid, model.len()));
    let warm = success(call(&m, &mut host, &infer(a.input_len()))).0;
    assert_eq!(
        cold - warm,
        gas::SLOAD_COLD - gas::SLOAD_WARM + gas::load(model.len(), false) + gas::prepare(a)
            - gas::LOAD_WARM
    );
}

fn write_chunk(chunk: &[u8]) -> Vec<u8> {
    IMyelin::writeChunkCall {
        chunk: chunk.to_vec().into(),
    }
    .abi_encode()
}

fn commit(id: B256, chunks: &[&[u8]]) -> Vec<u8> {
    IMyelin::commitUploadCall {
        id,
        chunks: chunks.iter().map(keccak256).collect(),
    }
    .abi_encode()
}

fn upload_error(id: B256, code: UploadError) -> IMyelin::IMyelinErrors {
    IMyelin::IMyelinErrors::UploadMismatch(IMyelin::UploadMismatch {
        id,
        code: code as u16,
    })
}

#[test]
fn chunks_are_stored_once_as_code_at_create_prices() {
    let m = Myelin::new(1);
    let mut host = MemHost::default();
    let chunk = vec![0xab; 1_000];
    let data = write_chunk(&chunk);
    let (gas_used, out) = success(call(&m, &mut host, &data));
    let chunk_id = keccak256(&chunk);
    assert_eq!(
        IMyelin::writeChunkCall::abi_decode_returns(&out).unwrap(),
        chunk_id
    );
    assert_eq!(
        gas_used,
        io(data.len(), 32) + gas::ACCOUNT_COLD + gas::CREATE_BASE + gas::STORE_BYTE * 1_000
    );
    assert_eq!(
        host.code.get(&addr::chunk(chunk_id)),
        Some(&Bytes::from(chunk))
    );
    assert!(host.storage.is_empty(), "no storage slot for a chunk");
    // Idempotent: written again, only looked up.
    host.new_tx();
    assert_eq!(
        success(call(&m, &mut host, &data)).0,
        io(data.len(), 32) + gas::ACCOUNT_COLD
    );
    assert_eq!(host.code.len(), 1);

    // Sizes outside 1..=MAX_CHUNK_BYTES, checked before any state access.
    for len in [0, gas::MAX_CHUNK_BYTES + 1] {
        let chunk = vec![1; len];
        let data = write_chunk(&chunk);
        let (gas_used, err) = reverted(call(&m, &mut host, &data));
        assert_eq!(err, upload_error(keccak256(&chunk), UploadError::ChunkSize));
        assert_eq!(gas_used, io(data.len(), 32));
    }
    let largest = vec![2; gas::MAX_CHUNK_BYTES];
    success(call(&m, &mut host, &write_chunk(&largest)));

    // A write under STATICCALL.
    let ctx = CallContext {
        is_static: true,
        ..CTX
    };
    let out = m.call(&mut host, &ctx, &write_chunk(&[5; 10]));
    assert_eq!(
        reverted(out.unwrap_or_else(|e| match e {})).1,
        IMyelin::IMyelinErrors::WriteInStaticContext(IMyelin::WriteInStaticContext {})
    );
}

#[test]
fn commit_reads_chunks_at_extcodecopy_prices_and_publishes() {
    let model = encode(&random::model(&mut Rng::new(21), 4));
    let id = keccak256(&model);
    let parts: Vec<&[u8]> = model.chunks(model.len().div_ceil(3)).collect();
    let m = Myelin::new(1);
    let mut host = MemHost::default();
    for p in &parts[..2] {
        success(call(&m, &mut host, &write_chunk(p)));
    }
    // The third chunk is missing.
    let data = commit(id, &parts);
    let (gas_used, err) = reverted(call(&m, &mut host, &data));
    assert_eq!(
        err,
        upload_error(keccak256(parts[2]), UploadError::UnknownChunk)
    );
    let read = |p: &&[u8]| gas::ACCOUNT_COLD + gas::COPY_WORD * gas::words(p.len()) as u64;
    assert_eq!(
        gas_used,
        io(data.len(), 32) + read(&parts[0]) + read(&parts[1]) + gas::ACCOUNT_COLD
    );
    success(call(&m, &mut host, &write_chunk(parts[2])));
    // Wrong order: the hash check fails after every chunk was read and hashed.
    let swapped = commit(id, &[parts[1], parts[0], parts[2]]);
    let (gas_used, err) = reverted(call(&m, &mut host, &swapped));
    assert_eq!(err, upload_error(id, UploadError::HashMismatch));
    let reads: u64 = parts.iter().map(read).sum();
    let hash = gas::HASH_WORD * gas::words(model.len()) as u64;
    assert_eq!(gas_used, io(swapped.len(), 32) + reads + hash);
    assert_eq!(host.storage.len(), 0, "nothing published");

    host.new_tx();
    let (gas_used, out) = success(call(&m, &mut host, &data));
    assert_eq!(
        IMyelin::commitUploadCall::abi_decode_returns(&out).unwrap(),
        id
    );
    assert_eq!(
        gas_used,
        io(data.len(), 32) + reads + hash + gas::SLOAD_COLD + gas::publish(model.len())
    );
    assert_eq!(
        host.code.get(&addr::model(id)),
        Some(&Bytes::from(model.clone()))
    );
    assert_eq!(host.storage.len(), 1, "only the model's length slot");
    assert_eq!(host.logs.len(), 1, "ModelPublished");
    // The model runs like a published one.
    let valid = decode(&model).unwrap();
    let a = valid.analysis();
    host.new_tx();
    let infer = IMyelin::inferCall {
        id,
        input: vec![3; a.input_len()].into(),
    }
    .abi_encode();
    assert_eq!(
        success(call(&Myelin::new(1), &mut host, &infer)).0,
        gas::infer_call(&valid, model.len())
    );
    // Committing again: nothing more than the reads, the hash and the slot lookup.
    let (gas_used, _) = success(call(&m, &mut host, &data));
    assert_eq!(
        gas_used,
        io(data.len(), 32) + reads + hash + gas::SLOAD_WARM
    );
}

#[test]
fn commit_stops_at_16_mib_before_hashing() {
    let m = Myelin::new(1);
    let mut host = MemHost::default();
    let chunk = vec![9u8; gas::MAX_CHUNK_BYTES];
    success(call(&m, &mut host, &write_chunk(&chunk)));
    let n = limits::MAX_MODEL_BYTES / gas::MAX_CHUNK_BYTES + 1;
    let id = B256::repeat_byte(1);
    let data = commit(id, &vec![chunk.as_slice(); n]);
    let ((gas_used, err), peak) = peak_memory(|| reverted(call(&m, &mut host, &data)));
    assert_eq!(err, upload_error(id, UploadError::TooLarge));
    let read = gas::ACCOUNT_COLD + gas::COPY_WORD * gas::words(chunk.len()) as u64;
    assert_eq!(
        gas_used,
        io(data.len(), 32) + (n - 1) as u64 * read + gas::ACCOUNT_COLD
    );
    // Chunks are shared, not copied: the call holds little more than its decoded arguments.
    assert!(
        peak < 4 * data.len(),
        "{peak} bytes for {} of calldata",
        data.len()
    );
}

#[test]
fn an_empty_upload_is_an_invalid_model() {
    let m = Myelin::new(1);
    let mut host = MemHost::default();
    let id = keccak256(b"");
    let (_, err) = reverted(call(&m, &mut host, &commit(id, &[])));
    assert!(
        matches!(err, IMyelin::IMyelinErrors::InvalidModel(_)),
        "{err:?}"
    );
    let (_, err) = reverted(call(&m, &mut host, &commit(B256::ZERO, &[])));
    assert_eq!(err, upload_error(B256::ZERO, UploadError::HashMismatch));
}

#[test]
fn outputs_are_charged_before_the_inference_runs() {
    let (m, mut host, model, id) = published(12);
    let valid = decode(&model).unwrap();
    let a = valid.analysis();
    let data = IMyelin::inferBatchCall {
        id,
        inputs: vec![Bytes::from(vec![0u8; a.input_len()]); 4],
    }
    .abi_encode();
    let before_inference = io(data.len(), 0)
        + gas::SLOAD_COLD
        + gas::load(model.len(), false)
        + gas::prepare(a)
        + gas::IO_BYTE * (64 + 4 * (64 + 32 * gas::words(a.output_len()))) as u64;
    // With exactly enough for the returndata and no inference: out of gas, nothing run.
    let ctx = CallContext {
        gas_limit: before_inference + gas::inference(&valid) - 1,
        ..CTX
    };
    assert_eq!(m.call(&mut host, &ctx, &data), Ok(Outcome::OutOfGas));
    let (gas_used, out) = success(call(&m, &mut host, &data));
    assert_eq!(gas_used, before_inference + 4 * gas::inference(&valid));
    assert_eq!(
        IMyelin::inferBatchCall::abi_decode_returns(&out)
            .unwrap()
            .len(),
        4
    );
}

/// A warm load costs `LOAD_WARM` because the model is still prepared: a transaction pins the
/// engines it loaded, so a one-model cache that evicts them between calls does not make the
/// node parse again (which would cost ~1,600 ns per gas, the attack of loading more models
/// than the node caches and then cycling through them warm).
#[test]
fn warm_loads_never_parse_again_within_a_transaction() {
    let m = Myelin::new(1);
    let mut host = MemHost::default();
    // Dense 128 -> 128 with distinct weights: 16 KiB, so a parse shows in the allocations.
    let dense = |seed: u64| {
        let mut rng = Rng::new(seed);
        let mut m = decode(&encode(&random::model(&mut rng, 1)))
            .unwrap()
            .into_model();
        m.input_shape = vec![128];
        m.nodes = vec![Node::Dense(Dense {
            input: 0,
            out_features: 128,
            out: Output {
                requant: vec![Scale {
                    mult: MULT_MIN,
                    shift: -8,
                }],
                zero_point: 0,
                act_min: -128,
                act_max: 127,
            },
            bias: vec![0; 128],
            weights: rng.bytes(128 * 128),
        })];
        encode(&m)
    };
    let models: Vec<Vec<u8>> = (21..24).map(dense).collect();
    for model in &models {
        let data = IMyelin::publishModelCall {
            model: model.clone().into(),
        }
        .abi_encode();
        success(call(&m, &mut host, &data));
    }
    host.new_tx();
    let info = |model: &[u8]| {
        IMyelin::modelInfoCall {
            id: keccak256(model),
        }
        .abi_encode()
    };
    // Cold loads: each parses (its decoded model and engine stay allocated: pinned).
    let cold: Vec<usize> = models
        .iter()
        .map(|model| peak_memory(|| success(call(&m, &mut host, &info(model)))).1)
        .collect();
    // Warm loads cycling through all three, each evicted from the LRU by the next.
    for _ in 0..2 {
        for (model, cold) in models.iter().zip(&cold) {
            let ((gas_used, out), peak) =
                peak_memory(|| success(call(&m, &mut host, &info(model))));
            assert_eq!(
                gas_used,
                io(info(model).len(), out.len()) + gas::SLOAD_WARM + gas::LOAD_WARM,
                "a warm load"
            );
            assert!(
                peak * 4 < *cold,
                "a warm load allocated {peak} bytes, its cold load {cold}: it parsed again"
            );
        }
    }
    // A new transaction drops the pins (at its first call, here a model the LRU still holds):
    // the others parse again.
    host.new_tx();
    success(call(&m, &mut host, &info(&models[2])));
    let (_, peak) = peak_memory(|| success(call(&m, &mut host, &info(&models[0]))));
    assert!(peak * 4 >= cold[0], "the next transaction parses again");
}

/// A cold load (read, parse, validate, prepare) allocates at most 24 bytes per gas it pays
/// (SPEC §7): measured on a 1 MiB Dense layer, the largest share of weights per byte.
#[test]
fn a_cold_load_allocates_at_most_24_bytes_per_gas() {
    let mut rng = Rng::new(5);
    let mut m = decode(&encode(&random::model(&mut rng, 1)))
        .unwrap()
        .into_model();
    m.input_shape = vec![1024];
    m.nodes = vec![Node::Dense(Dense {
        input: 0,
        out_features: 1024,
        out: Output {
            requant: vec![Scale {
                mult: MULT_MIN,
                shift: -12,
            }],
            zero_point: 0,
            act_min: -128,
            act_max: 127,
        },
        bias: vec![0; 1024],
        weights: rng.bytes(1024 * 1024),
    })];
    let model = encode(&m);
    let (myelin, mut host) = (Myelin::new(1), MemHost::default());
    let publish = IMyelin::publishModelCall {
        model: model.clone().into(),
    }
    .abi_encode();
    success(call(&myelin, &mut host, &publish));
    host.new_tx();
    let info = IMyelin::modelInfoCall {
        id: keccak256(&model),
    }
    .abi_encode();
    // A fresh node: nothing cached, so the call parses and prepares.
    let ((gas_used, _), peak) = peak_memory(|| success(call(&Myelin::new(1), &mut host, &info)));
    let per_gas = peak as f64 / gas_used as f64;
    assert!(
        per_gas <= 24.0,
        "a cold load of {} bytes allocated {peak} bytes for {gas_used} gas ({per_gas:.1} B/gas)",
        model.len()
    );
    println!("cold load: {peak} bytes for {gas_used} gas = {per_gas:.1} B/gas");
}

/// A model with index inputs end to end: ids follow the int8 bytes (big-endian uint16s) in
/// `infer` and `inferBatch` and follow the fixed-point values as integers in `inferFixed`;
/// the first bad id (counted over all index inputs) reverts with `InvalidIndex` before any
/// inference gas; `modelInfo` lists the limits and `inferGas` prices the ids' calldata.
#[test]
fn index_inputs_travel_after_the_int8_input() {
    use myelin_precompile::input::{self, Input};
    let mut rng = Rng::new(5);
    let model = random::indexed_model(&mut rng, 3);
    let bytes = encode(&model);
    let valid = decode(&bytes).unwrap();
    let (m, mut host) = (Myelin::new(4), MemHost::default());
    let publish = IMyelin::publishModelCall {
        model: bytes.clone().into(),
    };
    let (_, out) = success(call(&m, &mut host, &publish.abi_encode()));
    let id = B256::from_slice(&out);
    host.new_tx();

    let x = Input {
        values: random::input(&mut rng, valid.analysis().input_len()),
        ids: random::ids(&mut rng, &model),
    };
    let raw = input::encode(&x);
    assert_eq!(raw.len(), input::byte_len(&valid));
    let infer = |input: Vec<u8>| {
        IMyelin::inferCall {
            id,
            input: input.into(),
        }
        .abi_encode()
    };
    let (gas_used, out) = success(call(&m, &mut host, &infer(raw.clone())));
    let want = myelin_precompile::reference::run_input(&valid, &x);
    let got = IMyelin::inferCall::abi_decode_returns(&out).unwrap();
    assert_eq!(got.iter().map(|&b| b as i8).collect::<Vec<_>>(), want);
    assert_eq!(gas_used, gas::infer_call(&valid, bytes.len()));

    // The last id set to its limit: InvalidIndex at its position, with its value.
    let limits: Vec<u16> = model
        .index_inputs
        .iter()
        .flat_map(|i| i.limits.clone())
        .collect();
    let last = limits.len() - 1;
    let mut bad = raw.clone();
    let at = bad.len() - 2;
    bad[at..].copy_from_slice(&limits[last].to_be_bytes());
    let invalid = |position: usize, value: I256| {
        IMyelin::IMyelinErrors::InvalidIndex(IMyelin::InvalidIndex {
            position: U256::from(position),
            value,
        })
    };
    let limit = I256::from_raw(U256::from(limits[last]));
    let (_, e) = reverted(call(&m, &mut host, &infer(bad.clone())));
    assert_eq!(e, invalid(last, limit));
    let (_, e) = reverted(call(&m, &mut host, &infer(raw[..raw.len() - 1].to_vec())));
    assert_eq!(
        e,
        IMyelin::IMyelinErrors::InvalidInputLength(IMyelin::InvalidInputLength {
            expected: U256::from(raw.len()),
            actual: U256::from(raw.len() - 1),
        })
    );
    // In a batch, entries are checked in order: the second one's bad id.
    let batch = IMyelin::inferBatchCall {
        id,
        inputs: vec![raw.clone().into(), bad.into()],
    };
    let (_, e) = reverted(call(&m, &mut host, &batch.abi_encode()));
    assert_eq!(e, invalid(last, limit));

    // inferFixed: ids are plain integers after the values; a negative one is refused.
    let n = valid.analysis().input_len();
    let mut fixed: Vec<I256> = vec![I256::ZERO; n];
    fixed.extend(
        x.ids
            .iter()
            .flatten()
            .map(|&v| I256::from_raw(U256::from(v))),
    );
    let inf = |input: Vec<I256>| {
        IMyelin::inferFixedCall {
            id,
            input,
            decimals: 0,
        }
        .abi_encode()
    };
    success(call(&m, &mut host, &inf(fixed.clone())));
    fixed[n] = I256::MINUS_ONE;
    let (_, e) = reverted(call(&m, &mut host, &inf(fixed)));
    assert_eq!(e, invalid(0, I256::MINUS_ONE));

    let info = IMyelin::modelInfoCall { id }.abi_encode();
    let (_, out) = success(call(&m, &mut host, &info));
    let info = IMyelin::modelInfoCall::abi_decode_returns(&out).unwrap();
    let want: Vec<Vec<u16>> = model
        .index_inputs
        .iter()
        .map(|i| i.limits.clone())
        .collect();
    assert_eq!(info.indexLimits, want);
}
