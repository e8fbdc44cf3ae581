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
//! conversion does; and attention's weighted sum of cached rows (`ops::weighted_rows_q8_0`, with
//! the DSP core's assembly) must give the bits of `ops::weighted_rows_q8_0_portable`, writing
//! nothing past its output. Any difference is printed and the run exits 1.
#![no_std]
#![no_main]

use mote_core::gguf::GgmlType;
use mote_core::model::Matrix;
use mote_core::ops;
#[cfg(target_feature = "dsp")]
use mote_core::ops::cortex_m;
use mote_core::quant::{self, BlockQ8_0, Q8Rows, Q8_0_BLOCK_BYTES, QK8_0};
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
    }

    let mut w = [0u8; MAX_WEIGHT_BYTES];
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
        let w = &mut w[..d * rb];
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
        }
        let runs = FILLS.len() * (KERNELS.len() + 2);
        defmt::info!(
            "{=usize} x {=usize}: {=usize} runs, {=usize} outputs, {=u32} differ",
            d,
            n,
            runs,
            FILLS.len() * ((KERNELS.len() + 1) * d + n),
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
