//! Every input the fuzzers ever found a fault with stays a test: `fuzz/regressions/<target>/`,
//! replayed through the same function the fuzz target calls (`mote_tests::exercise_*`).

use std::fs;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = mote_tests::repo_root().join("fuzz/regressions").join(target);
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_file() && path.extension().is_none_or(|e| e != "md") {
            out.push((path.display().to_string(), fs::read(&path).unwrap()));
        }
    }
    assert!(!out.is_empty(), "{} holds no inputs", dir.display());
    out
}

/// Runs `exercise` on every saved input of `target`; none may panic. What it returns (a count
/// that keeps the work from being optimised away in the fuzz target) is not looked at.
fn replay<T>(target: &str, exercise: impl Fn(&[u8]) -> T + std::panic::RefUnwindSafe) {
    for (name, data) in inputs(target) {
        let result = std::panic::catch_unwind(|| exercise(&data));
        assert!(result.is_ok(), "{name} makes the {target} fuzz target fail");
    }
}

#[test]
fn gguf_reader_survives_every_saved_fuzz_input() {
    replay("gguf_parse", mote_tests::exercise_gguf);
}

#[test]
fn model_load_and_generation_survive_every_saved_fuzz_input() {
    replay("model_generate", mote_tests::exercise_model);
}

#[test]
fn tokenizer_survives_every_saved_fuzz_input() {
    replay("tokenizer", |d| {
        for tok in mote_tests::fuzz_tokenizers() {
            mote_tests::exercise_tokenizer(tok, d);
        }
    });
}

#[test]
fn converter_reading_survives_every_saved_fuzz_input() {
    replay("convert_inputs", mote_tests::exercise_convert);
}

/// The model target's harness reaches generation on a valid model (the default one), so that a
/// mutated model is exercised as far as the forward pass and the samplers.
#[test]
fn model_target_generates_from_a_valid_model() {
    let path = mote_tests::repo_root().join("models/tinystories-base/tinystories-base-q8_0.gguf");
    let blob = fs::read(path).unwrap();
    // Three runs (F32, F16 and Q8_0 caches) of up to 4 tokens each.
    let n = mote_tests::exercise_model(&blob);
    assert!((3..=12).contains(&n), "{n} tokens generated");
}

#[test]
fn chat_survives_every_saved_fuzz_input() {
    replay("chat", mote_tests::exercise_chat);
}
