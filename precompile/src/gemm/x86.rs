//! x86-64 paths: AVX-512 VNNI (`vpdpwssd`: 16 lanes, each `+= a₀·b₀ + a₁·b₁`) and AVX2
//! (`vpmaddwd` then `vpaddd`, two 8-lane halves per panel). Both wrap in int32 like the scalar
//! path. Few rows get several independent accumulator chains so a vector×matrix product is
//! not bound by the multiply-add's latency.
#![allow(unsafe_code)] // SIMD intrinsics; each call site states why it is sound.

use std::arch::x86_64::*;

use super::{requant, Lane, Lanes, Tile, MR, NR};

pub(super) fn requant_avx512(
    acc: &[i32; NR],
    lanes: &Lanes,
    consts: [i64; 3],
    out: &mut [i64; NR],
) {
    // SAFETY: only reached on `Path::Avx512Vnni`, selected when the CPU has these features.
    unsafe { requant_512(acc, lanes, consts, out) }
}

/// The shared epilogue compiled for AVX-512 (the same source as every other path).
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni")]
unsafe fn requant_512(acc: &[i32; NR], lanes: &Lanes, consts: [i64; 3], out: &mut [i64; NR]) {
    requant(acc, lanes, consts, out)
}

pub(super) fn requant_avx2(acc: &[i32; NR], lanes: &Lanes, consts: [i64; 3], out: &mut [i64; NR]) {
    // SAFETY: only reached on `Path::Avx2`, selected when the CPU has AVX2.
    unsafe { requant_256(acc, lanes, consts, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn requant_256(acc: &[i32; NR], lanes: &Lanes, consts: [i64; 3], out: &mut [i64; NR]) {
    requant(acc, lanes, consts, out)
}

fn check<E>(lhs: &[&[i16]; MR], rows: usize, pairs: usize, panel: &[E]) {
    // The bounds every unchecked access below relies on.
    assert!(panel.len() >= pairs * 2 * NR);
    assert!(lhs[..rows].iter().all(|row| row.len() >= 2 * pairs));
}

pub(super) fn tile_avx512<E: Lane>(
    lhs: &[&[i16]; MR],
    rows: usize,
    pairs: usize,
    panel: &[E],
    tile: &mut Tile,
) {
    check(lhs, rows, pairs, panel);
    // SAFETY: `Path::Avx512Vnni` is only selected when the CPU reports avx512f, avx512bw and
    // avx512vnni (`Path::available`), and `check` established the slice bounds.
    unsafe {
        match rows {
            1 => avx512::<E, 1, 8>(lhs, pairs, panel, tile),
            2 => avx512::<E, 2, 4>(lhs, pairs, panel, tile),
            3 => avx512::<E, 3, 1>(lhs, pairs, panel, tile),
            _ => avx512::<E, 4, 1>(lhs, pairs, panel, tile),
        }
    }
}

/// Pair `q` of a panel (2·NR elements) as 32 int16 lanes.
///
/// # Safety
/// AVX-512 BW is available and the panel holds pair `q`.
#[inline(always)]
unsafe fn load512<E: Lane>(panel: *const E, q: usize) -> __m512i {
    // SAFETY: the caller's contract; unaligned loads of 32 (int8) or 64 (int16) bytes.
    unsafe {
        let p = panel.add(q * 2 * NR);
        if E::NARROW {
            _mm512_cvtepi8_epi16(_mm256_loadu_si256(p.cast()))
        } else {
            _mm512_loadu_si512(p.cast())
        }
    }
}

/// Pair `q` of a panel as two halves of 16 int16 lanes (columns 0–7 and 8–15).
///
/// # Safety
/// AVX2 is available and the panel holds pair `q`.
#[inline(always)]
unsafe fn load256x2<E: Lane>(panel: *const E, q: usize) -> [__m256i; 2] {
    // SAFETY: the caller's contract; unaligned loads of 16 (int8) or 32 (int16) bytes each.
    unsafe {
        let p = panel.add(q * 2 * NR);
        if E::NARROW {
            [
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.cast())),
                _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(NR).cast())),
            ]
        } else {
            [
                _mm256_loadu_si256(p.cast()),
                _mm256_loadu_si256(p.add(NR).cast()),
            ]
        }
    }
}

/// `R` rows, `U` accumulator chains per row (pairs `q ≡ u mod U` go to chain `u`). No
/// closures here: a closure does not inherit the function's target features, and its
/// intrinsics would become out-of-line calls.
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vnni")]
unsafe fn avx512<E: Lane, const R: usize, const U: usize>(
    lhs: &[&[i16]; MR],
    pairs: usize,
    panel: &[E],
    tile: &mut Tile,
) {
    let mut c = [[_mm512_setzero_si512(); R]; U];
    let rows: [*const i32; R] = std::array::from_fn(|i| lhs[i].as_ptr().cast::<i32>());
    let b = panel.as_ptr();
    let mut q = 0;
    while q + U <= pairs {
        for (u, chain) in c.iter_mut().enumerate() {
            // SAFETY: q + u < pairs: the panel holds 2·NR int16 (64 bytes) per pair and
            // every row 2·pairs int16 (read as int32 pairs, unaligned).
            unsafe {
                let bv = load512::<E>(b, q + u);
                for (acc, row) in chain.iter_mut().zip(rows) {
                    let a = _mm512_set1_epi32(row.add(q + u).read_unaligned());
                    *acc = _mm512_dpwssd_epi32(*acc, a, bv);
                }
            }
        }
        q += U;
    }
    while q < pairs {
        // SAFETY: as above, q < pairs.
        unsafe {
            let bv = load512::<E>(b, q);
            for i in 0..R {
                let a = _mm512_set1_epi32(rows[i].add(q).read_unaligned());
                c[0][i] = _mm512_dpwssd_epi32(c[0][i], a, bv);
            }
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

pub(super) fn tile_avx2<E: Lane>(
    lhs: &[&[i16]; MR],
    rows: usize,
    pairs: usize,
    panel: &[E],
    tile: &mut Tile,
) {
    check(lhs, rows, pairs, panel);
    // SAFETY: `Path::Avx2` is only selected when the CPU reports avx2 (`Path::available`),
    // and `check` established the slice bounds.
    unsafe {
        match rows {
            1 => avx2::<E, 1, 4>(lhs, pairs, panel, tile),
            2 => avx2::<E, 2, 2>(lhs, pairs, panel, tile),
            3 => avx2::<E, 3, 1>(lhs, pairs, panel, tile),
            _ => avx2::<E, 4, 1>(lhs, pairs, panel, tile),
        }
    }
}

#[target_feature(enable = "avx2")]
unsafe fn avx2<E: Lane, const R: usize, const U: usize>(
    lhs: &[&[i16]; MR],
    pairs: usize,
    panel: &[E],
    tile: &mut Tile,
) {
    let mut c = [[[_mm256_setzero_si256(); 2]; R]; U];
    let rows: [*const i32; R] = std::array::from_fn(|i| lhs[i].as_ptr().cast::<i32>());
    let b = panel.as_ptr();
    let mut q = 0;
    while q < pairs {
        // Chain u takes pair q + u; the tail (fewer than U pairs left) goes to chain 0.
        let chains = if q + U <= pairs { U } else { 1 };
        for (u, chain) in c.iter_mut().enumerate().take(chains) {
            // SAFETY: q + u < pairs: each pair is 64 bytes of the panel (two 32-byte
            // halves) and every row holds 2·pairs int16.
            unsafe {
                let [lo, hi] = load256x2::<E>(b, q + u);
                for (acc, row) in chain.iter_mut().zip(rows) {
                    let a = _mm256_set1_epi32(row.add(q + u).read_unaligned());
                    acc[0] = _mm256_add_epi32(acc[0], _mm256_madd_epi16(a, lo));
                    acc[1] = _mm256_add_epi32(acc[1], _mm256_madd_epi16(a, hi));
                }
            }
        }
        q += chains;
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
