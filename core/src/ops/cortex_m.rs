//! The Q8_0 matrix-vector product on Cortex-M cores with the DSP extension (Cortex-M4F, M7, M33,
//! M55): `SXTB16` widens two `i8` to two `i16` lanes, `SMLAD` multiplies two lane pairs and adds both
//! products to an `i32`, so four weights cost five instructions.
//!
//! Bit-identical to [`dot_q8_0`](super::dot_q8_0) row by row: each block's `i32` dot product is
//! exact whatever the order of its terms, and the f32 combination is the portable one, in the same
//! order: `sum += isum as f32 * (d_w * d_x)`, block by block from `sum = 0.0`. `VCVTB` widens the
//! f16 scale exactly and `VMLA.F32` rounds the product before the addition (it is not fused), so
//! each f32 operation is the one the portable kernel performs.
//!
//! How the work is shared: the activation blocks are widened once per matrix into `i16` lane pairs
//! in the order `SXTB16` leaves the weights in (`x(4k), x(4k+2)` then `x(4k+1), x(4k+3)`), preceded
//! by each block's f32 scale; then four rows at a time walk their blocks together, so one `LDRD` of
//! activation pairs feeds sixteen multiply-accumulates, and one loop of assembly goes through every
//! group of four rows. Rows left over (fewer than four) go one at
//! a time. The widened activation lives on the stack, [`CHUNK_BLOCKS`] blocks at a time; the row
//! sums wait in `out` between chunks, which keeps the order of the f32 additions.
//!
//! Registers: the FPU registers are used by name and saved on the stack around each block of
//! assembly, because Rust's `sreg` operand class requires the `vfp2` feature, which includes double
//! precision, and these cores' FPUs are single precision only.
//!
//! Letters: `n` input length, `d` output length, `nb = n / 32` blocks per row.
#![allow(unsafe_code)]

use core::arch::asm;
use core::mem::MaybeUninit;

use crate::quant::{BlockQ8_0, Q8Rows, Q8_0_BLOCK_BYTES, QK8_0};

/// Activation blocks widened per pass: 16 blocks (512 columns, the widest matrix input of the
/// default model) take 1,088 bytes of stack; wider rows take more passes.
pub const CHUNK_BLOCKS: usize = 16;

/// Words of one widened activation block: its scale (f32 bits), then 16 words of `i16` lane pairs.
const WIDE_WORDS: usize = 1 + QK8_0 / 2;

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
    if d == 0 {
        return;
    }
    let out = &mut out[..d];
    out.fill(0.0);
    let nb = xq.len().min(row_bytes / Q8_0_BLOCK_BYTES);
    // Not zeroed first: that would cost as much as widening it at 128 columns.
    let mut wide = [const { MaybeUninit::<u32>::uninit() }; CHUNK_BLOCKS * WIDE_WORDS];
    let mut b0 = 0;
    while b0 < nb {
        let chunk = &xq[b0..nb.min(b0 + CHUNK_BLOCKS)];
        let wide = widen(&mut wide[..chunk.len() * WIDE_WORDS], chunk);
        // Rows r.. start at w[r * row_bytes..]; this pass begins at block b0 of each.
        let skip = b0 * Q8_0_BLOCK_BYTES;
        let full = d - d % ROWS;
        let (sums, rest) = out.split_at_mut(full);
        rows4(sums, &w[skip..], row_bytes, wide);
        for (sum, row) in rest.iter_mut().zip(w.chunks_exact(row_bytes).skip(full)) {
            row1(sum, &row[skip..], wide);
        }
        b0 += chunk.len();
    }
}

/// `wide(nb, 17) = [f32 bits of d_x(b); lane pairs of q_x(b)]`: each block's scale, then for each
/// group of four values `x0..x3` the words `[x0, x2]` and `[x1, x3]` (low lane first), as
/// `SXTB16` and `SXTB16 ROR #8` lay out four weights.
fn widen<'w>(wide: &'w mut [MaybeUninit<u32>], xq: &[BlockQ8_0]) -> &'w [u32] {
    assert_eq!(wide.len(), xq.len() * WIDE_WORDS);
    for (dst, block) in wide.chunks_exact_mut(WIDE_WORDS).zip(xq) {
        dst[0].write(block.scale().to_bits());
        for (pair, q) in dst[1..].chunks_exact_mut(2).zip(block.qs.chunks_exact(4)) {
            pair[0].write(lanes(q[0], q[2]));
            pair[1].write(lanes(q[1], q[3]));
        }
    }
    // SAFETY: the loop wrote every word: 17 per block (the scale, then 8 pairs) for each of the
    // xq.len() blocks, which is the length of `wide`.
    unsafe { core::slice::from_raw_parts(wide.as_ptr().cast::<u32>(), wide.len()) }
}

/// Two `i8` as the two signed 16-bit lanes of a word, `lo` in bits 0..16.
fn lanes(lo: i8, hi: i8) -> u32 {
    u32::from(i16::from(lo) as u16) | (u32::from(i16::from(hi) as u16) << 16)
}

/// f16 bits to f32 with the FPU's `VCVTB.F32.F16`: exact, as [`crate::quant::f16_bits_to_f32`].
pub fn f16_bits_to_f32(bits: u16) -> f32 {
    let mut x = u32::from(bits);
    // SAFETY: register-only except for s0, which is saved on the stack and restored (see
    // "Registers" in the module docs).
    unsafe {
        asm!(
            "vpush {{s0}}",
            "vmov s0, {x}",
            "vcvtb.f32.f16 s0, s0",
            "vmov {x}, s0",
            "vpop {{s0}}",
            x = inout(reg) x,
            options(preserves_flags),
        );
    }
    f32::from_bits(x)
}

/// The multiply-accumulate of an even lane pair into accumulator `$a`: `start` begins a block's
/// sum (`SMUAD`), `add` adds to it (`SMLAD`).
macro_rules! mac_even {
    (start, $a:literal) => {
        concat!("smuad {", $a, "}, {t}, {xa}\n")
    };
    (add, $a:literal) => {
        concat!("smlad {", $a, "}, {t}, {xa}, {", $a, "}\n")
    };
}

/// One word of weights (four `i8`) for each of the four rows against one `LDRD` of activation lane
/// pairs: 21 instructions for 16 multiply-accumulates.
macro_rules! rows4_word {
    ($mode:ident) => {
        concat!(
            "ldrd {xa}, {xb}, [{px}], #8\n",
            // Row 1 at p0 + rs, then row 0 at p0, moving p0 on by a word.
            "ldr {w}, [{p0}, {rs}]\n",
            "sxtb16 {t}, {w}\n",
            mac_even!($mode, "a1"),
            "sxtb16 {t}, {w}, ror #8\n",
            "smlad {a1}, {t}, {xb}, {a1}\n",
            "ldr {w}, [{p0}], #4\n",
            "sxtb16 {t}, {w}\n",
            mac_even!($mode, "a0"),
            "sxtb16 {t}, {w}, ror #8\n",
            "smlad {a0}, {t}, {xb}, {a0}\n",
            // Row 3 at p2 + rs, then row 2 at p2.
            "ldr {w}, [{p2}, {rs}]\n",
            "sxtb16 {t}, {w}\n",
            mac_even!($mode, "a3"),
            "sxtb16 {t}, {w}, ror #8\n",
            "smlad {a3}, {t}, {xb}, {a3}\n",
            "ldr {w}, [{p2}], #4\n",
            "sxtb16 {t}, {w}\n",
            mac_even!($mode, "a2"),
            "sxtb16 {t}, {w}, ror #8\n",
            "smlad {a2}, {t}, {xb}, {a2}\n",
        )
    };
}

/// `sum(d) += W(d, nb) . x(nb)` for `d` a multiple of four, rows `r` at `w[r * row_bytes..]`,
/// against `wide` (whole widened blocks): four rows at a time, block by block in the portable order.
fn rows4(sum: &mut [f32], w: &[u8], row_bytes: usize, wide: &[u32]) {
    let nb = wide.len() / WIDE_WORDS;
    let groups = sum.len() / ROWS;
    if nb == 0 || groups == 0 {
        return;
    }
    // The assembly reads nb blocks of each row and nb widened blocks; check both.
    let block_bytes = nb * Q8_0_BLOCK_BYTES;
    assert!(block_bytes <= row_bytes && w.len() >= (ROWS * groups - 1) * row_bytes + block_bytes);
    let x_end = wide[nb * WIDE_WORDS..].as_ptr();
    let sum_end = sum[ROWS * groups..].as_mut_ptr();
    // From where a group's rows 0 and 2 end to where the next group's begin.
    let next_group = ROWS * row_bytes - block_bytes;
    // SAFETY: reads row r from `p0 + r * rs` for nb * 34 bytes, r < 4 * groups, inside `w` by the
    // assertion above (LDR and LDRH may be unaligned on these cores), and nb * 68 bytes of `wide`
    // from `px` (word-aligned, as LDRD and VLDM need) up to `x_end`, one past its end, once per
    // group; reads and writes `sum` from `w`'s start up to `sum_end`, one past its end. Both loops
    // run at least once (nb >= 1, groups >= 1). Every core register it writes is an output; the
    // FPU registers it uses (s16..s31) are pushed first and popped last.
    unsafe {
        asm!(
            // s20: the group's sums in memory; s21: x_end; s29: the activation's start;
            // s30: next_group; s31: sum_end.
            "vpush {{s16-s31}}",
            "vmov s20, {w}",
            "vmov s21, {t}",
            "vmov s29, {px}",
            "vmov s30, {xb}",
            "vmov s31, {xa}",
            "3:",
            // s16..s19: the four rows' sums.
            "vmov {w}, s20",
            "vldmia {w}, {{s16-s19}}",
            "add {p2}, {p0}, {rs}, lsl #1",
            "2:",
            // s23..s26: the rows' scales times the activation's, k(r) = d_w(r) * d_x (s22).
            "vldmia {px}!, {{s22}}",
            "ldrh {w}, [{p0}, {rs}]",
            "ldrh {t}, [{p0}], #2",
            "vmov s23, s24, {t}, {w}",
            "ldrh {w}, [{p2}, {rs}]",
            "ldrh {t}, [{p2}], #2",
            "vmov s25, s26, {t}, {w}",
            "vcvtb.f32.f16 s23, s23",
            "vcvtb.f32.f16 s24, s24",
            "vcvtb.f32.f16 s25, s25",
            "vcvtb.f32.f16 s26, s26",
            "vmul.f32 s23, s23, s22",
            "vmul.f32 s24, s24, s22",
            "vmul.f32 s25, s25, s22",
            "vmul.f32 s26, s26, s22",
            // a(r) = sum_j q_w(r, j) * q_x(j), exact in i32.
            rows4_word!(start),
            ".rept 7",
            rows4_word!(add),
            ".endr",
            // s(r) += f32(a(r)) * k(r): VMLA rounds the product, then adds.
            "vmov s27, s28, {a0}, {a1}",
            "vcvt.f32.s32 s27, s27",
            "vcvt.f32.s32 s28, s28",
            "vmla.f32 s16, s27, s23",
            "vmla.f32 s17, s28, s24",
            "vmov s27, s28, {a2}, {a3}",
            "vcvt.f32.s32 s27, s27",
            "vcvt.f32.s32 s28, s28",
            "vmla.f32 s18, s27, s25",
            "vmla.f32 s19, s28, s26",
            "vmov {t}, s21",
            "cmp {px}, {t}",
            "bne 2b",
            // The group's sums back to memory; on to the next group.
            "vmov {w}, s20",
            "vstmia {w}!, {{s16-s19}}",
            "vmov s20, {w}",
            "vmov {t}, s30",
            "add {p0}, {p0}, {t}",
            "vmov {px}, s29",
            "vmov {t}, s31",
            "cmp {w}, {t}",
            "bne 3b",
            "vpop {{s16-s31}}",
            p0 = inout(reg) w.as_ptr() => _,
            rs = in(reg) row_bytes,
            px = inout(reg) wide.as_ptr() => _,
            t = inout(reg) x_end => _,
            w = inout(reg) sum.as_mut_ptr() => _,
            xa = inout(reg) sum_end => _,
            xb = inout(reg) next_group => _,
            p2 = out(reg) _,
            a0 = out(reg) _,
            a1 = out(reg) _,
            a2 = out(reg) _,
            a3 = out(reg) _,
        );
    }
}

/// `sum += W(1, nb) . x(nb)` for one row, block by block in the portable order.
fn row1(sum: &mut f32, w: &[u8], wide: &[u32]) {
    let nb = wide.len() / WIDE_WORDS;
    if nb == 0 {
        return;
    }
    assert!(w.len() >= nb * Q8_0_BLOCK_BYTES);
    let x_end = wide[nb * WIDE_WORDS..].as_ptr();
    // SAFETY: reads nb * 34 bytes of `w` from `p` (inside it by the assertion) and nb * 68 bytes
    // of word-aligned `wide` from `px` up to `x_end`, one past its end; nb >= 1. Reads and writes
    // the sum. Every core register it writes is an output; the FPU registers it uses (s16..s19)
    // are pushed first and popped last.
    unsafe {
        asm!(
            // s16: the sum; s17: k = d_w * d_x (s18); s19: f32(a).
            "vpush {{s16-s19}}",
            "vldr s16, [{ps}]",
            "2:",
            "vldmia {px}!, {{s18}}",
            "ldrh {w}, [{p}], #2",
            "vmov s17, {w}",
            "vcvtb.f32.f16 s17, s17",
            "vmul.f32 s17, s17, s18",
            "ldrd {xa}, {xb}, [{px}], #8",
            "ldr {w}, [{p}], #4",
            "sxtb16 {t}, {w}",
            "smuad {a}, {t}, {xa}",
            "sxtb16 {t}, {w}, ror #8",
            "smlad {a}, {t}, {xb}, {a}",
            ".rept 7",
            "ldrd {xa}, {xb}, [{px}], #8",
            "ldr {w}, [{p}], #4",
            "sxtb16 {t}, {w}",
            "smlad {a}, {t}, {xa}, {a}",
            "sxtb16 {t}, {w}, ror #8",
            "smlad {a}, {t}, {xb}, {a}",
            ".endr",
            "vmov s19, {a}",
            "vcvt.f32.s32 s19, s19",
            "vmla.f32 s16, s19, s17",
            "cmp {px}, {end}",
            "bne 2b",
            "vstr s16, [{ps}]",
            "vpop {{s16-s19}}",
            p = inout(reg) w.as_ptr() => _,
            px = inout(reg) wide.as_ptr() => _,
            end = in(reg) x_end,
            ps = in(reg) sum as *mut f32,
            w = out(reg) _,
            t = out(reg) _,
            xa = out(reg) _,
            xb = out(reg) _,
            a = out(reg) _,
        );
    }
}

/// Four cached values of one row times their weight `$k` (an FPU register) added to the sums
/// `$s0..$s3`: byte loads paired into two `VMOV`s, widened exactly, each product rounded by
/// `VMLA.F32` before its addition, as the portable `o + k * f32(v)`.
macro_rules! weighted_word {
    ($q:literal, $k:literal, $s0:literal, $s1:literal, $s2:literal, $s3:literal) => {
        concat!(
            "ldrsb {a}, [{",
            $q,
            "}], #1\n",
            "ldrsb {b}, [{",
            $q,
            "}], #1\n",
            "vmov s28, s29, {a}, {b}\n",
            "ldrsb {a}, [{",
            $q,
            "}], #1\n",
            "ldrsb {b}, [{",
            $q,
            "}], #1\n",
            "vmov s30, s31, {a}, {b}\n",
            "vcvt.f32.s32 s28, s28\n",
            "vcvt.f32.s32 s29, s29\n",
            "vcvt.f32.s32 s30, s30\n",
            "vcvt.f32.s32 s31, s31\n",
            "vmla.f32 ",
            $s0,
            ", s28, ",
            $k,
            "\n",
            "vmla.f32 ",
            $s1,
            ", s29, ",
            $k,
            "\n",
            "vmla.f32 ",
            $s2,
            ", s30, ",
            $k,
            "\n",
            "vmla.f32 ",
            $s3,
            ", s31, ",
            $k,
            "\n",
        )
    };
}

/// Eight cached values of one row (`$q`) times their weight `$k`, added to the sums s20..s27.
macro_rules! weighted_row8 {
    ($q:literal, $k:literal) => {
        concat!(
            weighted_word!($q, $k, "s20", "s21", "s22", "s23"),
            weighted_word!($q, $k, "s24", "s25", "s26", "s27"),
        )
    };
}

/// `o(j) += sum_t (a(t) * d(t)) * q(t, j)` for the 32 values `j` of block `b` of the first rows
/// `t` of `w`, four rows at a time, as many groups of four as `a` and
/// `w` hold: for each value `(((o + k(0) * q(0)) + k(1) * q(1)) + k(2) * q(2)) + k(3) * q(3)`,
/// group after group, with `k(t) = a(t) * d(t)`. The same bits as the portable loop of
/// [`weighted_rows_q8_0`](super::weighted_rows_q8_0): `VCVTB` widens the f16 scales exactly,
/// `VCVT` the `i8` values, and `VMLA.F32` rounds each product before adding it (it is not fused).
/// 28 instructions for 8 values of one row (3.6 per value with the sums' loads and stores), fewer
/// than the compiler's loop (docs/performance.md).
///
/// Returns the rows done, a multiple of four; the caller adds the rest one at a time. Does nothing
/// (returns 0) when rows are shorter than a block.
pub fn weighted_rows4(o: &mut [f32; QK8_0], a: &[f32], w: Q8Rows<'_>, b: usize) -> usize {
    // The assembly walks the rows as bytes: block b of row t at w[t * row_bytes + at..].
    let (w, at, row_bytes) = (w.bytes(), b * Q8_0_BLOCK_BYTES, w.row_bytes());
    if row_bytes < Q8_0_BLOCK_BYTES {
        return 0;
    }
    // Rows whose block is all in `w`: row t ends at t * row_bytes + at + 34.
    let in_w = match w.len().checked_sub(at + Q8_0_BLOCK_BYTES) {
        Some(room) => room / row_bytes + 1,
        None => 0,
    };
    let rows = a.len().min(in_w) / ROWS * ROWS;
    if rows == 0 {
        return 0;
    }
    let p = w[at..].as_ptr();
    let o_end = o[QK8_0..].as_mut_ptr();
    let a_end = a[rows..].as_ptr();
    // SAFETY: for each of the `rows` rows t, reads the 34 bytes at p + t * row_bytes (the scale
    // by LDRH, unaligned as these cores allow, then 32 values), inside `w` by `in_w` above; reads
    // `a` from its start (word-aligned, as VLDM needs) four f32 at a time up to `a_end`, one past
    // the last row's; reads and writes the 32 f32 of `o` eight at a time from its start up to
    // `o_end`, one past its end, and back by 128 bytes after each group. Both loops run at least
    // once (rows >= 4). Every core register it writes is an output; the FPU registers it uses
    // (s16..s31) are pushed first and popped last, and the word it pushes (a_end) is popped.
    unsafe {
        asm!(
            // s16..s19: k(0..4); s20..s27: eight sums; s28..s31: widened values.
            "vpush {{s16-s31}}",
            // a_end on the stack.
            "push {{{a}}}",
            "add {q0}, {q0}, #2",
            "3:",
            // The group's rows, each at its 32 values; k(r) = a(t + r) * d(t + r).
            "add {q1}, {q0}, {rb}",
            "add {q2}, {q1}, {rb}",
            "add {q3}, {q2}, {rb}",
            "ldrh {a}, [{q0}, #-2]",
            "ldrh {b}, [{q1}, #-2]",
            "vmov s16, s17, {a}, {b}",
            "ldrh {a}, [{q2}, #-2]",
            "ldrh {b}, [{q3}, #-2]",
            "vmov s18, s19, {a}, {b}",
            "vcvtb.f32.f16 s16, s16",
            "vcvtb.f32.f16 s17, s17",
            "vcvtb.f32.f16 s18, s18",
            "vcvtb.f32.f16 s19, s19",
            "vldmia {ap}!, {{s28-s31}}",
            "vmul.f32 s16, s28, s16",
            "vmul.f32 s17, s29, s17",
            "vmul.f32 s18, s30, s18",
            "vmul.f32 s19, s31, s19",
            "2:",
            "vldmia {o}, {{s20-s27}}",
            weighted_row8!("q0", "s16"),
            weighted_row8!("q1", "s17"),
            weighted_row8!("q2", "s18"),
            weighted_row8!("q3", "s19"),
            "vstmia {o}!, {{s20-s27}}",
            "cmp {o}, {end}",
            "bne 2b",
            // Back to the block's first value; the next group starts one row after row 3's.
            "sub {o}, {o}, #128",
            "sub {q0}, {q3}, #32",
            "add {q0}, {q0}, {rb}",
            "ldr {a}, [sp]",
            "cmp {ap}, {a}",
            "bne 3b",
            "add sp, sp, #4",
            "vpop {{s16-s31}}",
            o = inout(reg) o.as_mut_ptr() => _,
            end = in(reg) o_end,
            ap = inout(reg) a.as_ptr() => _,
            rb = in(reg) row_bytes,
            q0 = inout(reg) p => _,
            q1 = out(reg) _,
            q2 = out(reg) _,
            q3 = out(reg) _,
            a = inout(reg) a_end => _,
            b = out(reg) _,
        );
    }
    rows
}
