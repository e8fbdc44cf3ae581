//! The kernels: free functions on slices, output first, each with its formula.
//!
//! Letters: `n` input length, `d` output length.
//!
//! Determinism: every sum runs in one fixed order written out here (no reassociation, no fused
//! multiply-add: Rust never contracts `a * b + c` on its own), and every transcendental function is
//! `libm`'s or written out here ([`tanh`], [`exp`]), so the results are bit-identical on every
//! target. These are the portable reference kernels; faster target-specific ones must reproduce
//! them exactly: `cortex_m` (Cortex-M DSP extension), `helium` (Cortex-M55 vector extension) and
//! `armv6m` (Cortex-M0/M0+, no DSP),
//! chosen at compile time by [`matvec`] (and `cortex_m` by [`weighted_rows_q8_0`]); and
//! `riscv32` (RV32IMC), the block dot product [`dot_i8`] on RISC-V.

#[cfg(all(target_arch = "arm", target_feature = "mclass", not(target_feature = "thumb2")))]
pub mod armv6m;
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
pub mod cortex_m;
#[cfg(all(target_arch = "arm", feature = "helium"))]
pub mod helium;

// On the host for its tests, which execute its assembly's text.
#[cfg(any(target_arch = "riscv32", test))]
pub mod riscv32;
#[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
mod x86_64;

use crate::gguf::GgmlType;
use crate::model::{F32s, Matrix};
use crate::quant::{f16_bits_to_f32, quantize_row_q8_0, BlockQ8_0, Q8Rows, QK8_0, ROUND_MAGIC};
use crate::split::{split_if_large, RowSplit, Serial};

/// `sqrt(2 / pi)`, GELU's tanh-form constant.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// Lanes of the f32 dot product: eight running sums, combined pairwise at the end. The order is
/// fixed (so the result is the same everywhere) and lets the compiler use SIMD registers.
const F32_LANES: usize = 8;

/// `sum_i a(i) * b(i)` over the common length, in [`F32_LANES`] interleaved partial sums combined
/// as `((s0 + s4) + (s2 + s6)) + ((s1 + s5) + (s3 + s7))`, then the tail in order.
#[inline]
pub(crate) fn dot_lanes(a: &[f32], mut b: impl Iterator<Item = f32>) -> f32 {
    let mut s = [0.0f32; F32_LANES];
    let mut chunks = a.chunks_exact(F32_LANES);
    for chunk in chunks.by_ref() {
        for (acc, &x) in s.iter_mut().zip(chunk) {
            *acc += x * b.next().unwrap_or(0.0);
        }
    }
    let mut tail = 0.0f32;
    for &x in chunks.remainder() {
        tail += x * b.next().unwrap_or(0.0);
    }
    ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7])) + tail
}

/// `sum_i x(i) * w(i)` for a row of little-endian f32 bytes.
pub fn dot_f32(w_row: &[u8], x: &[f32]) -> f32 {
    let mut s = [0.0f32; F32_LANES];
    let mut xs = x.chunks_exact(F32_LANES);
    let mut ws = w_row.chunks_exact(4 * F32_LANES);
    for (xc, wc) in xs.by_ref().zip(ws.by_ref()) {
        for ((acc, &xv), wb) in s.iter_mut().zip(xc).zip(wc.chunks_exact(4)) {
            *acc += xv * f32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]);
        }
    }
    let mut tail = 0.0f32;
    for (&xv, wb) in xs.remainder().iter().zip(ws.remainder().chunks_exact(4)) {
        tail += xv * f32::from_le_bytes([wb[0], wb[1], wb[2], wb[3]]);
    }
    ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7])) + tail
}

/// `sum_i x(i) * w(i)` for a row of little-endian f16 bytes (each weight widened to f32, exactly).
pub fn dot_f16(w_row: &[u8], x: &[f32]) -> f32 {
    dot_lanes(x, w_row.chunks_exact(2).map(|b| f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]))))
}

/// `sum_j a(j) * b(j)` over one block of 32 int8 values, exact in `i32`: the integer core that
/// the float path's [`dot_q8_0`] and the integer path ([`crate::integer`]) share.
#[inline]
pub fn dot_i8(a: &[i8; QK8_0], b: &[i8; QK8_0]) -> i32 {
    #[cfg(target_arch = "riscv32")]
    return riscv32::dot_i8(a, b);
    #[allow(unreachable_code)]
    dot_i8_portable(a, b)
}

/// The reference for [`dot_i8`]: the loop in Rust, which every target's kernel reproduces.
#[inline]
pub fn dot_i8_portable(a: &[i8; QK8_0], b: &[i8; QK8_0]) -> i32 {
    // A fixed trip count of 32 lets the compiler vectorize the integer dot product.
    let mut isum = 0i32;
    for j in 0..QK8_0 {
        isum += i32::from(a[j]) * i32::from(b[j]);
    }
    isum
}

/// Whether [`dot_i8x4`] is a kernel of its own that reads each activation value once for four rows
/// (else it is four [`dot_i8`], and a row at a time is as fast).
pub const DOT_I8X4_SHARED: bool = cfg!(any(
    all(target_arch = "arm", target_feature = "mclass", not(target_feature = "thumb2")),
    target_arch = "riscv32"
));

/// `[dot_i8(w[0], x), .., dot_i8(w[3], x)]`: one activation block against four rows' blocks, each
/// exact in `i32`. Where a target has a kernel that shares each activation value among rows (the
/// ARMv6-M and RV32IMC assembly, `armv6m::block_dots4` and `riscv32::block_dots4`), this is it;
/// elsewhere four [`dot_i8`].
#[inline]
pub fn dot_i8x4(w: [&[i8; QK8_0]; 4], x: &[i8; QK8_0]) -> [i32; 4] {
    #[cfg(all(target_arch = "arm", target_feature = "mclass", not(target_feature = "thumb2")))]
    return armv6m::block_dots4(w, x);
    #[cfg(target_arch = "riscv32")]
    return riscv32::block_dots4(w, x);
    #[allow(unreachable_code)]
    w.map(|r| dot_i8(r, x))
}

/// `sum_b (d_w(b) * d_x(b)) * sum_j q_w(b, j) * q_x(b, j)` for a row of Q8_0 blocks against a
/// Q8_0 activation: each block's dot product is an exact `i32` ([`dot_i8`]), scaled and added in
/// block order.
pub fn dot_q8_0(w_row: &[BlockQ8_0], xq: &[BlockQ8_0]) -> f32 {
    let mut sum = 0.0f32;
    for (wb, xb) in w_row.iter().zip(xq) {
        sum += dot_i8(&wb.qs, &xb.qs) as f32 * (wb.scale() * xb.scale());
    }
    sum
}

/// `out(d) = W(d, n) . xq(n)` over the whole rows of `w`, each read for `xq.len()` blocks: the
/// AVX2 kernel when mote-core is built with `std` on an x86_64 CPU with AVX2 and F16C (detected
/// at run time), else [`matvec_q8_0_portable`]. Both give the same bits.
pub(crate) fn matvec_q8_0_rows(out: &mut [f32], w: Q8Rows<'_>, xq: &[BlockQ8_0]) {
    // The fastest kernel the target has; each gives the portable loop's bits. On Arm the choice
    // is made at compile time, on x86_64 at run time (with the host's `std` feature).
    #[cfg(all(target_arch = "arm", feature = "helium"))]
    return helium::matvec_q8_0(out, w, xq);
    #[cfg(all(target_arch = "arm", target_feature = "dsp", not(feature = "helium")))]
    return cortex_m::matvec_q8_0(out, w, xq);
    #[cfg(all(target_arch = "arm", target_feature = "mclass", not(target_feature = "thumb2")))]
    return armv6m::matvec_q8_0(out, w, xq);
    #[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
    if let Some(fast) = x86_64::matvec_q8_0_kernel() {
        return fast(out, w, xq);
    }
    #[allow(unreachable_code)]
    matvec_q8_0_portable(out, w, xq)
}

/// The reference for [`matvec_q8_0_rows`]: row by row with [`dot_q8_0`].
#[cfg_attr(
    all(
        target_arch = "arm",
        any(target_feature = "dsp", feature = "helium", not(target_feature = "thumb2"))
    ),
    allow(dead_code)
)]
fn matvec_q8_0_portable(out: &mut [f32], w: Q8Rows<'_>, xq: &[BlockQ8_0]) {
    for (o, row) in out.iter_mut().zip(w.rows()) {
        *o = dot_q8_0(row, xq);
    }
}

/// `out(j) += sum_t (a(t) * d(t, j / 32)) * q(t, j)` for `t` in `0..a.len()`, the rows `t` of
/// `w`, each read for `out.len() / 32` blocks: attention's sum of cached values weighted by the
/// softmax, one head.
///
/// For each value the terms are added in the order of `t`, each weight times its block's scale
/// rounded first: the same operations as one row at a time. Four rows go together so that each
/// output is loaded and stored once per four terms. Stops at the first row that is not all in `w`.
///
/// On cores with the DSP extension the groups of four rows run in assembly
/// (`cortex_m::weighted_rows4`), with the bits of [`weighted_rows_q8_0_portable`].
pub fn weighted_rows_q8_0(out: &mut [f32], a: &[f32], w: Q8Rows<'_>) {
    weighted_rows(out, a, w, true);
}

/// The reference for [`weighted_rows_q8_0`]: the same sums by the portable loops on every target.
pub fn weighted_rows_q8_0_portable(out: &mut [f32], a: &[f32], w: Q8Rows<'_>) {
    weighted_rows(out, a, w, false);
}

/// [`weighted_rows_q8_0`], with the assembly for groups of four rows where the target has it and
/// `fast` asks for it.
#[cfg_attr(not(all(target_arch = "arm", target_feature = "dsp")), allow(unused_variables))]
fn weighted_rows(out: &mut [f32], a: &[f32], w: Q8Rows<'_>, fast: bool) {
    // Block `b` of row `t`: its scale and its 32 values. Arrays of a known length let the
    // compiler unroll the loops below with no bounds checks.
    let block = |t: usize, b: usize| -> Option<(f32, &[i8; QK8_0])> {
        let blk = w.blocks.get(t.checked_mul(w.stride)?.checked_add(b)?)?;
        Some((blk.scale(), &blk.qs))
    };
    for (b, o) in out.chunks_exact_mut(QK8_0).enumerate() {
        let Ok(o) = <&mut [f32; QK8_0]>::try_from(o) else { break };
        #[allow(unused_mut)]
        let mut t = 0;
        // The same sums in assembly, for as many groups of four rows as there are.
        #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
        if fast {
            t = cortex_m::weighted_rows4(o, a, w, b);
        }
        while t + 4 <= a.len() {
            let (Some((d0, q0)), Some((d1, q1)), Some((d2, q2)), Some((d3, q3))) =
                (block(t, b), block(t + 1, b), block(t + 2, b), block(t + 3, b))
            else {
                break;
            };
            let (k0, k1, k2, k3) = (a[t] * d0, a[t + 1] * d1, a[t + 2] * d2, a[t + 3] * d3);
            for j in 0..QK8_0 {
                o[j] = (((o[j] + k0 * f32::from(q0[j])) + k1 * f32::from(q1[j]))
                    + k2 * f32::from(q2[j]))
                    + k3 * f32::from(q3[j]);
            }
            t += 4;
        }
        while let (Some(&at), Some((d, q))) = (a.get(t), block(t, b)) {
            let k = at * d;
            for j in 0..QK8_0 {
                o[j] += k * f32::from(q[j]);
            }
            t += 1;
        }
    }
}

/// `out(i) = src(i)` widened from f16 bits to f32, over the common length: exact, so F16C (on
/// x86_64 with mote-core's `std` feature, detected at run time) and [`f16_bits_to_f32`] give the
/// same bits.
#[cfg(not(feature = "kv-q8_0-only"))]
pub(crate) fn f16_row_to_f32(out: &mut [f32], src: &[u16]) {
    #[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
    if let Some(fast) = x86_64::f16_to_f32_kernel() {
        return fast(out, src);
    }
    for (o, &h) in out.iter_mut().zip(src) {
        *o = f16_bits_to_f32(h);
    }
}

/// The name of the Q8_0 row kernel [`matvec`] uses on this machine: `"avx2"`, `"dsp"`, `"helium"`,
/// `"armv6m"` or `"portable"`.
pub fn q8_0_kernel_name() -> &'static str {
    #[cfg(all(target_arch = "arm", feature = "helium"))]
    return "helium";
    #[cfg(all(target_arch = "arm", target_feature = "dsp", not(feature = "helium")))]
    return "dsp";
    #[cfg(all(target_arch = "arm", target_feature = "mclass", not(target_feature = "thumb2")))]
    return "armv6m";
    #[cfg(all(target_arch = "x86_64", any(test, feature = "std")))]
    if x86_64::matvec_q8_0_kernel().is_some() {
        return "avx2";
    }
    #[allow(unreachable_code)]
    "portable"
}

/// Rows a piece of a split Q8_0 product holds a multiple of: the AVX2 kernel's group.
const ROW_GRAIN: usize = 8;

/// Bytes of weight rows [`matmul`] reads per tile: every token of the batch passes over a tile
/// while it is in the core's 512 KB level-2 cache (and usually its 32 KB level 1 for the small
/// model), so the weights come from memory once per batch instead of once per token.
const MATMUL_TILE_BYTES: usize = 64 * 1024;

/// `out(d) = W(d, n) . x(n) + bias(d)`, over F32, F16 or Q8_0 rows.
///
/// For Q8_0 rows `x` is first quantized to Q8_0 blocks in `xq` (at least `n / 32` blocks), as ggml
/// does; F32 and F16 rows are multiplied in f32. Rows beyond `out`, or an `x` shorter than the rows,
/// are not read: the caller sizes both from the same hyper-parameters.
pub fn matvec(
    out: &mut [f32],
    w: &Matrix<'_>,
    bias: Option<F32s<'_>>,
    x: &[f32],
    xq: &mut [BlockQ8_0],
) {
    matvec_rows(out, w, x, xq, &Serial);
    if let Some(b) = bias {
        add_bias(out, b);
    }
}

/// `out(d) = W(d, n) . x(n)`, [`matvec`] without the bias, with the rows of a Q8_0 matrix of at
/// least [`crate::split::SPLIT_MIN_BYTES`] handed out by `split` (to several threads, on the
/// desktop): each row is computed by the same kernel in the same order wherever it runs.
fn matvec_rows(
    out: &mut [f32],
    w: &Matrix<'_>,
    x: &[f32],
    xq: &mut [BlockQ8_0],
    split: &dyn RowSplit,
) {
    let rb = w.row_bytes();
    if rb == 0 {
        return;
    }
    let rows = w.data.chunks_exact(rb);
    match w.ty {
        #[cfg(not(feature = "weights-q8_0-only"))]
        GgmlType::F32 => {
            for (o, row) in out.iter_mut().zip(rows) {
                *o = dot_f32(row, x);
            }
        }
        #[cfg(not(feature = "weights-q8_0-only"))]
        GgmlType::F16 => {
            for (o, row) in out.iter_mut().zip(rows) {
                *o = dot_f16(row, x);
            }
        }
        // Left out of this build: `Model::load` refuses such a matrix (ModelError::ProductNotBuilt).
        #[cfg(feature = "weights-q8_0-only")]
        GgmlType::F32 | GgmlType::F16 => {
            let _ = rows;
            out.fill(0.0);
        }
        GgmlType::Q8_0 => {
            let nb = w.n_in / QK8_0;
            let Some(xq) = xq.get_mut(..nb) else { return };
            quantize_row_q8_0(xq, x);
            let (xq, rows) = (&*xq, Q8Rows::from_bytes(w.data, nb));
            split_if_large(split, w.data.len(), out, ROW_GRAIN, &|start, piece| {
                matvec_q8_0_rows(piece, rows.from_row(start), xq);
            });
        }
    }
}

/// In place, `out(d) += bias(d)`: [`add`] for a word-aligned bias (as a GGUF file's tensors are)
/// on cores with the DSP extension.
fn add_bias(out: &mut [f32], bias: F32s<'_>) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    if let Ok(b) = bytemuck::try_cast_slice::<u8, f32>(bias.data) {
        return add(out, b);
    }
    for (o, b) in out.iter_mut().zip(bias.iter()) {
        *o += b;
    }
}

/// `out(P, d) = X(P, n) . W(d, n)^T + bias(d)`: [`matvec`] for each of the `P` rows of `x`
/// (tokens), with `P = min(out.len() / d, x.len() / n)`; `xq` holds at least `P * n / 32` blocks
/// for Q8_0 weights. Each output row has exactly the bits [`matvec`] gives for its row of `x`.
///
/// Q8_0 weights are read in tiles of rows that every token passes over while they are in cache
/// (64 KB of rows at a time); with `split`, tokens are handed out in whole rows of `out`, or for
/// one token, its rows in pieces (the bits do not depend on the split).
pub fn matmul(
    out: &mut [f32],
    w: &Matrix<'_>,
    bias: Option<F32s<'_>>,
    x: &[f32],
    xq: &mut [BlockQ8_0],
    split: &dyn RowSplit,
) {
    let (n, d, rb) = (w.n_in, w.n_out, w.row_bytes());
    if n == 0 || d == 0 || rb == 0 {
        return;
    }
    let p = (out.len() / d).min(x.len() / n);
    let Some(out) = out.get_mut(..p * d) else { return };
    match w.ty {
        // One token reads each weight once anyway: no tiles, and its rows (not its one token) are
        // what `split` hands out.
        _ if p == 1 => matvec_rows(out, w, x.get(..n).unwrap_or(x), xq, split),
        // Tiles are for the desktop's batched prefill.
        GgmlType::Q8_0 if cfg!(any(test, feature = "std")) => {
            let nb = n / QK8_0;
            let Some(xq) = xq.get_mut(..p * nb) else { return };
            for (q, xt) in xq.chunks_exact_mut(nb.max(1)).zip(x.chunks_exact(n)) {
                quantize_row_q8_0(q, xt);
            }
            let (xq, all) = (&*xq, Q8Rows::from_bytes(w.data, nb));
            let tile_rows = (MATMUL_TILE_BYTES / rb / ROW_GRAIN).max(1) * ROW_GRAIN;
            split_if_large(split, w.data.len(), out, d, &|start, piece| {
                let t0 = start / d;
                let mut r0 = 0;
                while r0 < d {
                    let r1 = (r0 + tile_rows).min(d);
                    let Some(blocks) = all.blocks.get(r0 * nb..(r1 * nb).min(all.blocks.len()))
                    else {
                        return;
                    };
                    let rows = Q8Rows { blocks, stride: nb };
                    for (t, o) in piece.chunks_exact_mut(d).enumerate() {
                        let from = (t0 + t) * nb;
                        let (Some(o), Some(xt)) = (o.get_mut(r0..r1), xq.get(from..from + nb))
                        else {
                            return;
                        };
                        matvec_q8_0_rows(o, rows, xt);
                    }
                    r0 = r1;
                }
            });
        }
        // Row by row: F32 and F16 weights, and Q8_0 ones on the device, which runs one token at a
        // time and so carries no tile code.
        _ => {
            for (o, xt) in out.chunks_exact_mut(d).zip(x.chunks_exact(n)) {
                matvec_rows(o, w, xt, xq, split);
            }
        }
    }
    if let Some(b) = bias {
        for o in out.chunks_exact_mut(d) {
            add_bias(o, b);
        }
    }
}

/// `out(n) = (x(n) - mean) / sqrt(var + eps) * weight(n) + bias(n)`, with `mean` and the biased
/// `var` over `x` (as `torch.nn.LayerNorm`). On cores with the DSP extension, for a multiple of
/// 8 values and word-aligned parameters (as a GGUF file's tensors are), in assembly
/// (`cortex_m::layer_norm8`), with the bits of [`layer_norm_portable`].
pub fn layer_norm(out: &mut [f32], x: &[f32], weight: F32s<'_>, bias: F32s<'_>, eps: f32) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    if let (Ok(w), Ok(b)) = (
        bytemuck::try_cast_slice::<u8, f32>(weight.data),
        bytemuck::try_cast_slice::<u8, f32>(bias.data),
    ) {
        let n = x.len();
        if n % 8 == 0 && n > 0 && out.len() >= n && w.len() >= n && b.len() >= n {
            return cortex_m::layer_norm8(out, x, w, b, eps);
        }
    }
    layer_norm_portable(out, x, weight, bias, eps);
}

/// The reference for [`layer_norm`]: the portable loops on every target.
pub fn layer_norm_portable(out: &mut [f32], x: &[f32], weight: F32s<'_>, bias: F32s<'_>, eps: f32) {
    if x.is_empty() {
        return;
    }
    let n = x.len() as f32;
    let mut sum = 0.0f32;
    for &v in x {
        sum += v;
    }
    let mean = sum / n;
    let mut sq = 0.0f32;
    for &v in x {
        let dv = v - mean;
        sq += dv * dv;
    }
    let var = sq / n;
    let rstd = 1.0 / libm::sqrtf(var + eps);
    for (((o, &v), w), b) in out.iter_mut().zip(x).zip(weight.iter()).zip(bias.iter()) {
        *o = (v - mean) * rstd * w + b;
    }
}

/// In place, `x = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))`: GPT-2's `gelu_new`,
/// with [`tanh`] for the hyperbolic tangent.
pub fn gelu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = gelu1(*v);
    }
}

/// [`gelu`] of one value.
#[inline(always)]
fn gelu1(u: f32) -> f32 {
    0.5 * u * (1.0 + tanh(SQRT_2_OVER_PI * (u + GELU_CUBIC * (u * u * u))))
}

/// GELU's `0.044715`, the weight of `x^3`.
const GELU_CUBIC: f32 = 0.044715;

/// In place, `x(n) = gelu(x(n) + bias(n))`: [`matvec`]'s bias, then [`gelu`], in one pass with the
/// same operations. `x` and `bias` of the same length; on cores with the DSP extension, with a
/// word-aligned bias (as a GGUF file's tensors are), in assembly (`cortex_m::bias_gelu`).
pub fn bias_gelu(x: &mut [f32], bias: F32s<'_>) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    if let Ok(b) = bytemuck::try_cast_slice::<u8, f32>(bias.data) {
        if b.len() == x.len() {
            return cortex_m::bias_gelu(x, b);
        }
    }
    bias_gelu_portable(x, bias);
}

/// The reference for [`bias_gelu`]: the bias, then [`gelu`], value by value.
pub fn bias_gelu_portable(x: &mut [f32], bias: F32s<'_>) {
    add_bias(x, bias);
    gelu(x);
}

/// Where [`tanh`] clamps its argument: its rational function is exactly 1.0 there in f32, so
/// larger arguments give exactly +-1, as `libm::tanhf` does from about 9.01 on.
const TANH_CLAMP: f32 = 7.905_311;

/// [`tanh`]'s numerator `P(x^2)`, highest power first, and denominator `Q(x^2)`.
const TANH_P: [f32; 7] = [
    -2.760_768_5e-16,
    2.000_188e-13,
    -8.604_672e-11,
    5.122_297e-8,
    1.485_722_4e-5,
    6.372_619_3e-4,
    4.893_524_6e-3,
];
const TANH_Q: [f32; 4] = [1.198_258_4e-6, 1.185_347_1e-4, 2.268_434_6e-3, 4.893_525e-3];

/// The constants of `cortex_m::bias_gelu`, in the order it loads them: `P(0)`, `Q(0)`, GELU's
/// cubic weight, `sqrt(2 / pi)`, the clamp, 0.5, 1.0, then the addends of the Horner steps,
/// `P(1..7)` and `Q(1..4)`, reloaded for each value.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
pub(crate) const GELU_CONSTANTS: [f32; 16] = [
    TANH_P[0],
    TANH_Q[0],
    GELU_CUBIC,
    SQRT_2_OVER_PI,
    TANH_CLAMP,
    0.5,
    1.0,
    TANH_P[1],
    TANH_P[2],
    TANH_P[3],
    TANH_P[4],
    TANH_P[5],
    TANH_P[6],
    TANH_Q[1],
    TANH_Q[2],
    TANH_Q[3],
];

/// `tanh(y)` by Eigen's single-precision rational approximation (`generic_fast_tanh_float`,
/// Eigen 3.4): `y * P(y^2) / Q(y^2)` with `P` of degree 6 and `Q` of degree 3, `y` clamped to
/// `+-TANH_CLAMP`. At most 4.2e-7 from `libm::tanhf` (one float in 64 over `[-10, 10]`, test
/// `tanh_is_within_bound_of_libm`; exactly +-1 beyond), for 11 multiplications, 9 additions and
/// one division, where `libm::tanhf` goes through `expm1f`. Plain operations in a fixed order, so
/// the bits are the same on every target.
pub fn tanh(y: f32) -> f32 {
    // Not `f32::clamp`: it costs more instructions per decode step on the Cortex-M4F
    // (docs/performance.md).
    #[allow(clippy::manual_clamp)]
    let x = if y > TANH_CLAMP {
        TANH_CLAMP
    } else if y < -TANH_CLAMP {
        -TANH_CLAMP
    } else {
        y
    };
    let x2 = x * x;
    let mut p = TANH_P[0];
    for c in &TANH_P[1..] {
        p = p * x2 + c;
    }
    let mut q = TANH_Q[0];
    for c in &TANH_Q[1..] {
        q = q * x2 + c;
    }
    x * p / q
}

/// In place, `x(i) = exp(x(i) - max(x)) / sum_j exp(x(j) - max(x))`, with [`exp`]; on cores
/// with the DSP extension, the exponentials and the divisions in assembly
/// (`cortex_m::exp_shifted`, `cortex_m::div8`), with the bits of [`softmax_portable`].
pub fn softmax(x: &mut [f32]) {
    let max = max_of(x);
    softmax_from(x, max);
}

/// In place, `x(i) *= scale`, then [`softmax`]: the products in softmax's first pass, the same
/// operations as a pass of their own before it.
pub fn softmax_scaled(x: &mut [f32], scale: f32) {
    let mut max = f32::NEG_INFINITY;
    for v in x.iter_mut() {
        *v *= scale;
        if *v > max {
            max = *v;
        }
    }
    softmax_from(x, max);
}

/// [`softmax`] after its first pass: `max` is the largest of `x`. One copy for both callers.
#[inline(never)]
fn softmax_from(x: &mut [f32], max: f32) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    let sum = {
        let (mut sum, mut i) = (0.0f32, 0);
        while i < x.len() {
            let (done, s) = cortex_m::exp_shifted(&mut x[i..], max, sum);
            sum = s;
            i += done;
            // The value that stopped the run: below exp's own range, or a NaN, where `exp` is
            // libm's.
            if let Some(v) = x.get_mut(i) {
                *v = libm::expf(*v - max);
                sum += *v;
                i += 1;
            }
        }
        sum
    };
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    let sum = exp_shifted(x, max);
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    let done = cortex_m::div8(x, sum);
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    let done = 0;
    for v in x.iter_mut().skip(done) {
        *v /= sum;
    }
}

/// The reference for [`softmax`]: the portable loops on every target.
pub fn softmax_portable(x: &mut [f32]) {
    let max = max_of(x);
    let sum = exp_shifted(x, max);
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// The largest of `x` (NaNs passed over), `-inf` when there is none.
fn max_of(x: &[f32]) -> f32 {
    let mut max = f32::NEG_INFINITY;
    for &v in x {
        if v > max {
            max = v;
        }
    }
    max
}

/// In place, `x(i) = exp(x(i) - max)`: the sum of the results, added in order.
fn exp_shifted(x: &mut [f32], max: f32) -> f32 {
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = exp(*v - max);
        sum += *v;
    }
    sum
}

/// Where [`exp`] computes itself; outside (and for NaN) it is `libm::expf`'s. Within, `k =
/// round(x / ln 2)` stays in `-126..=127`, so `2^k` is a normal float.
const EXP_RANGE: core::ops::RangeInclusive<f32> = EXP_LOW..=88.0;

/// The low end of [`EXP_RANGE`].
const EXP_LOW: f32 = -87.0;

/// `ln 2 = EXP_C1 + EXP_C2`, `EXP_C1` with 9 significant bits so that `k * EXP_C1` is exact.
const EXP_C1: f32 = 0.693_359_4;
const EXP_C2: f32 = -2.121_944_4e-4;

/// [`exp`]'s polynomial `P`, highest power first. Cephes' last coefficient, 5.0000001201e-1, is
/// 0.5 in f32.
const EXP_P: [f32; 6] =
    [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5];

/// The constants of `cortex_m::exp_shifted`, in the order it loads them: the range's low end,
/// `log2(e)`, `1.5 * 2^23`, `EXP_C1`, `EXP_C2`, `P(0)`, 1.0, then the addends of each value,
/// reloaded for each: `1.5 * 2^23` and `P(1..6)`.
#[cfg(all(target_arch = "arm", target_feature = "dsp"))]
pub(crate) const EXP_CONSTANTS: [f32; 13] = [
    EXP_LOW,
    core::f32::consts::LOG2_E,
    ROUND_MAGIC,
    EXP_C1,
    EXP_C2,
    EXP_P[0],
    1.0,
    ROUND_MAGIC,
    EXP_P[1],
    EXP_P[2],
    EXP_P[3],
    EXP_P[4],
    EXP_P[5],
];

/// `exp(x)` as Cephes' `expf` computes it (the polynomial SSE and NEON math libraries use):
/// `x = k ln 2 + r` with `k = round(x / ln 2)` (halves to even, by adding and subtracting
/// `1.5 * 2^23`) and `ln 2` in two parts so that `r` is nearly exact, then
/// `exp(r) = 1 + r + r^2 P(r)` with `P` of degree 5, times `2^k` built in the exponent bits. At
/// most 1 unit in the last place from `libm::expf` over `[-87, 88]` (test
/// `exp_is_within_one_ulp_of_libm`); outside that range, and for NaN, it is `libm::expf`.
/// softmax's inputs (`x - max <= 0`) are in range but for weights below `e^-87`. Plain operations
/// in a fixed order, so the same bits on every target, and fewer instructions than `libm::expf`
/// on a Cortex-M4F (docs/performance.md).
pub fn exp(x: f32) -> f32 {
    if !EXP_RANGE.contains(&x) {
        return libm::expf(x);
    }
    let t = x * core::f32::consts::LOG2_E + ROUND_MAGIC;
    let kf = t - ROUND_MAGIC;
    // t is in [2^23, 2^24): its low mantissa bits hold k + 2^22.
    let k = t.to_bits() as i32 - 0x4b40_0000;
    let r = (x - kf * EXP_C1) - kf * EXP_C2;
    let mut p = EXP_P[0];
    for c in &EXP_P[1..] {
        p = p * r + c;
    }
    let y = (p * (r * r) + r) + 1.0;
    y * f32::from_bits(((k + 127) as u32) << 23)
}

/// In place, `x(n) += y(n)`; on cores with the DSP extension, eight values at a time in assembly
/// (`cortex_m::add8`), the rest here.
pub fn add(x: &mut [f32], y: &[f32]) {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    let done = cortex_m::add8(x, y);
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    let done = 0;
    for (a, &b) in x.iter_mut().zip(y).skip(done) {
        *a += b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_model::xorshift;
    use crate::quant::{f32_to_f16_bits, quantize_block_q8_0, Q8_0_BLOCK_BYTES};

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn assert_close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= tol, "element {i}: {x} vs {y}");
        }
    }

    #[test]
    fn matvec_f32_known_answer_with_bias() {
        // W = [[1, 2, 3], [-1, 0, 0.5]], x = [1, 1, 2], b = [0.5, -1].
        let w = f32_bytes(&[1.0, 2.0, 3.0, -1.0, 0.0, 0.5]);
        let b = f32_bytes(&[0.5, -1.0]);
        let m = Matrix { ty: GgmlType::F32, n_in: 3, n_out: 2, data: &w };
        let mut out = [0.0f32; 2];
        matvec(&mut out, &m, Some(F32s { data: &b }), &[1.0, 1.0, 2.0], &mut []);
        assert_eq!(out, [9.5, -1.0]);
    }

    #[test]
    fn matvec_f32_long_rows_use_all_lanes_and_tail() {
        // 19 = two full lane groups of 8 plus a tail of 3; x(i) = 1, w(i) = i.
        let w: Vec<f32> = (0..19).map(|i| i as f32).collect();
        let wb = f32_bytes(&w);
        let m = Matrix { ty: GgmlType::F32, n_in: 19, n_out: 1, data: &wb };
        let mut out = [0.0f32; 1];
        matvec(&mut out, &m, None, &[1.0; 19], &mut []);
        assert_eq!(out, [171.0]);
    }

    #[test]
    fn matvec_f16_known_answer() {
        let w: Vec<u8> = [0.5f32, -2.0, 0.25, 4.0]
            .iter()
            .flat_map(|&x| f32_to_f16_bits(x).to_le_bytes())
            .collect();
        let m = Matrix { ty: GgmlType::F16, n_in: 2, n_out: 2, data: &w };
        let mut out = [0.0f32; 2];
        matvec(&mut out, &m, None, &[2.0, 1.0], &mut []);
        assert_eq!(out, [-1.0, 4.5]);
    }

    #[test]
    fn matvec_q8_0_is_exact_integer_dot_times_scales() {
        // Weights: one block, d = 1 (exact in f16), q_w(j) = j - 16. Activation: 127 at j = 0, 1
        // elsewhere, so amax = 127 gives an activation scale of exactly 1 and q_x = x.
        let mut wq = [0i8; QK8_0];
        for (j, q) in wq.iter_mut().enumerate() {
            *q = j as i8 - 16;
        }
        let mut row = vec![0u8; Q8_0_BLOCK_BYTES];
        row[..2].copy_from_slice(&f32_to_f16_bits(1.0).to_le_bytes());
        for (b, &q) in row[2..].iter_mut().zip(&wq) {
            *b = q as u8;
        }
        let mut x = [1.0f32; QK8_0];
        x[0] = 127.0;
        let m = Matrix { ty: GgmlType::Q8_0, n_in: QK8_0, n_out: 1, data: &row };
        let mut xq = [BlockQ8_0::ZERO; 1];
        let mut out = [0.0f32; 1];
        matvec(&mut out, &m, None, &x, &mut xq);
        // sum_j q_w(j) * q_x(j) = -16 * 127 + sum_{j=1..31} (j - 16) = -2032 + 0.
        let expected: i32 = -16 * 127 + (1..32).map(|j| j - 16).sum::<i32>();
        assert_eq!(expected, -2032);
        assert_eq!(out, [expected as f32]);
        assert_eq!(xq[0], quantize_block_q8_0(&x));
    }

    #[test]
    fn matvec_q8_0_is_close_to_float_product() {
        let n = 64;
        let w: Vec<f32> = (0..2 * n).map(|i| libm::sinf(i as f32 * 0.37)).collect();
        let x: Vec<f32> = (0..n).map(|i| libm::cosf(i as f32 * 0.11)).collect();
        let mut bytes = Vec::new();
        for chunk in w.chunks_exact(QK8_0) {
            bytes.extend_from_slice(&quantize_block_q8_0(chunk.try_into().unwrap()).to_bytes());
        }
        let m = Matrix { ty: GgmlType::Q8_0, n_in: n, n_out: 2, data: &bytes };
        let mut xq = [BlockQ8_0::ZERO; 2];
        let mut out = [0.0f32; 2];
        matvec(&mut out, &m, None, &x, &mut xq);
        let exact: Vec<f32> =
            w.chunks_exact(n).map(|r| r.iter().zip(&x).map(|(a, b)| a * b).sum()).collect();
        assert_close(&out, &exact, 0.05);
    }

    #[test]
    fn matvec_ignores_rows_beyond_out_and_short_inputs() {
        let w = f32_bytes(&[1.0, 1.0, 1.0, 1.0]);
        let m = Matrix { ty: GgmlType::F32, n_in: 2, n_out: 2, data: &w };
        let mut out = [0.0f32; 1];
        matvec(&mut out, &m, None, &[3.0], &mut []);
        assert_eq!(out, [3.0]);
    }

    #[test]
    fn layer_norm_known_answer() {
        // x = [1, 2, 3, 4]: mean 2.5, var 1.25.
        let w = f32_bytes(&[1.0, 1.0, 2.0, 1.0]);
        let b = f32_bytes(&[0.0, 0.0, 0.0, 1.0]);
        let mut out = [0.0f32; 4];
        layer_norm(&mut out, &[1.0, 2.0, 3.0, 4.0], F32s { data: &w }, F32s { data: &b }, 0.0);
        let s = 1.0 / 1.25f32.sqrt();
        assert_close(&out, &[-1.5 * s, -0.5 * s, 2.0 * 0.5 * s, 1.5 * s + 1.0], 1e-6);
    }

    #[test]
    fn gelu_known_answers() {
        // torch.nn.functional.gelu(x, approximate="tanh") at -3, -1, 0, 0.5, 1, 3.
        let mut x = [-3.0f32, -1.0, 0.0, 0.5, 1.0, 3.0];
        gelu(&mut x);
        assert_close(&x, &[-0.003_637_392, -0.158_808, 0.0, 0.345_714, 0.841_192, 2.996_363], 1e-6);
    }

    #[test]
    fn tanh_is_within_bound_of_libm() {
        // One f32 in 64 over [-10, 10]: every exponent, mantissas evenly spread.
        let mut worst = 0.0f32;
        let mut bits = 0u32;
        while f32::from_bits(bits) <= 10.0 {
            let y = f32::from_bits(bits);
            for y in [y, -y] {
                let err = (tanh(y) - libm::tanhf(y)).abs();
                assert!(err <= 5e-7, "tanh({y}) = {} vs libm {}", tanh(y), libm::tanhf(y));
                worst = worst.max(err);
            }
            bits += 64;
        }
        // The worst seen is 4.17e-7 (3.5 units in the last place just below 1).
        assert!(worst > 0.0);
        assert_eq!(tanh(TANH_CLAMP), 1.0);
        for y in [TANH_CLAMP, 9.0, 100.0, f32::MAX, f32::INFINITY] {
            assert_eq!(tanh(y), 1.0);
            assert_eq!(tanh(-y), -1.0);
        }
        assert_eq!(tanh(0.0), 0.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn gelu_is_exactly_zero_far_below_zero() {
        let mut x = [-10.0f32, -100.0, -1e6];
        gelu(&mut x);
        assert_eq!(x, [0.0; 3]);
    }

    #[test]
    fn exp_is_within_one_ulp_of_libm() {
        let ulp = |v: f32| f32::from_bits(v.to_bits() + 1) - v;
        // One f32 in 64 over [-87, 88]: every exponent, mantissas evenly spread.
        let mut worst = 0.0f32;
        for sign in [0u32, 0x8000_0000] {
            let mut bits = 0u32;
            loop {
                let x = f32::from_bits(bits | sign);
                if !EXP_RANGE.contains(&x) {
                    break;
                }
                let (got, want) = (exp(x), libm::expf(x));
                let err = (got - want).abs() / ulp(want);
                assert!(err <= 1.0, "exp({x}) = {got} vs libm {want}");
                worst = worst.max(err);
                bits += 64;
            }
        }
        assert_eq!(worst, 1.0);
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-0.0), 1.0);
        for x in [-87.5, -100.0, -104.0, 88.5, 89.0, f32::NEG_INFINITY, f32::INFINITY] {
            assert_eq!(exp(x), libm::expf(x), "{x}");
        }
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_known_answer_and_large_inputs() {
        let mut x = [1.0f32, 2.0, 3.0];
        softmax(&mut x);
        assert_close(&x, &[0.090_030_57, 0.244_728_48, 0.665_240_94], 1e-7);
        let mut big = [1000.0f32, 1000.0];
        softmax(&mut big);
        assert_eq!(big, [0.5, 0.5]);
    }

    #[test]
    fn add_is_elementwise() {
        let mut x = [1.0f32, 2.0];
        add(&mut x, &[0.5, -2.0]);
        assert_eq!(x, [1.5, 0.0]);
    }

    #[test]
    fn matmul_rows_are_matvec_of_each_token_across_several_tiles() {
        use crate::split::Pieces;
        // 1024 inputs (1088-byte Q8_0 rows, 56 rows per 64 KB tile) by 130 outputs: three tiles,
        // the last one partial; 5 tokens; values from a fixed generator, extremes included.
        let (n, d, p) = (1024, 130, 5);
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut w = Vec::new();
        for _ in 0..d * n / QK8_0 {
            w.extend_from_slice(&crate::quant::f32_to_f16_bits(0.01).to_le_bytes());
            w.extend((0..QK8_0).map(|_| match next() % 9 {
                0 => 0x80,
                1 => 0x7f,
                v => (next() as u8).wrapping_add(v as u8),
            }));
        }
        let m = Matrix { ty: GgmlType::Q8_0, n_in: n, n_out: d, data: &w };
        let bias: Vec<u8> = (0..d).flat_map(|i| (i as f32 * 0.5 - 3.0).to_le_bytes()).collect();
        let bias = F32s { data: &bias };
        let x: Vec<f32> = (0..p * n).map(|_| (next() % 2001) as f32 / 1000.0 - 1.0).collect();
        // One token too: matmul at one row is matvec itself.
        for (split, p) in [(&Serial as &dyn RowSplit, p), (&Pieces, p), (&Serial, 1), (&Pieces, 1)]
        {
            let mut out = vec![f32::NAN; p * d];
            let mut xq = vec![BlockQ8_0::ZERO; p * n / QK8_0];
            matmul(&mut out, &m, Some(bias), &x, &mut xq, split);
            for (t, o) in out.chunks_exact(d).enumerate() {
                let mut want = vec![f32::NAN; d];
                let mut xq1 = vec![BlockQ8_0::ZERO; n / QK8_0];
                matvec(&mut want, &m, Some(bias), &x[t * n..(t + 1) * n], &mut xq1);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(o), bits(&want), "token {t}");
            }
        }
    }
}
