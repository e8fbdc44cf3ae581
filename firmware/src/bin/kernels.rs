//! The fast Q8_0 kernels against the portable one, bit for bit, on this core: the DSP kernel
//! (`ops::cortex_m`) on cores with the DSP extension, the Helium kernel (`ops::helium`) where the
//! board has it, and the ARMv6-M kernel (`ops::armv6m`) on Cortex-M0/M0+ code; on RISC-V, the
//! RV32IMC block dot products (`ops::riscv32::dot_i8`, and `block_dots4` on each group of four
//! rows) against `ops::dot_i8_portable`, on every block pair of every shape and fill.
//!
//! For each shape (row counts that leave 0 to 3 rows after the groups of four, 32 to 1056 columns:
//! up to three passes of the DSP kernel over the activation) and each fill (uniform values under
//! three seeds, then -128 and 127 everywhere, then the two against each other), every output of
//! each kernel must have the same f32 bits as `ops::dot_q8_0` on that row, and the entry after the
//! last row must be left alone; `ops::matvec` (which picks the fastest kernel) must match the
//! portable quantize-then-dot; and `VCVTB` must widen all 65,536 f16 values as the portable
//! conversion does, and narrow f32 to f16 as `half` does (ties, NaNs, overflow and subnormals
//! among the values tried); and attention's weighted sum of cached rows (`ops::weighted_rows_q8_0`, with
//! the DSP core's assembly) must give the bits of `ops::weighted_rows_q8_0_portable`, writing
//! nothing past its output; the activation quantizer (`quant::quantize_row_q8_0`) must give the
//! blocks of `quant::quantize_row_q8_0_portable`, on the random rows and on zeros, halves,
//! subnormals, extremes, infinities and NaNs; and GELU with its bias (`ops::bias_gelu`) must give
//! the bits of `ops::bias_gelu_portable`, clamp, infinities and NaN included; softmax
//! (`ops::softmax`, and `ops::softmax_scaled` of attention's scores) must give the bits of
//! `ops::softmax_portable`, weights below `exp`'s own range,
//! infinities and NaNs included; `ops::add` must give `x + y` value by value; layer norm
//! (`ops::layer_norm`) the bits of `ops::layer_norm_portable`; the greedy choice
//! (`sampler::argmax_nan_to_neg_inf`) must pick `sampler::argmax`'s token and leave -inf where
//! NaNs were. The matrices lie word-aligned, as in a GGUF file, and each kernel
//! runs again on a copy two bytes past a word boundary (the DSP kernel's other path). Any
//! difference is printed and the run exits 1.
#![no_std]
#![no_main]

use mote_core::gguf::GgmlType;
use mote_core::model::{F32s, Matrix};
#[cfg(target_feature = "dsp")]
use mote_core::ops::cortex_m;
use mote_core::quant::{self, BlockQ8_0, Q8Rows, Q8_0_BLOCK_BYTES, QK8_0};
use mote_core::{ops, sampler};
use mote_firmware::random::{Gen, Values};
use mote_firmware::{self as fw, ExitCode};

/// (rows, columns) checked: single rows, row counts that leave 1 to 3 rows after the groups of
/// four, the default model's matrix inputs (128, 512) and wider ones (768; 1056 takes three
/// passes of `cortex_m::CHUNK_BLOCKS`).
const SHAPES: [(usize, usize); 9] =
    [(1, 32), (3, 32), (4, 64), (5, 128), (33, 128), (128, 128), (13, 512), (9, 768), (6, 1056)];

/// The fills, each with its generator seed.
const FILLS: [(Values, u64); 6] = [
    (Values::Uniform, 1),
    (Values::Uniform, 2),
    (Values::Uniform, 3),
    (Values::Min, 4),
    (Values::Max, 5),
    (Values::Opposite, 6),
];

/// Largest matrix of [`SHAPES`] in bytes, widest row in blocks, most rows.
const MAX_WEIGHT_BYTES: usize = largest().0;
const MAX_BLOCKS: usize = largest().1;
const MAX_ROWS: usize = largest().2;

/// (bytes, blocks per row, rows), each the largest over [`SHAPES`].
const fn largest() -> (usize, usize, usize) {
    let (mut bytes, mut blocks, mut rows) = (0, 0, 0);
    let mut i = 0;
    while i < SHAPES.len() {
        let (d, n) = SHAPES[i];
        let nb = n / QK8_0;
        if d * nb * Q8_0_BLOCK_BYTES > bytes {
            bytes = d * nb * Q8_0_BLOCK_BYTES;
        }
        if nb > blocks {
            blocks = nb;
        }
        if d > rows {
            rows = d;
        }
        i += 1;
    }
    (bytes, blocks, rows)
}

/// A Q8_0 matrix-vector kernel: `(out, rows, row_bytes, xq)`.
type Kernel = fn(&mut [f32], Q8Rows<'_>, &[BlockQ8_0]);

/// The kernels checked, by name.
const KERNELS: &[(&str, Kernel)] = &[
    #[cfg(target_feature = "dsp")]
    ("DSP", cortex_m::matvec_q8_0),
    #[cfg(all(target_feature = "mclass", not(target_feature = "thumb2")))]
    ("ARMv6-M", mote_core::ops::armv6m::matvec_q8_0),
    #[cfg(feature = "helium")]
    ("Helium", mote_core::ops::helium::matvec_q8_0),
];

/// What the entry after the last row holds before a kernel runs, and must hold after: a NaN no
/// kernel computes.
const SENTINEL: u32 = 0x7FC0_DEAD;

/// Mismatches printed before the rest are only counted.
const MAX_REPORTED: u32 = 8;

#[mote_firmware::entry]
fn main() -> ! {
    fw::init();
    let mut failures = 0u32;
    for (name, _) in KERNELS {
        defmt::info!("kernel {=str} against the portable one", name);
    }
    #[cfg(target_arch = "riscv32")]
    defmt::info!("kernel RV32IMC (block dot products, one row and four) against the portable one");

    #[cfg(target_feature = "dsp")]
    {
        let differ = (0..=u16::MAX)
            .filter(|&b| {
                cortex_m::f16_bits_to_f32(b).to_bits() != quant::f16_bits_to_f32(b).to_bits()
            })
            .count();
        defmt::info!("f16 to f32 with VCVTB: 65536 values, {=usize} differ", differ);
        failures += differ as u32;
        // f32 to f16 by VCVTB: each f16 value's f32, the f32 halfway to the next f16 up (a tie
        // for normal values) and its two neighbours, and 65,536 bit patterns spread over all of
        // f32 (NaNs, infinities, subnormals and overflow among them).
        let mut narrow = 0u32;
        for b in 0..=u16::MAX {
            let at = cortex_m::f16_bits_to_f32(b).to_bits();
            let spread = u32::from(b).wrapping_mul(65_537).wrapping_add(12_345);
            for bits in
                [0, 0x0fff, 0x1000, 0x1001].map(|d| at.wrapping_add(d)).into_iter().chain([spread])
            {
                let x = f32::from_bits(bits);
                if quant::f32_to_f16_bits(x) != quant::f32_to_f16_bits_portable(x) {
                    if narrow < MAX_REPORTED {
                        defmt::error!("f32 {=u32:#x} to f16 differs from the portable", bits);
                    }
                    narrow += 1;
                }
            }
        }
        failures += narrow;
    }

    // The activation quantizer on blocks the random fills do not make: zeros, exact halves,
    // subnormals, extremes, infinities and NaNs.
    let mut special = [0.0f32; 8 * QK8_0];
    for (i, v) in special.iter_mut().enumerate() {
        let (block, j) = (i / QK8_0, i % QK8_0);
        let s = if j % 3 == 0 { -1.0 } else { 1.0 };
        *v = s * match block {
            0 => 0.0,
            1 => j as f32 * 0.5 + if j == 31 { 111.0 } else { 0.0 },
            2 => f32::from_bits(1 + j as u32 * 4093),
            3 => f32::from_bits(0x0080_0000 + j as u32 * 77_777),
            4 => f32::MAX / (j + 1) as f32,
            5 if j == 7 => f32::INFINITY,
            6 if j == 9 => f32::NAN,
            _ => j as f32 * 1e-3,
        };
    }
    let mut blocks = [BlockQ8_0::ZERO; 8];
    quant::quantize_row_q8_0(&mut blocks, &special);
    failures += compare_quantized(&special, &blocks);

    // GELU with its bias, at several scales (the largest reach the clamp of tanh), then
    // infinities, NaN and values around where the clamp begins.
    let mut h = [0.0f32; 256];
    let mut bias = [0.0f32; 256];
    let mut gen = Gen::new(7);
    for scale in [1.0f32, 4.0, 16.0, 1e3] {
        gen.floats(&mut h);
        gen.floats(&mut bias);
        for v in h.iter_mut() {
            *v *= scale;
        }
        failures += compare_bias_gelu(&h, &bias);
    }
    for (i, v) in h.iter_mut().enumerate() {
        // sqrt(2/pi) * (u + 0.044715 u^3) passes the clamp 7.905311 near u = 4.48.
        *v = 4.4 + i as f32 * 1e-3;
    }
    h[..6].copy_from_slice(&[f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -4.48, 0.0, -0.0]);
    bias.fill(0.0);
    failures += compare_bias_gelu(&h, &bias);

    // softmax (attention's weights) at several spreads, the widest reaching below exp's own
    // range (`e^-87`), then with infinities and NaNs, at lengths around a group of four.
    for (len, scale) in [(1, 1.0f32), (7, 4.0), (37, 16.0), (65, 100.0), (256, 1e3)] {
        let x = &mut h[..len];
        gen.floats(x);
        for v in x.iter_mut() {
            *v *= scale;
        }
        failures += compare_softmax(x);
    }
    h[..8].copy_from_slice(&[1.0, f32::NAN, -90.0, 0.5, f32::NEG_INFINITY, -86.9, 2.0, -87.0]);
    failures += compare_softmax(&h[..8]);
    h[..3].copy_from_slice(&[f32::INFINITY, 1.0, f32::INFINITY]);
    failures += compare_softmax(&h[..3]);
    h[..3].copy_from_slice(&[f32::NAN, f32::NEG_INFINITY, f32::NAN]);
    failures += compare_softmax(&h[..3]);

    // Layer norm over 8 to 256 values at several scales, then with an infinity and a NaN.
    for (len, scale) in [(8, 1.0f32), (128, 1e-3), (128, 30.0), (256, 1.0)] {
        gen.floats(&mut h[..len]);
        gen.floats(&mut bias);
        for v in h[..len].iter_mut() {
            *v *= scale;
        }
        failures += compare_layer_norm(&h[..len], &bias);
    }
    h[3] = f32::INFINITY;
    failures += compare_layer_norm(&h[..16], &bias);
    h[3] = f32::NAN;
    failures += compare_layer_norm(&h[..16], &bias);

    // The residual adds and the biases (`ops::add`), with infinities and NaNs, at lengths that
    // leave 0 to 7 values after the groups of eight.
    for len in [1, 8, 13, 128, 255] {
        let (x, y) = (&mut h[..len], &mut bias[..len]);
        gen.floats(x);
        gen.floats(y);
        for (i, (a, b)) in x.iter_mut().zip(y.iter_mut()).enumerate() {
            match i % 13 {
                2 => *a = f32::NAN,
                4 => *b = f32::INFINITY,
                6 => (*a, *b) = (f32::INFINITY, f32::NEG_INFINITY),
                9 => (*a, *b) = (f32::MAX, f32::MAX),
                _ => {}
            }
        }
        let mut want = [0.0f32; 256];
        for (w, (a, b)) in want.iter_mut().zip(x.iter().zip(y.iter())) {
            *w = a + b;
        }
        ops::add(x, y);
        let same = x.iter().zip(&want).filter(|(a, b)| a.to_bits() == b.to_bits()).count();
        if same != len {
            defmt::error!("add over {=usize}: {=usize} values differ", len, len - same);
            failures += 1;
        }
    }

    // The greedy choice, NaNs replaced by -inf on the way, over logits with ties, NaNs and
    // infinities, at lengths that leave 0 to 7 values after the groups of eight.
    for len in [1, 8, 13, 64, 255, 256] {
        let logits = &mut h[..len];
        gen.floats(logits);
        for (i, v) in logits.iter_mut().enumerate() {
            match i % 11 {
                3 => *v = f32::NAN,
                5 => *v = 3.9,
                7 if len > 100 => *v = f32::NEG_INFINITY,
                _ => {}
            }
        }
        if len == 255 {
            logits[200] = f32::INFINITY;
        }
        let want = sampler::argmax(logits);
        // By the bits: a NaN's magnitude bits lie above infinity's.
        let mut replaced = [0u32; 256];
        for (r, &v) in replaced.iter_mut().zip(logits.iter()) {
            let nan = v.to_bits() & 0x7fff_ffff > 0x7f80_0000;
            *r = if nan { f32::NEG_INFINITY.to_bits() } else { v.to_bits() };
        }
        let got = sampler::argmax_nan_to_neg_inf(logits);
        let same = logits.iter().zip(&replaced).all(|(a, &b)| a.to_bits() == b);
        if got != want || !same {
            defmt::error!("greedy choice over {=usize}: {=u32} against {=u32}", len, got, want);
            failures += 1;
        }
    }

    // Word-aligned, as a GGUF file's tensors are; a copy of the matrix two bytes past a word
    // boundary follows it, where the DSP kernel cannot load its rows two words at a time.
    let mut aligned = fw::blob::Aligned { bytes: [0u8; 2 * MAX_WEIGHT_BYTES + 8] };
    let mut xq = [BlockQ8_0::ZERO; MAX_BLOCKS];
    let mut x = [0.0f32; MAX_BLOCKS * QK8_0];
    let mut portable = [0.0f32; MAX_ROWS + 1];
    let mut fast = [0.0f32; MAX_ROWS + 1];
    let mut att = [0.0f32; MAX_ROWS + 1];
    let mut want = [0.0f32; MAX_BLOCKS * QK8_0 + 1];
    let mut got = [0.0f32; MAX_BLOCKS * QK8_0 + 1];
    for (d, n) in SHAPES {
        let nb = n / QK8_0;
        let rb = nb * Q8_0_BLOCK_BYTES;
        let (w, moved) = aligned.bytes.split_at_mut(d * rb);
        let xq = &mut xq[..nb];
        let mut shape_failures = 0u32;
        for (values, seed) in FILLS {
            let mut gen = Gen::new(seed);
            gen.weights(w, values);
            gen.activation(xq, values);
            for (o, row) in portable.iter_mut().zip(Q8Rows::from_bytes(w, nb).rows()) {
                *o = ops::dot_q8_0(row, xq);
            }
            #[cfg(target_arch = "riscv32")]
            {
                shape_failures += rv32_differences(d, n, values, seed, w, xq);
            }
            for &(name, kernel) in KERNELS {
                // One entry more than there are rows: the kernel must leave it alone.
                fast[d] = f32::from_bits(SENTINEL);
                kernel(&mut fast[..=d], Q8Rows::from_bytes(w, nb), xq);
                shape_failures += compare(name, d, n, values, seed, &portable[..d], &fast[..d]);
                if fast[d].to_bits() != SENTINEL {
                    defmt::error!(
                        "{=str} {=usize} x {=usize}: wrote past the last row",
                        name,
                        d,
                        n
                    );
                    shape_failures += 1;
                }
            }

            // The dispatching matvec quantizes a float activation first.
            let x = &mut x[..n];
            gen.floats(x);
            quant::quantize_row_q8_0(xq, x);
            shape_failures += compare_quantized(x, xq);
            for (o, row) in portable.iter_mut().zip(Q8Rows::from_bytes(w, nb).rows()) {
                *o = ops::dot_q8_0(row, xq);
            }
            let m = Matrix { ty: GgmlType::Q8_0, n_in: n, n_out: d, data: w };
            ops::matvec(&mut fast[..d], &m, None, x, xq);
            shape_failures += compare("matvec", d, n, values, seed, &portable[..d], &fast[..d]);

            // Attention's weighted sum of the d rows as cached values, onto random sums, with
            // one weight more than there are rows (the kernels stop at the last row).
            let att = &mut att[..=d];
            gen.floats(att);
            gen.floats(&mut want[..n]);
            got[..n].copy_from_slice(&want[..n]);
            got[n] = f32::from_bits(SENTINEL);
            ops::weighted_rows_q8_0_portable(&mut want[..n], att, Q8Rows::from_bytes(w, nb));
            ops::weighted_rows_q8_0(&mut got[..=n], att, Q8Rows::from_bytes(w, nb));
            shape_failures += compare("weighted rows", d, n, values, seed, &want[..n], &got[..n]);
            if got[n].to_bits() != SENTINEL {
                defmt::error!("weighted rows {=usize} x {=usize}: wrote past the end", d, n);
                shape_failures += 1;
            }

            // The same matrix from two bytes past the first word boundary after it.
            let skip = (4 - w.len() % 4) % 4 + 2;
            let shifted = &mut moved[skip..skip + d * rb];
            shifted.copy_from_slice(w);
            for &(name, kernel) in KERNELS {
                fast[..d].fill(f32::NAN);
                kernel(&mut fast[..d], Q8Rows::from_bytes(shifted, nb), xq);
                shape_failures += compare(name, d, n, values, seed, &portable[..d], &fast[..d]);
            }
        }
        let runs = FILLS.len() * (2 * KERNELS.len() + 2);
        defmt::info!(
            "{=usize} x {=usize}: {=usize} runs, {=usize} outputs, {=u32} differ",
            d,
            n,
            runs,
            FILLS.len() * ((2 * KERNELS.len() + 1) * d + n),
            shape_failures
        );
        failures += shape_failures;
    }

    if failures == 0 {
        defmt::info!("every kernel identical to the portable one");
        fw::exit(ExitCode::Success)
    } else {
        defmt::error!("{=u32} differences", failures);
        fw::exit(ExitCode::Failure)
    }
}

/// Counts the blocks of `w`'s rows whose RV32IMC dot product with `xq`'s differs from the
/// portable one, printing the first few.
#[cfg(target_arch = "riscv32")]
fn rv32_differences(
    d: usize,
    n: usize,
    values: Values,
    seed: u64,
    w: &[u8],
    xq: &[BlockQ8_0],
) -> u32 {
    let mut count = 0;
    let rows = Q8Rows::from_bytes(w, n / QK8_0);
    let mut groups = rows.rows();
    let mut row = 0;
    while let (Some(r0), Some(r1), Some(r2), Some(r3)) =
        (groups.next(), groups.next(), groups.next(), groups.next())
    {
        let group = [r0, r1, r2, r3];
        for (block, xb) in xq.iter().enumerate() {
            let w4 = group.map(|r| &r[block].qs);
            let got = ops::riscv32::block_dots4(w4, &xb.qs);
            for (k, (wq, got)) in w4.iter().zip(got).enumerate() {
                let want = ops::dot_i8_portable(wq, &xb.qs);
                if want != got {
                    if count < MAX_REPORTED {
                        defmt::error!(
                            "RV32IMC x4 {=usize} x {=usize}, {} seed {=u64}, row {=usize} block {=usize}: portable {=i32}, fast {=i32}",
                            d, n, values, seed, row + k, block, want, got
                        );
                    }
                    count += 1;
                }
            }
        }
        row += 4;
    }
    for (row, blocks) in rows.rows().enumerate() {
        for (block, (wb, xb)) in blocks.iter().zip(xq).enumerate() {
            let (want, got) =
                (ops::dot_i8_portable(&wb.qs, &xb.qs), ops::riscv32::dot_i8(&wb.qs, &xb.qs));
            if want != got {
                if count < MAX_REPORTED {
                    defmt::error!(
                        "RV32IMC {=usize} x {=usize}, {} seed {=u64}, row {=usize} block {=usize}: portable {=i32}, fast {=i32}",
                        d, n, values, seed, row, block, want, got
                    );
                }
                count += 1;
            }
        }
    }
    count
}

/// Counts the outputs of `kernel` whose bits differ, printing the first few.
/// Values where `ops::bias_gelu` (the DSP core's assembly where it has one) and
/// `ops::bias_gelu_portable` differ on `h` with `bias`, each printed.
fn compare_bias_gelu(h: &[f32], bias: &[f32]) -> u32 {
    let mut bytes = [0u8; 4 * 256];
    for (b, v) in bytes.chunks_exact_mut(4).zip(bias) {
        b.copy_from_slice(&v.to_le_bytes());
    }
    let aligned = fw::blob::Aligned { bytes };
    let bias = F32s { data: &aligned.bytes[..4 * bias.len()] };
    let (mut want, mut got) = ([0.0f32; 256], [0.0f32; 256]);
    let (want, got) = (&mut want[..h.len()], &mut got[..h.len()]);
    want.copy_from_slice(h);
    got.copy_from_slice(h);
    ops::bias_gelu_portable(want, bias);
    ops::bias_gelu(got, bias);
    let mut failures = 0;
    for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
        if w.to_bits() != g.to_bits() {
            defmt::error!(
                "bias_gelu({=f32}): {=f32} differs from the portable {=f32}",
                h[i],
                *g,
                *w
            );
            failures += 1;
        }
    }
    failures
}

/// Values where `ops::layer_norm` (the DSP core's assembly where it has one) and
/// `ops::layer_norm_portable` differ on `x`, with weights `1 + p(i)` and biases `p(i + 1)` from
/// `p`, each printed.
fn compare_layer_norm(x: &[f32], p: &[f32; 256]) -> u32 {
    let mut bytes = [0u8; 2 * 4 * 256];
    for (i, b) in bytes.chunks_exact_mut(4).enumerate() {
        let v = if i < 256 { 1.0 + p[i] } else { p[(i + 1) % 256] };
        b.copy_from_slice(&v.to_le_bytes());
    }
    let aligned = fw::blob::Aligned { bytes };
    let (w, b) = aligned.bytes.split_at(4 * 256);
    let (w, b) = (F32s { data: &w[..4 * x.len()] }, F32s { data: &b[..4 * x.len()] });
    let (mut want, mut got) = ([0.0f32; 256], [0.0f32; 256]);
    let (want, got) = (&mut want[..x.len()], &mut got[..x.len()]);
    ops::layer_norm_portable(want, x, w, b, 1e-5);
    ops::layer_norm(got, x, w, b, 1e-5);
    let mut failures = 0;
    for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
        if w.to_bits() != g.to_bits() {
            defmt::error!(
                "layer_norm over {=usize}, value {=usize}: {=f32} differs from the portable {=f32}",
                x.len(),
                i,
                *g,
                *w
            );
            failures += 1;
        }
    }
    failures
}

/// Values where `ops::softmax` (the DSP core's assembly where it has one) and
/// `ops::softmax_portable` differ on `x`, then `ops::softmax_scaled` and the portable softmax of
/// the scaled values, each printed.
fn compare_softmax(x: &[f32]) -> u32 {
    let (mut want, mut got) = ([0.0f32; 256], [0.0f32; 256]);
    let (want, got) = (&mut want[..x.len()], &mut got[..x.len()]);
    want.copy_from_slice(x);
    got.copy_from_slice(x);
    ops::softmax_portable(want);
    ops::softmax(got);
    let failures = count_differing("softmax", x, want, got);
    // Scaled in its first pass, as attention's scores are.
    for (w, &v) in want.iter_mut().zip(x) {
        *w = v * 0.176_776_7;
    }
    ops::softmax_portable(want);
    got.copy_from_slice(x);
    ops::softmax_scaled(got, 0.176_776_7);
    failures + count_differing("softmax_scaled", x, want, got)
}

/// Values where `got` differs from `want`, softmax's of `x` by `kernel`, each printed.
fn count_differing(kernel: &str, x: &[f32], want: &[f32], got: &[f32]) -> u32 {
    let mut failures = 0;
    for (i, (w, g)) in want.iter().zip(got.iter()).enumerate() {
        if w.to_bits() != g.to_bits() {
            defmt::error!(
                "{=str} over {=usize}, value {=usize} ({=f32}): {=f32} differs from the portable {=f32}",
                kernel,
                x.len(),
                i,
                x[i],
                *g,
                *w
            );
            failures += 1;
        }
    }
    failures
}

/// Mismatched blocks between `quant::quantize_row_q8_0` (`got`, the DSP core's assembly where
/// it has one) and `quant::quantize_row_q8_0_portable` on `x`, each printed.
fn compare_quantized(x: &[f32], got: &[BlockQ8_0]) -> u32 {
    let mut failures = 0;
    for (b, (chunk, got)) in x.chunks_exact(QK8_0).zip(got).enumerate() {
        let mut want = [BlockQ8_0::ZERO];
        quant::quantize_row_q8_0_portable(&mut want, chunk);
        if want[0] != *got {
            defmt::error!("quantize: block {=usize} differs from the portable one", b);
            failures += 1;
        }
    }
    failures
}

fn compare(
    kernel: &str,
    d: usize,
    n: usize,
    values: Values,
    seed: u64,
    want: &[f32],
    got: &[f32],
) -> u32 {
    let mut count = 0;
    for (row, (a, b)) in want.iter().zip(got).enumerate() {
        if a.to_bits() != b.to_bits() {
            if count < MAX_REPORTED {
                defmt::error!(
                    "{=str} {=usize} x {=usize}, {} seed {=u64}, row {=usize}: portable {=f32} ({=u32:#010x}), fast {=f32} ({=u32:#010x})",
                    kernel, d, n, values, seed, row, *a, a.to_bits(), *b, b.to_bits()
                );
            }
            count += 1;
        }
    }
    count
}
