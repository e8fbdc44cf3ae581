//! The GPT-2 forward pass: tokens at consecutive positions in, the KV cache extended, next-token
//! logits out when asked for.
//!
//! Letters: `B` rows (positions in one pass), `V` vocabulary, `C` width, `F` MLP width, `L` layers.
//! Exactly what Hugging Face's `GPT2LMHeadModel` computes.
//!
//! One block serves a decode step ([`forward`]: one row, in the run state's activations) and
//! batched prefill ([`crate::prefill::prefill`]: up to `B` rows, in a separate scratch). A matrix
//! product over `B` rows gives each row the bits of the matrix-vector product, and everything
//! else runs per row or per element, so the KV cache and the logits do not depend on `B`.

#[cfg(all(feature = "float-only", feature = "integer-only"))]
compile_error!("mote-core's features float-only and integer-only leave out both forward passes");

use core::fmt;

use crate::activations::Activations;
use crate::attention::attention;
use crate::gguf::GgmlType;
use crate::integer::Math;
use crate::kv_cache::KvCache;
use crate::model::{Model, Norm};
use crate::ops::{add, bias_gelu, layer_norm, matmul};
use crate::split::RowSplit;
use crate::state::RunState;

/// Why a forward step was refused.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ForwardError {
    /// A token id outside the vocabulary.
    TokenOutOfRange {
        /// The token id.
        token: u32,
        /// The vocabulary size.
        n_vocab: usize,
    },
    /// A position at or past the context length.
    PositionOutOfRange {
        /// The position.
        pos: usize,
        /// The context length.
        n_ctx: usize,
    },
    /// The run state was sized for other hyper-parameters than the model's.
    StateMismatch,
    /// The integer path ([`Math::Integer`]) met a weight matrix that is not Q8_0.
    IntegerNeedsQ8_0 {
        /// The matrix's type.
        ty: GgmlType,
    },
    /// The run state asks for the integer path, which this build leaves out (mote-core's
    /// `float-only` feature; [`crate::state::RunState::new_math`] refuses such a state first).
    IntegerNotBuilt,
    /// The run state asks for the float path, which this build leaves out (mote-core's
    /// `integer-only` feature; [`crate::state::RunState::new_math`] refuses such a state first).
    FloatNotBuilt,
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TokenOutOfRange { token, n_vocab } => {
                write!(f, "token id {token} is outside the vocabulary of {n_vocab} tokens")
            }
            Self::PositionOutOfRange { pos, n_ctx } => {
                write!(f, "position {pos} is past the context length {n_ctx}")
            }
            Self::StateMismatch => write!(f, "the run state was sized for another model"),
            Self::IntegerNeedsQ8_0 { ty } => write!(
                f,
                "the integer path reads Q8_0 weight matrices only, this model has {ty:?} ones"
            ),
            Self::IntegerNotBuilt => {
                write!(f, "the integer path is not in this build (mote-core's float-only feature)")
            }
            Self::FloatNotBuilt => {
                write!(f, "the float path is not in this build (mote-core's integer-only feature)")
            }
        }
    }
}

impl core::error::Error for ForwardError {}

/// Runs `token` at `pos` through the model, extending the KV cache at `pos`; if `logits`, also
/// computes the logits `(V)` for the next token into [`RunState::logits`] (else they keep the
/// previous step's: for the prompt positions whose prediction nobody reads, where the `(V, C)` head
/// would cost as much as several blocks). Positions `0..pos` must already be in the cache. The rows
/// of large matrices are handed out by `split` (to several threads, on the desktop; [`Serial`] on
/// the device), with the same bits whatever the split. The run state's [`Math`] chooses the f32
/// pass or the integer one ([`crate::integer`]).
///
/// [`Serial`]: crate::split::Serial
pub fn forward(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    token: u32,
    pos: usize,
    split: &dyn RowSplit,
    logits: bool,
) -> Result<(), ForwardError> {
    check_step(model, s, token, pos)?;
    let math = s.math();
    let (acts, cache, att) = s.parts();
    match math {
        #[cfg(feature = "integer-only")]
        Math::Float => return Err(ForwardError::FloatNotBuilt),
        #[cfg(not(feature = "integer-only"))]
        Math::Float => pass(model, acts, cache, att, &[token], pos, split, logits),
        #[cfg(feature = "float-only")]
        Math::Integer => return Err(ForwardError::IntegerNotBuilt),
        #[cfg(not(feature = "float-only"))]
        Math::Integer => {
            if let Some(ty) = crate::integer::unsupported_weights(model) {
                return Err(ForwardError::IntegerNeedsQ8_0 { ty });
            }
            crate::integer::pass(model, acts, cache, att, token, pos, split, logits);
        }
    }
    Ok(())
}

/// Refuses a step that [`forward`] cannot run: a state sized for another model, a token outside
/// the vocabulary, a position past the context.
pub(crate) fn check_step(
    model: &Model<'_>,
    s: &RunState<'_>,
    token: u32,
    pos: usize,
) -> Result<(), ForwardError> {
    let hp = model.hparams;
    if *s.hparams() != hp {
        return Err(ForwardError::StateMismatch);
    }
    if token as usize >= hp.n_vocab {
        return Err(ForwardError::TokenOutOfRange { token, n_vocab: hp.n_vocab });
    }
    if pos >= hp.n_ctx {
        return Err(ForwardError::PositionOutOfRange { pos, n_ctx: hp.n_ctx });
    }
    Ok(())
}

/// `out(t) = layer_norm(x(t))` for each row `t` of `C` values.
fn layer_norm_rows(out: &mut [f32], x: &[f32], ln: &Norm<'_>, c: usize, eps: f32) {
    for (out_t, x_t) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
        layer_norm(out_t, x_t, ln.weight, ln.bias, eps);
    }
}

/// `B = tokens.len()` tokens (at most the rows of `a`, already checked) at positions `pos..`
/// through the embeddings and every block, extending the KV cache, then through the head into
/// `a.logits` if `logits`. Matrix products run over all rows at once (each row with the bits of a
/// matrix-vector product), attention one position after another.
#[allow(clippy::too_many_arguments)]
pub(crate) fn pass(
    model: &Model<'_>,
    a: &mut Activations<'_>,
    cache: &mut KvCache<'_>,
    att: &mut [f32],
    tokens: &[u32],
    pos: usize,
    split: &dyn RowSplit,
    logits: bool,
) {
    let hp = model.hparams;
    let (b, c, f) = (tokens.len(), hp.n_embd, hp.n_ff);
    let (Some(x), Some(xb), Some(xb2), Some(qkv), Some(hb)) = (
        a.x.get_mut(..b * c),
        a.xb.get_mut(..b * c),
        a.xb2.get_mut(..b * c),
        a.qkv.get_mut(..b * 3 * c),
        a.hb.get_mut(..b * f),
    ) else {
        return;
    };
    let xq = &mut *a.xq;

    // x(t) = wte[token(t)] + wpe[pos + t]
    for (t, ((&tok, x_t), xb_t)) in
        tokens.iter().zip(x.chunks_exact_mut(c)).zip(xb.chunks_exact_mut(c)).enumerate()
    {
        model.wte.row_to_f32(x_t, tok as usize);
        model.wpe.row_to_f32(xb_t, pos + t);
        add(x_t, xb_t);
    }

    for (l, w) in model.layers().iter().enumerate() {
        // Attention: x += c_proj(attn(c_attn(ln_1(x))))
        layer_norm_rows(xb, x, &w.ln_1, c, hp.eps);
        matmul(qkv, &w.c_attn.weight, Some(w.c_attn.bias), xb, xq, split);
        for (t, (qkv_t, xb_t)) in qkv.chunks_exact(3 * c).zip(xb.chunks_exact_mut(c)).enumerate() {
            let (q, kv) = qkv_t.split_at(c);
            let (k, v) = kv.split_at(c);
            cache.store(l, pos + t, k, v);
            attention(xb_t, att, xq, q, cache, l, pos + t, hp.n_head);
        }
        matmul(xb2, &w.attn_c_proj.weight, Some(w.attn_c_proj.bias), xb, xq, split);
        add(x, xb2);
        // MLP: x += c_proj(gelu(c_fc(ln_2(x))))
        layer_norm_rows(xb, x, &w.ln_2, c, hp.eps);
        matmul(hb, &w.c_fc.weight, None, xb, xq, split);
        for hb_t in hb.chunks_exact_mut(f) {
            bias_gelu(hb_t, w.c_fc.bias);
        }
        matmul(xb2, &w.mlp_c_proj.weight, Some(w.mlp_c_proj.bias), hb, xq, split);
        add(x, xb2);
    }
    if logits {
        head(model, a, b, split);
    }
}

/// `logits(t) = lm_head(ln_f(x(t)))` for the first `b` rows.
fn head(model: &Model<'_>, a: &mut Activations<'_>, b: usize, split: &dyn RowSplit) {
    let hp = model.hparams;
    let (c, v) = (hp.n_embd, hp.n_vocab);
    let (Some(x), Some(xb), Some(logits)) =
        (a.x.get(..b * c), a.xb.get_mut(..b * c), a.logits.get_mut(..b * v))
    else {
        return;
    };
    layer_norm_rows(xb, x, &model.ln_f, c, hp.eps);
    matmul(logits, &model.lm_head, None, xb, a.xq, split);
}

/// Test shorthand: [`forward`] on one thread, with the logits, returned as a vector.
#[cfg(test)]
pub(crate) fn step_logits(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    token: u32,
    pos: usize,
) -> Result<Vec<f32>, ForwardError> {
    forward(model, s, token, pos, &crate::split::Serial, true)?;
    Ok(s.logits().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_model::{load, logits_by_steps, Spec};
    use crate::split::Serial;
    use crate::state::KvType;

    fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    const TOKENS: [u32; 6] = [3, 17, 0, 39, 8, 8];

    #[test]
    fn forward_is_bit_reproducible() {
        let blob = Spec::gpt2(8).build();
        let a = logits_by_steps(&blob, KvType::Q8_0, &TOKENS);
        let b = logits_by_steps(&blob, KvType::Q8_0, &TOKENS);
        assert_eq!(a, b);
        assert!(a.iter().flatten().all(|x| x.is_finite()));
    }

    #[test]
    fn f16_and_q8_0_weights_track_f32_weights() {
        let f = logits_by_steps(&Spec::gpt2(0).build(), KvType::F32, &TOKENS);
        let h = logits_by_steps(&Spec::gpt2(1).build(), KvType::F32, &TOKENS);
        let q = logits_by_steps(&Spec::gpt2(8).build(), KvType::F32, &TOKENS);
        // The synthetic weights are themselves rounded differently per type (f16: 2^-11 relative,
        // Q8_0: 1/254 of a block's range), so only closeness is expected, not equality.
        assert!(max_abs_diff(&f, &h) < 0.02, "f16 {}", max_abs_diff(&f, &h));
        assert!(max_abs_diff(&f, &q) < 0.25, "q8_0 {}", max_abs_diff(&f, &q));
    }

    #[test]
    fn kv_cache_types_track_f32_cache() {
        let blob = Spec::gpt2(0).build();
        let f = logits_by_steps(&blob, KvType::F32, &TOKENS);
        let h = logits_by_steps(&blob, KvType::F16, &TOKENS);
        let q = logits_by_steps(&blob, KvType::Q8_0, &TOKENS);
        assert!(max_abs_diff(&f, &h) < 0.01, "f16 {}", max_abs_diff(&f, &h));
        assert!(max_abs_diff(&f, &q) < 0.1, "q8_0 {}", max_abs_diff(&f, &q));
        // The first position attends to itself only, with weight exactly 1, in every cache type
        // the result differs only by the value's rounding.
        assert_ne!(f, q);
    }

    #[test]
    fn skipping_the_head_leaves_the_same_cache_and_next_logits() {
        let blob = Spec::gpt2(8).build();
        let m = load(&blob);
        let full = logits_by_steps(&blob, KvType::Q8_0, &TOKENS);
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, KvType::Q8_0)];
        let mut s = RunState::new(&m.hparams, KvType::Q8_0, &mut buf).unwrap();
        let last = TOKENS.len() - 1;
        for (p, &t) in TOKENS[..last].iter().enumerate() {
            forward(&m, &mut s, t, p, &Serial, false).unwrap();
        }
        assert_eq!(step_logits(&m, &mut s, TOKENS[last], last).unwrap(), full[last]);
        assert_eq!(
            forward(&m, &mut s, 1, 8, &Serial, false).unwrap_err(),
            ForwardError::PositionOutOfRange { pos: 8, n_ctx: 8 }
        );
    }

    #[test]
    fn rejects_token_outside_vocabulary_and_position_past_context() {
        let blob = Spec::gpt2(0).build();
        let m = load(&blob);
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, KvType::F32)];
        let mut s = RunState::new(&m.hparams, KvType::F32, &mut buf).unwrap();
        assert_eq!(
            step_logits(&m, &mut s, 40, 0).unwrap_err(),
            ForwardError::TokenOutOfRange { token: 40, n_vocab: 40 }
        );
        assert_eq!(
            step_logits(&m, &mut s, 1, 8).unwrap_err(),
            ForwardError::PositionOutOfRange { pos: 8, n_ctx: 8 }
        );
        assert_eq!(
            step_logits(&m, &mut s, u32::MAX, 0).unwrap_err().to_string(),
            "token id 4294967295 is outside the vocabulary of 40 tokens"
        );
    }

    #[test]
    fn rejects_state_sized_for_another_model() {
        let blob = Spec::gpt2(0).build();
        let m = load(&blob);
        let mut other = m.hparams;
        other.n_ctx = 4;
        let mut buf = vec![0u8; RunState::bytes_needed(&other, KvType::F32)];
        let mut s = RunState::new(&other, KvType::F32, &mut buf).unwrap();
        assert_eq!(step_logits(&m, &mut s, 1, 0).unwrap_err(), ForwardError::StateMismatch);
    }
}
