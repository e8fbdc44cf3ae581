//! The Q8_0 matrix-vector product on ARMv6-M cores (Cortex-M0, M0+; Thumb-1, no DSP extension, no
//! FPU): four rows share each activation value, so one signed byte load feeds four
//! multiply-accumulates.
//!
//! ARMv6-M has no `SMLAD`, no multiply-accumulate at all, and loads a signed byte only from a
//! register plus a register (`LDRSB Rt, [Rn, Rm]`). The cheapest exact product of two `i8` is
//! then `LDRSB` + `MULS` + `ADD`: three instructions. Packing two products into one `MULS` (two
//! 16-bit lanes) does not stay exact: a lane of a block's sum needs 21 bits. Word loads of four
//! weights need six instructions to sign-extend the four bytes, more than the four `LDRSB` they
//! replace, and ARMv6-M faults on an unaligned word, which half of a row's blocks are. So per
//! column `j` of a block: one `LDRSB` of `x(j)`, then for each of four rows `LDRSB` of `w(r, j)`,
//! `MULS`, `ADD` into that row's sum, and one `ADDS` of the shared index: 14 instructions for
//! four multiply-accumulates, 3.5 each, fully unrolled over the block's 32 columns.
//!
//! Registers: the four rows' sums live in high registers (`ADD` reaches them in one
//! instruction, `MULS` needs low ones); the eight low registers hold the pointers, the index, the
//! activation value and the product. Rust reserves r6 and r7 (r7 is Thumb's frame pointer), so the
//! assembly saves them on the stack and restores them before it ends.
//!
//! Bit-identical to [`dot_q8_0`](super::dot_q8_0) row by row: a block's `i32` dot product is exact
//! whatever the order of its terms, and the f32 combination is the portable one, in Rust, in the
//! same order: `sum += isum as f32 * (d_w * d_x)`, block by block from `sum = 0.0`.
//!
//! Letters: `n` input length, `d` output length, `nb = n / 32` blocks per row.
#![allow(unsafe_code)]

use core::arch::asm;

use crate::quant::{BlockQ8_0, Q8Rows, QK8_0};

/// Rows that share one pass over the activation.
const ROWS: usize = 4;

/// `out(d) = W(d, n) . x(n)` for the whole Q8_0 rows of `w` against the Q8_0 activation `xq`:
/// the same result, bit for bit, as `*o = dot_q8_0(row, xq)` for each row.
///
/// As there, rows beyond `out` are not read (nor are entries of `out` beyond the rows written),
/// and a row and `xq` are read up to the shorter of the two.
pub fn matvec_q8_0(out: &mut [f32], w: Q8Rows<'_>, xq: &[BlockQ8_0]) {
    let mut rows = w.rows();
    let d = out.len().min(rows.len());
    let (groups, rest) = out[..d].split_at_mut(d - d % ROWS);
    for o in groups.chunks_exact_mut(ROWS) {
        // There are rows for every output of `groups`: `d` is at most their count.
        let (Some(r0), Some(r1), Some(r2), Some(r3)) =
            (rows.next(), rows.next(), rows.next(), rows.next())
        else {
            break;
        };
        let mut sums = [0.0f32; ROWS];
        for ((((b0, b1), b2), b3), xb) in r0.iter().zip(r1).zip(r2).zip(r3).zip(xq) {
            let isums = block_dots4([&b0.qs, &b1.qs, &b2.qs, &b3.qs], &xb.qs);
            let dx = xb.scale();
            for ((s, isum), wb) in sums.iter_mut().zip(isums).zip([b0, b1, b2, b3]) {
                *s += isum as f32 * (wb.scale() * dx);
            }
        }
        o.copy_from_slice(&sums);
    }
    // The one to three rows left: one at a time.
    for (o, row) in rest.iter_mut().zip(rows) {
        *o = super::dot_q8_0(row, xq);
    }
}

/// One column of a block: `x(j)` into r6, then for each row `w(r, j)` into r7, the product into
/// r7, and the product added to the row's sum (`first`: the sums start from it).
macro_rules! column {
    ($sum:ident, $next:literal) => {
        concat!(
            "ldrsb r6, [r0, r5]\n",
            "ldrsb r7, [r1, r5]\n",
            "muls r7, r6, r7\n",
            column!(@$sum, "r8"),
            "ldrsb r7, [r2, r5]\n",
            "muls r7, r6, r7\n",
            column!(@$sum, "r9"),
            "ldrsb r7, [r3, r5]\n",
            "muls r7, r6, r7\n",
            column!(@$sum, "r10"),
            "ldrsb r7, [r4, r5]\n",
            "muls r7, r6, r7\n",
            column!(@$sum, "r12"),
            $next,
        )
    };
    (@first, $acc:literal) => {
        concat!("mov ", $acc, ", r7\n")
    };
    (@add, $acc:literal) => {
        concat!("add ", $acc, ", r7\n")
    };
}

/// Eight columns after the first, each followed by the index's step.
macro_rules! columns8 {
    () => {
        concat!(
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
        )
    };
}

/// `isum(r) = sum_j w(r, j) * x(j)` over one block's 32 columns, for four rows at once: exact.
pub fn block_dots4(w: [&[i8; QK8_0]; ROWS], x: &[i8; QK8_0]) -> [i32; ROWS] {
    let (s0, s1, s2, s3): (i32, i32, i32, i32);
    // SAFETY: reads bytes 0..=31 from each of the five pointers (the index r5 runs from 0 to 31),
    // which are the five arrays (LDRSB has no alignment requirement). r6 and r7, which Rust
    // reserves, are pushed first and popped last; every other register it writes is an operand:
    // r1..r5 inputs whose registers it overwrites (r1..r4 with the sums, the outputs), r8..r10
    // and r12 clobbered. Flags are clobbered too (ADDS, MULS).
    unsafe {
        asm!(
            "push {{r6, r7}}",
            // Column 0 starts the sums, columns 1..=30 add to them, column 31 needs no step.
            column!(first, "adds r5, #1\n"),
            columns8!(),
            columns8!(),
            columns8!(),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, "adds r5, #1\n"),
            column!(add, ""),
            "pop {{r6, r7}}",
            // Rust takes outputs in low registers only: the sums replace the row pointers.
            "mov r1, r8",
            "mov r2, r9",
            "mov r3, r10",
            "mov r4, r12",
            in("r0") x.as_ptr(),
            inout("r1") w[0].as_ptr() => s0,
            inout("r2") w[1].as_ptr() => s1,
            inout("r3") w[2].as_ptr() => s2,
            inout("r4") w[3].as_ptr() => s3,
            inout("r5") 0usize => _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r12") _,
            options(readonly),
        );
    }
    [s0, s1, s2, s3]
}
