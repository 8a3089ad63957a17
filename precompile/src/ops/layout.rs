//! Row-major layout helpers for the operators that move elements (Transpose, Slice, Pad,
//! Concat, Resize): strides and index walks for the scalar references, and the rank-4 view the
//! engine kernels work in (every tensor has rank ≤ 4; leading axes of size 1 are added).

/// Elements charged per element a kernel copies out of a strided view (a permuted, stepped
/// or concatenated-along-an-inner-axis tensor into standard layout): ndarray walks such
/// copies element by element against the source's strides, measured up to ~50 ns per
/// element on the reference machine (`benches/benches/search.rs`, layout family), so 20
/// (4 gas).
pub const MOVE_PASSES: u64 = 20;

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
