//! mote's sampler against transformers' logits processors (fixtures written by
//! `tools/py/sampler_reference.py`): the same processed scores for greedy settings, the same final
//! distribution for sampling settings.

use mote_core::sampler::{Sampler, SamplerConfig};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    temperature: f32,
    top_k: Option<u32>,
    top_p: f32,
    repetition_penalty: f32,
    no_repeat_ngram_size: u32,
    logits: Vec<f32>,
    history: Vec<u32>,
    /// Greedy settings: transformers' processed scores (`None` = `-inf`) and their argmax.
    scores: Option<Vec<Option<f32>>>,
    argmax: Option<u32>,
    /// Sampling settings: softmax of transformers' processed scores.
    probs: Option<Vec<f32>>,
}

fn fixture() -> Fixture {
    let path = mote_tests::repo_root().join("tests/fixtures/sampler/cases.json");
    let text = std::fs::read_to_string(&path).expect("fixture present");
    serde_json::from_str(&text).expect("fixture parses")
}

fn config(c: &Case) -> SamplerConfig {
    SamplerConfig {
        temperature: c.temperature,
        top_k: c.top_k,
        top_p: c.top_p,
        repetition_penalty: c.repetition_penalty,
        no_repeat_ngram_size: c.no_repeat_ngram_size,
        seed: 7,
    }
}

/// mote's choice for `c`, and the logits as the sampler left them (processed, or probabilities).
fn sample(c: &Case) -> (u32, Vec<f32>) {
    let mut logits = c.logits.clone();
    let token = Sampler::new(config(c), 1024).unwrap().sample(&mut logits, &c.history);
    (token, logits)
}

/// The fixture's cases that `has`, at least `at_least` of them (fewer means the fixture lost some).
fn cases(has: fn(&Case) -> bool, at_least: usize) -> Vec<Case> {
    let cases: Vec<Case> = fixture().cases.into_iter().filter(has).collect();
    assert!(cases.len() >= at_least, "only {} such cases", cases.len());
    cases
}

#[test]
fn greedy_processors_match_transformers() {
    for c in &cases(|c| c.scores.is_some(), 9) {
        let (token, logits) = sample(c);
        assert_eq!(Some(token), c.argmax, "{}: argmax", c.name);
        for (i, (ours, theirs)) in logits.iter().zip(c.scores.as_ref().unwrap()).enumerate() {
            match theirs {
                None => assert_eq!(*ours, f32::NEG_INFINITY, "{}: token {i} not banned", c.name),
                Some(t) => assert!((ours - t).abs() <= 1e-6 * t.abs().max(1.0), "{}: {i}", c.name),
            }
        }
    }
}

#[test]
fn sampling_distribution_matches_transformers() {
    for c in &cases(|c| c.probs.is_some(), 21) {
        let (token, p) = sample(c);
        let total: f32 = p.iter().sum();
        let theirs = c.probs.as_ref().unwrap();
        for (i, (ours, theirs)) in p.iter().zip(theirs).enumerate() {
            let ours = ours / total;
            assert!((ours - theirs).abs() <= 2e-6, "{}: token {i}: {ours} vs {theirs}", c.name);
            // Exactly the same support: what transformers removed, mote removed.
            assert_eq!(ours == 0.0, *theirs == 0.0, "{}: token {i} support", c.name);
        }
        assert!(theirs[token as usize] > 0.0, "{}: drew a removed token", c.name);
    }
}
