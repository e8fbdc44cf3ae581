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
///
/// Rows that start on word boundaries and read an even number of blocks (every matrix of a
/// GGUF file with an even number of blocks per row: the file aligns its tensors) go two at a
/// time through [`rows2_pairs`], which loads weights two words at a time; others go four at a
/// time through [`rows4`].
#[inline(never)]
pub fn matvec_q8_0(out: &mut [f32], w: Q8Rows<'_>, xq: &[BlockQ8_0]) {
    let rows = w;
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
    // Word loads (LDRD) need word-aligned rows; a pass then takes blocks two by two.
    let paired = nb % 2 == 0 && row_bytes % 4 == 0 && w.as_ptr() as usize % 4 == 0;
    // Not zeroed first: that would cost as much as widening it at 128 columns.
    let mut wide = [const { MaybeUninit::<u32>::uninit() }; CHUNK_BLOCKS * WIDE_WORDS];
    let mut b0 = 0;
    while b0 < nb {
        let chunk = &xq[b0..nb.min(b0 + CHUNK_BLOCKS)];
        // Rows r.. start at w[r * row_bytes..]; this pass begins at block b0 of each.
        let skip = b0 * Q8_0_BLOCK_BYTES;
        if paired {
            let wide = widen_pairs(&mut wide[..chunk.len() * WIDE_WORDS], chunk);
            let full = d - d % 2;
            rows2_pairs(&mut out[..full], &w[skip..], row_bytes, wide);
        } else {
            let wide = widen(&mut wide[..chunk.len() * WIDE_WORDS], chunk);
            let full = d - d % ROWS;
            let (sums, rest) = out.split_at_mut(full);
            rows4(sums, &w[skip..], row_bytes, wide);
            for (sum, row) in rest.iter_mut().zip(w.chunks_exact(row_bytes).skip(full)) {
                row1(sum, &row[skip..], wide);
            }
        }
        b0 += chunk.len();
    }
    // An odd last row of a paired matrix: the portable kernel, the same bits.
    if paired && d % 2 == 1 {
        if let (Some(o), Some(row)) = (out.last_mut(), rows.rows().nth(d - 1)) {
            *o = super::dot_q8_0(row, &xq[..nb]);
        }
    }
}

/// Words of a widened pair of activation blocks: both scales (f32 bits), then 8 groups of four
/// words of `i16` lane pairs, one group for each two words of weights that [`rows2_pairs`]
/// loads together.
const PAIR_WORDS: usize = 2 + QK8_0;

const _: () = assert!(PAIR_WORDS == 2 * WIDE_WORDS && CHUNK_BLOCKS % 2 == 0);

/// Where the values of the first block of a pair sit in the words [`rows2_pairs`] multiplies,
/// group by group: a word whose first value is `j` holds values `j..j + 4`. Its 34 bytes start
/// on a word boundary, so its values fill bytes 2..34 of words 0..9: the first group is word 8
/// (values 30, 31 in its low half, the next block's scale above) packed with the high half of
/// word 0 (values 0, 1 above the scale), which reads as one word with values 30, 31, 0, 1, then
/// word 7 (values 26..30); the other groups are words 1 and 2 (values 2..10), 3 and 4, 5 and 6.
/// The second block's values are word-aligned: words 9..17, in order.
const FIRST_BLOCK_WORDS: [usize; 8] = [30, 26, 2, 6, 10, 14, 18, 22];

/// `wide(nb / 2, 34) = [f32 bits of d_x(b), d_x(b + 1); lane pairs]` for each pair of blocks `b`,
/// `b + 1`: for each word of weights, in the order of [`FIRST_BLOCK_WORDS`] then the second
/// block's eight words, two words of lane pairs: `[x(j), x(j + 2)]` and `[x(j + 1), x(j + 3)]`
/// (low lane first, indices mod 32), as `SXTB16` and `SXTB16 ROR #8` lay out the weights.
#[inline(never)]
fn widen_pairs<'w>(wide: &'w mut [MaybeUninit<u32>], xq: &[BlockQ8_0]) -> &'w [u32] {
    assert!(xq.len() % 2 == 0 && wide.len() == xq.len() / 2 * PAIR_WORDS);
    let word = |dst: &mut [MaybeUninit<u32>], q: &[i8; QK8_0], j: usize| {
        let at = |k: usize| q[(j + k) % QK8_0];
        dst[0].write(lanes(at(0), at(2)));
        dst[1].write(lanes(at(1), at(3)));
    };
    for (dst, pair) in wide.chunks_exact_mut(PAIR_WORDS).zip(xq.chunks_exact(2)) {
        dst[0].write(pair[0].scale().to_bits());
        dst[1].write(pair[1].scale().to_bits());
        let (first, second) = dst[2..].split_at_mut(QK8_0 / 2);
        for (w, &j) in first.chunks_exact_mut(2).zip(&FIRST_BLOCK_WORDS) {
            word(w, &pair[0].qs, j);
        }
        for (w, j) in second.chunks_exact_mut(2).zip((0..QK8_0).step_by(4)) {
            word(w, &pair[1].qs, j);
        }
    }
    // SAFETY: the loop wrote every word: 34 per pair (two scales, then 16 pairs of words) for
    // each of the xq.len() / 2 pairs, which is the length of `wide`.
    unsafe { core::slice::from_raw_parts(wide.as_ptr().cast::<u32>(), wide.len()) }
}

/// The multiply-accumulates of two words of weights (`r4`, `r5`) against the four words of lane
/// pairs in `r0..r3` into accumulator `$a`: `start` begins a block's sum (`SMUAD`), `add` adds to
/// it. 8 instructions for 8 multiply-accumulates.
macro_rules! pair_words {
    (start, $a:literal) => {
        concat!(
            "sxtb16 r8, r4\n",
            "smuad ", $a, ", r8, r0\n",
            pair_words!(@rest, $a),
        )
    };
    (add, $a:literal) => {
        concat!(
            "sxtb16 r8, r4\n",
            "smlad ", $a, ", r8, r0, ", $a, "\n",
            pair_words!(@rest, $a),
        )
    };
    (@rest, $a:literal) => {
        concat!(
            "sxtb16 r8, r4, ror #8\n",
            "smlad ", $a, ", r8, r1, ", $a, "\n",
            "sxtb16 r8, r5\n",
            "smlad ", $a, ", r8, r2, ", $a, "\n",
            "sxtb16 r8, r5, ror #8\n",
            "smlad ", $a, ", r8, r3, ", $a, "\n",
        )
    };
}

/// One group of the pair: the next four words of lane pairs, then two words of weights of row 0
/// (`r12`) and of row 1 (`lr`) at byte offset `$off` from where the rows' pointers now stand
/// (68 past the pair's start), each row's into its accumulator.
macro_rules! pair_group {
    ($mode:ident, $off:literal) => {
        concat!(
            "ldmia r11!, {{r0-r3}}\n",
            "ldrd r4, r5, [r12, #",
            $off,
            "]\n",
            pair_words!($mode, "r9"),
            "ldrd r4, r5, [lr, #",
            $off,
            "]\n",
            pair_words!($mode, "r10"),
        )
    };
}

/// The first group of the pair for one row at `$p`: word 8 (`r4`) and word 0 (`r5`, moving the
/// pointer on by the pair's 68 bytes), both scales to `$s0`, `$s1` (`VMOV` of two core registers),
/// word 8's low half packed with word 0's high half, and word 7.
macro_rules! pair_first {
    ($p:literal, $a:literal, $s0:literal, $s1:literal) => {
        concat!(
            "ldr r4, [",
            $p,
            ", #32]\n",
            "ldr r5, [",
            $p,
            "], #68\n",
            "vmov ",
            $s0,
            ", ",
            $s1,
            ", r5, r4\n",
            "pkhbt r4, r4, r5\n",
            "ldr r5, [",
            $p,
            ", #-40]\n",
            pair_words!(start, $a),
        )
    };
}

/// `sum(d) += W(d, nb) . x(nb)` for `d` even, rows `r` at `w[r * row_bytes..]`, word-aligned, and
/// `nb` even, against `wide` from [`widen_pairs`]: two rows at a time, a pair of blocks per
/// pass, the f32 sums block by block in the portable order.
///
/// Per pair of blocks and two rows (128 multiply-accumulates): 128 instructions for the integers,
/// 17 loads of weights per row (two `LDR` and the packing `PKHBT` for the first group, `LDRD`
/// for the others), 8 `LDM` of lane pairs shared by both rows, 17 for the f32 work, 3 for the
/// loop.
#[inline(never)]
fn rows2_pairs(sum: &mut [f32], w: &[u8], row_bytes: usize, wide: &[u32]) {
    let pairs = wide.len() / PAIR_WORDS;
    let groups = sum.len() / 2;
    if pairs == 0 || groups == 0 {
        return;
    }
    // The assembly reads 2 * pairs blocks of each row, from word-aligned starts, and every pair
    // of widened blocks; check all three.
    let block_bytes = pairs * 2 * Q8_0_BLOCK_BYTES;
    assert!(block_bytes <= row_bytes && w.len() >= (2 * groups - 1) * row_bytes + block_bytes);
    assert!(row_bytes % 4 == 0 && w.as_ptr() as usize % 4 == 0);
    let x_end = wide[pairs * PAIR_WORDS..].as_ptr();
    let sum_end = sum[2 * groups..].as_mut_ptr();
    // From where a group's row 0 ends to where the next group's begins.
    let next_group = 2 * row_bytes - block_bytes;
    // SAFETY: reads rows r < 2 * groups from `w.as_ptr() + r * row_bytes` for 2 * pairs * 34
    // bytes, inside `w` by the first assertion, with LDR and LDRD at word-aligned addresses (the
    // second assertion; every offset used is a multiple of 4); reads `wide` (word-aligned, as
    // LDM and VLDM need) from its start up to `x_end`, one past its end, once per group; reads
    // and writes `sum` two f32 at a time from its start up to `sum_end`, one past its end. Both
    // loops run at least once (pairs >= 1, groups >= 1). Every core register it writes is an
    // output; the FPU registers it uses (s0..s27) are pushed first and popped last.
    unsafe {
        asm!(
            // s0: the activation's start; s1: x_end; s2: row_bytes; s3: next_group; s4: where
            // the group's sums are in memory; s5: sum_end.
            "vpush {{s0-s27}}",
            "vmov s0, s1, r0, r1",
            "vmov s2, s3, r2, r3",
            "vmov s4, s5, r4, r5",
            "3:",
            // s16, s17: the two rows' sums; row 1 at lr = r12 + row_bytes.
            "vmov r4, s4",
            "vldmia r4, {{s16-s17}}",
            "vmov r8, s2",
            "add lr, r12, r8",
            "vmov r11, s0",
            "2:",
            // s18, s19: the pair's activation scales.
            "vldmia r11!, {{s18-s19}}",
            // The first block: a(r) = sum_j q_w(r, j) * q_x(j), exact in i32; the weights' scales
            // to s20, s21 (row 0) and s22, s23 (row 1), in the low half of word 0 and the high
            // half of word 8.
            "ldmia r11!, {{r0-r3}}",
            pair_first!("r12", "r9", "s20", "s21"),
            pair_first!("lr", "r10", "s22", "s23"),
            pair_group!(add, "-64"),
            pair_group!(add, "-56"),
            pair_group!(add, "-48"),
            "vmov s24, s25, r9, r10",
            // The second block.
            pair_group!(start, "-32"),
            pair_group!(add, "-24"),
            pair_group!(add, "-16"),
            pair_group!(add, "-8"),
            "vmov s26, s27, r9, r10",
            // s(r) += f32(a(r, b)) * (d_w(r, b) * d_x(b)), block after block: VMLA rounds the
            // product, then adds.
            "vcvtb.f32.f16 s20, s20",
            "vcvtt.f32.f16 s21, s21",
            "vcvtb.f32.f16 s22, s22",
            "vcvtt.f32.f16 s23, s23",
            "vmul.f32 s20, s20, s18",
            "vmul.f32 s21, s21, s19",
            "vmul.f32 s22, s22, s18",
            "vmul.f32 s23, s23, s19",
            "vcvt.f32.s32 s24, s24",
            "vcvt.f32.s32 s25, s25",
            "vcvt.f32.s32 s26, s26",
            "vcvt.f32.s32 s27, s27",
            "vmla.f32 s16, s24, s20",
            "vmla.f32 s16, s26, s21",
            "vmla.f32 s17, s25, s22",
            "vmla.f32 s17, s27, s23",
            "vmov r8, s1",
            "cmp r11, r8",
            "bne.w 2b",
            // The group's sums back to memory; on to the next two rows.
            "vmov r4, s4",
            "vstmia r4!, {{s16-s17}}",
            "vmov s4, r4",
            "vmov r8, s3",
            "add r12, r12, r8",
            "vmov r8, s5",
            "cmp r4, r8",
            "bne.w 3b",
            "vpop {{s0-s27}}",
            inout("r0") wide.as_ptr() => _,
            inout("r1") x_end => _,
            inout("r2") row_bytes => _,
            inout("r3") next_group => _,
            inout("r4") sum.as_mut_ptr() => _,
            inout("r5") sum_end => _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            inout("r12") w.as_ptr() => _,
            out("lr") _,
        );
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

/// f32 to f16 bits with the FPU's `VCVTB.F16.F32`, as [`crate::quant::f32_to_f16_bits_portable`]:
/// rounded to nearest even (the FPSCR's mode from reset, which nothing here changes), IEEE half
/// precision (its AHP bit clear from reset), overflow to infinity, a NaN made quiet with the top
/// nine bits of its payload. One instruction where `half`'s software conversion takes dozens.
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    let mut v = x.to_bits();
    // SAFETY: register-only except for s0, which is saved on the stack and restored (see
    // "Registers" in the module docs).
    unsafe {
        asm!(
            "vpush {{s0}}",
            "vmov s0, {v}",
            "vcvtb.f16.f32 s0, s0",
            "vmov {v}, s0",
            "vpop {{s0}}",
            v = inout(reg) v,
            options(preserves_flags),
        );
    }
    // VCVTB writes the low half and leaves the high half.
    v as u16
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
#[inline(never)]
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
#[inline(never)]
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
#[inline(never)]
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

/// One value of a block's largest magnitude bits: `m = max(m, v << 1)` as unsigned integers.
macro_rules! amax_step {
    ($v:literal) => {
        concat!("cmp {m}, ", $v, ", lsl #1\n", "it lo\n", "lsllo {m}, ", $v, ", #1\n")
    };
}

/// Eight values of a block's largest magnitude, loaded by one `LDM`.
macro_rules! amax8 {
    () => {
        concat!(
            "ldmia {p}!, {{r0-r5, r8, r9}}\n",
            amax_step!("r0"),
            amax_step!("r1"),
            amax_step!("r2"),
            amax_step!("r3"),
            amax_step!("r4"),
            amax_step!("r5"),
            amax_step!("r8"),
            amax_step!("r9"),
        )
    };
}

/// Eight copies of `1.5 * 2^23`, loaded by one `VLDM` as the addends of eight `VMLA`.
static ROUND_MAGIC8: [f32; 8] = [crate::quant::ROUND_MAGIC; 8];

/// Four rounded values (FPU registers `$a..$d`, their bits) packed as bytes (in r0..r3) and
/// stored.
macro_rules! round_store4 {
    ($a:literal, $b:literal, $c:literal, $d:literal) => {
        concat!(
            "vmov r0, r1, ",
            $a,
            ", ",
            $b,
            "\n",
            "vmov r2, r3, ",
            $c,
            ", ",
            $d,
            "\n",
            "bfi r0, r1, #8, #8\n",
            "bfi r0, r2, #16, #8\n",
            "bfi r0, r3, #24, #8\n",
            "str r0, [{q}], #4\n",
        )
    };
}

/// Eight values of a block's rounding: loaded, rounded onto eight copies of the constant (at r4),
/// stored.
macro_rules! round8 {
    () => {
        concat!(
            "vldmia {p}!, {{s0-s7}}\n",
            "vldmia r4, {{s8-s15}}\n",
            "vmla.f32 s8, s0, s16\n",
            "vmla.f32 s9, s1, s16\n",
            "vmla.f32 s10, s2, s16\n",
            "vmla.f32 s11, s3, s16\n",
            "vmla.f32 s12, s4, s16\n",
            "vmla.f32 s13, s5, s16\n",
            "vmla.f32 s14, s6, s16\n",
            "vmla.f32 s15, s7, s16\n",
            round_store4!("s8", "s9", "s10", "s11"),
            round_store4!("s12", "s13", "s14", "s15"),
        )
    };
}

/// Whole blocks of `quant::quantize_row_q8_0` in one pass of assembly, from the first of `out`
/// and of `x` (`min(out.len(), x.len() / 32)` blocks), with the bits of the portable
/// quantizer, for as long as each block is the common case:
/// - its largest magnitude bits, `max_j (bits(x(j)) & 0x7fff_ffff)` as the portable
///   `quant::abs_max_bits` (the sign shifted out, an unsigned maximum, shifted back: 3
///   instructions a value, eight values per `LDM`, sixteen per pass), are those of a finite
///   value;
/// - `d = amax / 127` and `id = 1 / d` (0 for `d` 0), `id` finite; `d` is stored as f16 by
///   `VCVTB`;
/// - `q(j)` is the low byte of the bits of `x(j) * id + 1.5 * 2^23` (`VMLA.F32` onto the
///   constant: the product rounded, then the sum, as the portable `v * id + ROUND_MAGIC`). Those
///   bits are `0x4b40_0000` plus the rounded value, which is within -127..=127 for these blocks,
///   so its low byte is the `i8` the portable clamp gives. 24 instructions for eight values,
///   sixteen per pass.
///
/// Returns the blocks done; the block that stopped the run (an infinity, a NaN, or `1 / d`
/// overflowing) is left untouched for the caller. About 225 instructions a block, where calls
/// to the two steps with the portable tests between them took about 290.
#[inline(never)]
pub fn quantize_blocks(out: &mut [BlockQ8_0], x: &[f32]) -> usize {
    let n = out.len().min(x.len() / QK8_0);
    if n == 0 {
        return 0;
    }
    let start = x.as_ptr();
    let x_end = x[n * QK8_0..].as_ptr();
    let stop: *const f32;
    // SAFETY: reads the 32 * n f32 of `x` (word-aligned, as LDM and VLDM need) from its start up
    // to `x_end`, one past the last block's, each block twice (its largest magnitude, then its
    // rounding), and the 8 of ROUND_MAGIC8 on each pass of the rounding; writes the 34 bytes of
    // each block of `out` it completes, its scale by STRH and its values a word at a time by STR
    // (both may be unaligned on these cores), never past the n-th block. The loops run at least
    // once (n >= 1). Every core register it writes is an output; the FPU registers it uses
    // (s0..s24) are pushed first and popped last. It compares with VCMP and reads the FPU's flags
    // into APSR.
    unsafe {
        asm!(
            "vpush {{s0-s24}}",
            // s20: x_end; s21: ROUND_MAGIC8; s22: 1.0; s23: 127.0; s24: 0.0.
            "vmov s20, s21, r0, r1",
            "vmov s22, s23, r2, r3",
            "movs r5, #0",
            "vmov s24, r5",
            "3:",
            // The block's largest magnitude bits; lr: the block's end.
            "add lr, {p}, #128",
            "movs {m}, #0",
            "2:",
            amax8!(),
            amax8!(),
            "cmp {p}, lr",
            "bne 2b",
            "lsrs {m}, {m}, #1",
            // An infinity or a NaN: not here.
            "cmp {m}, #0x7f800000",
            "bhs 8f",
            // s18: d = amax / 127; s16: id = 1 / d, or 0 for d = 0; not here if it overflows.
            "vmov s17, {m}",
            "vdiv.f32 s18, s17, s23",
            "vmov.f32 s16, s24",
            "vcmp.f32 s18, #0",
            "vmrs APSR_nzcv, fpscr",
            "it ne",
            "vdivne.f32 s16, s22, s18",
            "vmov {m}, s16",
            "lsls {m}, {m}, #1",
            "cmp {m}, #0xff000000",
            "bhs 8f",
            // The scale as f16, then the values.
            "vcvtb.f16.f32 s19, s18",
            "vmov {m}, s19",
            "strh {m}, [{q}], #2",
            "sub {p}, {p}, #128",
            "vmov r4, s21",
            "2:",
            round8!(),
            round8!(),
            "cmp {p}, lr",
            "bne 2b",
            "vmov {m}, s20",
            "cmp {p}, {m}",
            "bne 3b",
            "b 9f",
            // Back to the start of the block that stopped the run.
            "8:",
            "sub {p}, {p}, #128",
            "9:",
            "vpop {{s0-s24}}",
            p = inout(reg) start => stop,
            q = inout(reg) out.as_mut_ptr() => _,
            m = out(reg) _,
            inout("r0") x_end => _,
            inout("r1") ROUND_MAGIC8.as_ptr() => _,
            inout("r2") 1.0f32.to_bits() => _,
            inout("r3") 127.0f32.to_bits() => _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("lr") _,
        );
    }
    // SAFETY: `stop` is the start of a block of `x` or one past the n-th block's end.
    (unsafe { stop.offset_from(start) }) as usize / QK8_0
}

/// `x(n) = gelu(x(n) + bias(n))` as the portable `ops::bias_gelu_portable` computes it, with its
/// bits, for `x` and `bias` of the same length: `u = x + b`, `y = sqrt(2/pi) * (u + 0.044715 *
/// ((u * u) * u))`, `y` clamped to `+-TANH_CLAMP` (NaN left alone), `tanh = (y * P(y^2)) /
/// Q(y^2)` by Horner's rule, then `(0.5 * u) * (1 + tanh)`. Each Horner step `p * y^2 + c` is one
/// `VMLA.F32` onto a fresh copy of `c` (the product rounded, then the sum), the copies reloaded
/// by one `VLDM` per value: 30 instructions a value, where the compiler's loop takes 40.
#[inline(never)]
pub fn bias_gelu(x: &mut [f32], bias: &[f32]) {
    let n = x.len().min(bias.len());
    if n == 0 {
        return;
    }
    let x = &mut x[..n];
    let end = x[n..].as_mut_ptr();
    // SAFETY: reads and writes the n f32 of `x` one at a time from its start up to `end`, one
    // past its end, and reads as many of `bias`, at least n long; reads the 16 f32 of
    // GELU_CONSTANTS. All word-aligned, as VLDM and VSTM need. The loop runs at least once
    // (n >= 1). Every core register it writes is an output; the FPU registers it uses (s0..s4,
    // s16..s31) are pushed first and popped last. It compares with VCMP and reads the FPU's
    // flags into APSR.
    unsafe {
        asm!(
            "vpush {{s0-s4}}",
            "vpush {{s16-s31}}",
            // s16: P(0); s17: Q(0); s18: 0.044715; s19: sqrt(2/pi); s20: the clamp; s21: 0.5;
            // s22: 1.0. s23..s31: the Horner addends, loaded again for each value.
            "vldmia {k}!, {{s16-s22}}",
            "2:",
            "vldr s0, [{x}]",
            "vldmia {b}!, {{s4}}",
            "vadd.f32 s0, s0, s4",
            "vmul.f32 s1, s0, s0",
            "vmul.f32 s1, s1, s0",
            "vmul.f32 s1, s1, s18",
            "vadd.f32 s1, s0, s1",
            "vmul.f32 s1, s1, s19",
            // |y| above the clamp (not for NaN: unordered is not "greater than").
            "vabs.f32 s3, s1",
            "vcmp.f32 s3, s20",
            "vmrs APSR_nzcv, fpscr",
            "bgt 5f",
            "4:",
            "vmul.f32 s2, s1, s1",
            "vldmia {k}, {{s23-s31}}",
            "vmla.f32 s23, s16, s2",
            "vmla.f32 s24, s23, s2",
            "vmla.f32 s25, s24, s2",
            "vmla.f32 s26, s25, s2",
            "vmla.f32 s27, s26, s2",
            "vmla.f32 s28, s27, s2",
            "vmla.f32 s29, s17, s2",
            "vmla.f32 s30, s29, s2",
            "vmla.f32 s31, s30, s2",
            "vmul.f32 s1, s1, s28",
            "vdiv.f32 s1, s1, s31",
            "vadd.f32 s1, s1, s22",
            "vmul.f32 s0, s0, s21",
            "vmul.f32 s0, s0, s1",
            "vstmia {x}!, {{s0}}",
            "cmp {x}, {end}",
            "bne 2b",
            "b 9f",
            // y beyond the clamp: +-clamp with y's sign.
            "5:",
            "vcmp.f32 s1, #0",
            "vmrs APSR_nzcv, fpscr",
            "vmov.f32 s1, s20",
            "it lt",
            "vneglt.f32 s1, s1",
            "b 4b",
            "9:",
            "vpop {{s16-s31}}",
            "vpop {{s0-s4}}",
            x = inout(reg) x.as_mut_ptr() => _,
            b = inout(reg) bias.as_ptr() => _,
            k = inout(reg) super::GELU_CONSTANTS.as_ptr() => _,
            end = in(reg) end,
        );
    }
}

/// One value of [`argmax_nan_to_neg_inf8`], register `$s`: on to `$rare` if it is larger than
/// the best so far (s8) or a NaN. After `VCMP`, "higher" (carry set, zero clear) answers both:
/// "greater than" sets carry and clears zero, and so does "unordered".
macro_rules! argmax_step {
    ($s:literal, $rare:literal) => {
        concat!("vcmp.f32 ", $s, ", s8\n", "vmrs APSR_nzcv, fpscr\n", "bhi ", $rare, "\n",)
    };
}

/// The rare paths of value `$k` (register `$s`) of [`argmax_nan_to_neg_inf8`], told apart by the
/// flags of its `VCMP` ("overflow" set only for unordered): a NaN overwritten with `-inf`, or a
/// new best (its address and value); then back to the next value. `$off` is `32 - 4 * $k`, how
/// far behind the pointer (moved on past the eight) the value lies.
macro_rules! argmax_rare {
    ($k:literal, $s:literal, $back:literal, $off:literal) => {
        concat!(
            "1",
            $k,
            ":\n",
            "bvs 2",
            $k,
            "f\n",
            "sub {best}, {p}, #",
            $off,
            "\n",
            "vmov.f32 s8, ",
            $s,
            "\n",
            "b ",
            $back,
            "\n",
            "2",
            $k,
            ":\n",
            "str {ninf}, [{p}, #-",
            $off,
            "]\n",
            "b ",
            $back,
            "\n",
        )
    };
}

/// The greedy choice over the first `8 * (x.len() / 8)` values of `x`, NaNs replaced by `-inf` on
/// the way: `(index of the first largest, its value, values done)`, the index 0 and the value
/// `-inf` when none is larger than `-inf`, as `sampler::argmax_nan_to_neg_inf` goes through them.
/// `VCMP` against the best so far gives both answers at once: "greater than" for a new best,
/// "unordered" for a NaN (the best is never one), both "higher". Eight values per `VLDM`, 3
/// instructions each on the common path.
#[inline(never)]
pub fn argmax_nan_to_neg_inf8(x: &mut [f32]) -> (usize, f32, usize) {
    let done = x.len() / 8 * 8;
    if done == 0 {
        return (0, f32::NEG_INFINITY, 0);
    }
    let start = x.as_mut_ptr();
    let end = x[done..].as_mut_ptr();
    let best_at: *mut f32;
    let best_bits: u32;
    // SAFETY: reads the first `done` f32 of `x` eight at a time (word-aligned, as VLDM needs)
    // from its start up to `end`, and writes -inf over those that are NaN, at addresses inside
    // the eight just read. The loop runs at least once (done >= 8). Every core register it writes
    // is an output; the FPU registers it uses (s0..s8) are pushed first and popped last. It
    // compares with VCMP and reads the FPU's flags into APSR.
    unsafe {
        asm!(
            "vpush {{s0-s8}}",
            "vmov s8, {ninf}",
            "3:",
            "vldmia {p}!, {{s0-s7}}",
            argmax_step!("s0", "10f"),
            "30:",
            argmax_step!("s1", "11f"),
            "31:",
            argmax_step!("s2", "12f"),
            "32:",
            argmax_step!("s3", "13f"),
            "33:",
            argmax_step!("s4", "14f"),
            "34:",
            argmax_step!("s5", "15f"),
            "35:",
            argmax_step!("s6", "16f"),
            "36:",
            argmax_step!("s7", "17f"),
            "37:",
            "cmp {p}, {end}",
            "bne 3b",
            "b 9f",
            argmax_rare!(0, "s0", "30b", "32"),
            argmax_rare!(1, "s1", "31b", "28"),
            argmax_rare!(2, "s2", "32b", "24"),
            argmax_rare!(3, "s3", "33b", "20"),
            argmax_rare!(4, "s4", "34b", "16"),
            argmax_rare!(5, "s5", "35b", "12"),
            argmax_rare!(6, "s6", "36b", "8"),
            argmax_rare!(7, "s7", "37b", "4"),
            "9:",
            "vmov {ninf}, s8",
            "vpop {{s0-s8}}",
            p = inout(reg) start => _,
            end = in(reg) end,
            best = inout(reg) start => best_at,
            ninf = inout(reg) f32::NEG_INFINITY.to_bits() => best_bits,
        );
    }
    // SAFETY: `best_at` is `start` or the address of one of the values read, inside `x`.
    let best = unsafe { best_at.offset_from(start) } as usize;
    (best, f32::from_bits(best_bits), done)
}

/// `exp(d)`'s steps in [`exp_shifted`], one value at a time: `d = x - max` checked against the
/// low end of the range (a NaN too ends the run), `t = d * log2(e) + 1.5 * 2^23` (the constant's
/// copy, `VMLA`: the product rounded, then the sum), `kf = t - 1.5 * 2^23`, `r = (d - kf * C1) -
/// kf * C2` (`VMLS`, rounded the same way), Horner's rule onto fresh copies of the addends,
/// `(p * (r * r) + r) + 1`, times `2^k` built from `t`'s bits (`k + 127` shifted into the
/// exponent: `t`'s bits shifted left by 23 are `k`'s), added to the sum.
macro_rules! exp_step {
    () => {
        concat!(
            "vldr s0, [{p}]\n",
            "vsub.f32 s0, s0, s16\n",
            "vcmp.f32 s0, s17\n",
            "vmrs APSR_nzcv, fpscr\n",
            "blt 9f\n",
            "vldmia {k}, {{s25-s30}}\n",
            "vmla.f32 s25, s0, s18\n",
            "vsub.f32 s1, s25, s19\n",
            "vmov {t}, s25\n",
            "vmls.f32 s0, s1, s20\n",
            "vmls.f32 s0, s1, s21\n",
            "vmla.f32 s26, s22, s0\n",
            "vmla.f32 s27, s26, s0\n",
            "vmla.f32 s28, s27, s0\n",
            "vmla.f32 s29, s28, s0\n",
            "vmla.f32 s30, s29, s0\n",
            "vmul.f32 s1, s0, s0\n",
            "vmla.f32 s0, s30, s1\n",
            "vadd.f32 s0, s0, s23\n",
            "add.w {t}, {one}, {t}, lsl #23\n",
            "vmov s2, {t}\n",
            "vmul.f32 s0, s0, s2\n",
            "vadd.f32 s24, s24, s0\n",
            "vstmia {p}!, {{s0}}\n",
        )
    };
}

/// softmax's middle pass, from the start of `x` for as long as `x(i) - max` is at least the low
/// end of [`super::exp`]'s own range (not a NaN): `x(i) = exp(x(i) - max)` with `exp`'s
/// operations in its order, each added to `sum` in turn. Returns the values done and the sum;
/// the caller takes the value that stopped the run through `exp` (libm's `expf` there) and goes
/// on after it. For `max` no smaller than any `x(i)`, as softmax's is: `x(i) - max <= 0` then,
/// so the range's high end needs no check. 26 instructions a value, where the compiler's loop
/// (its constants reloaded for each value) takes about 45.
#[inline(never)]
pub fn exp_shifted(x: &mut [f32], max: f32, sum: f32) -> (usize, f32) {
    if x.is_empty() {
        return (0, sum);
    }
    let start = x.as_mut_ptr();
    let end = x.as_mut_ptr_range().end;
    let stop: *mut f32;
    let sum_bits: u32;
    // SAFETY: reads and writes the f32 of `x` one at a time from its start, stopping at `end`,
    // one past its end (the loop runs at least once: x is not empty); reads the 13 f32 of
    // EXP_CONSTANTS, 7 once and the last 6 on each pass (word-aligned, as VLDM needs). Every
    // core register it writes is an output; the FPU registers it uses (s0..s2, s16..s31) are
    // pushed first and popped last. It compares with VCMP and reads the FPU's flags into APSR.
    unsafe {
        asm!(
            "vpush {{s0-s2}}",
            "vpush {{s16-s31}}",
            // s16: max; s17: the range's low end; s18: log2(e); s19: 1.5 * 2^23; s20, s21: ln 2
            // in two parts; s22: the polynomial's first coefficient; s23: 1.0; s24: the sum.
            // s25..s30: the addends of t and of the Horner steps, loaded again for each value.
            "vmov s16, {max}",
            "vmov s24, {sum}",
            "vldmia {k}!, {{s17-s23}}",
            "2:",
            exp_step!(),
            "cmp {p}, {end}",
            "bne 2b",
            "9:",
            "vmov {sum}, s24",
            "vpop {{s16-s31}}",
            "vpop {{s0-s2}}",
            p = inout(reg) start => stop,
            end = in(reg) end,
            k = inout(reg) super::EXP_CONSTANTS.as_ptr() => _,
            max = in(reg) max.to_bits(),
            sum = inout(reg) sum.to_bits() => sum_bits,
            one = in(reg) 1.0f32.to_bits(),
            t = out(reg) _,
        );
    }
    // SAFETY: `stop` is where the loop stopped, inside `x` or one past its end.
    let done = unsafe { stop.offset_from(start) } as usize;
    (done, f32::from_bits(sum_bits))
}

/// `x(i) += y(i)` for the first `8 * (n / 8)` values, `n` the shorter length: eight of each
/// loaded by one `VLDM`, added, stored by one `VSTM`, 13 instructions for eight values (the
/// compiler's loop takes about 4.7 a value). Returns the values done; the caller adds the rest.
#[inline(never)]
pub fn add8(x: &mut [f32], y: &[f32]) -> usize {
    let done = x.len().min(y.len()) / 8 * 8;
    if done == 0 {
        return 0;
    }
    let end = x[done..].as_mut_ptr();
    // SAFETY: reads and writes the first `done` f32 of `x` and reads as many of `y` (at least
    // `done` long), eight at a time from their starts (word-aligned, as VLDM and VSTM need), `x`
    // up to `end`, one past the last written. The loop runs at least once (done >= 8). Every core
    // register it writes is an output; the FPU registers it uses (s0..s15) are pushed first and
    // popped last.
    unsafe {
        asm!(
            "vpush {{s0-s15}}",
            "2:",
            "vldmia {x}, {{s0-s7}}",
            "vldmia {y}!, {{s8-s15}}",
            "vadd.f32 s0, s0, s8",
            "vadd.f32 s1, s1, s9",
            "vadd.f32 s2, s2, s10",
            "vadd.f32 s3, s3, s11",
            "vadd.f32 s4, s4, s12",
            "vadd.f32 s5, s5, s13",
            "vadd.f32 s6, s6, s14",
            "vadd.f32 s7, s7, s15",
            "vstmia {x}!, {{s0-s7}}",
            "cmp {x}, {end}",
            "bne 2b",
            "vpop {{s0-s15}}",
            x = inout(reg) x.as_mut_ptr() => _,
            y = inout(reg) y.as_ptr() => _,
            end = in(reg) end,
        );
    }
    done
}

/// `layer_norm`'s three passes over `n = x.len()` values, `n` a multiple of 8, with the bits of
/// the portable `ops::layer_norm`: `sum` added value by value from 0, `mean = sum / n`, the
/// squared deviations `(v - mean)^2` added the same way (`VMLA`: each square rounded, then
/// added), `rstd = 1 / sqrtf(sq / n + eps)`, then `out(i) = ((x(i) - mean) * rstd) * w(i) +
/// b(i)` (`VMLA` onto the bias). Eight values per `VLDM`: about 7.5 instructions a value, where
/// the compiler's loops take 16. `out`, `w` and `b` at least `n` long.
#[inline(never)]
pub fn layer_norm8(out: &mut [f32], x: &[f32], w: &[f32], b: &[f32], eps: f32) {
    let n = x.len();
    assert!(n % 8 == 0 && n > 0 && out.len() >= n && w.len() >= n && b.len() >= n);
    let end = x.as_ptr_range().end;
    let mut sum = 0.0f32.to_bits();
    // SAFETY: reads the n f32 of `x` eight at a time (word-aligned, as VLDM needs) from its start
    // up to `end`, one past its end; n >= 8, so the loop runs at least once. Every core register
    // it writes is an output; the FPU registers it uses (s0..s8) are pushed first and popped last.
    unsafe {
        asm!(
            "vpush {{s0-s8}}",
            "vmov s8, {s}",
            "2:",
            "vldmia {p}!, {{s0-s7}}",
            "vadd.f32 s8, s8, s0",
            "vadd.f32 s8, s8, s1",
            "vadd.f32 s8, s8, s2",
            "vadd.f32 s8, s8, s3",
            "vadd.f32 s8, s8, s4",
            "vadd.f32 s8, s8, s5",
            "vadd.f32 s8, s8, s6",
            "vadd.f32 s8, s8, s7",
            "cmp {p}, {end}",
            "bne 2b",
            "vmov {s}, s8",
            "vpop {{s0-s8}}",
            s = inout(reg) sum,
            p = inout(reg) x.as_ptr() => _,
            end = in(reg) end,
        );
    }
    let mean = f32::from_bits(sum) / n as f32;
    let mut sq = 0.0f32.to_bits();
    // SAFETY: as above; the FPU registers it uses are s0..s9.
    unsafe {
        asm!(
            "vpush {{s0-s9}}",
            "vmov s8, s9, {s}, {m}",
            "2:",
            "vldmia {p}!, {{s0-s7}}",
            "vsub.f32 s0, s0, s9",
            "vsub.f32 s1, s1, s9",
            "vsub.f32 s2, s2, s9",
            "vsub.f32 s3, s3, s9",
            "vsub.f32 s4, s4, s9",
            "vsub.f32 s5, s5, s9",
            "vsub.f32 s6, s6, s9",
            "vsub.f32 s7, s7, s9",
            "vmla.f32 s8, s0, s0",
            "vmla.f32 s8, s1, s1",
            "vmla.f32 s8, s2, s2",
            "vmla.f32 s8, s3, s3",
            "vmla.f32 s8, s4, s4",
            "vmla.f32 s8, s5, s5",
            "vmla.f32 s8, s6, s6",
            "vmla.f32 s8, s7, s7",
            "cmp {p}, {end}",
            "bne 2b",
            "vmov {s}, s8",
            "vpop {{s0-s9}}",
            s = inout(reg) sq,
            m = in(reg) mean.to_bits(),
            p = inout(reg) x.as_ptr() => _,
            end = in(reg) end,
        );
    }
    let rstd = 1.0 / libm::sqrtf(f32::from_bits(sq) / n as f32 + eps);
    // SAFETY: reads the n f32 of `x`, `w` and `b` and writes n of `out`, eight at a time from
    // their starts (word-aligned, as VLDM and VSTM need), `x` up to `end`, one past its end; the
    // other three are at least n long (the assertion). The loop runs at least once. Every core
    // register it writes is an output; the FPU registers it uses (s0..s25) are pushed first and
    // popped last.
    unsafe {
        asm!(
            "vpush {{s0-s25}}",
            // s24: mean; s25: rstd; s0..s7: x, then the normalised values; s8..s15: b, then the
            // outputs; s16..s23: w.
            "vmov s24, s25, {m}, {r}",
            "2:",
            "vldmia {p}!, {{s0-s7}}",
            "vsub.f32 s0, s0, s24",
            "vsub.f32 s1, s1, s24",
            "vsub.f32 s2, s2, s24",
            "vsub.f32 s3, s3, s24",
            "vsub.f32 s4, s4, s24",
            "vsub.f32 s5, s5, s24",
            "vsub.f32 s6, s6, s24",
            "vsub.f32 s7, s7, s24",
            "vmul.f32 s0, s0, s25",
            "vmul.f32 s1, s1, s25",
            "vmul.f32 s2, s2, s25",
            "vmul.f32 s3, s3, s25",
            "vmul.f32 s4, s4, s25",
            "vmul.f32 s5, s5, s25",
            "vmul.f32 s6, s6, s25",
            "vmul.f32 s7, s7, s25",
            "vldmia {w}!, {{s16-s23}}",
            "vldmia {b}!, {{s8-s15}}",
            "vmla.f32 s8, s0, s16",
            "vmla.f32 s9, s1, s17",
            "vmla.f32 s10, s2, s18",
            "vmla.f32 s11, s3, s19",
            "vmla.f32 s12, s4, s20",
            "vmla.f32 s13, s5, s21",
            "vmla.f32 s14, s6, s22",
            "vmla.f32 s15, s7, s23",
            "vstmia {o}!, {{s8-s15}}",
            "cmp {p}, {end}",
            "bne 2b",
            "vpop {{s0-s25}}",
            m = in(reg) mean.to_bits(),
            r = in(reg) rstd.to_bits(),
            p = inout(reg) x.as_ptr() => _,
            w = inout(reg) w.as_ptr() => _,
            b = inout(reg) b.as_ptr() => _,
            o = inout(reg) out.as_mut_ptr() => _,
            end = in(reg) end,
        );
    }
}

/// `x(i) /= d` for the first `8 * (x.len() / 8)` values: eight loaded by one `VLDM`, divided,
/// stored by one `VSTM`, 12 instructions for eight values. Returns the values done; the caller
/// divides the rest.
#[inline(never)]
pub fn div8(x: &mut [f32], d: f32) -> usize {
    let done = x.len() / 8 * 8;
    if done == 0 {
        return 0;
    }
    let end = x[done..].as_mut_ptr();
    // SAFETY: reads and writes the first `done` f32 of `x`, eight at a time from its start
    // (word-aligned, as VLDM and VSTM need) up to `end`, one past the last written. The loop runs
    // at least once (done >= 8). Every core register it writes is an output; the FPU registers it
    // uses (s0..s8) are pushed first and popped last.
    unsafe {
        asm!(
            "vpush {{s0-s8}}",
            "vmov s8, {d}",
            "2:",
            "vldmia {x}, {{s0-s7}}",
            "vdiv.f32 s0, s0, s8",
            "vdiv.f32 s1, s1, s8",
            "vdiv.f32 s2, s2, s8",
            "vdiv.f32 s3, s3, s8",
            "vdiv.f32 s4, s4, s8",
            "vdiv.f32 s5, s5, s8",
            "vdiv.f32 s6, s6, s8",
            "vdiv.f32 s7, s7, s8",
            "vstmia {x}!, {{s0-s7}}",
            "cmp {x}, {end}",
            "bne 2b",
            "vpop {{s0-s8}}",
            x = inout(reg) x.as_mut_ptr() => _,
            end = in(reg) end,
            d = in(reg) d.to_bits(),
        );
    }
    done
}
