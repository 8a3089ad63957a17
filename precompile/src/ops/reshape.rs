//! Reshape (SPEC §3.8, tag 0x08): same elements, new shape (Flatten is a reshape to one
//! axis). Keeps its input's quantization; costs only the node's fixed price.

use super::{input_scale, Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::EngineTensor;
use crate::error::{Code, ModelError};
use crate::model::{Scale, TensorId};
use crate::validate::{check_shape, numel};

const TAG: u8 = 0x08;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reshape {
    pub input: TensorId,
    pub shape: Vec<u32>,
}

impl Op for Reshape {
    const TAGS: &'static [u8] = &[TAG];
    /// The input it passes on.
    type Prepared = TensorId;

    fn name(&self) -> &'static str {
        "Reshape"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        Ok(Reshape {
            input: r.tensor(shapes)?,
            shape: r.shape()?,
        })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        crate::codec::put_shape(w, &self.shape);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let first = &shapes[self.input as usize];
        check_shape(node, &self.shape)?;
        if numel(&self.shape) != numel(first) {
            return Err(ModelError::at(
                Code::ReshapeMismatch,
                node,
                format!("cannot reshape {first:?} to {:?}", self.shape),
            ));
        }
        Ok(self.shape.clone())
    }

    fn check(
        &self,
        _: usize,
        zps: &[i8],
        _: &[Vec<u32>],
        _: &[u32],
    ) -> Result<Checked, ModelError> {
        Ok(Checked::keeps_input(zps, self.input))
    }

    fn fixed_scale(&self, scales: &[Option<Scale>]) -> Option<Scale> {
        input_scale(scales, self.input)
    }

    /// Same buffer, new shape: only the node's fixed cost.
    fn cost(&self, _: &[Vec<u32>], _: &[u32]) -> Cost {
        Cost::default()
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        cx.value(self.input).clone()
    }

    fn prepare(&self) -> TensorId {
        self.input
    }

    fn run(input: &TensorId, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        cx.value(*input).clone()
    }
}

#[cfg(feature = "testkit")]
impl Reshape {
    /// A flatten, or for an even 1-D tensor a split into two rows.
    pub fn random(cur: TensorId, shape: &[u32]) -> Self {
        let n = numel(shape) as u32;
        let new = if shape.len() == 1 && n.is_multiple_of(2) {
            vec![2, n / 2]
        } else {
            vec![n]
        };
        Reshape {
            input: cur,
            shape: new,
        }
    }
}
