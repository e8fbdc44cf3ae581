//! One GPT-2 forward step: a token at a position in, next-token logits out, the KV cache extended.
//!
//! Letters: `V` vocabulary, `C` width, `F` MLP width, `L` layers. Exactly what Hugging Face's
//! `GPT2LMHeadModel` computes, one position at a time.

use core::fmt;

use crate::model::Model;
use crate::ops::{add, gelu, layer_norm, matvec_split};
use crate::split::{RowSplit, Serial};
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
        }
    }
}

impl core::error::Error for ForwardError {}

/// Runs `token` at `pos` through the model, extending the KV cache at `pos`, and returns the
/// logits `(V)` for the next token. Positions `0..pos` must already be in the cache.
pub fn forward<'s>(
    model: &Model<'_>,
    s: &'s mut RunState<'_>,
    token: u32,
    pos: usize,
) -> Result<&'s [f32], ForwardError> {
    forward_split(model, s, token, pos, &Serial)
}

/// [`forward`] with the rows of large matrices handed out by `split` (to several threads, on the
/// desktop); the same bits as [`forward`].
pub fn forward_split<'s>(
    model: &Model<'_>,
    s: &'s mut RunState<'_>,
    token: u32,
    pos: usize,
    split: &dyn RowSplit,
) -> Result<&'s [f32], ForwardError> {
    forward_blocks(model, s, token, pos, split)?;
    // logits = lm_head(ln_f(x))
    let hp = model.hparams;
    layer_norm(s.xb, s.x, model.ln_f.weight, model.ln_f.bias, hp.eps);
    matvec_split(s.logits, &model.lm_head, None, s.xb, s.xq, split);
    Ok(s.logits)
}

/// [`forward`] without the output head: extends the KV cache at `pos` and computes no logits (the
/// logits buffer keeps the previous step's). For the prompt positions whose prediction nobody
/// reads, where the `(V, C)` head would cost as much as several blocks.
pub fn forward_without_logits(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    token: u32,
    pos: usize,
) -> Result<(), ForwardError> {
    forward_blocks(model, s, token, pos, &Serial)
}

/// [`forward_without_logits`] with the rows of large matrices handed out by `split`.
pub fn forward_without_logits_split(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    token: u32,
    pos: usize,
    split: &dyn RowSplit,
) -> Result<(), ForwardError> {
    forward_blocks(model, s, token, pos, split)
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

/// The embeddings and every block: leaves the residual stream `x(C)` of `token` at `pos` in `s`.
fn forward_blocks(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    token: u32,
    pos: usize,
    split: &dyn RowSplit,
) -> Result<(), ForwardError> {
    let hp = model.hparams;
    check_step(model, s, token, pos)?;

    // x = wte[token] + wpe[pos]
    model.wte.row_to_f32(s.x, token as usize);
    model.wpe.row_to_f32(s.xb, pos);
    add(s.x, s.xb);

    for (l, w) in model.layers().iter().enumerate() {
        // Attention: x += c_proj(attn(c_attn(ln_1(x))))
        layer_norm(s.xb, s.x, w.ln_1.weight, w.ln_1.bias, hp.eps);
        matvec_split(s.qkv, &w.c_attn.weight, Some(w.c_attn.bias), s.xb, s.xq, split);
        s.store_kv(l, pos);
        s.attend(l, pos);
        matvec_split(s.xb2, &w.attn_c_proj.weight, Some(w.attn_c_proj.bias), s.xb, s.xq, split);
        add(s.x, s.xb2);
        // MLP: x += c_proj(gelu(c_fc(ln_2(x))))
        layer_norm(s.xb, s.x, w.ln_2.weight, w.ln_2.bias, hp.eps);
        matvec_split(s.hb, &w.c_fc.weight, Some(w.c_fc.bias), s.xb, s.xq, split);
        gelu(s.hb);
        matvec_split(s.xb2, &w.mlp_c_proj.weight, Some(w.mlp_c_proj.bias), s.hb, s.xq, split);
        add(s.x, s.xb2);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::Gguf;
    use crate::model::test_model::Spec;
    use crate::state::KvType;

    fn logits_for(blob: &[u8], kv: KvType, tokens: &[u32]) -> Vec<Vec<f32>> {
        let g = Gguf::parse(blob).unwrap();
        let m = Model::load(&g).unwrap();
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        tokens
            .iter()
            .enumerate()
            .map(|(p, &t)| forward(&m, &mut s, t, p).unwrap().to_vec())
            .collect()
    }

    fn max_abs_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
        a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    const TOKENS: [u32; 6] = [3, 17, 0, 39, 8, 8];

    #[test]
    fn forward_is_bit_reproducible() {
        let blob = Spec::gpt2(8).build();
        let a = logits_for(&blob, KvType::Q8_0, &TOKENS);
        let b = logits_for(&blob, KvType::Q8_0, &TOKENS);
        assert_eq!(a, b);
        assert!(a.iter().flatten().all(|x| x.is_finite()));
    }

    #[test]
    fn f16_and_q8_0_weights_track_f32_weights() {
        let f = logits_for(&Spec::gpt2(0).build(), KvType::F32, &TOKENS);
        let h = logits_for(&Spec::gpt2(1).build(), KvType::F32, &TOKENS);
        let q = logits_for(&Spec::gpt2(8).build(), KvType::F32, &TOKENS);
        // The synthetic weights are themselves rounded differently per type (f16: 2^-11 relative,
        // Q8_0: 1/254 of a block's range), so only closeness is expected, not equality.
        assert!(max_abs_diff(&f, &h) < 0.02, "f16 {}", max_abs_diff(&f, &h));
        assert!(max_abs_diff(&f, &q) < 0.25, "q8_0 {}", max_abs_diff(&f, &q));
    }

    #[test]
    fn kv_cache_types_track_f32_cache() {
        let blob = Spec::gpt2(0).build();
        let f = logits_for(&blob, KvType::F32, &TOKENS);
        let h = logits_for(&blob, KvType::F16, &TOKENS);
        let q = logits_for(&blob, KvType::Q8_0, &TOKENS);
        assert!(max_abs_diff(&f, &h) < 0.01, "f16 {}", max_abs_diff(&f, &h));
        assert!(max_abs_diff(&f, &q) < 0.1, "q8_0 {}", max_abs_diff(&f, &q));
        // The first position attends to itself only, with weight exactly 1, in every cache type
        // the result differs only by the value's rounding.
        assert_ne!(f, q);
    }

    #[test]
    fn skipping_the_head_leaves_the_same_cache_and_next_logits() {
        let blob = Spec::gpt2(8).build();
        let g = Gguf::parse(&blob).unwrap();
        let m = Model::load(&g).unwrap();
        let full = logits_for(&blob, KvType::Q8_0, &TOKENS);
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, KvType::Q8_0)];
        let mut s = RunState::new(&m.hparams, KvType::Q8_0, &mut buf).unwrap();
        let last = TOKENS.len() - 1;
        for (p, &t) in TOKENS[..last].iter().enumerate() {
            forward_without_logits(&m, &mut s, t, p).unwrap();
        }
        assert_eq!(forward(&m, &mut s, TOKENS[last], last).unwrap(), &full[last][..]);
        assert_eq!(
            forward_without_logits(&m, &mut s, 1, 8).unwrap_err(),
            ForwardError::PositionOutOfRange { pos: 8, n_ctx: 8 }
        );
    }

    #[test]
    fn rejects_token_outside_vocabulary_and_position_past_context() {
        let blob = Spec::gpt2(0).build();
        let g = Gguf::parse(&blob).unwrap();
        let m = Model::load(&g).unwrap();
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, KvType::F32)];
        let mut s = RunState::new(&m.hparams, KvType::F32, &mut buf).unwrap();
        assert_eq!(
            forward(&m, &mut s, 40, 0).unwrap_err(),
            ForwardError::TokenOutOfRange { token: 40, n_vocab: 40 }
        );
        assert_eq!(
            forward(&m, &mut s, 1, 8).unwrap_err(),
            ForwardError::PositionOutOfRange { pos: 8, n_ctx: 8 }
        );
        assert_eq!(
            forward(&m, &mut s, u32::MAX, 0).unwrap_err().to_string(),
            "token id 4294967295 is outside the vocabulary of 40 tokens"
        );
    }

    #[test]
    fn rejects_state_sized_for_another_model() {
        let blob = Spec::gpt2(0).build();
        let g = Gguf::parse(&blob).unwrap();
        let m = Model::load(&g).unwrap();
        let mut other = m.hparams;
        other.n_ctx = 4;
        let mut buf = vec![0u8; RunState::bytes_needed(&other, KvType::F32)];
        let mut s = RunState::new(&other, KvType::F32, &mut buf).unwrap();
        assert_eq!(forward(&m, &mut s, 1, 0).unwrap_err(), ForwardError::StateMismatch);
    }
}
