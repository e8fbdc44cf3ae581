//! Q8_0 quantization: blocks of 32 `i8` values sharing one f16 scale, exactly as ggml lays them out
//! and rounds them, so a tensor quantized here is byte-identical to one quantized by llama.cpp.
//!
//! The helpers are written once and shared by the converter (weights), the forward pass (activations,
//! quantized on the fly before every matrix-vector product) and the Q8_0 KV cache. Like ggml, two
//! rounding rules: weights go through [`quantize_block_q8_0`] (ggml's `quantize_row_q8_0_ref`,
//! halves away from zero, byte-identical files), activations and the KV cache through
//! [`quantize_row_q8_0`] (ggml's own x86 `quantize_row_q8_0`, halves to even).
//!
//! Letters: `n` is the length of a row, always a multiple of [`QK8_0`].

use half::f16;
use num_traits::{Bounded, NumCast, PrimInt};

/// Values per Q8_0 block (ggml's `QK8_0`).
pub const QK8_0: usize = 32;

/// Bytes per Q8_0 block in a file: the f16 scale then 32 `i8`.
pub const Q8_0_BLOCK_BYTES: usize = 2 + QK8_0;

/// One Q8_0 block: `x[j] ~= d * qs[j]`.
///
/// The scale is kept as little-endian f16 bits so the block has alignment 1 and size 34, the layout of
/// ggml's `block_q8_0`, and can be read from any byte offset of a file.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BlockQ8_0 {
    /// The scale `d`, f16 bits, little-endian.
    pub d: [u8; 2],
    /// The quantized values.
    pub qs: [i8; QK8_0],
}

const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == Q8_0_BLOCK_BYTES);
const _: () = assert!(core::mem::align_of::<BlockQ8_0>() == 1);

impl BlockQ8_0 {
    /// The all-zero block (scale 0).
    pub const ZERO: Self = Self { d: [0; 2], qs: [0; QK8_0] };

    /// The scale as f32.
    #[inline]
    pub fn scale(&self) -> f32 {
        f16_bits_to_f32(u16::from_le_bytes(self.d))
    }

    /// Reads a block from its 34 file bytes.
    #[inline]
    pub fn from_bytes(b: &[u8; Q8_0_BLOCK_BYTES]) -> Self {
        let mut qs = [0i8; QK8_0];
        for (q, &byte) in qs.iter_mut().zip(&b[2..]) {
            *q = byte as i8;
        }
        Self { d: [b[0], b[1]], qs }
    }

    /// The block's 34 file bytes.
    #[inline]
    pub fn to_bytes(&self) -> [u8; Q8_0_BLOCK_BYTES] {
        let mut b = [0u8; Q8_0_BLOCK_BYTES];
        b[0] = self.d[0];
        b[1] = self.d[1];
        for (byte, &q) in b[2..].iter_mut().zip(&self.qs) {
            *byte = q as u8;
        }
        b
    }
}

/// The whole Q8_0 blocks at the start of `bytes`, viewed in place: a block has alignment 1, so any
/// offset of a file will do.
pub fn blocks_of(bytes: &[u8]) -> &[BlockQ8_0] {
    let whole = bytes.len() / Q8_0_BLOCK_BYTES * Q8_0_BLOCK_BYTES;
    bytemuck::try_cast_slice(bytes.get(..whole).unwrap_or(&[])).unwrap_or(&[])
}

/// A matrix of Q8_0 rows, row `r` starting at block `r * stride`. Kernels read a row for as many
/// blocks as the activation it meets has, so a row may be the start of a longer record (one
/// head of the attention's cached keys, position after position).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Q8Rows<'a> {
    /// The blocks, row after row.
    pub blocks: &'a [BlockQ8_0],
    /// Blocks from the start of one row to the start of the next.
    pub stride: usize,
}

impl<'a> Q8Rows<'a> {
    /// The rows of `stride` blocks in `bytes` (file bytes, whole blocks only).
    pub fn from_bytes(bytes: &'a [u8], stride: usize) -> Self {
        Self { blocks: blocks_of(bytes), stride }
    }

    /// Rows from row `r` on (none past the end).
    pub fn from_row(self, r: usize) -> Self {
        let at = r.saturating_mul(self.stride);
        Self { blocks: self.blocks.get(at..).unwrap_or(&[]), stride: self.stride }
    }

    /// The rows whose whole stride is in [`Q8Rows::blocks`].
    pub fn rows(&self) -> core::slice::ChunksExact<'a, BlockQ8_0> {
        // A stride of zero blocks has no rows.
        let blocks = if self.stride == 0 { &[] } else { self.blocks };
        blocks.chunks_exact(self.stride.max(1))
    }

    /// The blocks as their file bytes, for the assembly kernels.
    pub fn bytes(&self) -> &'a [u8] {
        bytemuck::cast_slice(self.blocks)
    }

    /// Bytes from the start of one row to the start of the next.
    pub fn row_bytes(&self) -> usize {
        self.stride.saturating_mul(Q8_0_BLOCK_BYTES)
    }
}

/// f16 bits to f32 (exact), the same bits as `half`'s `f16::to_f32_const` for every input (NaNs
/// come out quiet, payload kept).
///
/// Written out rather than calling `half`: on x86_64 `f16::to_f32` checks for F16C at run time on
/// every call, and `to_f32_const` tests for zero, infinity and subnormals before the common case;
/// here a normal number (the usual scale or cached value) costs one test, a shift and an add.
#[inline]
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    let sign = ((bits & 0x8000) as u32) << 16;
    let em = (bits & 0x7fff) as u32;
    let magnitude = if em >= 0x7c00 {
        // Infinity, or NaN made quiet.
        let quiet = if em > 0x7c00 { 0x0040_0000 } else { 0 };
        0x7f80_0000 | quiet | ((em & 0x03ff) << 13)
    } else if em >= 0x0400 {
        // Normal: widen the mantissa, rebias the exponent from 15 to 127 (+112 << 23).
        (em << 13) + 0x3800_0000
    } else {
        // Zero or subnormal: em * 2^-24, exact in f32.
        (em as f32 * (1.0 / 16_777_216.0)).to_bits()
    };
    f32::from_bits(sign | magnitude)
}

/// f32 to f16 bits, rounding to nearest even as ggml's `GGML_FP32_TO_FP16` does; on cores with
/// the DSP extension by the FPU's `VCVTB` (`ops::cortex_m::f32_to_f16_bits`), with the bits of
/// [`f32_to_f16_bits_portable`].
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    return crate::ops::cortex_m::f32_to_f16_bits(x);
    #[allow(unreachable_code)]
    f32_to_f16_bits_portable(x)
}

/// The reference for [`f32_to_f16_bits`]: `half`'s conversion in software.
#[inline]
pub fn f32_to_f16_bits_portable(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// `round(x * inv_scale)`, halves away from zero (C's `roundf`, as ggml rounds), saturated to `T`'s
/// range. NaN maps to zero.
///
/// Generic over the integer type so that the same rule serves `i8` weights and activations and any
/// wider intermediate.
#[inline]
pub fn quantize<T: PrimInt + Bounded + NumCast>(x: f32, inv_scale: f32) -> T {
    let v = libm::roundf(x * inv_scale);
    let lo: f32 = NumCast::from(T::min_value()).unwrap_or(f32::MIN);
    let hi: f32 = NumCast::from(T::max_value()).unwrap_or(f32::MAX);
    if v.is_nan() {
        return T::zero();
    }
    let clamped = if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    };
    // In range by construction, so the cast cannot fail; zero is the unreachable fallback.
    NumCast::from(clamped).unwrap_or_else(T::zero)
}

/// `q * scale` as f32.
#[inline]
pub fn dequantize<T: PrimInt + NumCast>(q: T, scale: f32) -> f32 {
    let v: f32 = NumCast::from(q).unwrap_or(0.0);
    v * scale
}

/// Quantizes 32 values to one block with ggml's `quantize_row_q8_0_ref` rule: `d = amax / 127`,
/// `id = 1/d` (0 when `d` is 0), `q = round(x * id)`, `d` stored as f16.
#[inline]
pub fn quantize_block_q8_0(x: &[f32; QK8_0]) -> BlockQ8_0 {
    let mut amax = 0.0f32;
    for &v in x {
        amax = amax.max(libm::fabsf(v));
    }
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0i8; QK8_0];
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = quantize::<i8>(v, id);
    }
    BlockQ8_0 { d: f32_to_f16_bits(d).to_le_bytes(), qs }
}

/// `1.5 * 2^23`: adding it to an f32 `v` with `|v| <= 2^22` leaves the sum in `[2^23, 2^24)`,
/// where the spacing of floats is 1, so the addition rounds `v` to an integer, halves to even (the
/// IEEE default every target runs in); subtracting it again is exact.
pub(crate) const ROUND_MAGIC: f32 = 12_582_912.0;

/// Quantizes a row of activations, `n` values, into `n / 32` blocks: `out(n/32) = q8_0(x(n))`.
///
/// The scale is [`quantize_block_q8_0`]'s (`d = amax / 127`, `id = 1/d`, `d` stored as f16), but
/// `x * id` is rounded half to even by adding and subtracting `1.5 * 2^23`, exact here because
/// `|x * id| <= 127` (a little more from the rounding of `id`), instead of `libm::roundf`'s halves
/// away from zero, which costs several times as much where the FPU has no rounding instruction.
/// ggml's x86 activation quantizer rounds the same way (`_mm256_round_ps` to nearest); the two
/// rules differ only on exact halves. The result saturates to `i8` and NaN gives 0, as there.
///
/// Processes `min(x.len() / 32, out.len())` blocks; a tail shorter than a block is left alone (callers
/// size their buffers from the same `n`).
///
/// On cores with the DSP extension the blocks of finite values run in assembly
/// (`ops::cortex_m::quantize_blocks`), with the bits of [`quantize_row_q8_0_portable`].
// One copy in flash rather than one per caller.
#[cfg_attr(all(target_arch = "arm", target_feature = "dsp"), inline(never))]
pub fn quantize_row_q8_0(out: &mut [BlockQ8_0], x: &[f32]) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    {
        let n = out.len().min(x.len() / QK8_0);
        let mut b = 0;
        while b < n {
            b += crate::ops::cortex_m::quantize_blocks(&mut out[b..n], &x[b * QK8_0..]);
            // The block that stopped the run: infinities, NaNs, or a scale too small to invert.
            if let (Some(block), Some(chunk)) = (out.get_mut(b), x.get(b * QK8_0..(b + 1) * QK8_0))
            {
                if let Ok(chunk) = <&[f32; QK8_0]>::try_from(chunk) {
                    quantize_block_general(block, chunk);
                }
                b += 1;
            }
        }
        return;
    }
    #[allow(unreachable_code)]
    quantize_row_q8_0_portable(out, x)
}

/// The reference for [`quantize_row_q8_0`]: the same blocks by the portable loops on every target.
pub fn quantize_row_q8_0_portable(out: &mut [BlockQ8_0], x: &[f32]) {
    quantize_row(out, x, |chunk| abs_max_bits(chunk), round_block);
}

/// A block that the assembly of `ops::cortex_m::quantize_blocks` leaves to the caller (an
/// infinity or a NaN in it, or `1 / d` not finite): what [`quantize_row`] does with such a block.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
#[inline(never)]
fn quantize_block_general(block: &mut BlockQ8_0, chunk: &[f32; QK8_0]) {
    let bits = abs_max_bits(chunk);
    let amax = if bits <= INFINITY_BITS { f32::from_bits(bits) } else { abs_max_float(chunk) };
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    block.d = f32_to_f16_bits(d).to_le_bytes();
    for (q, &v) in block.qs.iter_mut().zip(chunk) {
        *q = (((v * id + ROUND_MAGIC) - ROUND_MAGIC) as i32).clamp(-128, 127) as i8;
    }
}

/// [`quantize_row_q8_0`] with the block's largest magnitude bits from `amax_bits` and the
/// rounding of a block of finite values by `round`.
#[inline(always)]
fn quantize_row(
    out: &mut [BlockQ8_0],
    x: &[f32],
    amax_bits: impl Fn(&[f32; QK8_0]) -> u32,
    round: impl Fn(&mut [i8; QK8_0], &[f32; QK8_0], f32),
) {
    for (block, chunk) in out.iter_mut().zip(x.chunks_exact(QK8_0)) {
        let Ok(chunk) = <&[f32; QK8_0]>::try_from(chunk) else { break };
        let bits = amax_bits(chunk);
        let amax = if bits <= INFINITY_BITS { f32::from_bits(bits) } else { abs_max_float(chunk) };
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        block.d = f32_to_f16_bits(d).to_le_bytes();
        if bits < INFINITY_BITS && id.is_finite() {
            round(&mut block.qs, chunk, id);
        } else {
            for (q, &v) in block.qs.iter_mut().zip(chunk) {
                // Saturating to `i32` (NaN, from an infinite input, gives 0) is one instruction
                // on Arm, and the clamp one more: the same result as a saturating cast to `i8`.
                *q = (((v * id + ROUND_MAGIC) - ROUND_MAGIC) as i32).clamp(-128, 127) as i8;
            }
        }
    }
}

/// `q(j) = round(x(j) * id)`, halves to even, for a block of finite values with `id` finite and
/// at most `127 / max_j |x(j)|` (rounded): every `x * id` is finite and at most 127 in magnitude
/// (a little more from the rounding of `id`), so `x * id + 1.5 * 2^23` lies in [2^23, 2^24),
/// where its bits minus those of `1.5 * 2^23` are the rounded integer: no subtraction and no
/// float to integer conversion. That integer is within -127..=127, so the clamp never changes
/// it; the assembly of `ops::cortex_m` leaves it out.
fn round_block(qs: &mut [i8; QK8_0], x: &[f32; QK8_0], id: f32) {
    for (q, &v) in qs.iter_mut().zip(x) {
        let t = v * id + ROUND_MAGIC;
        *q = (t.to_bits() as i32 - ROUND_MAGIC.to_bits() as i32).clamp(-128, 127) as i8;
    }
}

/// Bits of an f32 magnitude: all but the sign.
const MAGNITUDE: u32 = 0x7fff_ffff;

/// Bits of `f32::INFINITY`: magnitudes above it are NaNs.
const INFINITY_BITS: u32 = 0x7f80_0000;

/// `max_i |x(i)|`, ignoring NaN (0 for none), as [`quantize_block_q8_0`]'s `f32::max` fold.
#[cfg(test)]
fn abs_max(x: &[f32]) -> f32 {
    let bits = abs_max_bits(x);
    if bits <= INFINITY_BITS {
        return f32::from_bits(bits);
    }
    abs_max_float(x)
}

/// The largest magnitude bits in `x`: above [`INFINITY_BITS`] if `x` holds a NaN, else the bits
/// of `max_i |x(i)|`.
///
/// For non-negative floats, NaN aside, the order of the bits as integers is the order of the
/// values, and an integer maximum is cheaper than a float one on FPUs without `VMAXNM`
/// (Cortex-M4F, M7).
fn abs_max_bits(x: &[f32]) -> u32 {
    let mut bits = 0u32;
    for &v in x {
        bits = bits.max(v.to_bits() & MAGNITUDE);
    }
    bits
}

/// `max_i |x(i)|` by the float fold, ignoring NaN: for rows that hold one.
fn abs_max_float(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    for &v in x {
        amax = amax.max(libm::fabsf(v));
    }
    amax
}

/// Dequantizes a row stored as Q8_0 file bytes: `out(n) = d * q`.
///
/// Processes `min(bytes.len() / 34, out.len() / 32)` blocks.
pub fn dequantize_row_q8_0(out: &mut [f32], bytes: &[u8]) {
    for (block, o) in blocks_of(bytes).iter().zip(out.chunks_exact_mut(QK8_0)) {
        let d = block.scale();
        for (y, &q) in o.iter_mut().zip(&block.qs) {
            *y = q as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_away_from_zero_and_saturates() {
        assert_eq!(quantize::<i8>(2.5, 1.0), 3);
        assert_eq!(quantize::<i8>(-2.5, 1.0), -3);
        assert_eq!(quantize::<i8>(0.49, 1.0), 0);
        assert_eq!(quantize::<i8>(1000.0, 1.0), 127);
        assert_eq!(quantize::<i8>(-1000.0, 1.0), -128);
        assert_eq!(quantize::<i8>(f32::NAN, 1.0), 0);
        assert_eq!(quantize::<i16>(1000.0, 1.0), 1000);
        assert_eq!(dequantize::<i8>(-3, 0.5), -1.5);
    }

    #[test]
    fn block_round_trip_is_within_half_a_step() {
        let mut x = [0.0f32; QK8_0];
        for (i, v) in x.iter_mut().enumerate() {
            *v = (i as f32 - 15.5) * 0.37;
        }
        let b = quantize_block_q8_0(&x);
        // The largest magnitude maps to +-127.
        assert_eq!(b.qs[0], -127);
        let mut y = [0.0f32; QK8_0];
        dequantize_row_q8_0(&mut y, &b.to_bytes());
        let d = b.scale();
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() <= d * 0.5 + d * 1e-3, "{a} vs {b}");
        }
        assert_eq!(BlockQ8_0::from_bytes(&b.to_bytes()), b);
    }

    #[test]
    fn f16_widening_matches_half_for_every_bit_pattern() {
        for bits in 0..=u16::MAX {
            let want = f16::from_bits(bits).to_f32_const().to_bits();
            assert_eq!(f16_bits_to_f32(bits).to_bits(), want, "f16 bits {bits:#06x}");
        }
    }

    #[test]
    fn activation_rows_round_halves_to_even_and_match_weights_elsewhere() {
        // amax = 127 gives d = 1 exactly, so x * id = x: halves show the rounding rule.
        let mut x = [0.0f32; QK8_0];
        let halves = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5];
        x[..halves.len()].copy_from_slice(&halves);
        x[31] = 127.0;
        let mut row = [BlockQ8_0::ZERO; 1];
        quantize_row_q8_0(&mut row, &x);
        assert_eq!(&row[0].qs[..8], &[0, 2, 2, 0, -2, -2, 126, -126]);
        assert_eq!(&quantize_block_q8_0(&x).qs[..8], &[1, 2, 3, -1, -2, -3, 127, -127]);
        assert_eq!(row[0].d, quantize_block_q8_0(&x).d);
        // Away from halves both rules agree: pseudo-random blocks over many magnitudes.
        let mut state = 0x2545_f491u32;
        let mut v = [0.0f32; 2 * QK8_0];
        for round in 0..500 {
            for y in v.iter_mut() {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *y = (state >> 8) as f32 / 16_777_216.0 - 0.5;
                *y *= libm::powf(10.0, (round % 9) as f32 - 4.0);
            }
            let mut rows = [BlockQ8_0::ZERO; 2];
            quantize_row_q8_0(&mut rows, &v);
            for (b, chunk) in rows.iter().zip(v.chunks_exact(QK8_0)) {
                let chunk: &[f32; QK8_0] = chunk.try_into().unwrap();
                let want = quantize_block_q8_0(chunk);
                assert_eq!(b.d, want.d);
                let d = chunk.iter().fold(0.0f32, |m, x| m.max(x.abs())) / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                for ((&q, &w), &y) in b.qs.iter().zip(&want.qs).zip(chunk) {
                    let t = y * id;
                    if libm::fabsf(t - libm::truncf(t)) != 0.5 {
                        assert_eq!(q, w, "{y} in round {round}");
                    }
                }
            }
        }
    }

    /// The activation rule written the plain way: round by adding and subtracting `1.5 * 2^23`,
    /// saturating casts.
    fn quantize_row_plain(out: &mut [BlockQ8_0], x: &[f32]) {
        for (block, chunk) in out.iter_mut().zip(x.chunks_exact(QK8_0)) {
            let d = abs_max(chunk) / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            block.d = f32_to_f16_bits(d).to_le_bytes();
            for (q, &v) in block.qs.iter_mut().zip(chunk) {
                *q = (((v * id + ROUND_MAGIC) - ROUND_MAGIC) as i32).clamp(-128, 127) as i8;
            }
        }
    }

    #[test]
    fn activation_rows_read_the_rounded_integer_from_the_bits_exactly() {
        // Blocks over every magnitude, subnormal scales (whose inverse may overflow), halves,
        // infinities and NaNs: the same blocks as the plain rule.
        let mut gen = crate::model::test_model::xorshift(0x9e37_79b9_7f4a_7c15);
        let mut next = move || (gen() >> 32) as u32;
        let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e-45, 3e-39, 0.5];
        for round in 0..20_000 {
            let mut x = [0.0f32; QK8_0];
            for v in x.iter_mut() {
                *v = match round % 4 {
                    // Any bits at all.
                    0 => f32::from_bits(next()),
                    // Uniform at one of many scales, subnormal ones included.
                    1 => {
                        let u = (next() >> 8) as f32 / 16_777_216.0 - 0.5;
                        u * libm::powf(2.0, (round % 300) as f32 - 160.0)
                    }
                    // Small integers and halves times a power of two.
                    2 => (next() % 512) as f32 / 2.0 - 128.0,
                    _ => specials[next() as usize % specials.len()],
                };
            }
            let (mut got, mut want) = ([BlockQ8_0::ZERO; 1], [BlockQ8_0::ZERO; 1]);
            quantize_row_q8_0(&mut got, &x);
            quantize_row_plain(&mut want, &x);
            assert_eq!(got[0].d, want[0].d, "{x:?}");
            assert_eq!(got[0].qs, want[0].qs, "{x:?}");
        }
    }

    #[test]
    fn activation_rows_saturate_and_map_nan_to_zero() {
        let mut x = [0.0f32; QK8_0];
        x[0] = f32::INFINITY;
        x[1] = 1.0;
        let mut row = [BlockQ8_0::ZERO; 1];
        quantize_row_q8_0(&mut row, &x);
        // amax = inf: d = inf, id = 0, inf * 0 = NaN -> 0; finite values -> 0.
        assert_eq!(row[0].qs, [0; QK8_0]);
        x[0] = f32::NAN;
        quantize_row_q8_0(&mut row, &x);
        assert_eq!(row[0].qs[0], 0);
        assert_eq!(row[0].qs[1], 127);
        quantize_row_q8_0(&mut row, &[0.0; QK8_0]);
        assert_eq!(row[0], BlockQ8_0::ZERO);
        // The largest magnitude is found among negatives, subnormals and zeros of either sign.
        let mut x = [-0.0f32; QK8_0];
        x[5] = 1e-40;
        x[6] = -3e-40;
        assert_eq!(abs_max(&x), 3e-40);
        x[7] = -2.5;
        x[8] = f32::NAN;
        x[9] = 2.0;
        assert_eq!(abs_max(&x), 2.5);
        assert_eq!(abs_max(&[f32::NEG_INFINITY, 1.0]), f32::INFINITY);
    }

    #[test]
    fn zero_block_has_zero_scale() {
        let b = quantize_block_q8_0(&[0.0; QK8_0]);
        assert_eq!(b, BlockQ8_0::ZERO);
    }

    #[test]
    fn known_answer_matches_ggml_rule() {
        // amax = 1.27 -> d = 0.01 (f16 0x211f = 0.0099945068...), id = 100.
        let mut x = [0.0f32; QK8_0];
        x[0] = 1.27;
        x[1] = -0.0051; // -0.51 -> -1
        x[2] = 0.0049; // 0.49 -> 0
        let b = quantize_block_q8_0(&x);
        assert_eq!(u16::from_le_bytes(b.d), f32_to_f16_bits(0.01));
        assert_eq!(&b.qs[..3], &[127, -1, 0]);
    }
}
