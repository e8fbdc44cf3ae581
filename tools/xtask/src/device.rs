//! The generating firmware against the desktop: `parity` (same tokens and logits, bit for bit),
//! `size` (flash and RAM as built and run, next to `mote inspect --board`'s plan) and `bench-mcu`
//! (instructions per token and per weight multiply-accumulate under `qemu -icount shift=0`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use clap::Args;
use object::read::elf::{ElfFile32, ProgramHeader as _};
use object::{Object, ObjectSymbol};

use mote_boards::{DEFAULT_MAX_TOKENS, DEFAULT_MODEL, DEFAULT_PROMPT};

use crate::boards::{Board, Boards};
use crate::firmware::{self, Options, Settings};
use crate::qemu::{self, DEFAULT_TIMEOUT_SECS};
use crate::shell;
use crate::toolchain;

/// The generating binary.
pub const BIN: &str = "generate";
/// The QEMU boards the parity test runs on: one per Cortex-M core mote targets with DSP.
pub const PARITY_BOARDS: [&str; 3] = ["mps2-an386", "mps2-an500", "mps2-an505"];
/// How far the plan of `mote inspect --board` may be from what the build and the run use.
pub const PLAN_TOLERANCE: u64 = 4 * 1024;

/// Options of `cargo xtask parity`.
#[derive(Args, Default)]
pub struct ParityArgs {
    /// Boards to run on (default: mps2-an386, mps2-an500, mps2-an505).
    #[arg(long)]
    board: Vec<String>,
    /// Only greedy decoding (default: greedy, then every sampling control with a seed).
    #[arg(long)]
    greedy_only: bool,
}

/// Options of `cargo xtask size`.
#[derive(Args)]
pub struct SizeArgs {
    /// Board (default: boards.toml's default).
    #[arg(long)]
    pub board: Option<String>,
}

/// Options of `cargo xtask bench-mcu`.
#[derive(Args)]
pub struct BenchArgs {
    /// Board (default: boards.toml's default).
    #[arg(long)]
    pub board: Option<String>,
    /// Also measure the cost of each sampling control, one build each.
    #[arg(long)]
    controls: bool,
}

/// The sampling configurations the parity test checks beyond greedy: every control at once.
pub fn parity_cases(greedy_only: bool) -> Vec<Settings> {
    let mut cases = vec![Settings::default()];
    if !greedy_only {
        cases.push(Settings {
            temperature: Some(0.8),
            top_k: Some(40),
            top_p: Some(0.9),
            repetition_penalty: Some(1.3),
            no_repeat_ngram_size: Some(3),
            seed: Some(1234),
            ..Settings::default()
        });
    }
    cases
}

/// What a run of the generating firmware printed that the checks use.
#[derive(Debug, Default)]
pub struct DeviceRun {
    /// `key=value` pairs of the summary line.
    pub summary: BTreeMap<String, String>,
    /// Ticks of the prompt (its positions and the choice of the first token).
    pub prompt_ticks: u64,
    /// Ticks of the tokens after the first.
    pub generation_ticks: u64,
    /// Tokens generated.
    pub generated: u64,
    /// Ticks of encoding the prompt.
    pub encode_ticks: u64,
    /// Bytes of the prompt.
    pub prompt_bytes: u64,
    /// Weight multiply-accumulates per token.
    pub weight_macs: u64,
    /// Stack high-water mark in bytes.
    pub stack: u64,
    /// Ticks of each token, in order (the first is the prompt's; token `k > 1` is the step at
    /// position `prompt + k - 2`).
    pub token_ticks: Vec<u64>,
}

/// Builds the generating firmware for `board` with `options` and runs it in QEMU.
pub fn run_device(root: &Path, board: &Board, options: &Options) -> Result<DeviceRun> {
    let options = Options { bin: Some(BIN.to_string()), release: true, ..options.clone() };
    let run = qemu::build_and_run(
        root,
        board,
        BIN,
        &options,
        qemu::Golden::Ignore,
        DEFAULT_TIMEOUT_SECS,
    )?;
    ensure!(run.code == 0, "{BIN} on {} exited with {}", board.name, run.code);
    parse_log(&run.log)
}

/// The numbers of a run's log.
pub fn parse_log(log: &str) -> Result<DeviceRun> {
    let mut run = DeviceRun::default();
    let number_after = |line: &str, key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.trim_start().split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    for line in log.lines() {
        if let Some(rest) = line.strip_prefix("summary: ") {
            run.summary = parse_summary(rest);
        } else if line.contains("ticks: prompt") {
            run.prompt_ticks = number_after(line, "ticks: prompt").unwrap_or(0);
            run.generation_ticks = number_after(line, "generation").unwrap_or(0);
        } else if line.contains(" stop: ") {
            run.generated = number_after(line, ", ").unwrap_or(0);
        } else if line.contains("INFO  prompt ") {
            run.prompt_bytes = number_after(line, ": ").unwrap_or(0);
            run.encode_ticks = number_after(line, "encoded in").unwrap_or(0);
        } else if line.contains("weight multiply-accumulates per token:") {
            run.weight_macs = number_after(line, "per token:").unwrap_or(0);
        } else if line.contains("INFO  stack:") {
            run.stack = number_after(line, "stack:").unwrap_or(0);
        } else if let Some(rest) = line.strip_prefix("INFO  token ") {
            // `token <n> <id> <ticks> ticks "<text>"`
            if let Some(ticks) = rest.split_whitespace().nth(2).and_then(|t| t.parse().ok()) {
                run.token_ticks.push(ticks);
            }
        }
    }
    ensure!(!run.summary.is_empty(), "the run printed no summary line:\n{log}");
    Ok(run)
}

/// `kv=q8_0 prompt=[1, 2] generated=[3] stop="token limit" logits_checksum=0x...` as a map; a
/// quoted value loses its quotes.
fn parse_summary(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = text.trim();
    while let Some(eq) = rest.find('=') {
        let key = rest[..eq].trim().to_string();
        let after = &rest[eq + 1..];
        let (value, end) = if let Some(quoted) = after.strip_prefix('"') {
            let close = quoted.find('"').unwrap_or(quoted.len());
            (&quoted[..close], (close + 2).min(after.len()))
        } else if after.starts_with('[') {
            let end = after.find(']').map_or(after.len(), |i| i + 1);
            (&after[..end], end)
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (&after[..end], end)
        };
        out.insert(key, value.to_string());
        rest = after[end..].trim_start();
    }
    out
}

/// The desktop's answer for the same model, prompt and settings: the summary's fields from
/// `mote generate --json`.
fn desktop(mote: &Path, options: &Options) -> Result<BTreeMap<String, String>> {
    let model = options.model.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL));
    let mut cmd = Command::new(mote);
    cmd.arg("generate").arg("--json").arg("--model").arg(&model);
    cmd.args(["--prompt", options.prompt.as_deref().unwrap_or(DEFAULT_PROMPT)]);
    cmd.args(["--max-tokens", &options.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).to_string()]);
    cmd.args(options.settings.cli_args());
    let json = shell::json(&mut cmd)?;
    let ids = |key: &str| -> String {
        let list: Vec<String> = json[key]
            .as_array()
            .map(|a| a.iter().map(|v| v.to_string()).collect())
            .unwrap_or_default();
        format!("[{}]", list.join(", "))
    };
    let text = |key: &str| json[key].as_str().unwrap_or("").to_string();
    Ok(BTreeMap::from([
        ("kv".to_string(), text("kv")),
        ("prompt".to_string(), ids("prompt_ids")),
        ("generated".to_string(), ids("generated_ids")),
        ("stop".to_string(), text("stop")),
        ("logits_checksum".to_string(), text("logits_checksum")),
    ]))
}

/// The release `mote` binary, built now.
pub fn host_mote(root: &Path) -> Result<PathBuf> {
    let cargo = toolchain::host_cargo();
    shell::run(Command::new(cargo).current_dir(root).args(["build", "--release", "-p", "mote"]))?;
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    Ok(dir.join("release").join("mote"))
}

/// `cargo xtask parity`: on each board and for each case, the device's prompt ids, generated ids,
/// stop reason and logits checksum equal the desktop's.
pub fn parity(root: &Path, boards: &Boards, args: &ParityArgs) -> Result<()> {
    let names: Vec<String> = if args.board.is_empty() {
        PARITY_BOARDS.iter().map(|s| s.to_string()).collect()
    } else {
        args.board.clone()
    };
    let mote = host_mote(root)?;
    let mut failures = Vec::new();
    for settings in parity_cases(args.greedy_only) {
        let options = Options { settings: settings.clone(), ..Options::default() };
        let want = desktop(&mote, &options)?;
        for name in &names {
            let board = boards.get(name)?;
            match parity_one(root, board, &options, &want) {
                Ok(()) => println!("parity {} ({}): identical", board.name, settings.describe()),
                Err(e) => failures.push(format!("{} ({}): {e:#}", board.name, settings.describe())),
            }
        }
    }
    if !failures.is_empty() {
        bail!("device and desktop differ:\n  {}", failures.join("\n  "));
    }
    Ok(())
}

fn parity_one(
    root: &Path,
    board: &Board,
    options: &Options,
    want: &BTreeMap<String, String>,
) -> Result<()> {
    let run = run_device(root, board, options)?;
    let mut diffs = Vec::new();
    for (key, desktop) in want {
        let device = run.summary.get(key).map(String::as_str).unwrap_or("(missing)");
        if device != desktop {
            diffs.push(format!("{key}: device {device}, desktop {desktop}"));
        }
    }
    ensure!(diffs.is_empty(), "{}", diffs.join("; "));
    Ok(())
}

/// Flash and RAM of a built ELF, by region and by the symbols the generating binary names.
#[derive(Debug)]
pub struct Footprint {
    /// Bytes loaded into flash (code, read-only data, the model, .data's initial values).
    pub flash: u64,
    /// Bytes of statics in RAM (.data, .bss, .uninit).
    pub ram_statics: u64,
    /// The embedded model (`MOTE_MODEL`).
    pub model: u64,
    /// The run state's storage (`MOTE_RUN_STATE`).
    pub run_state: u64,
    /// The tokenizer's scratch (`MOTE_BPE_SCRATCH`).
    pub tokenizer_scratch: u64,
    /// The prompt's ids (`MOTE_PROMPT_IDS`).
    pub prompt_ids: u64,
}

/// Reads `elf`'s footprint on `board`.
pub fn footprint(elf: &Path, board: &Board) -> Result<Footprint> {
    let data = fs::read(elf).with_context(|| format!("cannot read {}", elf.display()))?;
    let file = ElfFile32::<object::LittleEndian>::parse(&*data)
        .with_context(|| format!("{} is not a 32-bit ELF", elf.display()))?;
    let endian = file.endian();
    let (mut flash, mut ram) = (0u64, 0u64);
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) != object::elf::PT_LOAD {
            continue;
        }
        let (paddr, vaddr) = (u64::from(ph.p_paddr(endian)), u64::from(ph.p_vaddr(endian)));
        if board.flash.contains(paddr) {
            flash += u64::from(ph.p_filesz(endian));
        }
        if board.ram.contains(vaddr) {
            ram += u64::from(ph.p_memsz(endian));
        }
    }
    // By plain name (`#[no_mangle]`) or as the last part of a mangled path: `...14MOTE_RUN_STATE`
    // (v0 mangling) or `...14MOTE_RUN_STATE17h<hash>E` (legacy).
    let symbol = |name: &str| -> Result<u64> {
        let part = format!("{}{name}", name.len());
        file.symbols()
            .find(|s| {
                s.name().is_ok_and(|n| {
                    n == name || n.ends_with(&part) || n.contains(&format!("{part}17h"))
                })
            })
            .map(|s| s.size())
            .with_context(|| format!("{} has no symbol {name}", elf.display()))
    };
    Ok(Footprint {
        flash,
        ram_statics: ram,
        model: symbol("MOTE_MODEL")?,
        run_state: symbol("MOTE_RUN_STATE")?,
        tokenizer_scratch: symbol("MOTE_BPE_SCRATCH")?,
        prompt_ids: symbol("MOTE_PROMPT_IDS")?,
    })
}

/// What `mote inspect --board B --json` plans for the model on the board.
#[derive(Debug)]
pub struct PlanBytes {
    model_flash: u64,
    code_budget: u64,
    run_state: u64,
    tokenizer_scratch: u64,
    reserve: u64,
    ram: u64,
}

fn plan(mote: &Path, board: &Board, model: &Path) -> Result<PlanBytes> {
    let mut cmd = Command::new(mote);
    cmd.args(["inspect", "--json", "--board", &board.name]).arg(model);
    println!("$ {}", shell::show(&cmd));
    let out = cmd.output().context("cannot run mote inspect")?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!("mote inspect printed no JSON: {}", String::from_utf8_lossy(&out.stderr))
    })?;
    let device = &json["memory"]["ram"]["device"];
    let get = |v: &serde_json::Value, what: &str| -> Result<u64> {
        v.as_u64().with_context(|| format!("mote inspect's JSON has no {what}"))
    };
    Ok(PlanBytes {
        model_flash: get(&json["memory"]["flash_bytes"], "memory.flash_bytes")?,
        code_budget: get(&device["code_flash_budget_bytes"], "code_flash_budget_bytes")?,
        run_state: get(&device["run_state_bytes"], "run_state_bytes")?,
        tokenizer_scratch: get(&device["tokenizer_scratch_bytes"], "tokenizer_scratch_bytes")?,
        reserve: get(&device["reserve_bytes"], "reserve_bytes")?,
        ram: get(&device["ram_bytes"], "ram_bytes")?,
    })
}

/// `cargo xtask size`: the generating firmware's flash and RAM as built (and its stack as run, on
/// a QEMU board), next to the plan of `mote inspect --board`; fails when they disagree by more
/// than [`PLAN_TOLERANCE`] or the code outgrows its budget.
pub fn size(root: &Path, board: &Board) -> Result<()> {
    let mote = host_mote(root)?;
    let options = Options { bin: Some(BIN.to_string()), release: true, ..Options::default() };
    let stack = if board.qemu.is_some() {
        Some(run_device(root, board, &options)?.stack)
    } else {
        firmware::build(root, board, &options)?;
        None
    };
    let elf = firmware::elf_dir(root, &board.name, true).join(BIN);
    let fp = footprint(&elf, board)?;
    let p = plan(&mote, board, &root.join(DEFAULT_MODEL))?;
    let code = fp.flash - fp.model;
    let other_statics = fp.ram_statics - fp.run_state - fp.tokenizer_scratch - fp.prompt_ids;
    let kib = |b: u64| format!("{:.1} KiB", b as f64 / 1024.0);
    println!("\n{BIN} on {} (release), next to `mote inspect --board {}`:", board.name, board.name);
    println!("  {:<34} {:>10} {:>10}", "", "built", "planned");
    let row = |what: &str, built: u64, planned: Option<u64>| {
        let planned = planned.map_or(String::from("-"), |p| p.to_string());
        println!("  {what:<34} {built:>10} {planned:>10}");
    };
    row("flash: model", fp.model, Some(p.model_flash));
    row("flash: code and other data", code, Some(p.code_budget));
    row("flash: total", fp.flash, Some(p.model_flash + p.code_budget));
    row("RAM: run state", fp.run_state, Some(p.run_state));
    row("RAM: tokenizer scratch", fp.tokenizer_scratch, Some(p.tokenizer_scratch));
    row("RAM: prompt ids", fp.prompt_ids, None);
    row("RAM: other statics", other_statics, None);
    row("RAM: statics total", fp.ram_statics, Some(p.run_state + p.tokenizer_scratch));
    if let Some(stack) = stack {
        row("RAM: stack peak (measured)", stack, None);
        row("RAM: total with stack", fp.ram_statics + stack, Some(p.ram));
    }
    println!(
        "  code {} (goal: at most 48 KiB); RAM beyond the run state {} + stack {} (goal: at most \
         8 KiB + stack); plan reserve for stack and other statics {}",
        kib(code),
        kib(fp.ram_statics - fp.run_state),
        stack.map_or("not measured".to_string(), kib),
        kib(p.reserve)
    );

    let mut problems = Vec::new();
    let mut close = |what: &str, built: u64, planned: u64| {
        if built.abs_diff(planned) > PLAN_TOLERANCE {
            problems.push(format!("{what}: built {built}, planned {planned}"));
        }
    };
    close("model flash", fp.model, p.model_flash);
    close("run state", fp.run_state, p.run_state);
    close("statics", fp.ram_statics, p.run_state + p.tokenizer_scratch);
    if code > p.code_budget {
        problems.push(format!("code is {code} bytes, over the plan's budget of {}", p.code_budget));
    }
    if let Some(stack) = stack {
        if fp.ram_statics + stack > p.ram {
            problems.push(format!(
                "statics {} + stack {stack} exceed the plan's RAM {}",
                fp.ram_statics, p.ram
            ));
        }
    }
    ensure!(
        problems.is_empty(),
        "the build departs from the plan by more than {PLAN_TOLERANCE} bytes: {}",
        problems.join("; ")
    );
    println!("  agrees with the plan within {PLAN_TOLERANCE} bytes");
    Ok(())
}

/// Instructions per SysTick tick under `-icount shift=0` (one instruction per ns).
fn instructions_per_tick(board: &Board) -> f64 {
    1e9 / board.clock_hz as f64
}

/// A passage of the model's kind of text, for timing prompt encoding and prefill on more than a
/// few tokens (it encodes to under the default model's 128-token context).
const LONG_PROMPT: &str =
    "Once upon a time, there was a little girl named Lily. She loved to play \
outside in the park with her friends. One day, she saw a big red ball under a tree. She ran to \
the ball and picked it up. It was soft and bouncy. Lily smiled and said, \"Let's play a game!\" \
Her friends were happy and they played all day.";

/// `cargo xtask bench-mcu`: the default model on a QEMU board, counted.
pub fn bench_mcu(root: &Path, board: &Board, args: &BenchArgs) -> Result<()> {
    let per_tick = instructions_per_tick(board);
    let default = run_device(root, board, &Options::default())?;
    let long = run_device(
        root,
        board,
        &Options {
            prompt: Some(LONG_PROMPT.to_string()),
            max_tokens: Some(1),
            ..Options::default()
        },
    )?;
    let n_prompt = count_ids(default.summary.get("prompt"));
    let n_long = count_ids(long.summary.get("prompt"));
    let decoded = default.generated.saturating_sub(1).max(1);
    let decode_instr = default.generation_ticks as f64 * per_tick / decoded as f64;
    println!("\nbench-mcu: default model on {} ({}), qemu -icount shift=0", board.name, board.cpu);
    println!("  {:.3} instructions per tick ({} Hz SysTick)", per_tick, board.clock_hz);
    println!(
        "  prompt ({n_prompt} tokens, \"{DEFAULT_PROMPT}\"): {:.0} instructions per prompt token",
        default.prompt_ticks as f64 * per_tick / n_prompt.max(1) as f64
    );
    println!(
        "  prompt ({n_long} tokens, {} bytes): {:.0} instructions per prompt token",
        long.prompt_bytes,
        long.prompt_ticks as f64 * per_tick / n_long.max(1) as f64
    );
    println!(
        "  generation ({} tokens after the first, positions {}..{}): {:.0} instructions per token",
        decoded,
        n_prompt + 1,
        n_prompt + default.generated as usize,
        decode_instr
    );
    println!(
        "  {:.2} instructions per weight multiply-accumulate ({} per token)",
        decode_instr / default.weight_macs.max(1) as f64,
        default.weight_macs
    );
    println!(
        "  prompt encoding: {:.0} instructions per byte ({} bytes), {:.0} ({} bytes)",
        default.encode_ticks as f64 * per_tick / default.prompt_bytes.max(1) as f64,
        default.prompt_bytes,
        long.encode_ticks as f64 * per_tick / long.prompt_bytes.max(1) as f64,
        long.prompt_bytes
    );
    println!("  stack peak {} bytes", default.stack.max(long.stack));
    if args.controls {
        controls(root, board, &default)?;
    }
    Ok(())
}

/// The cost per token of each sampling control: the same 64 positions with the control on,
/// against greedy decoding.
fn controls(root: &Path, board: &Board, greedy: &DeviceRun) -> Result<()> {
    let per_tick = instructions_per_tick(board);
    let per_token = |r: &DeviceRun| {
        (r.prompt_ticks + r.generation_ticks) as f64 * per_tick / r.generated.max(1) as f64
    };
    let base = per_token(greedy);
    let sampled = |s: Settings| Settings { temperature: Some(1.0), seed: Some(1), ..s };
    let cases = [
        ("temperature 1.0", sampled(Settings::default())),
        ("top-k 40", sampled(Settings { top_k: Some(40), ..Settings::default() })),
        ("top-p 0.9", sampled(Settings { top_p: Some(0.9), ..Settings::default() })),
        (
            "repetition penalty 1.3 (greedy)",
            Settings { repetition_penalty: Some(1.3), ..Settings::default() },
        ),
        (
            "no-repeat n-gram 3 (greedy)",
            Settings { no_repeat_ngram_size: Some(3), ..Settings::default() },
        ),
    ];
    println!("\n  cost per token of each control (over greedy, same number of positions):");
    println!("  {:<34} {:>14} {:>12}", "control", "instr/token", "extra");
    println!("  {:<34} {:>14.0} {:>12}", "greedy", base, "-");
    for (name, settings) in cases {
        let options = Options { settings, ..Options::default() };
        let run = run_device(root, board, &options)?;
        ensure!(
            run.generated == greedy.generated,
            "{name}: {} tokens against greedy's {}; the comparison needs as many",
            run.generated,
            greedy.generated
        );
        let cost = per_token(&run);
        println!("  {name:<34} {cost:>14.0} {:>+12.0}", cost - base);
    }
    Ok(())
}

fn count_ids(list: Option<&String>) -> usize {
    list.map_or(0, |s| {
        s.trim_matches(['[', ']']).split(',').filter(|x| !x.trim().is_empty()).count()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lines_parse_into_fields() {
        let s = parse_summary(
            "kv=q8_0 prompt=[449, 466] generated=[12] stop=\"token limit\" logits_checksum=0x91adc697",
        );
        assert_eq!(s["kv"], "q8_0");
        assert_eq!(s["prompt"], "[449, 466]");
        assert_eq!(s["generated"], "[12]");
        assert_eq!(s["stop"], "token limit");
        assert_eq!(s["logits_checksum"], "0x91adc697");
        assert_eq!(count_ids(s.get("prompt")), 2);
    }

    #[test]
    fn logs_parse_into_counts_and_per_token_ticks() {
        let log = "INFO  weight multiply-accumulates per token: 655360\n\
                   INFO  token 1 12 106665 ticks \",\"\n\
                   INFO  token 2 417 35567 ticks \" there\"\n\
                   INFO  stop: token limit, 2 tokens\n\
                   INFO  ticks: prompt 106665 (4 positions), generation 35567 (35567 per token)\n\
                   summary: kv=q8_0 prompt=[449] generated=[12, 417] stop=\"token limit\"\n\
                   INFO  stack: 28404 of 4103596 bytes used";
        let run = parse_log(log).unwrap();
        assert_eq!(run.token_ticks, [106665, 35567]);
        assert_eq!((run.prompt_ticks, run.generation_ticks), (106665, 35567));
        assert_eq!((run.generated, run.weight_macs, run.stack), (2, 655360, 28404));
        assert!(parse_log("INFO  token 1 12 5 ticks").is_err(), "no summary line");
    }

    #[test]
    fn settings_become_the_same_env_and_flags() {
        let s = Settings { top_k: Some(40), seed: Some(7), ..Settings::default() };
        assert_eq!(
            s.env(),
            vec![("MOTE_TOP_K".to_string(), "40".to_string()), ("MOTE_SEED".into(), "7".into())]
        );
        assert_eq!(s.cli_args(), ["--kv", "q8_0", "--top-k", "40", "--seed", "7"]);
    }
}
