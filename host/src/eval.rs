//! `mote eval`: perplexity of a model on a text, so that a quantized file can be judged against its
//! float original.
//!
//! Teacher forcing over non-overlapping windows of the context length: the tokens are cut into
//! windows of `T` tokens; in each window the model, starting from an empty cache, predicts tokens
//! `1..` from the ones before them (a window's first token is context only). Mean negative
//! log-likelihood is over all predicted tokens, in f64; perplexity is `exp` of it. This is what
//! `tools/py/reference.py` computes with transformers.
//!
//! Losses per token cannot be compared between tokenizers, so for a text the total negative
//! log-likelihood is also divided by the UTF-8 bytes of the predicted tokens (nats per byte), as
//! `tools/py/train.py` reports it.

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::prefill::prefill;
use mote_core::sampler::argmax;
use mote_core::session::Session;
use mote_core::state::{KvType, RunState};
use mote_core::tokenizer::Tokenizer;
use mote_core::Math;

use crate::generate::{
    check_math, load_model, prompt_tokens, state_storage, KvArg, MathArg, ModelFile,
};
use crate::threads::{prefill_scratch, prefill_storage, row_split, SpeedArgs};
use crate::tokenize::utf8_text;

/// Arguments of `mote eval`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file, or a bundled model by name: tinystories-base (the default) or
    /// tinystories-small.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// UTF-8 text file to evaluate on, encoded with the model's tokenizer (`-`: standard input).
    #[arg(long, conflicts_with = "token_ids", required_unless_present = "token_ids")]
    pub text: Option<PathBuf>,
    /// File of token ids (decimal, separated by commas or whitespace) to evaluate on instead of text
    /// (`-`: standard input).
    #[arg(long)]
    pub token_ids: Option<PathBuf>,
    /// Element type of the KV cache.
    #[arg(long, value_enum, default_value_t = KvArg::F32)]
    pub kv: KvArg,
    /// Arithmetic of the forward pass (`integer` needs `--kv q8_0`).
    #[arg(long, value_enum, default_value_t = MathArg::Float)]
    pub math: MathArg,
    /// Also evaluate the float path (same KV type) and report the top-1 agreement of the two paths
    /// and their perplexities' difference: how much `--math integer` costs.
    #[arg(long)]
    pub compare_float: bool,
    #[command(flatten)]
    pub speed: SpeedArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// The result of an evaluation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Perplexity {
    /// Tokens in the text.
    pub n_tokens: usize,
    /// Tokens predicted (all but the first of each window).
    pub n_predicted: usize,
    /// Mean negative log-likelihood per predicted token, in nats.
    pub mean_nll: f64,
    /// `exp(mean_nll)`.
    pub perplexity: f64,
    /// UTF-8 bytes of the predicted tokens (with `--text`; token ids alone have no bytes here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_bytes: Option<usize>,
    /// Total negative log-likelihood over `predicted_bytes`, in nats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_per_byte: Option<f64>,
    /// The model's top token at each predicted position (for agreement checks).
    #[serde(skip)]
    pub top1: Vec<u32>,
    /// With `--compare-float`: the float path on the same tokens, and how the two agree.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub float: Option<Comparison>,
}

/// The float path beside another one (`mote eval --compare-float`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Comparison {
    /// The float path's perplexity.
    pub perplexity: f64,
    /// `(perplexity / float perplexity - 1) * 100`.
    pub perplexity_change_percent: f64,
    /// Predicted positions whose top-1 token is the float path's.
    pub top1_agree: usize,
    /// `top1_agree / n_predicted * 100`.
    pub top1_agreement_percent: f64,
}

/// How `r` compares with the float path's `float` on the same tokens.
pub fn compare(r: &Perplexity, float: &Perplexity) -> Comparison {
    let agree = r.top1.iter().zip(&float.top1).filter(|(a, b)| a == b).count();
    Comparison {
        perplexity: float.perplexity,
        perplexity_change_percent: (r.perplexity / float.perplexity - 1.0) * 100.0,
        top1_agree: agree,
        top1_agreement_percent: agree as f64 / r.n_predicted.max(1) as f64 * 100.0,
    }
}

/// `-log softmax(logits)[target]`, in f64.
fn nll(logits: &[f32], target: u32) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    let lt = logits.get(target as usize).map_or(f64::NEG_INFINITY, |&l| l as f64);
    (sum.ln() + max) - lt
}

/// Evaluates `tokens` (see the module docs for the windows), each window in batches of
/// `speed.batch` positions (one at a time for 0) on `speed.threads` threads: the logits, and so
/// the result, are the same bits either way.
pub fn evaluate(
    model: &Model<'_>,
    kv: KvType,
    tokens: &[u32],
    speed: SpeedArgs,
) -> anyhow::Result<Perplexity> {
    evaluate_math(model, kv, Math::Float, tokens, speed)
}

/// [`evaluate`] with the forward pass in `math` (the integer path runs one position at a time,
/// whatever `speed.batch`).
pub fn evaluate_math(
    model: &Model<'_>,
    kv: KvType,
    math: Math,
    tokens: &[u32],
    speed: SpeedArgs,
) -> anyhow::Result<Perplexity> {
    check_math(math, kv)?;
    let n_ctx = model.hparams.n_ctx;
    let split = row_split(speed.threads)?;
    let mut storage = state_storage(model, kv);
    let mut scratch = prefill_storage(&model.hparams, speed.batch);
    let mut batch = prefill_scratch(&model.hparams, speed.batch, &mut scratch)?;
    let mut state = RunState::new_math(&model.hparams, kv, math, &mut storage)?;
    let (mut total, mut n_predicted, mut top1) = (0.0f64, 0usize, Vec::new());
    let progress = crate::progress::bar(tokens.len() as u64, "{bar:40} {pos}/{len} tokens {eta}");
    let mut score = |window: &[u32], i: usize, logits: &[f32]| {
        progress.inc(1);
        if let Some(&next) = window.get(i + 1) {
            total += nll(logits, next);
            top1.push(argmax(logits));
            n_predicted += 1;
        }
    };
    let windows = tokens.chunks(n_ctx).take_while(|w| w.len() >= 2);
    match batch.as_mut() {
        Some(p) => {
            for window in windows {
                let mut on_logits = |i: usize, logits: &[f32]| score(window, i, logits);
                prefill(model, &mut state, p, window, 0, &*split, Some(&mut on_logits))?;
            }
        }
        None => {
            let mut session = Session::new(model, state).with_row_split(&*split);
            for window in windows {
                session.reset();
                for (i, &t) in window.iter().enumerate() {
                    score(window, i, session.step(t)?);
                }
            }
        }
    }
    progress.finish_and_clear();
    if n_predicted == 0 {
        bail!("the text has {} tokens; evaluation needs at least 2", tokens.len());
    }
    let mean_nll = total / n_predicted as f64;
    Ok(Perplexity {
        n_tokens: tokens.len(),
        n_predicted,
        mean_nll,
        perplexity: mean_nll.exp(),
        predicted_bytes: None,
        nats_per_byte: None,
        top1,
        float: None,
    })
}

/// UTF-8 bytes of the tokens that [`evaluate`] predicts (all but the first of each window).
fn predicted_bytes(tok: &Tokenizer<'_>, tokens: &[u32], n_ctx: usize) -> anyhow::Result<usize> {
    let mut n = 0;
    for window in tokens.chunks(n_ctx).take_while(|w| w.len() >= 2) {
        for &id in &window[1..] {
            tok.token_bytes(id, |b| n += b.len())
                .with_context(|| format!("cannot decode id {id}"))?;
        }
    }
    Ok(n)
}

/// Parses decimal token ids separated by commas or whitespace.
pub fn parse_token_ids(s: &str) -> anyhow::Result<Vec<u32>> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse::<u32>().with_context(|| format!("\"{w}\" is not a token id")))
        .collect()
}

/// Runs `mote eval`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let file = ModelFile::open_arg(args.model.as_deref())?;
    let gguf = file.gguf()?;
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = load_model(&gguf, file.name(), &mut layers)?;
    let (tokens, from_text) = match (&args.token_ids, &args.text) {
        (Some(p), _) => {
            let bytes = crate::input::read(p, "the token ids")?;
            let ids = parse_token_ids(utf8_text(&bytes, "the token ids file")?)
                .with_context(|| format!("in {}", p.display()))?;
            (ids, false)
        }
        (None, Some(p)) => {
            let bytes = crate::input::read(p, "the text")?;
            (prompt_tokens(&gguf, Some(utf8_text(&bytes, "the text")?), None)?, true)
        }
        (None, None) => bail!("give --text FILE or --token-ids FILE"),
    };
    let (kv, math) = (KvType::from(args.kv), Math::from(args.math));
    let mut r = evaluate_math(&model, kv, math, &tokens, args.speed)?;
    if args.compare_float {
        let float = evaluate_math(&model, kv, Math::Float, &tokens, args.speed)?;
        r.float = Some(compare(&r, &float));
    }
    if from_text {
        // The text was encoded with this tokenizer, so it loads and knows every id.
        let tok = Tokenizer::from_gguf(&gguf).context("cannot load the model's tokenizer")?;
        let bytes = predicted_bytes(&tok, &tokens, model.hparams.n_ctx)?;
        r.predicted_bytes = Some(bytes);
        r.nats_per_byte = (bytes > 0).then(|| r.mean_nll * r.n_predicted as f64 / bytes as f64);
    }
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        let per_byte = r.nats_per_byte.map_or(String::new(), |x| format!("  nats/byte {x:.6}"));
        println!(
            "tokens {}  predicted {}  mean NLL {:.6}  perplexity {:.4}{per_byte}",
            r.n_tokens, r.n_predicted, r.mean_nll, r.perplexity
        );
        if let Some(c) = &r.float {
            println!(
                "float path: perplexity {:.4}  change {:+.3}%  top-1 agreement {}/{} = {:.2}%",
                c.perplexity,
                c.perplexity_change_percent,
                c.top1_agree,
                r.n_predicted,
                c.top1_agreement_percent
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_of_uniform_logits_is_log_vocab() {
        let l = [0.5f32; 4];
        assert!((nll(&l, 2) - 4f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn parses_ids_separated_by_commas_and_whitespace() {
        assert_eq!(parse_token_ids("1, 2\n3\t4,").unwrap(), vec![1, 2, 3, 4]);
        assert!(parse_token_ids("1 x").is_err());
    }
}
