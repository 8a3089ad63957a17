//! Transpose (SPEC §3.2, tag 0x0B): permutes the axes of a tensor of rank ≤ 4,
//! `y[i_perm[0], …] = x[i_0, …]`, i.e. output axis `a` is input axis `perm[a]`. Keeps its
//! input's quantization.

use super::{input_scale, layout, Checked, Ctx, Op};
use crate::codec::Reader;
use crate::cost::Cost;
use crate::engine::EngineTensor;
use crate::error::{Code, ModelError};
use crate::model::{Scale, TensorId};
use crate::validate::{expect_rank, numel};

const TAG: u8 = 0x0B;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transpose {
    pub input: TensorId,
    /// Output axis `a` is input axis `perm[a]`; a permutation of `0..rank`, not the identity.
    pub perm: Vec<u8>,
}

impl Op for Transpose {
    const TAGS: &'static [u8] = &[TAG];
    type Prepared = Transpose;

    fn name(&self) -> &'static str {
        "Transpose"
    }

    fn inputs(&self) -> Vec<TensorId> {
        vec![self.input]
    }

    fn read(_: u8, r: &mut Reader<'_>, shapes: &[Vec<u32>]) -> Result<Self, ModelError> {
        let input = r.tensor(shapes)?;
        let rank = r.u8()? as usize;
        r.reserve(rank, 1)?;
        let perm = (0..rank).map(|_| r.u8()).collect::<Result<_, _>>()?;
        Ok(Transpose { input, perm })
    }

    fn write(&self, w: &mut Vec<u8>) {
        w.push(TAG);
        w.extend_from_slice(&self.input.to_le_bytes());
        w.push(self.perm.len() as u8);
        w.extend_from_slice(&self.perm);
    }

    fn output_shape(&self, node: usize, shapes: &[Vec<u32>]) -> Result<Vec<u32>, ModelError> {
        let x = &shapes[self.input as usize];
        expect_rank(node, x, self.perm.len())?;
        let mut seen = [false; 4];
        for &a in &self.perm {
            let a = a as usize;
            if a >= x.len() || seen[a] {
                return Err(ModelError::at(
                    Code::BadPermutation,
                    node,
                    format!("{:?} is not a permutation of 0..{}", self.perm, x.len()),
                ));
            }
            seen[a] = true;
        }
        if self.perm.iter().enumerate().all(|(i, &a)| i == a as usize) {
            return Err(ModelError::at(
                Code::IdentityNotCanonical,
                node,
                "the identity permutation (no node is the canonical encoding)",
            ));
        }
        Ok(self.perm.iter().map(|&a| x[a as usize]).collect())
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

    fn cost(&self, _: &[Vec<u32>], out: &[u32]) -> Cost {
        Cost {
            macs: 0,
            elems: layout::GATHER_PASSES * numel(out),
        }
    }

    fn reference(&self, cx: &Ctx<'_, Vec<i8>>) -> Vec<i8> {
        let x = cx.value(self.input);
        let in_strides = layout::strides(cx.shape(self.input));
        // Output axis `a` walks input axis `perm[a]`.
        let strides: Vec<usize> = self.perm.iter().map(|&a| in_strides[a as usize]).collect();
        layout::indices(cx.out_shape())
            .map(|idx| x[idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()])
            .collect()
    }

    fn prepare(&self) -> Transpose {
        self.clone()
    }

    /// One copy in rank 4: output axis `k` steps through input axis `axes[k]` (leading axes
    /// of size 1 keep their places).
    fn run(p: &Transpose, cx: &Ctx<'_, EngineTensor>) -> EngineTensor {
        let dims = layout::dims4(cx.shape(p.input));
        let strides = layout::strides4(dims);
        let lead = 4 - p.perm.len();
        let axes: [usize; 4] = std::array::from_fn(|a| {
            if a < lead {
                a
            } else {
                lead + p.perm[a - lead] as usize
            }
        });
        let o = axes.map(|a| layout::stepped(dims[a], 0, strides[a]));
        crate::host::unary(cx.value(p.input), &|x| layout::gather4(x, &o, 0))
    }
}

#[cfg(feature = "testkit")]
impl Transpose {
    /// A random non-identity permutation of a tensor of rank ≥ 2.
    pub fn random(rng: &mut crate::random::Rng, cur: TensorId, rank: usize) -> Self {
        let mut perm: Vec<u8> = (0..rank as u8).collect();
        while perm.iter().enumerate().all(|(i, &a)| i == a as usize) {
            for i in (1..rank).rev() {
                perm.swap(i, rng.range(0, i as i64) as usize);
            }
        }
        Transpose { input: cur, perm }
    }
}
