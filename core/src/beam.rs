//! Beam search: transformers' `generate(num_beams=N, ...)` for one prompt, in storage the caller
//! provides.
//!
//! Letters: `N` beams, `K = 2N` candidates kept per step, `V` vocabulary, `T` context, `P` prompt
//! length, `L` layers, `C` width.
//!
//! The semantics are those of transformers' `GenerationMixin._beam_search` (version 5.24), step for
//! step, in f32 as it computes them:
//! 1. each running beam's next-token log-probabilities (`log_softmax` of the logits), through the
//!    processors `RepetitionPenaltyLogitsProcessor`, `NoRepeatNGramLogitsProcessor` and
//!    `MinNewTokensLengthLogitsProcessor` in that order, plus the beam's running score (at the
//!    first step the `N` beams are the same prompt: beam 0 starts at 0, the others at `-1e9`);
//! 2. the `K = 2N` best (beam, token) continuations over all beams;
//! 3. a continuation that ends in the end-of-text token, reaches the length limit or that the
//!    caller's stop rule accepts is *finished*: among the best `N` continuations, finished ones
//!    enter the `N` best hypotheses with the score `sum of log-probs / new_tokens^length_penalty`;
//!    the best `N` continuations that are not finished (finished ones get `-1e9`) run on;
//! 4. the search ends when every hypothesis slot is filled and `early_stopping` is `True`; or, for
//!    `False` and `"never"`, when the best running beam can no longer beat the worst hypothesis
//!    (its score over the current length, or over the longest possible for `"never"` with a
//!    positive length penalty); or when every continuation is finished.
//!
//! Ties between exactly equal scores go to the lower beam, then the lower token id (transformers
//! leaves them to `torch.topk`); real log-probabilities are practically never equal.
//! Sampling with beams (`do_sample=True`) is not implemented.
//!
//! Memory: [`BeamSearch::bytes_needed`] is a `const fn` of the hyper-parameters, the KV type and
//! `N`: a run state whose KV cache has a slot per beam and position ([`RunState`] with `N` beams),
//! and per beam a position map and the one it is reordered into (`2T` bytes), the running tokens twice (`2T` u32), a finished
//! hypothesis (`T` u32) and a few scalars. Reordering beams after a step copies each new beam's
//! parent's position map and tokens (a byte and a token id per position so far), never the keys
//! and values: the map says which beam's slot holds each position (see `kv_cache`).

use core::fmt;

use crate::arena::{bytes_of, Arena, ALIGN_SLACK};
use crate::forward::forward;
use crate::model::{HParams, Model};
use crate::sampler::{apply_no_repeat_ngram, apply_repetition_penalty, SamplerConfig};
use crate::session::SessionError;
use crate::split::RowSplit;
use crate::state::{KvType, RunState, StateError};

/// Most beams: the position maps hold a beam index in a byte.
pub const MAX_BEAMS: usize = 255;

/// The score transformers gives impossible beams and empty hypothesis slots (`-1e9`, exact in f32).
const MASKED: f32 = -1.0e9;

/// When the search may end before the length limit (transformers' `early_stopping`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EarlyStopping {
    /// `True`: as soon as `N` hypotheses are finished.
    True,
    /// `False`: when the best running beam, at its current length, cannot beat the worst
    /// hypothesis (transformers' default).
    False,
    /// `"never"`: as `False`, but with a positive length penalty the running beam is given the
    /// longest length it could reach (the canonical beam search).
    Never,
}

impl EarlyStopping {
    /// The name transformers and the command line use (`true`, `false`, `never`).
    pub const fn name(self) -> &'static str {
        match self {
            Self::True => "true",
            Self::False => "false",
            Self::Never => "never",
        }
    }
}

/// The settings of a beam search, with transformers' meanings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BeamConfig {
    /// Beams, `N` (1 to [`MAX_BEAMS`]).
    pub num_beams: usize,
    /// Exponent of the new-token count that divides a finished hypothesis' score.
    pub length_penalty: f32,
    /// When to stop before the length limit.
    pub early_stopping: EarlyStopping,
    /// Hypotheses returned, best first (1 to `N`).
    pub num_return_sequences: usize,
    /// Divide positive (multiply negative) log-probabilities of tokens already seen; `1` is off.
    pub repetition_penalty: f32,
    /// Never repeat an n-gram of this size; `0` is off.
    pub no_repeat_ngram_size: u32,
    /// The end-of-text token is impossible before this many new tokens.
    pub min_new_tokens: usize,
}

impl Default for BeamConfig {
    fn default() -> Self {
        Self {
            num_beams: 1,
            length_penalty: 1.0,
            early_stopping: EarlyStopping::False,
            num_return_sequences: 1,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            min_new_tokens: 0,
        }
    }
}

/// An invalid beam setting, or storage that does not fit.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BeamError {
    /// `num_beams` outside `1..=MAX_BEAMS`.
    NumBeams(usize),
    /// `num_return_sequences` outside `1..=num_beams`.
    NumReturnSequences {
        /// Sequences asked for.
        k: usize,
        /// Beams.
        num_beams: usize,
    },
    /// A length penalty that is not a finite number.
    LengthPenalty(f32),
    /// Repetition penalty not a positive finite number.
    RepetitionPenalty(f32),
    /// An n-gram longer than the context.
    NgramTooLong {
        /// The size asked for.
        size: u32,
        /// The model's context length.
        n_ctx: usize,
    },
    /// The run state could not be built.
    State(StateError),
    /// More than one beam with a temperature above 0: beam search with sampling is not
    /// implemented.
    Sampling,
    /// More than one beam with top-k or top-p, which only sampling reads.
    SamplingControls,
    /// The storage is smaller than [`BeamSearch::bytes_needed`].
    TooSmall {
        /// Bytes needed.
        needed: usize,
        /// Bytes given.
        available: usize,
    },
}

// The texts are what `mote generate` and the `chat` firmware print for a bad setting, so they
// name no flag or command, and format no float: core::fmt's float formatting would cost the chat
// firmware about 20 KB of flash (a non-finite value has three spellings; the others are left out).
impl fmt::Display for BeamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NumBeams(0) => {
                f.write_str("0 beams keep no sequence; give 1 (no beam search) or more")
            }
            Self::NumBeams(n) => write!(
                f,
                "{n} beams are more than mote's beam search holds; give at most {MAX_BEAMS}"
            ),
            Self::NumReturnSequences { k, num_beams } => write!(
                f,
                "{k} return sequences from {num_beams} beam{}: give 1 to {num_beams} (beam search \
                 returns at most one sequence per beam)",
                if *num_beams == 1 { "" } else { "s" }
            ),
            Self::LengthPenalty(x) => {
                write!(f, "length penalty {} must be a finite number", NonFinite(*x))
            }
            Self::RepetitionPenalty(_) => {
                f.write_str("the repetition penalty must be a finite number > 0 (1 is off)")
            }
            Self::NgramTooLong { size, n_ctx } => {
                write!(f, "no-repeat n-gram size {size} is larger than the context ({n_ctx})")
            }
            Self::Sampling => f.write_str(
                "beam search with sampling (a temperature above 0 with more than 1 beam) is not \
                 supported",
            ),
            Self::SamplingControls => {
                f.write_str("top-k and top-p are sampling controls; beam search does not sample")
            }
            Self::State(e) => e.fmt(f),
            Self::TooSmall { needed, available } => {
                write!(f, "beam search needs {needed} bytes of storage, only {available} given")
            }
        }
    }
}

/// A value that is not a finite number, in words (`inf`, `-inf`, `NaN`); a finite one as `finite`.
struct NonFinite(f32);

impl fmt::Display for NonFinite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        f.write_str(if x.is_nan() {
            "NaN"
        } else if x == f32::INFINITY {
            "inf"
        } else if x == f32::NEG_INFINITY {
            "-inf"
        } else {
            "finite"
        })
    }
}

impl core::error::Error for BeamError {}

impl BeamConfig {
    /// Checks the settings against each other and the model's context length.
    pub fn validate(&self, n_ctx: usize) -> Result<(), BeamError> {
        self.validate_counts()?;
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(BeamError::RepetitionPenalty(self.repetition_penalty));
        }
        if self.no_repeat_ngram_size as usize > n_ctx {
            return Err(BeamError::NgramTooLong { size: self.no_repeat_ngram_size, n_ctx });
        }
        Ok(())
    }

    /// The rules `mote generate` and the `chat` firmware check beam settings by, beside the
    /// sampler's own ([`SamplerConfig::validate`]): `num_beams` and `num_return_sequences` in
    /// range and a finite length penalty always; with more than one beam, no sampling (neither a
    /// temperature above 0 nor top-k or top-p) and the rest of [`BeamConfig::validate`].
    pub fn validate_with(&self, sampler: &SamplerConfig, n_ctx: usize) -> Result<(), BeamError> {
        self.validate_counts()?;
        if self.num_beams == 1 {
            return Ok(());
        }
        if sampler.temperature > 0.0 {
            return Err(BeamError::Sampling);
        }
        if sampler.top_k.is_some() || sampler.top_p != 1.0 {
            return Err(BeamError::SamplingControls);
        }
        self.validate(n_ctx)
    }

    /// What every beam setting needs, one beam or many: `num_beams` and `num_return_sequences` in
    /// range and a finite length penalty.
    fn validate_counts(&self) -> Result<(), BeamError> {
        if self.num_beams == 0 || self.num_beams > MAX_BEAMS {
            return Err(BeamError::NumBeams(self.num_beams));
        }
        if self.num_return_sequences == 0 || self.num_return_sequences > self.num_beams {
            return Err(BeamError::NumReturnSequences {
                k: self.num_return_sequences,
                num_beams: self.num_beams,
            });
        }
        if !self.length_penalty.is_finite() {
            return Err(BeamError::LengthPenalty(self.length_penalty));
        }
        Ok(())
    }
}

/// Why a beam search ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BeamStop {
    /// `early_stopping` was satisfied: no running beam can improve the hypotheses.
    Done,
    /// The new-token limit was reached.
    TokenLimit,
    /// The context is full.
    ContextFull,
}

impl BeamStop {
    /// The reason in words, as [`fmt::Display`] prints it (for targets that print without
    /// `core::fmt`).
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Done => "beams done",
            Self::TokenLimit => "token limit",
            Self::ContextFull => "context full",
        }
    }
}

impl fmt::Display for BeamStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a beam search did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BeamOutcome {
    /// Why it ended.
    pub stop: BeamStop,
    /// Decoding steps (new positions chosen).
    pub steps: usize,
    /// Forward passes run, prompt included.
    pub forwards: usize,
    /// Bytes the reorders copied: position maps and tokens of every new beam.
    pub reorder_bytes: usize,
    /// Bytes reordering by copying whole KV caches would have copied instead (what
    /// transformers' `reorder_cache` gathers): every beam's keys and values of every layer at
    /// every position so far, at every step.
    pub cache_copy_bytes: usize,
}

/// One returned hypothesis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hypothesis<'a> {
    /// The new tokens (with the end-of-text token when that finished it).
    pub tokens: &'a [u32],
    /// The sum of their log-probabilities over `tokens.len()^length_penalty`.
    pub score: f32,
}

/// A beam search over `N` beams, in storage borrowed from the caller.
pub struct BeamSearch<'s> {
    config: BeamConfig,
    /// The run state, with a KV cache slot per beam and position.
    state: RunState<'s>,
    /// Running beams' tokens, prompt included, `(N, T)`; and the buffer they are reordered into.
    hist: &'s mut [u32],
    hist_next: &'s mut [u32],
    /// Running beams' scores (sums of log-probabilities), best first, `(N)`.
    score: &'s mut [f32],
    /// The step's best continuations, best first, `(K)`: score, parent beam, token, finished.
    cand_score: &'s mut [f32],
    cand_beam: &'s mut [u32],
    cand_token: &'s mut [u32],
    cand_done: &'s mut [u32],
    /// Hypothesis slots `(N)`: score, finished (0 or 1), length; their new tokens `(N, T)`.
    fin_score: &'s mut [f32],
    fin_done: &'s mut [u32],
    fin_len: &'s mut [u32],
    fin_tokens: &'s mut [u32],
    /// Slot numbers of the finished hypotheses, best first, `(N)`; how many.
    order: &'s mut [u32],
    n_returned: usize,
    /// The buffer position maps are reordered into, `(N, T)`.
    map_next: &'s mut [u8],
}

impl<'s> BeamSearch<'s> {
    /// Exact bytes of storage a beam search with `n_beams` beams over `hp` with a `kv` cache
    /// needs: [`RunState::bytes_needed_beams`] and the beams' bookkeeping (see the module docs),
    /// with [`ALIGN_SLACK`]. Saturates at `usize::MAX` rather than overflowing.
    pub const fn bytes_needed(hp: &HParams, kv: KvType, n_beams: usize) -> usize {
        let n = n_beams;
        let nt = n.saturating_mul(hp.n_ctx);
        let k = n.saturating_mul(2);
        RunState::bytes_needed_beams(hp, kv, n)
            .saturating_add(ALIGN_SLACK)
            .saturating_add(bytes_of::<u32>(nt).saturating_mul(3)) // hist, hist_next, fin_tokens
            .saturating_add(bytes_of::<u32>(n).saturating_mul(5)) // score, fin_*, order
            .saturating_add(bytes_of::<u32>(k).saturating_mul(4)) // cand_*
            .saturating_add(nt) // map_next
    }

    /// Bytes one more beam adds to [`BeamSearch::bytes_needed`] from two beams up (one beam has
    /// no position map).
    pub const fn bytes_per_beam(hp: &HParams, kv: KvType) -> usize {
        Self::bytes_needed(hp, kv, 3).saturating_sub(Self::bytes_needed(hp, kv, 2))
    }

    /// Carves a beam search for `config` over `hp` with a `kv` cache out of `storage`, which
    /// must hold at least [`BeamSearch::bytes_needed`] bytes.
    pub fn new(
        hp: &HParams,
        kv: KvType,
        config: BeamConfig,
        storage: &'s mut [u8],
    ) -> Result<Self, BeamError> {
        config.validate(hp.n_ctx)?;
        let n = config.num_beams;
        let needed = Self::bytes_needed(hp, kv, n);
        let available = storage.len();
        if available < needed {
            return Err(BeamError::TooSmall { needed, available });
        }
        let (state_bytes, rest) = storage.split_at_mut(RunState::bytes_needed_beams(hp, kv, n));
        let state = RunState::new_beams(hp, kv, n, state_bytes).map_err(BeamError::State)?;
        let too_small = BeamError::TooSmall { needed, available };
        let mut a = Arena::new(rest);
        let nt = n * hp.n_ctx;
        let mut take = |len: usize| a.take::<u32>(len).ok_or(too_small);
        let (hist, hist_next, fin_tokens) = (take(nt)?, take(nt)?, take(nt)?);
        let (fin_len, fin_done, order) = (take(n)?, take(n)?, take(n)?);
        let (cand_beam, cand_token, cand_done) = (take(2 * n)?, take(2 * n)?, take(2 * n)?);
        let mut take_f32 = |len: usize| a.take::<f32>(len).ok_or(too_small);
        let (score, fin_score, cand_score) = (take_f32(n)?, take_f32(n)?, take_f32(2 * n)?);
        let map_next = a.take::<u8>(nt).ok_or(too_small)?;
        Ok(Self {
            config,
            state,
            hist,
            hist_next,
            score,
            cand_score,
            cand_beam,
            cand_token,
            cand_done,
            fin_score,
            fin_done,
            fin_len,
            fin_tokens,
            order,
            n_returned: 0,
            map_next,
        })
    }

    /// The settings.
    pub fn config(&self) -> &BeamConfig {
        &self.config
    }

    /// The logits of the last forward pass, `(V)` (what the firmware's checksum covers).
    pub fn logits(&self) -> &[f32] {
        self.state.logits()
    }

    /// The returned hypotheses of the last search, best first (at most `num_return_sequences`).
    pub fn hypotheses(&self) -> impl Iterator<Item = Hypothesis<'_>> + '_ {
        let t = self.state.hparams().n_ctx;
        self.order.iter().take(self.n_returned).map(move |&slot| {
            let slot = slot as usize;
            let len = self.fin_len.get(slot).map_or(0, |&l| l as usize);
            Hypothesis {
                tokens: self.fin_tokens.get(slot * t..slot * t + len).unwrap_or(&[]),
                score: self.fin_score.get(slot).copied().unwrap_or(f32::NEG_INFINITY),
            }
        })
    }

    /// Runs the search from `prompt` for at most `max_new_tokens` new tokens (fewer when the
    /// context fills: the last new token needs no position), with `eos` as the end-of-text token
    /// (`None`: none ends a hypothesis) and `stop(tokens, next)`, asked of each continuation
    /// (its beam's new tokens so far and the next token), finishing it when true.
    /// Read the results with [`BeamSearch::hypotheses`].
    pub fn search(
        &mut self,
        model: &Model<'_>,
        split: &dyn RowSplit,
        prompt: &[u32],
        max_new_tokens: usize,
        eos: Option<u32>,
        stop: &mut dyn FnMut(&[u32], u32) -> bool,
    ) -> Result<BeamOutcome, SessionError> {
        let hp = model.hparams;
        let (t, n, k) = (hp.n_ctx, self.config.num_beams, 2 * self.config.num_beams);
        let p = prompt.len();
        if p == 0 {
            return Err(SessionError::EmptyPrompt);
        }
        if p > t {
            return Err(SessionError::PromptTooLong { len: p, n_ctx: t });
        }
        if *self.state.hparams() != hp {
            return Err(SessionError::Forward(crate::forward::ForwardError::StateMismatch));
        }
        // The last new token is never fed, so the context allows T - P + 1 of them.
        let room = t - p + 1;
        let (max_new, limit_stop) = if max_new_tokens > room {
            (room, BeamStop::ContextFull)
        } else {
            (max_new_tokens, BeamStop::TokenLimit)
        };
        let max_length = p + max_new;
        self.n_returned = 0;
        if max_new == 0 {
            return Ok(BeamOutcome {
                stop: limit_stop,
                steps: 0,
                forwards: 0,
                reorder_bytes: 0,
                cache_copy_bytes: 0,
            });
        }

        // Every beam starts as the prompt, whose keys and values beam 0's slots hold.
        for j in 0..n {
            if let Some(h) = self.hist.get_mut(j * t..j * t + p) {
                h.copy_from_slice(prompt);
            }
        }
        self.state.cache_mut().maps_mut().fill(0);
        let mut forwards = 0;
        for (pos, &tok) in prompt.iter().enumerate() {
            self.state.cache_mut().select(0, pos);
            forward(model, &mut self.state, tok, pos, split, pos + 1 == p)?;
            forwards += 1;
        }
        self.score.fill(MASKED);
        if let Some(s) = self.score.first_mut() {
            *s = 0.0;
        }
        self.fin_score.fill(MASKED);
        self.fin_done.fill(0);
        self.fin_len.fill(0);

        let lp = f64::from(self.config.length_penalty);
        let mut cur_len = p;
        let mut improvable = true;
        let mut steps = 0;
        let (mut reorder_bytes, mut cache_copy_bytes) = (0usize, 0usize);
        let kv_row = 2 * hp.n_layer * self.state.kv_type().row_bytes(hp.n_embd);
        let stop_reason = loop {
            // 1-2. The best K continuations over every beam.
            self.cand_score.fill(f32::NEG_INFINITY);
            let mut n_cand = 0;
            for j in 0..n {
                if cur_len > p {
                    // The beam's last token, at the position before `cur_len`.
                    let pos = cur_len - 1;
                    let tok = self.hist.get(j * t + pos).copied().unwrap_or(0);
                    self.state.cache_mut().select(j, pos);
                    forward(model, &mut self.state, tok, pos, split, true)?;
                    forwards += 1;
                }
                // At the first step every beam is the prompt: its log-probabilities once.
                if cur_len > p || j == 0 {
                    let history = self.hist.get(j * t..j * t + cur_len).unwrap_or(&[]);
                    let (logits, _) = self.state.logits_and_history(0);
                    log_probs(logits, history, &self.config, cur_len - p, eos);
                }
                let base = self.score.get(j).copied().unwrap_or(MASKED);
                let logits = self.state.logits();
                n_cand = keep_best(
                    &mut self.cand_score[..k],
                    &mut self.cand_beam[..k],
                    &mut self.cand_token[..k],
                    n_cand,
                    j as u32,
                    base,
                    logits,
                );
            }
            // 3. Which continuations finish here.
            let at_limit = cur_len + 1 >= max_length;
            let mut all_done = true;
            for i in 0..n_cand {
                let (j, tok) = (self.cand_beam[i] as usize, self.cand_token[i]);
                let generated = self.hist.get(j * t + p..j * t + cur_len).unwrap_or(&[]);
                let done = at_limit || Some(tok) == eos || stop(generated, tok);
                self.cand_done[i] = u32::from(done);
                all_done &= done;
            }
            // Finished ones among the best N enter the hypotheses (transformers' merge of the
            // slots with them, keeping the best N).
            let new_len = cur_len + 1 - p;
            let penalty = libm::pow(new_len as f64, lp) as f32;
            for i in 0..n_cand.min(n) {
                if self.cand_done[i] == 0 {
                    continue;
                }
                let s = self.cand_score[i] / penalty;
                let worst = argmin(self.fin_score);
                if s > self.fin_score[worst] {
                    let (j, tok) = (self.cand_beam[i] as usize, self.cand_token[i]);
                    self.fin_score[worst] = s;
                    self.fin_done[worst] = 1;
                    self.fin_len[worst] = new_len as u32;
                    let (src, dst) = (&self.hist[j * t + p..j * t + cur_len], worst * t);
                    self.fin_tokens[dst..dst + src.len()].copy_from_slice(src);
                    self.fin_tokens[dst + src.len()] = tok;
                }
            }
            // 4. The best N unfinished continuations run on: their tokens and position maps
            // follow their parent's, the keys and values stay where they are.
            let moved = self.reorder(n_cand, cur_len, t);
            reorder_bytes = reorder_bytes.saturating_add(moved);
            cache_copy_bytes = cache_copy_bytes.saturating_add(n * cur_len * kv_row);
            cur_len += 1;
            steps += 1;

            // The early-stopping check, as transformers computes it.
            let all_finished = self.fin_done.iter().all(|&d| d == 1);
            let best_len = if self.config.early_stopping == EarlyStopping::Never && lp > 0.0 {
                max_length - p
            } else {
                cur_len - p
            };
            let best_running = self.score[0] / libm::pow(best_len as f64, lp) as f32;
            let worst_finished = self.fin_score.iter().copied().fold(f32::INFINITY, f32::min);
            let can_improve = self
                .fin_done
                .iter()
                .any(|&d| best_running > if d == 1 { worst_finished } else { MASKED });
            improvable &= can_improve;
            let full = all_finished && self.config.early_stopping == EarlyStopping::True;
            if all_done {
                break limit_stop_or(at_limit, limit_stop);
            }
            if !improvable || full {
                break BeamStop::Done;
            }
        };
        // The finished hypotheses, best first.
        let mut count = 0;
        for slot in 0..n {
            if self.fin_done[slot] == 1 {
                self.order[count] = slot as u32;
                count += 1;
            }
        }
        // Best score first, then the lower slot: a total order, so any sort gives the same. An
        // insertion sort of at most N slots: the slice sort costs about 8 KB of flash.
        let fin_score = &*self.fin_score;
        let worse = |a: u32, b: u32| {
            fin_score[b as usize].total_cmp(&fin_score[a as usize]).then(a.cmp(&b)).is_gt()
        };
        for i in 1..count {
            let mut j = i;
            while j > 0 && worse(self.order[j - 1], self.order[j]) {
                self.order.swap(j - 1, j);
                j -= 1;
            }
        }
        self.n_returned = count.min(self.config.num_return_sequences);
        Ok(BeamOutcome { stop: stop_reason, steps, forwards, reorder_bytes, cache_copy_bytes })
    }

    /// Makes the best `N` unfinished continuations of the `n_cand` candidates (finished ones
    /// count `-1e9` lower) the running beams for position `cur_len`. Returns the bytes copied.
    fn reorder(&mut self, n_cand: usize, cur_len: usize, t: usize) -> usize {
        let n = self.config.num_beams;
        // Adjusted scores, then the best N of them (stable: ties keep the better candidate).
        for i in 0..n_cand {
            if self.cand_done[i] == 1 {
                self.cand_score[i] += MASKED;
            }
        }
        // Selection by insertion into `order` (N entries), best first.
        let mut chosen = 0usize;
        for i in 0..n_cand {
            let s = self.cand_score[i];
            let mut at = chosen;
            while at > 0 && self.cand_score[self.order[at - 1] as usize] < s {
                at -= 1;
            }
            if at < n {
                let last = chosen.min(n - 1);
                let mut q = last;
                while q > at {
                    self.order[q] = self.order[q - 1];
                    q -= 1;
                }
                self.order[at] = i as u32;
                chosen = (chosen + 1).min(n);
            }
        }
        let maps = self.state.cache_mut().maps_mut();
        for (b, &i) in self.order.iter().take(chosen).enumerate() {
            let i = i as usize;
            let parent = self.cand_beam[i] as usize;
            self.score[b] = self.cand_score[i];
            let row = b * t;
            self.hist_next[row..row + cur_len]
                .copy_from_slice(&self.hist[parent * t..parent * t + cur_len]);
            if let Some(x) = self.hist_next.get_mut(row + cur_len) {
                *x = self.cand_token[i];
            }
            if !maps.is_empty() {
                self.map_next[row..row + cur_len]
                    .copy_from_slice(&maps[parent * t..parent * t + cur_len]);
            }
        }
        core::mem::swap(&mut self.hist, &mut self.hist_next);
        if !maps.is_empty() {
            for b in 0..chosen {
                let row = b * t;
                maps[row..row + cur_len].copy_from_slice(&self.map_next[row..row + cur_len]);
            }
        }
        // Tokens once (the buffers swap), maps twice (there and back).
        let maps_copied = if maps.is_empty() { 0 } else { 2 * cur_len };
        chosen * (cur_len * 4 + 4 + maps_copied)
    }
}

/// `stop` when the search ended at the length limit; that is what it was.
fn limit_stop_or(at_limit: bool, limit_stop: BeamStop) -> BeamStop {
    if at_limit {
        limit_stop
    } else {
        BeamStop::Done
    }
}

/// Index of the smallest value (the first on ties).
fn argmin(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v < x[best] {
            best = i;
        }
    }
    best
}

/// `logits = processors(log_softmax(logits))`: the next-token log-probabilities of a beam whose
/// tokens are `history` (prompt included), `new` of them generated, as transformers' beam search
/// computes them: `RepetitionPenaltyLogitsProcessor`, `NoRepeatNGramLogitsProcessor`, then
/// `MinNewTokensLengthLogitsProcessor` (the end-of-text token impossible before
/// `min_new_tokens`). A NaN logit counts as impossible.
pub fn log_probs(
    logits: &mut [f32],
    history: &[u32],
    config: &BeamConfig,
    new: usize,
    eos: Option<u32>,
) {
    for s in logits.iter_mut().filter(|s| s.is_nan()) {
        *s = f32::NEG_INFINITY;
    }
    log_softmax(logits);
    if config.repetition_penalty != 1.0 {
        apply_repetition_penalty(logits, history, config.repetition_penalty);
    }
    if config.no_repeat_ngram_size > 0 {
        apply_no_repeat_ngram(logits, history, config.no_repeat_ngram_size as usize);
    }
    if new < config.min_new_tokens {
        if let Some(s) = eos.and_then(|e| logits.get_mut(e as usize)) {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// `x = x - max - ln(sum(exp(x - max)))`, what `torch.log_softmax` computes; `exp` is
/// [`crate::ops::exp`], the softmax's (within one ulp of `libm::expf`, fewer instructions on a
/// microcontroller, where the vocabulary's exponentials are a visible part of a beam's step).
pub fn log_softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return;
    }
    let sum: f32 = x.iter().map(|&v| crate::ops::exp(v - max)).sum();
    let log_sum = libm::logf(sum);
    for v in x.iter_mut() {
        *v = (*v - max) - log_sum;
    }
}

/// Merges beam `beam`'s continuations (`base + lp(v)` for each token `v`) into the best `K`
/// so far, kept best first in `score`, `beams`, `tokens` (`n` of them filled); returns the new
/// count. A continuation enters only if strictly better than the `K`-th, so on ties the lower
/// beam, then the lower token, stays.
fn keep_best(
    score: &mut [f32],
    beams: &mut [u32],
    tokens: &mut [u32],
    mut n: usize,
    beam: u32,
    base: f32,
    lp: &[f32],
) -> usize {
    let k = score.len();
    if k == 0 {
        return 0;
    }
    for (v, &l) in lp.iter().enumerate() {
        let s = base + l;
        if n == k && s.partial_cmp(&score[k - 1]) != Some(core::cmp::Ordering::Greater) {
            continue;
        }
        // Where it goes: after every entry at least as good.
        let mut at = n.min(k - 1);
        while at > 0 && score[at - 1] < s {
            at -= 1;
        }
        let end = n.min(k - 1);
        let mut q = end;
        while q > at {
            score[q] = score[q - 1];
            beams[q] = beams[q - 1];
            tokens[q] = tokens[q - 1];
            q -= 1;
        }
        score[at] = s;
        beams[at] = beam;
        tokens[at] = v as u32;
        n = (n + 1).min(k);
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::step_logits;
    use crate::model::test_model::{load, Spec};
    use crate::sampler::argmax;
    use crate::split::Serial;

    /// A search over the synthetic model (`V = 40, T = 8`), its hypotheses as (ids, score).
    fn search(
        m: &Model<'_>,
        kv: KvType,
        cfg: BeamConfig,
        prompt: &[u32],
        max_new: usize,
        eos: Option<u32>,
    ) -> (BeamOutcome, Vec<(Vec<u32>, f32)>) {
        let mut buf = vec![0u8; BeamSearch::bytes_needed(&m.hparams, kv, cfg.num_beams)];
        let mut b = BeamSearch::new(&m.hparams, kv, cfg, &mut buf).unwrap();
        let r = b.search(m, &Serial, prompt, max_new, eos, &mut |_, _| false).unwrap();
        (r, b.hypotheses().map(|h| (h.tokens.to_vec(), h.score)).collect())
    }

    /// The score of `tokens` after `prompt` computed alone, by plain forward steps in a one-beam
    /// run state: the processed log-probabilities added in order, over the length penalty.
    fn score_alone(
        m: &Model<'_>,
        kv: KvType,
        cfg: &BeamConfig,
        prompt: &[u32],
        tokens: &[u32],
        eos: Option<u32>,
    ) -> f32 {
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, kv)];
        let mut s = RunState::new(&m.hparams, kv, &mut buf).unwrap();
        let mut seq = prompt.to_vec();
        let mut sum = 0.0f32;
        for (i, &t) in tokens.iter().enumerate() {
            let pos = seq.len() - 1;
            if i == 0 {
                for (p, &x) in prompt[..pos].iter().enumerate() {
                    forward(m, &mut s, x, p, &Serial, false).unwrap();
                }
            }
            let mut lp = step_logits(m, &mut s, seq[pos], pos).unwrap();
            log_probs(&mut lp, &seq, cfg, i, eos);
            sum += lp[t as usize];
            seq.push(t);
        }
        sum / libm::pow(tokens.len() as f64, f64::from(cfg.length_penalty)) as f32
    }

    const PROMPT: [u32; 3] = [5, 11, 2];

    #[test]
    fn hypothesis_scores_are_their_sequences_scored_alone_bit_for_bit() {
        // The beams share one KV cache through their position maps; each hypothesis must score
        // exactly what its own sequence scores in a fresh one-beam state.
        let blob = Spec::gpt2(8).build();
        let m = load(&blob);
        for kv in [KvType::F32, KvType::F16, KvType::Q8_0] {
            for (n, lp, ngram) in [(2, 1.0, 0), (3, 0.5, 2), (4, 2.0, 0), (6, 1.0, 2)] {
                let cfg = BeamConfig {
                    num_beams: n,
                    length_penalty: lp,
                    early_stopping: EarlyStopping::Never,
                    num_return_sequences: n,
                    no_repeat_ngram_size: ngram,
                    ..BeamConfig::default()
                };
                let (_, hyps) = search(&m, kv, cfg, &PROMPT, 5, None);
                assert_eq!(hyps.len(), n);
                for (tokens, score) in &hyps {
                    let alone = score_alone(&m, kv, &cfg, &PROMPT, tokens, None);
                    assert_eq!(score.to_bits(), alone.to_bits(), "{kv:?} {n} {tokens:?}");
                }
                // Best first, all distinct.
                assert!(hyps.windows(2).all(|w| w[0].1 >= w[1].1 && w[0].0 != w[1].0));
            }
        }
    }

    #[test]
    fn one_beam_is_greedy_decoding() {
        let blob = Spec::gpt2(0).build();
        let m = load(&blob);
        let cfg = BeamConfig::default();
        let (r, hyps) = search(&m, KvType::F32, cfg, &PROMPT, 4, None);
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, KvType::F32)];
        let mut s = RunState::new(&m.hparams, KvType::F32, &mut buf).unwrap();
        let mut seq = PROMPT.to_vec();
        for p in 0..PROMPT.len() + 3 {
            let next = argmax(&step_logits(&m, &mut s, seq[p], p).unwrap());
            if p + 1 >= PROMPT.len() {
                seq.push(next);
            }
        }
        assert_eq!(hyps, [(seq[PROMPT.len()..].to_vec(), hyps[0].1)]);
        assert_eq!((r.stop, r.steps, r.forwards), (BeamStop::TokenLimit, 4, 6));
    }

    #[test]
    fn reorders_copy_maps_and_tokens_never_the_caches() {
        // Three beams, five steps after a prompt of 3: the caches' copies would have been
        // N * (3 + 4 + 5 + 6 + 7) positions of L * 2 rows; the reorders copy a token (4 bytes) and a map byte twice
        // (there and back) a position, and the new token.
        let blob = Spec::gpt2(8).build();
        let m = load(&blob);
        let cfg = BeamConfig {
            num_beams: 3,
            early_stopping: EarlyStopping::Never,
            ..BeamConfig::default()
        };
        let (r, _) = search(&m, KvType::Q8_0, cfg, &PROMPT, 5, None);
        assert_eq!(r.steps, 5);
        let kv_row = 2 * 2 * KvType::Q8_0.row_bytes(32);
        assert_eq!(r.cache_copy_bytes, 3 * 25 * kv_row);
        assert_eq!(r.reorder_bytes, 3 * (25 * 6 + 5 * 4));
    }

    #[test]
    fn the_context_bounds_the_new_tokens() {
        // T = 8 and a prompt of 3: positions 3..7 take five new tokens, and a sixth needs none.
        let blob = Spec::gpt2(0).build();
        let m = load(&blob);
        let cfg = BeamConfig { num_beams: 3, ..BeamConfig::default() };
        let (r, hyps) = search(&m, KvType::F32, cfg, &PROMPT, 100, None);
        assert_eq!(r.stop, BeamStop::ContextFull);
        assert_eq!(hyps[0].0.len(), 6);
    }

    #[test]
    fn min_new_tokens_keeps_the_end_of_text_out_of_the_first_tokens() {
        let blob = Spec::gpt2(0).build();
        let m = load(&blob);
        let (_, greedy) = search(&m, KvType::F32, BeamConfig::default(), &PROMPT, 1, None);
        let eos = greedy[0].0[0];
        let cfg = BeamConfig { num_beams: 3, num_return_sequences: 3, ..BeamConfig::default() };
        let (_, hyps) = search(&m, KvType::F32, cfg, &PROMPT, 5, Some(eos));
        assert_eq!(hyps.iter().filter(|h| h.0 == [eos]).count(), 1, "{hyps:?}");
        let cfg = BeamConfig { min_new_tokens: 3, ..cfg };
        let (_, hyps) = search(&m, KvType::F32, cfg, &PROMPT, 5, Some(eos));
        assert!(hyps.iter().all(|h| h.0.len() >= 4 && !h.0[..3].contains(&eos)), "{hyps:?}");
    }

    #[test]
    fn a_stop_rule_finishes_continuations() {
        let blob = Spec::gpt2(0).build();
        let m = load(&blob);
        let cfg = BeamConfig { num_beams: 3, num_return_sequences: 3, ..BeamConfig::default() };
        let mut buf = vec![0u8; BeamSearch::bytes_needed(&m.hparams, KvType::F32, 3)];
        let mut b = BeamSearch::new(&m.hparams, KvType::F32, cfg, &mut buf).unwrap();
        // Finish every continuation that reaches two new tokens.
        let mut stop = |generated: &[u32], _next: u32| generated.len() + 1 >= 2;
        let r = b.search(&m, &Serial, &PROMPT, 5, None, &mut stop).unwrap();
        assert_eq!(r.stop, BeamStop::Done);
        assert!(b.hypotheses().all(|h| h.tokens.len() == 2));
    }

    #[test]
    fn storage_is_sized_in_const_context_and_grows_by_whole_beams() {
        const H: HParams = HParams {
            n_vocab: 512,
            n_ctx: 128,
            n_embd: 64,
            n_head: 2,
            n_layer: 2,
            n_ff: 256,
            eps: 1e-5,
            eos_token: Some(0),
        };
        const N4: usize = BeamSearch::bytes_needed(&H, KvType::Q8_0, 4);
        static STORAGE: [u8; N4] = [0; N4];
        assert_eq!(STORAGE.len(), N4);
        let per = BeamSearch::bytes_per_beam(&H, KvType::Q8_0);
        // KV (L, T, C) twice in Q8_0, the map (T), tokens 3T u32, 5 u32 scalars, 2 x 4 candidates.
        let kv = 2 * 2 * 128 * (64 / 32 * 34);
        assert_eq!(per, kv + 128 + 3 * 128 * 4 + 5 * 4 + 8 * 4 + 128);
        assert_eq!(BeamSearch::bytes_needed(&H, KvType::Q8_0, 5), N4 + per);
        assert_eq!(BeamSearch::bytes_needed(&H, KvType::Q8_0, 2) + 2 * per, N4);
    }

    #[test]
    fn rejects_bad_settings_and_short_storage() {
        let blob = Spec::gpt2(0).build();
        let hp = load(&blob).hparams;
        let base = BeamConfig { num_beams: 3, ..BeamConfig::default() };
        let bad = [
            (BeamConfig { num_beams: 0, ..base }, BeamError::NumBeams(0)),
            (BeamConfig { num_beams: 256, ..base }, BeamError::NumBeams(256)),
            (
                BeamConfig { num_return_sequences: 4, ..base },
                BeamError::NumReturnSequences { k: 4, num_beams: 3 },
            ),
            (
                BeamConfig { length_penalty: f32::INFINITY, ..base },
                BeamError::LengthPenalty(f32::INFINITY),
            ),
            (BeamConfig { repetition_penalty: 0.0, ..base }, BeamError::RepetitionPenalty(0.0)),
            (
                BeamConfig { no_repeat_ngram_size: 9, ..base },
                BeamError::NgramTooLong { size: 9, n_ctx: 8 },
            ),
        ];
        let mut buf = vec![0u8; BeamSearch::bytes_needed(&hp, KvType::F32, 3)];
        for (cfg, err) in bad {
            assert_eq!(BeamSearch::new(&hp, KvType::F32, cfg, &mut buf).err(), Some(err));
        }
        let needed = buf.len();
        assert_eq!(
            BeamSearch::new(&hp, KvType::F32, base, &mut buf[..needed - 1]).err(),
            Some(BeamError::TooSmall { needed, available: needed - 1 })
        );
        assert_eq!(
            BeamError::NumReturnSequences { k: 4, num_beams: 3 }.to_string(),
            "4 return sequences from 3 beams: give 1 to 3 (beam search returns at most one \
             sequence per beam)"
        );
        assert_eq!(
            BeamError::LengthPenalty(f32::NEG_INFINITY).to_string(),
            "length penalty -inf must be a finite number"
        );
        // Any start address.
        let mut big = vec![0u8; needed + 3];
        for start in 0..4 {
            assert!(
                BeamSearch::new(&hp, KvType::F32, base, &mut big[start..start + needed]).is_ok()
            );
        }
    }

    #[test]
    fn settings_beside_the_sampler_follow_generates_rules() {
        let greedy = SamplerConfig::default();
        let sampled = SamplerConfig { temperature: 0.8, ..greedy };
        let beams = |n| BeamConfig { num_beams: n, ..BeamConfig::default() };
        assert_eq!(beams(0).validate_with(&greedy, 8), Err(BeamError::NumBeams(0)));
        assert_eq!(beams(256).validate_with(&greedy, 8), Err(BeamError::NumBeams(256)));
        let k2 = BeamConfig { num_return_sequences: 2, ..beams(1) };
        assert_eq!(
            k2.validate_with(&greedy, 8),
            Err(BeamError::NumReturnSequences { k: 2, num_beams: 1 })
        );
        let inf = BeamConfig { length_penalty: f32::INFINITY, ..beams(1) };
        assert_eq!(inf.validate_with(&greedy, 8), Err(BeamError::LengthPenalty(f32::INFINITY)));
        // One beam samples freely; more do not sample at all.
        assert_eq!(beams(1).validate_with(&sampled, 8), Ok(()));
        assert_eq!(beams(2).validate_with(&sampled, 8), Err(BeamError::Sampling));
        let top_k = SamplerConfig { top_k: Some(40), ..greedy };
        assert_eq!(beams(2).validate_with(&top_k, 8), Err(BeamError::SamplingControls));
        let top_p = SamplerConfig { top_p: 0.9, ..greedy };
        assert_eq!(beams(2).validate_with(&top_p, 8), Err(BeamError::SamplingControls));
        let ngram = BeamConfig { no_repeat_ngram_size: 9, ..beams(2) };
        assert_eq!(
            ngram.validate_with(&greedy, 8),
            Err(BeamError::NgramTooLong { size: 9, n_ctx: 8 })
        );
        assert_eq!(beams(5).validate_with(&greedy, 8), Ok(()));
    }
}
