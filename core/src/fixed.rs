//! Fixed-point arithmetic: the integer-only forward pass's numbers ([`crate::integer`]).
//!
//! A value in format `Qf` is the integer `q` standing for `q / 2^f`; every function names the
//! formats it reads and writes. Rounding is to nearest, halves upward (`+inf`), the way
//! gemmlowp's and TFLite Micro's `RoundingDivideByPOT` rounds all but negative halves, and
//! narrowing saturates. No floating point anywhere: a float read from a file (f16 or f32 bits)
//! becomes fixed point through its bits, so the results are the same on every target, with or
//! without an FPU.
//!
//! The generic helpers ([`rounding_shr`], [`shl_saturating`], [`shift_round`], [`saturate`],
//! [`mul_q`], [`mul_high`], [`isqrt`]) work on any of num-traits' `PrimInt` types; the elementary
//! functions ([`exp_neg`], [`tanh`], [`rsqrt`], [`softmax`]) fix their formats, stated with their
//! error bounds, which the tests check against the f64 formula over the whole input range
//! (exhaustively for 16-bit inputs, by a dense sweep and random inputs for 32 and 64 bits).
//!
//! `exp_neg` follows the usual split `e^x = 2^(x log2 e) = 2^k 2^f`, `2^f` from a 32-entry table
//! times a short Taylor series (as TFLite Micro and I-BERT's i-exp split off the power of two);
//! `rsqrt` normalizes by even shifts and takes an exact integer square root (I-BERT's i-sqrt idea,
//! here bit by bit); `tanh` is `(1 - e^-2u) / (1 + e^-2u)` from `exp_neg`.

use num_traits::{PrimInt, Unsigned, WrappingAdd};

/// Bits of a `PrimInt`.
fn bits<T: PrimInt>() -> u32 {
    T::zero().count_zeros()
}

/// `x / 2^n` rounded to nearest, halves toward `+inf`, for any `n` (past the type's width too);
/// exact for `n = 0`. Never overflows.
#[inline]
pub fn rounding_shr<T: PrimInt>(x: T, n: u32) -> T {
    if n == 0 {
        return x;
    }
    let w = bits::<T>();
    let neg = x < T::zero();
    // floor(x / 2^n) plus bit n - 1 of x (in infinite two's complement): the floor of
    // x / 2^n + 1/2, with no addition that could overflow.
    let floor = if n >= w {
        if neg {
            T::zero() - T::one()
        } else {
            T::zero()
        }
    } else {
        x >> n as usize
    };
    let below = if n - 1 < w {
        (x >> (n - 1) as usize) & T::one()
    } else if neg {
        T::one()
    } else {
        T::zero()
    };
    floor + below
}

/// `x * 2^n`, saturated to the type's range.
#[inline]
pub fn shl_saturating<T: PrimInt>(x: T, n: u32) -> T {
    if x.is_zero() {
        return x;
    }
    let neg = x < T::zero();
    let sat = if neg { T::min_value() } else { T::max_value() };
    if n >= bits::<T>() {
        return sat;
    }
    // The bits shifted out, and the new sign bit, must all equal the old sign.
    let limit = sat >> n as usize;
    if (neg && x < limit) || (!neg && x > limit) {
        return sat;
    }
    x << n as usize
}

/// `x * 2^s` for a signed shift `s`: [`shl_saturating`] for `s >= 0`, [`rounding_shr`] below.
#[inline]
pub fn shift_round<T: PrimInt>(x: T, s: i32) -> T {
    if s >= 0 {
        shl_saturating(x, s.unsigned_abs())
    } else {
        rounding_shr(x, s.unsigned_abs())
    }
}

/// `x` narrowed (or widened) to `U`, saturated to `U`'s range.
#[inline]
pub fn saturate<T: PrimInt, U: PrimInt>(x: T) -> U {
    U::from(x).unwrap_or(if x < T::zero() { U::min_value() } else { U::max_value() })
}

/// An integer type with one twice as wide, for exact products.
pub trait Widen: PrimInt {
    /// The type twice as wide.
    type Wide: PrimInt;
    /// `self`, widened exactly.
    fn widen(self) -> Self::Wide;
}

macro_rules! widen {
    ($($t:ty => $w:ty),*) => {$(
        impl Widen for $t {
            type Wide = $w;
            #[inline]
            fn widen(self) -> $w {
                <$w>::from(self)
            }
        }
    )*};
}
widen!(i8 => i16, i16 => i32, i32 => i64, i64 => i128, u8 => u16, u16 => u32, u32 => u64);

/// `a * b / 2^f`, the exact product rounded to nearest and saturated: the product of `Qa` and
/// `Qb` values in `Q(a + b - f)`. Error at most half a unit of the result (none when saturated
/// values are excluded), since the wide product is exact.
#[inline]
pub fn mul_q<T: Widen>(a: T, b: T, f: u32) -> T {
    saturate(rounding_shr(a.widen() * b.widen(), f))
}

/// `a * b / 2^(W - 1)` for a `W`-bit signed type, rounded and saturated: the product of two
/// `Q(W-1)` fractions in `Q(W-1)` (gemmlowp's `SaturatingRoundingDoublingHighMul`, halves rounded
/// up). The one product that does not fit, `MIN * MIN = 1`, saturates to `MAX`.
#[inline]
pub fn mul_high<T: Widen>(a: T, b: T) -> T {
    mul_q(a, b, bits::<T>() - 1)
}

/// `floor(sqrt(x))`, exactly, bit by bit (no division, no float).
pub fn isqrt<T: PrimInt + Unsigned + WrappingAdd>(x: T) -> T {
    let mut rem = x;
    let mut root = T::zero();
    // The highest power of four not above x.
    let top = bits::<T>() - 2;
    let mut bit = T::one() << top as usize;
    while bit > x {
        bit = bit >> 2;
    }
    while !bit.is_zero() {
        let trial = root.wrapping_add(&bit);
        if rem >= trial {
            rem = rem - trial;
            root = (root >> 1) + bit;
        } else {
            root = root >> 1;
        }
        bit = bit >> 2;
    }
    root
}

/// `1 / sqrt(v)` for an integer `v >= 1`, as `(m, e)` with `1 / sqrt(v) ~= m * 2^e` and `m` in
/// `[2^31, 2^32)`: a 32-bit mantissa, relative error below `2^-30` (test
/// `rsqrt_is_within_bound_over_u64`). `v = 0` gives `(u32::MAX, 0)` (an infinity's stand-in).
/// One 64-bit division.
pub fn rsqrt(v: u64) -> (u32, i32) {
    if v == 0 {
        return (u32::MAX, 0);
    }
    // v * 4^j in [2^62, 2^64): sqrt(v) = sqrt(v') / 2^j with sqrt(v') in [2^31, 2^32).
    let j = v.leading_zeros() / 2;
    let s = isqrt(v << (2 * j));
    // 2^63 / s in (2^31, 2^32], rounded; 2^32 (s near 2^31) is 2^31 with the next exponent.
    let m = ((1u64 << 63) + s / 2) / s;
    match u32::try_from(m) {
        Ok(m) => (m, j as i32 - 63),
        Err(_) => (1 << 31, j as i32 - 62),
    }
}

/// `2^(i / 32)` in Q30, `i` in `0..32`.
const EXP2_TABLE: [u32; 32] = [
    1073741824, 1097253708, 1121280436, 1145833280, 1170923762, 1196563654, 1222764986, 1249540052,
    1276901417, 1304861917, 1333434672, 1362633090, 1392470869, 1422962010, 1454120821, 1485961921,
    1518500250, 1551751076, 1585730000, 1620452965, 1655936265, 1692196547, 1729250827, 1767116489,
    1805811301, 1845353420, 1885761398, 1927054196, 1969251188, 2012372174, 2056437387, 2101467502,
];

/// `log2(e)` in Q31.
const LOG2_E_Q31: i64 = 3_098_164_009;
/// `ln 2` in Q32.
const LN_2_Q32: u64 = 2_977_044_472;

/// `1.0` in Q30, the format of [`exp_neg`]'s, [`tanh`]'s and [`softmax`]'s results.
pub const ONE_Q30: i32 = 1 << 30;

/// `exp(x)` for `x <= 0`: `x` in Q16, the result in Q30 (`exp(0) = 2^30`). Positive `x` counts as
/// 0. At most 1 unit of Q30 (`2^-30`) from `exp(x / 2^16)` over every `i32` input (test
/// `exp_neg_is_within_one_unit_over_i32`); 0 below about `-21.5`, where the exact value is under
/// half a unit.
pub fn exp_neg(x: i32) -> i32 {
    let x = x.min(0);
    // y = x log2(e) in Q47; |y| < 2^63.
    let y = i64::from(x) * LOG2_E_Q31;
    // y = k + f, k = floor(y) <= 0, f in [0, 1) in Q47.
    let k = y >> 47;
    let f = (y - (k << 47)) as u64;
    if k < -31 {
        return 0;
    }
    // 2^f = 2^(i/32) e^(r ln 2): i the top 5 bits of f, r < 1/32 the rest, in Q32.
    let i = (f >> 42) as usize;
    let r = (f & ((1 << 42) - 1)) >> 15;
    let t = (r * LN_2_Q32) >> 32; // r ln 2 in Q32, < 2^27.
                                  // e^t = 1 + t + t^2/2 + t^3/6 + t^4/24 in Q32 (the next term is below 2^-34).
    let mut p: u64 = 178_956_971; // 1/24
    p = 715_827_883 + ((p * t) >> 32); // 1/6
    p = (1 << 31) + ((p * t) >> 32); // 1/2
    p = (1 << 32) + ((p * t) >> 32);
    p = (1 << 32) + ((p * t) >> 32);
    let table = u64::from(EXP2_TABLE.get(i).copied().unwrap_or(0));
    // 2^f in Q30: < 2^31 * 2^32.04, no overflow of u64.
    let v = (table * p + (1 << 31)) >> 32;
    rounding_shr(v, (-k) as u32) as i32
}

/// `tanh(u)`: `u` in Q16, the result in Q30 (`[-2^30, 2^30]`). At most 3 units of Q30 from
/// `tanh(u / 2^16)` over every `i32` input (test `tanh_is_within_three_units_over_i32`); exactly
/// `+-2^30` from `|u| = 16` on. One 64-bit division.
pub fn tanh(u: i32) -> i32 {
    // tanh(16) is within 2^-45 of 1.
    let a = u.unsigned_abs().min(16 << 16) as i32;
    let e = i64::from(exp_neg(-2 * a));
    let one = i64::from(ONE_Q30);
    let (num, den) = (one - e, one + e);
    let t = ((num << 30) + den / 2) / den;
    let t = t as i32;
    if u < 0 {
        -t
    } else {
        t
    }
}

/// In place, `x(i) = exp(x(i) - max x) / sum_j exp(x(j) - max x)`: scores in Q16 in, probabilities
/// in Q30 out (they sum to `2^30` within a unit per element). Each probability is at most 2 units
/// of Q30 from the f64 softmax of the same scores (test `softmax_is_within_two_units`), with
/// [`exp_neg`]'s error carried through one 64-bit division per call.
pub fn softmax(x: &mut [i32]) {
    let Some(&max) = x.iter().max() else { return };
    let mut sum = 0u64;
    for v in x.iter_mut() {
        *v = exp_neg(v.saturating_sub(max));
        sum += *v as u64;
    }
    // sum >= 2^30 (the maximum's exp(0)): r = 2^62 / sum <= 2^32, and e * r <= 2^62.
    let r = (1u64 << 62) / sum.max(1);
    for v in x.iter_mut() {
        *v = ((*v as u64 * r + (1 << 31)) >> 32) as i32;
    }
}

/// An f16's value (its bits) as `(m, e)` with value `m * 2^e` exactly: `m` within `+-2047`. An
/// infinity gives the largest finite f16 (`+-2047 * 2^5`), a NaN 0: a weight file's scale is
/// finite, and these keep a bad one from stopping the pass.
pub fn f16_parts(bits: u16) -> (i32, i32) {
    let sign = if bits & 0x8000 != 0 { -1 } else { 1 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let frac = i32::from(bits & 0x3ff);
    let (m, e) = match exp {
        0 => (frac, -24),
        31 if frac != 0 => (0, 0),
        31 => (2047, 5),
        _ => (frac | 0x400, exp - 25),
    };
    (sign * m, e)
}

/// An f32's value (its bits) in `Qf`, rounded to nearest and saturated to `i32`; NaN gives 0.
pub fn f32_bits_to_q(bits: u32, f: u32) -> i32 {
    let exp = ((bits >> 23) & 0xff) as i32;
    let frac = (bits & 0x7f_ffff) as i64;
    let (m, e) = match exp {
        0 => (frac, -149),
        255 if frac != 0 => return 0,
        255 => (i64::MAX, 0),
        _ => (frac | 0x80_0000, exp - 150),
    };
    let m = if bits & 0x8000_0000 != 0 { -m } else { m };
    saturate(shift_round(m, e + f as i32))
}

/// `q / 2^f` as f32 bits, rounded to nearest, ties to even (what `q as f32 / 2^f` gives), built
/// from integers alone: for a caller that wants the fixed-point result as floats, on a core
/// with no FPU. `f` at most 126 + 31 keeps every result normal or zero.
pub fn q_to_f32_bits(q: i32, f: u32) -> u32 {
    if q == 0 {
        return 0;
    }
    let sign = if q < 0 { 0x8000_0000 } else { 0 };
    let a = q.unsigned_abs();
    let msb = 31 - a.leading_zeros();
    // a = 1.m * 2^msb: the 23 bits after the leading one, rounded to nearest even.
    let mut mant = if msb <= 23 {
        a << (23 - msb)
    } else {
        let drop = msb - 23;
        let kept = a >> drop;
        let rest = a & ((1 << drop) - 1);
        let half = 1 << (drop - 1);
        if rest > half || (rest == half && kept & 1 == 1) {
            kept + 1
        } else {
            kept
        }
    };
    let mut e = msb as i32 - f as i32 + 127;
    // Rounding up to 2^24 carries into the exponent.
    if mant >> 24 != 0 {
        mant >>= 1;
        e += 1;
    }
    sign | ((e as u32) << 23) | (mant & 0x7f_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `x / 2^n` rounded to nearest, halves up, in f64 (exact for these widths).
    fn round_div_f64(x: f64, n: u32) -> f64 {
        (x / 2f64.powi(n as i32) + 0.5).floor()
    }

    #[test]
    fn rounding_shr_is_exact_rounding_for_every_i16_and_shift() {
        for x in i16::MIN..=i16::MAX {
            for n in 0..=17 {
                let want = round_div_f64(f64::from(x), n);
                assert_eq!(f64::from(rounding_shr(x, n)), want, "{x} >> {n}");
            }
        }
        for x in 0..=u16::MAX {
            for n in 0..=17 {
                assert_eq!(f64::from(rounding_shr(x, n)), round_div_f64(f64::from(x), n));
            }
        }
    }

    #[test]
    fn rounding_shr_over_i32_sweep() {
        let mut x = i32::MIN as i64;
        while x <= i32::MAX as i64 {
            for n in [1, 5, 15, 16, 30, 31, 32] {
                let want = round_div_f64(x as f64, n);
                assert_eq!(f64::from(rounding_shr(x as i32, n)), want, "{x} >> {n}");
            }
            x += 65_521;
        }
        assert_eq!(rounding_shr(i32::MAX, 1), 1 << 30);
        assert_eq!(rounding_shr(i32::MIN, 31), -1);
        assert_eq!(rounding_shr(-3i32, 1), -1);
        assert_eq!(rounding_shr(3i32, 1), 2);
    }

    #[test]
    fn shl_saturating_saturates_exactly_past_the_range_for_every_i16() {
        for x in i16::MIN..=i16::MAX {
            for n in 0..=17 {
                let exact = f64::from(x) * 2f64.powi(n);
                let want = exact.clamp(f64::from(i16::MIN), f64::from(i16::MAX));
                assert_eq!(f64::from(shl_saturating(x, n as u32)), want, "{x} << {n}");
            }
        }
    }

    #[test]
    fn shift_round_goes_both_ways() {
        assert_eq!(shift_round(5i32, 2), 20);
        assert_eq!(shift_round(5i32, -1), 3);
        assert_eq!(shift_round(-5i32, -1), -2);
        assert_eq!(shift_round(1i32 << 30, 2), i32::MAX);
        assert_eq!(shift_round(i64::MIN, -64), 0);
    }

    #[test]
    fn saturate_clamps_every_i16_to_i8() {
        for x in i16::MIN..=i16::MAX {
            let want = x.clamp(i16::from(i8::MIN), i16::from(i8::MAX));
            assert_eq!(i16::from(saturate::<i16, i8>(x)), want);
        }
        assert_eq!(saturate::<i64, i32>(1 << 40), i32::MAX);
        assert_eq!(saturate::<i32, u8>(-1), 0);
    }

    #[test]
    fn mul_high_is_the_rounded_doubled_high_product_for_i16() {
        // Every a against a spread of b (every 997th value, and the extremes).
        let bs: Vec<i16> = (i16::MIN..=i16::MAX).step_by(997).chain([i16::MAX, -1, 0, 1]).collect();
        for a in i16::MIN..=i16::MAX {
            for &b in &bs {
                let exact = f64::from(a) * f64::from(b) / 32768.0;
                let want = (exact + 0.5).floor().min(f64::from(i16::MAX));
                assert_eq!(f64::from(mul_high(a, b)), want, "{a} * {b}");
            }
        }
        assert_eq!(mul_high(i32::MIN, i32::MIN), i32::MAX);
    }

    proptest! {
        #[test]
        fn mul_q_is_the_rounded_product_for_i32(a in any::<i32>(), b in any::<i32>(), f in 0u32..63) {
            let exact = i128::from(a) * i128::from(b);
            // Floor of exact / 2^f + 1/2, in i128.
            let want = (exact + (1i128 << f >> 1)) >> f;
            let want = want.clamp(i128::from(i32::MIN), i128::from(i32::MAX));
            prop_assert_eq!(i128::from(mul_q(a, b, f)), want);
        }

        #[test]
        fn rounding_shr_matches_i128_for_i64(x in any::<i64>(), n in 0u32..70) {
            let want = if n >= 64 { 0 } else { ((i128::from(x) + (1i128 << n >> 1)) >> n) as i64 };
            prop_assert_eq!(rounding_shr(x, n), want);
        }

        #[test]
        fn isqrt_is_the_floor_root_for_u64(x in any::<u64>()) {
            let r = u128::from(isqrt(x));
            prop_assert!(r * r <= u128::from(x) && (r + 1) * (r + 1) > u128::from(x));
        }

        #[test]
        fn rsqrt_random_u64(v in 1u64..) {
            check_rsqrt(v);
        }

        #[test]
        fn exp_neg_random(x in i32::MIN..=0) {
            prop_assert!(exp_neg_error(x) <= 1.0);
        }

        #[test]
        fn tanh_random(u in any::<i32>()) {
            prop_assert!(tanh_error(u) <= 3.0);
        }

        #[test]
        fn q_to_f32_bits_random(q in any::<i32>(), f in 0u32..40) {
            let want = (f64::from(q) / 2f64.powi(f as i32)) as f32;
            prop_assert_eq!(q_to_f32_bits(q, f), want.to_bits());
        }

        #[test]
        fn f32_bits_to_q_random(bits in any::<u32>()) {
            check_f32_to_q(bits);
        }
    }

    #[test]
    fn isqrt_is_the_floor_root_for_every_u16_and_a_u32_sweep() {
        for x in 0..=u16::MAX {
            let r = u32::from(isqrt(x));
            assert!(r * r <= u32::from(x) && (r + 1) * (r + 1) > u32::from(x), "{x}");
        }
        let mut x = 0u64;
        while x <= u64::from(u32::MAX) {
            let r = u64::from(isqrt(x as u32));
            assert!(r * r <= x && (r + 1) * (r + 1) > x, "{x}");
            x += 4093;
        }
        assert_eq!(isqrt(u32::MAX), 65535);
        assert_eq!(isqrt(u64::MAX), u64::from(u32::MAX));
    }

    fn check_rsqrt(v: u64) {
        let (m, e) = rsqrt(v);
        let got = f64::from(m) * 2f64.powi(e);
        let want = 1.0 / (v as f64).sqrt();
        let rel = (got - want).abs() / want;
        assert!(rel < 2f64.powi(-30), "rsqrt({v}) = {got} vs {want}: {rel:e}");
        assert!(m >= 1 << 31);
    }

    #[test]
    fn rsqrt_is_within_bound_over_u64() {
        for v in 1..=70_000u64 {
            check_rsqrt(v);
        }
        // Every power of two and its neighbours, then a geometric sweep.
        for s in 0..64 {
            let p = 1u64 << s;
            for v in [p - 1, p, p + 1, p | (p >> 1)] {
                if v > 0 {
                    check_rsqrt(v);
                }
            }
        }
        let mut v = 1.0f64;
        while v < 1.8e19 {
            check_rsqrt(v as u64);
            v *= 1.000_37;
        }
        assert_eq!(rsqrt(0), (u32::MAX, 0));
        assert_eq!(rsqrt(4), (1 << 31, -32));
    }

    /// `|exp_neg(x) - exp(x / 2^16) 2^30|`, in units of Q30.
    fn exp_neg_error(x: i32) -> f64 {
        let want = (f64::from(x) / 65536.0).exp() * 2f64.powi(30);
        (f64::from(exp_neg(x)) - want).abs()
    }

    #[test]
    fn exp_neg_is_within_one_unit_over_i32() {
        // Every input down to -32 (2^21 of them; below about -21.5 the result is 0), then every
        // 251st to i32::MIN.
        let mut worst = 0.0f64;
        for x in -(32 << 16)..=0 {
            let err = exp_neg_error(x);
            assert!(err <= 1.0, "exp_neg({x}) = {} off by {err}", exp_neg(x));
            worst = worst.max(err);
        }
        let mut x = i32::MIN as i64;
        while x <= 0 {
            assert!(exp_neg_error(x as i32) <= 1.0, "{x}");
            x += 251;
        }
        assert!(worst > 0.5, "the bound is not loose: worst {worst}");
        assert_eq!(exp_neg(0), ONE_Q30);
        assert_eq!(exp_neg(i32::MIN), 0);
        assert_eq!(exp_neg(5 << 16), ONE_Q30);
    }

    /// `|tanh(u) - tanh(u / 2^16) 2^30|`, in units of Q30.
    fn tanh_error(u: i32) -> f64 {
        let want = (f64::from(u) / 65536.0).tanh() * 2f64.powi(30);
        (f64::from(tanh(u)) - want).abs()
    }

    #[test]
    fn tanh_is_within_three_units_over_i32() {
        let mut worst = 0.0f64;
        for u in -(17 << 16)..=(17 << 16) {
            let err = tanh_error(u);
            assert!(err <= 3.0, "tanh({u}) = {} off by {err}", tanh(u));
            worst = worst.max(err);
        }
        let mut u = i32::MIN as i64;
        while u <= i32::MAX as i64 {
            assert!(tanh_error(u as i32) <= 3.0, "{u}");
            u += 4099;
        }
        assert!(worst > 1.0, "the bound is not loose: worst {worst}");
        assert_eq!(tanh(0), 0);
        assert_eq!(tanh(16 << 16), ONE_Q30);
        assert_eq!(tanh(i32::MIN), -ONE_Q30);
    }

    #[test]
    fn softmax_is_within_two_units() {
        let cases: [&[i32]; 5] = [
            &[0],
            &[65536, 2 * 65536, 3 * 65536],
            &[i32::MIN, i32::MAX, 0],
            &[-5 << 16, -5 << 16, 7 << 16, 12345, -99999],
            &[1 << 20; 300],
        ];
        let mut spread: Vec<i32> = (0..1024).map(|i| (i * 7919 % 2000 - 1000) * 700).collect();
        spread.push(0);
        for x in cases.iter().copied().chain([&spread[..]]) {
            let max = x.iter().map(|&v| f64::from(v)).fold(f64::MIN, f64::max);
            let e: Vec<f64> = x.iter().map(|&v| ((f64::from(v) - max) / 65536.0).exp()).collect();
            let sum: f64 = e.iter().sum();
            let mut got = x.to_vec();
            softmax(&mut got);
            for (g, w) in got.iter().zip(&e) {
                let want = w / sum * 2f64.powi(30);
                assert!((f64::from(*g) - want).abs() <= 2.0, "{g} vs {want}");
            }
        }
        softmax(&mut []);
    }

    #[test]
    fn f16_parts_give_every_finite_f16_exactly() {
        for bits in 0..=u16::MAX {
            let v = crate::quant::f16_bits_to_f32(bits);
            let (m, e) = f16_parts(bits);
            assert!(m.abs() <= 2047);
            if v.is_nan() {
                assert_eq!(m, 0);
            } else if v.is_infinite() {
                assert_eq!((m.abs(), e), (2047, 5));
            } else {
                assert_eq!(f64::from(m) * 2f64.powi(e), f64::from(v), "{bits:#06x}");
            }
        }
    }

    fn check_f32_to_q(bits: u32) {
        let v = f32::from_bits(bits);
        for f in [0u32, 16, 30] {
            let got = f32_bits_to_q(bits, f);
            if v.is_nan() {
                assert_eq!(got, 0);
                continue;
            }
            let want = (f64::from(v) * 2f64.powi(f as i32) + 0.5).floor();
            let want = want.clamp(f64::from(i32::MIN), f64::from(i32::MAX));
            assert_eq!(f64::from(got), want, "{v} in Q{f}");
        }
    }

    #[test]
    fn f32_bits_to_q_over_a_sweep_of_f32() {
        let mut bits = 0u64;
        while bits <= u64::from(u32::MAX) {
            check_f32_to_q(bits as u32);
            bits += 4099;
        }
        for v in [0.5f32, -0.5, 1.5, -1.5, 1e-5, f32::INFINITY, f32::NEG_INFINITY, f32::MIN] {
            check_f32_to_q(v.to_bits());
        }
    }

    #[test]
    fn q_to_f32_bits_is_the_rounded_float_for_every_i16_and_an_i32_sweep() {
        for q in i16::MIN..=i16::MAX {
            assert_eq!(q_to_f32_bits(i32::from(q), 16), (f32::from(q) / 65536.0).to_bits());
        }
        let mut q = i32::MIN as i64;
        while q <= i32::MAX as i64 {
            let want = (q as f64 / 65536.0) as f32;
            assert_eq!(q_to_f32_bits(q as i32, 16), want.to_bits(), "{q}");
            q += 4099;
        }
    }
}
