//! The x86_64 Q8_0 row dot product with AVX2 and F16C, chosen at run time.
//!
//! Bit-identical to the portable [`super::dot_q8_0`], which stays the reference: the integer part
//! (32 `i8 x i8` products per block, summed to an `i32`) is exact in any order, and the f32 part
//! runs exactly as the portable kernel writes it, `sum += isum as f32 * (d_w * d_x)` block after
//! block. Only the integer work and the per-block scale products are done eight blocks at a time.
//!
//! Widening both operands to `i16` (`vpmovsxbw`) and multiplying with `vpmaddwd` is exact for every
//! pair of `i8`, including `-128 * -128`; ggml's faster `vpmaddubsw` trick is not (it computes
//! `|a| * (b * sign(a))`, which wraps for `b = -128`, a value a file may hold).
//!
//! Run-time detection needs `std` (`is_x86_feature_detected!`), so this module exists only with
//! mote-core's `std` feature, which the desktop crate turns on and the firmware never does.
#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m128i, __m256i, _mm256_add_epi32, _mm256_castsi256_si128, _mm256_cvtepi32_ps,
    _mm256_cvtepi8_epi16, _mm256_cvtph_ps, _mm256_extracti128_si256, _mm256_hadd_epi32,
    _mm256_loadu_si256, _mm256_madd_epi16, _mm256_mul_ps, _mm256_permute2x128_si256,
    _mm256_setzero_si256, _mm256_storeu_ps, _mm_loadu_si128,
};

use crate::quant::{BlockQ8_0, Q8_0_BLOCK_BYTES, QK8_0};

/// Blocks whose integer sums are reduced together: one 256-bit vector of eight `i32`.
const GROUP: usize = 8;

/// The AVX2 Q8_0 row dot product, if this CPU has AVX2 and F16C; `None` otherwise (the caller
/// keeps the portable kernel).
pub(crate) fn dot_q8_0_kernel() -> Option<fn(&[u8], &[BlockQ8_0]) -> f32> {
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
        Some(dot_q8_0)
    } else {
        None
    }
}

/// Same contract as [`super::dot_q8_0`]. Reached only through [`dot_q8_0_kernel`].
fn dot_q8_0(w_row: &[u8], xq: &[BlockQ8_0]) -> f32 {
    // SAFETY: `dot_q8_0_kernel` hands this function out only after detecting AVX2 and F16C, and
    // nothing else in this module calls it.
    unsafe { dot_q8_0_avx2(w_row, xq) }
}

/// `sum_b (d_w(b) * d_x(b)) * sum_j q_w(b, j) * q_x(b, j)`, blocks in order.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn dot_q8_0_avx2(w_row: &[u8], xq: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    let mut w_blocks = w_row.chunks_exact(Q8_0_BLOCK_BYTES).zip(xq).peekable();
    while w_blocks.peek().is_some() {
        let mut acc = [_mm256_setzero_si256(); GROUP];
        let mut dw = [0u16; GROUP];
        let mut dx = [0u16; GROUP];
        let mut k = 0;
        for (wb, xb) in w_blocks.by_ref().take(GROUP) {
            let (Some(wd), Some(wq)) = (wb.get(..2), wb.get(2..2 + QK8_0)) else { break };
            dw[k] = u16::from_le_bytes([wd[0], wd[1]]);
            dx[k] = u16::from_le_bytes(xb.d);
            // SAFETY: `wq` and `xb.qs` are exactly 32 bytes each, the width of one unaligned
            // 256-bit load; `loadu` has no alignment requirement.
            let (w, x) = unsafe {
                (
                    _mm256_loadu_si256(wq.as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(xb.qs.as_ptr().cast::<__m256i>()),
                )
            };
            acc[k] = block_dot(w, x);
            k += 1;
        }
        // Lanes past `k` hold zeros and are never added.
        let isum = _mm256_cvtepi32_ps(sum_each(&acc));
        // SAFETY: `dw` and `dx` are eight `u16`, exactly one unaligned 128-bit load each.
        let (dw, dx) = unsafe {
            (
                _mm256_cvtph_ps(_mm_loadu_si128(dw.as_ptr().cast::<__m128i>())),
                _mm256_cvtph_ps(_mm_loadu_si128(dx.as_ptr().cast::<__m128i>())),
            )
        };
        // p(b) = isum(b) * (d_w(b) * d_x(b)), the portable kernel's two products, lane-wise.
        let p = _mm256_mul_ps(isum, _mm256_mul_ps(dw, dx));
        let mut ps = [0.0f32; GROUP];
        // SAFETY: `ps` is eight f32, exactly one unaligned 256-bit store.
        unsafe { _mm256_storeu_ps(ps.as_mut_ptr(), p) };
        // The running sum in block order, as the portable kernel adds.
        for &v in ps.iter().take(k) {
            sum += v;
        }
    }
    sum
}

/// Eight `i32` partial sums of `sum_j w(j) * x(j)` over one block of 32 `i8` (exact).
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_dot(w: __m256i, x: __m256i) -> __m256i {
    let w_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w));
    let w_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(w));
    let x_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x));
    let x_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(x));
    _mm256_add_epi32(_mm256_madd_epi16(w_lo, x_lo), _mm256_madd_epi16(w_hi, x_hi))
}

/// `out(i) = sum of the eight i32 lanes of v(i)`, for eight vectors at once (exact integer sums).
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn sum_each(v: &[__m256i; GROUP]) -> __m256i {
    // hadd pairs adjacent lanes within each 128-bit half: after two rounds u0 holds, per half,
    // the sums of v0..v3 over that half, and u1 those of v4..v7.
    let t0 = _mm256_hadd_epi32(v[0], v[1]);
    let t1 = _mm256_hadd_epi32(v[2], v[3]);
    let t2 = _mm256_hadd_epi32(v[4], v[5]);
    let t3 = _mm256_hadd_epi32(v[6], v[7]);
    let u0 = _mm256_hadd_epi32(t0, t1);
    let u1 = _mm256_hadd_epi32(t2, t3);
    // Low halves of u0 and u1 side by side, plus their high halves: v0..v7 in order.
    let lo = _mm256_permute2x128_si256::<0x20>(u0, u1);
    let hi = _mm256_permute2x128_si256::<0x31>(u0, u1);
    _mm256_add_epi32(lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{f16_bits_to_f32, f32_to_f16_bits};

    /// A small xorshift generator, so the cases are the same on every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn i8(&mut self) -> i8 {
            self.next() as i8
        }
        /// A finite f16 scale: normal, subnormal or zero, either sign.
        fn scale(&mut self) -> [u8; 2] {
            let bits = match self.next() % 8 {
                0 => (self.next() as u16) & 0x83ff, // subnormal or zero
                _ => loop {
                    let b = self.next() as u16;
                    if b & 0x7c00 != 0x7c00 {
                        break b;
                    }
                },
            };
            bits.to_le_bytes()
        }
    }

    fn kernel() -> Option<fn(&[u8], &[BlockQ8_0]) -> f32> {
        let k = dot_q8_0_kernel();
        if k.is_none() {
            eprintln!("this CPU lacks AVX2 or F16C: the x86_64 kernel is not tested here");
        }
        k
    }

    fn row(rng: &mut Rng, nb: usize, fill: impl Fn(&mut Rng) -> i8) -> (Vec<u8>, Vec<BlockQ8_0>) {
        let mut w = Vec::with_capacity(nb * Q8_0_BLOCK_BYTES);
        let mut x = Vec::with_capacity(nb);
        for _ in 0..nb {
            w.extend_from_slice(&rng.scale());
            w.extend((0..QK8_0).map(|_| fill(rng) as u8));
            let mut b = BlockQ8_0 { d: rng.scale(), qs: [0; QK8_0] };
            b.qs.iter_mut().for_each(|q| *q = fill(rng));
            x.push(b);
        }
        (w, x)
    }

    #[test]
    fn f16c_widening_matches_the_portable_conversion_for_every_f16() {
        let Some(_) = kernel() else { return };
        for hi in 0..8192u32 {
            let bits: [u16; 8] = core::array::from_fn(|i| (hi * 8 + i as u32) as u16);
            let mut out = [0.0f32; 8];
            // SAFETY: F16C was detected above; `bits` and `out` are one 128-bit load and one
            // 256-bit store wide.
            unsafe {
                _mm256_storeu_ps(
                    out.as_mut_ptr(),
                    _mm256_cvtph_ps(_mm_loadu_si128(bits.as_ptr().cast::<__m128i>())),
                )
            };
            for (b, o) in bits.iter().zip(out) {
                assert_eq!(o.to_bits(), f16_bits_to_f32(*b).to_bits(), "f16 bits {b:#06x}");
            }
        }
    }

    #[test]
    fn matches_portable_kernel_bit_for_bit_on_random_rows() {
        let Some(fast) = kernel() else { return };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        // Every group size 1..8, odd block counts, the GPT-2 widths (768 and 3072 values).
        for nb in (1..=41).chain([24, 96, 97]) {
            for _ in 0..20 {
                let (w, x) = row(&mut rng, nb, Rng::i8);
                let (a, b) = (super::super::dot_q8_0(&w, &x), fast(&w, &x));
                assert_eq!(a.to_bits(), b.to_bits(), "{nb} blocks: {a} vs {b}");
            }
        }
    }

    #[test]
    fn matches_portable_kernel_at_the_i8_extremes() {
        let Some(fast) = kernel() else { return };
        let mut rng = Rng(7);
        let fills: [fn(&mut Rng) -> i8; 3] = [
            |_| -128,
            |_| 127,
            |r| if r.next() & 1 == 0 { -128 } else { 127 },
        ];
        for nb in [1, 3, 8, 9, 17] {
            for fill in fills {
                let (w, x) = row(&mut rng, nb, fill);
                let (a, b) = (super::super::dot_q8_0(&w, &x), fast(&w, &x));
                assert_eq!(a.to_bits(), b.to_bits(), "{nb} blocks: {a} vs {b}");
            }
        }
        // All -128 against all -128 with unit scales: 32 * 16384 per block, exactly.
        let one = f32_to_f16_bits(1.0).to_le_bytes();
        let mut w = Vec::new();
        for _ in 0..3 {
            w.extend_from_slice(&one);
            w.extend([0x80u8; QK8_0]);
        }
        let x = vec![BlockQ8_0 { d: one, qs: [-128; QK8_0] }; 3];
        assert_eq!(fast(&w, &x), 3.0 * 32.0 * 16384.0);
    }

    #[test]
    fn stops_at_the_shorter_operand_like_the_portable_kernel() {
        let Some(fast) = kernel() else { return };
        let mut rng = Rng(99);
        let (w, x) = row(&mut rng, 11, Rng::i8);
        for (wn, xn) in [(11, 5), (4, 11), (0, 3), (10, 10)] {
            // A row cut mid-block counts only its whole blocks.
            let wr = &w[..wn * Q8_0_BLOCK_BYTES + if wn < 11 { 7 } else { 0 }];
            let (a, b) = (super::super::dot_q8_0(wr, &x[..xn]), fast(wr, &x[..xn]));
            assert_eq!(a.to_bits(), b.to_bits(), "{wn} x {xn}");
        }
    }
}
