//! The AArch64 path: per pair of rows of `B`, four 128-bit vectors of interleaved
//! `(b₀, b₁)` int16 pairs (4 columns each); `smull`/`smull2` against the broadcast `(a₀, a₁)`
//! and a pairwise add give `a₀·b₀ + a₁·b₁` per column in int32, added with wrapping like the
//! scalar path. (Not compiled on the x86 reference machine: no AArch64 standard library is
//! installed there; `cargo test` on an AArch64 host runs the path-forcing tests on it.)
#![allow(unsafe_code)] // SIMD intrinsics; each call site states why it is sound.

use std::arch::aarch64::*;

use super::{Lane, Tile, MR, NR};

pub(super) fn tile<E: Lane>(
    lhs: &[&[i16]; MR],
    rows: usize,
    pairs: usize,
    panel: &[E],
    tile: &mut Tile,
) {
    assert!(panel.len() >= pairs * 2 * NR);
    assert!(lhs[..rows].iter().all(|row| row.len() >= 2 * pairs));
    // SAFETY: `Path::Neon` is only selected when the CPU reports neon, and the asserts above
    // establish every bound the kernel reads within.
    unsafe { kernel(lhs, rows, pairs, panel, tile) }
}

#[target_feature(enable = "neon")]
unsafe fn kernel<E: Lane>(
    lhs: &[&[i16]; MR],
    rows: usize,
    pairs: usize,
    panel: &[E],
    tile: &mut Tile,
) {
    for (i, out) in tile.iter_mut().enumerate().take(rows) {
        let mut acc = [vdupq_n_s32(0); NR / 4];
        for q in 0..pairs {
            let pair =
                i32::from(lhs[i][2 * q] as u16) | (i32::from(lhs[i][2 * q + 1] as u16) << 16);
            let a = vreinterpretq_s16_s32(vdupq_n_s32(pair));
            for (c, lanes) in acc.iter_mut().enumerate() {
                // SAFETY: q < pairs; the panel holds 2·NR int16 per pair, 8 per vector.
                let b = unsafe {
                    let p = panel.as_ptr().add(q * 2 * NR + 8 * c);
                    if E::NARROW {
                        vmovl_s8(vld1_s8(p.cast()))
                    } else {
                        vld1q_s16(p.cast())
                    }
                };
                let lo = vmull_s16(vget_low_s16(a), vget_low_s16(b));
                let hi = vmull_high_s16(a, b);
                *lanes = vaddq_s32(*lanes, vpaddq_s32(lo, hi));
            }
        }
        for (c, lanes) in acc.iter().enumerate() {
            // SAFETY: out holds NR int32, 4 per vector.
            unsafe { vst1q_s32(out.as_mut_ptr().add(4 * c), *lanes) };
        }
    }
}
