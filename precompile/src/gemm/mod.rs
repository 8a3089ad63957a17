//! The exact int8 matrix kernel behind Dense, the convolutions and MatMul of activations:
//! `C[M, N] = A[M, K] · B[K, N]` with int16 operands (an int8 value minus its zero point
//! spans 9 bits), int32 accumulators and the layer's requantization fused into the epilogue,
//! so accumulators never leave registers and the node writes only its int8 results.
//!
//! Why a kernel of our own: burn-ndarray's integer matmul is a plain triple loop (1.2 GMAC/s
//! at 256³, 0.26 GMAC/s for a conv's im2col product), and its fast float GEMM is exact only
//! while every partial sum stays below 2^24. The CPU's integer multiply-add units compute
//! `a₀·b₀ + a₁·b₁` of int16 pairs into int32 lanes exactly, which is what this uses.
//!
//! **Same bytes on every path.** [`Path`] picks AVX-512 VNNI, AVX2, NEON or portable scalar
//! code at run time. Each path adds the same products into int32 lanes in a different order;
//! two's-complement addition is associative modulo 2^32 and validation proves every final
//! sum fits in int32 (SPEC §4.4), so every order gives the same accumulator, and the epilogue
//! is one scalar function shared by all paths. Tests force each available path
//! ([`with_path`]) against the scalar reference.
//!
//! Layout: `B` is packed once ([`Packed`]) into panels of [`NR`] columns whose rows come in
//! interleaved pairs — `b[2q][n], b[2q+1][n]` for each column `n` — exactly what one
//! `vpmaddwd` / `vpdpwssd` consumes after broadcasting the pair `a[m][2q], a[m][2q+1]`.
//! `A` is row-major with `K` rounded up to even ([`Lhs`]). Padding columns and the odd
//! `K` row are zeros; gas counts the padded work (`padded_macs`).

use std::cell::Cell;

use crate::ops::layer::Output;

#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Columns per packed panel: one 512-bit vector of int32 lanes.
pub const NR: usize = 16;
/// Most rows of `A` one tile computes.
pub const MR: usize = 4;

/// An instruction-set path of the kernel. All give identical results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// x86-64 AVX-512 (F, BW, DQ) with VNNI (`vpdpwssd`, 32 int16 MACs per instruction).
    Avx512Vnni,
    /// x86-64 AVX2 (`vpmaddwd` + `vpaddd`, 16 MACs per instruction pair).
    Avx2,
    /// AArch64 NEON (`smlal`/`smlal2` on int16 halves).
    Neon,
    /// Portable Rust, for any other CPU.
    Scalar,
}

impl Path {
    /// Every path this CPU can run, fastest first (the first is the default); detected once.
    pub fn available() -> &'static [Path] {
        static PATHS: std::sync::OnceLock<Vec<Path>> = std::sync::OnceLock::new();
        PATHS.get_or_init(Path::detect)
    }

    fn detect() -> Vec<Path> {
        let mut paths = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                paths.push(Path::Avx512Vnni);
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                paths.push(Path::Avx2);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("neon") {
                paths.push(Path::Neon);
            }
        }
        paths.push(Path::Scalar);
        paths
    }

    fn best() -> Path {
        Path::available()[0]
    }
}

thread_local! {
    static FORCED: Cell<Option<Path>> = const { Cell::new(None) };
}

/// The path kernels on this thread use: the forced one inside [`with_path`], else the best.
pub fn current_path() -> Path {
    FORCED.with(|f| f.get()).unwrap_or_else(Path::best)
}

/// Runs `f` with every kernel on this thread forced onto `path` (tests and benchmarks).
/// `path` must be one of [`Path::available`]; any other falls back to scalar code.
pub fn with_path<R>(path: Path, f: impl FnOnce() -> R) -> R {
    let path = if Path::available().contains(&path) {
        path
    } else {
        Path::Scalar
    };
    let before = FORCED.with(|c| c.replace(Some(path)));
    let r = f();
    FORCED.with(|c| c.set(before));
    r
}

/// `B[K, N]` packed into `ceil(N / NR)` panels of `ceil(K / 2)` interleaved row pairs.
#[derive(Clone, Debug)]
pub struct Packed {
    k: usize,
    n: usize,
    data: Panels,
}

/// Panel storage: int8 for weights (half the memory traffic of a vector×matrix product,
/// which streams every weight once), int16 for operands that are activations minus a zero
/// point. Kernels widen int8 to int16 as they load, so both give the same products.
#[derive(Clone, Debug)]
enum Panels {
    Narrow(Vec<i8>),
    Wide(Vec<i16>),
}

/// One panel of either width.
#[derive(Clone, Copy)]
enum Panel<'a> {
    Narrow(&'a [i8]),
    Wide(&'a [i16]),
}

impl Packed {
    /// Packs an int16 `B` row by row: `fill(k, row)` writes row `k` (`N` values, zeroed
    /// before).
    pub fn from_rows(k: usize, n: usize, mut fill: impl FnMut(usize, &mut [i16])) -> Self {
        let panel_len = k.div_ceil(2) * 2 * NR;
        let mut data = vec![0i16; n.div_ceil(NR) * panel_len];
        let mut row = vec![0i16; n];
        for kk in 0..k {
            row.fill(0);
            fill(kk, &mut row);
            let base = (kk / 2) * 2 * NR + kk % 2;
            for (col, &v) in row.iter().enumerate() {
                data[(col / NR) * panel_len + base + (col % NR) * 2] = v;
            }
        }
        Packed {
            k,
            n,
            data: Panels::Wide(data),
        }
    }

    /// Packs the int8 `B = Wᵀ` of a row-major `W [N][K]` (Dense weights as PyTorch stores
    /// them), reading `W` in order: transposing element by element would walk `W`'s columns
    /// and miss the cache on every element of a large layer.
    pub fn from_int8_transposed(k: usize, n: usize, w: &[i8]) -> Self {
        let panel_len = k.div_ceil(2) * 2 * NR;
        let mut data = vec![0i8; n.div_ceil(NR) * panel_len];
        for (col, row) in w.chunks_exact(k.max(1)).take(n).enumerate() {
            let base = (col / NR) * panel_len + (col % NR) * 2;
            for (kk, &v) in row.iter().enumerate() {
                data[base + (kk / 2) * 2 * NR + kk % 2] = v;
            }
        }
        Packed {
            k,
            n,
            data: Panels::Narrow(data),
        }
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn n(&self) -> usize {
        self.n
    }

    fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }

    fn panel(&self, p: usize) -> Panel<'_> {
        let len = self.pairs() * 2 * NR;
        match &self.data {
            Panels::Narrow(d) => Panel::Narrow(&d[p * len..][..len]),
            Panels::Wide(d) => Panel::Wide(&d[p * len..][..len]),
        }
    }
}

/// `A[M, K]` row-major with rows padded to an even length.
#[derive(Clone, Debug)]
pub struct Lhs {
    m: usize,
    k: usize,
    data: Vec<i16>,
}

impl Lhs {
    /// `A` given element-wise: `a(m, k)`.
    pub fn new(m: usize, k: usize, a: impl Fn(usize, usize) -> i16) -> Self {
        let stride = padded(k);
        let mut data = vec![0i16; m * stride];
        for i in 0..m {
            for j in 0..k {
                data[i * stride + j] = a(i, j);
            }
        }
        Lhs { m, k, data }
    }

    /// `A` from row-major values and a zero point to subtract from each.
    pub fn from_rows(values: &[i64], m: usize, k: usize, zero_point: i64) -> Self {
        Lhs::new(m, k, |i, j| (values[i * k + j] - zero_point) as i16)
    }

    fn row(&self, i: usize) -> &[i16] {
        let stride = padded(self.k);
        &self.data[i * stride..][..stride]
    }
}

fn padded(k: usize) -> usize {
    k.div_ceil(2) * 2
}

/// Multiply-accumulates the kernel performs for `M × K × N`: columns rounded up to whole
/// panels and `K` to whole pairs, which is what gas charges.
pub fn padded_macs(m: u64, k: u64, n: u64) -> u64 {
    m.saturating_mul(k.div_ceil(2) * 2)
        .saturating_mul(n.div_ceil(NR as u64) * NR as u64)
}

/// Elements a packed `K × N` right operand holds (what packing writes, padding included).
pub fn packed_len(k: u64, n: u64) -> u64 {
    (k.div_ceil(2) * 2).saturating_mul(n.div_ceil(NR as u64) * NR as u64)
}

/// Outputs the epilogue computes for an `M × N` result: whole panels of lanes, whether or
/// not a panel's last columns exist (gas charges these, not just the real outputs).
pub fn padded_outputs(m: u64, n: u64) -> u64 {
    m.saturating_mul(n.div_ceil(NR as u64) * NR as u64)
}

/// Elements an `M × K` left operand holds.
pub fn lhs_len(m: u64, k: u64) -> u64 {
    m.saturating_mul(k.div_ceil(2) * 2)
}

/// Where accumulators go after the fused epilogue.
pub struct Epilogue<'a> {
    /// The layer's requantization (multipliers per channel or one), zero point and clamp.
    pub out: &'a Output,
    /// Bias per channel, or empty for none.
    pub bias: &'a [i32],
    /// Whether channels run along `C`'s rows (convolutions: `W · cols`) or columns (Dense).
    pub channels_on_rows: bool,
    /// Channel of `C`'s first row or column (a convolution group's first output channel).
    pub channel_offset: usize,
    /// Element `(m, n)` of `C` lands at `out[offset + m · row_stride + n]`.
    pub row_stride: usize,
    pub offset: usize,
}

impl Epilogue<'_> {
    /// Constants of channel `ch` in lane `j` of `lanes`.
    fn set_lane(&self, lanes: &mut Lanes, j: usize, ch: usize) {
        let rq = self.out.requant_of(ch);
        lanes.bias[j] = self.bias.get(ch).copied().unwrap_or(0);
        lanes.left[j] = rq.shift.max(0) as u32;
        lanes.mult[j] = rq.mult as i64;
        lanes.right[j] = (-(rq.shift as i32)).max(0) as u32;
    }

    /// Lanes of the `cols` channels starting at `first` (Dense: channels along a row).
    fn along(&self, first: usize, cols: usize) -> Lanes {
        let mut lanes = Lanes::default();
        for j in 0..cols {
            self.set_lane(&mut lanes, j, first + j);
        }
        lanes
    }

    /// Every lane on channel `ch` (convolutions: one channel per row).
    fn broadcast(&self, ch: usize) -> Lanes {
        let mut lanes = Lanes::default();
        for j in 0..NR {
            self.set_lane(&mut lanes, j, ch);
        }
        lanes
    }
}

/// Requantization constants of one tile row's `NR` lanes, one array per field so the lane
/// loop of [`requant`] vectorizes. Unused lanes are all zero (a harmless no-op).
#[derive(Clone, Copy, Default)]
struct Lanes {
    bias: [i32; NR],
    left: [u32; NR],
    mult: [i64; NR],
    right: [u32; NR],
}

/// SPEC §3's `REQUANT(acc + bias)` on one tile row: `MultiplyByQuantizedMultiplier` (left
/// shift, `SaturatingRoundingDoublingHighMul`, `RoundingDivideByPOT`), the zero point and the
/// clamp — step for step [`Output::apply`] (no saturation case: multipliers are ≥ 2^30, and
/// validation proves the lifted value fits in int32), in int64 lanes. One source for every
/// path: the SIMD paths inline it into their target-feature wrappers, where it vectorizes.
#[inline(always)]
fn requant(acc: &[i32; NR], l: &Lanes, [zp, lo, hi]: [i64; 3], out: &mut [i64; NR]) {
    for j in 0..NR {
        let acc = acc[j].wrapping_add(l.bias[j]) as i64;
        let v = crate::engine::mbq_wide(acc, l.left[j], l.mult[j], l.right[j]);
        out[j] = (v + zp).clamp(lo, hi);
    }
}

/// Accumulators of one `MR × NR` tile.
type Tile = [[i32; NR]; MR];

/// `C = A · B`, requantized by `epi` into `out`, on the current [`Path`].
pub fn gemm(a: &Lhs, b: &Packed, epi: &Epilogue<'_>, out: &mut [i64]) {
    debug_assert_eq!(a.k, b.k);
    let path = current_path();
    let pairs = b.pairs();
    let consts = [epi.out.zero_point, epi.out.act_min, epi.out.act_max].map(i64::from);
    let row_lanes: Vec<Lanes> = if epi.channels_on_rows {
        (0..a.m)
            .map(|i| epi.broadcast(epi.channel_offset + i))
            .collect()
    } else {
        Vec::new()
    };
    for p in 0..b.n.div_ceil(NR) {
        let panel = b.panel(p);
        let cols = NR.min(b.n - p * NR);
        let col_lanes = if epi.channels_on_rows {
            Lanes::default() // unused: every row has its own
        } else {
            epi.along(epi.channel_offset + p * NR, cols)
        };
        let mut m0 = 0;
        while m0 < a.m {
            let rows = MR.min(a.m - m0);
            let lhs: [&[i16]; MR] = std::array::from_fn(|i| a.row(m0 + i.min(rows - 1)));
            let mut tile: Tile = [[0; NR]; MR];
            tile_on(path, &lhs, rows, pairs, panel, &mut tile);
            for (i, acc) in tile.iter().enumerate().take(rows) {
                let lanes = row_lanes.get(m0 + i).unwrap_or(&col_lanes);
                let mut row = [0i64; NR];
                requant_on(path, acc, lanes, consts, &mut row);
                let start = epi.offset + (m0 + i) * epi.row_stride + p * NR;
                // A plain loop: `copy_from_slice` of 16 values is a libc call per row.
                for (dst, &v) in out[start..start + cols].iter_mut().zip(&row) {
                    *dst = v;
                }
            }
            m0 += rows;
        }
    }
}

fn requant_on(path: Path, acc: &[i32; NR], lanes: &Lanes, consts: [i64; 3], out: &mut [i64; NR]) {
    match path {
        #[cfg(target_arch = "x86_64")]
        Path::Avx512Vnni => x86::requant_avx512(acc, lanes, consts, out),
        #[cfg(target_arch = "x86_64")]
        Path::Avx2 => x86::requant_avx2(acc, lanes, consts, out),
        _ => requant(acc, lanes, consts, out),
    }
}

/// One tile: `tile[i][j] = Σ_q lhs[i][2q..2q+2] · panel pair q, column j`, for `i < rows`.
fn tile_on(
    path: Path,
    lhs: &[&[i16]; MR],
    rows: usize,
    pairs: usize,
    panel: Panel<'_>,
    tile: &mut Tile,
) {
    match (path, panel) {
        #[cfg(target_arch = "x86_64")]
        (Path::Avx512Vnni, Panel::Narrow(b)) => x86::tile_avx512(lhs, rows, pairs, b, tile),
        #[cfg(target_arch = "x86_64")]
        (Path::Avx512Vnni, Panel::Wide(b)) => x86::tile_avx512(lhs, rows, pairs, b, tile),
        #[cfg(target_arch = "x86_64")]
        (Path::Avx2, Panel::Narrow(b)) => x86::tile_avx2(lhs, rows, pairs, b, tile),
        #[cfg(target_arch = "x86_64")]
        (Path::Avx2, Panel::Wide(b)) => x86::tile_avx2(lhs, rows, pairs, b, tile),
        #[cfg(target_arch = "aarch64")]
        (Path::Neon, Panel::Narrow(b)) => neon::tile(lhs, rows, pairs, b, tile),
        #[cfg(target_arch = "aarch64")]
        (Path::Neon, Panel::Wide(b)) => neon::tile(lhs, rows, pairs, b, tile),
        (_, Panel::Narrow(b)) => scalar::tile(lhs, rows, pairs, b, tile),
        (_, Panel::Wide(b)) => scalar::tile(lhs, rows, pairs, b, tile),
    }
}

/// A panel element the SIMD paths load: int8 widened on load, or int16.
pub(crate) trait Lane: Copy + Into<i32> {
    /// Whether the element is one byte (`vpmovsxbw` on load).
    const NARROW: bool;
}

impl Lane for i8 {
    const NARROW: bool = true;
}

impl Lane for i16 {
    const NARROW: bool = false;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Requant;

    /// A plain triple loop in int64: the definition the kernel must meet.
    fn naive(a: &[i16], b: &[i16], m: usize, k: usize, n: usize) -> Vec<i64> {
        let mut c = vec![0i64; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k)
                    .map(|p| a[i * k + p] as i64 * b[p * n + j] as i64)
                    .sum();
            }
        }
        c
    }

    /// An epilogue that returns accumulators unchanged (multiplier 2^30 · 2^1 = 1): checks
    /// the products alone for accumulators that fit in int8 after the identity.
    fn identity() -> Output {
        Output {
            requant: vec![Requant {
                mult: 1 << 30,
                shift: 1,
            }],
            zero_point: 0,
            act_min: -128,
            act_max: 127,
        }
    }

    #[test]
    fn every_path_matches_the_triple_loop_on_every_tail_shape() {
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i64
        };
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 7, 17),
            (3, 2, 16),
            (5, 33, 31),
            (4, 64, 48),
            (9, 5, 3),
        ] {
            // Values in {-1, 0, 1} keep every sum inside int8, so the identity epilogue
            // exposes the raw accumulators.
            let a: Vec<i16> = (0..m * k).map(|_| (next() % 3 - 1) as i16).collect();
            let b: Vec<i16> = (0..k * n).map(|_| (next() % 3 - 1) as i16).collect();
            let want = naive(&a, &b, m, k, n);
            let want: Vec<i64> = want.iter().map(|&v| v.clamp(-128, 127)).collect();
            let lhs = Lhs::new(m, k, |i, j| a[i * k + j]);
            let wide = Packed::from_rows(k, n, |p, row| row.copy_from_slice(&b[p * n..][..n]));
            // The same B as int8 weights: W = Bᵀ, row-major [N][K].
            let w: Vec<i8> = (0..n * k).map(|i| b[(i % k) * n + i / k] as i8).collect();
            let narrow = Packed::from_int8_transposed(k, n, &w);
            let out_spec = identity();
            for (path, packed) in Path::available()
                .iter()
                .copied()
                .flat_map(|p| [(p, &wide), (p, &narrow)])
            {
                let mut out = vec![0i64; m * n];
                let epi = Epilogue {
                    out: &out_spec,
                    bias: &[],
                    channels_on_rows: false,
                    channel_offset: 0,
                    row_stride: n,
                    offset: 0,
                };
                with_path(path, || gemm(&lhs, packed, &epi, &mut out));
                assert_eq!(out, want, "{path:?} on {m}x{k}x{n}");
            }
        }
    }

    #[test]
    fn epilogue_is_output_apply_on_every_path() {
        let mut seed = 11u64;
        let mut next = |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for _ in 0..20_000 {
            let shift = next(40) as i8 - 31; // -31..=8
                                             // Any valid multiplier: 2^30 ≤ mult < 2^31.
            let rq = Requant {
                mult: (1 << 30) + next(1 << 30) as i32,
                shift,
            };
            // Any value whose lift by 2^left fits in int32, as validation guarantees.
            let limit = (i32::MAX >> shift.max(0)) as u64;
            let x = next(2 * limit + 1) as i64 - limit as i64;
            let bias = next(2001) as i32 - 1000;
            let acc = (x - bias as i64) as i32;
            let lo = next(256) as i8 as i32;
            let hi = next(256) as i8 as i32;
            let (lo, hi) = (lo.min(hi) as i8, lo.max(hi) as i8);
            let out = Output {
                requant: vec![rq],
                zero_point: next(256) as u8 as i8,
                act_min: lo,
                act_max: hi,
            };
            let want = out.apply(x as i32, 0) as i64;
            let epi = Epilogue {
                out: &out,
                bias: &[bias],
                channels_on_rows: true,
                channel_offset: 0,
                row_stride: 0,
                offset: 0,
            };
            let consts = [out.zero_point, out.act_min, out.act_max].map(i64::from);
            for &path in Path::available() {
                let mut row = [0i64; NR];
                requant_on(path, &[acc; NR], &epi.broadcast(0), consts, &mut row);
                assert_eq!(row, [want; NR], "{path:?} acc {acc} bias {bias} {rq:?}");
            }
        }
    }

    #[test]
    fn full_range_operands_agree_on_every_path() {
        // |a| ≤ 255, |b| ≤ 128 and K = 64: sums up to 2^21, checked through a right shift
        // of 14 so they fit int8 after requantization; any lost or doubled product shows.
        let (m, k, n) = (7, 64, 37);
        let a: Vec<i16> = (0..m * k).map(|i| ((i * 37 % 511) as i16) - 255).collect();
        let b: Vec<i16> = (0..k * n).map(|i| ((i * 91 % 256) as i16) - 128).collect();
        let lhs = Lhs::new(m, k, |i, j| a[i * k + j]);
        let packed = Packed::from_rows(k, n, |p, row| row.copy_from_slice(&b[p * n..][..n]));
        let spec = Output {
            requant: vec![Requant {
                mult: 1 << 30,
                shift: -13,
            }],
            zero_point: 3,
            act_min: -128,
            act_max: 127,
        };
        let bias: Vec<i32> = (0..n as i32).map(|j| j * 1000 - 5000).collect();
        let mut outs = Vec::new();
        for &path in Path::available() {
            let mut out = vec![0i64; m * n];
            let epi = Epilogue {
                out: &spec,
                bias: &bias,
                channels_on_rows: false,
                channel_offset: 0,
                row_stride: n,
                offset: 0,
            };
            with_path(path, || gemm(&lhs, &packed, &epi, &mut out));
            outs.push((path, out));
        }
        let want: Vec<i64> = naive(&a, &b, m, k, n)
            .iter()
            .enumerate()
            .map(|(i, &acc)| spec.apply(acc as i32 + bias[i % n], 0) as i64)
            .collect();
        for (path, out) in outs {
            assert_eq!(out, want, "{path:?}");
        }
    }
}
