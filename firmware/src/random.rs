//! Pseudo-random Q8_0 matrices and activations, the same on every run (seeded PCG32): the inputs
//! of the kernel check (`kernels`) and the kernel bench (`bench_kernels`).

use mote_core::quant::{BlockQ8_0, Q8_0_BLOCK_BYTES};
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;

/// Which quantized values to draw.
#[derive(Clone, Copy, PartialEq, Eq, defmt::Format)]
pub enum Values {
    /// Uniform over -128..=127.
    Uniform,
    /// -128 everywhere: the largest products (+16384).
    Min,
    /// 127 everywhere.
    Max,
    /// -128 in the weights, 127 in the activation: the most negative products.
    Opposite,
}

/// Largest f16 exponent field drawn for a scale: 19 is 2^4, so a block sum stays far from f32
/// overflow (32 * 128 * 128 * 16 * 16 < 2^28).
const MAX_SCALE_EXPONENT: u32 = 19;

/// A seeded source of Q8_0 test data.
pub struct Gen {
    rng: Pcg32,
}

impl Gen {
    /// The generator for `seed`.
    pub fn new(seed: u64) -> Gen {
        Gen { rng: Pcg32::seed_from_u64(seed) }
    }

    /// A scale as f16 bits: random sign and mantissa, exponent field 0..=19, so zero, subnormal
    /// (one draw in twenty) and normal scales up to 2^4 all occur.
    pub fn scale(&mut self) -> [u8; 2] {
        let r = self.rng.next_u32();
        let exponent = (r >> 16) % (MAX_SCALE_EXPONENT + 1);
        let bits = (r & 0x8000) | (exponent << 10) | (r & 0x03FF);
        (bits as u16).to_le_bytes()
    }

    /// A quantized value: weights are `weight`s, activation values are not.
    fn value(&mut self, values: Values, weight: bool) -> i8 {
        match values {
            Values::Uniform => self.rng.next_u32() as i8,
            Values::Min => i8::MIN,
            Values::Max => i8::MAX,
            Values::Opposite if weight => i8::MIN,
            Values::Opposite => i8::MAX,
        }
    }

    /// Fills `w` with whole Q8_0 blocks in file layout (f16 scale, then 32 `i8`); a tail shorter
    /// than a block is left alone.
    pub fn weights(&mut self, w: &mut [u8], values: Values) {
        for block in w.chunks_exact_mut(Q8_0_BLOCK_BYTES) {
            let (d, qs) = block.split_at_mut(2);
            d.copy_from_slice(&self.scale());
            for q in qs {
                *q = self.value(values, true) as u8;
            }
        }
    }

    /// Fills `x` with activation blocks.
    pub fn activation(&mut self, x: &mut [BlockQ8_0], values: Values) {
        for block in x {
            block.d = self.scale();
            for q in block.qs.iter_mut() {
                *q = self.value(values, false);
            }
        }
    }

    /// A float activation in -4..4, for the path that quantizes it first.
    pub fn floats(&mut self, x: &mut [f32]) {
        for v in x {
            *v = (self.rng.next_u32() >> 8) as f32 / (1u32 << 21) as f32 - 4.0;
        }
    }
}
