//! Fixed-point ⇄ int8 conversion for `inferFixed` (`docs/SPEC.md` §6), in exact integer
//! arithmetic: a value `v` with `d` decimals means `v / 10^d`, and a tensor's scale is
//! `mult · 2^(shift − 31)`, so both directions are ratios of integers rounded half away
//! from zero. 512-bit intermediates make every product exact.

use alloy_primitives::{I256, U256, U512};

use crate::model::Quant;

/// Most decimals accepted (10^38 < 2^127 keeps all intermediates far inside 512 bits).
pub const MAX_DECIMALS: u8 = 38;

fn pow10(d: u8) -> U512 {
    U512::from(10u8).pow(U512::from(d))
}

/// `round(num / den)`, ties away from zero, for non-negative operands.
fn div_round(num: U512, den: U512) -> U512 {
    (num + (den >> 1)) / den
}

/// `clamp(round(v / 10^d / scale) + zero_point, −128, 127)`.
pub fn quantize(v: I256, decimals: u8, q: Quant) -> i8 {
    let (negative, abs) = (v.is_negative(), U512::from(v.unsigned_abs()));
    let shift = q.scale.shift as i32 - 31; // scale = mult · 2^shift
    let mut num = abs;
    let mut den = pow10(decimals) * U512::from(q.scale.mult as u32);
    if shift < 0 {
        num <<= (-shift) as usize;
    } else {
        den <<= shift as usize;
    }
    let mag = div_round(num, den);
    // Anything beyond 255 saturates whatever the zero point is.
    let mag = if mag > U512::from(255u32) {
        255
    } else {
        mag.to::<u32>() as i32
    };
    let signed = if negative { -mag } else { mag };
    (signed + q.zero_point as i32).clamp(-128, 127) as i8
}

/// `round((x − zero_point) · scale · 10^d)`: the exact fixed-point value of an int8 output.
pub fn dequantize(x: i8, decimals: u8, q: Quant) -> I256 {
    let diff = x as i32 - q.zero_point as i32;
    let shift = q.scale.shift as i32 - 31;
    let mut num =
        U512::from(diff.unsigned_abs()) * U512::from(q.scale.mult as u32) * pow10(decimals);
    if shift >= 0 {
        num <<= shift as usize;
    } else {
        num = div_round(num, U512::from(1u8) << ((-shift) as usize));
    }
    // |x − zp| ≤ 255, mult < 2^31, 10^38 < 2^127 and, for a valid model's scale (shift ≤ 63,
    // `validate::SCALE_SHIFTS`), 2^(shift − 31) ≤ 2^32: the value is below 2^198, so it
    // always fits int256 (the saturating conversion never saturates).
    let mag = num.saturating_to::<U256>();
    let mag = I256::from_raw(mag);
    if diff < 0 {
        -mag
    } else {
        mag
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Scale;

    fn q(mult: i32, shift: i8, zp: i8) -> Quant {
        Quant {
            scale: Scale { mult, shift },
            zero_point: zp,
        }
    }

    #[test]
    fn round_trips_on_grid() {
        let quant = q(1 << 30, -6, 3); // scale 1/128
        for x in -128..=127i8 {
            let v = dequantize(x, 6, quant);
            assert_eq!(quantize(v, 6, quant), x);
        }
        // 0.5 with scale 1/128 is 64 steps above the zero point
        assert_eq!(quantize(I256::try_from(500_000).unwrap(), 6, quant), 67);
        assert_eq!(dequantize(67, 6, quant), I256::try_from(500_000).unwrap());
    }

    #[test]
    fn rounds_half_away_and_saturates() {
        let quant = q(1 << 30, 0, 0); // scale 0.5
        assert_eq!(quantize(I256::try_from(25).unwrap(), 2, quant), 1); // 0.25/0.5 = 0.5 → 1
        assert_eq!(quantize(I256::try_from(-25).unwrap(), 2, quant), -1);
        assert_eq!(quantize(I256::MAX, 0, quant), 127);
        assert_eq!(quantize(I256::MIN + I256::ONE, 0, quant), -128);
        assert_eq!(dequantize(-128, 1, quant), I256::try_from(-640).unwrap());
    }

    #[test]
    fn extreme_valid_scales_stay_exact() {
        // The largest value inferFixed can return: far inside int256, computed exactly.
        let v = dequantize(127, MAX_DECIMALS, q(i32::MAX, 63, -128));
        let exact: U512 =
            (U512::from(255u32) * U512::from(i32::MAX as u32) * pow10(MAX_DECIMALS)) << 32usize;
        assert_eq!(v, I256::from_raw(exact.to::<U256>()));
        assert!(exact < (U512::from(1u8) << 198usize));
        // 10^19 / 10^38 / 2^-65 = 3.69 → 4 with the smallest valid scale
        let small = q(1 << 30, -64, 0);
        let v = I256::try_from(10u128.pow(19)).unwrap();
        assert_eq!(quantize(v, MAX_DECIMALS, small), 4);
        assert_eq!(quantize(-v, MAX_DECIMALS, small), -4);
    }
}
