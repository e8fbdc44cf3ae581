//! The integer path's kernels: free functions on slices of fixed-point values, output first.
//!
//! Letters: `n` input length, `d` output length. Activations are `i32` in Q16 ([`ACT`]): `q`
//! stands for `q / 2^16`. A matrix input is quantized to int8 blocks of 32 with a scale of an
//! 8-bit mantissa times a power of two ([`quantize_row`]), so that a block of the Q8_0 weights
//! meets it in one exact `i32` dot product ([`crate::ops::dot_i8`], the kernel the float path uses
//! too), then one multiply by both mantissas and a shift.

use crate::fixed::{
    f16_parts, f32_bits_to_q, mul_q, rounding_shr, rsqrt, saturate, shift_round, tanh, ONE_Q30,
};
use crate::gguf::GgmlType;
use crate::model::{F32s, Matrix};
use crate::ops::{dot_i8, dot_i8x4, DOT_I8X4_SHARED};
use crate::quant::{BlockQ8_0, Q8Rows, QK8_0};

/// Fraction bits of every activation: Q16 covers `+-32768` with steps of `1.5e-5`, room for
/// GPT-2's residual stream and finer than the int8 blocks the values become.
pub const ACT: u32 = 16;

/// Extra fraction bits of a matrix product's `i32` sum over its blocks (Q18): a block's rounding
/// costs a quarter of a unit of Q16, and the sum still spans `+-8192`.
const SUM_EXTRA: i32 = 2;

/// Low bits dropped (rounded) from the product of a weight scale's 11-bit mantissa and an
/// activation scale's 8-bit one, so that it times a block's dot product fits in an `i32`: the
/// product keeps 12 bits, within `2^-11` of exact, finer than the activations' own 8 bits.
const SCALE_PRODUCT_DROP: i32 = 7;

/// The scale of an activation block as `(m, e)`: `x(j) ~= qs(j) * m * 2^e` in Q16 units, `m` in
/// `128..=255` (0 for an all-zero block). The block's two scale bytes hold `m` and `e` (as `i8`):
/// the layout of a Q8_0 block, so that the run state's buffers and the KV cache serve both paths.
pub fn block_scale(b: &BlockQ8_0) -> (i32, i32) {
    (i32::from(b.d[0]), i32::from(b.d[1] as i8))
}

/// Bits of an activation scale's mantissa: 8 keep the step within 0.8% of `max |x| / 127`, the
/// float path's, so a block uses nearly all 127 levels.
const SCALE_BITS: i32 = 8;

/// `x(32)` as int8 values times a scale `m * 2^e` ([`block_scale`]): the smallest such scale
/// (8-bit `m`) of at least `max |x| / 127`, values rounded to nearest through a 16-bit reciprocal
/// of `m` (within 0.01 of a level of `x / (m 2^e)`): one multiply and shifts per value.
pub fn quantize_block(x: &[i32]) -> BlockQ8_0 {
    let amax = x.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
    let mut block = BlockQ8_0::ZERO;
    if amax == 0 {
        return block;
    }
    // amax / 127 <= m 2^e with m in [128, 256): e from amax's top bit, m rounded up (amax / 127 /
    // 2^e is then in [129, 258], so one more bit of e when it reaches 256). In 32 bits: t =
    // ceil(amax / 2^e) is at most 2^15 (exact amax 2^-e when e < 0), m = ceil(t / 127) by a
    // reciprocal multiply, and ceil(amax / 2^(e+1)) = ceil(t / 2).
    let msb = 31 - amax.leading_zeros() as i32;
    let mut e = msb - 6 - SCALE_BITS;
    let mut t = if e >= 0 {
        let n = e as u32;
        (amax >> n) + u32::from(amax & ((1 << n) - 1) != 0)
    } else {
        amax << -e
    };
    let mut m = div127(t + 126);
    if m >= 1 << SCALE_BITS {
        e += 1;
        t = (t + 1) >> 1;
        m = div127(t + 126);
    }
    // A 16-bit reciprocal of m: x / (m 2^e) = (x 2^-e) r / 2^23 within 2^-16 relative. One
    // 32-bit division per block.
    let r = (((1u32 << 23) + m / 2) / m.max(1)) as i32;
    // |x 2^-e| rounded is at most 127 m, so its product with r is below 127 (2^23 + m) < 2^31.
    let level = |xn: i32| rounding_shr(xn * r, 23).clamp(-127, 127) as i8;
    if e > 0 {
        // x 2^-e rounded to nearest, halves up (as `shift_round`), |x| 2^-e below 2^16.
        for (q, &v) in block.qs.iter_mut().zip(x) {
            *q = level(((v >> (e - 1)) + 1) >> 1);
        }
    } else {
        for (q, &v) in block.qs.iter_mut().zip(x) {
            *q = level(v << -e);
        }
    }
    block.d = [m as u8, e as i8 as u8];
    block
}

/// `floor(y / 127)` for `y < 33654` (test `div127_is_division_below_its_limit`): the product
/// with `ceil(2^22 / 127) + 1` and a shift, no division on cores without a divide instruction.
#[inline(always)]
fn div127(y: u32) -> u32 {
    (y * 33_027) >> 22
}

/// `out(n / 32)` blocks of `x(n)`, by [`quantize_block`].
pub fn quantize_row(out: &mut [BlockQ8_0], x: &[i32]) {
    for (o, xb) in out.iter_mut().zip(x.chunks_exact(QK8_0)) {
        *o = quantize_block(xb);
    }
}

/// `out(j) = x(j)` widened from its int8 block: `q(j) * 2^e` in Q16.
pub fn dequantize_row(out: &mut [i32], xq: &[BlockQ8_0]) {
    for (o, b) in out.chunks_exact_mut(QK8_0).zip(xq) {
        let (m, e) = block_scale(b);
        for (v, &q) in o.iter_mut().zip(&b.qs) {
            *v = shift_round(i32::from(q) * m, e);
        }
    }
}

/// An activation block's scale as the matrix products use it: its mantissa, and the shift that
/// takes a weight block's term to the row's `Q18` sum less the weight's f16 exponent field.
#[derive(Clone, Copy)]
struct XScale {
    m: i32,
    shift: i32,
}

impl XScale {
    #[inline(always)]
    fn of(b: &BlockQ8_0) -> Self {
        let (m, e) = block_scale(b);
        // f16_parts' exponent is max(field, 1) - 25; the activations are already in Q16 units,
        // so no further shift for the format.
        Self { m, shift: e - 25 + SCALE_PRODUCT_DROP + SUM_EXTRA }
    }
}

/// `sum` plus one block's term, `isum * d_w * d_x` in Q18: the weight scale's 11-bit mantissa
/// times the activation's 8-bit one rounded to 12 bits ([`SCALE_PRODUCT_DROP`]), times the
/// block's exact dot product (`|.| <= 520192 * 4078 < 2^31`, so the product never overflows),
/// shifted by both exponents and added, saturating.
#[inline(always)]
fn add_block(sum: i32, isum: i32, w_d: [u8; 2], x: XScale) -> i32 {
    let bits = u16::from_le_bytes(w_d);
    let (m, field) = f16_mantissa(bits);
    let mm = rounding_shr(m * x.m, SCALE_PRODUCT_DROP as u32);
    let p = isum.wrapping_mul(mm);
    sum.saturating_add(shift_round_i32(p, field + x.shift))
}

/// [`f16_parts`] as `(m, max(field, 1))`, the exponent field in place of `e = max(field, 1) - 25`:
/// without a branch for normal and subnormal values, which are all of a weight file's scales.
#[inline(always)]
fn f16_mantissa(bits: u16) -> (i32, i32) {
    let field = i32::from((bits >> 10) & 0x1f);
    if field == 0x1f {
        let (m, e) = f16_parts(bits);
        return (m, e + 25);
    }
    let m = i32::from(bits & 0x3ff) | (i32::from(field != 0) << 10);
    // The sign: 0 or -1, so (m ^ s) - s is m or -m.
    let s = -i32::from(bits >> 15);
    ((m ^ s) - s, field.max(1))
}

/// [`shift_round`] for `i32`, with the usual case, a right shift by 1 to 32, in three
/// instructions: `floor((floor(p / 2^(n-1)) + 1) / 2) = floor(p / 2^n + 1/2)`, for `|p| < 2^31 - 1`.
#[inline(always)]
fn shift_round_i32(p: i32, s: i32) -> i32 {
    if (-32..0).contains(&s) {
        ((p >> (-s - 1)) + 1) >> 1
    } else {
        shift_round(p, s)
    }
}

/// `sum_b (sum_j w(b, j) * x(b, j)) * d_w(b) * d_x(b)` in Q16 for one row of Q8_0 weights, in
/// 32-bit arithmetic only (no 64-bit multiply, which Cortex-M0+ and RV32IMC do in software): per
/// block, [`add_block`]'s term into an `i32` sum in Q18, rounded to Q16 at the end. Saturates
/// rather than wraps.
pub fn dot_row(w_row: &[BlockQ8_0], xq: &[BlockQ8_0]) -> i32 {
    let mut sum = 0i32;
    for (wb, xb) in w_row.iter().zip(xq) {
        sum = add_block(sum, dot_i8(&wb.qs, &xb.qs), wb.d, XScale::of(xb));
    }
    rounding_shr(sum, SUM_EXTRA as u32)
}

/// `out(d) = W(d, n) . xq(n)` in Q16 over the rows of `w` (Q8_0), each read for `xq.len()` blocks:
/// where the target has a four-row kernel ([`DOT_I8X4_SHARED`]), four rows at a time through
/// [`dot_i8x4`] (each activation block read once for four rows) and the one to three rows left by
/// [`dot_row`]; elsewhere row by row. The same bits as [`dot_row`] row by row.
pub fn matvec_rows(out: &mut [i32], w: Q8Rows<'_>, xq: &[BlockQ8_0]) {
    if !DOT_I8X4_SHARED {
        for (o, row) in out.iter_mut().zip(w.rows()) {
            *o = dot_row(row, xq);
        }
        return;
    }
    matvec_rows_by_four(out, w, xq);
}

/// [`matvec_rows`] four rows at a time through [`dot_i8x4`], the one to three rows left by
/// [`dot_row`].
fn matvec_rows_by_four(out: &mut [i32], w: Q8Rows<'_>, xq: &[BlockQ8_0]) {
    let mut rows = w.rows();
    let d = out.len().min(rows.len());
    let (groups, rest) = out[..d].split_at_mut(d - d % 4);
    for o in groups.chunks_exact_mut(4) {
        let (Some(r0), Some(r1), Some(r2), Some(r3)) =
            (rows.next(), rows.next(), rows.next(), rows.next())
        else {
            break;
        };
        let mut sums = [0i32; 4];
        for ((((b0, b1), b2), b3), xb) in r0.iter().zip(r1).zip(r2).zip(r3).zip(xq) {
            let isums = dot_i8x4([&b0.qs, &b1.qs, &b2.qs, &b3.qs], &xb.qs);
            let x = XScale::of(xb);
            for ((s, isum), wb) in sums.iter_mut().zip(isums).zip([b0, b1, b2, b3]) {
                *s = add_block(*s, isum, wb.d, x);
            }
        }
        for (o, s) in o.iter_mut().zip(sums) {
            *o = rounding_shr(s, SUM_EXTRA as u32);
        }
    }
    for (o, row) in rest.iter_mut().zip(rows) {
        *o = dot_row(row, xq);
    }
}

/// In place, `out(d) += bias(d)`, the bias read from its f32 bits.
pub fn add_bias(out: &mut [i32], bias: F32s<'_>) {
    for (o, b) in out.iter_mut().zip(bias.data.chunks_exact(4)) {
        let bits = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        *o = o.saturating_add(f32_bits_to_q(bits, ACT));
    }
}

/// Row `i` of `m` in Q16 (any weight type, read through its bits): `out(n_in) = W(i, :)`.
/// Returns `false` (and leaves `out` alone) past the last row.
pub fn row_to_q(m: &Matrix<'_>, out: &mut [i32], i: usize) -> bool {
    let Some(row) = m.row(i) else { return false };
    match m.ty {
        GgmlType::F32 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
                *o = f32_bits_to_q(u32::from_le_bytes([b[0], b[1], b[2], b[3]]), ACT);
            }
        }
        GgmlType::F16 => {
            for (o, b) in out.iter_mut().zip(row.chunks_exact(2)) {
                let (m, e) = f16_parts(u16::from_le_bytes([b[0], b[1]]));
                *o = shift_round(m, e + ACT as i32);
            }
        }
        GgmlType::Q8_0 => {
            let blocks = crate::quant::blocks_of(row);
            for (o, b) in out.chunks_exact_mut(QK8_0).zip(blocks) {
                let (m, e) = f16_parts(u16::from_le_bytes(b.d));
                for (v, &q) in o.iter_mut().zip(&b.qs) {
                    *v = shift_round(i32::from(q) * m, e + ACT as i32);
                }
            }
        }
    }
    true
}

/// `out(n) = (x(n) - mean) / sqrt(var + eps) * weight(n) + bias(n)`, `mean` and the biased `var`
/// over `x`, as `torch.nn.LayerNorm`; `x` and `out` in Q16, `eps` in Q32 (one `i64` and one `u64`
/// division and one [`rsqrt`] per call). The variance is exact but for one rounding of the mean:
/// `sum (x - mean)^2` in Q32 in a `u64`.
pub fn layer_norm(out: &mut [i32], x: &[i32], weight: F32s<'_>, bias: F32s<'_>, eps_q32: u64) {
    let n = x.len() as i64;
    if n == 0 {
        return;
    }
    let sum: i64 = x.iter().map(|&v| i64::from(v)).sum();
    let mean = (sum + n / 2).div_euclid(n);
    let mut sq = 0u64;
    for &v in x {
        let d = (i64::from(v) - mean).unsigned_abs();
        sq = sq.saturating_add(d * d);
    }
    let var = sq / n as u64 + eps_q32;
    // 1 / sqrt(var / 2^32) = 2^16 m 2^e: so (x - mean) / sqrt(var) in Q16 is d m 2^(e + 16).
    let (m, e) = rsqrt(var);
    let params = weight.data.chunks_exact(4).zip(bias.data.chunks_exact(4));
    for ((o, &v), (w, b)) in out.iter_mut().zip(x).zip(params) {
        let d = (i64::from(v) - mean).clamp(-i64::from(i32::MAX), i64::from(i32::MAX));
        let y: i32 = saturate(shift_round(d * i64::from(m), e + ACT as i32));
        let w = f32_bits_to_q(u32::from_le_bytes([w[0], w[1], w[2], w[3]]), ACT);
        let b = f32_bits_to_q(u32::from_le_bytes([b[0], b[1], b[2], b[3]]), ACT);
        *o = mul_q(y, w, ACT).saturating_add(b);
    }
}

/// `sqrt(2 / pi)` in Q30.
const SQRT_2_OVER_PI_Q30: i32 = 856_722_024;
/// GELU's cubic coefficient, 0.044715, in Q30.
const GELU_CUBIC_Q30: i32 = 48_012_366;
/// Where the tanh argument stops mattering: at `|x| = 12`, `u > 71` and `tanh(u) = +-1` in Q30.
const GELU_CLAMP: i32 = 12 << ACT;

/// In place, `x = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`, GPT-2's `gelu_new`,
/// in Q16 with [`tanh`]: within about one unit of Q16 of the f64 formula over the inputs of a
/// forward pass (test `gelu_tracks_f64_formula`).
pub fn gelu(x: &mut [i32]) {
    for v in x.iter_mut() {
        let xc = (*v).clamp(-GELU_CLAMP, GELU_CLAMP);
        let x3 = mul_q(mul_q(xc, xc, ACT), xc, ACT);
        let inner = xc + mul_q(x3, GELU_CUBIC_Q30, 30);
        let t = tanh(mul_q(inner, SQRT_2_OVER_PI_Q30, 30));
        // 0.5 x (1 + t) = x (2^30 + t) / 2^31.
        *v = saturate(rounding_shr(i64::from(*v) * (i64::from(ONE_Q30) + i64::from(t)), 31));
    }
}

/// In place, `x(n) += y(n)`, saturating.
pub fn add(x: &mut [i32], y: &[i32]) {
    for (a, &b) in x.iter_mut().zip(y) {
        *a = a.saturating_add(b);
    }
}

/// The index of the largest value, the first one on ties; 0 for an empty slice.
pub fn argmax(x: &[i32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in x.iter().enumerate() {
        if x.get(best).is_some_and(|&b| v > b) {
            best = i;
        }
    }
    best as u32
}

// The tests compare with f64 formulas.
#[cfg(test)]
#[allow(clippy::float_arithmetic)]
mod tests {
    use super::*;

    /// Little-endian bytes of values given as Q16.
    fn bytes_of_q16(v: &[i32]) -> Vec<u8> {
        v.iter().flat_map(|&q| (q as f32 / 65536.0).to_le_bytes()).collect()
    }

    #[test]
    fn quantize_block_scale_is_amax_over_127_to_8_bits() {
        let mut x = [0i32; QK8_0];
        for (j, v) in x.iter_mut().enumerate() {
            *v = (j as i32 - 16) * 997;
        }
        let mut worst = 0.0f64;
        for amp in [1i32, 3, 100, 12345, 1 << 20, 1 << 29] {
            let xs: Vec<i32> =
                x.iter().map(|&v| (i64::from(v) * i64::from(amp) / 16 / 997) as i32).collect();
            let b = quantize_block(&xs);
            let (m, e) = block_scale(&b);
            let d = f64::from(m) * 2f64.powi(e);
            let amax = xs.iter().map(|v| f64::from(v.unsigned_abs())).fold(0.0, f64::max);
            assert!((128..256).contains(&m), "{m}");
            // At least amax / 127, and less than 0.8% above it (m rounded up, m >= 128).
            assert!(
                d >= amax / 127.0 && d < amax / 127.0 * 1.008,
                "{amp}: {d} vs {}",
                amax / 127.0
            );
            for (&q, &v) in b.qs.iter().zip(&xs) {
                let err = (f64::from(q) - f64::from(v) / d).abs();
                worst = worst.max(err);
                assert!(err <= 0.51, "{v}: {q} vs {}", f64::from(v) / d);
            }
        }
        assert!(worst > 0.4);
        assert_eq!(quantize_block(&[0; QK8_0]), BlockQ8_0::ZERO);
        // The extreme: -2^31 over a step just above 2^31 / 127.
        let b = quantize_block(&[i32::MIN; QK8_0]);
        let (m, e) = block_scale(&b);
        let want = f64::from(i32::MIN) / (f64::from(m) * 2f64.powi(e));
        assert!((f64::from(b.qs[0]) - want).abs() <= 0.5, "{} vs {want}", b.qs[0]);
    }

    #[test]
    fn dot_row_is_exact_block_products_times_scales() {
        // Weight scale 0.5 (f16 0x3800), q_w(j) = 1; activation scale 128 * 2^-5 = 4, q_x(j) = j.
        let mut w = BlockQ8_0 { d: 0x3800u16.to_le_bytes(), qs: [1; QK8_0] };
        let mut x = BlockQ8_0 { d: [128, (-5i8) as u8], qs: [0; QK8_0] };
        for (j, q) in x.qs.iter_mut().enumerate() {
            *q = j as i8;
        }
        // sum_j j = 496; times 0.5 * 4 units of Q16.
        assert_eq!(dot_row(&[w], &[x]), 992);
        w.qs[0] = -128;
        assert_eq!(dot_row(&[w, w], &[x, x]), 2 * 992);
    }

    #[test]
    fn div127_is_division_below_its_limit() {
        for y in 0..33_654 {
            assert_eq!(div127(y), y / 127, "{y}");
        }
        assert_ne!(div127(33_654), 33_654 / 127);
    }

    #[test]
    fn quantize_block_matches_the_64_bit_rule() {
        // The rule in 64-bit arithmetic and divisions, as first written.
        fn reference(x: &[i32]) -> BlockQ8_0 {
            let amax = x.iter().map(|v| v.unsigned_abs()).max().unwrap_or(0);
            let mut block = BlockQ8_0::ZERO;
            if amax == 0 {
                return block;
            }
            let a = u64::from(amax);
            let ceil = |e: i32| {
                if e >= 0 {
                    a.div_ceil(127 << e)
                } else {
                    (a << -e).div_ceil(127)
                }
            };
            let msb = 31 - amax.leading_zeros() as i32;
            let mut e = msb - 6 - SCALE_BITS;
            let mut m = ceil(e);
            if m >= 1 << SCALE_BITS {
                e += 1;
                m = ceil(e);
            }
            let r = ((1u64 << 23) + m / 2) / m;
            for (q, &v) in block.qs.iter_mut().zip(x) {
                let xn = shift_round(i64::from(v), -e);
                *q = saturate::<i64, i8>(rounding_shr(xn * r as i64, 23)).max(-127);
            }
            block.d = [m as u8, e as i8 as u8];
            block
        }
        let mut next = crate::model::test_model::xorshift(0x1234_5678);
        for i in 0..20_000 {
            let shift = i % 32;
            let mut x: Vec<i32> = (0..QK8_0).map(|_| (next() as i32) >> shift).collect();
            if i % 3 == 0 {
                x[i % QK8_0] = [i32::MIN, i32::MAX, 1, -1][i % 4];
            }
            assert_eq!(quantize_block(&x), reference(&x), "{x:?}");
        }
        for amax in (1..1 << 20).step_by(7).chain([u32::MAX >> 1, 1 << 31]) {
            let x: Vec<i32> = (0..QK8_0 as i64)
                .map(|j| {
                    (i64::from(amax) * (j - 16) / 16).clamp(i32::MIN.into(), i32::MAX.into()) as i32
                })
                .collect();
            assert_eq!(quantize_block(&x), reference(&x), "{amax}");
        }
    }

    #[test]
    fn shift_round_i32_is_shift_round() {
        let mut next = crate::model::test_model::xorshift(0x5eed);
        let mut ps: Vec<i32> = (0..4000).map(|_| next() as i32 / 2).collect();
        ps.extend([0, 1, -1, 2, -2, 3, -3, i32::MAX - 1, i32::MIN + 1, -(1 << 30), 1 << 30]);
        for p in ps {
            for s in -40..=8 {
                assert_eq!(shift_round_i32(p, s), shift_round(p, s), "{p} by {s}");
            }
        }
    }

    #[test]
    fn f16_mantissa_is_f16_parts() {
        for bits in 0..=u16::MAX {
            let (m, field) = f16_mantissa(bits);
            assert_eq!((m, field - 25), f16_parts(bits), "{bits:#06x}");
        }
    }

    #[test]
    fn matvec_rows_is_dot_row_for_each_row() {
        // 4k + 3 rows (groups of four and the rest), scales of every kind, extreme values.
        let mut next = crate::model::test_model::xorshift(0x9e37_79b9);
        let (d, nb) = (11, 5);
        let w: Vec<BlockQ8_0> = (0..d * nb)
            .map(|i| {
                let d = match i % 7 {
                    0 => 0x7c00u16, // inf
                    1 => 0x0003,    // subnormal
                    2 => 0xfbff,    // -65504
                    _ => next() as u16 & 0xbfff,
                };
                let mut qs = [0i8; QK8_0];
                for q in &mut qs {
                    *q = if i % 5 == 0 { -128 } else { next() as i8 };
                }
                BlockQ8_0 { d: d.to_le_bytes(), qs }
            })
            .collect();
        let x: Vec<i32> = (0..nb * QK8_0)
            .map(|j| match j % 3 {
                0 => next() as i32,
                1 => (next() as i32) >> 12,
                _ => (next() as i32) >> 24,
            })
            .collect();
        let mut xq = vec![BlockQ8_0::ZERO; nb];
        quantize_row(&mut xq, &x);
        let rows = Q8Rows { blocks: &w, stride: nb };
        let (mut out, mut by_four) = (vec![0; d], vec![0; d]);
        matvec_rows(&mut out, rows, &xq);
        matvec_rows_by_four(&mut by_four, rows, &xq);
        for (r, row) in rows.rows().enumerate() {
            assert_eq!(out[r], dot_row(row, &xq), "row {r}");
            assert_eq!(by_four[r], out[r], "row {r}");
        }
    }

    #[test]
    fn layer_norm_tracks_f64() {
        let x: Vec<i32> = (0..64).map(|i| ((i * 37 % 29) - 14) * 9000 + 70000).collect();
        let w: Vec<i32> = (0..64).map(|i| 40000 + i * 500).collect();
        let b: Vec<i32> = (0..64).map(|i| i * 100 - 3000).collect();
        let (wb, bb) = (bytes_of_q16(&w), bytes_of_q16(&b));
        let mut out = vec![0; 64];
        let eps = 1e-5;
        layer_norm(&mut out, &x, F32s { data: &wb }, F32s { data: &bb }, 42950);
        let xf: Vec<f64> = x.iter().map(|&v| f64::from(v) / 65536.0).collect();
        let mean = xf.iter().sum::<f64>() / 64.0;
        let var = xf.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 64.0;
        for i in 0..64 {
            let want = (xf[i] - mean) / (var + eps).sqrt() * f64::from(w[i]) / 65536.0
                + f64::from(b[i]) / 65536.0;
            let got = f64::from(out[i]) / 65536.0;
            assert!((got - want).abs() < 3.0 / 65536.0, "{i}: {got} vs {want}");
        }
    }

    #[test]
    fn gelu_tracks_f64_formula() {
        let mut worst = 0.0f64;
        for q in (-(20 << 16)..(20 << 16)).step_by(7) {
            let mut v = [q];
            gelu(&mut v);
            let x = f64::from(q) / 65536.0;
            let want = 0.5
                * x
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh());
            let err = (f64::from(v[0]) - want * 65536.0).abs();
            worst = worst.max(err);
            assert!(err <= 1.5, "gelu({x}) = {} vs {want}", f64::from(v[0]) / 65536.0);
        }
        assert!(worst > 0.5);
        let mut big = [i32::MAX, i32::MIN];
        gelu(&mut big);
        assert_eq!(big, [i32::MAX, 0]);
    }

    #[test]
    fn argmax_takes_the_first_largest() {
        assert_eq!(argmax(&[1, 5, 5, -2]), 1);
        assert_eq!(argmax(&[]), 0);
        assert_eq!(argmax(&[i32::MIN, i32::MIN]), 0);
    }
}
