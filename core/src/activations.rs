//! The activations of a forward pass over `B` rows (positions): one row for a decode step, up to
//! the batch size for prefill.
//!
//! Letters: `B` rows, `V` vocabulary, `C` width, `F` MLP width.

use crate::arena::{bytes_of, Arena};
use crate::model::HParams;
use crate::quant::{BlockQ8_0, QK8_0};

/// Lengths of the buffers of [`Activations`] for `B` rows, in values (`xq` in blocks).
#[derive(Clone, Copy)]
pub(crate) struct ActivationLens {
    x: usize,
    xb: usize,
    xb2: usize,
    qkv: usize,
    hb: usize,
    logits: usize,
    xq: usize,
}

impl ActivationLens {
    /// The lengths for `b` rows of `hp`, saturating rather than overflowing.
    pub(crate) const fn new(hp: &HParams, b: usize) -> Self {
        let c = b.saturating_mul(hp.n_embd);
        let widest = if hp.n_ff > hp.n_embd { hp.n_ff } else { hp.n_embd };
        Self {
            x: c,
            xb: c,
            xb2: c,
            qkv: c.saturating_mul(3),
            hb: b.saturating_mul(hp.n_ff),
            logits: b.saturating_mul(hp.n_vocab),
            xq: b.saturating_mul(widest / QK8_0),
        }
    }

    /// Bytes of all the buffers.
    pub(crate) const fn bytes(&self) -> usize {
        let f32s = [self.x, self.xb, self.xb2, self.qkv, self.hb, self.logits];
        let mut bytes = bytes_of::<BlockQ8_0>(self.xq);
        let mut i = 0;
        while i < f32s.len() {
            bytes = bytes.saturating_add(bytes_of::<f32>(f32s[i]));
            i += 1;
        }
        bytes
    }
}

/// The activations of `B` rows, each buffer `(B, ...)` row after row.
pub(crate) struct Activations<'s> {
    /// Residual streams, `(B, C)`.
    pub(crate) x: &'s mut [f32],
    /// Layer norm outputs, then attention outputs, `(B, C)`.
    pub(crate) xb: &'s mut [f32],
    /// Projection outputs added to the residuals, `(B, C)`.
    pub(crate) xb2: &'s mut [f32],
    /// Queries, keys, values, `(B, 3C)`.
    pub(crate) qkv: &'s mut [f32],
    /// MLP hidden activations, `(B, F)`.
    pub(crate) hb: &'s mut [f32],
    /// Logits, when asked for, `(B, V)`.
    pub(crate) logits: &'s mut [f32],
    /// Q8_0 copies of the matrix inputs, `(B, max(C, F) / 32)` blocks.
    pub(crate) xq: &'s mut [BlockQ8_0],
}

impl<'s> Activations<'s> {
    /// Carves the buffers of `lens` out of `arena`, f32 first, then the Q8_0 blocks.
    pub(crate) fn carve(arena: &mut Arena<'s>, lens: &ActivationLens) -> Option<Self> {
        Some(Self {
            x: arena.take(lens.x)?,
            xb: arena.take(lens.xb)?,
            xb2: arena.take(lens.xb2)?,
            qkv: arena.take(lens.qkv)?,
            hb: arena.take(lens.hb)?,
            logits: arena.take(lens.logits)?,
            xq: arena.take(lens.xq)?,
        })
    }

    /// Zeroes every buffer.
    pub(crate) fn clear(&mut self) {
        for buf in [
            &mut *self.x,
            &mut *self.xb,
            &mut *self.xb2,
            &mut *self.qkv,
            &mut *self.hb,
            &mut *self.logits,
        ] {
            buf.fill(0.0);
        }
        self.xq.fill(BlockQ8_0::ZERO);
    }
}
