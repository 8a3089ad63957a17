//! Row-major layout helpers for the operators that move elements (Transpose, Slice, Pad,
//! Resize): strides and index walks for the scalar references, the rank-4 view the
//! engine kernels work in (every tensor has rank ≤ 4; leading axes of size 1 are added), and
//! the engine's one copy kernel for them, [`gather4`].

/// Elements charged per output element of [`gather4`] (Transpose, Slice, Pad, Resize): the
/// offset sum, the read (a cache miss per element when the innermost axis jumps, as a
/// transpose's does) and the write into fresh memory.
pub const GATHER_PASSES: u64 = 4;

/// An offset marking a position outside the input (Pad's border): it reads the fill value.
pub const OUTSIDE: usize = usize::MAX;

/// The engine's copy for the layout operators: the rank-4 output, in row-major order, whose
/// element `[i0, i1, i2, i3]` is `x[o[0][i0] + o[1][i1] + o[2][i2] + o[3][i3]]`, or `fill`
/// where any of those offsets is [`OUTSIDE`]. One table of offsets per output axis (their
/// lengths are the output's dimensions). Axes of one position only shift the others, so they
/// are folded into a base offset and the innermost loop runs over the last longer axis; a
/// long innermost axis that reads consecutive elements is copied as a block.
pub fn gather4(x: &[i64], o: &[Vec<usize>; 4], fill: i64) -> Vec<i64> {
    let n: usize = o.iter().map(Vec::len).product();
    let mut base = 0;
    let mut axes: Vec<&[usize]> = Vec::with_capacity(4);
    for t in o {
        match t.as_slice() {
            [OUTSIDE] => return vec![fill; n],
            [one] => base += one,
            long => axes.push(long),
        }
    }
    while axes.len() < 4 {
        axes.insert(0, &[0]);
    }
    let inner = axes[3];
    let block = inner.len() >= 8
        && inner
            .windows(2)
            .all(|w| w[0] != OUTSIDE && w[1] == w[0] + 1);
    let mut y = Vec::with_capacity(n);
    for &a in axes[0] {
        for &b in axes[1] {
            for &c in axes[2] {
                if a == OUTSIDE || b == OUTSIDE || c == OUTSIDE {
                    y.resize(y.len() + inner.len(), fill);
                } else if block {
                    let start = base + a + b + c + inner[0];
                    y.extend_from_slice(&x[start..start + inner.len()]);
                } else {
                    let at = base + a + b + c;
                    y.extend(
                        inner
                            .iter()
                            .map(|&d| if d == OUTSIDE { fill } else { x[at + d] }),
                    );
                }
            }
        }
    }
    y
}

/// Offsets of `len` positions stepping by `stride` from `start` (in elements).
pub fn stepped(len: usize, start: usize, stride: usize) -> Vec<usize> {
    (0..len).map(|i| start + i * stride).collect()
}

/// Row-major strides of `shape`.
pub fn strides(shape: &[u32]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for a in (0..shape.len().saturating_sub(1)).rev() {
        s[a] = s[a + 1] * shape[a + 1] as usize;
    }
    s
}

/// Every multi-index of `shape`, in row-major order.
pub fn indices(shape: &[u32]) -> impl Iterator<Item = Vec<usize>> + '_ {
    let total: usize = shape.iter().map(|&d| d as usize).product();
    let mut idx = vec![0usize; shape.len()];
    (0..total).map(move |n| {
        if n > 0 {
            for a in (0..shape.len()).rev() {
                idx[a] += 1;
                if idx[a] < shape[a] as usize {
                    break;
                }
                idx[a] = 0;
            }
        }
        idx.clone()
    })
}

/// Row-major strides of a rank-4 shape ([`dims4`]'s).
pub fn strides4(dims: [usize; 4]) -> [usize; 4] {
    [dims[1] * dims[2] * dims[3], dims[2] * dims[3], dims[3], 1]
}

/// `shape` as rank 4, with leading axes of size 1.
pub fn dims4(shape: &[u32]) -> [usize; 4] {
    let lead = 4 - shape.len();
    std::array::from_fn(|a| {
        if a < lead {
            1
        } else {
            shape[a - lead] as usize
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_walk_row_major() {
        let all: Vec<Vec<usize>> = indices(&[2, 1, 3]).collect();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], vec![0, 0, 0]);
        assert_eq!(all[2], vec![0, 0, 2]);
        assert_eq!(all[3], vec![1, 0, 0]);
        assert_eq!(strides(&[2, 1, 3]), vec![3, 3, 1]);
        assert_eq!(dims4(&[5, 6]), [1, 1, 5, 6]);
    }
}
