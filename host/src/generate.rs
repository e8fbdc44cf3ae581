//! `mote generate`: text generation on the desktop, greedy by default or sampled with
//! transformers' controls and a seed, with the same `mote-core` code the firmware runs. The model
//! file is memory-mapped and read in place; the run state is one allocation of exactly
//! [`RunState::bytes_needed`] bytes.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use mote_core::gguf::Gguf;

pub use crate::model_file::ModelFile;
use crate::threads::{prefill_scratch, prefill_storage, row_split, SpeedArgs};
use crate::tokenize::utf8_text;
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::sampler::{Sampler, SamplerConfig};
use mote_core::session::{logits_checksum, Generated, Session};
use mote_core::state::{KvType, RunState};
use mote_core::tokenizer::{Special, Tokenizer};

/// Arguments of `mote generate`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file (from `mote convert`); without it, the bundled tinystories-675k model.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prompt text (UTF-8), encoded with the model's own tokenizer.
    #[arg(
        long,
        conflicts_with_all = ["tokens", "prompt_file"],
        required_unless_present_any = ["tokens", "prompt_file"]
    )]
    pub prompt: Option<OsString>,
    /// Read the prompt text (UTF-8) from a file instead (`-`: standard input).
    #[arg(long, value_name = "FILE", conflicts_with = "tokens")]
    pub prompt_file: Option<PathBuf>,
    /// Prompt as token ids, comma-separated (`--tokens 464,2068,7586`).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub tokens: Option<Vec<u32>>,
    /// Most tokens to generate (at least 1; generation also stops when the context is full).
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Element type of the KV cache.
    #[arg(long, value_enum, default_value_t = KvArg::F32)]
    pub kv: KvArg,
    /// Print one JSON object (prompt ids, generated ids, text, tokens/s) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub speed: SpeedArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// The sampling controls, with transformers' meanings; the defaults decode greedily.
#[derive(clap::Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Softmax temperature; 0 decodes greedily.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Sample among the K most likely tokens only.
    #[arg(long)]
    pub top_k: Option<u32>,
    /// Sample among the most likely tokens whose probabilities add up to P.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Penalise tokens already seen (1 is off; transformers' repetition_penalty).
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub repetition_penalty: f32,
    /// Never repeat an n-gram of this size (0 is off).
    #[arg(long, default_value_t = 0)]
    pub no_repeat_ngram_size: u32,
    /// Seed of the pseudo-random generator: the same seed gives the same text on every target.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl From<&SamplingArgs> for SamplerConfig {
    fn from(a: &SamplingArgs) -> Self {
        Self {
            temperature: a.temperature,
            top_k: a.top_k,
            top_p: a.top_p,
            repetition_penalty: a.repetition_penalty,
            no_repeat_ngram_size: a.no_repeat_ngram_size,
            seed: a.seed,
        }
    }
}

/// `--kv` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KvArg {
    /// Q8_0 blocks (needs a width that is a multiple of 32).
    #[value(name = "q8_0")]
    Q8_0,
    /// IEEE half.
    F16,
    /// f32.
    F32,
}

impl From<KvArg> for KvType {
    fn from(k: KvArg) -> Self {
        match k {
            KvArg::Q8_0 => KvType::Q8_0,
            KvArg::F16 => KvType::F16,
            KvArg::F32 => KvType::F32,
        }
    }
}

/// Loads the model from a parsed file, its per-layer views in `layers` ([`MAX_LAYERS`] of them
/// take any GPT-2), with a message that says what to do.
pub fn load_model<'g: 'a, 'a>(
    gguf: &Gguf<'g>,
    name: &str,
    layers: &'a mut [Layer<'g>],
) -> anyhow::Result<Model<'a>> {
    Model::load(gguf, layers).with_context(|| {
        format!(
            "{name} is not a GPT-2 model mote can run (convert Hugging Face GPT-2 checkpoints with `mote convert`)"
        )
    })
}

/// Storage for a run state of `model` with a `kv` cache, exactly [`RunState::bytes_needed`] bytes.
pub fn state_storage(model: &Model<'_>, kv: KvType) -> Vec<u8> {
    vec![0u8; RunState::bytes_needed(&model.hparams, kv)]
}

/// The prompt's token ids: `--tokens` as given, or `--prompt` through the model's own tokenizer
/// (`mote_core::tokenizer`; special tokens such as `<|endoftext|>` in the text stay plain text).
pub fn prompt_tokens(
    gguf: &Gguf<'_>,
    prompt: Option<&str>,
    tokens: Option<&[u32]>,
) -> anyhow::Result<Vec<u32>> {
    match (tokens, prompt) {
        (Some(t), _) => Ok(t.to_vec()),
        (None, Some(text)) => {
            let tok = Tokenizer::from_gguf(gguf).context(
                "the model file has no usable tokenizer for --prompt; pass token ids with --tokens 1,2,3",
            )?;
            crate::tokenize::encode(&tok, text, Special::AsText)
        }
        (None, None) => bail!("give a prompt with --prompt TEXT or --tokens 1,2,3"),
    }
}

/// Token ids to text with the model's tokenizer. A file whose tokenizer cannot be loaded (no
/// merges, say) still generates: its tokens just have no text.
pub struct Detokenizer<'a> {
    tok: Option<Tokenizer<'a>>,
}

impl<'a> Detokenizer<'a> {
    /// Reads the tokenizer from the model file, if it has a usable one.
    pub fn new(gguf: &Gguf<'a>) -> Self {
        Self { tok: Tokenizer::from_gguf(gguf).ok() }
    }

    /// Whether token text is available.
    pub fn has_text(&self) -> bool {
        self.tok.is_some()
    }

    /// The bytes of token `id` (empty without a tokenizer or for an unknown id).
    pub fn bytes(&self, id: u32) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(tok) = &self.tok {
            // An id outside the vocabulary cannot come out of the model; it would just add no text.
            let _ = tok.token_bytes(id, |b| out.extend_from_slice(b));
        }
        out
    }
}

/// What one `mote generate` run produced.
#[derive(Debug, serde::Serialize)]
pub struct Output {
    /// Prompt token ids.
    pub prompt_ids: Vec<u32>,
    /// Generated token ids.
    pub generated_ids: Vec<u32>,
    /// The generated text (invalid UTF-8 replaced).
    pub text: String,
    /// Why generation stopped (`end of text`, `token limit`, `context full`).
    pub stop: String,
    /// KV cache type.
    pub kv: &'static str,
    /// [`logits_checksum`] of the last logits computed, as `0x` and 8 hex digits: the firmware's
    /// summary line prints the same number for the same model, prompt, settings and KV type.
    pub logits_checksum: String,
    /// Prefill time in seconds (the whole prompt, up to the first new token).
    pub prefill_seconds: f64,
    /// Decode speed: tokens per second after the first new token (0 with fewer than two tokens).
    pub tokens_per_second: f64,
}

/// How to generate, beside the model and the prompt.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Element type of the KV cache.
    pub kv: KvType,
    /// Greedy, or the sampling controls and their seed.
    pub sampler: SamplerConfig,
    /// Threads and prefill batch (they change no bit of the result).
    pub speed: SpeedArgs,
}

/// Generates from `prompt` with `settings`, and calls `on_bytes` with each new token's bytes as it
/// is produced.
pub fn generate(
    model: &Model<'_>,
    detok: &Detokenizer<'_>,
    prompt: &[u32],
    settings: Settings,
    mut on_bytes: impl FnMut(&[u8]),
) -> anyhow::Result<Output> {
    let Settings { max_tokens, kv, sampler, speed } = settings;
    let mut sampler = Sampler::new(sampler, model.hparams.n_ctx)?;
    let split = row_split(speed.threads)?;
    let mut storage = state_storage(model, kv);
    let mut scratch = prefill_storage(&model.hparams, speed.batch);
    let state = RunState::new(&model.hparams, kv, &mut storage)?;
    let mut session = Session::new(model, state).with_row_split(&*split);
    if let Some(p) = prefill_scratch(&model.hparams, speed.batch, &mut scratch)? {
        session = session.with_prefill(p);
    }
    let mut generated = Vec::new();
    let mut text = Vec::new();
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = start;
    let Generated { stop, .. } = session.generate_with(prompt, max_tokens, &mut sampler, |t| {
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        generated.push(t);
        let b = detok.bytes(t);
        on_bytes(&b);
        text.extend_from_slice(&b);
    })?;
    let prefill_seconds = first.unwrap_or(last).duration_since(start).as_secs_f64();
    let decode = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let tokens_per_second = if generated.len() >= 2 && decode > 0.0 {
        (generated.len() - 1) as f64 / decode
    } else {
        0.0
    };
    Ok(Output {
        prompt_ids: prompt.to_vec(),
        generated_ids: generated,
        text: String::from_utf8_lossy(&text).into_owned(),
        stop: stop.to_string(),
        kv: kv.name(),
        logits_checksum: format!("{:#010x}", logits_checksum(session.logits())),
        prefill_seconds,
        tokens_per_second,
    })
}

/// Runs `mote generate`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let file = ModelFile::open_arg(args.model.as_deref())?;
    let gguf = file.gguf()?;
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = load_model(&gguf, file.name(), &mut layers)?;
    if args.max_tokens == 0 {
        bail!("--max-tokens 0 generates nothing; give 1 or more");
    }
    let n_ctx = model.hparams.n_ctx;
    if args.max_tokens > n_ctx {
        bail!(
            "--max-tokens {} is more than {} can ever produce: its context holds {n_ctx} tokens, \
             prompt included; give at most {n_ctx}",
            args.max_tokens,
            file.name()
        );
    }
    let prompt_bytes = match (&args.prompt, &args.prompt_file) {
        (Some(p), _) => Some(p.as_encoded_bytes().to_vec()),
        (None, Some(path)) => Some(crate::input::read(path, "the prompt file")?),
        (None, None) => None,
    };
    let prompt_text = prompt_bytes.as_deref().map(|b| utf8_text(b, "the prompt")).transpose()?;
    let prompt = prompt_tokens(&gguf, prompt_text, args.tokens.as_deref())?;
    let detok = Detokenizer::new(&gguf);
    if !detok.has_text() && !args.json {
        eprintln!(
            "note: the model file has no usable tokenizer; printing token ids only in --json"
        );
    }
    let settings = Settings {
        max_tokens: args.max_tokens,
        kv: KvType::from(args.kv),
        sampler: SamplerConfig::from(&args.sampling),
        speed: args.speed,
    };
    let json = args.json;
    let mut stdout = std::io::stdout().lock();
    let out = generate(&model, &detok, &prompt, settings, |b| {
        if !json {
            // Streaming is best effort: a closed pipe must not abort the generation's summary.
            let _ = stdout.write_all(b);
            let _ = stdout.flush();
        }
    })
    .context("generation failed")?;
    if json {
        serde_json::to_writer(&mut stdout, &out)?;
        writeln!(stdout)?;
    } else {
        writeln!(stdout)?;
        eprintln!(
            "[{} prompt tokens, {} generated, stop: {}, kv {}, prefill {:.3} s, {:.2} tokens/s]",
            out.prompt_ids.len(),
            out.generated_ids.len(),
            out.stop,
            out.kv,
            out.prefill_seconds,
            out.tokens_per_second
        );
    }
    Ok(())
}
