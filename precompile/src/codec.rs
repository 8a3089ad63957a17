//! Canonical binary encoding of a [`Model`] (format v1, little-endian; layout in
//! `docs/SPEC.md` §2). [`decode`] accepts exactly the byte strings [`encode`] produces for a
//! valid model, so a model id (keccak256 of the bytes) names exactly one function.

use crate::error::{Code, ModelError, HEADER};
use crate::limits::MAX_MODEL_BYTES;
use crate::model::*;
use crate::validate::{self, Analysis, Validator};

pub const MAGIC: [u8; 4] = *b"MYLN";
pub const VERSION: u8 = 1;

mod tag {
    pub const DENSE: u8 = 0x01;
    pub const CONV2D: u8 = 0x02;
    pub const CONV1D: u8 = 0x03;
    pub const MAXPOOL: u8 = 0x04;
    pub const AVGPOOL: u8 = 0x05;
    pub const ADD: u8 = 0x06;
    pub const CLAMP: u8 = 0x07;
    pub const RESHAPE: u8 = 0x08;
    pub const LUT: u8 = 0x09;
    pub const SOFTMAX: u8 = 0x0A;
}

/// Parses and fully validates a model. Any byte string that is not the canonical encoding of
/// a valid model is rejected with the `(code, node)` of the first failing check in SPEC §4's
/// order: each header field is checked as soon as it is read; each node is read (checking
/// only what reading needs: its tag, the tensors it reads, Conv groups, flags) and then fully
/// checked by [`Validator::node`] before the next is read; then trailing bytes, then
/// [`Validator::finish`].
pub fn decode(bytes: &[u8]) -> Result<(Model, Analysis), ModelError> {
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
    if version != VERSION {
        return Err(ModelError::header(
            Code::BadVersion,
            format!("version {version}; this node reads version {VERSION}"),
        ));
    }
    let input_shape = r.shape()?;
    let input_scale = r.scale()?;
    validate::check_io_scale(input_scale)?;
    let input_quant = Quant {
        scale: input_scale,
        zero_point: r.i8()?,
    };
    let output_scale = r.scale()?;
    validate::check_io_scale(output_scale)?;
    let n_nodes = r.u16()? as usize;
    let mut v = Validator::new(&input_shape, input_quant, output_scale, n_nodes)?;
    let mut model = Model {
        input_shape,
        input_quant,
        output_scale,
        nodes: Vec::with_capacity(n_nodes),
    };
    // Array lengths depend on the shapes of earlier tensors, so each node is validated before
    // the next is read.
    for node in 0..n_nodes {
        r.node = node;
        let parsed = r.node(v.shapes())?;
        v.node(&parsed)?;
        model.nodes.push(parsed);
    }
    if r.pos != bytes.len() {
        return Err(ModelError::header(
            Code::TrailingBytes,
            format!("{} bytes after the last node", bytes.len() - r.pos),
        ));
    }
    let analysis = v.finish()?;
    Ok((model, analysis))
}

/// Encodes a model canonically. The model should be valid ([`validate::validate`]); an
/// invalid one encodes to bytes that [`decode`] rejects.
pub fn encode(model: &Model) -> Vec<u8> {
    let mut w = Vec::new();
    w.extend_from_slice(&MAGIC);
    w.push(VERSION);
    put_shape(&mut w, &model.input_shape);
    put_scale(&mut w, model.input_quant.scale);
    w.push(model.input_quant.zero_point as u8);
    put_scale(&mut w, model.output_scale);
    w.extend_from_slice(&(model.nodes.len() as u16).to_le_bytes());
    for node in &model.nodes {
        match node {
            Node::Dense(d) => {
                w.push(tag::DENSE);
                w.extend_from_slice(&d.input.to_le_bytes());
                w.extend_from_slice(&d.out_features.to_le_bytes());
                put_output(&mut w, &d.out);
                put_layer_params(&mut w, &d.bias, &d.weights);
            }
            Node::Conv(c) => {
                w.push(if c.one_d { tag::CONV1D } else { tag::CONV2D });
                w.extend_from_slice(&c.input.to_le_bytes());
                w.extend_from_slice(&c.out_channels.to_le_bytes());
                w.extend_from_slice(&c.groups.to_le_bytes());
                if c.one_d {
                    let win = &c.window;
                    for v in [win.kernel[1], win.stride[1], win.pads[1], win.pads[3]] {
                        w.extend_from_slice(&v.to_le_bytes());
                    }
                } else {
                    put_window(&mut w, &c.window);
                }
                put_output(&mut w, &c.out);
                put_layer_params(&mut w, &c.bias, &c.weights);
            }
            Node::MaxPool(p) => {
                w.push(tag::MAXPOOL);
                w.extend_from_slice(&p.input.to_le_bytes());
                put_window(&mut w, &p.window);
            }
            Node::AvgPool(p) => {
                w.push(tag::AVGPOOL);
                w.extend_from_slice(&p.input.to_le_bytes());
                put_window(&mut w, &p.window);
                w.push(p.count_include_pad as u8);
            }
            Node::Add(a) => {
                w.push(tag::ADD);
                w.extend_from_slice(&a.a.to_le_bytes());
                w.extend_from_slice(&a.b.to_le_bytes());
                put_scale(&mut w, a.a_requant);
                put_scale(&mut w, a.b_requant);
                put_output(&mut w, &a.out);
            }
            Node::Clamp { input, min, max } => {
                w.push(tag::CLAMP);
                w.extend_from_slice(&input.to_le_bytes());
                w.extend_from_slice(&[*min as u8, *max as u8]);
            }
            Node::Reshape { input, shape } => {
                w.push(tag::RESHAPE);
                w.extend_from_slice(&input.to_le_bytes());
                put_shape(&mut w, shape);
            }
            Node::Lut {
                input,
                zero_point,
                table,
            } => {
                w.push(tag::LUT);
                w.extend_from_slice(&input.to_le_bytes());
                w.push(*zero_point as u8);
                w.extend(table.iter().map(|&v| v as u8));
            }
            Node::Softmax { input, exp_table } => {
                w.push(tag::SOFTMAX);
                w.extend_from_slice(&input.to_le_bytes());
                for v in exp_table.iter() {
                    w.extend_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    w
}

fn put_shape(w: &mut Vec<u8>, shape: &[u32]) {
    w.push(shape.len() as u8);
    for d in shape {
        w.extend_from_slice(&d.to_le_bytes());
    }
}

fn put_scale(w: &mut Vec<u8>, s: Scale) {
    w.extend_from_slice(&s.mult.to_le_bytes());
    w.push(s.shift as u8);
}

fn put_window(w: &mut Vec<u8>, win: &Window) {
    for v in win.kernel.iter().chain(&win.stride).chain(&win.pads) {
        w.extend_from_slice(&v.to_le_bytes());
    }
}

fn put_output(w: &mut Vec<u8>, out: &Output) {
    w.push((out.requant.len() > 1) as u8);
    for &rq in &out.requant {
        put_scale(w, rq);
    }
    w.extend_from_slice(&[out.zero_point as u8, out.act_min as u8, out.act_max as u8]);
}

fn put_layer_params(w: &mut Vec<u8>, bias: &[i32], weights: &[i8]) {
    for b in bias {
        w.extend_from_slice(&b.to_le_bytes());
    }
    w.extend(weights.iter().map(|&v| v as u8));
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Node being read ([`HEADER`] while reading the header): the `node` of its errors.
    node: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ModelError> {
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

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ModelError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ModelError> {
        Ok(self.array::<1>()?[0])
    }
    fn i8(&mut self) -> Result<i8, ModelError> {
        Ok(self.u8()? as i8)
    }
    fn u16(&mut self) -> Result<u16, ModelError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, ModelError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn i32(&mut self) -> Result<i32, ModelError> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn flag(&mut self, field: &'static str) -> Result<bool, ModelError> {
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
    fn shape(&mut self) -> Result<Vec<u32>, ModelError> {
        let rank = self.u8()? as usize;
        validate::check_rank(self.node, rank)?;
        let shape = (0..rank)
            .map(|_| self.u32())
            .collect::<Result<Vec<_>, _>>()?;
        validate::check_dims(self.node, &shape)?;
        Ok(shape)
    }

    fn scale(&mut self) -> Result<Scale, ModelError> {
        Ok(Scale {
            mult: self.i32()?,
            shift: self.i8()?,
        })
    }

    fn window(&mut self) -> Result<Window, ModelError> {
        let mut v = [0u16; 8];
        for x in &mut v {
            *x = self.u16()?;
        }
        Ok(Window {
            kernel: [v[0], v[1]],
            stride: [v[2], v[3]],
            pads: [v[4], v[5], v[6], v[7]],
        })
    }

    fn output(&mut self, channels: u32) -> Result<Output, ModelError> {
        let per_channel = self.flag("per_channel")?;
        if per_channel && channels < 2 {
            // One channel has one multiplier: only the per-tensor encoding is canonical.
            return Err(ModelError::at(
                Code::PerChannelNotCanonical,
                self.node,
                format!("per_channel = 1 with {channels} channel(s)"),
            ));
        }
        let count = if per_channel { channels as usize } else { 1 };
        self.reserve(count, 5)?;
        let requant = (0..count).map(|_| self.scale()).collect::<Result<_, _>>()?;
        Ok(Output {
            requant,
            zero_point: self.i8()?,
            act_min: self.i8()?,
            act_max: self.i8()?,
        })
    }

    /// Fails early (before allocating) when fewer than `count · width` bytes remain.
    fn reserve(&self, count: usize, width: usize) -> Result<(), ModelError> {
        let need = count.saturating_mul(width);
        let rest = self.bytes.len() - self.pos;
        if need > rest {
            return Err(self.truncated(need - rest));
        }
        Ok(())
    }

    fn layer_params(
        &mut self,
        channels: u32,
        fan_in: u64,
    ) -> Result<(Vec<i32>, Vec<i8>), ModelError> {
        self.reserve(channels as usize, 4)?;
        let bias = (0..channels)
            .map(|_| self.i32())
            .collect::<Result<_, _>>()?;
        let n = (channels as u64).saturating_mul(fan_in);
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        let weights = self.take(n)?.iter().map(|&b| b as i8).collect();
        Ok((bias, weights))
    }

    /// A tensor id, checked as soon as it is read: the node may only read earlier tensors.
    fn tensor(&mut self, shapes: &[Vec<u32>]) -> Result<TensorId, ModelError> {
        let id = self.u16()?;
        validate::tensor_shape(self.node, id, shapes)?;
        Ok(id)
    }

    fn input_shape<'s>(
        &self,
        id: TensorId,
        shapes: &'s [Vec<u32>],
    ) -> Result<&'s [u32], ModelError> {
        validate::tensor_shape(self.node, id, shapes)
    }

    fn node(&mut self, shapes: &[Vec<u32>]) -> Result<Node, ModelError> {
        let t = self.u8()?;
        Ok(match t {
            tag::DENSE => {
                let input = self.tensor(shapes)?;
                let k = *self.input_shape(input, shapes)?.last().unwrap_or(&0);
                let out_features = self.u32()?;
                let out = self.output(out_features)?;
                let (bias, weights) = self.layer_params(out_features, k as u64)?;
                Node::Dense(Dense {
                    input,
                    out_features,
                    out,
                    bias,
                    weights,
                })
            }
            tag::CONV2D | tag::CONV1D => {
                let one_d = t == tag::CONV1D;
                let input = self.tensor(shapes)?;
                let in_channels = self.input_shape(input, shapes)?[0];
                let out_channels = self.u32()?;
                let groups = self.u32()?;
                validate::check_groups(self.node, in_channels, out_channels, groups)?;
                let window = if one_d {
                    let (k, s, pl, pr) = (self.u16()?, self.u16()?, self.u16()?, self.u16()?);
                    Window {
                        kernel: [1, k],
                        stride: [1, s],
                        pads: [0, pl, 0, pr],
                    }
                } else {
                    self.window()?
                };
                let out = self.output(out_channels)?;
                let fan_in = (in_channels / groups) as u64
                    * window.kernel[0] as u64
                    * window.kernel[1] as u64;
                let (bias, weights) = self.layer_params(out_channels, fan_in)?;
                Node::Conv(Conv {
                    input,
                    one_d,
                    out_channels,
                    window,
                    groups,
                    out,
                    bias,
                    weights,
                })
            }
            tag::MAXPOOL => Node::MaxPool(Pool {
                input: self.tensor(shapes)?,
                window: self.window()?,
                count_include_pad: false,
            }),
            tag::AVGPOOL => Node::AvgPool(Pool {
                input: self.tensor(shapes)?,
                window: self.window()?,
                count_include_pad: self.flag("count_include_pad")?,
            }),
            tag::ADD => Node::Add(Add {
                a: self.tensor(shapes)?,
                b: self.tensor(shapes)?,
                a_requant: self.scale()?,
                b_requant: self.scale()?,
                out: self.output(1)?,
            }),
            tag::CLAMP => Node::Clamp {
                input: self.tensor(shapes)?,
                min: self.i8()?,
                max: self.i8()?,
            },
            tag::RESHAPE => Node::Reshape {
                input: self.tensor(shapes)?,
                shape: self.shape()?,
            },
            tag::LUT => {
                let input = self.tensor(shapes)?;
                let zero_point = self.i8()?;
                let table = self.array::<256>()?.map(|b| b as i8);
                Node::Lut {
                    input,
                    zero_point,
                    table: Box::new(table),
                }
            }
            tag::SOFTMAX => {
                let input = self.tensor(shapes)?;
                let mut exp_table = [0u16; 256];
                for e in &mut exp_table {
                    *e = self.u16()?;
                }
                Node::Softmax {
                    input,
                    exp_table: Box::new(exp_table),
                }
            }
            tag => {
                return Err(ModelError::at(
                    Code::UnknownOp,
                    self.node,
                    format!("tag 0x{tag:02x}"),
                ))
            }
        })
    }
}
