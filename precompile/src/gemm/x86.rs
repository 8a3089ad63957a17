//! x86-64 paths: AVX-512 VNNI (`vpdpwssd`: 16 lanes, each `+= a₀·b₀ + a₁·b₁`) and AVX2
//! (`vpmaddwd` then `vpaddd`, two 8-lane halves per panel). Both wrap in int32 like the scalar
//! path. Few rows get several independent accumulator chains so a vector×matrix product is
//! not bound by the multiply-add's latency.
#![allow(unsafe_code)] // SIMD intrinsics; each call site states why it is sound.

use std::arch::x86_64::*;

use super::{Tile, MR, NR};

/// Reads the pair `row[2q], row[2q+1]` as one int32 (x86 is little-endian: `row[2q]` low).
///
/// # Safety
/// `2q + 1 < row.len()`.
#[inline(always)]
unsafe fn pair_at(row: &[i16], q: usize) -> i32 {
    // SAFETY: the caller keeps 2q + 1 in bounds; an unaligned read of 4 bytes.
    unsafe { row.as_ptr().add(2 * q).cast::<i32>().read_unaligned() }
}

fn check(lhs: &[&[i16]; MR], rows: usize, pairs: usize, panel: &[i16]) {
    // The bounds every unchecked access below relies on.
    assert!(panel.len() >= pairs * 2 * NR);
    assert!(lhs[..rows].iter().all(|row| row.len() >= 2 * pairs));
}

pub(super) fn tile_avx512(lhs: &[&[i16]; MR], rows: usize, pairs: usize, panel: &[i16], tile: &mut Tile) {
    check(lhs, rows, pairs, panel);
    // SAFETY: `Path::Avx512Vnni` is only selected when the CPU reports avx512f, avx512bw and
    // avx512vnni (`Path::available`), and `check` established the slice bounds.
    unsafe {
        match rows {
            1 => avx512::<1, 4>(lhs, pairs, panel, tile),
            2 => avx512::<2, 2>(lhs, pairs, panel, tile),
            3 => avx512::<3, 1>(lhs, pairs, panel, tile),
            _ => avx512::<4, 1>(lhs, pairs, panel, tile),
        }
    }
}

/// `R` rows, `U` accumulator chains per row (pairs `q ≡ u mod U` go to chain `u`).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn avx512<const R: usize, const U: usize>(
    lhs: &[&[i16]; MR],
    pairs: usize,
    panel: &[i16],
    tile: &mut Tile,
) {
    let mut c = [[_mm512_setzero_si512(); R]; U];
    let b_at = |q: usize| {
        // SAFETY: q < pairs, and the panel holds 2·NR int16 (64 bytes) per pair.
        unsafe { _mm512_loadu_si512(panel.as_ptr().add(q * 2 * NR).cast()) }
    };
    let mut q = 0;
    while q + U <= pairs {
        for (u, chain) in c.iter_mut().enumerate() {
            let b = b_at(q + u);
            for (i, acc) in chain.iter_mut().enumerate() {
                // SAFETY: q + u < pairs and every row holds 2·pairs values.
                let a = _mm512_set1_epi32(unsafe { pair_at(lhs[i], q + u) });
                *acc = _mm512_dpwssd_epi32(*acc, a, b);
            }
        }
        q += U;
    }
    while q < pairs {
        let b = b_at(q);
        for (i, acc) in c[0].iter_mut().enumerate() {
            // SAFETY: as above.
            let a = _mm512_set1_epi32(unsafe { pair_at(lhs[i], q) });
            *acc = _mm512_dpwssd_epi32(*acc, a, b);
        }
        q += 1;
    }
    for i in 0..R {
        let mut sum = c[0][i];
        for chain in &c[1..] {
            sum = _mm512_add_epi32(sum, chain[i]);
        }
        // SAFETY: tile[i] is NR = 16 int32, one 512-bit store.
        unsafe { _mm512_storeu_si512(tile[i].as_mut_ptr().cast(), sum) };
    }
}

pub(super) fn tile_avx2(lhs: &[&[i16]; MR], rows: usize, pairs: usize, panel: &[i16], tile: &mut Tile) {
    check(lhs, rows, pairs, panel);
    // SAFETY: `Path::Avx2` is only selected when the CPU reports avx2 (`Path::available`),
    // and `check` established the slice bounds.
    unsafe {
        match rows {
            1 => avx2::<1, 4>(lhs, pairs, panel, tile),
            2 => avx2::<2, 2>(lhs, pairs, panel, tile),
            3 => avx2::<3, 1>(lhs, pairs, panel, tile),
            _ => avx2::<4, 1>(lhs, pairs, panel, tile),
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn avx2<const R: usize, const U: usize>(
    lhs: &[&[i16]; MR],
    pairs: usize,
    panel: &[i16],
    tile: &mut Tile,
) {
    let mut c = [[[_mm256_setzero_si256(); 2]; R]; U];
    let b_at = |q: usize, half: usize| {
        // SAFETY: q < pairs; each pair is 64 bytes, each half 32.
        unsafe { _mm256_loadu_si256(panel.as_ptr().add(q * 2 * NR + half * NR).cast()) }
    };
    let step = |chain: &mut [[__m256i; 2]; R], q: usize| {
        let b = [b_at(q, 0), b_at(q, 1)];
        for (i, acc) in chain.iter_mut().enumerate() {
            // SAFETY: q < pairs and every row holds 2·pairs values.
            let a = _mm256_set1_epi32(unsafe { pair_at(lhs[i], q) });
            for h in 0..2 {
                acc[h] = _mm256_add_epi32(acc[h], _mm256_madd_epi16(a, b[h]));
            }
        }
    };
    let mut q = 0;
    while q + U <= pairs {
        for (u, chain) in c.iter_mut().enumerate() {
            step(chain, q + u);
        }
        q += U;
    }
    while q < pairs {
        step(&mut c[0], q);
        q += 1;
    }
    for i in 0..R {
        for h in 0..2 {
            let mut sum = c[0][i][h];
            for chain in &c[1..] {
                sum = _mm256_add_epi32(sum, chain[i][h]);
            }
            // SAFETY: tile[i][8h..8h+8] is 8 int32, one 256-bit store.
            unsafe { _mm256_storeu_si256(tile[i].as_mut_ptr().add(8 * h).cast(), sum) };
        }
    }
}
