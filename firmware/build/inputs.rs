//! The generating binaries' build-time inputs, from the build's environment (`cargo xtask firmware
//! --prompt ... --model ... --max-tokens ... --kv ... --temperature ...` sets them), each read and
//! checked once: changing one rebuilds the firmware, and a bad one stops the build by name.

use std::env;
use std::path::{Path, PathBuf};

use mote_boards::{bundled_model, DEFAULT_MAX_TOKENS, DEFAULT_MODEL, DEFAULT_PROMPT};
use mote_core::beam::{BeamConfig, EarlyStopping};
use mote_core::gguf::Gguf;
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::sampler::SamplerConfig;
use mote_core::state::KvType;

/// Every variable the build reads.
const VARS: [&str; 15] = [
    "MOTE_PROMPT",
    "MOTE_MAX_TOKENS",
    "MOTE_MODEL",
    "MOTE_KV",
    "MOTE_TEMPERATURE",
    "MOTE_TOP_K",
    "MOTE_TOP_P",
    "MOTE_REPETITION_PENALTY",
    "MOTE_NO_REPEAT_NGRAM_SIZE",
    "MOTE_SEED",
    "MOTE_NUM_BEAMS",
    "MOTE_LENGTH_PENALTY",
    "MOTE_EARLY_STOPPING",
    "MOTE_NUM_RETURN_SEQUENCES",
    "MOTE_MIN_NEW_TOKENS",
];

/// What the build was asked to embed and how to generate.
pub struct Inputs {
    /// The model file (`MOTE_MODEL`: a path or a bundled model's name; default [`DEFAULT_MODEL`]).
    pub model: PathBuf,
    /// The prompt (`MOTE_PROMPT`, default [`DEFAULT_PROMPT`]).
    pub prompt: String,
    /// Most tokens to generate (`MOTE_MAX_TOKENS`, default [`DEFAULT_MAX_TOKENS`]), at least 1.
    pub max_tokens: u32,
    /// The KV type (`MOTE_KV`); `None`: the device's rule for the model.
    pub kv: Option<KvType>,
    /// Sampler settings (`MOTE_TEMPERATURE`, `MOTE_TOP_K`, `MOTE_TOP_P`,
    /// `MOTE_REPETITION_PENALTY`, `MOTE_NO_REPEAT_NGRAM_SIZE`, `MOTE_SEED`).
    pub sampler: SamplerConfig,
    /// Beam search settings (`MOTE_NUM_BEAMS`, default 1: none; `MOTE_LENGTH_PENALTY`,
    /// `MOTE_EARLY_STOPPING`, `MOTE_NUM_RETURN_SEQUENCES`; the repetition penalty and no-repeat
    /// n-grams are the sampler's) and `MOTE_MIN_NEW_TOKENS`, which also applies without beams.
    pub beams: BeamConfig,
}

impl Inputs {
    /// Reads every variable; a relative default model path is taken from the repository root,
    /// which is `manifest_dir`'s parent.
    pub fn from_env(manifest_dir: &Path) -> Result<Self, String> {
        for var in VARS {
            println!("cargo:rerun-if-env-changed={var}");
        }
        let model = match env::var("MOTE_MODEL") {
            // A bundled model's name (`MOTE_MODEL=tinystories-small`) or a path.
            Ok(arg) => match bundled_model(&arg) {
                Some(path) => manifest_dir.join("..").join(path),
                None => PathBuf::from(arg),
            },
            Err(_) => manifest_dir.join("..").join(DEFAULT_MODEL),
        };
        let prompt = env::var("MOTE_PROMPT").unwrap_or_else(|_| DEFAULT_PROMPT.to_string());
        let max_tokens =
            match env::var("MOTE_MAX_TOKENS") {
                Ok(v) => v.parse::<u32>().ok().filter(|&n| n > 0).ok_or_else(|| {
                    format!("MOTE_MAX_TOKENS={v:?} is not a positive whole number")
                })?,
                Err(_) => DEFAULT_MAX_TOKENS,
            };
        let kv = match env::var("MOTE_KV").as_deref() {
            Err(_) => None,
            Ok("q8_0") => Some(KvType::Q8_0),
            Ok("f16") => Some(KvType::F16),
            Ok("f32") => Some(KvType::F32),
            Ok(other) => return Err(format!("MOTE_KV={other:?} is none of q8_0, f16, f32")),
        };
        let sampler = SamplerConfig {
            temperature: number("MOTE_TEMPERATURE")?.unwrap_or(0.0),
            top_k: whole("MOTE_TOP_K")?,
            top_p: number("MOTE_TOP_P")?.unwrap_or(1.0),
            repetition_penalty: number("MOTE_REPETITION_PENALTY")?.unwrap_or(1.0),
            no_repeat_ngram_size: whole("MOTE_NO_REPEAT_NGRAM_SIZE")?.unwrap_or(0),
            seed: whole("MOTE_SEED")?.unwrap_or(0),
        };
        let early_stopping = match env::var("MOTE_EARLY_STOPPING").as_deref() {
            Err(_) | Ok("false") => EarlyStopping::False,
            Ok("true") => EarlyStopping::True,
            Ok("never") => EarlyStopping::Never,
            Ok(other) => {
                return Err(format!("MOTE_EARLY_STOPPING={other:?} is none of true, false, never"))
            }
        };
        let beams = BeamConfig {
            num_beams: whole("MOTE_NUM_BEAMS")?.unwrap_or(1),
            length_penalty: number("MOTE_LENGTH_PENALTY")?.unwrap_or(1.0),
            early_stopping,
            num_return_sequences: whole("MOTE_NUM_RETURN_SEQUENCES")?.unwrap_or(1),
            repetition_penalty: sampler.repetition_penalty,
            no_repeat_ngram_size: sampler.no_repeat_ngram_size,
            min_new_tokens: whole("MOTE_MIN_NEW_TOKENS")?.unwrap_or(0),
        };
        Ok(Self { model, prompt, max_tokens, kv, sampler, beams })
    }
}

/// `var` as an f32, parsed directly as `mote generate` parses its flags (no double rounding).
fn number(var: &str) -> Result<Option<f32>, String> {
    parse(var, "a number")
}

/// `var` as a whole number of type `T`.
fn whole<T: std::str::FromStr>(var: &str) -> Result<Option<T>, String> {
    parse(var, &format!("a whole number of at most {} bits", 8 * size_of::<T>()))
}

fn parse<T: std::str::FromStr>(var: &str, what: &str) -> Result<Option<T>, String> {
    match env::var(var) {
        Ok(v) => v.trim().parse().map(Some).map_err(|_| format!("{var}={v:?} is not {what}")),
        Err(_) => Ok(None),
    }
}

/// Refuses a KV type that this build's mote-core leaves out: with the `kv-q8_0-only` feature
/// (which `cargo xtask firmware` turns on when the KV type is Q8_0), the device's cache holds Q8_0
/// only.
pub fn check_kv_built(kv: KvType) -> Result<(), String> {
    if kv != KvType::Q8_0 && env::var_os("CARGO_FEATURE_KV_Q8_0_ONLY").is_some() {
        return Err(format!(
            "the KV type is {}, but this build has the feature kv-q8_0-only (a Q8_0 cache only): \
             build without it",
            kv.name()
        ));
    }
    Ok(())
}

/// Refuses a model that multiplies a matrix other than Q8_0 when this build has the
/// `weights-q8_0-only` feature (which `cargo xtask firmware` turns on when every product is Q8_0).
pub fn check_weights_built(gguf: &Gguf<'_>, name: &str) -> Result<(), String> {
    if env::var_os("CARGO_FEATURE_WEIGHTS_Q8_0_ONLY").is_none() {
        return Ok(());
    }
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(gguf, &mut layers).map_err(|e| format!("{name}: {e}"))?;
    if !model.multiplies_q8_0_only() {
        return Err(format!(
            "{name} multiplies matrices that are not Q8_0, but this build has the feature \
             weights-q8_0-only (Q8_0 products only): build without it"
        ));
    }
    Ok(())
}

/// What a refused build could try to need less RAM, for its message: a Q8_0 KV cache (when it has
/// another), fewer beams (when it has more than one), a model with a shorter context.
pub fn ram_advice(kv: KvType, beams: usize) -> String {
    let mut tries = Vec::new();
    if kv != KvType::Q8_0 {
        tries.push("MOTE_KV=q8_0");
    }
    if beams > 1 {
        tries.push("fewer beams");
    }
    tries.push("a model with a shorter context");
    tries.join(", or ")
}
