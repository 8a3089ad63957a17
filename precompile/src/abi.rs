//! The ABI, read from the one interface file Solidity developers also import
//! (`contracts/src/IMyelin.sol`), so the two sides cannot drift apart, and the canonical
//! encoding rule every call must follow (SPEC §6, "Calldata").
//!
//! The standard ABI lets dynamic arguments point anywhere: many elements of a `bytes[]` may
//! alias one blob, so decoding can materialise far more than the calldata that was paid for.
//! [`decode_call`] therefore walks the raw calldata first, without allocating, and accepts only
//! the one encoding Solidity itself produces (offsets strictly sequential, zero padding, no
//! trailing bytes). After that walk every decoded byte is a distinct calldata byte: decoding
//! materialises at most `len(calldata)` bytes, which `IO_BYTE` already charged.

use alloy_sol_types::{SolCall, SolInterface};

alloy_sol_types::sol!(
    #[sol(all_derives)]
    "../contracts/src/IMyelin.sol"
);

use IMyelin::IMyelinCalls;

/// How one argument of an `IMyelin` function is encoded.
#[derive(Clone, Copy, Debug)]
enum Arg {
    /// A static word whose every value is valid (`bytes32`, `int256`).
    Word,
    /// `uint8`: a static word whose first 31 bytes are zero.
    Uint8,
    /// `bytes`: length word, data, zero padding to a multiple of 32.
    Bytes,
    /// `T[]`: count word, then the elements encoded as a tuple.
    Array(&'static Arg),
}

/// The arguments of the function with this selector, or `None` for an unknown selector.
fn arguments(selector: [u8; 4]) -> Option<&'static [Arg]> {
    use Arg::*;
    use IMyelin::*;
    Some(match selector {
        publishModelCall::SELECTOR | writeChunkCall::SELECTOR => &[Bytes],
        commitUploadCall::SELECTOR => &[Word, Array(&Word)],
        inferCall::SELECTOR => &[Word, Bytes],
        inferFixedCall::SELECTOR => &[Word, Array(&Word), Uint8],
        inferBatchCall::SELECTOR => &[Word, Array(&Bytes)],
        modelInfoCall::SELECTOR => &[Word],
        _ => return None,
    })
}

/// Decodes a call if, and only if, `data` is the canonical encoding of an `IMyelin` call.
/// Allocates nothing before the encoding is known to be canonical.
pub fn decode_call(data: &[u8]) -> Option<IMyelinCalls> {
    let (selector, args) = data.split_first_chunk::<4>()?;
    let types = arguments(*selector)?;
    if tuple(args, 0, types.iter().copied())? != args.len() {
        return None; // trailing bytes
    }
    IMyelinCalls::abi_decode(data).ok()
}

/// The word at `pos` as a length or offset: it must be at most `data.len()` (any larger value
/// points outside the calldata), which keeps every later sum far from overflow.
fn small(data: &[u8], pos: usize) -> Option<usize> {
    let word = data.get(pos..pos.checked_add(32)?)?;
    let (high, low) = word.split_at(24);
    if high.iter().any(|&b| b != 0) {
        return None;
    }
    let v = usize::try_from(u64::from_be_bytes(low.try_into().ok()?)).ok()?;
    (v <= data.len()).then_some(v)
}

/// Checks the canonical encoding of a tuple of `args` whose heads start at `base`, and returns
/// where it ends. Every argument here has a one-word head; each dynamic argument's offset
/// (relative to `base`) must be exactly the end of the previous argument's tail.
fn tuple(data: &[u8], base: usize, args: impl ExactSizeIterator<Item = Arg>) -> Option<usize> {
    let mut tail = base.checked_add(args.len().checked_mul(32)?)?;
    if tail > data.len() {
        return None; // the heads alone overrun: checked before walking any of them
    }
    for (i, arg) in args.enumerate() {
        let head = base + 32 * i;
        match arg {
            Arg::Word => {}
            Arg::Uint8 => {
                if data[head..head + 31].iter().any(|&b| b != 0) {
                    return None;
                }
            }
            Arg::Bytes | Arg::Array(_) => {
                if small(data, head)? != tail - base {
                    return None;
                }
                tail = dynamic(data, tail, arg)?;
            }
        }
    }
    Some(tail)
}

/// Checks the tail of a dynamic argument starting at `pos`; returns where it ends.
fn dynamic(data: &[u8], pos: usize, arg: Arg) -> Option<usize> {
    let len = small(data, pos)?;
    let body = pos + 32;
    match arg {
        Arg::Bytes => {
            let end = body.checked_add(len.div_ceil(32) * 32)?;
            let padding = data.get(body + len..end)?;
            padding.iter().all(|&b| b == 0).then_some(end)
        }
        Arg::Array(elem) => tuple(data, body, std::iter::repeat_n(*elem, len)),
        Arg::Word | Arg::Uint8 => None,
    }
}
