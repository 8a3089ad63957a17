//! The portable path: the same tile as the SIMD paths, in plain wrapping int32 arithmetic.

use super::{Lane, Tile, MR, NR};

pub(super) fn tile<E: Lane>(
    lhs: &[&[i16]; MR],
    rows: usize,
    pairs: usize,
    panel: &[E],
    tile: &mut Tile,
) {
    for q in 0..pairs {
        let pair = &panel[q * 2 * NR..][..2 * NR];
        for (i, acc) in tile.iter_mut().enumerate().take(rows) {
            let (a0, a1) = (lhs[i][2 * q] as i32, lhs[i][2 * q + 1] as i32);
            for (j, lane) in acc.iter_mut().enumerate() {
                let dot = a0 * pair[2 * j].into() + a1 * pair[2 * j + 1].into();
                *lane = lane.wrapping_add(dot);
            }
        }
    }
}
