//! Scalar fixed-point primitives of the spec (`docs/SPEC.md` §3), exactly as gemmlowp and
//! TFLite define them. The scalar reference implementation is built on these; the engine
//! computes the same functions on whole tensors and is tested against them.

use crate::model::Requant;

/// gemmlowp `SaturatingRoundingDoublingHighMul`: `a · b / 2^31` rounded to nearest, with
/// gemmlowp's asymmetric nudge (ties go toward +∞: 0.5 → 1 but −0.5 → 0), saturating the
/// single overflow case `MIN · MIN`.
pub fn srdhm(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32 // `/` truncates toward zero, as in C
}

/// gemmlowp `RoundingDivideByPOT`: `x / 2^exponent` rounded to nearest, ties away from zero.
pub fn rdbpot(x: i32, exponent: u32) -> i32 {
    debug_assert!(exponent <= 31);
    let mask: i64 = (1i64 << exponent) - 1;
    let remainder = x as i64 & mask;
    let threshold = (mask >> 1) + (x < 0) as i64;
    ((x as i64 >> exponent) + (remainder > threshold) as i64) as i32
}

/// TFLite `MultiplyByQuantizedMultiplier`: `x · mult · 2^(shift − 31)`.
///
/// The left shift is exact because validation proves `|x| · 2^shift < 2^31`; `None` means
/// that proof was violated (never for a validated model).
pub fn mbq(x: i32, rq: Requant) -> Option<i32> {
    let left = rq.shift.max(0) as u32;
    let right = (-(rq.shift as i32)).max(0) as u32;
    let lifted = i32::try_from((x as i64) << left).ok()?;
    Some(rdbpot(srdhm(lifted, rq.mult), right))
}

/// `n / d` rounded to nearest, ties away from zero (`d > 0`).
pub fn div_round(n: i64, d: i64) -> i64 {
    debug_assert!(d > 0);
    if n >= 0 {
        (n + d / 2) / d
    } else {
        (n - d / 2) / d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srdhm_rounds_half_away_and_saturates() {
        assert_eq!(srdhm(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(srdhm(1 << 30, 1 << 30), 1 << 29);
        // 3 · 2^30 / 2^31 = 1.5 → 2, but −1.5 → −1: the nudge sends ties toward +∞
        assert_eq!(srdhm(3, 1 << 30), 2);
        assert_eq!(srdhm(-3, 1 << 30), -1);
        assert_eq!(srdhm(1, 1 << 30), 1); // 0.5 → 1
        assert_eq!(srdhm(-1, 1 << 30), 0); // −0.5 → 0
        assert_eq!(srdhm(-5, 1 << 30), -2); // −2.5 → −2
        assert_eq!(srdhm(-7, 1 << 29), -2); // −1.75 → −2
    }

    #[test]
    fn rdbpot_rounds_half_away() {
        assert_eq!(rdbpot(5, 1), 3);
        assert_eq!(rdbpot(-5, 1), -3);
        assert_eq!(rdbpot(-4, 1), -2);
        assert_eq!(rdbpot(6, 2), 2); // 1.5 → 2
        assert_eq!(rdbpot(-6, 2), -2);
        assert_eq!(rdbpot(-7, 2), -2); // −1.75 → −2
        assert_eq!(rdbpot(i32::MIN, 31), -1);
        assert_eq!(rdbpot(i32::MAX, 31), 1);
        assert_eq!(rdbpot(7, 0), 7);
    }

    #[test]
    fn div_round_ties_away() {
        assert_eq!(div_round(1, 2), 1);
        assert_eq!(div_round(-1, 2), -1);
        assert_eq!(div_round(1, 3), 0);
        assert_eq!(div_round(-2, 3), -1);
        assert_eq!(div_round(0, 9), 0);
    }

    #[test]
    fn mbq_refuses_overflowing_left_shift() {
        let rq = Requant {
            mult: 1 << 30,
            shift: 2,
        };
        assert_eq!(mbq(1 << 29, rq), None);
        assert_eq!(mbq(1 << 28, rq), Some(1 << 29));
        assert_eq!(mbq(100, rq), Some(200));
    }
}
