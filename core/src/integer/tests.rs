//! The integer path against the float path, on the synthetic test models.

use super::*;
use crate::forward::{forward, ForwardError};
use crate::model::test_model::{load, logits_by_steps, Spec};
use crate::sampler::Sampler;
use crate::session::{logits_checksum, Session};
use crate::split::Serial;
use crate::state::{KvType, RunState, StateError};

const TOKENS: [u32; 8] = [3, 17, 0, 39, 8, 8, 21, 5];

/// The integer path's logits after each of `tokens`.
fn integer_logits(blob: &[u8], tokens: &[u32]) -> Vec<Vec<f32>> {
    let m = load(blob);
    let mut buf = vec![0u8; RunState::bytes_needed_math(&m.hparams, KvType::Q8_0, Math::Integer)];
    let mut s = RunState::new_math(&m.hparams, KvType::Q8_0, Math::Integer, &mut buf).unwrap();
    let mut out = Vec::new();
    for (p, &t) in tokens.iter().enumerate() {
        forward(&m, &mut s, t, p, &Serial, true).unwrap();
        out.push(s.logits().to_vec());
    }
    out
}

#[test]
fn integer_logits_track_the_float_path() {
    let blob = Spec::gpt2(8).build();
    let f = logits_by_steps(&blob, KvType::Q8_0, &TOKENS);
    let i = integer_logits(&blob, &TOKENS);
    let mut worst = 0.0f32;
    for (fp, ip) in f.iter().zip(&i) {
        let range = fp.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        for (a, b) in fp.iter().zip(ip) {
            worst = worst.max((a - b).abs() / range);
        }
    }
    // The two paths round activations differently (8-bit scale mantissas, f16 ones):
    // close, not equal.
    assert!(worst < 0.05, "worst difference {worst} of the logits' range");
    assert_ne!(f, i);
}

#[test]
fn integer_logits_are_exact_multiples_of_2_to_the_minus_16_and_reproducible() {
    let blob = Spec::gpt2(8).build();
    let a = integer_logits(&blob, &TOKENS);
    assert_eq!(a, integer_logits(&blob, &TOKENS));
    for v in a.iter().flatten() {
        let q = v * 65536.0;
        assert_eq!(q, q.round(), "{v}");
    }
}

#[test]
fn integer_session_greedy_is_the_integer_argmax_by_steps() {
    let mut spec = Spec::gpt2(8);
    spec.meta.retain(|(k, _)| k != "tokenizer.ggml.eos_token_id");
    let blob = spec.build();
    let m = load(&blob);
    let need = RunState::bytes_needed_math(&m.hparams, KvType::Q8_0, Math::Integer);
    let mut buf = vec![0u8; need];
    let s = RunState::new_math(&m.hparams, KvType::Q8_0, Math::Integer, &mut buf).unwrap();
    let mut session = Session::new(&m, s);
    let mut streamed = Vec::new();
    session.generate(&[5, 2], 4, |t| streamed.push(t)).unwrap();
    let checksum = logits_checksum(session.logits());
    // By plain steps: the argmax after each token fed.
    let mut fed = vec![5, 2];
    let mut want = Vec::new();
    for _ in 0..4 {
        let l = integer_logits(&blob, &fed);
        let next = crate::sampler::argmax(l.last().unwrap());
        assert_eq!(argmax(l.last().unwrap()), next);
        want.push(next);
        fed.push(next);
    }
    assert_eq!(streamed, want);
    // The last step's logits are those of the last token fed.
    let l = integer_logits(&blob, &fed[..fed.len() - 1]);
    assert_eq!(checksum, logits_checksum(l.last().unwrap()));
    // Sampling with a seed runs on the same logits.
    let mut buf = vec![0u8; need];
    let s = RunState::new_math(&m.hparams, KvType::Q8_0, Math::Integer, &mut buf).unwrap();
    let mut session = Session::new(&m, s);
    let cfg = crate::sampler::SamplerConfig { temperature: 0.8, seed: 7, ..Default::default() };
    let mut sampler = Sampler::new(cfg, m.hparams.n_ctx).unwrap();
    let r = session.generate_with(&[5, 2], 4, &mut sampler, |_| ()).unwrap();
    assert_eq!(r.n_generated, 4);
}

#[test]
fn rejects_weights_that_are_not_q8_0_and_kv_that_is_not_q8_0() {
    let blob = Spec::gpt2(0).build();
    let m = load(&blob);
    let mut buf = vec![0u8; RunState::bytes_needed(&m.hparams, KvType::Q8_0)];
    let mut s = RunState::new_math(&m.hparams, KvType::Q8_0, Math::Integer, &mut buf).unwrap();
    let err = forward(&m, &mut s, 1, 0, &Serial, true).unwrap_err();
    assert_eq!(err, ForwardError::IntegerNeedsQ8_0 { ty: GgmlType::F32 });
    assert_eq!(
        err.to_string(),
        "the integer path reads Q8_0 weight matrices only, this model has F32 ones"
    );
    for kv in [KvType::F32, KvType::F16] {
        let err = RunState::new_math(&m.hparams, kv, Math::Integer, &mut buf).err();
        assert_eq!(err, Some(StateError::IntegerNeedsQ8_0Kv { kv }));
    }
    assert_eq!(
        StateError::IntegerNeedsQ8_0Kv { kv: KvType::F16 }.to_string(),
        "the integer path needs a q8_0 KV cache, not f16"
    );
}

#[test]
fn argmax_orders_f32_bits_as_the_floats() {
    let v = [-3.5f32, f32::NEG_INFINITY, 2.0, -0.25, 2.0, 1e-5, 0.0];
    assert_eq!(argmax(&v), 2);
    assert_eq!(argmax(&[-2.0, -1.0, -3.0]), 1);
    assert_eq!(argmax(&[f32::NEG_INFINITY; 3]), 0);
    assert_eq!(argmax(&[]), 0);
}

/// The words of `src` before its tests, comments dropped.
fn code_of(src: &str) -> String {
    let code = src.split("#[cfg(test)]").next().unwrap_or("");
    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

#[test]
fn kernels_and_attention_name_no_float_type() {
    for (name, src) in [
        ("kernels.rs", include_str!("kernels.rs")),
        ("attention.rs", include_str!("attention.rs")),
        ("fixed.rs", include_str!("../fixed.rs")),
    ] {
        let code = code_of(src);
        for word in code.split(|c: char| !c.is_alphanumeric() && c != '_') {
            assert!(word != "f32" && word != "f64", "{name} names {word}");
        }
    }
}

#[test]
fn prefill_and_session_batches_give_the_integer_path_of_one_position_at_a_time() {
    use crate::prefill::{prefill, Prefill};
    let blob = Spec::gpt2(8).build();
    let m = load(&blob);
    let want = integer_logits(&blob, &TOKENS);
    let need = RunState::bytes_needed_math(&m.hparams, KvType::Q8_0, Math::Integer);
    let mut buf = vec![0u8; need];
    let mut s = RunState::new_math(&m.hparams, KvType::Q8_0, Math::Integer, &mut buf).unwrap();
    let mut pbuf = vec![0u8; Prefill::bytes_needed(&m.hparams, 4)];
    let mut p = Prefill::new(&m.hparams, 4, &mut pbuf).unwrap();
    let mut got = Vec::new();
    let mut on_logits = |_: usize, l: &[f32]| got.push(l.to_vec());
    prefill(&m, &mut s, &mut p, &TOKENS, 0, &Serial, Some(&mut on_logits)).unwrap();
    assert_eq!(got, want);
    assert_eq!(s.logits(), want.last().unwrap().as_slice());
}
