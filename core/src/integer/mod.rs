//! The integer-only forward pass: GPT-2 with no floating-point arithmetic, for cores without an
//! FPU (Cortex-M0+, Cortex-M3, RV32IMC), where every f32 operation is a library call.
//!
//! Letters: `V` vocabulary, `C` width, `F` MLP width, `L` layers.
//!
//! The same Q8_0 GGUF file as the float path: each weight block's f16 scale is exactly an 11-bit
//! mantissa times a power of two, read from its bits as the block is used; the f32 biases and layer
//! norm parameters are read from their bits into fixed point. Activations (the residual stream, layer
//! norm outputs, queries, keys, values, the MLP's hidden values, logits) are `i32` in Q16; a matrix
//! input becomes int8 blocks of 32 with a scale of an 8-bit mantissa times a power of two, so each
//! weight block meets it in the exact int8 dot product the float path uses too
//! ([`crate::ops::dot_i8`]), then one multiply by the product of the two scales' mantissas and a
//! shift into an `i32` sum per row: no 64-bit multiply and no division per weight block, which cores
//! without them (Cortex-M0+, RV32IMC) would run in software. Layer norm, GELU and softmax are
//! [`crate::fixed`]'s, with their 64-bit steps per row, not per value. The KV cache holds the same
//! int8 blocks in the Q8_0 cache's layout, so the integer path needs a Q8_0 KV cache.
//!
//! Deterministic by construction: integers only, so the same bits on every target. The logits
//! leave as f32 values (each `q / 2^16` exactly, built from integer bits by
//! [`crate::fixed::q_to_f32_bits`]) so that samplers, checksums and perplexity read them like the
//! float path's; the greedy choice is made on them in integers ([`argmax`]).
//!
//! How far it is from the float path is measured in docs/performance.md.
#![deny(clippy::float_arithmetic)]
// A float-only build keeps the module (its `Math`, `argmax`) but never calls the pass.
#![cfg_attr(feature = "float-only", allow(dead_code))]

mod attention;
pub mod kernels;

use core::fmt;

use crate::activations::Activations;
use crate::fixed::{f32_bits_to_q, q_to_f32_bits};
use crate::gguf::GgmlType;
use crate::kv_cache::KvCache;
use crate::model::{F32s, Matrix, Model, Norm};
use crate::quant::{BlockQ8_0, Q8Rows, QK8_0};
use crate::split::{split_if_large, RowSplit};
use kernels::{add, add_bias, gelu, layer_norm, matvec_rows, quantize_row, row_to_q, ACT};

/// Which arithmetic a forward pass runs in: one value, carried by the run state, that the desktop
/// sets from `--math` and the firmware from its board's build-time choice.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Math {
    /// f32, the reference path (and the faster one on a core with an FPU).
    #[default]
    Float,
    /// Integers only ([`crate::integer`]): for cores without an FPU.
    Integer,
}

impl Math {
    /// The name `--math` takes: `"float"` or `"integer"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Integer => "integer",
        }
    }
}

impl fmt::Display for Math {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Rows a piece of a split matrix product holds a multiple of (as the float path's).
const ROW_GRAIN: usize = 8;

/// The largest logit magnitude, in Q16, whose f32 value is exact (`2^24 - 1`, just under 256):
/// logits are clamped to it, so that the f32 logits order exactly as the integers do.
const LOGIT_LIMIT: i32 = (1 << 24) - 1;

/// The first weight matrix of `model` that is not Q8_0, whose type the integer path cannot read,
/// or `None` if all are.
pub fn unsupported_weights(model: &Model<'_>) -> Option<GgmlType> {
    let mut all = model.layers().iter().flat_map(|w| {
        [&w.c_attn.weight, &w.attn_c_proj.weight, &w.c_fc.weight, &w.mlp_c_proj.weight]
    });
    all.find(|m| m.ty != GgmlType::Q8_0).map(|m| m.ty).or(match model.lm_head.ty {
        GgmlType::Q8_0 => None,
        ty => Some(ty),
    })
}

/// `out(d) = W(d, n) . x(n) + bias(d)` in Q16 for Q8_0 `w` (other types leave `out` alone, refused
/// before the pass): `x` quantized into `xq` (at least `n / 32` blocks), the rows handed out by
/// `split`.
fn matvec(
    out: &mut [i32],
    w: &Matrix<'_>,
    bias: Option<F32s<'_>>,
    x: &[i32],
    xq: &mut [BlockQ8_0],
    split: &dyn RowSplit,
) {
    let nb = w.n_in / QK8_0;
    let (GgmlType::Q8_0, Some(xq)) = (w.ty, xq.get_mut(..nb)) else { return };
    quantize_row(xq, x);
    let (xq, rows) = (&*xq, Q8Rows::from_bytes(w.data, nb));
    // The splitter hands out pieces of an f32 buffer: the same 4-byte words, read as i32.
    split_if_large(
        split,
        w.data.len(),
        bytemuck::cast_slice_mut(out),
        ROW_GRAIN,
        &|start, piece| {
            matvec_rows(bytemuck::cast_slice_mut(piece), rows.from_row(start), xq);
        },
    );
    if let Some(b) = bias {
        add_bias(out, b);
    }
}

/// Layer norm with `ln`'s parameters and `eps` (Q32 from the f32 hyper-parameter's bits).
fn norm(out: &mut [i32], x: &[i32], ln: &Norm<'_>, eps_q32: u64) {
    layer_norm(out, x, ln.weight, ln.bias, eps_q32);
}

/// Runs `token` at `pos` through the model in integers, extending the KV cache at `pos`; if
/// `logits`, also the head, into `a.logits` as f32 values of Q16 integers. The caller has checked
/// the token, the position, the weights ([`unsupported_weights`]) and the Q8_0 cache.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pass(
    model: &Model<'_>,
    a: &mut Activations<'_>,
    cache: &mut KvCache<'_>,
    att: &mut [f32],
    token: u32,
    pos: usize,
    split: &dyn RowSplit,
    logits: bool,
) {
    let hp = model.hparams;
    let (c, f) = (hp.n_embd, hp.n_ff);
    let eps_q32 = f32_bits_to_q(hp.eps.to_bits(), 32).max(0) as u64;
    let (Some(x), Some(xb), Some(xb2), Some(qkv), Some(hb)) = (
        a.x.get_mut(..c),
        a.xb.get_mut(..c),
        a.xb2.get_mut(..c),
        a.qkv.get_mut(..3 * c),
        a.hb.get_mut(..f),
    ) else {
        return;
    };
    // The run state's f32 buffers, as the i32 words this path keeps in them.
    let x: &mut [i32] = bytemuck::cast_slice_mut(x);
    let xb: &mut [i32] = bytemuck::cast_slice_mut(xb);
    let xb2: &mut [i32] = bytemuck::cast_slice_mut(xb2);
    let qkv: &mut [i32] = bytemuck::cast_slice_mut(qkv);
    let hb: &mut [i32] = bytemuck::cast_slice_mut(hb);
    let att: &mut [i32] = bytemuck::cast_slice_mut(att);
    let xq = &mut *a.xq;

    // x = wte[token] + wpe[pos]
    row_to_q(&model.wte, x, token as usize);
    row_to_q(&model.wpe, xb, pos);
    add(x, xb);

    for (l, w) in model.layers().iter().enumerate() {
        // Attention: x += c_proj(attn(c_attn(ln_1(x))))
        norm(xb, x, &w.ln_1, eps_q32);
        matvec(qkv, &w.c_attn.weight, Some(w.c_attn.bias), xb, xq, split);
        let (q, kv) = qkv.split_at(c);
        let (k, v) = kv.split_at(c);
        attention::store(cache, l, pos, k, v);
        attention::attention(xb, att, xq, q, cache, l, pos, hp.n_head);
        matvec(xb2, &w.attn_c_proj.weight, Some(w.attn_c_proj.bias), xb, xq, split);
        add(x, xb2);
        // MLP: x += c_proj(gelu(c_fc(ln_2(x))))
        norm(xb, x, &w.ln_2, eps_q32);
        matvec(hb, &w.c_fc.weight, Some(w.c_fc.bias), xb, xq, split);
        gelu(hb);
        matvec(xb2, &w.mlp_c_proj.weight, Some(w.mlp_c_proj.bias), hb, xq, split);
        add(x, xb2);
    }
    if logits {
        // logits = lm_head(ln_f(x))
        norm(xb, x, &model.ln_f, eps_q32);
        let Some(out) = a.logits.get_mut(..hp.n_vocab) else { return };
        matvec(bytemuck::cast_slice_mut(out), &model.lm_head, None, xb, xq, split);
        for v in out.iter_mut() {
            let q = v.to_bits() as i32;
            *v = f32::from_bits(q_to_f32_bits(q.clamp(-LOGIT_LIMIT, LOGIT_LIMIT), ACT));
        }
    }
}

/// The index of the largest of `logits`, the first on ties, compared as integers: the f32 bit
/// patterns mapped to integers in the same order (negatives' magnitude bits flipped), which for
/// the values the integer path writes (and `-inf`, a banned token's) is the order of the Q16
/// integers. The same choice as [`crate::sampler::argmax`] for any input without NaN or `-0.0`.
pub fn argmax(logits: &[f32]) -> u32 {
    let key = |v: &f32| {
        let b = v.to_bits() as i32;
        b ^ (((b >> 31) as u32) >> 1) as i32
    };
    let mut best = 0usize;
    let mut best_key = i32::MIN;
    for (i, v) in logits.iter().enumerate() {
        let k = key(v);
        if k > best_key || i == 0 {
            best = i;
            best_key = k;
        }
    }
    best as u32
}

// The tests compare with the float path.
#[cfg(test)]
#[allow(clippy::float_arithmetic)]
mod tests;
