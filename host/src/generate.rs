//! `mote generate`: text generation on the desktop, greedy by default, sampled with
//! transformers' controls and a seed, or by beam search (`--num-beams`), with the same `mote-core`
//! code the firmware runs. The model file is memory-mapped and read in place; the run state is one
//! allocation of exactly [`RunState::bytes_needed`] bytes ([`BeamSearch::bytes_needed`] with
//! beams).

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context as _};
use mote_core::gguf::Gguf;

pub use crate::model_file::ModelFile;
use crate::threads::{prefill_scratch, prefill_storage, row_split, SpeedArgs};
use crate::tokenize::utf8_text;
use mote_core::beam::{BeamConfig, BeamSearch, EarlyStopping};
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::sampler::{Sampler, SamplerConfig};
use mote_core::session::{logits_checksum, Generated, Session, StopReason, Stops};
use mote_core::state::{KvType, RunState};
use mote_core::tokenizer::{Special, Tokenizer};
use mote_core::Math;

/// Arguments of `mote generate`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file (from `mote convert`), or a bundled model by name: tinystories-base (the
    /// default) or tinystories-small.
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
    /// Arithmetic of the forward pass: f32, or integers only (as on a core without an FPU; needs
    /// `--kv q8_0`).
    #[arg(long, value_enum, default_value_t = MathArg::Float)]
    pub math: MathArg,
    /// Print one JSON object (prompt ids, generated ids, text, tokens/s) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub speed: SpeedArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub beams: BeamArgs,
    #[command(flatten)]
    pub stops: StopArgs,
}

/// Most bytes of run state `mote generate` allocates unless `--memory-limit` says otherwise: the
/// beams' KV caches grow with the beams, and 1 GiB holds 13 beams of GPT-2 124M with an f32 cache
/// at its full context.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

/// Beam search, with transformers' meanings (`num_beams`, `length_penalty`, `early_stopping`,
/// `num_return_sequences`); one beam decodes greedily or samples.
#[derive(clap::Args, Clone, Debug)]
pub struct BeamArgs {
    /// Beams (1: no beam search).
    #[arg(long, default_value_t = 1)]
    pub num_beams: usize,
    /// A finished sequence's score is its log-probability over its new-token count to this power.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    pub length_penalty: f32,
    /// When beam search ends before the token limit: `true` once N sequences are finished,
    /// `false` once no running beam can beat them at its current length, `never` at its longest.
    #[arg(long, value_enum, default_value_t = EarlyStoppingArg::False)]
    pub early_stopping: EarlyStoppingArg,
    /// Finished sequences to return, best first (at most the beams).
    #[arg(long, default_value_t = 1)]
    pub num_return_sequences: usize,
    /// Most bytes of run state to allocate (KV caches of every beam included).
    #[arg(long, default_value_t = DEFAULT_MEMORY_LIMIT)]
    pub memory_limit: u64,
}

/// `--early-stopping` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EarlyStoppingArg {
    /// Stop once N sequences are finished.
    True,
    /// Stop once no running beam can beat the finished ones at its current length.
    False,
    /// Stop once no running beam can beat them even at its longest (with a positive penalty).
    Never,
}

impl From<EarlyStoppingArg> for EarlyStopping {
    fn from(e: EarlyStoppingArg) -> Self {
        match e {
            EarlyStoppingArg::True => Self::True,
            EarlyStoppingArg::False => Self::False,
            EarlyStoppingArg::Never => Self::Never,
        }
    }
}

/// Stop controls, with or without beams.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StopArgs {
    /// The end-of-text token cannot come before this many new tokens.
    #[arg(long, default_value_t = 0)]
    pub min_new_tokens: usize,
    /// Do not stop at the model's end-of-text token (it is generated like any other).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Stop once the generated text contains STRING (repeatable; the JSON says which one).
    #[arg(long, value_name = "STRING")]
    pub stop: Vec<String>,
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

/// `--math` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MathArg {
    /// f32 arithmetic.
    Float,
    /// Integers only (mote-core's integer path).
    Integer,
}

impl From<MathArg> for Math {
    fn from(m: MathArg) -> Self {
        match m {
            MathArg::Float => Math::Float,
            MathArg::Integer => Math::Integer,
        }
    }
}

/// Refuses `--math integer` with a KV type other than q8_0, in the words of the command line.
pub fn check_math(math: Math, kv: KvType) -> anyhow::Result<()> {
    if math == Math::Integer && kv != KvType::Q8_0 {
        bail!(
            "--math integer keeps its KV cache in int8 blocks: give --kv q8_0 (not {})",
            kv.name()
        );
    }
    Ok(())
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
    /// Generated token ids (with beams: the best sequence's).
    pub generated_ids: Vec<u32>,
    /// The generated text (invalid UTF-8 replaced).
    pub text: String,
    /// Why generation stopped (`end of text`, `token limit`, `context full`, `stop string`; with
    /// beams also `beams done`).
    pub stop: String,
    /// The `--stop` string the (best) text contains, if one stopped it.
    pub stop_string: Option<String>,
    /// Every returned sequence, best first: one without beams.
    pub sequences: Vec<Sequence>,
    /// KV cache type.
    pub kv: &'static str,
    /// Arithmetic of the forward pass (`float` or `integer`).
    pub math: &'static str,
    /// [`logits_checksum`] of the last logits computed, as `0x` and 8 hex digits: the firmware's
    /// summary line prints the same number for the same model, prompt, settings and KV type.
    pub logits_checksum: String,
    /// Prefill time in seconds (the whole prompt, up to the first new token).
    pub prefill_seconds: f64,
    /// Decode speed: tokens per second after the first new token (0 with fewer than two tokens);
    /// with beams, decoding steps (a token for every beam) per second after the first.
    pub tokens_per_second: f64,
    /// The whole generation in seconds, prompt included.
    pub generate_seconds: f64,
    /// With beams: what the search did and what its reorders copied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beam: Option<BeamStats>,
}

/// What a beam search did.
#[derive(Debug, serde::Serialize)]
pub struct BeamStats {
    /// Decoding steps.
    pub steps: usize,
    /// Forward passes, prompt included.
    pub forwards: usize,
    /// Bytes the reorders copied (position maps and tokens).
    pub reorder_bytes: usize,
    /// Bytes copying every beam's KV cache at every step would have copied instead.
    pub cache_copy_bytes: usize,
}

/// One returned sequence.
#[derive(Debug, serde::Serialize)]
pub struct Sequence {
    /// Its new token ids.
    pub ids: Vec<u32>,
    /// Its text (invalid UTF-8 replaced).
    pub text: String,
    /// With beams, transformers' `sequences_scores`: the sum of the tokens' log-probabilities over
    /// the token count to the length penalty; `null` without beams.
    pub score: Option<f32>,
}

/// The stop rules of a run.
#[derive(Clone, Debug, Default)]
pub struct StopSettings {
    /// End-of-text token (`None`: none).
    pub eos: Option<u32>,
    /// The end-of-text token is impossible before this many new tokens.
    pub min_new_tokens: usize,
    /// Stop once the text contains one of these.
    pub strings: Vec<String>,
}

impl StopSettings {
    /// The first of the stop strings that `text` contains.
    fn found(&self, text: &[u8]) -> Option<&str> {
        let text = String::from_utf8_lossy(text);
        self.strings.iter().map(String::as_str).find(|s| text.contains(s))
    }
}

/// How to generate, beside the model and the prompt.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Element type of the KV cache.
    pub kv: KvType,
    /// Arithmetic of the forward pass.
    pub math: Math,
    /// Greedy, or the sampling controls and their seed.
    pub sampler: SamplerConfig,
    /// Threads and prefill batch (they change no bit of the result).
    pub speed: SpeedArgs,
    /// Beam search settings (one beam: none).
    pub beams: BeamConfig,
    /// End of text and stop strings.
    pub stops: StopSettings,
    /// Most bytes of run state to allocate.
    pub memory_limit: u64,
}

/// Generates from `prompt` with `settings`, and calls `on_bytes` with each new token's bytes as it
/// is produced (without beams; with beams nothing is known before the search ends).
pub fn generate(
    model: &Model<'_>,
    detok: &Detokenizer<'_>,
    prompt: &[u32],
    settings: Settings,
    mut on_bytes: impl FnMut(&[u8]),
) -> anyhow::Result<Output> {
    if settings.beams.num_beams > 1 {
        return generate_beams(model, detok, prompt, &settings);
    }
    let Settings { max_tokens, kv, math, sampler, speed, stops, memory_limit, .. } = settings;
    check_math(math, kv)?;
    let mut sampler = Sampler::new(sampler, model.hparams.n_ctx)?;
    let split = row_split(speed.threads)?;
    check_memory(RunState::bytes_needed(&model.hparams, kv) as u64, memory_limit, "the run state")?;
    let mut storage = state_storage(model, kv);
    let mut scratch = prefill_storage(&model.hparams, speed.batch);
    let state = RunState::new_math(&model.hparams, kv, math, &mut storage)?;
    let mut session = Session::new(model, state).with_row_split(&*split);
    if let Some(p) = prefill_scratch(&model.hparams, speed.batch, &mut scratch)? {
        session = session.with_prefill(p);
    }
    let mut generated = Vec::new();
    let mut text = Vec::new();
    let start = Instant::now();
    let mut first: Option<Instant> = None;
    let mut last = start;
    let core_stops = Stops { eos: stops.eos, min_new_tokens: stops.min_new_tokens };
    let Generated { stop, .. } =
        session.generate_until(prompt, max_tokens, &mut sampler, core_stops, |t| {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            generated.push(t);
            let b = detok.bytes(t);
            on_bytes(&b);
            text.extend_from_slice(&b);
            stops.found(&text).is_some()
        })?;
    let generate_seconds = start.elapsed().as_secs_f64();
    let prefill_seconds = first.unwrap_or(last).duration_since(start).as_secs_f64();
    let decode = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let tokens_per_second = if generated.len() >= 2 && decode > 0.0 {
        (generated.len() - 1) as f64 / decode
    } else {
        0.0
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    let stop_string = stops.found(text.as_bytes()).map(str::to_string);
    Ok(Output {
        prompt_ids: prompt.to_vec(),
        sequences: vec![Sequence { ids: generated.clone(), text: text.clone(), score: None }],
        generated_ids: generated,
        text,
        stop: if stop == StopReason::Caller { "stop string".into() } else { stop.to_string() },
        stop_string,
        kv: kv.name(),
        math: math.name(),
        logits_checksum: format!("{:#010x}", logits_checksum(session.logits())),
        prefill_seconds,
        tokens_per_second,
        generate_seconds,
        beam: None,
    })
}

/// Refuses a run state of `bytes` over `limit`, saying which one.
fn check_memory(bytes: u64, limit: u64, what: &str) -> anyhow::Result<()> {
    if bytes > limit {
        bail!(
            "{what} needs {bytes} bytes, more than the memory limit of {limit} bytes; \
             use fewer beams, a smaller --kv type, or raise --memory-limit"
        );
    }
    Ok(())
}

/// Beam search: the hypotheses, best first, and the best one as the run's text.
fn generate_beams(
    model: &Model<'_>,
    detok: &Detokenizer<'_>,
    prompt: &[u32],
    settings: &Settings,
) -> anyhow::Result<Output> {
    let Settings { max_tokens, kv, speed, beams, stops, memory_limit, .. } = settings;
    let hp = &model.hparams;
    let bytes = BeamSearch::bytes_needed(hp, *kv, beams.num_beams) as u64;
    let what = format!("beam search with {} beams", beams.num_beams);
    check_memory(bytes, *memory_limit, &what)?;
    let split = row_split(speed.threads)?;
    let mut storage = vec![0u8; bytes as usize];
    let mut search = BeamSearch::new(hp, *kv, *beams, &mut storage)?;
    let text_of = |ids: &[u32]| -> Vec<u8> { ids.iter().flat_map(|&t| detok.bytes(t)).collect() };
    // The stop rule is asked once per continuation and step: the first call comes after the
    // prompt's pass, the last after the last step.
    let start = Instant::now();
    let (mut first, mut last) = (None::<Instant>, start);
    let mut stop = |generated: &[u32], next: u32| {
        let now = Instant::now();
        first.get_or_insert(now);
        last = now;
        if stops.strings.is_empty() {
            return false;
        }
        let mut text = text_of(generated);
        text.extend(detok.bytes(next));
        stops.found(&text).is_some()
    };
    let outcome = search.search(model, &*split, prompt, *max_tokens, stops.eos, &mut stop)?;
    let generate_seconds = start.elapsed().as_secs_f64();
    let prefill_seconds = first.unwrap_or(last).duration_since(start).as_secs_f64();
    let decode = first.map_or(0.0, |f| last.duration_since(f).as_secs_f64());
    let tokens_per_second =
        if outcome.steps >= 2 && decode > 0.0 { (outcome.steps - 1) as f64 / decode } else { 0.0 };
    let sequences: Vec<Sequence> = search
        .hypotheses()
        .map(|h| Sequence {
            ids: h.tokens.to_vec(),
            text: String::from_utf8_lossy(&text_of(h.tokens)).into_owned(),
            score: Some(h.score),
        })
        .collect();
    let best = sequences.first();
    let generated_ids = best.map(|b| b.ids.clone()).unwrap_or_default();
    let text = best.map(|b| b.text.clone()).unwrap_or_default();
    let stop_string = stops.found(text.as_bytes()).map(str::to_string);
    let stop = if stop_string.is_some() {
        "stop string".to_string()
    } else if stops.eos.is_some() && generated_ids.last().copied() == stops.eos {
        "end of text".to_string()
    } else {
        outcome.stop.to_string()
    };
    Ok(Output {
        prompt_ids: prompt.to_vec(),
        generated_ids,
        text,
        stop,
        stop_string,
        sequences,
        kv: kv.name(),
        math: Math::Float.name(),
        logits_checksum: format!("{:#010x}", logits_checksum(search.logits())),
        prefill_seconds,
        tokens_per_second,
        generate_seconds,
        beam: Some(BeamStats {
            steps: outcome.steps,
            forwards: outcome.forwards,
            reorder_bytes: outcome.reorder_bytes,
            cache_copy_bytes: outcome.cache_copy_bytes,
        }),
    })
}

/// The beam options, checked against each other, the sampler's and the model by
/// [`BeamConfig::validate_with`], whose one-line errors the `chat` firmware prints too.
fn beam_config(args: &Args, n_ctx: usize) -> anyhow::Result<BeamConfig> {
    let b = &args.beams;
    let cfg = BeamConfig {
        num_beams: b.num_beams,
        length_penalty: b.length_penalty,
        early_stopping: b.early_stopping.into(),
        num_return_sequences: b.num_return_sequences,
        repetition_penalty: args.sampling.repetition_penalty,
        no_repeat_ngram_size: args.sampling.no_repeat_ngram_size,
        min_new_tokens: args.stops.min_new_tokens,
    };
    cfg.validate_with(&SamplerConfig::from(&args.sampling), n_ctx)?;
    Ok(cfg)
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
    if args.stops.stop.iter().any(String::is_empty) {
        bail!("--stop \"\" would stop before the first token; give a non-empty string");
    }
    let beams = beam_config(&args, n_ctx)?;
    if args.math == MathArg::Integer && beams.num_beams > 1 {
        bail!("beam search runs on the float path; drop --num-beams or --math integer");
    }
    let settings = Settings {
        max_tokens: args.max_tokens,
        kv: KvType::from(args.kv),
        math: args.math.into(),
        sampler: SamplerConfig::from(&args.sampling),
        speed: args.speed,
        beams,
        stops: StopSettings {
            eos: if args.stops.ignore_eos { None } else { model.hparams.eos_token },
            min_new_tokens: args.stops.min_new_tokens,
            strings: args.stops.stop.clone(),
        },
        memory_limit: args.beams.memory_limit,
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
        if out.sequences.len() > 1 {
            for (i, seq) in out.sequences.iter().enumerate() {
                let score = seq.score.map_or(String::new(), |s| format!(" (score {s:.4})"));
                writeln!(stdout, "{}{score}: {}", i + 1, seq.text)?;
            }
        } else if beams.num_beams > 1 {
            // Beam search streams nothing: the best sequence, once known.
            writeln!(stdout, "{}", out.text)?;
        } else {
            writeln!(stdout)?;
        }
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
