//! A call's input (SPEC §6): the int8 input, then the ids of each index input. `infer` and
//! `inferBatch` carry ids as big-endian uint16s after the int8 bytes (what Solidity's
//! `abi.encodePacked(int8s…, uint16s…)` writes); `inferFixed` carries them as plain integers
//! after the fixed-point values. Both are checked here, length first and then each id
//! against its limit in order, before any gas is spent on inference, so a bad id reverts with
//! `InvalidIndex` and never reaches a kernel.

use alloy_primitives::{I256, U256};

use crate::fixed;
use crate::validate::ValidModel;

/// A checked input: `values` has the int8 input's length, `ids[k]` one id per limit of index
/// input `k`, each below its limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Input {
    pub values: Vec<i8>,
    pub ids: Vec<Vec<u16>>,
}

/// Why a call's input was refused (SPEC §6, in the order checked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputError {
    /// `InvalidInputLength(expected, actual)`: bytes for `infer`, values for `inferFixed`.
    Length { expected: usize, actual: usize },
    /// `InvalidIndex(position, value)`: the first id (counted over all index inputs in order)
    /// that is negative or not below its limit.
    Index { position: usize, value: I256 },
}

/// Ids of all index inputs together.
fn id_count(m: &ValidModel) -> usize {
    m.model().index_inputs.iter().map(|i| i.limits.len()).sum()
}

/// Bytes of one `infer` input: one per int8 element, two per id.
pub fn byte_len(m: &ValidModel) -> usize {
    m.analysis().input_len() + 2 * id_count(m)
}

/// Values of one `inferFixed` input: one per int8 element and per id.
pub fn fixed_len(m: &ValidModel) -> usize {
    m.analysis().input_len() + id_count(m)
}

/// Splits the ids that follow the int8 part into index inputs, checking each against its
/// limit in order.
fn ids(m: &ValidModel, raw: impl Iterator<Item = I256>) -> Result<Vec<Vec<u16>>, InputError> {
    let mut raw = raw.enumerate();
    m.model()
        .index_inputs
        .iter()
        .map(|input| {
            input
                .limits
                .iter()
                .map(|&limit| {
                    let (position, value) = raw.next().unwrap_or((0, I256::ZERO));
                    if value.is_negative() || value >= I256::from_raw(U256::from(limit)) {
                        return Err(InputError::Index { position, value });
                    }
                    Ok(value.into_raw().as_limbs()[0] as u16)
                })
                .collect()
        })
        .collect()
}

fn check_len(expected: usize, actual: usize) -> Result<(), InputError> {
    if expected != actual {
        return Err(InputError::Length { expected, actual });
    }
    Ok(())
}

/// An `infer` input: int8 bytes, then big-endian uint16 ids.
pub fn decode(m: &ValidModel, bytes: &[u8]) -> Result<Input, InputError> {
    check_len(byte_len(m), bytes.len())?;
    let (values, rest) = bytes.split_at(m.analysis().input_len());
    let raw = rest
        .chunks_exact(2)
        .map(|b| I256::from_raw(U256::from(u16::from_be_bytes([b[0], b[1]]))));
    Ok(Input {
        ids: ids(m, raw)?,
        values: values.iter().map(|&b| b as i8).collect(),
    })
}

/// An `inferFixed` input: fixed-point values with `decimals` decimals quantized with the
/// model's input quantization, each feature with its own if it has one per feature (SPEC §6),
/// then ids as plain integers.
pub fn from_fixed(m: &ValidModel, input: &[I256], decimals: u8) -> Result<Input, InputError> {
    check_len(fixed_len(m), input.len())?;
    let (values, rest) = input.split_at(m.analysis().input_len());
    let model = m.model();
    Ok(Input {
        ids: ids(m, rest.iter().copied())?,
        values: values
            .iter()
            .enumerate()
            .map(|(i, &v)| fixed::quantize(v, decimals, model.element_quant(i)))
            .collect(),
    })
}

/// Encodes an input as `infer` takes it (tooling and tests).
pub fn encode(input: &Input) -> Vec<u8> {
    let mut bytes: Vec<u8> = input.values.iter().map(|&v| v as u8).collect();
    for id in input.ids.iter().flatten() {
        bytes.extend_from_slice(&id.to_be_bytes());
    }
    bytes
}
