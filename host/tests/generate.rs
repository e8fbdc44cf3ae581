//! `mote generate` end to end: the binary, on GGUF files written by the `gguf` Python package, gives
//! the greedy tokens transformers gives (fixtures from `tools/py/reference.py`).

use std::path::{Path, PathBuf};
use std::process::Output;

use mote_tests::mote;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/inference")
}

fn index() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join("index.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

fn csv(v: &[u64]) -> String {
    v.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
}

/// `mote generate --model MODEL --tokens PROMPT EXTRA...`, successful or not.
fn try_generate(model: &Path, prompt: &[u64], extra: &[&str]) -> Output {
    let tokens = csv(prompt);
    let mut args = vec!["generate", "--model", model.to_str().unwrap(), "--tokens", &tokens];
    args.extend_from_slice(extra);
    mote(&args)
}

/// The same, which must succeed.
fn generate(model: &Path, prompt: &[u64], extra: &[&str]) -> Output {
    let out = try_generate(model, prompt, extra);
    assert!(out.status.success(), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn json_output_has_the_reference_greedy_tokens_for_every_kv_type() {
    let idx = index();
    let m = &idx["models"][0];
    let model = fixtures().join(m["gguf"]["f32"].as_str().unwrap());
    let p = &m["prompts"][0];
    let (prompt, greedy) = (ids(&p["prompt"]), ids(&p["greedy"]));
    let eos = m["eos"].as_u64().unwrap();
    let want: Vec<u64> = greedy.iter().copied().take_while(|&t| t != eos).collect();
    let out = generate(&model, &prompt, &["--max-tokens", "64", "--json"]);
    let j: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(ids(&j["prompt_ids"]), prompt);
    assert_eq!(ids(&j["generated_ids"]), want);
    assert!(j["text"].is_string() && j["tokens_per_second"].is_number());
    assert_eq!(j["kv"], "f32");

    // The other KV types run too; f16 and q8_0 caches may drift from the float reference, so only
    // the first token (which sees the prompt only through the cache) is pinned.
    for kv in ["f16", "q8_0"] {
        let out = generate(&model, &prompt, &["--max-tokens", "4", "--kv", kv, "--json"]);
        let j: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(j["kv"], kv);
        assert_eq!(ids(&j["generated_ids"]).len(), 4);
    }
}

#[test]
fn streams_decoded_text_to_stdout() {
    let idx = index();
    let m = &idx["models"][0];
    let model = fixtures().join(m["gguf"]["f32"].as_str().unwrap());
    let prompt = ids(&m["prompts"][0]["prompt"]);
    let out = generate(&model, &prompt, &["--max-tokens", "16"]);
    // Greedy continuation of the reference, decoded with the tokenizer that trained the model.
    let json = generate(&model, &prompt, &["--max-tokens", "16", "--json"]);
    let j: Value = serde_json::from_slice(&json.stdout).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim_end_matches('\n'), j["text"].as_str().unwrap().trim_end_matches('\n'));
    assert!(String::from_utf8_lossy(&out.stderr).contains("generated"));
}

/// `--prompt` goes through mote's tokenizer, which must give the ids Hugging Face `tokenizers` gave
/// for the reference prompts, and so the same greedy tokens.
#[test]
fn prompt_text_is_encoded_with_the_models_tokenizer() {
    let idx = index();
    let m = &idx["models"][0];
    let model = fixtures().join(m["gguf"]["f32"].as_str().unwrap());
    for p in m["prompts"].as_array().unwrap() {
        let out = mote(&[
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            p["text"].as_str().unwrap(),
            "--max-tokens",
            "8",
            "--json",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let j: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(ids(&j["prompt_ids"]), ids(&p["prompt"]), "{}", p["text"]);
        let eos = m["eos"].as_u64().unwrap();
        let want: Vec<u64> =
            ids(&p["greedy"]).into_iter().take(8).take_while(|&t| t != eos).collect();
        assert_eq!(ids(&j["generated_ids"]), want);
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let idx = index();
    let model = fixtures().join(idx["models"][0]["gguf"]["f32"].as_str().unwrap());
    let model = model.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["generate", "--tokens", "5000"], "token id 5000 is outside the vocabulary of 2048"),
        (
            &["generate", "--model", model, "--tokens", "512"],
            "token id 512 is outside the vocabulary of 512",
        ),
        (&["generate", "--model", "/nonexistent.gguf", "--tokens", "1"], "cannot open model"),
        (
            &["generate", "--model", "tinystories-huge", "--tokens", "1"],
            "unknown model tinystories-huge: no such file, and the bundled models are \
             tinystories-base, tinystories-small",
        ),
        (&["generate", "--model", model, "--prompt", ""], "the prompt is empty"),
        (&["generate", "--model", env!("CARGO_MANIFEST_DIR"), "--tokens", "1"], "error"),
    ];
    for (args, expect) in cases {
        let out = mote(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{args:?}: {err}");
    }
    let long: Vec<u64> = vec![1; 129];
    let out = mote(&["generate", "--model", model, "--tokens", &csv(&long)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("129 tokens, more than the context length 128"), "{err}");
}

/// The whole desktop path: `mote convert` on the committed Hugging Face checkpoint, then
/// `mote generate` on its output, gives transformers' greedy tokens.
#[test]
fn converted_checkpoint_generates_the_reference_greedy_tokens() {
    let idx = index();
    let m = &idx["models"][0];
    let hf = fixtures().join(m["hf_dir"].as_str().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny-f32.gguf");
    let out = mote(&[
        "convert",
        hf.to_str().unwrap(),
        "-o",
        gguf.to_str().unwrap(),
        "--type",
        "f32",
        "--tokenizer",
        hf.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "convert: {}", String::from_utf8_lossy(&out.stderr));
    let eos = m["eos"].as_u64().unwrap();
    for p in m["prompts"].as_array().unwrap() {
        let out = generate(&gguf, &ids(&p["prompt"]), &["--max-tokens", "64", "--json"]);
        let j: Value = serde_json::from_slice(&out.stdout).unwrap();
        let want: Vec<u64> = ids(&p["greedy"]).into_iter().take_while(|&t| t != eos).collect();
        assert_eq!(ids(&j["generated_ids"]), want, "{}", p["text"]);
    }
}

/// `mote generate --json` with extra arguments on the first fixture model and prompt.
fn generate_json(extra: &[&str]) -> Result<Value, String> {
    let idx = index();
    let m = &idx["models"][0];
    let model = fixtures().join(m["gguf"]["f32"].as_str().unwrap());
    let args = [&["--json"], extra].concat();
    let out = try_generate(&model, &ids(&m["prompts"][0]["prompt"]), &args);
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("one JSON object on stdout"))
}

#[test]
fn sampling_is_deterministic_by_seed() {
    let run = |seed: &str| {
        let args = ["--max-tokens", "24", "--temperature", "1.2", "--top-k", "40", "--seed", seed];
        ids(&generate_json(&args).unwrap()["generated_ids"])
    };
    let (a, b, c) = (run("1"), run("1"), run("2"));
    assert_eq!(a, b, "same seed, same tokens");
    assert_ne!(a, c, "another seed draws other tokens");
    let greedy = ids(&generate_json(&["--max-tokens", "24"]).unwrap()["generated_ids"]);
    assert_ne!(a, greedy, "temperature 1.2 does not decode greedily");
}

#[test]
fn no_repeat_ngram_size_forbids_repeated_bigrams() {
    let out = generate_json(&["--max-tokens", "48", "--no-repeat-ngram-size", "2"]).unwrap();
    let mut all = ids(&out["prompt_ids"]);
    all.extend(ids(&out["generated_ids"]));
    let bigrams: Vec<_> = all.windows(2).collect();
    for (i, w) in bigrams.iter().enumerate() {
        assert!(!bigrams[..i].contains(w), "bigram {w:?} repeated in {all:?}");
    }
}

#[test]
fn rejects_invalid_sampling_settings_with_one_line() {
    for (args, needle) in [
        (&["--temperature", "-1"][..], "temperature -1"),
        (&["--temperature", "0.8", "--top-k", "0"][..], "top_k 0"),
        (&["--top-p", "1.5"][..], "top_p 1.5"),
        (&["--repetition-penalty", "0"][..], "repetition penalty 0"),
        (&["--no-repeat-ngram-size", "100000"][..], "larger than the context"),
    ] {
        let err = generate_json(args).unwrap_err();
        assert!(err.contains(needle) && !err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn without_model_uses_the_bundled_default_model() {
    let committed = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tinystories-base/tinystories-base-q8_0.gguf");
    let args = ["generate", "--prompt", "Once upon a time", "--max-tokens", "12", "--kv", "q8_0"];
    let bundled = mote(&[&args[..], &["--json"]].concat());
    assert!(bundled.status.success(), "{}", String::from_utf8_lossy(&bundled.stderr));
    let file = mote(&[&args[..], &["--json", "--model", committed.to_str().unwrap()]].concat());
    let (a, b): (Value, Value) = (
        serde_json::from_slice(&bundled.stdout).unwrap(),
        serde_json::from_slice(&file.stdout).unwrap(),
    );
    assert_eq!(a["generated_ids"], b["generated_ids"]);
    assert_eq!(a["text"], b["text"]);
    assert_eq!(ids(&a["generated_ids"]).len(), 12);
}

#[test]
fn batch_and_threads_do_not_change_a_single_bit() {
    // The bundled model with a Q8_0 cache: one position at a time, batches of 3 and of 64, one
    // and two threads; the final logits' checksum compares every bit.
    let args = ["generate", "--prompt", "Once upon a time, in a big forest", "--max-tokens", "16"];
    let run = |extra: &[&str]| -> Value {
        let out = mote(&[&args[..], &["--kv", "q8_0", "--json"], extra].concat());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let one = run(&["--batch", "0", "--threads", "1"]);
    assert!(ids(&one["prompt_ids"]).len() > 4);
    for extra in [["--batch", "3", "--threads", "1"], ["--batch", "64", "--threads", "2"]] {
        let j = run(&extra);
        assert_eq!(j["generated_ids"], one["generated_ids"], "{extra:?}");
        assert_eq!(j["logits_checksum"], one["logits_checksum"], "{extra:?}");
    }
    let out = mote(&[&args[..], &["--threads", "0"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--threads 0"), "{err}");
}

/// transformers' beam searches on the test model (`tools/py/beam_reference.py`) whose end of text
/// is the model's own, the one `mote generate` stops at.
fn beam_cases() -> Vec<Value> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/beam/cases.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let m = doc["models"].as_array().unwrap().iter().find(|m| m["name"] == "tiny-stories").unwrap();
    let eos = index()["models"][0]["eos"].clone();
    m["cases"].as_array().unwrap().iter().filter(|c| c["eos"] == eos).cloned().collect()
}

#[test]
fn beam_search_json_has_transformers_sequences_and_the_best_as_generated_ids() {
    let idx = index();
    let model = fixtures().join(idx["models"][0]["gguf"]["f32"].as_str().unwrap());
    for c in beam_cases().iter().step_by(9) {
        let s = |k: &str| c[k].to_string().trim_matches('"').to_string();
        let (nb, lp, es, ngram, rp) = (
            s("num_beams"),
            s("length_penalty"),
            s("early_stopping"),
            s("no_repeat_ngram_size"),
            s("repetition_penalty"),
        );
        let (k, max) = (s("num_return_sequences"), s("max_new_tokens"));
        let args = [
            "--num-beams",
            &nb,
            "--length-penalty",
            &lp,
            "--early-stopping",
            &es,
            "--no-repeat-ngram-size",
            &ngram,
            "--repetition-penalty",
            &rp,
            "--num-return-sequences",
            &k,
            "--max-tokens",
            &max,
            "--json",
        ];
        let out = generate(&model, &ids(&c["prompt"]), &args);
        let j: Value = serde_json::from_slice(&out.stdout).unwrap();
        let want = c["sequences"].as_array().unwrap();
        let got = j["sequences"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{args:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(ids(&g["ids"]), ids(&w["tokens"]), "{args:?}");
            let (gs, ws) = (g["score"].as_f64().unwrap(), w["score"].as_f64().unwrap());
            assert!((gs - ws).abs() <= 1e-4, "{args:?}: score {gs} vs {ws}");
            assert!(g["text"].is_string());
        }
        assert_eq!(j["generated_ids"], got[0]["ids"]);
        assert_eq!(j["text"], got[0]["text"]);
    }
}

#[test]
fn plain_text_numbers_every_returned_sequence() {
    let idx = index();
    let model = fixtures().join(idx["models"][0]["gguf"]["f32"].as_str().unwrap());
    let prompt = ids(&idx["models"][0]["prompts"][0]["prompt"]);
    let args = ["--num-beams", "3", "--num-return-sequences", "3", "--max-tokens", "8"];
    let json = generate(&model, &prompt, &[&args[..], &["--json"]].concat());
    let j: Value = serde_json::from_slice(&json.stdout).unwrap();
    let text = String::from_utf8_lossy(&generate(&model, &prompt, &args).stdout).into_owned();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for (i, (line, seq)) in lines.iter().zip(j["sequences"].as_array().unwrap()).enumerate() {
        assert!(line.starts_with(&format!("{} (score ", i + 1)), "{line}");
        assert!(line.ends_with(&format!(": {}", seq["text"].as_str().unwrap())), "{line}");
    }
    // One sequence: just its text.
    let one = generate(&model, &prompt, &["--num-beams", "3", "--max-tokens", "8"]);
    let best = j["sequences"][0]["text"].as_str().unwrap();
    assert_eq!(String::from_utf8_lossy(&one.stdout), format!("{best}\n"));
}

#[test]
fn a_stop_string_ends_generation_and_the_json_names_it() {
    let full = generate_json(&["--max-tokens", "32"]).unwrap();
    let text = full["text"].as_str().unwrap();
    // A word from the middle of the greedy text: generation stops at the token that completes it.
    let word = text.split_whitespace().nth(3).unwrap().to_string();
    let j =
        generate_json(&["--max-tokens", "32", "--stop", "no such text", "--stop", &word]).unwrap();
    assert_eq!(j["stop"], "stop string");
    assert_eq!(j["stop_string"], word.as_str());
    let t = j["text"].as_str().unwrap();
    assert!(t.contains(&word) && text.starts_with(t) && t.len() < text.len(), "{t:?} {text:?}");
    let n = ids(&j["generated_ids"]).len();
    assert!(!String::from_utf8_lossy(&t.as_bytes()[..t.len() - 1]).contains(&word) || n == 1);
    assert_eq!(full["stop_string"], Value::Null);
    // With beams too: every continuation whose text contains it is finished.
    let j = generate_json(&["--max-tokens", "32", "--num-beams", "3", "--stop", &word]).unwrap();
    assert_eq!(j["stop"], "stop string", "{j}");
    assert!(j["text"].as_str().unwrap().contains(&word));
}

#[test]
fn min_new_tokens_and_ignore_eos_are_accepted_without_beams_and_with() {
    for extra in [
        &["--min-new-tokens", "5", "--ignore-eos"][..],
        &["--num-beams", "2", "--min-new-tokens", "3"],
    ] {
        let j = generate_json(&[&["--max-tokens", "6"], extra].concat()).unwrap();
        assert_eq!(ids(&j["generated_ids"]).len(), 6, "{extra:?}");
    }
}

#[test]
fn rejects_bad_beam_settings_with_one_line() {
    for (args, needle) in [
        (&["--num-beams", "0"][..], "0 beams keep no sequence"),
        (&["--num-beams", "2", "--num-return-sequences", "3"][..], "3 return sequences from 2"),
        (&["--num-return-sequences", "2"][..], "2 return sequences from 1 beam:"),
        (&["--num-beams", "256"][..], "at most 255"),
        (&["--num-beams", "2", "--top-k", "40"][..], "beam search does not sample"),
        (&["--num-beams", "4", "--memory-limit", "100000"][..], "memory limit of 100000 bytes"),
        (&["--num-beams", "2", "--temperature", "0.7"][..], "sampling"),
        (&["--num-beams", "2", "--length-penalty", "inf"][..], "length penalty inf"),
        (&["--num-beams", "2", "--early-stopping", "sometimes"][..], "sometimes"),
        (&["--stop", ""][..], "--stop"),
    ] {
        // The problem on the first line (clap adds the possible values below its own).
        let err = generate_json(args).unwrap_err();
        let first = err.lines().next().unwrap_or("");
        assert!(first.starts_with("error: ") && first.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn math_integer_runs_q8_0_files_and_refuses_what_it_cannot_run_in_one_line() {
    let idx = index();
    let m = &idx["models"][0];
    let q8 = fixtures().join(m["gguf"]["q8_0"].as_str().unwrap());
    let f32 = fixtures().join(m["gguf"]["f32"].as_str().unwrap());
    let prompt = ids(&m["prompts"][0]["prompt"]);
    let run = |math: &str| {
        let args = ["--json", "--max-tokens", "16", "--kv", "q8_0", "--math", math];
        let out = generate(&q8, &prompt, &args);
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let (a, b, float) = (run("integer"), run("integer"), run("float"));
    assert_eq!(a["math"], "integer");
    assert_eq!(float["math"], "float");
    assert_eq!(
        (&a["generated_ids"], &a["logits_checksum"]),
        (&b["generated_ids"], &b["logits_checksum"])
    );
    assert!(!ids(&a["generated_ids"]).is_empty());
    assert_ne!(a["logits_checksum"], float["logits_checksum"], "another arithmetic, other bits");
    for (model, extra, want) in [
        (
            &q8,
            &["--math", "integer"][..],
            "--math integer keeps its KV cache in int8 blocks: give --kv q8_0 (not f32)",
        ),
        (
            &f32,
            &["--math", "integer", "--kv", "q8_0"][..],
            "the integer path reads Q8_0 weight matrices only, this model has F32 ones",
        ),
        (
            &q8,
            &["--math", "integer", "--kv", "q8_0", "--num-beams", "2"][..],
            "beam search runs on the float path; drop --num-beams or --math integer",
        ),
    ] {
        let out = try_generate(model, &prompt, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{extra:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
}
