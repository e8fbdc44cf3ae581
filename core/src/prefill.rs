//! Batched prefill: the prompt's positions through the model as one batch, so that each matrix
//! is read once for up to `B` tokens (matrix-matrix work) instead of once per token.
//!
//! Letters: `B` batch (tokens per pass), `V` vocabulary, `C` width, `F` MLP width.
//!
//! The block is [`forward`]'s own, run over `B` rows: each (row, token) dot product is
//! [`ops::matvec`]'s, layer norms, GELU and residual additions run per token or element-wise, and
//! attention runs position after position. So the KV cache and the logits are bit-identical to
//! token-by-token prefill.
//!
//! The batch buffers are not part of [`RunState`]: they live in a separate storage, sized by
//! [`Prefill::bytes_needed`], which only the desktop allocates. The device keeps the per-token
//! path and pays nothing for this.
//!
//! [`forward`]: crate::forward::forward
//! [`ops::matvec`]: crate::ops::matvec

use core::fmt;

use crate::activations::{ActivationLens, Activations};
use crate::arena::{Arena, ALIGN_SLACK};
use crate::forward::{check_step, forward, pass, ForwardError};
use crate::integer::Math;
use crate::model::{HParams, Model};
use crate::split::RowSplit;
use crate::state::RunState;

/// Why a prefill scratch cannot be built in the storage given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrefillError {
    /// A batch of zero tokens.
    ZeroBatch,
    /// The storage is smaller than [`Prefill::bytes_needed`].
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
}

impl fmt::Display for PrefillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroBatch => write!(f, "a prefill batch needs at least one token"),
            Self::TooSmall { needed, available } => {
                write!(f, "prefill scratch needs {needed} bytes of storage, only {available} given")
            }
        }
    }
}

impl core::error::Error for PrefillError {}

/// The activations of a batch of up to `B` positions, in storage borrowed from the caller.
pub struct Prefill<'p> {
    /// The hyper-parameters the scratch was sized for.
    hparams: HParams,
    /// Positions per pass, `B`.
    batch: usize,
    /// The activations and logits of `B` rows.
    acts: Activations<'p>,
}

impl<'p> Prefill<'p> {
    /// Exact bytes of storage a scratch for batches of `batch` positions of `hp` needs, including
    /// [`ALIGN_SLACK`]. Saturates at `usize::MAX` rather than overflowing.
    pub const fn bytes_needed(hp: &HParams, batch: usize) -> usize {
        ALIGN_SLACK.saturating_add(ActivationLens::new(hp, batch).bytes())
    }

    /// Carves a scratch for batches of `batch` positions of `hp` out of `storage`, which must
    /// hold at least [`Prefill::bytes_needed`] bytes.
    pub fn new(hp: &HParams, batch: usize, storage: &'p mut [u8]) -> Result<Self, PrefillError> {
        if batch == 0 {
            return Err(PrefillError::ZeroBatch);
        }
        let needed = Self::bytes_needed(hp, batch);
        let available = storage.len();
        if available < needed {
            return Err(PrefillError::TooSmall { needed, available });
        }
        let acts = Activations::carve(&mut Arena::new(storage), &ActivationLens::new(hp, batch))
            .ok_or(PrefillError::TooSmall { needed, available })?;
        Ok(Self { hparams: *hp, batch, acts })
    }

    /// Positions per pass.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// The hyper-parameters this scratch was sized for.
    pub fn hparams(&self) -> &HParams {
        &self.hparams
    }
}

/// What receives each position's logits: `(i, logits(V))` for `tokens[i]`.
pub type OnLogits<'f> = dyn FnMut(usize, &[f32]) + 'f;

/// Runs `tokens` at positions `pos..pos + tokens.len()` through the model, [`Prefill::batch`]
/// positions per pass, extending the KV cache: what [`forward`] does for each in turn, with the
/// same bits in the cache. With `on_logits`, also computes every position's logits `(V)` and hands
/// them to `on_logits(i, logits)` for `tokens[i]`, in order; the run state's logits are then the
/// last position's, as after [`forward`]. Without, no logits are computed. A run state of
/// [`Math::Integer`] runs its positions one at a time through [`forward`] (the scratch unused).
///
/// [`forward`]: crate::forward::forward
pub fn prefill(
    model: &Model<'_>,
    s: &mut RunState<'_>,
    p: &mut Prefill<'_>,
    tokens: &[u32],
    pos: usize,
    split: &dyn RowSplit,
    mut on_logits: Option<&mut OnLogits<'_>>,
) -> Result<(), ForwardError> {
    if p.hparams != model.hparams {
        return Err(ForwardError::StateMismatch);
    }
    // Every position is checked before the cache changes.
    for (i, &t) in tokens.iter().enumerate() {
        check_step(model, s, t, pos.saturating_add(i))?;
    }
    // Batches are the float path's: the integer path runs one position at a time, as `forward`.
    if s.math() == Math::Integer {
        for (i, &t) in tokens.iter().enumerate() {
            forward(model, s, t, pos + i, split, on_logits.is_some())?;
            if let Some(f) = on_logits.as_mut() {
                f(i, s.logits());
            }
        }
        return Ok(());
    }
    if cfg!(feature = "integer-only") {
        return Err(ForwardError::FloatNotBuilt);
    }
    let batch = p.batch.max(1);
    let v = model.hparams.n_vocab;
    for (k, chunk) in tokens.chunks(batch).enumerate() {
        let (state_acts, cache, att) = s.parts();
        pass(model, &mut p.acts, cache, att, chunk, pos + k * batch, split, on_logits.is_some());
        if let Some(f) = on_logits.as_mut() {
            let mut rows = p.acts.logits.chunks_exact(v).take(chunk.len());
            for (i, l) in rows.clone().enumerate() {
                f(k * batch + i, l);
            }
            if let Some(last) = rows.next_back() {
                for (o, &l) in state_acts.logits.iter_mut().zip(last) {
                    *o = l;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::{forward, step_logits};
    use crate::model::test_model::{load, logits_by_steps, Spec};
    use crate::split::{Pieces, Serial};
    use crate::state::KvType;

    const TOKENS: [u32; 7] = [3, 17, 0, 39, 8, 8, 21];

    /// The run state's storage after `prompt` by per-token steps (head at the last position
    /// only) then one more step with `next`, and every logits vector of those two steps.
    fn by_steps(blob: &[u8], kv: KvType, prompt: &[u32], next: u32) -> (Vec<u8>, Vec<Vec<f32>>) {
        let m = load(blob);
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let (last, head) = prompt.split_last().unwrap();
        for (p, &t) in head.iter().enumerate() {
            forward(&m, &mut s, t, p, &Serial, false).unwrap();
        }
        let a = step_logits(&m, &mut s, *last, head.len()).unwrap();
        let b = step_logits(&m, &mut s, next, prompt.len()).unwrap();
        (buf, vec![a, b])
    }

    /// The same with the prompt's head prefilled in batches of `batch`, and every matrix's rows
    /// handed out by `split`, in the prefill and in the two steps.
    fn batched(
        blob: &[u8],
        kv: KvType,
        prompt: &[u32],
        next: u32,
        batch: usize,
        split: &dyn RowSplit,
    ) -> (Vec<u8>, Vec<Vec<f32>>) {
        let m = load(blob);
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let mut pbuf = vec![0u8; Prefill::bytes_needed(&m.hparams, batch)];
        let mut p = Prefill::new(&m.hparams, batch, &mut pbuf).unwrap();
        let (last, head) = prompt.split_last().unwrap();
        prefill(&m, &mut s, &mut p, head, 0, split, None).unwrap();
        forward(&m, &mut s, *last, head.len(), split, true).unwrap();
        let a = s.logits().to_vec();
        forward(&m, &mut s, next, prompt.len(), split, true).unwrap();
        let b = s.logits().to_vec();
        (buf, vec![a, b])
    }

    #[test]
    fn batched_prefill_leaves_the_same_bits_as_per_token_steps() {
        // Q8_0, F16 and F32 weights; every KV type; batches smaller than, equal to and larger
        // than the prompt's head; the whole run state (cache included) compared byte for byte.
        for ty in [8, 1, 0] {
            let blob = Spec::gpt2(ty).build();
            for kv in [KvType::Q8_0, KvType::F16, KvType::F32] {
                let expected = by_steps(&blob, kv, &TOKENS, 5);
                for batch in [1, 2, 4, 6, 7, 64] {
                    for split in [&Serial as &dyn RowSplit, &Pieces] {
                        let got = batched(&blob, kv, &TOKENS, 5, batch, split);
                        assert!(got.1 == expected.1, "type {ty}, {kv:?}, batch {batch}: logits");
                        assert!(got.0 == expected.0, "type {ty}, {kv:?}, batch {batch}: state");
                    }
                }
            }
        }
    }

    #[test]
    fn prefill_logits_are_forwards_logits_at_every_position() {
        let blob = Spec::gpt2(8).build();
        let m = load(&blob);
        let kv = KvType::Q8_0;
        let expected = logits_by_steps(&blob, kv, &TOKENS);
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let mut pbuf = vec![0u8; Prefill::bytes_needed(&m.hparams, 3)];
        let mut p = Prefill::new(&m.hparams, 3, &mut pbuf).unwrap();
        let mut got = Vec::new();
        let mut keep = |i: usize, l: &[f32]| {
            assert_eq!(i, got.len());
            got.push(l.to_vec());
        };
        prefill(&m, &mut s, &mut p, &TOKENS, 0, &Serial, Some(&mut keep)).unwrap();
        assert!(got == expected);
        assert!(s.logits() == &expected[TOKENS.len() - 1][..]);
    }

    #[test]
    fn refuses_bad_tokens_positions_and_scratch_before_touching_the_cache() {
        let blob = Spec::gpt2(8).build();
        let m = load(&blob);
        let kv = KvType::F32;
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let mut pbuf = vec![0u8; Prefill::bytes_needed(&m.hparams, 4)];
        let mut p = Prefill::new(&m.hparams, 4, &mut pbuf).unwrap();
        assert_eq!(
            prefill(&m, &mut s, &mut p, &[1, 2, 40], 0, &Serial, None),
            Err(ForwardError::TokenOutOfRange { token: 40, n_vocab: 40 })
        );
        // T = 8: positions 6, 7, 8.
        assert_eq!(
            prefill(&m, &mut s, &mut p, &[1, 2, 3], 6, &Serial, None),
            Err(ForwardError::PositionOutOfRange { pos: 8, n_ctx: 8 })
        );
        assert!(buf.iter().all(|&b| b == 0), "the cache was written before the refusal");

        let mut other = m.hparams;
        other.n_ctx = 4;
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let mut obuf = vec![0u8; Prefill::bytes_needed(&other, 4)];
        let mut o = Prefill::new(&other, 4, &mut obuf).unwrap();
        assert_eq!(
            prefill(&m, &mut s, &mut o, &[1], 0, &Serial, None),
            Err(ForwardError::StateMismatch)
        );
    }

    #[test]
    fn scratch_refuses_zero_batch_and_short_storage() {
        let blob = Spec::gpt2(8).build();
        let hp = load(&blob).hparams;
        let mut buf = vec![0u8; Prefill::bytes_needed(&hp, 2)];
        assert_eq!(Prefill::new(&hp, 0, &mut buf).err(), Some(PrefillError::ZeroBatch));
        let needed = Prefill::bytes_needed(&hp, 3);
        assert_eq!(
            Prefill::new(&hp, 3, &mut buf).err(),
            Some(PrefillError::TooSmall { needed, available: buf.len() })
        );
        assert_eq!(
            PrefillError::TooSmall { needed: 10, available: 2 }.to_string(),
            "prefill scratch needs 10 bytes of storage, only 2 given"
        );
        // Any start address: the slack is counted.
        let mut big = vec![0u8; needed + 1];
        assert!(Prefill::new(&hp, 3, &mut big[1..]).is_ok());
    }
}
