//! Generation on the device: the model in flash, every byte of run state in a static sized at
//! build time, the prompt encoded here, tokens chosen greedily (or by the build's sampler
//! settings) and printed as they come, with SysTick counts per token; or, with beams
//! (`--num-beams N`), a beam search whose hypotheses are printed when it ends.
//!
//! Build-time inputs (`cargo xtask firmware --bin generate --prompt ... --model ...`, or the
//! `MOTE_*` variables that the build script in `build/` reads): the model (default: tinystories-base), the prompt
//! (default "Once upon a time"), the token limit, the KV type, the sampler and beam settings. A
//! model or run state the board cannot hold, or a prompt of no tokens or too many, fails the build.
//!
//! The last line is the machine-readable summary that `cargo xtask parity` compares with
//! `mote generate --json` on the desktop:
//! `summary: kv=q8_0 prompt=[..] generated=[..] stop=".." logits_checksum=0x........`.
#![no_std]
#![no_main]
// Cold code optimised for size: see the `optimize-size` feature.
#![cfg_attr(feature = "optimize-size", feature(optimize_attribute))]

use core::mem::MaybeUninit;

use mote_core::beam::BeamSearch;
use mote_core::gguf::Gguf;
use mote_core::model::{Layer, Model};
use mote_core::sampler::Sampler;
use mote_core::session::{logits_checksum, Session, Stops};
use mote_core::split::Serial;
use mote_core::state::RunState;
use mote_core::tokenizer::{BpeScratch, Special, StreamDecoder, Tokenizer};
use mote_firmware::blob::Aligned;
use mote_firmware::{self as fw, ExitCode, BOARD};

/// The build's model, prompt and settings (the build script writes them; see the module docs).
mod build {
    include!(concat!(env!("OUT_DIR"), "/generate.rs"));
}

/// The model, in flash, aligned as the GGUF reader needs. `cargo xtask size` finds it by name.
#[no_mangle]
#[cfg_attr(mote_model_region, link_section = ".model")]
static MOTE_MODEL: Aligned<[u8; build::MODEL_BYTES]> =
    Aligned { bytes: *include_bytes!(env!("MOTE_MODEL")) };

/// Storage of the run state: activations, logits, token history and KV cache (of every beam, with
/// beams).
#[repr(C, align(8))]
struct StateStorage([u8; build::STATE_BYTES]);

/// Bytes of text a token line shows before it is split over several lines.
const TEXT_LINE: usize = 96;

#[mote_firmware::entry]
fn main() -> ! {
    // `&'static mut` references to statics (in .bss): RAM that the linker counts, never the
    // stack. `cargo xtask size` finds them by name.
    let state =
        fw::take_static!(MOTE_RUN_STATE: StateStorage = StateStorage([0; build::STATE_BYTES]));
    let scratch = fw::take_static!(MOTE_BPE_SCRATCH: BpeScratch = BpeScratch::new());
    let prompt_ids =
        fw::take_static!(MOTE_PROMPT_IDS: [u32; build::PROMPT_TOKENS] = [0; build::PROMPT_TOKENS]);
    // The model's per-layer views (one per block of this build's model) and the tokenizer (its
    // byte table is 1 KiB): statics, so that they are never on the stack while generating.
    let layers = fw::take_static!(MOTE_LAYERS: [Layer<'static>; build::HPARAMS.n_layer] =
        [Layer::EMPTY; build::HPARAMS.n_layer]);
    // (Uninitialized rather than an `Option`: `None` is not all zeros, which would put its 1.4 KB
    // of initial value in flash.)
    let tokenizer =
        fw::take_static!(MOTE_TOKENIZER: MaybeUninit<Tokenizer<'static>> = MaybeUninit::uninit());

    fw::init();
    let loaded = load(layers, tokenizer);
    match loaded.and_then(|(model, tokenizer)| run(&model, tokenizer, state, scratch, prompt_ids)) {
        Ok(()) => fw::finish(ExitCode::Success),
        Err(()) => fw::finish(ExitCode::Failure),
    }
}

/// Reads the model from flash, its layer views into `layers` and its tokenizer into `tokenizer`;
/// an error has been logged when this returns `Err`. Never inlined: the temporaries of loading
/// (errors that carry names, the tokenizer before it reaches its static) leave the stack before
/// generation starts.
#[inline(never)]
#[cfg_attr(feature = "optimize-size", optimize(size))]
fn load(
    layers: &'static mut [Layer<'static>],
    tokenizer: &'static mut MaybeUninit<Tokenizer<'static>>,
) -> Result<(Model<'static>, &'static Tokenizer<'static>), ()> {
    let hp = build::HPARAMS;
    defmt::info!(
        "mote-core {=str} on {=str} ({=str}); model {=str}: {=usize} bytes in flash",
        mote_core::VERSION,
        BOARD.name,
        BOARD.cpu,
        build::MODEL_NAME,
        build::MODEL_BYTES
    );

    let t = fw::systick::now();
    let gguf = Gguf::parse(&MOTE_MODEL.bytes).map_err(|e| defmt::error!("model: {}", e))?;
    let model = load_model(&gguf, layers)?;
    let tokenizer = load_tokenizer(&gguf, tokenizer)?;
    let load_ticks = fw::systick::now() - t;
    if model.hparams != hp {
        defmt::error!("the model's hyper-parameters differ from those it was built with");
        return Err(());
    }
    defmt::info!(
        "{=usize} layers, width {=usize}, {=usize} heads, vocabulary {=usize}, context {=usize}; loaded in {=u64} ticks",
        hp.n_layer,
        hp.n_embd,
        hp.n_head,
        hp.n_vocab,
        hp.n_ctx,
        load_ticks
    );
    Ok((model, tokenizer))
}

/// The model's views; the layers' go to `layers`. Not inlined, as [`load`].
#[inline(never)]
#[cfg_attr(feature = "optimize-size", optimize(size))]
fn load_model(
    gguf: &Gguf<'static>,
    layers: &'static mut [Layer<'static>],
) -> Result<Model<'static>, ()> {
    Model::load(gguf, layers).map_err(|e| defmt::error!("model: {}", e))
}

/// The tokenizer, in `slot`. Not inlined, as [`load`].
#[inline(never)]
#[cfg_attr(feature = "optimize-size", optimize(size))]
fn load_tokenizer(
    gguf: &Gguf<'static>,
    slot: &'static mut MaybeUninit<Tokenizer<'static>>,
) -> Result<&'static Tokenizer<'static>, ()> {
    let tokenizer = Tokenizer::from_gguf(gguf).map_err(|e| defmt::error!("tokenizer: {}", e))?;
    Ok(slot.write(tokenizer))
}

/// Encodes, generates and reports; an error has been logged when this returns `Err`. Not
/// inlined either: `main`'s own frame stays small while the loaders' frames are on the stack.
#[inline(never)]
#[cfg_attr(feature = "optimize-size", optimize(size))]
fn run(
    model: &Model<'static>,
    tokenizer: &Tokenizer<'static>,
    storage: &'static mut StateStorage,
    scratch: &'static mut BpeScratch,
    prompt_ids: &'static mut [u32],
) -> Result<(), ()> {
    let hp = build::HPARAMS;
    defmt::info!(
        "run state: {=usize} bytes, static, KV cache {=str}",
        build::STATE_BYTES,
        build::KV.name()
    );

    let t = fw::systick::now();
    let n_prompt = tokenizer
        .encode(build::PROMPT, Special::AsText, scratch, prompt_ids)
        .map_err(|e| defmt::error!("prompt: {}", e))?;
    let encode_ticks = fw::systick::now() - t;
    let prompt = &prompt_ids[..n_prompt];
    defmt::info!(
        "prompt {=str:?}: {=usize} bytes, {=usize} tokens {=[?]}, encoded in {=u64} ticks",
        build::PROMPT,
        build::PROMPT.len(),
        n_prompt,
        prompt,
        encode_ticks
    );

    let config = build::SAMPLER;
    let mut sampler =
        Sampler::new(config, hp.n_ctx).map_err(|e| defmt::error!("sampler: {}", e))?;
    if config.is_sampling() {
        defmt::info!(
            "sampling: temperature {=f32}, top-k {}, top-p {=f32}, repetition penalty {=f32}, no-repeat n-gram {=u32}, seed {=u64}",
            config.temperature,
            config.top_k,
            config.top_p,
            config.repetition_penalty,
            config.no_repeat_ngram_size,
            config.seed
        );
    } else {
        defmt::info!(
            "greedy; repetition penalty {=f32}, no-repeat n-gram {=u32}",
            config.repetition_penalty,
            config.no_repeat_ngram_size
        );
    }
    defmt::info!("weight multiply-accumulates per token: {=usize}", weight_macs(&hp));
    if build::BEAMS.num_beams > 1 {
        return beam_search(model, tokenizer, prompt, &mut storage.0);
    }

    // The board's arithmetic (boards.toml's `math`), fixed at build time.
    let state = RunState::new_math(&hp, build::KV, build::MATH, &mut storage.0)
        .map_err(|e| defmt::error!("run state: {}", e))?;
    let mut session = Session::new(model, state);
    let mut generated = [0u32; build::MAX_TOKENS];
    let mut n = 0usize;
    let mut stream = StreamDecoder::new();
    let mut prompt_ticks = 0u64;
    let mut generation_ticks = 0u64;
    let mut last = fw::systick::now();
    let stops = Stops { eos: hp.eos_token, min_new_tokens: build::BEAMS.min_new_tokens };
    let outcome = session.generate_until(prompt, build::MAX_TOKENS, &mut sampler, stops, |id| {
        let ticks = fw::systick::now() - last;
        // The first token comes out of the prompt's last position: its ticks are the prompt's.
        if n == 0 {
            prompt_ticks = ticks;
        } else {
            generation_ticks += ticks;
        }
        if let Some(slot) = generated.get_mut(n) {
            *slot = id;
        }
        n += 1;
        let mut line = Line::new();
        let shown = tokenizer.decode_stream(id, &mut stream, &mut |text| line.push(text));
        if shown.is_err() {
            defmt::warn!("token {=u32} is outside the vocabulary", id);
        }
        defmt::info!("token {=usize} {=u32} {=u64} ticks {=str:?}", n, id, ticks, line.as_str());
        // Logging is not the model's work: the next token's count starts after it.
        last = fw::systick::now();
        false
    });
    let done = outcome.map_err(|e| defmt::error!("generation: {}", e))?;
    let generated = &generated[..n.min(build::MAX_TOKENS)];

    // The session's own words for the stop reason, as `mote generate --json` prints them.
    let stop = done.stop.as_str();
    defmt::info!("stop: {=str}, {=usize} tokens", stop, done.n_generated);
    let per_decoded = if n > 1 { generation_ticks / (n as u64 - 1) } else { 0 };
    defmt::info!(
        "ticks: prompt {=u64} ({=usize} positions), generation {=u64} ({=u64} per token after the first)",
        prompt_ticks,
        n_prompt,
        generation_ticks,
        per_decoded
    );
    defmt::println!(
        "summary: kv={=str} prompt={=[?]} generated={=[?]} stop={=str:?} logits_checksum={=u32:#010x}",
        build::KV.name(),
        prompt,
        generated,
        stop,
        logits_checksum(session.logits())
    );
    Ok(())
}

/// Beam search over the build's beams; its hypotheses, best first, once it ends. The summary's
/// `generated` is the best hypothesis, as `mote generate --json`'s `generated_ids`.
#[cfg_attr(feature = "optimize-size", optimize(size))]
fn beam_search(
    model: &Model<'_>,
    tokenizer: &Tokenizer<'_>,
    prompt: &[u32],
    storage: &mut [u8],
) -> Result<(), ()> {
    let hp = model.hparams;
    let config = build::BEAMS;
    let mut search = BeamSearch::new(&hp, build::KV, config, storage)
        .map_err(|e| defmt::error!("beam search: {}", e))?;
    defmt::info!(
        "beam search: {=usize} beams, length penalty {=f32}, early stopping {=str}, {=usize} returned, min new tokens {=usize}",
        config.num_beams,
        config.length_penalty,
        config.early_stopping.name(),
        config.num_return_sequences,
        config.min_new_tokens
    );
    // The stop rule is asked of every continuation at every step: its first call comes after the
    // prompt's positions, its last after the last step.
    let start = fw::systick::now();
    let (mut first, mut last) = (None, start);
    let mut stop = |_: &[u32], _: u32| {
        let now = fw::systick::now();
        first.get_or_insert(now);
        last = now;
        false
    };
    let outcome = search
        .search(model, &Serial, prompt, build::MAX_TOKENS, hp.eos_token, &mut stop)
        .map_err(|e| defmt::error!("beam search: {}", e))?;
    let first = first.unwrap_or(last);
    let (prompt_ticks, generation_ticks) = (first - start, last - first);
    let mut best: &[u32] = &[];
    for (i, h) in search.hypotheses().enumerate() {
        if i == 0 {
            best = h.tokens;
        }
        let mut line = Line::new();
        let mut stream = StreamDecoder::new();
        for &id in h.tokens {
            let _ = tokenizer.decode_stream(id, &mut stream, &mut |text| line.push(text));
        }
        defmt::info!(
            "hypothesis {=usize} score {=f32} tokens {=[?]} {=str:?}",
            i + 1,
            h.score,
            h.tokens,
            line.as_str()
        );
    }
    // The desktop's words: the end of text when the best hypothesis ends with it.
    let stop = if hp.eos_token.is_some() && best.last().copied() == hp.eos_token {
        "end of text"
    } else {
        outcome.stop.as_str()
    };
    defmt::info!(
        "stop: {=str}, {=usize} tokens (steps of {=usize} beams, {=usize} forward passes)",
        stop,
        outcome.steps,
        config.num_beams,
        outcome.forwards
    );
    let per_step =
        if outcome.steps > 1 { generation_ticks / (outcome.steps as u64 - 1) } else { 0 };
    defmt::info!(
        "ticks: prompt {=u64} ({=usize} positions), generation {=u64} ({=u64} per token after the first)",
        prompt_ticks,
        prompt.len(),
        generation_ticks,
        per_step
    );
    defmt::println!(
        "summary: kv={=str} prompt={=[?]} generated={=[?]} stop={=str:?} logits_checksum={=u32:#010x}",
        build::KV.name(),
        prompt,
        best,
        stop,
        logits_checksum(search.logits())
    );
    Ok(())
}

/// Weight multiply-accumulates of one decode step: every matrix row by its input, the head
/// included (attention over the cache is extra and grows with the position).
fn weight_macs(hp: &mote_core::model::HParams) -> usize {
    let (c, f) = (hp.n_embd, hp.n_ff);
    hp.n_layer * (c * 3 * c + c * c + c * f + f * c) + hp.n_vocab * c
}

/// One token's text, gathered from the stream decoder's pieces; what does not fit is logged
/// straight away as a continuation line, so nothing is lost.
struct Line {
    buf: [u8; TEXT_LINE],
    len: usize,
}

impl Line {
    fn new() -> Self {
        Self { buf: [0; TEXT_LINE], len: 0 }
    }

    fn push(&mut self, text: &str) {
        for c in text.chars() {
            let mut utf8 = [0u8; 4];
            let bytes = c.encode_utf8(&mut utf8).as_bytes();
            if self.len + bytes.len() > TEXT_LINE {
                defmt::info!("... {=str:?}", self.as_str());
                self.len = 0;
            }
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        }
    }

    fn as_str(&self) -> &str {
        // Only whole characters are ever copied in.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}
