//! The precompile's dispatch: ABI decoding, gas, models as state, inference.
//!
//! It is written against [`Host`], the few state operations it needs, so the very same code
//! runs inside the EVM ([`crate::evm`], over alloy-evm's `EvmInternals`) and in
//! `myelin precompile` (over a directory), which is what Foundry tests call. Outcomes:
//! success, revert with an `IMyelin` custom error (bad input of any kind), or out-of-gas.
//! Only a failure of the node's own database is fatal.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use alloy_primitives::{keccak256, Address, Bytes, B256, I256, U256};
use alloy_sol_types::{SolCall, SolError, SolEvent, SolInterface};
use lru::LruCache;

use crate::abi::IMyelin::{self, IMyelinCalls};
use crate::engine::Engine;
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
    /// The stored bytes of model `id`, if published.
    fn model_bytes(&mut self, id: B256) -> Result<Option<Bytes>, Self::Error>;
    /// Stores the bytes of model `id` (called once per id).
    fn store_model(&mut self, id: B256, bytes: Bytes) -> Result<(), Self::Error>;
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
}

impl Meter {
    fn charge<E>(&mut self, gas: u64) -> Result<(), Stop<E>> {
        self.used = self.used.saturating_add(gas);
        if self.used > self.limit {
            return Err(Stop::OutOfGas);
        }
        Ok(())
    }
}

/// Storage layout of the precompile account (all keys are keccak256 of a tagged preimage,
/// so they cannot collide with each other).
mod slot {
    use alloy_primitives::{keccak256, Address, B256, U256};

    /// `model(id)` holds the model's byte length (0 = not published).
    pub fn model(id: B256) -> U256 {
        keccak256([b"myelin.model".as_slice(), id.as_slice()].concat()).into()
    }
    /// `upload(caller, id)` holds size + 1 of an open upload; words follow at +1, +2, ...
    pub fn upload(caller: Address, id: B256) -> U256 {
        keccak256(
            [
                b"myelin.upload".as_slice(),
                caller.as_slice(),
                id.as_slice(),
            ]
            .concat(),
        )
        .into()
    }
    /// Transient key marking a model as loaded (warm) in this transaction.
    pub fn warm(id: B256) -> U256 {
        keccak256([b"myelin.warm".as_slice(), id.as_slice()].concat()).into()
    }
}

/// The Myelin precompile: stateless apart from the node-local cache of prepared models,
/// which changes speed only, never gas or results.
#[derive(Clone)]
pub struct Myelin {
    cache: Arc<Mutex<LruCache<B256, Arc<Engine>>>>,
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
        let cap = NonZeroUsize::new(cache_models.max(1)).unwrap_or(NonZeroUsize::MIN);
        Myelin {
            cache: Arc::new(Mutex::new(LruCache::new(cap))),
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
        };
        match self.dispatch(host, ctx, data, &mut meter) {
            Ok(output) => Ok(Outcome::Success {
                gas_used: meter.used,
                output,
            }),
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
        let call = IMyelinCalls::abi_decode(data).map_err(|_| revert(IMyelin::MalformedCall {}))?;
        let writes = matches!(
            call,
            IMyelinCalls::publishModel(_)
                | IMyelinCalls::beginUpload(_)
                | IMyelinCalls::writeChunk(_)
                | IMyelinCalls::commitUpload(_)
        );
        if writes && ctx.is_static {
            return Err(revert(IMyelin::WriteInStaticContext {}));
        }
        let out: Vec<u8> = match call {
            IMyelinCalls::publishModel(c) => {
                let id = self.publish(host, ctx.caller, c.model, meter)?;
                IMyelin::publishModelCall::abi_encode_returns(&id)
            }
            IMyelinCalls::beginUpload(c) => {
                meter.charge(gas::CHUNK_BASE)?;
                if c.size == 0 || c.size as usize > crate::limits::MAX_MODEL_BYTES {
                    return Err(revert(IMyelin::UploadMismatch {
                        id: c.id,
                        reason: format!("size {} is outside 1..=16 MiB", c.size),
                    }));
                }
                host.sstore(
                    slot::upload(ctx.caller, c.id),
                    U256::from(c.size as u64 + 1),
                )
                .map_err(Stop::Host)?;
                Vec::new()
            }
            IMyelinCalls::writeChunk(c) => {
                let words = c.chunk.len().div_ceil(32) as u64;
                meter.charge(gas::CHUNK_BASE + gas::CHUNK_WORD * words)?;
                let base = slot::upload(ctx.caller, c.id);
                let size = upload_size(host, base, c.id)?;
                let end = c.offset as usize + c.chunk.len();
                if c.offset % 32 != 0 || end > size {
                    return Err(revert(IMyelin::UploadMismatch {
                        id: c.id,
                        reason: format!("chunk at {} of {} bytes: offset must be a multiple of 32 and the end within {size}", c.offset, c.chunk.len()),
                    }));
                }
                for (i, word) in c.chunk.chunks(32).enumerate() {
                    let mut w = [0u8; 32];
                    w[..word.len()].copy_from_slice(word);
                    let key = base + U256::from(1 + c.offset as u64 / 32 + i as u64);
                    host.sstore(key, U256::from_be_bytes(w))
                        .map_err(Stop::Host)?;
                }
                Vec::new()
            }
            IMyelinCalls::commitUpload(c) => {
                let base = slot::upload(ctx.caller, c.id);
                let size = upload_size(host, base, c.id)?;
                let words = size.div_ceil(32);
                meter.charge(gas::CHUNK_BASE + gas::IO_BYTE * size as u64)?;
                let mut bytes = Vec::with_capacity(words * 32);
                for i in 0..words {
                    let key = base + U256::from(1 + i as u64);
                    bytes.extend_from_slice(
                        &host.sload(key).map_err(Stop::Host)?.to_be_bytes::<32>(),
                    );
                    host.sstore(key, U256::ZERO).map_err(Stop::Host)?;
                }
                host.sstore(base, U256::ZERO).map_err(Stop::Host)?;
                bytes.truncate(size);
                if keccak256(&bytes) != c.id {
                    return Err(revert(IMyelin::UploadMismatch {
                        id: c.id,
                        reason: "uploaded bytes do not hash to the id".into(),
                    }));
                }
                let id = self.publish(host, ctx.caller, bytes.into(), meter)?;
                IMyelin::commitUploadCall::abi_encode_returns(&id)
            }
            IMyelinCalls::infer(c) => {
                let engine = self.load(host, c.id, meter)?;
                let out = run(&engine, &c.input, meter)?;
                IMyelin::inferCall::abi_encode_returns(&Bytes::from(out))
            }
            IMyelinCalls::inferBatch(c) => {
                if c.inputs.len() > gas::MAX_BATCH {
                    return Err(revert(IMyelin::BatchTooLarge {
                        count: U256::from(c.inputs.len()),
                        max: U256::from(gas::MAX_BATCH),
                    }));
                }
                let engine = self.load(host, c.id, meter)?;
                let outs = c
                    .inputs
                    .iter()
                    .map(|x| run(&engine, x, meter).map(Bytes::from))
                    .collect::<Result<Vec<_>, _>>()?;
                IMyelin::inferBatchCall::abi_encode_returns(&outs)
            }
            IMyelinCalls::inferFixed(c) => {
                if c.decimals > fixed::MAX_DECIMALS {
                    return Err(revert(IMyelin::InvalidFixedPoint {
                        reason: format!("decimals {} > {}", c.decimals, fixed::MAX_DECIMALS),
                    }));
                }
                let engine = self.load(host, c.id, meter)?;
                let model = engine.model();
                let input: Vec<u8> = c
                    .input
                    .iter()
                    .map(|&v| fixed::quantize(v, c.decimals, model.input_quant) as u8)
                    .collect();
                let out = run(&engine, &input, meter)?;
                let a = engine.analysis();
                let oq = crate::model::Quant {
                    scale: model.output_scale,
                    zero_point: a.output_zero_point(),
                };
                let values: Vec<I256> = out
                    .iter()
                    .map(|&q| fixed::dequantize(q as i8, c.decimals, oq))
                    .collect();
                meter.charge(gas::IO_BYTE * 32 * values.len() as u64)?;
                IMyelin::inferFixedCall::abi_encode_returns(&values)
            }
            IMyelinCalls::modelInfo(c) => {
                let engine = self.load(host, c.id, meter)?;
                let size = model_size(host, c.id)?;
                let info = model_info(&engine, size);
                IMyelin::modelInfoCall::abi_encode_returns(&info)
            }
        };
        meter.charge(gas::IO_BYTE * out.len() as u64)?;
        Ok(out.into())
    }

    /// Validates and stores a model; a no-op (at the flat price) if it already exists.
    fn publish<H: Host>(
        &self,
        host: &mut H,
        publisher: Address,
        model: Bytes,
        meter: &mut Meter,
    ) -> Result<B256, Stop<H::Error>> {
        let id = keccak256(&model);
        if model_size(host, id)? != 0 {
            meter.charge(gas::PUBLISH_BASE)?;
            return Ok(id);
        }
        meter.charge(gas::publish(model.len()))?;
        let (m, analysis) = codec::decode(&model).map_err(|e| {
            revert(IMyelin::InvalidModel {
                reason: e.to_string(),
            })
        })?;
        host.sstore(slot::model(id), U256::from(model.len()))
            .map_err(Stop::Host)?;
        host.store_model(id, model.clone()).map_err(Stop::Host)?;
        let event = IMyelin::ModelPublished {
            id,
            publisher,
            size: U256::from(model.len()),
        };
        host.log(
            event.encode_topics().into_iter().map(|t| t.0).collect(),
            event.encode_data().into(),
        );
        self.cache_insert(id, Arc::new(Engine::new(m, analysis)));
        Ok(id)
    }

    /// Charges the cold/warm load and returns the prepared model, from the node-local cache
    /// when possible (which changes nothing but speed).
    fn load<H: Host>(
        &self,
        host: &mut H,
        id: B256,
        meter: &mut Meter,
    ) -> Result<Arc<Engine>, Stop<H::Error>> {
        let size = model_size(host, id)?;
        if size == 0 {
            return Err(revert(IMyelin::UnknownModel { id }));
        }
        let warm = !host.tload(slot::warm(id)).is_zero();
        meter.charge(gas::load(size, warm))?;
        host.tstore(slot::warm(id), U256::from(1));
        // A cold load also pays for preparing every node, known once the model is parsed
        // (the same count whether or not this node has it cached).
        let prepare = |nodes: usize| if warm { 0 } else { gas::prepare(nodes) };
        if let Some(engine) = self.cache.lock().ok().and_then(|mut c| c.get(&id).cloned()) {
            meter.charge(prepare(engine.model().nodes.len()))?;
            return Ok(engine);
        }
        let bytes = host
            .model_bytes(id)
            .map_err(Stop::Host)?
            .unwrap_or_default();
        // Stored models were validated at publication; a failure here means the node's state
        // is corrupt, which must not pass silently as a revert.
        let (m, analysis) = codec::decode(&bytes).map_err(|e| {
            revert(IMyelin::InvalidModel {
                reason: format!("stored model: {e}"),
            })
        })?;
        meter.charge(prepare(m.nodes.len()))?;
        let engine = Arc::new(Engine::new(m, analysis));
        self.cache_insert(id, engine.clone());
        Ok(engine)
    }

    fn cache_insert(&self, id: B256, engine: Arc<Engine>) {
        if let Ok(mut c) = self.cache.lock() {
            c.put(id, engine);
        }
    }
}

fn model_size<H: Host>(host: &mut H, id: B256) -> Result<usize, Stop<H::Error>> {
    Ok(host
        .sload(slot::model(id))
        .map_err(Stop::Host)?
        .saturating_to::<usize>())
}

fn upload_size<H: Host>(host: &mut H, base: U256, id: B256) -> Result<usize, Stop<H::Error>> {
    let v = host
        .sload(base)
        .map_err(Stop::Host)?
        .saturating_to::<usize>();
    if v == 0 {
        return Err(revert(IMyelin::UploadMismatch {
            id,
            reason: "no upload in progress: call beginUpload first".into(),
        }));
    }
    Ok(v - 1)
}

/// Checks the input length, charges the inference, runs it.
fn run<E>(engine: &Engine, input: &[u8], meter: &mut Meter) -> Result<Vec<u8>, Stop<E>> {
    let a = engine.analysis();
    if input.len() != a.input_len() {
        return Err(revert(IMyelin::InvalidInputLength {
            expected: U256::from(a.input_len()),
            actual: U256::from(input.len()),
        }));
    }
    meter.charge(gas::inference(a))?;
    let x: Vec<i8> = input.iter().map(|&b| b as i8).collect();
    Ok(engine.run(&x).into_iter().map(|v| v as u8).collect())
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
    IMyelin::ModelInfo {
        inputShape: a.shapes[0].clone(),
        outputShape: a.output_shape().to_vec(),
        input: quantization(m.input_quant),
        output: quantization(crate::model::Quant {
            scale: m.output_scale,
            zero_point: a.output_zero_point(),
        }),
        nodes: m.nodes.len() as u32,
        size: size as u32,
        params: a.params,
        macs: a.total.macs,
        elems: a.total.elems,
        inferGas: gas::infer_call(a, size),
    }
}
