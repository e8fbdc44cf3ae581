//! mote-core's beam search against transformers' `generate(num_beams=...)`.
//!
//! The fixtures in `tests/fixtures/beam/cases.json` come from `tools/py/beam_reference.py`: for two
//! trained models (the bundled tinystories-base and the test model `tiny-stories`), every
//! combination of 2, 3 and 5 beams, length penalties 0.5, 1 and 2, `early_stopping` true, false and
//! "never", no-repeat n-grams off and 2, an end-of-text token reached or not, and a few cases with
//! the repetition penalty, `min_new_tokens` and fewer returned sequences.
//!
//! On F32 files (the bundled model converted by `mote convert`; the test model as written by the
//! `gguf` Python package) every returned hypothesis must have transformers' token ids and its score
//! within 1e-4. On the Q8_0 files the agreement is printed, not required.

use mote_core::beam::{BeamConfig, BeamSearch, EarlyStopping};
use mote_core::gguf::Gguf;
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::split::Serial;
use mote_core::state::KvType;
use serde_json::Value;

const SCORE_TOLERANCE: f32 = 1e-4;

fn cases() -> Value {
    let path = mote_tests::repo_root().join("tests/fixtures/beam/cases.json");
    let s = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&s).expect("cases.json is JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

fn config(c: &Value) -> BeamConfig {
    BeamConfig {
        num_beams: c["num_beams"].as_u64().unwrap() as usize,
        length_penalty: c["length_penalty"].as_f64().unwrap() as f32,
        early_stopping: match c["early_stopping"].as_str().unwrap() {
            "true" => EarlyStopping::True,
            "false" => EarlyStopping::False,
            _ => EarlyStopping::Never,
        },
        num_return_sequences: c["num_return_sequences"].as_u64().unwrap() as usize,
        repetition_penalty: c["repetition_penalty"].as_f64().unwrap() as f32,
        no_repeat_ngram_size: c["no_repeat_ngram_size"].as_u64().unwrap() as u32,
        min_new_tokens: c["min_new_tokens"].as_u64().unwrap() as usize,
    }
}

/// The hypotheses (new ids, score) mote's beam search returns for case `c` on `model`.
fn run(model: &Model<'_>, kv: KvType, c: &Value) -> Vec<(Vec<u32>, f32)> {
    let cfg = config(c);
    let mut buf = vec![0u8; BeamSearch::bytes_needed(&model.hparams, kv, cfg.num_beams)];
    let mut beams = BeamSearch::new(&model.hparams, kv, cfg, &mut buf).unwrap();
    let eos = Some(c["eos"].as_u64().unwrap() as u32);
    let max_new = c["max_new_tokens"].as_u64().unwrap() as usize;
    beams.search(model, &Serial, &ids(&c["prompt"]), max_new, eos, &mut |_, _| false).unwrap();
    beams.hypotheses().map(|h| (h.tokens.to_vec(), h.score)).collect()
}

fn want(c: &Value) -> Vec<(Vec<u32>, f32)> {
    c["sequences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (ids(&s["tokens"]), s["score"].as_f64().unwrap() as f32))
        .collect()
}

/// The model files: (fixture name, F32 file bytes, Q8_0 file bytes). The bundled model's F32 file
/// is converted from its checkpoint here.
fn model_files(name: &str, hf_dir: &str) -> (Vec<u8>, Vec<u8>) {
    let root = mote_tests::repo_root();
    match name {
        "tinystories-base" => {
            let q8 = root.join("models/tinystories-base/tinystories-base-q8_0.gguf");
            (mote_tests::convert_f32(&root.join(hf_dir)), std::fs::read(q8).unwrap())
        }
        _ => {
            let dir = root.join(hf_dir);
            (
                std::fs::read(dir.join("model-f32.gguf")).unwrap(),
                std::fs::read(dir.join("model-q8_0.gguf")).unwrap(),
            )
        }
    }
}

#[test]
fn f32_beam_search_returns_transformers_hypotheses_and_scores() {
    let doc = cases();
    let mut n_cases = 0;
    let mut eos_reached = 0;
    for m in doc["models"].as_array().unwrap() {
        let name = m["name"].as_str().unwrap();
        let (f32_file, q8_file) = model_files(name, m["hf_dir"].as_str().unwrap());
        let g = Gguf::parse(&f32_file).unwrap();
        let mut layers = [Layer::EMPTY; MAX_LAYERS];
        let model = Model::load(&g, &mut layers).unwrap();
        let mut worst = 0.0f32;
        for (i, c) in m["cases"].as_array().unwrap().iter().enumerate() {
            let (got, want) = (run(&model, KvType::F32, c), want(c));
            let what = format!(
                "{name} case {i}: {}",
                serde_json::json!({
                "num_beams": c["num_beams"], "length_penalty": c["length_penalty"],
                "early_stopping": c["early_stopping"], "ngram": c["no_repeat_ngram_size"],
                "eos": c["eos"], "rep": c["repetition_penalty"], "min_new": c["min_new_tokens"]})
            );
            assert_eq!(got.len(), want.len(), "{what}: hypotheses");
            for (r, ((gi, gs), (wi, ws))) in got.iter().zip(&want).enumerate() {
                assert_eq!(gi, wi, "{what}: hypothesis {r} ids");
                let err = (gs - ws).abs();
                assert!(err <= SCORE_TOLERANCE, "{what}: hypothesis {r} score {gs} vs {ws}");
                worst = worst.max(err);
            }
            n_cases += 1;
            eos_reached += usize::from(c["eos_reached"].as_bool().unwrap());
        }
        println!("{name}: F32 worst score error {worst:.2e}");

        // Q8_0 weights with a Q8_0 KV cache (the device's configuration): reported only.
        let g = Gguf::parse(&q8_file).unwrap();
        let mut layers = [Layer::EMPTY; MAX_LAYERS];
        let model = Model::load(&g, &mut layers).unwrap();
        let (mut best_same, mut all_same, mut total) = (0, 0, 0);
        for c in m["cases"].as_array().unwrap() {
            let (got, want) = (run(&model, KvType::Q8_0, c), want(c));
            best_same += usize::from(got.first().map(|h| &h.0) == want.first().map(|h| &h.0));
            all_same += usize::from(
                got.len() == want.len() && got.iter().zip(&want).all(|(a, b)| a.0 == b.0),
            );
            total += 1;
        }
        println!(
            "{name}: Q8_0 file + Q8_0 KV: best hypothesis identical in {best_same}/{total} cases, \
             every hypothesis in {all_same}/{total}"
        );
    }
    assert!(n_cases >= 200 && eos_reached >= 50, "{n_cases} cases, {eos_reached} reach EOS");
}

/// The score of `tokens` after `prompt` computed alone, in a one-beam run state: the processed
/// log-probabilities added in order, over the length penalty.
fn score_alone(
    model: &Model<'_>,
    kv: KvType,
    cfg: &BeamConfig,
    prompt: &[u32],
    tokens: &[u32],
    eos: u32,
) -> f32 {
    use mote_core::forward::forward;
    use mote_core::state::RunState;
    let mut buf = vec![0u8; RunState::bytes_needed(&model.hparams, kv)];
    let mut s = RunState::new(&model.hparams, kv, &mut buf).unwrap();
    let mut seq = prompt.to_vec();
    for (p, &t) in prompt[..prompt.len() - 1].iter().enumerate() {
        forward(model, &mut s, t, p, &Serial, false).unwrap();
    }
    let mut sum = 0.0f32;
    for (i, &t) in tokens.iter().enumerate() {
        let pos = seq.len() - 1;
        forward(model, &mut s, seq[pos], pos, &Serial, true).unwrap();
        let mut lp = s.logits().to_vec();
        mote_core::beam::log_probs(&mut lp, &seq, cfg, i, Some(eos));
        sum += lp[t as usize];
        seq.push(t);
    }
    sum / (tokens.len() as f64).powf(f64::from(cfg.length_penalty)) as f32
}

#[test]
fn q8_0_beams_sharing_one_cache_score_each_hypothesis_as_if_run_alone() {
    // The bundled model's heads are whole Q8_0 blocks, so attention over a Q8_0 cache runs the
    // block kernels over runs of positions found through the position maps: every hypothesis must
    // score, bit for bit, what its own sequence scores in a fresh one-beam state.
    let doc = cases();
    let m = &doc["models"][0];
    let (_, q8_file) = model_files(m["name"].as_str().unwrap(), m["hf_dir"].as_str().unwrap());
    let g = Gguf::parse(&q8_file).unwrap();
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(&g, &mut layers).unwrap();
    for c in m["cases"].as_array().unwrap().iter().step_by(7) {
        let cfg = config(c);
        let (prompt, eos) = (ids(&c["prompt"]), c["eos"].as_u64().unwrap() as u32);
        for (tokens, score) in run(&model, KvType::Q8_0, c) {
            let alone = score_alone(&model, KvType::Q8_0, &cfg, &prompt, &tokens, eos);
            assert_eq!(score.to_bits(), alone.to_bits(), "{tokens:?}: {score} vs {alone}");
        }
    }
}
