//! The precompile's dispatch: ABI decoding, gas, models as state, inference.
//!
//! It is written against [`Host`], the few state operations it needs, so the very same code
//! runs inside the EVM ([`crate::evm`], over alloy-evm's `EvmInternals`) and in
//! `myelin precompile` (over a directory), which is what Foundry tests call. Outcomes:
//! success, revert with an `IMyelin` custom error (bad input of any kind), or out-of-gas.
//! Only a failure of the node's own database is fatal.

use std::sync::Arc;

use alloy_primitives::{keccak256, Address, Bytes, Keccak256, B256, I256, U256};
use alloy_sol_types::{SolCall, SolError, SolEvent};

use crate::abi::{
    self,
    IMyelin::{self, IMyelinCalls},
};
use crate::cache::{self, ModelCache};
use crate::engine::Engine;
use crate::input::{self, Input, InputError};
use crate::{codec, fixed, gas};

/// The node's state, as the precompile sees it. Everything here is journaled by the EVM:
/// a revert undoes it.
pub trait Host {
    type Error: std::fmt::Display;
    /// A storage slot of the precompile's own account.
    fn sload(&mut self, key: U256) -> Result<U256, Self::Error>;
    fn sstore(&mut self, key: U256, value: U256) -> Result<(), Self::Error>;
    /// Transient (per-transaction) storage of the precompile's account.
    fn tload(&mut self, key: U256) -> U256;
    fn tstore(&mut self, key: U256, value: U256);
    /// The data kept as the code of account `at` (models and upload chunks, see [`addr`]),
    /// or `None` if the account has no code.
    fn code(&mut self, at: Address) -> Result<Option<Bytes>, Self::Error>;
    /// Keeps `data` (not empty) as the code of account `at`, which has none yet.
    fn store_code(&mut self, at: Address, data: Bytes) -> Result<(), Self::Error>;
    fn log(&mut self, topics: Vec<B256>, data: Bytes);
}

/// Who calls and how.
#[derive(Clone, Copy, Debug)]
pub struct CallContext {
    pub caller: Address,
    pub value: U256,
    pub is_static: bool,
    /// `false` under DELEGATECALL/CALLCODE.
    pub is_direct: bool,
    pub gas_limit: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success {
        gas_used: u64,
        output: Bytes,
    },
    Revert {
        gas_used: u64,
        output: Bytes,
    },
    /// Out of gas: all gas given to the call is consumed.
    OutOfGas,
}

/// Why a call stops early: a revert (ABI error bytes), out of gas, or a fatal host error.
enum Stop<E> {
    Revert(Bytes),
    OutOfGas,
    Host(E),
}

impl<E> From<Bytes> for Stop<E> {
    fn from(b: Bytes) -> Self {
        Stop::Revert(b)
    }
}

fn revert<E>(err: impl SolError) -> Stop<E> {
    Stop::Revert(err.abi_encode().into())
}

/// Gas accounting for one call: every charge is made before the work it pays for.
struct Meter {
    limit: u64,
    used: u64,
    /// Model warmth this call raised, written to transient storage only if the call succeeds:
    /// the EVM's journal would undo it after a revert or halt, and this way a host without a
    /// journal (`MemHost`) behaves the same.
    warmth: Vec<(B256, u64)>,
    /// The transaction's cache epoch (see [`crate::cache`]) once a load needed it, and
    /// whether this call started it (then it is written with the warmth on success).
    epoch: Option<(u64, bool)>,
}

impl Meter {
    fn charge<E>(&mut self, gas: u64) -> Result<(), Stop<E>> {
        self.used = self.used.saturating_add(gas);
        if self.used > self.limit {
            return Err(Stop::OutOfGas);
        }
        Ok(())
    }

    fn epoch(&mut self, host: &mut impl Host) -> u64 {
        let (epoch, _) = *self.epoch.get_or_insert_with(|| {
            match host.tload(slot::epoch()).saturating_to::<u64>() {
                0 => (cache::new_epoch(), true),
                e => (e, false),
            }
        });
        epoch
    }
}

/// Storage layout of the precompile account (all keys are keccak256 of a tagged preimage,
/// so they cannot collide with each other).
pub mod slot {
    use alloy_primitives::{keccak256, B256, U256};

    /// `model(id)` holds the model's byte length (0 = not published).
    pub fn model(id: B256) -> U256 {
        keccak256([b"myelin.model".as_slice(), id.as_slice()].concat()).into()
    }
    /// Transient key of model `id`'s warmth in this transaction: [`super::COLD`],
    /// [`super::SLOT_WARM`] or [`super::LOADED`].
    pub fn warm(id: B256) -> U256 {
        keccak256([b"myelin.warm".as_slice(), id.as_slice()].concat()).into()
    }
    /// Transient key of the transaction's node-local cache epoch ([`crate::cache`]): never
    /// read by gas or results.
    pub fn epoch() -> U256 {
        keccak256(b"myelin.epoch").into()
    }
}

/// Accounts whose code holds state: 20 bytes of keccak256 of a tagged preimage.
pub mod addr {
    use alloy_primitives::{keccak256, Address, B256};

    fn derive(tag: &[u8], hash: B256) -> Address {
        Address::from_slice(&keccak256([tag, hash.as_slice()].concat())[12..])
    }
    /// The account whose code holds model `id`'s bytes.
    pub fn model(id: B256) -> Address {
        derive(b"myelin.model.code", id)
    }
    /// The account whose code holds the upload chunk whose keccak256 is `chunk_id`.
    pub fn chunk(chunk_id: B256) -> Address {
        derive(b"myelin.chunk", chunk_id)
    }
}

/// Warmth of a model in the current transaction (EIP-2929-like, in transient storage, so a
/// reverted call forgets it as the EVM forgets its accessed slots).
const COLD: u64 = 0;
/// Its length slot was read.
const SLOT_WARM: u64 = 1;
/// Its bytes were loaded too.
const LOADED: u64 = 2;

/// `UploadMismatch` codes (SPEC §6). The error's `id` is the chunk's for the first two, the
/// model's for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum UploadError {
    /// `writeChunk`: the chunk is empty or longer than `gas::MAX_CHUNK_BYTES`.
    ChunkSize = 1,
    /// `commitUpload`: a listed chunk was never written.
    UnknownChunk = 2,
    /// `commitUpload`: the chunks add up to more than `limits::MAX_MODEL_BYTES`.
    TooLarge = 3,
    /// `commitUpload`: the concatenated chunks do not hash to the id.
    HashMismatch = 4,
}

fn upload_error<E>(id: B256, code: UploadError) -> Stop<E> {
    revert(IMyelin::UploadMismatch {
        id,
        code: code as u16,
    })
}

/// The Myelin precompile: stateless apart from the node-local cache of prepared models,
/// which changes speed only, never gas or results.
#[derive(Clone)]
pub struct Myelin {
    cache: ModelCache,
}

impl std::fmt::Debug for Myelin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Myelin").finish_non_exhaustive()
    }
}

impl Default for Myelin {
    fn default() -> Self {
        Self::new(DEFAULT_CACHE_MODELS)
    }
}

/// Default number of prepared models kept per node.
pub const DEFAULT_CACHE_MODELS: usize = 64;

impl Myelin {
    pub fn new(cache_models: usize) -> Self {
        Myelin {
            cache: ModelCache::new(cache_models),
        }
    }

    /// Executes one call. `Err` only for a failure of the host's database.
    pub fn call<H: Host>(
        &self,
        host: &mut H,
        ctx: &CallContext,
        data: &[u8],
    ) -> Result<Outcome, H::Error> {
        let mut meter = Meter {
            limit: ctx.gas_limit,
            used: 0,
            warmth: Vec::new(),
            epoch: None,
        };
        match self.dispatch(host, ctx, data, &mut meter) {
            Ok(output) => {
                for (id, warmth) in meter.warmth {
                    host.tstore(slot::warm(id), U256::from(warmth));
                }
                if let Some((epoch, true)) = meter.epoch {
                    host.tstore(slot::epoch(), U256::from(epoch));
                }
                Ok(Outcome::Success {
                    gas_used: meter.used,
                    output,
                })
            }
            Err(Stop::Revert(output)) => Ok(Outcome::Revert {
                gas_used: meter.used.min(ctx.gas_limit),
                output,
            }),
            Err(Stop::OutOfGas) => Ok(Outcome::OutOfGas),
            Err(Stop::Host(e)) => Err(e),
        }
    }

    fn dispatch<H: Host>(
        &self,
        host: &mut H,
        ctx: &CallContext,
        data: &[u8],
        meter: &mut Meter,
    ) -> Result<Bytes, Stop<H::Error>> {
        meter.charge(gas::CALL_BASE + gas::IO_BYTE * data.len() as u64)?;
        if !ctx.is_direct {
            return Err(revert(IMyelin::IndirectCall {}));
        }
        if !ctx.value.is_zero() {
            return Err(revert(IMyelin::ValueNotAccepted {}));
        }
        let call = abi::decode_call(data).ok_or_else(|| revert(IMyelin::MalformedCall {}))?;
        let writes = matches!(
            call,
            IMyelinCalls::publishModel(_)
                | IMyelinCalls::writeChunk(_)
                | IMyelinCalls::commitUpload(_)
        );
        if writes && ctx.is_static {
            return Err(revert(IMyelin::WriteInStaticContext {}));
        }
        // Returndata is charged before the work that produces it where its size is known then
        // (writes return one word: charged before anything is written, so nothing can fail
        // after a write), otherwise when it is produced (modelInfo, a few words).
        let mut returndata_charged = 0;
        if writes {
            returndata_charged = 32;
            meter.charge(gas::IO_BYTE * 32)?;
        }
        let out: Vec<u8> = match call {
            IMyelinCalls::publishModel(c) => {
                let id = keccak256(&c.model);
                let (size, model) = (c.model.len(), c.model);
                self.publish(host, ctx.caller, id, size, || model, meter)?;
                IMyelin::publishModelCall::abi_encode_returns(&id)
            }
            IMyelinCalls::writeChunk(c) => {
                let chunk_id = keccak256(&c.chunk);
                if c.chunk.is_empty() || c.chunk.len() > gas::MAX_CHUNK_BYTES {
                    return Err(upload_error(chunk_id, UploadError::ChunkSize));
                }
                meter.charge(gas::ACCOUNT_COLD)?;
                let at = addr::chunk(chunk_id);
                if host.code(at).map_err(Stop::Host)?.is_none() {
                    meter.charge(gas::CREATE_BASE + gas::STORE_BYTE * c.chunk.len() as u64)?;
                    host.store_code(at, c.chunk).map_err(Stop::Host)?;
                }
                IMyelin::writeChunkCall::abi_encode_returns(&chunk_id)
            }
            IMyelinCalls::commitUpload(c) => {
                let id = self.commit_upload(host, ctx.caller, c.id, &c.chunks, meter)?;
                IMyelin::commitUploadCall::abi_encode_returns(&id)
            }
            IMyelinCalls::infer(c) => {
                let (engine, _) = self.load(host, c.id, meter)?;
                let x = input::decode(engine.valid(), &c.input).map_err(input_error)?;
                returndata_charged = 64 + gas::words(engine.analysis().output_len()) * 32;
                meter.charge(gas::IO_BYTE * returndata_charged as u64)?;
                let out = run(&engine, &x, meter)?;
                IMyelin::inferCall::abi_encode_returns(&Bytes::from(out))
            }
            IMyelinCalls::inferBatch(c) => {
                if c.inputs.len() > gas::MAX_BATCH {
                    return Err(revert(IMyelin::BatchTooLarge {
                        count: U256::from(c.inputs.len()),
                        max: U256::from(gas::MAX_BATCH),
                    }));
                }
                let (engine, _) = self.load(host, c.id, meter)?;
                let xs = c
                    .inputs
                    .iter()
                    .map(|x| input::decode(engine.valid(), x))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(input_error)?;
                let each = 64 + gas::words(engine.analysis().output_len()) * 32; // offset, length, data
                returndata_charged = 64 + c.inputs.len() * each;
                meter.charge(gas::IO_BYTE * returndata_charged as u64)?;
                let outs = xs
                    .iter()
                    .map(|x| run(&engine, x, meter).map(Bytes::from))
                    .collect::<Result<Vec<_>, _>>()?;
                IMyelin::inferBatchCall::abi_encode_returns(&outs)
            }
            IMyelinCalls::inferFixed(c) => {
                if c.decimals > fixed::MAX_DECIMALS {
                    return Err(revert(IMyelin::InvalidDecimals {
                        decimals: c.decimals,
                    }));
                }
                let (engine, _) = self.load(host, c.id, meter)?;
                let (model, a) = (engine.model(), engine.analysis());
                let x =
                    input::from_fixed(engine.valid(), &c.input, c.decimals).map_err(input_error)?;
                // One int256 returned per output value, and its exact dequantization.
                returndata_charged = 64 + 32 * a.output_len();
                meter.charge(gas::IO_BYTE * (returndata_charged + 32 * a.output_len()) as u64)?;
                let out = run(&engine, &x, meter)?;
                let oq = crate::model::Quant {
                    scale: model.output_scale,
                    zero_point: a.output_zero_point(),
                };
                let values: Vec<I256> = out
                    .iter()
                    .map(|&q| fixed::dequantize(q as i8, c.decimals, oq))
                    .collect();
                IMyelin::inferFixedCall::abi_encode_returns(&values)
            }
            IMyelinCalls::modelInfo(c) => {
                let (engine, size) = self.load(host, c.id, meter)?;
                let info = model_info(&engine, size);
                IMyelin::modelInfoCall::abi_encode_returns(&info)
            }
        };
        let rest = out.len().saturating_sub(returndata_charged);
        meter.charge(gas::IO_BYTE * rest as u64)?;
        Ok(out.into())
    }

    /// `commitUpload`: reads the listed chunks (charged like EXTCODECOPY before each read),
    /// hashes their concatenation without building it, and publishes it under `id`.
    fn commit_upload<H: Host>(
        &self,
        host: &mut H,
        publisher: Address,
        id: B256,
        chunk_ids: &[B256],
        meter: &mut Meter,
    ) -> Result<B256, Stop<H::Error>> {
        let mut chunks = Vec::with_capacity(chunk_ids.len());
        let mut size = 0usize;
        for &chunk_id in chunk_ids {
            meter.charge(gas::ACCOUNT_COLD)?;
            let chunk = host
                .code(addr::chunk(chunk_id))
                .map_err(Stop::Host)?
                .ok_or_else(|| upload_error(chunk_id, UploadError::UnknownChunk))?;
            size += chunk.len();
            if size > crate::limits::MAX_MODEL_BYTES {
                return Err(upload_error(id, UploadError::TooLarge));
            }
            meter.charge(gas::COPY_WORD * gas::words(chunk.len()) as u64)?;
            chunks.push(chunk);
        }
        meter.charge(gas::HASH_WORD * gas::words(size) as u64)?;
        let mut hasher = Keccak256::new();
        chunks.iter().for_each(|c| hasher.update(c));
        if hasher.finalize() != id {
            return Err(upload_error(id, UploadError::HashMismatch));
        }
        let concat = || {
            let mut model = Vec::with_capacity(size);
            chunks.iter().for_each(|c| model.extend_from_slice(c));
            Bytes::from(model)
        };
        self.publish(host, publisher, id, size, concat, meter)?;
        Ok(id)
    }

    /// Publishes the `size` bytes `model()` builds under `id` (their keccak256, checked by the
    /// caller), or does nothing more if `id` is published already. The bytes are built and
    /// validated only once the publication is paid for.
    fn publish<H: Host>(
        &self,
        host: &mut H,
        publisher: Address,
        id: B256,
        size: usize,
        model: impl FnOnce() -> Bytes,
        meter: &mut Meter,
    ) -> Result<(), Stop<H::Error>> {
        if model_size(host, id, meter)?.0 != 0 {
            return Ok(());
        }
        meter.charge(gas::publish(size))?;
        let model = model();
        // Validation only: the engine is prepared (and `gas::prepare` charged) by the first
        // load that runs the model.
        codec::decode(&model).map_err(|e| {
            revert(IMyelin::InvalidModel {
                code: e.code(),
                node: e.node,
            })
        })?;
        host.sstore(slot::model(id), U256::from(model.len()))
            .map_err(Stop::Host)?;
        host.store_code(addr::model(id), model)
            .map_err(Stop::Host)?;
        let event = IMyelin::ModelPublished {
            id,
            publisher,
            size: U256::from(size),
        };
        host.log(
            event.encode_topics().into_iter().map(|t| t.0).collect(),
            event.encode_data().into(),
        );
        Ok(())
    }

    /// Charges the model's length slot and its cold/warm load, and returns the prepared model
    /// and its size, from the node-local cache when possible (which changes nothing but speed).
    fn load<H: Host>(
        &self,
        host: &mut H,
        id: B256,
        meter: &mut Meter,
    ) -> Result<(Arc<Engine>, usize), Stop<H::Error>> {
        let (size, warmth) = model_size(host, id, meter)?;
        if size == 0 {
            return Err(revert(IMyelin::UnknownModel { id }));
        }
        let warm = warmth == LOADED;
        meter.charge(gas::load(size, warm))?;
        meter.warmth.push((id, LOADED));
        // A cold load also pays for preparing every node, known once the model is parsed
        // (the same count whether or not this node has it cached).
        let prepare = |a: &crate::Analysis| if warm { 0 } else { gas::prepare(a) };
        let epoch = meter.epoch(host);
        if let Some(engine) = self.cache.get(epoch, &id) {
            meter.charge(prepare(engine.analysis()))?;
            return Ok((engine, size));
        }
        let bytes = host
            .code(addr::model(id))
            .map_err(Stop::Host)?
            .unwrap_or_default();
        // Stored models were validated at publication: a failure here is a bug or corrupt
        // state, reported as such rather than as the caller's invalid model.
        let m = codec::decode(&bytes).map_err(|_| revert(IMyelin::InternalError {}))?;
        meter.charge(prepare(m.analysis()))?;
        let engine = Arc::new(Engine::new(m));
        self.cache.insert(epoch, id, engine.clone(), size);
        Ok((engine, size))
    }
}

/// Reads model `id`'s length slot, charged like SLOAD (cold on the first access to `id` in
/// the transaction); returns the size (0 = not published) and the warmth it found.
fn model_size<H: Host>(
    host: &mut H,
    id: B256,
    meter: &mut Meter,
) -> Result<(usize, u64), Stop<H::Error>> {
    let raised = meter.warmth.iter().rev().find(|(k, _)| *k == id);
    let warmth = match raised {
        Some(&(_, w)) => w,
        None => host.tload(slot::warm(id)).saturating_to::<u64>(),
    };
    if warmth == COLD {
        meter.charge(gas::SLOAD_COLD)?;
        meter.warmth.push((id, SLOT_WARM));
    } else {
        meter.charge(gas::SLOAD_WARM)?;
    }
    let size = host
        .sload(slot::model(id))
        .map_err(Stop::Host)?
        .saturating_to::<usize>();
    Ok((size, warmth))
}

/// The revert of a refused input (SPEC §6).
fn input_error<E>(e: InputError) -> Stop<E> {
    match e {
        InputError::Length { expected, actual } => revert(IMyelin::InvalidInputLength {
            expected: U256::from(expected),
            actual: U256::from(actual),
        }),
        InputError::Index { position, value } => revert(IMyelin::InvalidIndex {
            position: U256::from(position),
            value,
        }),
    }
}

/// Charges one inference and runs it on a checked input.
fn run<E>(engine: &Engine, input: &Input, meter: &mut Meter) -> Result<Vec<u8>, Stop<E>> {
    meter.charge(gas::inference(engine.valid()))?;
    Ok(engine
        .run_input(input)
        .into_iter()
        .map(|v| v as u8)
        .collect())
}

fn quantization(q: crate::model::Quant) -> IMyelin::Quantization {
    IMyelin::Quantization {
        scaleMult: q.scale.mult,
        scaleShift: q.scale.shift,
        zeroPoint: q.zero_point,
    }
}

/// `modelInfo`'s answer for a prepared model of `size` bytes.
pub fn model_info(engine: &Engine, size: usize) -> IMyelin::ModelInfo {
    let (m, a) = (engine.model(), engine.analysis());
    // Per-feature models report all zeros as `input` and list the features.
    let (input, features) = match m.tensor_quant() {
        Some(q) => (quantization(q), Vec::new()),
        None => (
            IMyelin::Quantization::default(),
            m.input_quant.iter().copied().map(quantization).collect(),
        ),
    };
    IMyelin::ModelInfo {
        inputShape: a.shapes[0].clone(),
        outputShape: a.output_shape().to_vec(),
        input,
        inputFeatures: features,
        output: quantization(crate::model::Quant {
            scale: m.output_scale,
            zero_point: a.output_zero_point(),
        }),
        nodes: m.nodes.len() as u32,
        size: size as u32,
        params: a.params,
        macs: a.total.macs,
        elems: a.total.elems,
        inferGas: gas::infer_call(engine.valid(), size),
        indexLimits: m.index_inputs.iter().map(|i| i.limits.clone()).collect(),
    }
}
