//! The x86_64 Q8_0 matrix-vector product with AVX2 and F16C, chosen at run time.
//!
//! Bit-identical to the portable kernel (row by row with [`super::dot_q8_0`]), which stays the
//! reference: the integer part (32 `i8 x i8` products per block, summed to an `i32`) is exact in
//! any order, and the f32 part runs exactly as the portable kernel writes it, `sum += isum as f32 *
//! (d_w * d_x)` block after block within each row.
//!
//! The portable order makes each row one chain of dependent f32 additions, so a kernel that walks
//! one row at a time waits on that chain. This one walks [`ROWS`] rows together, one row per lane
//! of a 256-bit vector: for each block, the eight rows' exact integer dot products are reduced to
//! one `i32` per lane, converted, scaled and added lane-wise to the eight running sums. Each lane
//! performs exactly the portable sequence of f32 operations for its row (a multiply, a multiply,
//! an add: no fused multiply-add), and the eight chains run side by side.
//!
//! Widening both operands to `i16` (`vpmovsxbw`) and multiplying with `vpmaddwd` is exact for every
//! pair of `i8`, including `-128 * -128`; ggml's faster `vpmaddubsw` trick is not (it computes
//! `|a| * (b * sign(a))`, which wraps for `b = -128`, a value a file may hold).
//!
//! Run-time detection needs `std` (`is_x86_feature_detected!`), so this module exists only with
//! mote-core's `std` feature, which the desktop crate turns on and the firmware never does.
#![allow(unsafe_code)]

use core::arch::x86_64::{
    __m256, __m256i, _mm256_add_epi32, _mm256_add_ps, _mm256_cvtepi32_ps, _mm256_cvtepi8_epi16,
    _mm256_cvtph_ps, _mm256_hadd_epi32, _mm256_madd_epi16, _mm256_mul_ps,
    _mm256_permute2x128_si256, _mm256_setzero_ps, _mm256_storeu_ps, _mm_loadu_si128, _mm_prefetch,
    _mm_set1_epi16, _mm_set_epi64x, _MM_HINT_T0,
};

use crate::quant::{f16_bits_to_f32, BlockQ8_0, Q8Rows, Q8_0_BLOCK_BYTES};

/// f16 bits to f32, element by element over the common length, as [`f16_bits_to_f32`] does.
pub(crate) type F16ToF32 = fn(&mut [f32], &[u16]);

/// The F16C widening of f16 values, if this CPU has F16C; `None` otherwise. The conversion is
/// exact, so it gives [`f16_bits_to_f32`]'s bits (NaNs included: a test checks all 65,536 inputs).
pub(crate) fn f16_to_f32_kernel() -> Option<F16ToF32> {
    if std::is_x86_feature_detected!("avx") && std::is_x86_feature_detected!("f16c") {
        Some(f16_to_f32)
    } else {
        None
    }
}

/// Reached only through [`f16_to_f32_kernel`].
fn f16_to_f32(out: &mut [f32], src: &[u16]) {
    // SAFETY: `f16_to_f32_kernel` hands this function out only after detecting AVX and F16C.
    unsafe { f16_to_f32_f16c(out, src) }
}

#[target_feature(enable = "avx,f16c")]
unsafe fn f16_to_f32_f16c(out: &mut [f32], src: &[u16]) {
    let n = out.len().min(src.len());
    let (out, src) = (&mut out[..n], &src[..n]);
    let mut outs = out.chunks_exact_mut(8);
    let mut srcs = src.chunks_exact(8);
    for (o, h) in outs.by_ref().zip(srcs.by_ref()) {
        // SAFETY: `h` holds 8 u16 (16 bytes) and `o` 8 f32 (32 bytes); both loads and stores are
        // unaligned.
        unsafe {
            let v = _mm_loadu_si128(h.as_ptr().cast());
            _mm256_storeu_ps(o.as_mut_ptr(), _mm256_cvtph_ps(v));
        }
    }
    for (o, &h) in outs.into_remainder().iter_mut().zip(srcs.remainder()) {
        *o = f16_bits_to_f32(h);
    }
}

/// Rows computed together, one per f32 lane of a 256-bit vector.
const ROWS: usize = 8;

/// Cache lines of the next group of rows prefetched per block: eight rows of one block are 272
/// bytes, 4.25 lines. Eight rows read side by side make eight interleaved streams that the
/// hardware prefetcher follows badly once a matrix is not in the caches; without this, GPT-2 124M
/// decodes slower than one row at a time would (docs/performance.md).
const PREFETCH_LINES: usize = 5;

/// `out(d) = W(d, n) . xq(n)` over the whole Q8_0 rows of `w`, as [`super::matvec_q8_0_rows`]
/// computes it row by row with [`super::dot_q8_0`].
pub(crate) type MatvecQ8_0 = fn(&mut [f32], Q8Rows<'_>, &[BlockQ8_0]);

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
fn matvec_q8_0(out: &mut [f32], w: Q8Rows<'_>, xq: &[BlockQ8_0]) {
    // SAFETY: `matvec_q8_0_kernel` hands this function out only after detecting AVX2 and F16C,
    // and nothing else in this module calls it.
    unsafe { matvec_q8_0_avx2(out, w.bytes(), w.row_bytes(), xq) }
}

/// `out(d) = W(d, n) . xq(n)`, [`ROWS`] rows at a time; bit-identical to the portable kernel,
/// which computes `min(out.len(), w.len() / row_bytes)` rows over `min(row_bytes / 34, xq.len())`
/// blocks and leaves the rest of `out` alone.
///
/// # Safety
/// The CPU must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
unsafe fn matvec_q8_0_avx2(out: &mut [f32], w: &[u8], row_bytes: usize, xq: &[BlockQ8_0]) {
    if row_bytes == 0 {
        return;
    }
    let nb = (row_bytes / Q8_0_BLOCK_BYTES).min(xq.len());
    let Some(xq) = xq.get(..nb) else { return };
    let n_rows = out.len().min(w.len() / row_bytes);
    let Some(out) = out.get_mut(..n_rows) else { return };
    for (g, outs) in out.chunks_mut(ROWS).enumerate() {
        let first = g * ROWS;
        let last = outs.len() - 1;
        // A last group of fewer rows repeats its last row in the spare lanes, whose sums are
        // dropped: every row still gets exactly its own lane's sequence.
        let starts: [usize; ROWS] = core::array::from_fn(|r| (first + r.min(last)) * row_bytes);
        let mut sums = [0.0f32; ROWS];
        // SAFETY: AVX2 and F16C are enabled here; each start is that of a row below `n_rows`,
        // so `start + row_bytes <= w.len()`, and `nb * 34 <= row_bytes`.
        let next = w.as_ptr().wrapping_add((first + ROWS) * row_bytes);
        unsafe { _mm256_storeu_ps(sums.as_mut_ptr(), eight_rows(w, &starts, next, xq)) };
        outs.copy_from_slice(&sums[..outs.len()]);
    }
}

/// The dot products with `xq` of the eight rows starting at byte offsets `starts` of `w`, lane
/// `r` for row `r`, each summed block by block in the portable order. `next` is where the rows
/// after these start; it is only prefetched, never read, so it may point anywhere.
///
/// # Safety
/// The CPU must support AVX2 and F16C, and `start + 34 * xq.len() <= w.len()` for every start.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn eight_rows(
    w: &[u8],
    starts: &[usize; ROWS],
    next: *const u8,
    xq: &[BlockQ8_0],
) -> __m256 {
    // SAFETY (for every `add` and load below): the caller guarantees each row's blocks
    // `0..xq.len()` lie inside `w`; a block is 34 bytes, read as its 2-byte scale and two
    // 16-byte halves.
    let rows: [*const u8; ROWS] = starts.map(|s| unsafe { w.as_ptr().add(s) });
    let mut sums = _mm256_setzero_ps();
    for (b, xb) in xq.iter().enumerate() {
        let at = b * Q8_0_BLOCK_BYTES;
        // The next group's rows are one contiguous span, fetched as one stream: 272 bytes of it
        // per block of the current eight rows, so it is in cache when its turn comes.
        let ahead = next.wrapping_add(ROWS * at);
        for line in 0..PREFETCH_LINES {
            _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(64 * line).cast());
        }
        let xp = xb.qs.as_ptr().cast::<u8>();
        // The activation block widened to i16 once, shared by the eight rows.
        let (x_lo, x_hi) = unsafe {
            (
                _mm256_cvtepi8_epi16(_mm_loadu_si128(xp.cast())),
                _mm256_cvtepi8_epi16(_mm_loadu_si128(xp.add(16).cast())),
            )
        };
        let acc: [__m256i; ROWS] = core::array::from_fn(|r| unsafe {
            let q = rows[r].add(at + 2);
            block_dot(q, x_lo, x_hi)
        });
        // The rows' f16 scales, four to a u64, reach the vector unit without a trip through
        // memory (eight 2-byte stores then one 16-byte load would stall store forwarding).
        let d = |r: usize| unsafe { u64::from(rows[r].add(at).cast::<u16>().read_unaligned()) };
        let dw_lo = d(0) | d(1) << 16 | d(2) << 32 | d(3) << 48;
        let dw_hi = d(4) | d(5) << 16 | d(6) << 32 | d(7) << 48;
        let dw = _mm256_cvtph_ps(_mm_set_epi64x(dw_hi as i64, dw_lo as i64));
        // The activation's scale in every lane, widened by F16C (the same bits as the portable
        // conversion, tested below for every f16).
        let dx = _mm256_cvtph_ps(_mm_set1_epi16(i16::from_le_bytes(xb.d)));
        let isum = _mm256_cvtepi32_ps(sum_each(&acc));
        // sum += isum * (d_w * d_x): the portable kernel's two products and one addition.
        sums = _mm256_add_ps(sums, _mm256_mul_ps(isum, _mm256_mul_ps(dw, dx)));
    }
    sums
}

/// Eight `i32` partial sums of `sum_j w(j) * x(j)` over one block of 32 `i8` at `q` (exact), the
/// activation already widened to `i16` halves.
///
/// # Safety
/// The CPU must support AVX2, and `q` must be readable for 32 bytes.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_dot(q: *const u8, x_lo: __m256i, x_hi: __m256i) -> __m256i {
    // SAFETY: two 16-byte loads inside the 32 bytes the caller vouches for.
    let (w_lo, w_hi) = unsafe {
        (
            _mm256_cvtepi8_epi16(_mm_loadu_si128(q.cast())),
            _mm256_cvtepi8_epi16(_mm_loadu_si128(q.add(16).cast())),
        )
    };
    _mm256_add_epi32(_mm256_madd_epi16(w_lo, x_lo), _mm256_madd_epi16(w_hi, x_hi))
}

/// `out(i) = sum of the eight i32 lanes of v(i)`, for eight vectors at once (exact integer sums).
///
/// # Safety
/// The CPU must support AVX2.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn sum_each(v: &[__m256i; ROWS]) -> __m256i {
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
    use crate::quant::{f32_to_f16_bits, QK8_0};

    #[test]
    fn f16c_widening_gives_the_portable_bits_for_every_f16() {
        // The same instruction widens the kernel's scales and the f16 KV cache's rows.
        let Some(fast) = f16_to_f32_kernel() else { return };
        let all: Vec<u16> = (0..=u16::MAX).collect();
        // An odd length leaves a tail for the scalar path.
        let mut got = vec![0.0f32; all.len() - 3];
        fast(&mut got, &all);
        for (&h, g) in all.iter().zip(&got) {
            assert_eq!(g.to_bits(), f16_bits_to_f32(h).to_bits(), "f16 bits {h:#06x}");
        }
    }

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
        let w = Q8Rows::from_bytes(w, rb / Q8_0_BLOCK_BYTES);
        super::super::matvec_q8_0_portable(&mut a, w, x);
        fast(&mut b, w, x);
        [a, b].map(|v| v.iter().map(|f| f.to_bits()).collect())
    }

    #[test]
    fn matches_portable_kernel_bit_for_bit_on_random_matrices() {
        let Some(fast) = kernel() else { return };
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        // Every row count up to three 8-row groups (so every fill of a last, partial group), odd
        // block counts, the GPT-2 widths (768 and 3072 values).
        for rows in (1..=25).chain([31, 33]) {
            for nb in (1..=19).chain([24, 96, 97]) {
                let (w, x) = matrix(&mut rng, rows, nb, Rng::i8);
                let rb = nb * Q8_0_BLOCK_BYTES;
                let [a, b] = both(fast, &w, rb, &x, rows);
                assert_eq!(a, b, "{rows} rows of {nb} blocks");
            }
        }
    }

    #[test]
    fn large_matrices_match_too() {
        let Some(fast) = kernel() else { return };
        let mut rng = Rng(0x9e37_79b9);
        // 161 rows of 97 blocks (531,018 bytes, more than the caches of many cores; 161 = 20
        // groups of eight and one row).
        let (rows, nb) = (161, 97);
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
        for (rows, nb) in [(1, 1), (3, 3), (4, 8), (5, 9), (2, 17), (8, 4), (13, 7), (17, 24)] {
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
        fast(&mut out, Q8Rows::from_bytes(&w, 3), &x);
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
