//! Generation: prefill the prompt (one position at a time, or on the desktop in batches with a
//! [`crate::prefill::Prefill`] scratch; the output head runs at its last position only), then
//! decode (greedily, or with a [`Sampler`]), streaming each new token to a callback,
//! until a stop rule fires.
//!
//! Stop rules, checked after each new token is chosen:
//! 1. the token is the end-of-text token: stop with [`StopReason::EndOfText`] (the token is not
//!    streamed). [`Stops`] can name another end-of-text token or none, and make it impossible
//!    before a number of new tokens (transformers' `min_new_tokens`);
//! 2. the caller's callback, given the streamed token, asks to stop: [`StopReason::Caller`] (the
//!    desktop's stop strings);
//! 3. `max_tokens` tokens have been streamed: [`StopReason::TokenLimit`];
//! 4. the context is full, so the token just streamed cannot be fed back: [`StopReason::ContextFull`].
//!    This is a deliberate, clean stop: mote does not slide or shift the window, since that would
//!    silently change what the model sees.

use core::fmt;

use crate::forward::{forward, ForwardError};
use crate::integer::{self, Math};
use crate::model::Model;
#[cfg(any(test, feature = "std"))]
use crate::prefill::{prefill, Prefill};
use crate::sampler::Sampler;
use crate::split::{RowSplit, Serial};
use crate::state::RunState;

/// Why generation stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StopReason {
    /// The model produced the end-of-text token.
    EndOfText,
    /// The requested number of tokens was produced.
    TokenLimit,
    /// Every position of the context is used.
    ContextFull,
    /// The caller's callback asked to stop after the token it was given.
    Caller,
}

impl StopReason {
    /// The reason in words, as [`fmt::Display`] prints it (for targets that print without
    /// `core::fmt`).
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::EndOfText => "end of text",
            Self::TokenLimit => "token limit",
            Self::ContextFull => "context full",
            Self::Caller => "stopped by the caller",
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a generation was refused or failed.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SessionError {
    /// The prompt has no tokens (the model needs at least one to predict from).
    EmptyPrompt,
    /// The prompt does not fit in the context.
    PromptTooLong {
        /// Prompt tokens.
        len: usize,
        /// Context length.
        n_ctx: usize,
    },
    /// A forward step failed (a token id outside the vocabulary, a mismatched run state).
    Forward(ForwardError),
}

impl From<ForwardError> for SessionError {
    fn from(e: ForwardError) -> Self {
        Self::Forward(e)
    }
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyPrompt => write!(f, "the prompt is empty; give at least one token"),
            Self::PromptTooLong { len, n_ctx } => {
                write!(f, "the prompt has {len} tokens, more than the context length {n_ctx}")
            }
            Self::Forward(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for SessionError {}

/// What a generation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Generated {
    /// Why it stopped.
    pub stop: StopReason,
    /// Tokens streamed to the callback.
    pub n_generated: usize,
}

/// The end-of-text rules of a generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stops {
    /// The token that ends the text (not streamed); `None`: no token does.
    pub eos: Option<u32>,
    /// The end-of-text token is impossible (its logit `-inf`) before this many new tokens, as
    /// transformers' `MinNewTokensLengthLogitsProcessor` makes it.
    pub min_new_tokens: usize,
}

impl Stops {
    /// The model's own end-of-text token, possible from the first new token.
    pub fn model(model: &Model<'_>) -> Self {
        Self { eos: model.hparams.eos_token, min_new_tokens: 0 }
    }
}

/// A model and a run state: one conversation with the model, position by position.
pub struct Session<'m, 'b, 's> {
    model: &'m Model<'b>,
    state: RunState<'s>,
    pos: usize,
    /// Who computes the rows of large matrices ([`Serial`] unless told otherwise).
    split: &'m dyn RowSplit,
    /// Scratch for batched prefill, if the caller gave one. Desktop only (the `std` feature):
    /// the firmware never batches, and so does not carry the code.
    #[cfg(any(test, feature = "std"))]
    prefill: Option<Prefill<'s>>,
}

impl<'m, 'b, 's> Session<'m, 'b, 's> {
    /// A session at position 0. The state must have been sized for `model`'s hyper-parameters
    /// (checked at the first step).
    pub fn new(model: &'m Model<'b>, state: RunState<'s>) -> Self {
        Self {
            model,
            state,
            pos: 0,
            split: &Serial,
            #[cfg(any(test, feature = "std"))]
            prefill: None,
        }
    }

    /// Hands the rows of large matrices to `split` (several threads, on the desktop). The
    /// results are bit-identical to one thread's.
    pub fn with_row_split(mut self, split: &'m dyn RowSplit) -> Self {
        self.split = split;
        self
    }

    /// Prefills prompts in batches with `scratch` (sized for this model), matrix-matrix work
    /// instead of one position at a time; the cache and logits are bit-identical either way.
    /// Desktop only (the `std` feature).
    #[cfg(any(test, feature = "std"))]
    pub fn with_prefill(mut self, scratch: Prefill<'s>) -> Self {
        self.prefill = Some(scratch);
        self
    }

    /// Positions used so far.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The logits computed by the last step: the scores of the token after the last one fed.
    pub fn logits(&self) -> &[f32] {
        self.state.logits()
    }

    /// Forgets everything: the next token goes to position 0.
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Feeds one token at the next position and returns the logits for the token after it.
    pub fn step(&mut self, token: u32) -> Result<&[f32], ForwardError> {
        let pos = self.pos;
        forward(self.model, &mut self.state, token, pos, self.split, true)?;
        self.state.record_token(pos, token);
        self.pos += 1;
        Ok(self.state.logits())
    }

    /// Feeds one token whose prediction nobody reads: [`Session::step`] without the output head.
    fn feed(&mut self, token: u32) -> Result<(), ForwardError> {
        let pos = self.pos;
        forward(self.model, &mut self.state, token, pos, self.split, false)?;
        self.state.record_token(pos, token);
        self.pos += 1;
        Ok(())
    }

    /// Feeds `tokens` whose predictions nobody reads: in batches when there is a prefill
    /// scratch, else one position at a time.
    fn feed_all(&mut self, tokens: &[u32]) -> Result<(), ForwardError> {
        #[cfg(any(test, feature = "std"))]
        if let Some(scratch) = self.prefill.as_mut() {
            let pos = self.pos;
            prefill(self.model, &mut self.state, scratch, tokens, pos, self.split, None)?;
            for (i, &t) in tokens.iter().enumerate() {
                self.state.record_token(pos + i, t);
            }
            self.pos = pos + tokens.len();
            return Ok(());
        }
        for &t in tokens {
            self.feed(t)?;
        }
        Ok(())
    }

    /// Feeds one token and lets `sampler` choose the next from the logits and every token fed so
    /// far (prompt included, as transformers' processors see them).
    /// `ban` is a token made impossible first (`-inf`: the same for every processor after it).
    fn step_and_pick(
        &mut self,
        token: u32,
        sampler: &mut Sampler,
        ban: Option<u32>,
    ) -> Result<u32, ForwardError> {
        self.step(token)?;
        let math = self.state.math();
        let (logits, history) = self.state.logits_and_history(self.pos);
        if let Some(l) = ban.and_then(|t| logits.get_mut(t as usize)) {
            *l = f32::NEG_INFINITY;
        }
        // The integer path's greedy choice compares integers; the sampler's does the same with
        // f32 comparisons, which a core with no FPU makes in software.
        if math == Math::Integer && sampler.is_plain_greedy() {
            return Ok(integer::argmax(logits));
        }
        Ok(sampler.sample(logits, history))
    }

    /// Starts from position 0, feeds `prompt`, then greedily produces up to `max_tokens` tokens,
    /// calling `on_token` with each as soon as it is chosen. See the module docs for the stop rules.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        on_token: impl FnMut(u32),
    ) -> Result<Generated, SessionError> {
        self.generate_with(prompt, max_tokens, &mut Sampler::greedy(), on_token)
    }

    /// [`Session::generate`] with the next token chosen by `sampler` (greedy, or transformers'
    /// sampling controls with a seed).
    pub fn generate_with(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        sampler: &mut Sampler,
        mut on_token: impl FnMut(u32),
    ) -> Result<Generated, SessionError> {
        let stops = Stops::model(self.model);
        self.generate_until(prompt, max_tokens, sampler, stops, |t| {
            on_token(t);
            false
        })
    }

    /// [`Session::generate_with`] with the end-of-text rules `stops`, and `on_token` returning
    /// whether to stop after the token it was given ([`StopReason::Caller`]).
    pub fn generate_until(
        &mut self,
        prompt: &[u32],
        max_tokens: usize,
        sampler: &mut Sampler,
        stops: Stops,
        mut on_token: impl FnMut(u32) -> bool,
    ) -> Result<Generated, SessionError> {
        let n_ctx = self.model.hparams.n_ctx;
        if prompt.is_empty() {
            return Err(SessionError::EmptyPrompt);
        }
        if prompt.len() > n_ctx {
            return Err(SessionError::PromptTooLong { len: prompt.len(), n_ctx });
        }
        self.reset();
        let (last, head) = match prompt.split_last() {
            Some(split) => split,
            None => return Err(SessionError::EmptyPrompt),
        };
        let ban = |n: usize| stops.eos.filter(|_| n < stops.min_new_tokens);
        // Only the last prompt position's logits are read.
        self.feed_all(head)?;
        let mut next = self.step_and_pick(*last, sampler, ban(0))?;
        let mut n_generated = 0;
        if max_tokens == 0 {
            return Ok(Generated { stop: StopReason::TokenLimit, n_generated });
        }
        loop {
            if Some(next) == stops.eos {
                return Ok(Generated { stop: StopReason::EndOfText, n_generated });
            }
            let stop = on_token(next);
            n_generated += 1;
            if stop {
                return Ok(Generated { stop: StopReason::Caller, n_generated });
            }
            if n_generated >= max_tokens {
                return Ok(Generated { stop: StopReason::TokenLimit, n_generated });
            }
            if self.pos >= n_ctx {
                return Ok(Generated { stop: StopReason::ContextFull, n_generated });
            }
            next = self.step_and_pick(next, sampler, ban(n_generated))?;
        }
    }
}

/// A 32-bit FNV-1a hash of the logits' IEEE bit patterns (little-endian bytes, in order): equal
/// checksums mean bit-identical logits, which is how the device's run is compared with the
/// desktop's (`mote generate --json` prints the same number as the firmware's summary line).
pub fn logits_checksum(logits: &[f32]) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    logits
        .iter()
        .flat_map(|v| v.to_bits().to_le_bytes())
        .fold(OFFSET, |h, b| (h ^ u32::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod session_tests {
    use super::*;
    use crate::forward::step_logits;
    use crate::model::test_model::{load, Meta, Spec};
    use crate::sampler::argmax;
    use crate::state::KvType;

    #[test]
    fn logits_checksum_is_fnv1a_of_the_le_bit_patterns() {
        // Values from an independent FNV-1a over `struct.pack('<2f', 1.0, -2.5)` in Python.
        assert_eq!(logits_checksum(&[]), 0x811c_9dc5);
        assert_eq!(logits_checksum(&[1.0, -2.5]), 0x787d_66f8);
        // Any bit flip shows, including a zero's sign.
        assert_ne!(logits_checksum(&[0.0]), logits_checksum(&[-0.0]));
    }

    fn run(
        spec: Spec,
        prompt: &[u32],
        max_tokens: usize,
    ) -> (Result<Generated, SessionError>, Vec<u32>, Vec<u32>) {
        let blob = spec.build();
        let m = load(&blob);
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, KvType::F32)];
        let s = RunState::new(&m.hparams, KvType::F32, &mut buf).unwrap();
        let mut session = Session::new(&m, s);
        let mut streamed = Vec::new();
        let r = session.generate(prompt, max_tokens, |t| streamed.push(t));
        let expected =
            if r.is_ok() { greedy_by_steps(&m, prompt, streamed.len() + 1) } else { vec![] };
        (r, streamed, expected)
    }

    /// What greedy decoding must give: the argmax after each fed token, by plain forward steps.
    fn greedy_by_steps(m: &Model<'_>, prompt: &[u32], n: usize) -> Vec<u32> {
        let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, KvType::F32)];
        let mut s = RunState::new(&m.hparams, KvType::F32, &mut buf).unwrap();
        let mut next = 0;
        for (p, &t) in prompt.iter().enumerate() {
            next = argmax(&step_logits(m, &mut s, t, p).unwrap());
        }
        let mut out = vec![next];
        let mut p = prompt.len();
        while out.len() < n && p < m.hparams.n_ctx {
            next = argmax(&step_logits(m, &mut s, next, p).unwrap());
            out.push(next);
            p += 1;
        }
        out
    }

    fn without_eos(spec: Spec) -> Spec {
        let mut spec = spec;
        spec.meta.retain(|(k, _)| k != "tokenizer.ggml.eos_token_id");
        spec
    }

    #[test]
    fn stops_at_token_limit_streaming_greedy_tokens() {
        let (r, streamed, expected) = run(without_eos(Spec::gpt2(0)), &[1, 2], 3);
        assert_eq!(r, Ok(Generated { stop: StopReason::TokenLimit, n_generated: 3 }));
        assert_eq!(streamed, expected[..3]);
    }

    #[test]
    fn stops_cleanly_when_context_is_full() {
        // T = 8: a prompt of 6 leaves positions 6 and 7, so the third new token cannot be fed.
        let (r, streamed, expected) = run(without_eos(Spec::gpt2(0)), &[1, 2, 3, 4, 5, 6], 100);
        assert_eq!(r, Ok(Generated { stop: StopReason::ContextFull, n_generated: 3 }));
        assert_eq!(streamed, expected[..3]);
        // A prompt that fills the context still yields the one token its last position predicts.
        let (r, _, _) = run(without_eos(Spec::gpt2(0)), &[1; 8], 100);
        assert_eq!(r, Ok(Generated { stop: StopReason::ContextFull, n_generated: 1 }));
    }

    #[test]
    fn stops_at_end_of_text_without_streaming_it() {
        let (_, _, expected) = run(without_eos(Spec::gpt2(0)), &[5], 2);
        let eos = expected[1];
        let spec = Spec::gpt2(0).set("tokenizer.ggml.eos_token_id", Meta::U32(eos));
        let (r, streamed, _) = run(spec, &[5], 10);
        if expected[0] == eos {
            assert_eq!(r, Ok(Generated { stop: StopReason::EndOfText, n_generated: 0 }));
        } else {
            assert_eq!(r, Ok(Generated { stop: StopReason::EndOfText, n_generated: 1 }));
            assert_eq!(streamed, [expected[0]]);
        }
    }

    #[test]
    fn rejects_empty_and_too_long_prompts_and_bad_tokens() {
        let (r, ..) = run(Spec::gpt2(0), &[], 4);
        assert_eq!(r, Err(SessionError::EmptyPrompt));
        let (r, ..) = run(Spec::gpt2(0), &[1; 9], 4);
        assert_eq!(r, Err(SessionError::PromptTooLong { len: 9, n_ctx: 8 }));
        let (r, streamed, _) = run(Spec::gpt2(0), &[1, 40], 4);
        assert_eq!(
            r,
            Err(SessionError::Forward(ForwardError::TokenOutOfRange { token: 40, n_vocab: 40 }))
        );
        assert!(streamed.is_empty());
    }

    #[test]
    fn batched_prefill_generates_the_same_tokens_and_logits() {
        let blob = without_eos(Spec::gpt2(8)).build();
        let m = load(&blob);
        let prompt = [3, 1, 4, 1, 5];
        let run = |batch: Option<usize>| {
            let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, KvType::Q8_0)];
            let s = RunState::new(&m.hparams, KvType::Q8_0, &mut buf).unwrap();
            let mut pbuf = vec![0u8; Prefill::bytes_needed(&m.hparams, batch.unwrap_or(1))];
            let mut session = Session::new(&m, s);
            if let Some(b) = batch {
                session = session.with_prefill(Prefill::new(&m.hparams, b, &mut pbuf).unwrap());
            }
            let mut streamed = Vec::new();
            let r = session.generate(&prompt, 3, |t| streamed.push(t)).unwrap();
            (r, streamed, session.pos(), logits_checksum(session.logits()))
        };
        let expected = run(None);
        assert_eq!(expected.2, prompt.len() + 2);
        for batch in [1, 2, 4, 16] {
            assert_eq!(run(Some(batch)), expected, "batch {batch}");
        }
    }

    #[test]
    fn stops_name_the_end_of_text_keep_it_away_and_the_caller_can_stop() {
        let blob = without_eos(Spec::gpt2(0)).build();
        let m = load(&blob);
        let greedy = greedy_by_steps(&m, &[5], 4);
        let eos = greedy[1];
        let run = |stops: Stops, stop_after: usize| {
            let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, KvType::F32)];
            let s = RunState::new(&m.hparams, KvType::F32, &mut buf).unwrap();
            let mut session = Session::new(&m, s);
            let mut streamed = Vec::new();
            let r = session
                .generate_until(&[5], 4, &mut Sampler::greedy(), stops, |t| {
                    streamed.push(t);
                    streamed.len() >= stop_after
                })
                .unwrap();
            (r, streamed)
        };
        // No end of text: the greedy tokens.
        let (r, streamed) = run(Stops { eos: None, min_new_tokens: 0 }, 99);
        assert_eq!((r.stop, streamed), (StopReason::TokenLimit, greedy.clone()));
        // The second greedy token as end of text: one token, unless it is also the first.
        let (r, streamed) = run(Stops { eos: Some(eos), min_new_tokens: 0 }, 99);
        assert_eq!(r.stop, StopReason::EndOfText);
        assert_eq!(streamed, greedy[..greedy.iter().position(|&t| t == eos).unwrap()]);
        // Made impossible for the first four new tokens: never chosen.
        let (r, streamed) = run(Stops { eos: Some(eos), min_new_tokens: 4 }, 99);
        assert_eq!(r.stop, StopReason::TokenLimit);
        assert_eq!(streamed.len(), 4);
        assert!(!streamed.contains(&eos));
        // The caller stops after the second token, which is streamed.
        let (r, streamed) = run(Stops { eos: None, min_new_tokens: 0 }, 2);
        assert_eq!(
            (r.stop, r.n_generated, streamed),
            (StopReason::Caller, 2, greedy[..2].to_vec())
        );
    }

    #[test]
    fn zero_max_tokens_generates_nothing() {
        let (r, streamed, _) = run(Spec::gpt2(0), &[1], 0);
        assert_eq!(r, Ok(Generated { stop: StopReason::TokenLimit, n_generated: 0 }));
        assert!(streamed.is_empty());
    }
}
