//! The run state: KV cache, activations and logits, carved out of storage the caller provides.
//!
//! Letters: `V` vocabulary, `T` context, `C` width, `F` MLP width, `L` layers.
//!
//! The size is known before anything runs: [`RunState::bytes_needed`] is a `const fn` of the
//! hyper-parameters and the KV element type, so the firmware can size a `static` at build time and
//! the desktop can allocate exactly that. The storage may start at any address: up to
//! [`ALIGN_SLACK`] bytes at its start are skipped to align the f32 buffers, and are counted in
//! [`RunState::bytes_needed`].

use core::fmt;

use crate::activations::{ActivationLens, Activations};
use crate::arena::{bytes_of, Arena};
use crate::integer::Math;
use crate::kv_cache::KvCache;
use crate::model::HParams;
use crate::quant::QK8_0;

pub use crate::arena::ALIGN_SLACK;
/// The KV cache's element type, which sizes a run state.
pub use crate::kv_cache::KvType;

/// Why a run state cannot be built in the storage given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StateError {
    /// The storage is smaller than [`RunState::bytes_needed`].
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
    /// A Q8_0 KV cache needs the width to be a whole number of 32-value blocks.
    KvWidthNotBlocks {
        /// The width `C`.
        n_embd: usize,
    },
    /// The integer path keeps its KV cache in int8 blocks: it needs [`KvType::Q8_0`].
    IntegerNeedsQ8_0Kv {
        /// The KV type asked for.
        kv: KvType,
    },
    /// This build's KV cache cannot hold that type ([`KvType::is_built`]).
    KvTypeNotBuilt {
        /// The type asked for.
        kv: KvType,
    },
    /// This build of mote-core has no integer path (its `float-only` feature).
    IntegerNotBuilt,
    /// This build of mote-core has no float path (its `integer-only` feature).
    FloatNotBuilt,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooSmall { needed, available } => write!(
                f,
                "run state needs {needed} bytes of storage, only {available} given"
            ),
            Self::KvWidthNotBlocks { n_embd } => write!(
                f,
                "a q8_0 KV cache needs the width to be a multiple of {QK8_0}, the model's is {n_embd}"
            ),
            Self::IntegerNeedsQ8_0Kv { kv } => write!(
                f,
                "the integer path needs a q8_0 KV cache, not {}",
                kv.name()
            ),
            Self::KvTypeNotBuilt { kv } => write!(
                f,
                "this build holds a q8_0 KV cache only (mote-core's kv-q8_0-only feature), not {}",
                kv.name()
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

impl core::error::Error for StateError {}

/// The mutable state of one generation: activations of the current position, logits, and the KV
/// cache of every position so far, all in storage borrowed from the caller.
pub struct RunState<'s> {
    /// The hyper-parameters the state was sized for.
    hparams: HParams,
    /// KV element type.
    kv: KvType,
    /// The arithmetic of the forward pass.
    math: Math,
    /// Attention scores of one head over the positions so far, `(T)`.
    att: &'s mut [f32],
    /// The token fed at each position so far, `(T)`: the history samplers look back over.
    tokens: &'s mut [u32],
    /// Keys and values, `(L, T, C)` each.
    cache: KvCache<'s>,
    /// The current position's activations and logits, one row.
    acts: Activations<'s>,
}

impl<'s> RunState<'s> {
    /// Exact bytes of storage a run state needs for `hp` with a KV cache of `kv`, including
    /// [`ALIGN_SLACK`]. Saturates at `usize::MAX` rather than overflowing.
    pub const fn bytes_needed(hp: &HParams, kv: KvType) -> usize {
        Self::bytes_needed_beams(hp, kv, 1)
    }

    /// Exact bytes of storage a run state whose KV cache holds `n_beams` beams needs (see
    /// [`crate::beam`]), including [`ALIGN_SLACK`]: one beam is [`RunState::bytes_needed`].
    pub const fn bytes_needed_beams(hp: &HParams, kv: KvType, n_beams: usize) -> usize {
        ALIGN_SLACK
            .saturating_add(bytes_of::<f32>(hp.n_ctx)) // att
            .saturating_add(bytes_of::<u32>(hp.n_ctx)) // tokens
            .saturating_add(KvCache::bytes_needed_beams(hp, kv, n_beams))
            .saturating_add(ActivationLens::new(hp, 1).bytes())
    }

    /// Exact bytes of storage a run state for `hp`, a `kv` cache and `math` needs: the integer path
    /// keeps its `i32` values in the f32 buffers and its int8 blocks in the Q8_0 ones, so this is
    /// [`RunState::bytes_needed`] for both.
    pub const fn bytes_needed_math(hp: &HParams, kv: KvType, math: Math) -> usize {
        match math {
            Math::Float | Math::Integer => Self::bytes_needed(hp, kv),
        }
    }

    /// [`RunState::new`] for the arithmetic `math`: the integer path needs a Q8_0 KV cache (and a
    /// build without the `float-only` feature), the float path a build without `integer-only`.
    pub fn new_math(
        hp: &HParams,
        kv: KvType,
        math: Math,
        storage: &'s mut [u8],
    ) -> Result<Self, StateError> {
        if math == Math::Integer && cfg!(feature = "float-only") {
            return Err(StateError::IntegerNotBuilt);
        }
        if math == Math::Float && cfg!(feature = "integer-only") {
            return Err(StateError::FloatNotBuilt);
        }
        if math == Math::Integer && kv != KvType::Q8_0 {
            return Err(StateError::IntegerNeedsQ8_0Kv { kv });
        }
        let mut state = Self::new(hp, kv, storage)?;
        state.math = math;
        Ok(state)
    }

    /// Carves a run state for `hp` with a `kv` cache out of `storage`, which must hold at least
    /// [`RunState::bytes_needed`] bytes. The state starts empty (position 0).
    pub fn new(hp: &HParams, kv: KvType, storage: &'s mut [u8]) -> Result<Self, StateError> {
        Self::new_beams(hp, kv, 1, storage)
    }

    /// [`RunState::new`] with a KV cache for `n_beams` (at least 1) beams, in storage of at least
    /// [`RunState::bytes_needed_beams`] bytes.
    pub(crate) fn new_beams(
        hp: &HParams,
        kv: KvType,
        n_beams: usize,
        storage: &'s mut [u8],
    ) -> Result<Self, StateError> {
        if !kv.is_built() {
            return Err(StateError::KvTypeNotBuilt { kv });
        }
        if kv == KvType::Q8_0 && hp.n_embd % QK8_0 != 0 {
            return Err(StateError::KvWidthNotBlocks { n_embd: hp.n_embd });
        }
        let needed = Self::bytes_needed_beams(hp, kv, n_beams);
        let available = storage.len();
        if available < needed {
            return Err(StateError::TooSmall { needed, available });
        }
        // 4-byte buffers first (the caches end on a multiple of 4 bytes: two of them), the Q8_0
        // blocks of the activations last.
        let mut arena = Arena::new(storage);
        let too_small = StateError::TooSmall { needed, available };
        let mut state = Self {
            hparams: *hp,
            kv,
            math: Math::Float,
            att: arena.take(hp.n_ctx).ok_or(too_small)?,
            tokens: arena.take(hp.n_ctx).ok_or(too_small)?,
            cache: KvCache::carve_beams(&mut arena, hp, kv, n_beams).ok_or(too_small)?,
            acts: Activations::carve(&mut arena, &ActivationLens::new(hp, 1)).ok_or(too_small)?,
        };
        // The beams' position maps are bytes: after everything that needs alignment.
        state.cache.carve_maps(&mut arena).ok_or(too_small)?;
        state.clear();
        Ok(state)
    }

    /// Zeroes every buffer (a fresh state; caches are only read at positions already written, so
    /// this is for reproducibility of the bytes, not correctness).
    pub fn clear(&mut self) {
        self.att.fill(0.0);
        self.tokens.fill(0);
        self.cache.clear();
        self.acts.clear();
    }

    /// The hyper-parameters this state was sized for.
    pub fn hparams(&self) -> &HParams {
        &self.hparams
    }

    /// The KV cache element type.
    pub fn kv_type(&self) -> KvType {
        self.kv
    }

    /// The arithmetic of the forward pass.
    pub fn math(&self) -> Math {
        self.math
    }

    /// The logits of the last forward step, `(V)`.
    pub fn logits(&self) -> &[f32] {
        self.acts.logits
    }

    /// Records `token` as fed at `pos` (ignored past the context).
    pub(crate) fn record_token(&mut self, pos: usize, token: u32) {
        if let Some(t) = self.tokens.get_mut(pos) {
            *t = token;
        }
    }

    /// The logits of the last step, for a sampler to work in, and the tokens fed at positions
    /// `0..len`, `((V), (len))`.
    pub(crate) fn logits_and_history(&mut self, len: usize) -> (&mut [f32], &[u32]) {
        let len = len.min(self.tokens.len());
        (&mut *self.acts.logits, &self.tokens[..len])
    }

    /// The KV cache, to choose the beam a step works on and to reorder beams.
    pub(crate) fn cache_mut(&mut self) -> &mut KvCache<'s> {
        &mut self.cache
    }

    /// What a forward pass works in: the one-row activations, the KV cache and the attention
    /// scores `(T)`.
    pub(crate) fn parts(&mut self) -> (&mut Activations<'s>, &mut KvCache<'s>, &mut [f32]) {
        (&mut self.acts, &mut self.cache, self.att)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::test_model::small_hparams;

    #[test]
    fn bytes_needed_adds_up_every_buffer() {
        let h = small_hparams(32);
        // f32: x, xb, xb2 (3 * 32), qkv 96, hb 128, att 4, logits 10; u32: tokens 4 = 338 values.
        let f32s = 338 * 4;
        let xq = (128 / 32) * 34;
        let kv_rows = 2 * 4;
        assert_eq!(RunState::bytes_needed(&h, KvType::F32), 3 + f32s + xq + 2 * kv_rows * 32 * 4);
        assert_eq!(RunState::bytes_needed(&h, KvType::F16), 3 + f32s + xq + 2 * kv_rows * 32 * 2);
        assert_eq!(RunState::bytes_needed(&h, KvType::Q8_0), 3 + f32s + xq + 2 * kv_rows * 34);
    }

    #[test]
    fn bytes_needed_is_usable_in_const_context() {
        const H: HParams = HParams {
            n_vocab: 512,
            n_ctx: 128,
            n_embd: 64,
            n_head: 4,
            n_layer: 2,
            n_ff: 256,
            eps: 1e-5,
            eos_token: Some(0),
        };
        const N: usize = RunState::bytes_needed(&H, KvType::Q8_0);
        static STORAGE: [u8; N] = [0; N];
        assert_eq!(STORAGE.len(), N);
    }

    #[test]
    fn new_math_refuses_exactly_the_path_this_build_leaves_out() {
        let h = small_hparams(32);
        let mut buf = vec![0u8; RunState::bytes_needed(&h, KvType::Q8_0)];
        for (math, left_out, err) in [
            (Math::Float, cfg!(feature = "integer-only"), StateError::FloatNotBuilt),
            (Math::Integer, cfg!(feature = "float-only"), StateError::IntegerNotBuilt),
        ] {
            let got = RunState::new_math(&h, KvType::Q8_0, math, &mut buf).err();
            assert_eq!(got, left_out.then_some(err), "{math}");
        }
        assert_eq!(
            StateError::FloatNotBuilt.to_string(),
            "the float path is not in this build (mote-core's integer-only feature)"
        );
    }

    #[test]
    fn rejects_storage_smaller_than_needed_naming_both_sizes() {
        let h = small_hparams(32);
        let needed = RunState::bytes_needed(&h, KvType::F32);
        let mut buf = vec![0u8; needed - 1];
        let err = RunState::new(&h, KvType::F32, &mut buf).err();
        assert_eq!(err, Some(StateError::TooSmall { needed, available: needed - 1 }));
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains(&needed.to_string()) && msg.contains(&(needed - 1).to_string()));
    }

    #[test]
    fn accepts_exact_storage_at_any_alignment() {
        let h = small_hparams(32);
        for kv in [KvType::F32, KvType::F16, KvType::Q8_0] {
            let needed = RunState::bytes_needed(&h, kv);
            let mut buf = vec![0u8; needed + 3];
            for start in 0..4 {
                assert!(
                    RunState::new(&h, kv, &mut buf[start..start + needed]).is_ok(),
                    "{kv:?} {start}"
                );
            }
        }
    }

    #[test]
    fn rejects_q8_0_kv_when_width_is_not_blocks() {
        let h = small_hparams(2);
        let mut buf = vec![0u8; 4096];
        assert_eq!(
            RunState::new(&h, KvType::Q8_0, &mut buf).err(),
            Some(StateError::KvWidthNotBlocks { n_embd: 2 })
        );
        assert!(RunState::new(&h, KvType::F32, &mut buf).is_ok());
    }
}
