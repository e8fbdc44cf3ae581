//! The Q8_0 matrix-vector product on Cortex-M cores with Helium, the M-profile Vector Extension
//! (Cortex-M55, M85): `VMLADAVA.S8` multiplies sixteen `i8` pairs and adds all sixteen products to
//! an `i32`, so a block of 32 weights costs two loads and two instructions.
//!
//! Bit-identical to [`dot_q8_0`](super::dot_q8_0) row by row, for the same reasons as the DSP
//! kernel ([`super::cortex_m`]): each block's `i32` dot product is exact, and the f32 work is done
//! with scalar FPU instructions in the portable order (`VCVTB` widens the f16 scales exactly,
//! `VMLA.F32` rounds the product before the addition), never with Helium's vector floating point.
//!
//! The activation blocks are read in place (byte loads need no alignment); four rows at a time walk
//! their blocks together, so two vector loads of the activation serve eight `VMLADAV`s, and one
//! loop of assembly goes through every group of four rows. Rows left over go one at a time.
//!
//! Registers: as in [`super::cortex_m`], FPU and vector registers are used by name and saved on the
//! stack around the assembly (Rust's `sreg` and `qreg` operand classes need `vfp2` and `neon`);
//! the accumulators are named too, because `VMLADAV` takes only even-numbered registers.
//!
//! Built with `-C target-cpu=cortex-m55` (which implies MVE) and the `helium` feature.
//!
//! Letters: `n` input length, `d` output length, `nb = n / 32` blocks per row.
#![allow(unsafe_code)]

use core::arch::asm;

use crate::quant::{BlockQ8_0, Q8Rows, Q8_0_BLOCK_BYTES};

/// Rows that share one pass over the activation.
const ROWS: usize = 4;

/// `out(d) = W(d, n) . x(n)` for the whole Q8_0 rows of `w` against the Q8_0 activation `xq`:
/// the same result, bit for bit, as `*o = dot_q8_0(row, xq)` for each row.
///
/// As there, rows beyond `out` are not read (nor are entries of `out` beyond the rows written),
/// and a row and `xq` are read up to the shorter of the two.
pub fn matvec_q8_0(out: &mut [f32], w: Q8Rows<'_>, xq: &[BlockQ8_0]) {
    // The assembly walks the rows as bytes: row r at w[r * row_bytes..].
    let (w, row_bytes) = (w.bytes(), w.row_bytes());
    if row_bytes == 0 {
        return;
    }
    let d = out.len().min(w.len() / row_bytes);
    let out = &mut out[..d];
    let nb = xq.len().min(row_bytes / Q8_0_BLOCK_BYTES);
    if d == 0 || nb == 0 {
        out.fill(0.0);
        return;
    }
    let xq = &xq[..nb];
    let full = d - d % ROWS;
    let (sums, rest) = out.split_at_mut(full);
    rows4(sums, w, row_bytes, xq);
    for (sum, row) in rest.iter_mut().zip(w.chunks_exact(row_bytes).skip(full)) {
        *sum = row1(row, xq);
    }
}

/// `sum(d) = W(d, nb) . x(nb)` for `d` a multiple of four, row `r` at `w[r * row_bytes..]`: four
/// rows at a time, block by block in the portable order.
fn rows4(sum: &mut [f32], w: &[u8], row_bytes: usize, xq: &[BlockQ8_0]) {
    let nb = xq.len();
    let groups = sum.len() / ROWS;
    if nb == 0 || groups == 0 {
        return;
    }
    let block_bytes = nb * Q8_0_BLOCK_BYTES;
    assert!(block_bytes <= row_bytes && w.len() >= (ROWS * groups - 1) * row_bytes + block_bytes);
    let x_start = xq.as_ptr().cast::<u8>();
    let x_end = xq[nb..].as_ptr().cast::<u8>();
    let sum_end = sum[ROWS * groups..].as_mut_ptr();
    // From where a group's rows end to where the next group's begin.
    let next_group = ROWS * row_bytes - block_bytes;
    // SAFETY: reads row r from `w + r * row_bytes` for nb * 34 bytes, r < 4 * groups, inside `w` by
    // the assertion above (LDRH may be unaligned; VLDRB needs no alignment), and the nb * 34 bytes
    // of `xq` once per group; writes `sum` from its start up to `sum_end`, one past its end. Both
    // loops run at least once (nb >= 1, groups >= 1). Every core register it writes is an output;
    // the FPU and vector registers (s0..s31, which are q0..q7) are pushed first and popped last.
    unsafe {
        asm!(
            // s27: the activation's start; s28: next_group; s29: sum_end; s30: where the group's
            // sums go; s31: x_end. Rows 1..3 start rs, 2 rs and 3 rs after row 0.
            "vpush {{s0-s31}}",
            "vmov s27, {px}",
            "vmov s28, r2",
            "vmov s29, r0",
            "vmov s30, {w}",
            "vmov s31, {t}",
            "add {p1}, {p0}, r4",
            "add {p2}, {p1}, r4",
            "add {p3}, {p2}, r4",
            "3:",
            // s16..s19: the four rows' sums, from +0.0 as in the portable kernel.
            "mov {t}, #0",
            "vmov s16, s17, {t}, {t}",
            "vmov s18, s19, {t}, {t}",
            "2:",
            // The activation block: d_x in s24, q_x in q0 (values 0..16) and q1 (16..32).
            "ldrh {t}, [{px}], #2",
            "vldrb.u8 q0, [{px}], #16",
            "vldrb.u8 q1, [{px}], #16",
            "vmov s24, {t}",
            "vcvtb.f32.f16 s24, s24",
            // s20..s23: the rows' scales times the activation's, k(r) = d_w(r) * d_x.
            "ldrh {t}, [{p0}], #2",
            "ldrh {w}, [{p1}], #2",
            "vmov s20, s21, {t}, {w}",
            "ldrh {t}, [{p2}], #2",
            "ldrh {w}, [{p3}], #2",
            "vmov s22, s23, {t}, {w}",
            "vcvtb.f32.f16 s20, s20",
            "vcvtb.f32.f16 s21, s21",
            "vcvtb.f32.f16 s22, s22",
            "vcvtb.f32.f16 s23, s23",
            "vmul.f32 s20, s20, s24",
            "vmul.f32 s21, s21, s24",
            "vmul.f32 s22, s22, s24",
            "vmul.f32 s23, s23, s24",
            // a(r) = sum_j q_w(r, j) * q_x(j), exact in i32: r0, r2, r4, r8.
            "vldrb.u8 q2, [{p0}], #16",
            "vldrb.u8 q3, [{p0}], #16",
            "vmladav.s8 r0, q2, q0",
            "vmladava.s8 r0, q3, q1",
            "vldrb.u8 q2, [{p1}], #16",
            "vldrb.u8 q3, [{p1}], #16",
            "vmladav.s8 r2, q2, q0",
            "vmladava.s8 r2, q3, q1",
            "vldrb.u8 q2, [{p2}], #16",
            "vldrb.u8 q3, [{p2}], #16",
            "vmladav.s8 r4, q2, q0",
            "vmladava.s8 r4, q3, q1",
            "vldrb.u8 q2, [{p3}], #16",
            "vldrb.u8 q3, [{p3}], #16",
            "vmladav.s8 r8, q2, q0",
            "vmladava.s8 r8, q3, q1",
            // s(r) += f32(a(r)) * k(r): VMLA rounds the product, then adds.
            "vmov s25, s26, r0, r2",
            "vcvt.f32.s32 s25, s25",
            "vcvt.f32.s32 s26, s26",
            "vmla.f32 s16, s25, s20",
            "vmla.f32 s17, s26, s21",
            "vmov s25, s26, r4, r8",
            "vcvt.f32.s32 s25, s25",
            "vcvt.f32.s32 s26, s26",
            "vmla.f32 s18, s25, s22",
            "vmla.f32 s19, s26, s23",
            "vmov {t}, s31",
            "cmp {px}, {t}",
            "bne 2b",
            // The group's sums to memory; on to the next group.
            "vmov {w}, s30",
            "vstmia {w}!, {{s16-s19}}",
            "vmov s30, {w}",
            "vmov {t}, s28",
            "add {p0}, {p0}, {t}",
            "add {p1}, {p1}, {t}",
            "add {p2}, {p2}, {t}",
            "add {p3}, {p3}, {t}",
            "vmov {px}, s27",
            "vmov {t}, s29",
            "cmp {w}, {t}",
            "bne 3b",
            "vpop {{s0-s31}}",
            p0 = inout(reg) w.as_ptr() => _,
            px = inout(reg) x_start => _,
            t = inout(reg) x_end => _,
            w = inout(reg) sum.as_mut_ptr() => _,
            p1 = out(reg) _,
            p2 = out(reg) _,
            p3 = out(reg) _,
            inout("r0") sum_end => _,
            inout("r2") next_group => _,
            inout("r4") row_bytes => _,
            out("r8") _,
        );
    }
}

/// `W(1, nb) . x(nb)` for one row, block by block in the portable order.
fn row1(w: &[u8], xq: &[BlockQ8_0]) -> f32 {
    let nb = xq.len();
    if nb == 0 {
        return 0.0;
    }
    assert!(w.len() >= nb * Q8_0_BLOCK_BYTES);
    let mut sum = 0u32;
    // SAFETY: reads nb * 34 bytes of `w` (inside it by the assertion) and of `xq`; nb >= 1. Every
    // core register it writes is an output; the FPU and vector registers it uses (s0..s15, which
    // are q0..q3, and s16..s26) are pushed first and popped last.
    unsafe {
        asm!(
            "vpush {{s0-s26}}",
            "vmov s16, {sum}",
            "2:",
            "ldrh {t}, [{px}], #2",
            "vldrb.u8 q0, [{px}], #16",
            "vldrb.u8 q1, [{px}], #16",
            "vmov s24, {t}",
            "vcvtb.f32.f16 s24, s24",
            "ldrh {t}, [{p}], #2",
            "vmov s20, {t}",
            "vcvtb.f32.f16 s20, s20",
            "vmul.f32 s20, s20, s24",
            "vldrb.u8 q2, [{p}], #16",
            "vldrb.u8 q3, [{p}], #16",
            "vmladav.s8 r0, q2, q0",
            "vmladava.s8 r0, q3, q1",
            "vmov s25, r0",
            "vcvt.f32.s32 s25, s25",
            "vmla.f32 s16, s25, s20",
            "cmp {px}, {end}",
            "bne 2b",
            "vmov {sum}, s16",
            "vpop {{s0-s26}}",
            p = inout(reg) w.as_ptr() => _,
            px = inout(reg) xq.as_ptr().cast::<u8>() => _,
            end = in(reg) xq[nb..].as_ptr().cast::<u8>(),
            sum = inout(reg) sum,
            t = out(reg) _,
            out("r0") _,
        );
    }
    f32::from_bits(sum)
}
