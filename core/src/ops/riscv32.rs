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
    //! The assembly's text, executed on the host by an interpreter of the four instructions it
    //! uses (RV32I `LB` with an immediate offset, RV32M `MUL`, `ADD`, all with 32-bit wrapping),
    //! against the portable loop: the same registers, offsets and order the core runs.
    use super::BLOCK_ASM;
    use crate::ops::dot_i8_portable;
    use crate::quant::QK8_0;
    use std::collections::HashMap;

    /// Runs [`BLOCK_ASM`] with `{a}` and `{b}` pointing at `a` and `b`; returns `{acc}`.
    fn execute(a: &[i8; QK8_0], b: &[i8; QK8_0]) -> i32 {
        let mut regs: HashMap<&str, i32> = HashMap::new();
        let mut count = 0;
        for line in BLOCK_ASM.lines() {
            let (op, args) = line.split_once(' ').expect("an instruction with operands");
            let args: Vec<&str> = args.split(", ").collect();
            match (op, args.as_slice()) {
                ("lb", [rd, mem]) => {
                    let (offset, base) = mem.trim_end_matches(')').split_once('(').unwrap();
                    let offset: usize = offset.parse().unwrap();
                    let byte = match base {
                        "{a}" => a[offset],
                        "{b}" => b[offset],
                        other => panic!("load from {other}"),
                    };
                    regs.insert(rd, i32::from(byte));
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
        assert_eq!(count, 127, "64 loads, 32 multiplies, 31 adds");
        regs["{acc}"]
    }

    /// Blocks of a fill: each column's value from the column index and a seed (xorshift).
    fn block(seed: u32) -> [i8; QK8_0] {
        let mut s = seed.max(1);
        core::array::from_fn(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as i8
        })
    }

    #[test]
    fn the_assembly_gives_the_portable_sums() {
        let extremes = [[i8::MIN; QK8_0], [i8::MAX; QK8_0], [0; QK8_0], [-1; QK8_0]];
        for a in &extremes {
            for b in &extremes {
                assert_eq!(execute(a, b), dot_i8_portable(a, b));
            }
        }
        // The largest sum, 32 * 128 * 128, reached exactly.
        assert_eq!(execute(&extremes[0], &extremes[0]), 524_288);
        for seed in 1..500u32 {
            let (a, b) = (block(seed), block(seed.wrapping_mul(7919) ^ 0x5bd1));
            assert_eq!(execute(&a, &b), dot_i8_portable(&a, &b), "seed {seed}");
        }
        // Each column on its own: a wrong offset or a product left out shows here.
        for j in 0..QK8_0 {
            let mut a = [0i8; QK8_0];
            let mut b = [0i8; QK8_0];
            a[j] = 3;
            b[j] = -(j as i8) - 1;
            assert_eq!(execute(&a, &b), -3 * (j as i32 + 1), "column {j}");
        }
    }
}
