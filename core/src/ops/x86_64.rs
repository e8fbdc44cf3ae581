//! The x86_64 Q8_0 matrix-vector product with AVX2 and F16C, chosen at run time.
//!
//! Bit-identical to the portable kernel (row by row with [`super::dot_q8_0`]), which stays the
//! reference: the integer part (32 `i8 x i8` products per block, summed to an `i32`) is exact in
//! any order, and the f32 part runs exactly as the portable kernel writes it, `sum += isum as f32 *
//! (d_w * d_x)` block after block within each row. What is vectorized is the integer work (four
//! rows share each activation block), the reduction of eight block sums at once and the scale
//! products; the running sums stay scalar and in order.
//!
//! Widening both operands to `i16` (`vpmovsxbw`) and multiplying with `vpmaddwd` is exact for every
//! pair of `i8`, including `-128 * -128`; ggml's faster `vpmaddubsw` trick is not (it computes
//! `|a| * (b * sign(a))`, which wraps for `b = -128`, a value a file may hold).
//!
//! Run-time detection needs `std` (`is_x86_feature_detected!`), so this module exists only with
//! mote-core's `std` feature, which the desktop crate turns on and the firmware never does.
#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m128, __m128i, __m256i, _mm256_add_epi32, _mm256_castps256_ps128, _mm256_castsi256_si128,
    _mm256_cvtepi32_ps, _mm256_cvtepi8_epi16, _mm256_cvtph_ps, _mm256_extractf128_ps,
    _mm256_extracti128_si256, _mm256_hadd_epi32, _mm256_loadu_si256, _mm256_madd_epi16,
    _mm256_mul_ps, _mm256_permute2x128_si256, _mm256_setzero_si256, _mm256_storeu_ps, _mm_add_ps,
    _mm_loadu_si128, _mm_set_epi64x, _mm_setzero_ps, _mm_storeu_ps,
};

use crate::quant::{BlockQ8_0, Q8_0_BLOCK_BYTES};

/// Blocks whose integer sums are reduced together: one 256-bit vector of eight `i32`.
const GROUP: usize = 8;

/// Matrices larger than this many bytes are read one row at a time, straight through memory.
/// Four interleaved rows make four short streams that restart every few hundred bytes, which the
/// hardware prefetcher follows badly once the matrix is not in the caches: measured here, GPT-2
/// 124M decoded at 55-65% of the one-row speed with four rows, while the default model (every
/// matrix at most 278 KB) ran 1.4x faster with four.
const FOUR_ROWS_MAX_BYTES: usize = 512 * 1024;

/// Rows computed together, sharing each activation block once it is widened to `i16`.
const ROWS: usize = 4;

/// `out(d) = W(d, n) . xq(n)` over Q8_0 rows of `row_bytes` bytes, as
/// [`super::matvec_q8_0_rows`] computes it row by row with [`super::dot_q8_0`].
type MatvecQ8_0 = fn(&mut [f32], &[u8], usize, &[BlockQ8_0]);

/// The AVX2 Q8_0 matrix-vector product, if this CPU has AVX2 and F16C; `None` otherwise (the
/// caller keeps the portable kernel).
pub(crate) fn matvec_q8_0_kernel() -> Option<MatvecQ8_0> {
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
        Some(matvec_q8_0)
    } else {
        None
    }
}

/// Reached only through [`matvec_q8_0_kernel`].
fn matvec_q8_0(out: &mut [f32], w: &[u8], row_bytes: usize, xq: &[BlockQ8_0]) {
    // SAFETY: `matvec_q8_0_kernel` hands this function out only after detecting AVX2 and F16C,
    // and nothing else in this module calls it.
    unsafe { matvec_q8_0_avx2(out, w, row_bytes, xq) }
}

/// Block dot products waiting to be scaled and added: up to [`GROUP`] of them, each with the row
/// it belongs to and the two f16 scales.
struct Pending {
    acc: [__m256i; GROUP],
    row: [usize; GROUP],
    dw: [u16; GROUP],
    dx: [u16; GROUP],
    k: usize,
}

impl Pending {
    /// Scales the waiting block sums and adds each to its row's sum: `sums(r) += isum * (d_w *
    /// d_x)`. Blocks of one row were pushed in block order, so each row's sum grows in block
    /// order, exactly as in the portable kernel; rows only interleave, and never mix.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn flush(&mut self, sums: &mut [f32; ROWS]) {
        if self.k == 0 {
            return;
        }
        // Lanes at and past `k` hold stale values and are never added.
        let isum = _mm256_cvtepi32_ps(sum_each(&self.acc));
        // SAFETY: `dw` and `dx` are eight `u16`, exactly one unaligned 128-bit load each.
        let (dw, dx) = unsafe {
            (
                _mm256_cvtph_ps(_mm_loadu_si128(self.dw.as_ptr().cast::<__m128i>())),
                _mm256_cvtph_ps(_mm_loadu_si128(self.dx.as_ptr().cast::<__m128i>())),
            )
        };
        // p = isum * (d_w * d_x), the portable kernel's two products, lane-wise.
        let p = _mm256_mul_ps(isum, _mm256_mul_ps(dw, dx));
        let mut ps = [0.0f32; GROUP];
        // SAFETY: `ps` is eight f32, exactly one unaligned 256-bit store.
        unsafe { _mm256_storeu_ps(ps.as_mut_ptr(), p) };
        for (&v, &r) in ps.iter().zip(&self.row).take(self.k) {
            if let Some(s) = sums.get_mut(r) {
                *s += v;
            }
        }
        self.k = 0;
    }
}

/// `out(d) = W(d, n) . xq(n)`, [`ROWS`] rows at a time; bit-identical to the portable kernel.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn matvec_q8_0_avx2(out: &mut [f32], w: &[u8], row_bytes: usize, xq: &[BlockQ8_0]) {
    if row_bytes == 0 {
        return;
    }
    let nb = (row_bytes / Q8_0_BLOCK_BYTES).min(xq.len());
    let mut pending = Pending {
        acc: [_mm256_setzero_si256(); GROUP],
        row: [0; GROUP],
        dw: [0; GROUP],
        dx: [0; GROUP],
        k: 0,
    };
    if w.len() > FOUR_ROWS_MAX_BYTES {
        for (o, row) in out.iter_mut().zip(w.chunks_exact(row_bytes)) {
            *o = one_row(row, xq);
        }
        return;
    }
    for (outs, rows) in out.chunks_mut(ROWS).zip(w.chunks(ROWS * row_bytes)) {
        let n_rows = outs.len().min(rows.len() / row_bytes).min(ROWS);
        if n_rows == ROWS {
            let mut sums = [0.0f32; ROWS];
            // SAFETY: `sums` is four f32, exactly one unaligned 128-bit store.
            unsafe { _mm_storeu_ps(sums.as_mut_ptr(), four_rows(rows, row_bytes, xq, nb)) };
            outs.copy_from_slice(&sums);
            continue;
        }
        let mut sums = [0.0f32; ROWS];
        for (b, xb) in xq.iter().take(nb).enumerate() {
            // SAFETY: `xb.qs` is exactly 32 bytes, one unaligned 256-bit load.
            let x = unsafe { _mm256_loadu_si256(xb.qs.as_ptr().cast::<__m256i>()) };
            let x_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x));
            let x_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(x));
            for r in 0..n_rows {
                let at = r * row_bytes + b * Q8_0_BLOCK_BYTES;
                let Some(blk) = rows.get(at..at + Q8_0_BLOCK_BYTES) else { continue };
                // SAFETY: `blk[2..]` is exactly 32 bytes, one unaligned 256-bit load.
                let wq = unsafe { _mm256_loadu_si256(blk[2..].as_ptr().cast::<__m256i>()) };
                let k = pending.k;
                pending.acc[k] = block_dot(wq, x_lo, x_hi);
                pending.row[k] = r;
                pending.dw[k] = u16::from_le_bytes([blk[0], blk[1]]);
                pending.dx[k] = u16::from_le_bytes(xb.d);
                pending.k = k + 1;
                if pending.k == GROUP {
                    pending.flush(&mut sums);
                }
            }
        }
        pending.flush(&mut sums);
        for (o, &s) in outs.iter_mut().zip(&sums).take(n_rows) {
            *o = s;
        }
    }
}

/// One row's dot product with `xq`, [`GROUP`] blocks at a time: the same sums as the portable
/// [`super::dot_q8_0`], in the same order.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn one_row(w_row: &[u8], xq: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    let mut blocks = w_row.chunks_exact(Q8_0_BLOCK_BYTES).zip(xq).peekable();
    while blocks.peek().is_some() {
        let mut acc = [_mm256_setzero_si256(); GROUP];
        let mut dw = [0u16; GROUP];
        let mut dx = [0u16; GROUP];
        let mut k = 0;
        for (wb, xb) in blocks.by_ref().take(GROUP) {
            // SAFETY: `wb[2..]` and `xb.qs` are exactly 32 bytes each, one unaligned 256-bit load
            // each.
            let (w, x) = unsafe {
                (
                    _mm256_loadu_si256(wb[2..].as_ptr().cast::<__m256i>()),
                    _mm256_loadu_si256(xb.qs.as_ptr().cast::<__m256i>()),
                )
            };
            let x_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x));
            let x_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(x));
            acc[k] = block_dot(w, x_lo, x_hi);
            dw[k] = u16::from_le_bytes([wb[0], wb[1]]);
            dx[k] = u16::from_le_bytes(xb.d);
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
        let p = _mm256_mul_ps(isum, _mm256_mul_ps(dw, dx));
        let mut ps = [0.0f32; GROUP];
        // SAFETY: `ps` is eight f32, exactly one unaligned 256-bit store.
        unsafe { _mm256_storeu_ps(ps.as_mut_ptr(), p) };
        for &v in ps.iter().take(k) {
            sum += v;
        }
    }
    sum
}

/// One block `b` of four consecutive rows against activation block `xb`: the four blocks' `i32`
/// partial sums and the rows' f16 scales packed in a `u64` (row `r` in bits `16r..16r + 16`), so
/// that they reach a vector register without a round trip through memory.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_of_four_rows(
    rows: &[u8],
    row_bytes: usize,
    b: usize,
    xb: &BlockQ8_0,
) -> ([__m256i; ROWS], u64) {
    // SAFETY: `xb.qs` is exactly 32 bytes, one unaligned 256-bit load.
    let x = unsafe { _mm256_loadu_si256(xb.qs.as_ptr().cast::<__m256i>()) };
    let x_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x));
    let x_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(x));
    let mut acc = [_mm256_setzero_si256(); ROWS];
    let mut dw = 0u64;
    for (r, a) in acc.iter_mut().enumerate() {
        let at = r * row_bytes + b * Q8_0_BLOCK_BYTES;
        // Always present: the caller passes four whole rows and `b` below their block count.
        let Some(blk) = rows.get(at..at + Q8_0_BLOCK_BYTES) else { continue };
        // SAFETY: `blk[2..]` is exactly 32 bytes, one unaligned 256-bit load.
        let wq = unsafe { _mm256_loadu_si256(blk[2..].as_ptr().cast::<__m256i>()) };
        *a = block_dot(wq, x_lo, x_hi);
        dw |= u64::from(u16::from_le_bytes([blk[0], blk[1]])) << (16 * r);
    }
    (acc, dw)
}

/// The four rows' dot products with `xq` (blocks `0..nb`), as one vector: two blocks of the four
/// rows make one group of eight block sums, and lane `r` of the result is row `r`'s running sum,
/// grown by block `b` then block `b + 1`: each lane adds in block order, as the portable kernel.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn four_rows(rows: &[u8], row_bytes: usize, xq: &[BlockQ8_0], nb: usize) -> __m128 {
    let mut sums = _mm_setzero_ps();
    let mut b = 0;
    while b < nb {
        let (Some(x0), x1) = (xq.get(b), xq.get(b + 1).filter(|_| b + 1 < nb)) else { break };
        let (a0, w0) = block_of_four_rows(rows, row_bytes, b, x0);
        let (a1, w1) = match x1 {
            Some(x1) => block_of_four_rows(rows, row_bytes, b + 1, x1),
            None => ([_mm256_setzero_si256(); ROWS], 0),
        };
        let acc = [a0[0], a0[1], a0[2], a0[3], a1[0], a1[1], a1[2], a1[3]];
        // Each activation scale repeated for the four rows.
        let d0 = u64::from(u16::from_le_bytes(x0.d)) * 0x0001_0001_0001_0001;
        let d1 = x1.map_or(0, |x| u64::from(u16::from_le_bytes(x.d)) * 0x0001_0001_0001_0001);
        let isum = _mm256_cvtepi32_ps(sum_each(&acc));
        let dw = _mm256_cvtph_ps(_mm_set_epi64x(w1 as i64, w0 as i64));
        let dx = _mm256_cvtph_ps(_mm_set_epi64x(d1 as i64, d0 as i64));
        // p = isum * (d_w * d_x), the portable kernel's two products, lane-wise.
        let p = _mm256_mul_ps(isum, _mm256_mul_ps(dw, dx));
        sums = _mm_add_ps(sums, _mm256_castps256_ps128(p));
        if x1.is_some() {
            sums = _mm_add_ps(sums, _mm256_extractf128_ps::<1>(p));
            b += 2;
        } else {
            b += 1;
        }
    }
    sums
}

/// Eight `i32` partial sums of `sum_j w(j) * x(j)` over one block of 32 `i8` (exact), the
/// activation already widened to `i16` halves.
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_dot(w: __m256i, x_lo: __m256i, x_hi: __m256i) -> __m256i {
    let w_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w));
    let w_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256::<1>(w));
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
    use crate::quant::{f16_bits_to_f32, f32_to_f16_bits, QK8_0};

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

    fn kernel() -> Option<MatvecQ8_0> {
        let k = matvec_q8_0_kernel();
        if k.is_none() {
            eprintln!("this CPU lacks AVX2 or F16C: the x86_64 kernel is not tested here");
        }
        k
    }

    /// `rows` rows of `nb` blocks and an activation of `nb` blocks, values from `fill`.
    fn matrix(
        rng: &mut Rng,
        rows: usize,
        nb: usize,
        fill: impl Fn(&mut Rng) -> i8,
    ) -> (Vec<u8>, Vec<BlockQ8_0>) {
        let mut w = Vec::with_capacity(rows * nb * Q8_0_BLOCK_BYTES);
        for _ in 0..rows * nb {
            w.extend_from_slice(&rng.scale());
            w.extend((0..QK8_0).map(|_| fill(rng) as u8));
        }
        let x = (0..nb)
            .map(|_| {
                let mut b = BlockQ8_0 { d: rng.scale(), qs: [0; QK8_0] };
                b.qs.iter_mut().for_each(|q| *q = fill(rng));
                b
            })
            .collect();
        (w, x)
    }

    /// Fast and portable products of the same inputs, as bits; `out` starts as NaN so that
    /// entries a kernel leaves alone show up.
    fn both(fast: MatvecQ8_0, w: &[u8], rb: usize, x: &[BlockQ8_0], d: usize) -> [Vec<u32>; 2] {
        let (mut a, mut b) = (vec![f32::NAN; d], vec![f32::NAN; d]);
        super::super::matvec_q8_0_portable(&mut a, w, rb, x);
        fast(&mut b, w, rb, x);
        [a, b].map(|v| v.iter().map(|f| f.to_bits()).collect())
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
    fn matches_portable_kernel_bit_for_bit_on_random_matrices() {
        let Some(fast) = kernel() else { return };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        // Row counts around the 4-row step, odd block counts, every group fill, the GPT-2 widths
        // (768 and 3072 values).
        for rows in [1, 2, 3, 4, 5, 7, 9] {
            for nb in (1..=19).chain([24, 96, 97]) {
                let (w, x) = matrix(&mut rng, rows, nb, Rng::i8);
                let rb = nb * Q8_0_BLOCK_BYTES;
                let [a, b] = both(fast, &w, rb, &x, rows);
                assert_eq!(a, b, "{rows} rows of {nb} blocks");
            }
        }
    }

    #[test]
    fn matrices_past_the_four_row_limit_match_too() {
        let Some(fast) = kernel() else { return };
        let mut rng = Rng(0x9e37_79b9);
        // 161 rows of 97 blocks: 531,018 bytes, read one row at a time.
        let (rows, nb) = (161, 97);
        assert!(rows * nb * Q8_0_BLOCK_BYTES > FOUR_ROWS_MAX_BYTES);
        let fills: [fn(&mut Rng) -> i8; 2] =
            [Rng::i8, |r| if r.next() & 1 == 0 { -128 } else { 127 }];
        for fill in fills {
            let (w, x) = matrix(&mut rng, rows, nb, fill);
            let [a, b] = both(fast, &w, nb * Q8_0_BLOCK_BYTES, &x, rows);
            assert_eq!(a, b);
        }
    }

    #[test]
    fn matches_portable_kernel_at_the_i8_extremes() {
        let Some(fast) = kernel() else { return };
        let mut rng = Rng(7);
        let fills: [fn(&mut Rng) -> i8; 3] =
            [|_| -128, |_| 127, |r| if r.next() & 1 == 0 { -128 } else { 127 }];
        for (rows, nb) in [(1, 1), (3, 3), (4, 8), (5, 9), (2, 17)] {
            for fill in fills {
                let (w, x) = matrix(&mut rng, rows, nb, fill);
                let [a, b] = both(fast, &w, nb * Q8_0_BLOCK_BYTES, &x, rows);
                assert_eq!(a, b, "{rows} rows of {nb} blocks");
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
        let mut out = [0.0f32; 1];
        fast(&mut out, &w, 3 * Q8_0_BLOCK_BYTES, &x);
        assert_eq!(out, [3.0 * 32.0 * 16384.0]);
    }

    #[test]
    fn reads_and_writes_what_the_portable_kernel_does_for_mismatched_sizes() {
        let Some(fast) = kernel() else { return };
        let mut rng = Rng(99);
        let (w, x) = matrix(&mut rng, 6, 11, Rng::i8);
        let rb = 11 * Q8_0_BLOCK_BYTES;
        // (rows of data, outputs, activation blocks): fewer outputs than rows, fewer rows than
        // outputs (a cut last row), a short activation, no rows at all.
        for (data, d, xn) in [(6 * rb, 3, 11), (5 * rb + 20, 6, 11), (6 * rb, 6, 4), (0, 2, 11)] {
            let [a, b] = both(fast, &w[..data], rb, &x[..xn], d);
            assert_eq!(a, b, "{data} bytes, {d} outputs, {xn} blocks");
        }
    }
}
