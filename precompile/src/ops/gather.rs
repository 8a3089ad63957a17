//! Gather (SPEC §3.2, tag 0x16): embedding lookup. Reads `count` consecutive ids of one index
//! input and returns the table rows they select, `y[i][d] = table[ids[start + i]][d]`, a
//! `[count, dim]` tensor quantized as the table is (its zero point; a new scale).
//!
//! Ids are not tensors: they arrive in the call after the int8 input (SPEC §6), each checked
//! against its index input's limit before anything runs. Validation requires the table to have
//! at least as many rows as every id it reads may take, so a lookup can never leave the table
//! and no inference can fail half-way on an id.

use super::{Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::{tensor, EngineTensor, WIDE};
use crate::error::{Code, ModelError};
use crate::model::{IndexInput, Scale, TensorId};
use crate::validate::{checked_elems, not_encodable};

const TAG: u8 = 0x16;

/// Elements charged per output element: the row copy into a host vector and the tensor built
/// from it (measured in `benches/benches/search.rs`, gather family). burn's `select` is not
/// used: it costs ~230 ns per id on ndarray, where the direct copy costs a few.
pub const GATHER_PASSES: u64 = 4;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gather {
    /// Which index input the ids come from.
    pub index: u8,
    /// Position of the first id read.
    pub start: u16,
    /// Ids read (rows of the output).
    pub count: u16,
    /// Rows of the table.
    pub rows: u16,
    /// Columns of the table (the embedding width).
    pub dim: u32,
    /// Zero point of the table, hence of the output.
    pub zero_point: i8,
    /// Row-major `[rows][dim]`, as PyTorch's `Embedding.weight`.
    pub table: Vec<i8>,
}

pub struct Prepared {
    index: usize,
    ids: std::ops::Range<usize>,
    dim: usize,
    /// Row-major `[rows][dim]`, as stored: one byte per parameter in the node's cache.
    table: Vec<i8>,
}

impl Op for Gather {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Prepared;

    fn name(&self) -> &'static str {
        "Gather"
    }

    fn inputs(&self) -> Vec<TensorId> {
        Vec::new()
    }

    fn read(_: u8, r: &mut Reader<'_>, _: &[Vec<u32>]) -> Result<Self, ModelError> {
        let (index, start, count, rows, dim) = (r.u8()?, r.u16()?, r.u16()?, r.u16()?, r.u32()?);
        let zero_point = r.i8()?;
        let n = rows as usize * dim as usize;
        r.reserve(n, 1)?;
        let table = r.take(n)?.iter().map(|&b| b as i8).collect();
        Ok(Gather {
            index,
            start,
            count,
            rows,
            dim,
            zero_point,
            table,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.push(self.index);
        w.extend_from_slice(&self.start.to_le_bytes());
        w.extend_from_slice(&self.count.to_le_bytes());
        w.extend_from_slice(&self.rows.to_le_bytes());
        w.extend_from_slice(&self.dim.to_le_bytes());
        w.push(self.zero_point as u8);
        w.extend(self.table.iter().map(|&v| v as u8));
    }

    /// Index input `index` exists, the ids read are within it, and the table has a row for
    /// every id they may take.
    fn check_ids(&self, node: usize, inputs: &[IndexInput]) -> Result<(), ModelError> {
        let bad_read = |detail: String| ModelError::at(Code::BadIndexRead, node, detail);
        let input = inputs
            .get(self.index as usize)
            .ok_or_else(|| bad_read(format!("index input {} does not exist", self.index)))?;
        let (start, count) = (self.start as usize, self.count as usize);
        if count == 0 || start + count > input.limits.len() {
            return Err(bad_read(format!(
                "ids {start}..{} of an index input of {}",
                start + count,
                input.limits.len()
            )));
        }
        let need = input.limits[start..start + count]
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        if self.rows < need {
            return Err(ModelError::at(
                Code::TableTooSmall,
                node,
                format!("{} rows; ids read may be up to {}", self.rows, need - 1),
            ));
        }
        Ok(())
    }

    fn output_shape(&self, node: usize, _: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        if self.dim == 0 {
            return Err(ModelError::at(
                Code::ZeroDim,
                node,
                "a Gather table of width 0",
            ));
        }
        let out = vec![self.count as u32, self.dim];
        checked_elems(node, &out)?;
        if self.table.len() as u64 != self.rows as u64 * self.dim as u64 {
            return Err(not_encodable(
                node,
                format!(
                    "{} table values for {} rows of {}",
                    self.table.len(),
                    self.rows,
                    self.dim
                ),
            ));
        }
        Ok(out)
    }

    fn check(&self, _: usize, _: &[i8], _: &[Vec<u32>], _: &[u32]) -> Result<Checked, ModelError> {
        Ok(Checked {
            zero_point: self.zero_point,
            params: self.table.len() as u64,
        })
    }

    fn fixed_scale(&self, _: &[Option<Scale>]) -> Option<Scale> {
        None
    }

    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        Cost {
            macs: 0,
            elems: GATHER_PASSES * out.iter().map(|&d| d as u64).product::<u64>()
                + self.count as u64,
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let ids = &cx.ids[self.index as usize];
        let dim = self.dim as usize;
        let mut y = Vec::with_capacity(self.count as usize * dim);
        for i in 0..self.count as usize {
            let row = ids[self.start as usize + i] as usize;
            for d in 0..dim {
                y.push(self.table[row * dim + d]);
            }
        }
        y
    }

    fn prepare(&self) -> Prepared {
        let start = self.start as usize;
        Prepared {
            index: self.index as usize,
            ids: start..start + self.count as usize,
            dim: self.dim as usize,
            table: self.table.clone(),
        }
    }

    fn run(p: &Prepared, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let ids = &cx.ids[p.index][p.ids.clone()];
        let mut y: Vec<i64> = Vec::with_capacity(ids.len() * p.dim);
        for &id in ids {
            let row = &p.table[id as usize * p.dim..(id as usize + 1) * p.dim];
            y.extend(row.iter().map(|&v| v as i64));
        }
        let n = y.len();
        tensor(y, [n], WIDE)
    }
}

#[cfg(feature = "testkit")]
impl Gather {
    /// A Gather of a random run of `input`'s ids, with a table just large enough (or a few
    /// rows larger).
    pub fn random(rng: &mut crate::random::Rng, index: u8, input: &IndexInput) -> Self {
        let len = input.limits.len() as i64;
        let start = rng.range(0, len - 1);
        let count = rng.range(1, (len - start).min(6));
        let need = input.limits[start as usize..(start + count) as usize]
            .iter()
            .copied()
            .max()
            .unwrap_or(1);
        let rows = need + rng.range(0, 2) as u16;
        let dim = rng.range(1, 8) as u32;
        Gather {
            index,
            start: start as u16,
            count: count as u16,
            rows,
            dim,
            zero_point: rng.i8(),
            table: rng.bytes(rows as usize * dim as usize),
        }
    }
}
