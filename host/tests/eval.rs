//! `mote eval` against transformers' perplexity on held-out text, and the Q8_0 file against the
//! F32 one (issue 4: within 1%).

use std::path::PathBuf;
use std::process::Command;

use mote::eval::evaluate;
use mote::generate::ModelFile;
use mote::threads::SpeedArgs;
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::state::KvType;
use mote_core::tokenizer::Tokenizer;
use mote_tests::shared_data;
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/inference")
}

fn tiny() -> Value {
    let idx: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("index.json")).unwrap())
            .unwrap();
    idx["models"].as_array().unwrap().iter().find(|m| m["eval"].is_object()).unwrap().clone()
}

fn eval_tokens(m: &Value) -> Vec<u32> {
    let b = std::fs::read(fixtures().join(m["eval"]["tokens"].as_str().unwrap())).unwrap();
    b.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn perplexity(file: &str, kv: KvType, tokens: &[u32]) -> mote::eval::Perplexity {
    perplexity_with(file, kv, tokens, SpeedArgs::default())
}

fn perplexity_with(
    file: &str,
    kv: KvType,
    tokens: &[u32],
    speed: SpeedArgs,
) -> mote::eval::Perplexity {
    let f = ModelFile::open(&fixtures().join(file)).unwrap();
    let g = f.gguf().unwrap();
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(&g, &mut layers).unwrap();
    evaluate(&model, kv, tokens, speed).unwrap()
}

#[test]
fn batched_and_threaded_evaluation_gives_the_same_bits() {
    let m = tiny();
    let tokens = eval_tokens(&m);
    let file = m["gguf"]["q8_0"].as_str().unwrap();
    let one = perplexity_with(file, KvType::Q8_0, &tokens, SpeedArgs { threads: 1, batch: 0 });
    assert!(one.n_predicted > 100);
    for (threads, batch) in [(1, 1), (1, 5), (2, 64)] {
        let r = perplexity_with(file, KvType::Q8_0, &tokens, SpeedArgs { threads, batch });
        assert_eq!(
            r.mean_nll.to_bits(),
            one.mean_nll.to_bits(),
            "{threads} threads, batch {batch}"
        );
        assert_eq!(r.top1, one.top1);
    }
}

#[test]
fn f32_perplexity_matches_transformers() {
    let m = tiny();
    let tokens = eval_tokens(&m);
    let r = perplexity(m["gguf"]["f32"].as_str().unwrap(), KvType::F32, &tokens);
    let want_nll = m["eval"]["mean_nll"].as_f64().unwrap();
    assert_eq!(r.n_tokens as u64, m["eval"]["n_tokens"].as_u64().unwrap());
    assert_eq!(r.n_predicted as u64, m["eval"]["n_predicted"].as_u64().unwrap());
    println!("F32: mean NLL {} (transformers {want_nll}), perplexity {}", r.mean_nll, r.perplexity);
    // Logits agree to 1e-4, so the mean NLL agrees to about that too.
    assert!((r.mean_nll - want_nll).abs() < 1e-4, "{} vs {want_nll}", r.mean_nll);
}

#[test]
fn q8_0_perplexity_is_within_one_percent_of_f32() {
    let m = tiny();
    let tokens = eval_tokens(&m);
    let f = perplexity(m["gguf"]["f32"].as_str().unwrap(), KvType::F32, &tokens);
    for kv in [KvType::Q8_0, KvType::F16, KvType::F32] {
        let q = perplexity(m["gguf"]["q8_0"].as_str().unwrap(), kv, &tokens);
        let rel = (q.perplexity - f.perplexity).abs() / f.perplexity;
        println!(
            "Q8_0 weights, {} KV: perplexity {:.4} vs F32 {:.4} ({:+.3}%)",
            kv.name(),
            q.perplexity,
            f.perplexity,
            100.0 * (q.perplexity / f.perplexity - 1.0)
        );
        assert!(rel <= 0.01, "{kv:?}: {} vs {}", q.perplexity, f.perplexity);
    }
}

#[test]
fn cli_prints_perplexity_as_json_from_token_ids() {
    let m = tiny();
    let tokens = eval_tokens(&m);
    let dir = tempfile::tempdir().unwrap();
    let ids = dir.path().join("ids.txt");
    let text: Vec<String> = tokens.iter().map(u32::to_string).collect();
    std::fs::write(&ids, text.join(" ")).unwrap();
    let model = fixtures().join(m["gguf"]["q8_0"].as_str().unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args(["eval", "--model", model.to_str().unwrap(), "--token-ids", ids.to_str().unwrap()])
        .args(["--kv", "q8_0", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["n_tokens"].as_u64().unwrap() as usize, tokens.len());
    let want = perplexity(m["gguf"]["q8_0"].as_str().unwrap(), KvType::Q8_0, &tokens);
    assert_eq!(j["perplexity"].as_f64().unwrap(), want.perplexity);
    assert!(j.get("nats_per_byte").is_none(), "token ids have no bytes to count");
}

#[test]
fn rejects_text_too_short_to_predict() {
    let m = tiny();
    let f = ModelFile::open(&fixtures().join(m["gguf"]["f32"].as_str().unwrap())).unwrap();
    let g = f.gguf().unwrap();
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(&g, &mut layers).unwrap();
    let err = evaluate(&model, KvType::F32, &[1], SpeedArgs::default()).unwrap_err().to_string();
    assert!(err.contains("needs at least 2"), "{err}");
}

/// `mote eval --text` tokenizes with mote's tokenizer and must reproduce transformers' mean NLL on
/// the held-out text (the same slice of the shared file that `reference.py` evaluated).
#[test]
fn cli_text_perplexity_matches_transformers() {
    let m = tiny();
    let e = &m["eval"];
    let text = std::fs::read_to_string(shared_data().join(e["text"].as_str().unwrap())).unwrap();
    let (at, n) =
        (e["char_offset"].as_u64().unwrap() as usize, e["n_chars"].as_u64().unwrap() as usize);
    let held_out: String = text.chars().skip(at).take(n).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held-out.txt");
    std::fs::write(&path, &held_out).unwrap();
    let model = fixtures().join(m["gguf"]["f32"].as_str().unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_mote"))
        .args([
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--text",
            path.to_str().unwrap(),
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let j: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["n_tokens"], e["n_tokens"]);
    let (got, want) = (j["mean_nll"].as_f64().unwrap(), e["mean_nll"].as_f64().unwrap());
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");

    // Nats per byte: the predicted tokens are the text's bytes but those of each window's first token.
    let f = ModelFile::open(&model).unwrap();
    let g = f.gguf().unwrap();
    let n_ctx = Model::load(&g, &mut [Layer::EMPTY; MAX_LAYERS]).unwrap().hparams.n_ctx;
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let firsts: Vec<u32> = eval_tokens(&m).chunks(n_ctx).map(|w| w[0]).collect();
    let first_bytes = mote::tokenize::decode(&tok, &firsts).unwrap().len();
    let bytes = j["predicted_bytes"].as_u64().unwrap() as usize;
    assert_eq!(bytes + first_bytes, held_out.len());
    let total = got * j["n_predicted"].as_f64().unwrap();
    assert!((j["nats_per_byte"].as_f64().unwrap() - total / bytes as f64).abs() < 1e-12);
}
