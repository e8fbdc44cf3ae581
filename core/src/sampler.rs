//! Choosing the next token: greedy argmax by default, or Hugging Face `generate()`'s controls —
//! repetition penalty, no-repeat n-grams, temperature, top-k, top-p — with a seeded generator, so a
//! seed yields the same text on every target.
//!
//! The controls are applied in transformers' order (`_get_logits_processor`): the processors
//! `RepetitionPenaltyLogitsProcessor` and `NoRepeatNGramLogitsProcessor` (these apply to greedy
//! decoding too), then the warpers `TemperatureLogitsWarper`, `TopKLogitsWarper` and
//! `TopPLogitsWarper`, then a draw from the softmax of what is left.
//!
//! Bounded memory: nothing is sorted and nothing is copied. The k-th largest logit and the top-p
//! cut-off are found by bisection over the 32-bit order-preserving key of an `f32`, so each costs
//! 32 passes over the vocabulary and no buffer: `O(32 V)` compares for top-k and `O(32 V)` additions
//! for top-p (on the probabilities, computed once in place). The repetition penalty visits each
//! distinct token of the history once, found by looking back over the history: `O(H^2 / 2)` compares
//! for `H` tokens of history, no table. No-repeat n-grams cost `O(H n)`.
//!
//! Letters: `V` the vocabulary size, `H` the number of tokens so far (prompt and generated).
//!
//! Ties: transformers sorts, so among logits of exactly equal value it may drop some and keep
//! others; here equal values are always kept or dropped together. With real logits exact ties are
//! rare outside masked (`-inf`) entries, whose probability is zero either way.

use core::fmt;
use rand_core::{RngCore, SeedableRng};
use rand_pcg::Pcg32;

/// The sampling controls. The default is greedy decoding with no penalties.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SamplerConfig {
    /// Softmax temperature; `0` means greedy (argmax), as in llama.cpp.
    pub temperature: f32,
    /// Keep only the `k` most likely tokens; `None` keeps all.
    pub top_k: Option<u32>,
    /// Keep the smallest set of most likely tokens whose probability reaches `top_p`; `1` keeps all.
    pub top_p: f32,
    /// Divide positive (multiply negative) logits of tokens already seen by this; `1` is off.
    pub repetition_penalty: f32,
    /// Never repeat an n-gram of this size; `0` is off.
    pub no_repeat_ngram_size: u32,
    /// Seed of the pseudo-random generator (PCG32).
    pub seed: u64,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: 1.0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            seed: 0,
        }
    }
}

impl SamplerConfig {
    /// Whether this configuration draws at random (temperature above zero).
    pub fn is_sampling(&self) -> bool {
        self.temperature > 0.0
    }

    /// Checks the settings against each other and the model's context length.
    pub fn validate(&self, n_ctx: usize) -> Result<(), SamplerError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(SamplerError::Temperature(self.temperature));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(SamplerError::TopP(self.top_p));
        }
        if self.is_sampling() && self.top_k == Some(0) {
            return Err(SamplerError::TopKZero);
        }
        if !(self.repetition_penalty.is_finite() && self.repetition_penalty > 0.0) {
            return Err(SamplerError::RepetitionPenalty(self.repetition_penalty));
        }
        if self.no_repeat_ngram_size as usize > n_ctx {
            return Err(SamplerError::NgramTooLong { size: self.no_repeat_ngram_size, n_ctx });
        }
        Ok(())
    }
}

/// An invalid sampling setting, with the value given.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SamplerError {
    /// Temperature negative, NaN or infinite.
    Temperature(f32),
    /// `top_p` outside `(0, 1]`.
    TopP(f32),
    /// `top_k` of zero while sampling (it would keep nothing).
    TopKZero,
    /// Repetition penalty not a positive finite number.
    RepetitionPenalty(f32),
    /// An n-gram longer than the context.
    NgramTooLong {
        /// The size asked for.
        size: u32,
        /// The model's context length.
        n_ctx: usize,
    },
}

impl fmt::Display for SamplerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Temperature(t) => write!(f, "temperature {t} must be a finite number >= 0"),
            Self::TopP(p) => write!(f, "top_p {p} must be in (0, 1]"),
            Self::TopKZero => write!(f, "top_k 0 keeps no token; leave it unset to keep all"),
            Self::RepetitionPenalty(p) => {
                write!(f, "repetition penalty {p} must be a finite number > 0 (1 is off)")
            }
            Self::NgramTooLong { size, n_ctx } => {
                write!(f, "no-repeat n-gram size {size} is larger than the context ({n_ctx})")
            }
        }
    }
}

impl core::error::Error for SamplerError {}

/// A configured sampler with its generator state.
#[derive(Clone, Debug)]
pub struct Sampler {
    config: SamplerConfig,
    rng: Pcg32,
}

impl Sampler {
    /// A sampler for a model with context length `n_ctx`.
    pub fn new(config: SamplerConfig, n_ctx: usize) -> Result<Self, SamplerError> {
        config.validate(n_ctx)?;
        Ok(Self { config, rng: Pcg32::seed_from_u64(config.seed) })
    }

    /// Greedy decoding with no penalties (the default configuration, valid for any model).
    pub fn greedy() -> Self {
        let config = SamplerConfig::default();
        Self { config, rng: Pcg32::seed_from_u64(config.seed) }
    }

    /// Whether this is greedy decoding with no penalties: the choice is the argmax of the logits.
    pub fn is_plain_greedy(&self) -> bool {
        let c = self.config;
        !c.is_sampling() && c.repetition_penalty == 1.0 && c.no_repeat_ngram_size == 0
    }

    /// The configuration.
    pub fn config(&self) -> &SamplerConfig {
        &self.config
    }

    /// Picks the next token from `logits(V)` given the `history(H)` of tokens so far.
    ///
    /// `logits` is used as scratch: on return it holds the processed scores (greedy) or the
    /// probabilities of the tokens still allowed (sampling).
    pub fn sample(&mut self, logits: &mut [f32], history: &[u32]) -> u32 {
        let c = self.config;
        if self.is_plain_greedy() {
            // Plain greedy: the NaN pass below and the argmax in one pass over the vocabulary.
            return argmax_nan_to_neg_inf(logits);
        }
        // A NaN logit (a broken model) is treated as impossible rather than poisoning the softmax.
        for s in logits.iter_mut().filter(|s| s.is_nan()) {
            *s = f32::NEG_INFINITY;
        }
        if c.repetition_penalty != 1.0 {
            apply_repetition_penalty(logits, history, c.repetition_penalty);
        }
        if c.no_repeat_ngram_size > 0 {
            apply_no_repeat_ngram(logits, history, c.no_repeat_ngram_size as usize);
        }
        if !c.is_sampling() {
            return argmax(logits);
        }
        if c.temperature != 1.0 {
            apply_temperature(logits, c.temperature);
        }
        if let Some(k) = c.top_k {
            apply_top_k(logits, k as usize);
        }
        softmax_in_place(logits);
        if c.top_p < 1.0 {
            apply_top_p(logits, c.top_p);
        }
        draw(logits, unit_f32(self.rng.next_u32()))
    }
}

/// Index of the largest value; the first one on ties; 0 when all are NaN or the slice is empty.
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in x.iter().enumerate() {
        if v > best_v {
            best = i;
            best_v = v;
        }
    }
    best as u32
}

/// [`argmax`] of `x`, and every NaN in `x` replaced by `-inf` on the way: the same index and the
/// same `x` as the replacement pass followed by [`argmax`] (a NaN is never larger than anything,
/// and neither is the `-inf` it becomes), in one pass.
///
/// On cores with the DSP extension the values go eight at a time through assembly
/// (`ops::cortex_m::argmax_nan_to_neg_inf8`), the rest here.
pub fn argmax_nan_to_neg_inf(x: &mut [f32]) -> u32 {
    #[cfg(all(target_arch = "arm", target_feature = "dsp"))]
    let (mut best, mut best_v, done) = crate::ops::cortex_m::argmax_nan_to_neg_inf8(x);
    #[cfg(not(all(target_arch = "arm", target_feature = "dsp")))]
    let (mut best, mut best_v, done) = (0usize, f32::NEG_INFINITY, 0usize);
    for (i, v) in x.iter_mut().enumerate().skip(done) {
        if *v > best_v {
            best = i;
            best_v = *v;
        } else if v.is_nan() {
            *v = f32::NEG_INFINITY;
        }
    }
    best as u32
}

/// `RepetitionPenaltyLogitsProcessor`: for every distinct token `t` in `history`,
/// `logits[t] = logits[t] < 0 ? logits[t] * penalty : logits[t] / penalty`. Ids outside the
/// vocabulary are ignored.
pub fn apply_repetition_penalty(logits: &mut [f32], history: &[u32], penalty: f32) {
    for (i, &t) in history.iter().enumerate() {
        if history[..i].contains(&t) {
            continue; // penalised once already
        }
        if let Some(s) = logits.get_mut(t as usize) {
            *s = if *s < 0.0 { *s * penalty } else { *s / penalty };
        }
    }
}

/// `NoRepeatNGramLogitsProcessor`: bans (sets to `-inf`) every token that would complete an n-gram
/// of size `n` already present in `history`.
pub fn apply_no_repeat_ngram(logits: &mut [f32], history: &[u32], n: usize) {
    let h = history.len();
    if n == 0 || h < n {
        return;
    }
    // The last n-1 tokens, and each earlier window of n whose first n-1 tokens equal them.
    let prefix = &history[h + 1 - n..];
    for w in history.windows(n) {
        if w[..n - 1] == *prefix {
            if let Some(s) = logits.get_mut(w[n - 1] as usize) {
                *s = f32::NEG_INFINITY;
            }
        }
    }
}

/// `TemperatureLogitsWarper`: `logits = logits / t`.
pub fn apply_temperature(logits: &mut [f32], t: f32) {
    for s in logits.iter_mut() {
        *s /= t;
    }
}

/// `TopKLogitsWarper`: sets to `-inf` every logit smaller than the `k`-th largest (ties with it are
/// kept). `k` of 0 or at least `V` keeps everything.
pub fn apply_top_k(logits: &mut [f32], k: usize) {
    if k == 0 || k >= logits.len() {
        return;
    }
    // The largest key t with at least k keys >= t is the k-th largest key.
    let kth = bisect_max(|t| logits.iter().filter(|&&s| order_key(s) >= t).count() >= k);
    for s in logits.iter_mut() {
        if order_key(*s) < kth {
            *s = f32::NEG_INFINITY;
        }
    }
}

/// `TopPLogitsWarper` on probabilities `p(V)` (the softmax of the logits): zeroes the least likely
/// tokens whose cumulative probability, counted from the least likely up, stays at or below
/// `1 - top_p`. The most likely token is always kept.
pub fn apply_top_p(p: &mut [f32], top_p: f32) {
    let limit = 1.0 - top_p;
    let mass_up_to = |t: u32| -> f32 { p.iter().filter(|&&x| order_key(x) <= t).sum() };
    // The largest key t whose cumulative mass (all keys <= t) is within the limit.
    if mass_up_to(0) > limit {
        return; // even the smallest key is over: nothing is removed
    }
    let cut = bisect_max(|t| mass_up_to(t) <= limit);
    let keep = argmax(p) as usize;
    for (i, x) in p.iter_mut().enumerate() {
        if i != keep && order_key(*x) <= cut {
            *x = 0.0;
        }
    }
}

/// `x = softmax(x)`, with `-inf` entries giving probability 0.
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        // All masked or NaN: nothing sensible to normalise; leave a one-hot on the argmax.
        let i = argmax(x) as usize;
        x.iter_mut().for_each(|v| *v = 0.0);
        if let Some(v) = x.get_mut(i) {
            *v = 1.0;
        }
        return;
    }
    let mut sum = 0.0f32;
    for v in x.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in x.iter_mut() {
        *v /= sum;
    }
}

/// Draws an index from (unnormalised) weights `p(V)` with `u` uniform in `[0, 1)`: the first index
/// whose running sum exceeds `u` times the total.
pub fn draw(p: &[f32], u: f32) -> u32 {
    let total: f32 = p.iter().sum();
    let target = u * total;
    let mut acc = 0.0f32;
    let mut last = argmax(p);
    for (i, &x) in p.iter().enumerate() {
        if x > 0.0 {
            acc += x;
            last = i as u32;
            if acc > target {
                return i as u32;
            }
        }
    }
    last // rounding left the target just past the sum: the last allowed token
}

/// A u32 to a float uniform in `[0, 1)` using its top 24 bits (exactly representable).
fn unit_f32(r: u32) -> f32 {
    (r >> 8) as f32 * (1.0 / (1u32 << 24) as f32)
}

/// A u32 whose unsigned order is the order of the floats (`-inf` < ... < `-0` < `+0` < ... < `inf`).
/// NaN sorts below everything, so it is the first thing any cut removes.
fn order_key(x: f32) -> u32 {
    if x.is_nan() {
        return 0;
    }
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The largest `t` in `0..=u32::MAX` with `pred(t)`, for a predicate true up to some point and false
/// after; 0 if it holds nowhere. 32 evaluations.
fn bisect_max(pred: impl Fn(u32) -> bool) -> u32 {
    let (mut lo, mut hi) = (0u64, 1u64 << 32); // pred(lo) assumed, answer in [lo, hi)
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if pred(mid as u32) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEG: f32 = f32::NEG_INFINITY;

    #[test]
    fn order_key_preserves_order() {
        let xs = [NEG, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.0, f32::INFINITY];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) <= order_key(w[1]), "{:?}", w);
        }
        assert_eq!(order_key(f32::NAN), 0);
    }

    #[test]
    fn top_k_keeps_the_k_largest_and_their_ties() {
        let mut x = [1.0, 5.0, 3.0, 3.0, -2.0, 4.0];
        apply_top_k(&mut x, 3);
        assert_eq!(x, [NEG, 5.0, 3.0, 3.0, NEG, 4.0]);
        let mut y = [1.0, 2.0];
        apply_top_k(&mut y, 5);
        assert_eq!(y, [1.0, 2.0]);
    }

    #[test]
    fn top_p_keeps_the_smallest_head_reaching_p() {
        // Ascending cumulative mass: 0.1, 0.3, 0.6, 1.0. top_p 0.65 removes mass <= 0.35: the 0.1
        // and the 0.2.
        let mut p = [0.3, 0.1, 0.4, 0.2];
        apply_top_p(&mut p, 0.65);
        assert_eq!(p, [0.3, 0.0, 0.4, 0.0]);
        // A tiny top_p keeps only the most likely.
        let mut p = [0.3, 0.1, 0.4, 0.2];
        apply_top_p(&mut p, 0.01);
        assert_eq!(p, [0.0, 0.0, 0.4, 0.0]);
    }

    #[test]
    fn repetition_penalty_applies_once_per_distinct_token() {
        let mut x = [2.0, -2.0, 1.0];
        apply_repetition_penalty(&mut x, &[0, 1, 0, 0, 7], 2.0);
        assert_eq!(x, [1.0, -4.0, 1.0]);
    }

    #[test]
    fn no_repeat_ngram_bans_completions_of_seen_ngrams() {
        // History 5 6 7 5 6: the bigram prefix "6" was followed by 7 -> with n = 2, ban 7.
        // With n = 3, prefix "5 6" was followed by 7 -> ban 7.
        let mut x = [0.0; 8];
        apply_no_repeat_ngram(&mut x, &[5, 6, 7, 5, 6], 2);
        assert_eq!(x[7], NEG);
        assert_eq!(x.iter().filter(|v| v.is_infinite()).count(), 1);
        let mut x = [0.0; 8];
        apply_no_repeat_ngram(&mut x, &[5, 6, 7, 5, 6], 3);
        assert_eq!(x[7], NEG);
        let mut x = [0.0; 8];
        apply_no_repeat_ngram(&mut x, &[5, 6], 3);
        assert!(x.iter().all(|v| *v == 0.0));
    }

    #[test]
    fn greedy_is_argmax_and_same_seed_same_draws() {
        let mut s = Sampler::new(SamplerConfig::default(), 16).unwrap();
        assert_eq!(s.sample(&mut [0.1, 0.9, 0.3], &[]), 1);
        let cfg = SamplerConfig { temperature: 1.0, seed: 42, ..Default::default() };
        let mut a = Sampler::new(cfg, 16).unwrap();
        let mut b = Sampler::new(cfg, 16).unwrap();
        for _ in 0..50 {
            let logits = [0.5, 0.2, 0.1, 0.4];
            assert_eq!(a.sample(&mut logits.clone(), &[]), b.sample(&mut logits.clone(), &[]));
        }
    }

    /// The two-pass greedy choice the one-pass one replaces: NaN to `-inf`, then [`argmax`].
    fn greedy_two_passes(x: &mut [f32]) -> u32 {
        for s in x.iter_mut().filter(|s| s.is_nan()) {
            *s = NEG;
        }
        argmax(x)
    }

    #[test]
    fn one_pass_greedy_matches_nan_pass_then_argmax() {
        // Values drawn from a small set so that ties, NaNs, infinities and signed zeros all occur.
        const POOL: [f32; 9] = [f32::NAN, NEG, f32::INFINITY, -0.0, 0.0, 1.5, -1.5, 3.0, f32::MIN];
        let mut rng = Pcg32::seed_from_u64(11);
        let mut cases: Vec<Vec<f32>> = vec![vec![], vec![f32::NAN; 5], vec![NEG; 3]];
        for len in 1..40 {
            for _ in 0..200 {
                cases.push((0..len).map(|_| POOL[rng.next_u32() as usize % POOL.len()]).collect());
            }
        }
        for _ in 0..200 {
            cases.push((0..2048).map(|_| f32::from_bits(rng.next_u32())).collect());
        }
        for x in cases {
            let (mut one, mut two) = (x.clone(), x.clone());
            let mut s = Sampler::greedy();
            let picked = s.sample(&mut one, &[]);
            assert_eq!(picked, greedy_two_passes(&mut two), "{x:?}");
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&one), bits(&two), "{x:?}");
        }
    }

    #[test]
    fn draw_follows_the_distribution() {
        let mut counts = [0u32; 3];
        let mut rng = Pcg32::seed_from_u64(7);
        for _ in 0..30_000 {
            counts[draw(&[0.2, 0.0, 0.8], unit_f32(rng.next_u32())) as usize] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((counts[0] as f32 / 30_000.0 - 0.2).abs() < 0.015, "{counts:?}");
    }

    #[test]
    fn rejects_invalid_settings() {
        let base = SamplerConfig { temperature: 0.8, ..Default::default() };
        let bad = [
            (SamplerConfig { temperature: -1.0, ..base }, SamplerError::Temperature(-1.0)),
            (SamplerConfig { top_p: 0.0, ..base }, SamplerError::TopP(0.0)),
            (SamplerConfig { top_p: 1.5, ..base }, SamplerError::TopP(1.5)),
            (SamplerConfig { top_k: Some(0), ..base }, SamplerError::TopKZero),
            (
                SamplerConfig { repetition_penalty: 0.0, ..base },
                SamplerError::RepetitionPenalty(0.0),
            ),
            (
                SamplerConfig { no_repeat_ngram_size: 300, ..base },
                SamplerError::NgramTooLong { size: 300, n_ctx: 128 },
            ),
        ];
        for (cfg, err) in bad {
            assert_eq!(Sampler::new(cfg, 128).unwrap_err(), err);
        }
        assert!(matches!(
            Sampler::new(SamplerConfig { temperature: f32::NAN, ..base }, 128),
            Err(SamplerError::Temperature(_))
        ));
        // top_k 0 is harmless when greedy.
        assert!(Sampler::new(SamplerConfig { top_k: Some(0), ..Default::default() }, 128).is_ok());
    }

    #[test]
    fn survives_nan_and_all_masked_logits() {
        let cfg =
            SamplerConfig { temperature: 0.7, top_k: Some(2), top_p: 0.9, ..Default::default() };
        let mut s = Sampler::new(cfg, 8).unwrap();
        let t = s.sample(&mut [f32::NAN, f32::NAN, 1.0], &[]);
        assert_eq!(t, 2);
        let t = s.sample(&mut [NEG, NEG, NEG], &[]);
        assert!(t < 3);
    }
}
