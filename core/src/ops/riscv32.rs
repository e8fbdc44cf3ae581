//! The int8 block dot product on RV32IMC (no vector or packed-SIMD extension, no FPU): the
//! integer core of every Q8_0 product, [`dot_i8`](super::dot_i8), in 127 instructions for 32
//! multiply-accumulates.
//!
//! RV32I loads a signed byte with an immediate offset (`LB rd, imm(rs)`), so a fully unrolled
//! block needs no index arithmetic: per column `j`, two `LB`, one `MUL` and one `ADD` into the sum,
//! and the first column's product is the sum's start (no `ADD`, no zeroing). Word loads do not pay
//! here: sign-extending the four bytes of a word takes seven shifts, more than the three `LB` they
//! would save, and packing two products into one `MUL` (16-bit lanes) is not exact: a block's sum
//! needs 21 bits. The columns go in pairs, both pairs' loads before their multiplies, so that a
//! core with a load-use delay (the ESP32-C3's) does not wait on each load.
//!
//! Compiled Rust does the same arithmetic, but the compiler hoists the 64 loads ahead of the
//! multiplies and spills products to the stack (about 20 more loads and stores per block), which
//! is why this is assembly. Exact whatever the order of its terms: every product and partial sum
//! of 32 `i8 * i8` products fits in an `i32`, so the result is the portable loop's, bit for bit.
//!
//! The assembly text is built by [`block_asm!`], which the host tests also read: they execute it
//! with a small interpreter of its four instructions against the portable loop (see the tests).

/// The instructions of one block: `{a}` and `{b}` point at the two blocks of 32 `i8`, the sum ends
/// in `{acc}`; `{t0}` to `{t3}` are scratch.
macro_rules! block_asm {
    () => {
        concat!(
            // Columns 0 and 1: the first product starts the sum.
            "lb {t0}, 0({a})\n",
            "lb {t1}, 0({b})\n",
            "lb {t2}, 1({a})\n",
            "lb {t3}, 1({b})\n",
            "mul {acc}, {t0}, {t1}\n",
            "mul {t2}, {t2}, {t3}\n",
            "add {acc}, {acc}, {t2}\n",
            block_asm!(@pair 2, 3),
            block_asm!(@pair 4, 5),
            block_asm!(@pair 6, 7),
            block_asm!(@pair 8, 9),
            block_asm!(@pair 10, 11),
            block_asm!(@pair 12, 13),
            block_asm!(@pair 14, 15),
            block_asm!(@pair 16, 17),
            block_asm!(@pair 18, 19),
            block_asm!(@pair 20, 21),
            block_asm!(@pair 22, 23),
            block_asm!(@pair 24, 25),
            block_asm!(@pair 26, 27),
            block_asm!(@pair 28, 29),
            block_asm!(@pair 30, 31),
        )
    };
    (@pair $j:literal, $k:literal) => {
        concat!(
            "lb {t0}, ", $j, "({a})\n",
            "lb {t1}, ", $j, "({b})\n",
            "lb {t2}, ", $k, "({a})\n",
            "lb {t3}, ", $k, "({b})\n",
            "mul {t0}, {t0}, {t1}\n",
            "mul {t2}, {t2}, {t3}\n",
            "add {acc}, {acc}, {t0}\n",
            "add {acc}, {acc}, {t2}\n",
        )
    };
}

/// The instructions of one block against four rows: `{x}` points at the activation's 32 `i8`,
/// `{w0}` to `{w3}` at the four rows' blocks, the sums end in `{s0}` to `{s3}`; `{v}`, `{t0}` and
/// `{t1}` are scratch. Per column: one `LB` of `x(j)`, then per row `LB`, `MUL`, `ADD`, 13
/// instructions for four products (the first column's products start the sums).
macro_rules! block4_asm {
    () => {
        concat!(
            "lb {v}, 0({x})\n",
            "lb {t0}, 0({w0})\n",
            "lb {t1}, 0({w1})\n",
            "mul {s0}, {t0}, {v}\n",
            "mul {s1}, {t1}, {v}\n",
            "lb {t0}, 0({w2})\n",
            "lb {t1}, 0({w3})\n",
            "mul {s2}, {t0}, {v}\n",
            "mul {s3}, {t1}, {v}\n",
            block4_asm!(@col 1), block4_asm!(@col 2), block4_asm!(@col 3),
            block4_asm!(@col 4), block4_asm!(@col 5), block4_asm!(@col 6), block4_asm!(@col 7),
            block4_asm!(@col 8), block4_asm!(@col 9), block4_asm!(@col 10), block4_asm!(@col 11),
            block4_asm!(@col 12), block4_asm!(@col 13), block4_asm!(@col 14), block4_asm!(@col 15),
            block4_asm!(@col 16), block4_asm!(@col 17), block4_asm!(@col 18), block4_asm!(@col 19),
            block4_asm!(@col 20), block4_asm!(@col 21), block4_asm!(@col 22), block4_asm!(@col 23),
            block4_asm!(@col 24), block4_asm!(@col 25), block4_asm!(@col 26), block4_asm!(@col 27),
            block4_asm!(@col 28), block4_asm!(@col 29), block4_asm!(@col 30), block4_asm!(@col 31),
        )
    };
    (@col $j:literal) => {
        concat!(
            "lb {v}, ", $j, "({x})\n",
            "lb {t0}, ", $j, "({w0})\n",
            "lb {t1}, ", $j, "({w1})\n",
            "mul {t0}, {t0}, {v}\n",
            "mul {t1}, {t1}, {v}\n",
            "add {s0}, {s0}, {t0}\n",
            "add {s1}, {s1}, {t1}\n",
            "lb {t0}, ", $j, "({w2})\n",
            "lb {t1}, ", $j, "({w3})\n",
            "mul {t0}, {t0}, {v}\n",
            "mul {t1}, {t1}, {v}\n",
            "add {s2}, {s2}, {t0}\n",
            "add {s3}, {s3}, {t1}\n",
        )
    };
}

/// The assembly of one block against four rows (see [`block4_asm!`]).
#[cfg_attr(target_arch = "riscv32", allow(dead_code))]
pub(crate) const BLOCK4_ASM: &str = block4_asm!();

/// `[dot_i8(w[0], x), .., dot_i8(w[3], x)]`, each exact in `i32`, reading each activation value
/// once for the four rows: 412 instructions for 128 products (3.22 each), against 4 x 127 for four
/// [`dot_i8`]. For a matrix product that takes four rows at a time (the integer path's
/// four-row hook, `ops::dot_i8x4`, where the build has it).
#[cfg(target_arch = "riscv32")]
#[inline]
#[allow(unsafe_code)]
pub fn block_dots4(w: [&[i8; crate::quant::QK8_0]; 4], x: &[i8; crate::quant::QK8_0]) -> [i32; 4] {
    let (s0, s1, s2, s3): (i32, i32, i32, i32);
    // SAFETY: reads the 32 bytes of each of the five arrays, whose references are valid; writes
    // only the registers named below; no stack, no flags (RISC-V has none).
    unsafe {
        core::arch::asm!(
            block4_asm!(),
            x = in(reg) x.as_ptr(),
            w0 = in(reg) w[0].as_ptr(),
            w1 = in(reg) w[1].as_ptr(),
            w2 = in(reg) w[2].as_ptr(),
            w3 = in(reg) w[3].as_ptr(),
            s0 = out(reg) s0,
            s1 = out(reg) s1,
            s2 = out(reg) s2,
            s3 = out(reg) s3,
            v = out(reg) _,
            t0 = out(reg) _,
            t1 = out(reg) _,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    [s0, s1, s2, s3]
}

/// The assembly of one block (see [`block_asm!`]).
#[cfg_attr(target_arch = "riscv32", allow(dead_code))]
pub(crate) const BLOCK_ASM: &str = block_asm!();

/// `sum_j a(j) * b(j)` over one block of 32 `i8`, exact in `i32`: the portable
/// [`dot_i8`](super::dot_i8_portable)'s result.
#[cfg(target_arch = "riscv32")]
#[inline]
#[allow(unsafe_code)]
pub fn dot_i8(a: &[i8; crate::quant::QK8_0], b: &[i8; crate::quant::QK8_0]) -> i32 {
    let acc: i32;
    // SAFETY: reads the 32 bytes of each array, whose references are valid; writes only the
    // registers named below; no stack, no flags (RISC-V has none).
    unsafe {
        core::arch::asm!(
            block_asm!(),
            a = in(reg) a.as_ptr(),
            b = in(reg) b.as_ptr(),
            acc = out(reg) acc,
            t0 = out(reg) _,
            t1 = out(reg) _,
            t2 = out(reg) _,
            t3 = out(reg) _,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    acc
}

#[cfg(test)]
mod tests {
    //! The assembly's text, executed on the host by an interpreter of the three instructions it
    //! uses (RV32I `LB` with an immediate offset, RV32M `MUL`, `ADD`, all with 32-bit wrapping),
    //! against the portable loop: the same registers, offsets and order the core runs.
    use super::{BLOCK4_ASM, BLOCK_ASM};
    use crate::ops::dot_i8_portable;
    use crate::quant::QK8_0;
    use std::collections::HashMap;

    /// Runs `asm` with each named pointer register (`{a}`, `{x}`, ...) pointing at its block;
    /// returns the registers and the number of instructions executed.
    fn execute<'a>(
        asm: &'a str,
        blocks: &[(&str, &[i8; QK8_0])],
    ) -> (HashMap<&'a str, i32>, usize) {
        let mut regs: HashMap<&str, i32> = HashMap::new();
        let mut count = 0;
        for line in asm.lines() {
            let (op, args) = line.split_once(' ').expect("an instruction with operands");
            let args: Vec<&str> = args.split(", ").collect();
            match (op, args.as_slice()) {
                ("lb", [rd, mem]) => {
                    let (offset, base) = mem.trim_end_matches(')').split_once('(').unwrap();
                    let offset: usize = offset.parse().unwrap();
                    let block = blocks.iter().find(|(name, _)| *name == base);
                    let (_, block) = block.unwrap_or_else(|| panic!("load from {base}"));
                    regs.insert(rd, i32::from(block[offset]));
                }
                ("mul", [rd, rs1, rs2]) => {
                    let v = regs[rs1].wrapping_mul(regs[rs2]);
                    regs.insert(rd, v);
                }
                ("add", [rd, rs1, rs2]) => {
                    let v = regs[rs1].wrapping_add(regs[rs2]);
                    regs.insert(rd, v);
                }
                _ => panic!("unexpected instruction {line:?}"),
            }
            count += 1;
        }
        (regs, count)
    }

    /// [`BLOCK_ASM`] on `a` and `b`.
    fn dot(a: &[i8; QK8_0], b: &[i8; QK8_0]) -> i32 {
        let (regs, count) = execute(BLOCK_ASM, &[("{a}", a), ("{b}", b)]);
        assert_eq!(count, 127, "64 loads, 32 multiplies, 31 adds");
        regs["{acc}"]
    }

    /// [`BLOCK4_ASM`] on four rows and `x`.
    fn dots4(w: [&[i8; QK8_0]; 4], x: &[i8; QK8_0]) -> [i32; 4] {
        let blocks = [("{x}", x), ("{w0}", w[0]), ("{w1}", w[1]), ("{w2}", w[2]), ("{w3}", w[3])];
        let (regs, count) = execute(BLOCK4_ASM, &blocks);
        assert_eq!(count, 412, "160 loads, 128 multiplies, 124 adds");
        [regs["{s0}"], regs["{s1}"], regs["{s2}"], regs["{s3}"]]
    }

    /// A block of pseudo-random values (xorshift from `seed`).
    fn block(seed: u32) -> [i8; QK8_0] {
        let mut s = seed.max(1);
        core::array::from_fn(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as i8
        })
    }

    /// Extreme blocks: every value -128, 127, 0 or -1.
    const EXTREMES: [[i8; QK8_0]; 4] =
        [[i8::MIN; QK8_0], [i8::MAX; QK8_0], [0; QK8_0], [-1; QK8_0]];

    #[test]
    fn the_assembly_gives_the_portable_sums() {
        for a in &EXTREMES {
            for b in &EXTREMES {
                assert_eq!(dot(a, b), dot_i8_portable(a, b));
            }
        }
        // The largest sum, 32 * 128 * 128, reached exactly.
        assert_eq!(dot(&EXTREMES[0], &EXTREMES[0]), 524_288);
        for seed in 1..500u32 {
            let (a, b) = (block(seed), block(seed.wrapping_mul(7919) ^ 0x5bd1));
            assert_eq!(dot(&a, &b), dot_i8_portable(&a, &b), "seed {seed}");
        }
        // Each column on its own: a wrong offset or a product left out shows here.
        for j in 0..QK8_0 {
            let mut a = [0i8; QK8_0];
            let mut b = [0i8; QK8_0];
            a[j] = 3;
            b[j] = -(j as i8) - 1;
            assert_eq!(dot(&a, &b), -3 * (j as i32 + 1), "column {j}");
        }
    }

    #[test]
    fn the_four_row_assembly_gives_the_portable_sums() {
        let portable = |w: [&[i8; QK8_0]; 4], x: &[i8; QK8_0]| w.map(|row| dot_i8_portable(row, x));
        for x in &EXTREMES {
            let w = [&EXTREMES[0], &EXTREMES[1], &EXTREMES[2], &EXTREMES[3]];
            assert_eq!(dots4(w, x), portable(w, x));
        }
        for seed in 1..200u32 {
            let rows = [block(seed), block(seed + 1000), block(seed + 2000), block(seed + 3000)];
            let x = block(seed.wrapping_mul(7919) ^ 0x5bd1);
            let w = [&rows[0], &rows[1], &rows[2], &rows[3]];
            assert_eq!(dots4(w, &x), portable(w, &x), "seed {seed}");
        }
        // Each row and column on its own: a row's sum must not take another row's products.
        for r in 0..4 {
            for j in 0..QK8_0 {
                let mut rows = [[0i8; QK8_0]; 4];
                let mut x = [0i8; QK8_0];
                rows[r][j] = 5;
                x[j] = -(j as i8) - 1;
                let mut want = [0; 4];
                want[r] = -5 * (j as i32 + 1);
                let w = [&rows[0], &rows[1], &rows[2], &rows[3]];
                assert_eq!(dots4(w, &x), want, "row {r} column {j}");
            }
        }
    }
}
