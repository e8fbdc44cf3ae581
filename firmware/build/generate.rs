//! `generate.rs`: what the generating binaries need to know at build time about their model,
//! prompt and settings, checked here by the same code the device runs, so that a model or run
//! state the board cannot hold, a prompt of no tokens or too many, or a bad setting stops the
//! build with a message. Also sets `MOTE_MODEL` (absolute) for `include_bytes!`.

use std::fmt::Write as _;
use std::fs;

use mote_boards::{device_kv, Board, Budgets, Fit, Math, Plan};
use mote_core::beam::{BeamConfig, EarlyStopping};
use mote_core::gguf::Gguf;
use mote_core::model::HParams;
use mote_core::sampler::{Sampler, SamplerConfig};
use mote_core::state::KvType;
use mote_core::tokenizer::{BpeScratch, Special, Tokenizer};

use crate::inputs::Inputs;

/// A checked build of the generating binaries.
pub struct Build<'a> {
    inputs: &'a Inputs,
    model_name: String,
    hp: HParams,
    plan: Plan,
    math: Math,
    prompt_tokens: usize,
}

/// Parses the model, encodes the prompt and makes the memory plan, refusing what `board` cannot
/// run.
pub fn check<'a>(inputs: &'a Inputs, board: &Board, budgets: Budgets) -> Result<Build<'a>, String> {
    let path = fs::canonicalize(&inputs.model).map_err(|e| {
        format!(
            "model {}: {e} (MOTE_MODEL names a .gguf file or a bundled model: {})",
            inputs.model.display(),
            mote_boards::bundled_model_names()
        )
    })?;
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rustc-env=MOTE_MODEL={}", path.display());
    let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = path.display();
    let gguf = Gguf::parse(&bytes).map_err(|e| format!("{name}: {e}"))?;
    let hp = HParams::from_gguf(&gguf).map_err(|e| format!("{name}: {e}"))?;
    crate::inputs::check_weights_built(&gguf, &name.to_string())?;
    let tokenizer = Tokenizer::from_gguf(&gguf)
        .map_err(|e| format!("{name}: no usable tokenizer for the prompt: {e}"))?;
    Sampler::new(inputs.sampler, hp.n_ctx).map_err(|e| format!("sampler settings: {e}"))?;
    let beams = inputs.beams;
    beams
        .validate_with(&inputs.sampler, hp.n_ctx)
        .map_err(|e| format!("beam settings (MOTE_NUM_BEAMS, ...): {e}"))?;

    // The prompt, encoded as the device will encode it: its length sizes the device's buffer.
    let prompt = &inputs.prompt;
    let mut scratch = Box::new(BpeScratch::new());
    let mut ids = vec![0u32; prompt.len() + 1];
    let n_prompt = tokenizer
        .encode(prompt, Special::AsText, &mut scratch, &mut ids)
        .map_err(|e| format!("the prompt {prompt:?} cannot be encoded: {e}"))?;
    if n_prompt == 0 {
        return Err(format!(
            "the prompt {prompt:?} encodes to no tokens; the model needs at least one (MOTE_PROMPT)"
        ));
    }
    if inputs.max_tokens as usize > hp.n_ctx {
        return Err(format!(
            "MOTE_MAX_TOKENS={} is more than the model can ever produce: its context holds {} \
             tokens, prompt included",
            inputs.max_tokens, hp.n_ctx
        ));
    }
    if n_prompt >= hp.n_ctx {
        return Err(format!(
            "the prompt {prompt:?} encodes to {n_prompt} tokens, but the model's context holds \
             {} and at least one must be left to generate: shorten MOTE_PROMPT",
            hp.n_ctx
        ));
    }

    // Memory: the plan of `mote inspect --board`, for this prompt and KV type.
    let kv = inputs.kv.unwrap_or_else(|| device_kv(&hp));
    crate::inputs::check_kv_built(kv)?;
    if board.math == Math::Integer {
        integer_settings(board, kv, beams.num_beams)?;
    }
    let plan = Plan::with_beams(bytes.len() as u64, &hp, kv, n_prompt, beams.num_beams, budgets);
    let fit = Fit::new(&plan, board);
    if fit.flash_margin < 0 {
        return Err(format!(
            "board {} cannot hold the model {name}: it needs {} bytes of flash \
             (model {} + code {}), the board has {} \
             (`mote inspect --board {} MODEL` shows the plan)",
            board.name,
            plan.flash,
            plan.model_flash,
            budgets.code_flash,
            board.flash.size,
            board.name
        ));
    }
    if fit.ram_margin < 0 {
        let beams =
            if plan.beams > 1 { format!(" and {} beams", plan.beams) } else { String::new() };
        return Err(format!(
            "board {} cannot hold the run state of {name} with a {} KV cache{beams}: it needs {} \
             bytes of RAM (run state {} + tokenizer {} + prompt {} + stack and other statics {}), \
             the board has {} (try {}; `mote inspect --board {} --beams N MODEL` shows the plan)",
            board.name,
            kv.name(),
            plan.ram,
            plan.run_state,
            plan.tokenizer_scratch,
            plan.prompt,
            budgets.ram_reserve,
            board.ram.size,
            crate::inputs::ram_advice(kv, plan.beams),
            board.name
        ));
    }
    let model_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Build { inputs, model_name, hp, plan, math: board.math, prompt_tokens: n_prompt })
}

/// Refuses what the integer forward pass cannot run on `board` (boards.toml's `math =
/// "integer"`): a beam search, or a KV cache other than Q8_0.
pub fn integer_settings(board: &Board, kv: KvType, beams: usize) -> Result<(), String> {
    if beams > 1 {
        return Err(format!(
            "board {} runs the integer forward pass (boards.toml: math = \"integer\"), which has \
             no beam search: MOTE_NUM_BEAMS={beams} must be 1",
            board.name
        ));
    }
    if kv != KvType::Q8_0 {
        return Err(format!(
            "board {} runs the integer forward pass (boards.toml: math = \"integer\"), which \
             needs a Q8_0 KV cache: MOTE_KV={} must be q8_0 (and the model's width whole Q8_0 \
             blocks of {})",
            board.name,
            kv.name(),
            mote_core::quant::QK8_0
        ));
    }
    Ok(())
}

impl Build<'_> {
    /// The Rust source of `generate.rs`.
    pub fn rust(&self) -> String {
        let HParams { n_vocab, n_ctx, n_embd, n_head, n_layer, n_ff, eps, eos_token } = self.hp;
        let SamplerConfig {
            temperature,
            top_k,
            top_p,
            repetition_penalty,
            no_repeat_ngram_size,
            seed,
        } = self.inputs.sampler;
        let kv = match self.plan.kv {
            KvType::Q8_0 => "Q8_0",
            KvType::F16 => "F16",
            KvType::F32 => "F32",
        };
        let mut rs = String::from(
            "// Generated by build.rs: the generating binaries' model, prompt and settings.\n",
        );
        let mut item = |doc: &str, decl: &str, value: String| {
            writeln!(rs, "/// {doc}\npub const {decl} = {value};").unwrap();
        };
        let bits = |x: f32| format!("f32::from_bits({:#x})", x.to_bits());
        item(
            "Bytes of the embedded model file.",
            "MODEL_BYTES: usize",
            self.plan.model_flash.to_string(),
        );
        item("The model's file name.", "MODEL_NAME: &str", format!("{:?}", self.model_name));
        item(
            "The model's hyper-parameters, as read at build time (the device reads them again).",
            "HPARAMS: mote_core::model::HParams",
            format!(
                "mote_core::model::HParams {{ n_vocab: {n_vocab}, n_ctx: {n_ctx}, n_embd: {n_embd}, \
                 n_head: {n_head}, n_layer: {n_layer}, n_ff: {n_ff}, eps: {}, eos_token: {eos_token:?} }}",
                bits(eps)
            ),
        );
        item(
            "KV cache element type (`MOTE_KV`).",
            "KV: mote_core::state::KvType",
            format!("mote_core::state::KvType::{kv}"),
        );
        let BeamConfig {
            num_beams,
            length_penalty,
            early_stopping,
            num_return_sequences,
            min_new_tokens,
            ..
        } = self.inputs.beams;
        let early_stopping = match early_stopping {
            EarlyStopping::True => "True",
            EarlyStopping::False => "False",
            EarlyStopping::Never => "Never",
        };
        item(
            "Beam search settings (`MOTE_NUM_BEAMS`: 1 is none, `MOTE_LENGTH_PENALTY`, \
             `MOTE_EARLY_STOPPING`, `MOTE_NUM_RETURN_SEQUENCES`, `MOTE_MIN_NEW_TOKENS`; the penalty \
             and n-grams are the sampler's).",
            "BEAMS: mote_core::beam::BeamConfig",
            format!(
                "mote_core::beam::BeamConfig {{ num_beams: {num_beams}, length_penalty: {}, \
                 early_stopping: mote_core::beam::EarlyStopping::{early_stopping}, \
                 num_return_sequences: {num_return_sequences}, repetition_penalty: SAMPLER.repetition_penalty, \
                 no_repeat_ngram_size: SAMPLER.no_repeat_ngram_size, min_new_tokens: {min_new_tokens} }}",
                bits(length_penalty)
            ),
        );
        let math = crate::board::math_variant(self.math);
        item(
            "The forward pass's arithmetic (the board's `math` in boards.toml).",
            "MATH: mote_core::Math",
            format!("mote_core::Math::{math}"),
        );
        let state = if num_beams > 1 {
            "mote_core::beam::BeamSearch::bytes_needed(&HPARAMS, KV, BEAMS.num_beams)"
        } else {
            "mote_core::state::RunState::bytes_needed_math(&HPARAMS, KV, MATH)"
        };
        item(
            "Bytes of the static run state (of every beam, with beams).",
            "STATE_BYTES: usize",
            state.to_string(),
        );
        item("The prompt (`MOTE_PROMPT`).", "PROMPT: &str", format!("{:?}", self.inputs.prompt));
        item(
            "Tokens the prompt encodes to (the device encodes it again).",
            "PROMPT_TOKENS: usize",
            self.prompt_tokens.to_string(),
        );
        item(
            "Most tokens to generate (`MOTE_MAX_TOKENS`).",
            "MAX_TOKENS: usize",
            self.inputs.max_tokens.to_string(),
        );
        item(
            "Sampler settings (`MOTE_TEMPERATURE`, `MOTE_TOP_K`, `MOTE_TOP_P`, \
             `MOTE_REPETITION_PENALTY`, `MOTE_NO_REPEAT_NGRAM_SIZE`, `MOTE_SEED`).",
            "SAMPLER: mote_core::sampler::SamplerConfig",
            format!(
                "mote_core::sampler::SamplerConfig {{ temperature: {}, top_k: {top_k:?}, top_p: {}, \
                 repetition_penalty: {}, no_repeat_ngram_size: {no_repeat_ngram_size}, seed: {seed} }}",
                bits(temperature),
                bits(top_p),
                bits(repetition_penalty)
            ),
        );
        // Both builds of mote-core must agree on the size the checks above used.
        writeln!(rs, "const _: () = assert!(STATE_BYTES == {});", self.plan.run_state).unwrap();
        rs
    }
}
