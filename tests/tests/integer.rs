//! The integer path (`Math::Integer`) on the default model: its top-1 predictions against the float
//! path's and transformers' float model's (fixtures from `tools/py/default_model_reference.py`),
//! and its greedy output pinned, so that a change to its bits shows (the device must reproduce
//! these bits exactly: `cargo xtask parity`).

use mote_core::gguf::Gguf;
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::sampler::argmax;
use mote_core::session::{logits_checksum, Session};
use mote_core::state::{KvType, RunState};
use mote_core::Math;

fn read_u32(name: &str) -> Vec<u32> {
    let path = mote_tests::repo_root().join("tests/fixtures/default-model").join(name);
    let b = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn default_model_blob() -> Vec<u8> {
    std::fs::read(
        mote_tests::repo_root().join("models/tinystories-base/tinystories-base-q8_0.gguf"),
    )
    .unwrap()
}

/// The top-1 token after each position but a window's last, over non-overlapping context windows.
fn top1(model: &Model<'_>, math: Math, tokens: &[u32]) -> Vec<u32> {
    let kv = KvType::Q8_0;
    let mut storage = vec![0u8; RunState::bytes_needed_math(&model.hparams, kv, math)];
    let state = RunState::new_math(&model.hparams, kv, math, &mut storage).unwrap();
    let mut session = Session::new(model, state);
    let mut out = Vec::new();
    for window in tokens.chunks(model.hparams.n_ctx).filter(|w| w.len() >= 2) {
        session.reset();
        for &t in &window[..window.len() - 1] {
            out.push(argmax(session.step(t).unwrap()));
        }
    }
    out
}

fn agreement(a: &[u32], b: &[u32]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / a.len() as f64
}

#[test]
fn integer_path_agrees_with_the_float_path_on_98_percent_of_positions() {
    let blob = default_model_blob();
    let g = Gguf::parse(&blob).unwrap();
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(&g, &mut layers).unwrap();
    let tokens = read_u32("eval-tokens.u32");
    let transformers = read_u32("eval-top1.u32");
    let int = top1(&model, Math::Integer, &tokens);
    let float = top1(&model, Math::Float, &tokens);
    let (vs_float, vs_ref) = (agreement(&int, &float), agreement(&int, &transformers));
    println!(
        "default model, integer path: top-1 agrees with the float path at {:.2}%, with \
         transformers' f32 model at {:.2}% ({} positions)",
        100.0 * vs_float,
        100.0 * vs_ref,
        int.len()
    );
    assert!(vs_float >= 0.98, "{vs_float}");
    assert!(vs_ref >= 0.98, "{vs_ref}");
}

/// What `mote generate --math integer --kv q8_0 --prompt "Once upon a time" --max-tokens 24
/// --json` printed (2026-12-01, tinystories-base): the prompt's ids, the new ids (", there was a
/// little girl named Lily. She loved to play with her toys and make her friends. One day,": the
/// float path's tokens too) and the last logits' checksum.
const GREEDY_PROMPT: [u32; 4] = [429, 440, 259, 401];
const GREEDY_TOKENS: &[u32] = &[
    12, 402, 282, 259, 396, 461, 462, 410, 14, 318, 527, 267, 348, 336, 316, 660, 265, 558, 316,
    446, 14, 544, 344, 12,
];
const GREEDY_CHECKSUM: u32 = 0x400b_694e;

#[test]
fn integer_greedy_output_is_pinned() {
    let blob = default_model_blob();
    let g = Gguf::parse(&blob).unwrap();
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(&g, &mut layers).unwrap();
    let (kv, math) = (KvType::Q8_0, Math::Integer);
    let mut storage = vec![0u8; RunState::bytes_needed_math(&model.hparams, kv, math)];
    let state = RunState::new_math(&model.hparams, kv, math, &mut storage).unwrap();
    let mut session = Session::new(&model, state);
    let mut streamed = Vec::new();
    session.generate(&GREEDY_PROMPT, 24, |t| streamed.push(t)).unwrap();
    let checksum = logits_checksum(session.logits());
    println!("tokens {streamed:?} checksum {checksum:#010x}");
    assert_eq!((streamed.as_slice(), checksum), (GREEDY_TOKENS, GREEDY_CHECKSUM));
}
