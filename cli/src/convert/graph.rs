//! An ONNX file decoded into a small graph: constants (initializers and `Constant` nodes) as
//! plain arrays, the remaining nodes in file order (ONNX requires topological order), pruned
//! to the ones the output depends on.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use prost::Message;

use super::proto::{self, attr_type, data_type};
use super::qdq;

/// A constant tensor. Floating-point data is kept as `f32` (ONNX models store `float`);
/// integer data (shapes, axes) as `i64`.
#[derive(Clone, Debug, PartialEq)]
pub struct Const {
    pub dims: Vec<usize>,
    pub data: ConstData,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ConstData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Const {
    pub fn numel(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn f32(&self) -> Vec<f32> {
        match &self.data {
            ConstData::F32(v) => v.clone(),
            ConstData::I64(v) => v.iter().map(|&x| x as f32).collect(),
        }
    }

    pub fn i64(&self) -> Result<Vec<i64>> {
        match &self.data {
            ConstData::I64(v) => Ok(v.clone()),
            ConstData::F32(_) => bail!("expected an integer tensor, found float"),
        }
    }
}

/// A node attribute.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    Str(String),
    Strings(Vec<String>),
    Tensor(Const),
}

#[derive(Clone, Debug)]
pub struct Node {
    /// The node's name, or `#<index>` when the file leaves it empty.
    pub name: String,
    pub op: String,
    /// Input tensor names; an empty string is an omitted optional input.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attrs: HashMap<String, Attr>,
}

impl Node {
    /// `op `name`` for error messages.
    pub fn describe(&self) -> String {
        format!("{} node `{}`", self.op, self.name)
    }

    pub fn int(&self, key: &str, default: i64) -> Result<i64> {
        match self.attrs.get(key) {
            None => Ok(default),
            Some(Attr::Int(v)) => Ok(*v),
            Some(other) => bail!(
                "{}: attribute `{key}` should be an int, found {other:?}",
                self.describe()
            ),
        }
    }

    pub fn float(&self, key: &str, default: f32) -> Result<f32> {
        match self.attrs.get(key) {
            None => Ok(default),
            Some(Attr::Float(v)) => Ok(*v),
            Some(other) => bail!(
                "{}: attribute `{key}` should be a float, found {other:?}",
                self.describe()
            ),
        }
    }

    /// A list of floats: the `floats` attribute `key`, or the float tensor `key_as_tensor`
    /// that later ONNX-ML opsets write instead.
    pub fn floats(&self, key: &str) -> Result<Option<Vec<f32>>> {
        let tensor = format!("{key}_as_tensor");
        match (self.attrs.get(key), self.attrs.get(&tensor)) {
            (None, None) => Ok(None),
            (Some(Attr::Floats(v)), None) => Ok(Some(v.clone())),
            (None, Some(Attr::Tensor(t))) if matches!(t.data, ConstData::F32(_)) => {
                Ok(Some(t.f32()))
            }
            (a, b) => bail!(
                "{}: attribute `{key}` should be floats (or `{tensor}` a float tensor), found \
                 {a:?} {b:?}",
                self.describe()
            ),
        }
    }

    pub fn ints(&self, key: &str) -> Result<Option<Vec<i64>>> {
        match self.attrs.get(key) {
            None => Ok(None),
            Some(Attr::Ints(v)) => Ok(Some(v.clone())),
            Some(other) => bail!(
                "{}: attribute `{key}` should be ints, found {other:?}",
                self.describe()
            ),
        }
    }

    pub fn string(&self, key: &str) -> Result<Option<String>> {
        match self.attrs.get(key) {
            None => Ok(None),
            Some(Attr::Str(v)) => Ok(Some(v.clone())),
            Some(other) => bail!(
                "{}: attribute `{key}` should be a string, found {other:?}",
                self.describe()
            ),
        }
    }

    pub fn strings(&self, key: &str) -> Result<Option<Vec<String>>> {
        match self.attrs.get(key) {
            None => Ok(None),
            Some(Attr::Strings(v)) => Ok(Some(v.clone())),
            Some(other) => bail!(
                "{}: attribute `{key}` should be strings, found {other:?}",
                self.describe()
            ),
        }
    }

    /// Input `i` if present and non-empty.
    pub fn input(&self, i: usize) -> Option<&str> {
        self.inputs
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}

/// The domain of the ONNX-ML operators (tree ensembles, linear models, Scaler, ZipMap).
const ML_DOMAIN: &str = "ai.onnx.ml";

/// The graph output the model is converted for: the only one, or among several the only one
/// that is not integer or string labels (a classifier's `label` next to its probabilities,
/// whose branch [`Graph::prune`] then drops).
fn graph_output(outputs: &[proto::ValueInfoProto]) -> Result<String> {
    if let [only] = outputs {
        return Ok(only.name.clone());
    }
    let is_label = |v: &&proto::ValueInfoProto| {
        let elem = (v.r#type.as_ref())
            .and_then(|t| t.tensor_type.as_ref())
            .map(|t| t.elem_type);
        matches!(
            elem,
            Some(data_type::INT64 | data_type::INT32 | data_type::STRING)
        )
    };
    let values: Vec<&str> = (outputs.iter())
        .filter(|v| !is_label(v))
        .map(|v| v.name.as_str())
        .collect();
    match values[..] {
        [one] => Ok(one.to_string()),
        _ => bail!(
            "expected one graph output besides integer or string labels; found {:?} among {:?}",
            values,
            outputs.iter().map(|v| &v.name).collect::<Vec<_>>()
        ),
    }
}

/// One dimension of the declared input shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dim {
    Known(usize),
    Symbolic(String),
}

/// An integer graph input: categorical ids (`[N]` or `[N, C]`), which become one index input
/// of the Myelin model and which only embedding lookups (Gather) may read.
#[derive(Clone, Debug)]
pub struct IdInput {
    pub name: String,
    /// Ids per row: `C`, or 1 for `[N]`.
    pub per_row: usize,
    /// The declared shape without the batch axis: `[C]`, or `[]` for `[N]`.
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct Graph {
    /// Opset of the default (`ai.onnx`) domain.
    pub opset: i64,
    /// The float input (the Myelin model's int8 input).
    pub input: String,
    /// Declared input shape, batch axis first.
    pub input_dims: Vec<Dim>,
    /// Integer inputs, in the graph's order; their ids follow the float input's values in a
    /// data row.
    pub id_inputs: Vec<IdInput>,
    pub output: String,
    pub consts: HashMap<String, Const>,
    /// The integer constants stored as uint8 (a QuantizeLinear's output type is its zero
    /// point's, which the values alone do not tell).
    pub uint8: HashSet<String>,
    pub nodes: Vec<Node>,
}

impl Graph {
    pub fn load(path: &Path) -> Result<Graph> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        Graph::parse(&bytes).with_context(|| format!("loading ONNX model {}", path.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<Graph> {
        let model = proto::ModelProto::decode(bytes).context("not a valid ONNX ModelProto")?;
        let imports = |domain: &str| {
            (model.opset_import.iter())
                .find(|o| o.domain == domain || (domain.is_empty() && o.domain == "ai.onnx"))
                .map(|o| o.version)
        };
        let g = model
            .graph
            .ok_or_else(|| anyhow!("the model has no graph"))?;
        // A graph of ONNX-ML nodes alone (XGBoost's) imports no ai.onnx opset, and has no node
        // that would read it.
        let ml_only = imports(ML_DOMAIN).is_some() && g.node.iter().all(|n| n.domain == ML_DOMAIN);
        let opset = match imports("") {
            Some(v) => v,
            None if ml_only => 0,
            None => bail!("the model imports no ai.onnx opset"),
        };
        let mut consts = HashMap::new();
        let mut uint8 = HashSet::new();
        for t in &g.initializer {
            if t.data_type == data_type::UINT8 {
                uint8.insert(t.name.clone());
            }
            consts.insert(
                t.name.clone(),
                tensor(t).with_context(|| format!("initializer `{}`", t.name))?,
            );
        }
        let elem_type = |v: &proto::ValueInfoProto| {
            v.r#type
                .as_ref()
                .and_then(|t| t.tensor_type.as_ref())
                .map(|t| t.elem_type)
        };
        let is_ids = |v: &&proto::ValueInfoProto| {
            matches!(elem_type(v), Some(data_type::INT64 | data_type::INT32))
        };
        let (id_values, inputs): (Vec<&proto::ValueInfoProto>, Vec<&proto::ValueInfoProto>) = g
            .input
            .iter()
            .filter(|v| !consts.contains_key(&v.name))
            .partition(is_ids);
        ensure!(
            inputs.len() == 1,
            "expected exactly one float graph input (besides integer id inputs), found {}",
            inputs.len()
        );
        let id_inputs = id_values
            .iter()
            .map(|v| id_input(v))
            .collect::<Result<Vec<_>>>()?;
        let output = graph_output(&g.output)?;
        let input = inputs[0].name.clone();
        let tt = inputs[0]
            .r#type
            .as_ref()
            .and_then(|t| t.tensor_type.as_ref());
        let tt = tt.ok_or_else(|| anyhow!("graph input `{input}` is not a tensor"))?;
        ensure!(
            tt.elem_type == data_type::FLOAT,
            "graph input `{input}` has element type {}; only float (1) is supported",
            tt.elem_type
        );
        let input_dims = tt
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match (d.dim_value, &d.dim_param) {
                        (Some(v), _) if v > 0 => Dim::Known(v as usize),
                        (_, Some(p)) => Dim::Symbolic(p.clone()),
                        _ => Dim::Symbolic("?".into()),
                    })
                    .collect()
            })
            .unwrap_or_default();

        let mut nodes = Vec::new();
        for (i, n) in g.node.iter().enumerate() {
            ensure!(
                n.domain.is_empty() || n.domain == "ai.onnx" || n.domain == ML_DOMAIN,
                "node `{}` ({}) is in domain `{}`; only the default ONNX domain and {ML_DOMAIN} \
                 are supported{}",
                n.name,
                n.op_type,
                n.domain,
                if n.op_type.starts_with('Q') {
                    " (onnxruntime's QOperator format: quantize with \
                     quant_format=QuantFormat.QDQ instead)"
                } else {
                    ""
                }
            );
            let name = if n.name.is_empty() {
                format!("#{i}")
            } else {
                n.name.clone()
            };
            let mut attrs = HashMap::new();
            for a in &n.attribute {
                let v = attribute(a).with_context(|| {
                    format!("{} node `{name}`: attribute `{}`", n.op_type, a.name)
                })?;
                if let Some(v) = v {
                    attrs.insert(a.name.clone(), v);
                }
            }
            let node = Node {
                name,
                op: n.op_type.clone(),
                inputs: n.input.clone(),
                outputs: n.output.clone(),
                attrs,
            };
            // `Identity` of a constant (torch writes these for shared weights) is a constant,
            // and so is a Cast of one to float (torch casts integer scalars before arithmetic).
            let of_const =
                node.input(0).is_some_and(|i| consts.contains_key(i)) && node.outputs.len() == 1;
            let to_float = node
                .int("to", 0)
                .is_ok_and(|t| t == i64::from(data_type::FLOAT));
            if of_const && node.op == "Identity" {
                let value = consts[node.inputs[0].as_str()].clone();
                consts.insert(node.outputs[0].clone(), value);
            } else if of_const && node.op == "Cast" && to_float {
                let c = &consts[node.inputs[0].as_str()];
                let value = Const {
                    dims: c.dims.clone(),
                    data: ConstData::F32(c.f32()),
                };
                consts.insert(node.outputs[0].clone(), value);
            } else if node.op == "DequantizeLinear"
                && node.outputs.len() == 1
                && node
                    .inputs
                    .iter()
                    .all(|i| i.is_empty() || consts.contains_key(i))
            {
                // quantized weights and biases (QDQ models): their float values
                let value =
                    qdq::dequantize_const(&node, &consts).with_context(|| node.describe())?;
                consts.insert(node.outputs[0].clone(), value);
            } else if node.op == "Constant" {
                let uint8_value = n.attribute.iter().any(|a| {
                    a.name == "value"
                        && a.t
                            .as_ref()
                            .is_some_and(|t| t.data_type == data_type::UINT8)
                });
                if let (true, Some(out)) = (uint8_value, node.outputs.first()) {
                    uint8.insert(out.clone());
                }
                // `value`, or one of the scalar/list forms of opset 12
                let value = [
                    "value",
                    "value_float",
                    "value_floats",
                    "value_int",
                    "value_ints",
                ]
                .iter()
                .find_map(|k| node.attrs.get(*k));
                let value = match value {
                    Some(Attr::Tensor(t)) => t.clone(),
                    Some(Attr::Float(f)) => Const {
                        dims: vec![],
                        data: ConstData::F32(vec![*f]),
                    },
                    Some(Attr::Floats(f)) => Const {
                        dims: vec![f.len()],
                        data: ConstData::F32(f.clone()),
                    },
                    Some(Attr::Int(v)) => Const {
                        dims: vec![],
                        data: ConstData::I64(vec![*v]),
                    },
                    Some(Attr::Ints(v)) => Const {
                        dims: vec![v.len()],
                        data: ConstData::I64(v.clone()),
                    },
                    _ => bail!("{}: unsupported value attribute", node.describe()),
                };
                let out = node
                    .outputs
                    .first()
                    .ok_or_else(|| anyhow!("{} has no output", node.describe()))?;
                consts.insert(out.clone(), value);
            } else {
                nodes.push(node);
            }
        }
        let mut graph = Graph {
            opset,
            input,
            input_dims,
            id_inputs,
            output,
            consts,
            uint8,
            nodes,
        };
        graph.prune();
        Ok(graph)
    }

    /// Keeps only the nodes the output depends on.
    pub fn prune(&mut self) {
        let mut needed: HashSet<String> = HashSet::from([self.output.clone()]);
        let mut kept = Vec::new();
        for node in std::mem::take(&mut self.nodes).into_iter().rev() {
            if node.outputs.iter().any(|o| needed.contains(o)) {
                needed.extend(node.inputs.iter().filter(|s| !s.is_empty()).cloned());
                kept.push(node);
            }
        }
        kept.reverse();
        self.nodes = kept;
    }

    /// How many times each tensor is read (node inputs, plus one for the graph output).
    pub fn consumers(&self) -> HashMap<String, usize> {
        let mut count = HashMap::new();
        for n in &self.nodes {
            for i in n.inputs.iter().filter(|s| !s.is_empty()) {
                *count.entry(i.clone()).or_insert(0) += 1;
            }
        }
        *count.entry(self.output.clone()).or_insert(0) += 1;
        count
    }

    /// Ids per data row: those of every integer input.
    pub fn ids_per_row(&self) -> usize {
        self.id_inputs.iter().map(|i| i.per_row).sum()
    }

    /// The float input's shape without its batch axis, resolved against the rows of `data`
    /// (`data_dims` is the data's shape without its sample axis). With integer inputs, a row
    /// is flat: the float input's values, then the ids.
    pub fn sample_shape(&self, data_dims: &[usize]) -> Result<Vec<usize>> {
        let ids = self.ids_per_row();
        if ids > 0 {
            let row: usize = data_dims.iter().product();
            ensure!(
                data_dims.len() == 1 && row > ids,
                "the model reads {ids} ids besides `{}`: data rows must be flat, the float \
                 input's values then the ids; got rows of shape {data_dims:?}",
                self.input
            );
            return self.float_sample_shape(&[row - ids]);
        }
        self.float_sample_shape(data_dims)
    }

    fn float_sample_shape(&self, data_dims: &[usize]) -> Result<Vec<usize>> {
        let data_numel: usize = data_dims.iter().product();
        ensure!(
            !self.input_dims.is_empty(),
            "graph input `{}` has no declared shape",
            self.input
        );
        let declared = &self.input_dims[1..];
        let known: Option<Vec<usize>> = declared
            .iter()
            .map(|d| match d {
                Dim::Known(v) => Some(*v),
                Dim::Symbolic(_) => None,
            })
            .collect();
        match known {
            Some(shape) => {
                ensure!(
                    shape.iter().product::<usize>() == data_numel,
                    "the model input is [N, {}] but the data rows have shape {data_dims:?}",
                    shape
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                ensure!(
                    !shape.is_empty(),
                    "the model input has no axis besides the batch axis"
                );
                Ok(shape)
            }
            None => {
                ensure!(
                    data_dims.len() == declared.len(),
                    "the model input has rank {} (with batch) but the data rows have shape {data_dims:?}",
                    self.input_dims.len()
                );
                for (d, &v) in declared.iter().zip(data_dims) {
                    if let Dim::Known(k) = d {
                        ensure!(
                            *k == v,
                            "the model input is {:?} but the data rows have shape {data_dims:?}",
                            self.input_dims
                        );
                    }
                }
                Ok(data_dims.to_vec())
            }
        }
    }
}

/// An integer graph input, which must be `[N]` or `[N, C]` with `C` declared.
fn id_input(v: &proto::ValueInfoProto) -> Result<IdInput> {
    let dims: Vec<Option<usize>> = v
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| {
            s.dim
                .iter()
                .map(|d| d.dim_value.filter(|&v| v > 0).map(|v| v as usize))
                .collect()
        })
        .unwrap_or_default();
    let (per_row, shape) = match dims[..] {
        [_] => (1, vec![]),
        [_, Some(c)] => (c, vec![c]),
        _ => bail!(
            "integer graph input `{}` must be ids of shape [N] or [N, C] with C declared              (categorical features for embedding lookups)",
            v.name
        ),
    };
    Ok(IdInput {
        name: v.name.clone(),
        per_row,
        shape,
    })
}

fn attribute(a: &proto::AttributeProto) -> Result<Option<Attr>> {
    Ok(Some(match a.r#type {
        attr_type::FLOAT => Attr::Float(a.f),
        attr_type::INT => Attr::Int(a.i),
        attr_type::STRING => Attr::Str(String::from_utf8_lossy(&a.s).into_owned()),
        attr_type::TENSOR => Attr::Tensor(tensor(
            a.t.as_ref().ok_or_else(|| anyhow!("missing tensor"))?,
        )?),
        attr_type::FLOATS => Attr::Floats(a.floats.clone()),
        attr_type::INTS => Attr::Ints(a.ints.clone()),
        attr_type::STRINGS => Attr::Strings(
            (a.strings.iter())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        ),
        _ => return Ok(None), // graphs, sparse tensors, ...: no supported op reads them
    }))
}

/// Decodes a `TensorProto` (inline data only).
pub fn tensor(t: &proto::TensorProto) -> Result<Const> {
    ensure!(
        t.data_location == 0,
        "external tensor data is not supported (save the model with its weights inline)"
    );
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| anyhow!("negative dimension {d}")))
        .collect::<Result<Vec<_>>>()?;
    let n: usize = dims.iter().product();
    let raw = &t.raw_data;
    let data = match t.data_type {
        data_type::FLOAT if !raw.is_empty() => ConstData::F32(
            raw.chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        data_type::FLOAT => ConstData::F32(t.float_data.clone()),
        data_type::DOUBLE if !raw.is_empty() => ConstData::F32(
            raw.chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
        ),
        data_type::DOUBLE => ConstData::F32(t.double_data.iter().map(|&x| x as f32).collect()),
        data_type::INT64 if !raw.is_empty() => ConstData::I64(
            raw.chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        ),
        data_type::INT64 => ConstData::I64(t.int64_data.clone()),
        data_type::INT32 if !raw.is_empty() => ConstData::I64(
            raw.chunks_exact(4)
                .map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64)
                .collect(),
        ),
        data_type::INT32 => ConstData::I64(t.int32_data.iter().map(|&x| x as i64).collect()),
        data_type::INT8 if !raw.is_empty() => {
            ConstData::I64(raw.iter().map(|&b| b as i8 as i64).collect())
        }
        data_type::UINT8 if !raw.is_empty() => {
            ConstData::I64(raw.iter().map(|&b| b as i64).collect())
        }
        data_type::INT8 | data_type::UINT8 => {
            ConstData::I64(t.int32_data.iter().map(|&x| x as i64).collect())
        }
        other => bail!("tensor element type {other} is not supported"),
    };
    let len = match &data {
        ConstData::F32(v) => v.len(),
        ConstData::I64(v) => v.len(),
    };
    ensure!(
        len == n,
        "tensor holds {len} values; its shape {dims:?} needs {n}"
    );
    Ok(Const { dims, data })
}
