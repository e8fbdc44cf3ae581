//! Desktop cost per token of each sampling control, next to the forward step it follows.
//!
//! Runs the bundled model greedily for 64 positions after "Once upon a time", keeping every
//! position's logits and token history, then times `Sampler::sample` on those same inputs for
//! greedy decoding and for each control alone, in interleaved rounds (so that the machine's load
//! drifts over all of them alike), and prints the median nanoseconds per token of each.
//!
//! `cargo run --release -p mote --example sampler_cost`

use std::hint::black_box;
use std::time::Instant;

use mote::model_file::ModelFile;
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::sampler::{Sampler, SamplerConfig};
use mote_core::session::Session;
use mote_core::state::{KvType, RunState};
use mote_core::tokenizer::{Special, Tokenizer};

const POSITIONS: usize = 64;
const ROUNDS: usize = 41;

fn main() -> anyhow::Result<()> {
    let file = ModelFile::bundled();
    let gguf = file.gguf()?;
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(&gguf, &mut layers)?;
    let tok = Tokenizer::from_gguf(&gguf)?;
    let prompt = mote::tokenize::encode(&tok, "Once upon a time", Special::AsText)?;
    let hp = model.hparams;
    let mut storage = vec![0u8; RunState::bytes_needed(&hp, KvType::Q8_0)];
    let mut session = Session::new(&model, RunState::new(&hp, KvType::Q8_0, &mut storage)?);

    // Every position's logits and the history the sampler sees there; forward steps timed too.
    let mut cases: Vec<(Vec<f32>, Vec<u32>)> = Vec::new();
    let mut history: Vec<u32> = Vec::new();
    let mut next = prompt[0];
    let mut forward_ns = Vec::new();
    for i in 0..prompt.len() + POSITIONS - 1 {
        let t = Instant::now();
        let logits = session.step(next)?.to_vec();
        forward_ns.push(t.elapsed().as_nanos() as f64);
        history.push(next);
        next = match prompt.get(i + 1) {
            Some(&p) => p,
            None => mote_core::sampler::argmax(&logits),
        };
        if i + 1 >= prompt.len() {
            cases.push((logits, history.clone()));
        }
    }

    let sampled = |c: SamplerConfig| SamplerConfig { temperature: 1.0, seed: 1, ..c };
    let base = SamplerConfig::default();
    let configs: Vec<(&str, SamplerConfig)> = vec![
        ("greedy", base),
        ("temperature 1.0", sampled(base)),
        ("temperature 0.8", SamplerConfig { temperature: 0.8, seed: 1, ..base }),
        ("top-k 40", sampled(SamplerConfig { top_k: Some(40), ..base })),
        ("top-p 0.9", sampled(SamplerConfig { top_p: 0.9, ..base })),
        ("repetition penalty 1.3 (greedy)", SamplerConfig { repetition_penalty: 1.3, ..base }),
        ("no-repeat n-gram 3 (greedy)", SamplerConfig { no_repeat_ngram_size: 3, ..base }),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); configs.len()];
    let mut scratch = vec![0f32; hp.n_vocab];
    for _ in 0..ROUNDS {
        for (k, (_, config)) in configs.iter().enumerate() {
            let mut sampler = Sampler::new(*config, hp.n_ctx)?;
            let t = Instant::now();
            for (logits, history) in &cases {
                scratch.copy_from_slice(logits);
                black_box(sampler.sample(black_box(&mut scratch), history));
            }
            times[k].push(t.elapsed().as_nanos() as f64 / cases.len() as f64);
        }
    }
    // The copy of the logits is part of every row; greedy's row shows it.
    forward_ns.sort_by(f64::total_cmp);
    let forward = forward_ns[forward_ns.len() / 2];
    println!(
        "bundled model (vocabulary {}), {} positions, median of {ROUNDS} rounds; forward step {:.0} ns",
        hp.n_vocab,
        cases.len(),
        forward
    );
    println!("{:<34} {:>12} {:>14}", "control", "ns/token", "% of forward");
    for (k, (name, _)) in configs.iter().enumerate() {
        times[k].sort_by(f64::total_cmp);
        let ns = times[k][ROUNDS / 2];
        println!("{name:<34} {ns:>12.0} {:>13.1}%", 100.0 * ns / forward);
    }
    Ok(())
}
