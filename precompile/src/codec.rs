//! Canonical binary encoding of a [`Model`] (format v1, little-endian; layout in
//! `docs/SPEC.md` §2). [`decode`] accepts exactly the byte strings [`encode`] produces for a
//! valid model, so a model id (keccak256 of the bytes) names exactly one function.

use crate::error::{Code, ModelError, HEADER};
use crate::limits::MAX_MODEL_BYTES;
use crate::model::*;
use crate::ops::layer::put_scale;
use crate::validate::{self, ValidModel, Validator};

pub const MAGIC: [u8; 4] = *b"MYLN";
/// Version of a model without index inputs: exactly the v1 bytes it always had.
pub const VERSION: u8 = 1;
/// Version of a model with index inputs (SPEC §2): v1 plus the index-input list after the
/// output scale. A model without them is only ever encoded as v1, so each has one encoding.
pub const VERSION_INDEX: u8 = 2;
/// Versions 3 and 4 are 1 and 2 with the input quantized per feature: one scale and zero
/// point per element of the input's last axis in place of the single pair. A model with one
/// input quantization is only ever encoded as v1 or v2.
pub const VERSION_FEATURES: u8 = 3;
pub const VERSION_FEATURES_INDEX: u8 = 4;

/// The version byte of a model: which optional header parts it has.
fn version(per_feature: bool, indexed: bool) -> u8 {
    match (per_feature, indexed) {
        (false, false) => VERSION,
        (false, true) => VERSION_INDEX,
        (true, false) => VERSION_FEATURES,
        (true, true) => VERSION_FEATURES_INDEX,
    }
}

/// Parses and fully validates a model. Any byte string that is not the canonical encoding of
/// a valid model is rejected with the `(code, node)` of the first failing check in SPEC §4's
/// order: each header field is checked as soon as it is read; each node is read (checking
/// only what reading needs: its tag, the tensors it reads, Conv groups, flags) and then fully
/// checked by [`Validator::node`] before the next is read; then trailing bytes, then
/// [`Validator::finish_with`].
pub fn decode(bytes: &[u8]) -> Result<ValidModel, ModelError> {
    if bytes.len() > MAX_MODEL_BYTES {
        return Err(ModelError::header(
            Code::TooLarge,
            format!("{} bytes; the limit is {MAX_MODEL_BYTES}", bytes.len()),
        ));
    }
    let mut r = Reader {
        bytes,
        pos: 0,
        node: HEADER as usize,
    };
    if r.take(4)? != MAGIC {
        return Err(ModelError::header(Code::BadMagic, "expected \"MYLN\""));
    }
    let version = r.u8()?;
    if !(VERSION..=VERSION_FEATURES_INDEX).contains(&version) {
        return Err(ModelError::header(
            Code::BadVersion,
            format!(
                "version {version}; this node reads versions {VERSION} to {VERSION_FEATURES_INDEX}"
            ),
        ));
    }
    let per_feature = version >= VERSION_FEATURES;
    let indexed = version == VERSION_INDEX || version == VERSION_FEATURES_INDEX;
    let input_shape = r.shape()?;
    let input_quant = if per_feature {
        let features = *input_shape.last().unwrap_or(&0) as usize;
        validate::check_feature_count(features)?;
        r.reserve(features, 6)?;
        let quants = (0..features)
            .map(|_| r.quant())
            .collect::<Result<Vec<_>, _>>()?;
        validate::check_feature_quant(&quants)?;
        quants
    } else {
        vec![r.quant()?]
    };
    let output_scale = r.scale()?;
    validate::check_io_scale(output_scale)?;
    let index_inputs = if indexed {
        r.index_inputs()?
    } else {
        Vec::new()
    };
    let n_nodes = r.u16()? as usize;
    let mut v = Validator::new(
        &input_shape,
        &input_quant,
        output_scale,
        &index_inputs,
        n_nodes,
    )?;
    let mut model = Model {
        input_shape,
        input_quant,
        output_scale,
        index_inputs,
        nodes: Vec::with_capacity(n_nodes),
    };
    // Array lengths depend on the shapes of earlier tensors, so each node is validated before
    // the next is read.
    for node in 0..n_nodes {
        r.node = node;
        let parsed = Node::read(&mut r, v.shapes())?;
        v.node(&parsed)?;
        model.nodes.push(parsed);
    }
    if r.pos != bytes.len() {
        return Err(ModelError::header(
            Code::TrailingBytes,
            format!("{} bytes after the last node", bytes.len() - r.pos),
        ));
    }
    v.finish_with(model)
}

/// Encodes a model canonically. The model should be valid ([`validate::validate`]); an
/// invalid one encodes to bytes that [`decode`] rejects.
pub fn encode(model: &Model) -> Vec<u8> {
    let mut w = Vec::new();
    w.extend_from_slice(&MAGIC);
    let indexed = !model.index_inputs.is_empty();
    w.push(version(model.input_quant.len() > 1, indexed));
    put_shape(&mut w, &model.input_shape);
    for q in &model.input_quant {
        put_scale(&mut w, q.scale);
        w.push(q.zero_point as u8);
    }
    put_scale(&mut w, model.output_scale);
    if indexed {
        w.push(model.index_inputs.len() as u8);
        for input in &model.index_inputs {
            w.extend_from_slice(&(input.limits.len() as u16).to_le_bytes());
            for limit in &input.limits {
                w.extend_from_slice(&limit.to_le_bytes());
            }
        }
    }
    w.extend_from_slice(&(model.nodes.len() as u16).to_le_bytes());
    for node in &model.nodes {
        node.write(&mut w);
    }
    w
}

pub(crate) fn put_shape(w: &mut Vec<u8>, shape: &[u32]) {
    w.push(shape.len() as u8);
    for d in shape {
        w.extend_from_slice(&d.to_le_bytes());
    }
}

/// Reads the encoding field by field, each error carrying the node being read.
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Node being read ([`HEADER`] while reading the header): the `node` of its errors.
    node: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
        let rest = &self.bytes[self.pos..];
        if rest.len() < n {
            return Err(self.truncated(n - rest.len()));
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn truncated(&self, needed: usize) -> ModelError {
        ModelError::at(
            Code::Truncated,
            self.node,
            format!("{needed} more bytes needed at offset {}", self.pos),
        )
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn i8(&mut self) -> Result<i8, ModelError> {
        Ok(self.u8()? as i8)
    }
    pub(crate) fn u16(&mut self) -> Result<u16, ModelError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, ModelError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub(crate) fn flag(&mut self, field: &'static str) -> Result<bool, ModelError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(ModelError::at(
                Code::BadFlag,
                self.node,
                format!("{field} is {v}"),
            )),
        }
    }

    /// A declared shape: the rank is checked before the dimensions are read, the dimensions
    /// right after.
    pub(crate) fn shape(&mut self) -> Result<Vec<u32>, ModelError> {
        let rank = self.u8()? as usize;
        validate::check_rank(self.node, rank)?;
        let shape = (0..rank)
            .map(|_| self.u32())
            .collect::<Result<Vec<_>, _>>()?;
        validate::check_dims(self.node, &shape)?;
        Ok(shape)
    }

    /// A v2 header's index inputs, each count checked as soon as it is read, each limit
    /// right after it.
    fn index_inputs(&mut self) -> Result<Vec<IndexInput>, ModelError> {
        let count = self.u8()? as usize;
        validate::check_index_input_count(count)?;
        (0..count)
            .map(|_| {
                let ids = self.u16()? as usize;
                validate::check_id_count(ids)?;
                let limits = (0..ids)
                    .map(|_| {
                        let limit = self.u16()?;
                        validate::check_id_limit(limit)?;
                        Ok(limit)
                    })
                    .collect::<Result<_, ModelError>>()?;
                Ok(IndexInput { limits })
            })
            .collect()
    }

    pub(crate) fn scale(&mut self) -> Result<Scale, ModelError> {
        Ok(Scale {
            mult: self.i32()?,
            shift: self.i8()?,
        })
    }

    /// An input quantization (scale, then zero point), its scale checked as soon as read.
    fn quant(&mut self) -> Result<Quant, ModelError> {
        let scale = self.scale()?;
        validate::check_io_scale(scale)?;
        Ok(Quant {
            scale,
            zero_point: self.i8()?,
        })
    }

    /// Fails early (before allocating) when fewer than `count · width` bytes remain.
    pub(crate) fn reserve(&self, count: usize, width: usize) -> Result<(), ModelError> {
        let need = count.saturating_mul(width);
        let rest = self.bytes.len() - self.pos;
        if need > rest {
            return Err(self.truncated(need - rest));
        }
        Ok(())
    }

    /// A tensor id, checked as soon as it is read: the node may only read earlier tensors.
    pub(crate) fn tensor(&mut self, shapes: &[Vec<u32>]) -> Result<TensorId, ModelError> {
        let id = self.u16()?;
        validate::tensor_shape(self.node, id, shapes)?;
        Ok(id)
    }

    pub(crate) fn input_shape<'s>(
        &self,
        id: TensorId,
        shapes: &'s [Vec<u32>],
    ) -> Result<&'s [u32], ModelError> {
        validate::tensor_shape(self.node, id, shapes)
    }

    /// Index of the node being read (for errors of checks made while reading).
    pub(crate) fn node(&self) -> usize {
        self.node
    }

    /// An error at the node being read.
    pub(crate) fn error(&self, code: Code, detail: String) -> ModelError {
        ModelError::at(code, self.node, detail)
    }

    pub(crate) fn unknown_op(&self, tag: u8) -> ModelError {
        self.error(Code::UnknownOp, format!("tag 0x{tag:02x}"))
    }
}
