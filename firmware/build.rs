//! Turns the one `board-<name>` feature into everything the linker and the code need to know about
//! that board, taken from `../boards.toml` (the single source of truth) rather than repeated by
//! hand: it checks that the build targets the board's triple and uses its defmt transport, checks
//! that `boards/<name>/memory.x` agrees with boards.toml and hands it to cortex-m-rt's `link.x`,
//! adds the linker scripts, and writes `board.rs` (name, cpu, clock, memory map) into `OUT_DIR`.
//! It also reads the build-time inputs of the binaries (`MOTE_PROMPT`, `MOTE_MAX_TOKENS`,
//! `MOTE_MODEL`) so that changing one rebuilds the firmware, and a bad one fails here, by name.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Prompt the generating binaries use when the build is given none.
const DEFAULT_PROMPT: &str = "Once upon a time";
/// Model the generating binaries embed when the build is given none (relative to firmware/).
const DEFAULT_MODEL: &str = "../models/tinystories-675k/tinystories-675k-q8_0.gguf";
/// Tokens generated when the build sets no `MOTE_MAX_TOKENS` (as `mote generate`).
const DEFAULT_MAX_TOKENS: u32 = 64;

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let boards_toml = manifest_dir.join("../boards.toml");
    println!("cargo:rerun-if-changed={}", boards_toml.display());
    println!("cargo:rerun-if-changed=build.rs");

    let text = fs::read_to_string(&boards_toml)
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", boards_toml.display())));
    let doc: toml::Table =
        text.parse().unwrap_or_else(|e| fail(format!("{}: {e}", boards_toml.display())));
    let boards = doc.get("board").and_then(|b| b.as_array()).map(Vec::as_slice).unwrap_or(&[]);
    let names: Vec<&str> =
        boards.iter().filter_map(|b| b.get("name").and_then(|n| n.as_str())).collect();

    let name = selected_board(&names);
    let board = boards
        .iter()
        .find(|b| b.get("name").and_then(|n| n.as_str()) == Some(name.as_str()))
        .and_then(|b| b.as_table())
        .unwrap_or_else(|| fail(format!("board {name} is not in boards.toml")));
    let field = |key: &str| -> &toml::Value {
        board.get(key).unwrap_or_else(|| fail(format!("boards.toml: board {name} has no {key}")))
    };
    let string = |key: &str| -> String {
        field(key)
            .as_str()
            .unwrap_or_else(|| fail(format!("boards.toml: {name}.{key} is not a string")))
            .to_string()
    };
    let number = |value: &toml::Value, what: &str| -> u64 {
        value
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or_else(|| fail(format!("boards.toml: {name}.{what} is not a number")))
    };
    let region = |key: &str| -> (u64, u64) {
        let table = field(key);
        let part = |p: &str| {
            number(
                table.get(p).unwrap_or_else(|| fail(format!("boards.toml: {name}.{key}.{p}"))),
                &format!("{key}.{p}"),
            )
        };
        (part("origin"), part("size"))
    };

    // The triple: a board built for the wrong core would link and then fault at its first FPU or
    // DSP instruction, so say so here.
    let target = string("target");
    let building_for = env::var("TARGET").unwrap();
    if building_for != target {
        fail(format!(
            "board {name} runs {target}, but this build targets {building_for}: build with \
             `cargo xtask firmware --board {name}` (or `--target {target}`)"
        ));
    }

    let transport = string("transport");
    let semihosting = env::var_os("CARGO_FEATURE_DEFMT_SEMIHOSTING").is_some();
    let rtt = env::var_os("CARGO_FEATURE_DEFMT_RTT").is_some();
    let transport_ok = match transport.as_str() {
        "qemu-semihosting" => semihosting && !rtt,
        "rtt" => rtt && !semihosting,
        other => fail(format!(
            "boards.toml: {name}.transport {other:?} is neither qemu-semihosting nor rtt"
        )),
    };
    if !transport_ok {
        fail(format!(
            "board {name} logs over {transport}, but the features select semihosting={semihosting} \
             rtt={rtt}: feature board-{name} in Cargo.toml must enable exactly the matching one"
        ));
    }

    // memory.x: written by a person, checked against boards.toml, then found by link.x's INCLUDE.
    let flash = region("flash");
    let ram = region("ram");
    let memory_x_path = manifest_dir.join("boards").join(&name).join("memory.x");
    println!("cargo:rerun-if-changed={}", memory_x_path.display());
    let memory_x = fs::read_to_string(&memory_x_path)
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", memory_x_path.display())));
    for (region_name, expected) in [("FLASH", flash), ("RAM", ram)] {
        let found = memory_x_region(&memory_x, region_name).unwrap_or_else(|| {
            fail(format!(
                "{}: no `{region_name} : ORIGIN = ..., LENGTH = ...` line",
                memory_x_path.display()
            ))
        });
        if found != expected {
            fail(format!(
                "{}: {region_name} is ORIGIN {:#010x} LENGTH {:#x}, boards.toml says origin {:#010x} \
                 size {:#x}: make them agree",
                memory_x_path.display(),
                found.0,
                found.1,
                expected.0,
                expected.1
            ));
        }
    }
    fs::write(out_dir.join("memory.x"), memory_x).unwrap();
    println!("cargo:rustc-link-search={}", out_dir.display());
    // --nmagic: no page alignment of sections, which would waste flash.
    for arg in ["--nmagic", "-Tlink.x", "-Tdefmt.x"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }

    let transport_variant = if transport == "rtt" { "Rtt" } else { "QemuSemihosting" };
    let board_rs = format!(
        "// Generated by build.rs from boards.toml: board {name}.\n\
         Board {{\n    name: {name:?},\n    cpu: {cpu:?},\n    target: {target:?},\n    \
         clock_hz: {clock_hz},\n    clock_source: {clock_source:?},\n    \
         flash: Region {{ origin: {:#010x}, size: {:#x} }},\n    \
         ram: Region {{ origin: {:#010x}, size: {:#x} }},\n    \
         transport: Transport::{transport_variant},\n}}\n",
        flash.0,
        flash.1,
        ram.0,
        ram.1,
        cpu = string("cpu"),
        clock_hz = number(field("clock_hz"), "clock_hz"),
        clock_source = string("clock_source"),
    );
    fs::write(out_dir.join("board.rs"), board_rs).unwrap();

    write_inputs(&out_dir);
    // The plan's budgets, the same `mote inspect --board` uses.
    let plan = doc.get("plan").and_then(|p| p.as_table());
    let plan_number = |key: &str| -> u64 {
        plan.and_then(|p| p.get(key))
            .and_then(|v| v.as_integer())
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or_else(|| fail(format!("boards.toml: plan.{key} is missing or not a number")))
    };
    let budget = Budget {
        board: name.clone(),
        flash: flash.1,
        ram: ram.1,
        code_flash: plan_number("code_flash"),
        ram_reserve: plan_number("ram_reserve"),
    };
    let generate_rs = match generate_inputs(&manifest_dir, &budget) {
        Ok(rs) => rs,
        // Only the generating binaries include this file: hello still builds for a board too small
        // for the model, and `generate` fails to compile with the reason.
        Err(message) => format!("compile_error!({message:?});\n"),
    };
    fs::write(out_dir.join("generate.rs"), generate_rs).unwrap();
}

/// The board named by the one enabled `board-<name>` feature.
fn selected_board(known: &[&str]) -> String {
    let selected: Vec<String> = env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_BOARD_").map(str::to_string))
        .collect();
    let feature_of = |name: &str| name.to_uppercase().replace('-', "_");
    let list = known.iter().map(|n| format!("board-{n}")).collect::<Vec<_>>().join(", ");
    match selected.as_slice() {
        [one] => known
            .iter()
            .find(|n| feature_of(n) == *one)
            .map(|n| n.to_string())
            .unwrap_or_else(|| {
                fail(format!("feature board-{} is not a board of boards.toml ({list})", one.to_lowercase().replace('_', "-")))
            }),
        [] => fail(format!("no board selected: enable one feature of {list}")),
        many => fail(format!(
            "{} board features enabled ({}): enable exactly one (--no-default-features --features board-<name>)",
            many.len(),
            many.join(", ")
        )),
    }
}

/// `(origin, length)` of `name`'s line in a memory.x: `NAME : ORIGIN = 0x..., LENGTH = 256K`.
fn memory_x_region(memory_x: &str, name: &str) -> Option<(u64, u64)> {
    let line = memory_x.lines().find(|l| l.trim_start().split([' ', ':']).next() == Some(name))?;
    let value_after = |key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?.trim_start().strip_prefix('=')?.trim_start();
        let token: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        parse_size(&token)
    };
    Some((value_after("ORIGIN")?, value_after("LENGTH")?))
}

/// A linker-script number: decimal or 0x hex, with an optional K or M suffix.
fn parse_size(token: &str) -> Option<u64> {
    let (digits, scale) = match token.as_bytes().last()? {
        b'K' | b'k' => (&token[..token.len() - 1], 1024),
        b'M' | b'm' => (&token[..token.len() - 1], 1024 * 1024),
        _ => (token, 1),
    };
    let n = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    n.checked_mul(scale)
}

/// `inputs.rs` with the build-time inputs of the binaries; `MOTE_MODEL` also becomes an absolute
/// path in the environment of the crate, for `include_aligned!(env!("MOTE_MODEL"))`.
fn write_inputs(out_dir: &Path) {
    for var in ["MOTE_PROMPT", "MOTE_MAX_TOKENS", "MOTE_MODEL"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let prompt = env::var("MOTE_PROMPT").unwrap_or_else(|_| DEFAULT_PROMPT.to_string());
    let max_tokens = match env::var("MOTE_MAX_TOKENS") {
        Ok(v) => match v.parse::<u32>() {
            Ok(n) if n > 0 => format!("Some({n})"),
            _ => fail(format!("MOTE_MAX_TOKENS={v:?} is not a positive whole number")),
        },
        Err(_) => "None".to_string(),
    };
    let model = match env::var("MOTE_MODEL") {
        Ok(path) => {
            let abs = fs::canonicalize(&path).unwrap_or_else(|e| {
                fail(format!("MOTE_MODEL={path}: {e} (give the path of a .gguf file)"))
            });
            format!("Some({:?})", abs.display().to_string())
        }
        Err(_) => "None".to_string(),
    };
    let mut rs = String::from("// Generated by build.rs from the build's environment.\n");
    writeln!(rs, "/// The prompt (`MOTE_PROMPT`, default {DEFAULT_PROMPT:?}).").unwrap();
    writeln!(rs, "pub const PROMPT: &str = {prompt:?};").unwrap();
    writeln!(rs, "/// Generated-token limit (`MOTE_MAX_TOKENS`), if the build set one.").unwrap();
    writeln!(rs, "pub const MAX_TOKENS: Option<u32> = {max_tokens};").unwrap();
    writeln!(rs, "/// Absolute path of the model (`MOTE_MODEL`), if the build was given one.")
        .unwrap();
    writeln!(rs, "pub const MODEL_PATH: Option<&str> = {model};").unwrap();
    fs::write(out_dir.join("inputs.rs"), rs).unwrap();
}

/// What a board offers and what the plan keeps beside the model and the run state
/// (boards.toml's `[plan]`), for the generating binaries' checks.
struct Budget {
    board: String,
    flash: u64,
    ram: u64,
    /// Flash for code and read-only data beside the model.
    code_flash: u64,
    /// RAM for the stack and the other statics beside the run state, the tokenizer's scratch and
    /// the prompt.
    ram_reserve: u64,
}

/// `generate.rs`: what the generating binaries need to know at build time about their model,
/// prompt and settings, checked here so that a model or run state the board cannot hold, a prompt
/// of no tokens or too many, or a bad setting stops the build with a message. Also sets
/// `MOTE_MODEL` (absolute) for `include_bytes!`.
fn generate_inputs(manifest_dir: &Path, budget: &Budget) -> Result<String, String> {
    use mote_core::gguf::Gguf;
    use mote_core::model::HParams;
    use mote_core::sampler::{Sampler, SamplerConfig};
    use mote_core::state::{KvType, RunState};
    use mote_core::tokenizer::{BpeScratch, Special, Tokenizer};

    let vars = [
        "MOTE_KV",
        "MOTE_TEMPERATURE",
        "MOTE_TOP_K",
        "MOTE_TOP_P",
        "MOTE_REPETITION_PENALTY",
        "MOTE_NO_REPEAT_NGRAM_SIZE",
        "MOTE_SEED",
    ];
    for var in vars {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let given = env::var("MOTE_MODEL").ok();
    let path = match &given {
        Some(p) => PathBuf::from(p),
        None => manifest_dir.join(DEFAULT_MODEL),
    };
    let path = fs::canonicalize(&path)
        .map_err(|e| format!("model {}: {e} (MOTE_MODEL names a .gguf file)", path.display()))?;
    println!("cargo:rerun-if-changed={}", path.display());
    println!("cargo:rustc-env=MOTE_MODEL={}", path.display());
    let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let name = path.display();
    let gguf = Gguf::parse(&bytes).map_err(|e| format!("{name}: {e}"))?;
    let hp = HParams::from_gguf(&gguf).map_err(|e| format!("{name}: {e}"))?;
    let tokenizer = Tokenizer::from_gguf(&gguf)
        .map_err(|e| format!("{name}: no usable tokenizer for the prompt: {e}"))?;

    // Parsed as f32 directly, as `mote generate` parses its flags (no double rounding).
    let parsed = |var: &str, what: &str| -> Result<Option<f32>, String> {
        match env::var(var) {
            Ok(v) => {
                v.trim().parse::<f32>().map(Some).map_err(|_| format!("{var}={v:?} is not {what}"))
            }
            Err(_) => Ok(None),
        }
    };
    let whole = |var: &str| -> Result<Option<u64>, String> {
        match env::var(var) {
            Ok(v) => v
                .trim()
                .parse::<u64>()
                .map(Some)
                .map_err(|_| format!("{var}={v:?} is not a whole number")),
            Err(_) => Ok(None),
        }
    };

    let kv = match env::var("MOTE_KV").as_deref() {
        Err(_) if hp.n_embd % 32 == 0 => KvType::Q8_0,
        Err(_) => KvType::F16,
        Ok("q8_0") => KvType::Q8_0,
        Ok("f16") => KvType::F16,
        Ok("f32") => KvType::F32,
        Ok(other) => return Err(format!("MOTE_KV={other:?} is none of q8_0, f16, f32")),
    };
    let kv_variant = match kv {
        KvType::Q8_0 => "Q8_0",
        KvType::F16 => "F16",
        KvType::F32 => "F32",
    };

    let sampler = SamplerConfig {
        temperature: parsed("MOTE_TEMPERATURE", "a number")?.unwrap_or(0.0),
        top_k: whole("MOTE_TOP_K")?
            .map(|k| u32::try_from(k).map_err(|_| format!("MOTE_TOP_K={k} is too large")))
            .transpose()?,
        top_p: parsed("MOTE_TOP_P", "a number")?.unwrap_or(1.0),
        repetition_penalty: parsed("MOTE_REPETITION_PENALTY", "a number")?.unwrap_or(1.0),
        no_repeat_ngram_size: whole("MOTE_NO_REPEAT_NGRAM_SIZE")?
            .map(|n| {
                u32::try_from(n).map_err(|_| format!("MOTE_NO_REPEAT_NGRAM_SIZE={n} is too large"))
            })
            .transpose()?
            .unwrap_or(0),
        seed: whole("MOTE_SEED")?.unwrap_or(0),
    };
    Sampler::new(sampler, hp.n_ctx).map_err(|e| format!("sampler settings: {e}"))?;

    // The prompt, encoded as the device will encode it: its length sizes the device's buffer.
    let prompt = env::var("MOTE_PROMPT").unwrap_or_else(|_| DEFAULT_PROMPT.to_string());
    let mut scratch = Box::new(BpeScratch::new());
    let mut ids = vec![0u32; prompt.len() + 1];
    let n_prompt = tokenizer
        .encode(&prompt, Special::AsText, &mut scratch, &mut ids)
        .map_err(|e| format!("the prompt {prompt:?} cannot be encoded: {e}"))?;
    if n_prompt == 0 {
        return Err(format!(
            "the prompt {prompt:?} encodes to no tokens; the model needs at least one (MOTE_PROMPT)"
        ));
    }
    let max_tokens = match env::var("MOTE_MAX_TOKENS") {
        Ok(v) => v
            .parse::<u32>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("MOTE_MAX_TOKENS={v:?} is not a positive whole number"))?,
        Err(_) => DEFAULT_MAX_TOKENS,
    };
    if max_tokens as usize > hp.n_ctx {
        return Err(format!(
            "MOTE_MAX_TOKENS={max_tokens} is more than the model can ever produce: its context \
             holds {} tokens, prompt included",
            hp.n_ctx
        ));
    }
    if n_prompt >= hp.n_ctx {
        return Err(format!(
            "the prompt {prompt:?} encodes to {n_prompt} tokens, but the model's context holds \
             {} and at least one must be left to generate: shorten MOTE_PROMPT",
            hp.n_ctx
        ));
    }

    // Memory: the same plan as `mote inspect --board`, checked against the board.
    let model_flash = bytes.len() as u64;
    let code_flash = budget.code_flash;
    let flash_needed = model_flash + code_flash;
    if flash_needed > budget.flash {
        return Err(format!(
            "board {} cannot hold the model {name}: it needs {flash_needed} bytes of flash \
             (model {model_flash} + code {code_flash}), the board has {} \
             (`mote inspect --board {} MODEL` shows the plan)",
            budget.board, budget.flash, budget.board
        ));
    }
    let state_bytes = RunState::bytes_needed(&hp, kv);
    let scratch_bytes = std::mem::size_of::<BpeScratch>();
    let prompt_bytes = 4 * n_prompt;
    let ram_reserve = budget.ram_reserve;
    let ram_needed = (state_bytes + scratch_bytes + prompt_bytes) as u64 + ram_reserve;
    if ram_needed > budget.ram {
        return Err(format!(
            "board {} cannot hold the run state of {name} with a {} KV cache: it needs {ram_needed} \
             bytes of RAM (run state {state_bytes} + tokenizer {scratch_bytes} + prompt \
             {prompt_bytes} + stack and other statics {ram_reserve}), the board has {} \
             (try MOTE_KV=q8_0, or a model with a shorter context)",
            budget.board,
            kv.name(),
            budget.ram
        ));
    }

    let HParams { n_vocab, n_ctx, n_embd, n_head, n_layer, n_ff, eps, eos_token } = hp;
    let mut rs = String::from(
        "// Generated by build.rs: the generating binaries' model, prompt and settings.\n",
    );
    let mut item = |doc: &str, decl: String| {
        writeln!(rs, "/// {doc}\n{decl}").unwrap();
    };
    item(
        "Bytes of the embedded model file.",
        format!("pub const MODEL_BYTES: usize = {};", bytes.len()),
    );
    item(
        "The model's file name.",
        format!(
            "pub const MODEL_NAME: &str = {:?};",
            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
        ),
    );
    item(
        "The model's hyper-parameters, as read at build time (the device reads them again).",
        format!(
            "pub const HPARAMS: mote_core::model::HParams = mote_core::model::HParams {{ \
             n_vocab: {n_vocab}, n_ctx: {n_ctx}, n_embd: {n_embd}, n_head: {n_head}, \
             n_layer: {n_layer}, n_ff: {n_ff}, eps: f32::from_bits({:#x}), eos_token: {eos_token:?} }};",
            eps.to_bits()
        ),
    );
    item(
        "KV cache element type (`MOTE_KV`).",
        format!("pub const KV: mote_core::state::KvType = mote_core::state::KvType::{kv_variant};"),
    );
    item(
        "Bytes of the static run state.",
        "pub const STATE_BYTES: usize = mote_core::state::RunState::bytes_needed(&HPARAMS, KV);"
            .to_string(),
    );
    item(
        "Tokens the prompt encodes to (the device encodes it again).",
        format!("pub const PROMPT_TOKENS: usize = {n_prompt};"),
    );
    item(
        "Most tokens to generate (`MOTE_MAX_TOKENS`).",
        format!("pub const MAX_TOKENS: usize = {max_tokens};"),
    );
    let SamplerConfig { temperature, top_k, top_p, repetition_penalty, no_repeat_ngram_size, seed } =
        sampler;
    item(
        "Sampler settings (`MOTE_TEMPERATURE`, `MOTE_TOP_K`, `MOTE_TOP_P`, \
         `MOTE_REPETITION_PENALTY`, `MOTE_NO_REPEAT_NGRAM_SIZE`, `MOTE_SEED`).",
        format!(
            "pub const SAMPLER: mote_core::sampler::SamplerConfig = mote_core::sampler::SamplerConfig {{ \
             temperature: f32::from_bits({:#x}), top_k: {top_k:?}, top_p: f32::from_bits({:#x}), \
             repetition_penalty: f32::from_bits({:#x}), no_repeat_ngram_size: {no_repeat_ngram_size}, \
             seed: {seed} }};",
            temperature.to_bits(),
            top_p.to_bits(),
            repetition_penalty.to_bits()
        ),
    );
    // Both builds of mote-core must agree on the size the checks above used.
    writeln!(rs, "const _: () = assert!(STATE_BYTES == {state_bytes});").unwrap();
    Ok(rs)
}

/// Stops the build with `message`; cargo shows it under the build script's stderr.
fn fail(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
