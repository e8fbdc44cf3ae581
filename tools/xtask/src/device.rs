//! The generating firmware run in QEMU, and what its log says: the summary line that `parity`
//! compares with the desktop, and the counts that `size` and `bench-mcu` read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, ensure, Context, Result};
use mote_boards::{device_kv, Budgets, Fit, Plan, DEFAULT_MODEL, DEFAULT_PROMPT};
use mote_core::gguf::Gguf;
use mote_core::model::HParams;
use mote_core::tokenizer::{BpeScratch, Special, Tokenizer};

use crate::boards::Board;
use crate::firmware::Options;
use crate::qemu::{self, DEFAULT_TIMEOUT_SECS};
use crate::shell;
use crate::toolchain;

/// The generating binary.
pub const BIN: &str = "generate";
/// The QEMU boards the decode benchmarks run on: one per Cortex-M core mote targets with DSP
/// (the Cortex-M55 with its Helium kernels).
pub const BENCH_BOARDS: [&str; 4] = ["mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547"];
/// The boards parity runs on: the benchmark boards, netduinoplus2, a vendor chip's memory map
/// (STM32F405) with the real chip's 128 KiB of RAM, and the cores without an FPU: mps2-an385 (the
/// v6-M instruction set), netduino2 (STM32F205, Cortex-M3) and qemu-rv32 (RV32IMC). A board whose
/// plan for the default model does not fit is left out, and `cargo xtask ci` checks that its build
/// is refused instead.
pub const PARITY_BOARDS: [&str; 8] = [
    "mps2-an386",
    "mps2-an500",
    "mps2-an505",
    "mps3-an547",
    "netduinoplus2",
    "mps2-an385",
    "netduino2",
    "qemu-rv32",
];

/// The memory plan of the generating firmware's default build on `board` (the default model and
/// prompt, the device's KV type), made as its build script makes it, and how it fits: a build
/// that does not fit is refused.
pub fn default_plan(root: &Path, board: &Board, budgets: Budgets) -> Result<(Plan, Fit)> {
    model_plan(&root.join(DEFAULT_MODEL), board, budgets)
}

/// [`default_plan`] for the model at `path`.
pub fn model_plan(path: &Path, board: &Board, budgets: Budgets) -> Result<(Plan, Fit)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let name = path.display();
    let gguf = Gguf::parse(&bytes).map_err(|e| anyhow!("{name}: {e}"))?;
    let hp = HParams::from_gguf(&gguf).map_err(|e| anyhow!("{name}: {e}"))?;
    let tokenizer = Tokenizer::from_gguf(&gguf).map_err(|e| anyhow!("{name}: {e}"))?;
    let mut scratch = Box::new(BpeScratch::new());
    let mut ids = vec![0u32; DEFAULT_PROMPT.len() + 1];
    let n_prompt = tokenizer
        .encode(DEFAULT_PROMPT, Special::AsText, &mut scratch, &mut ids)
        .map_err(|e| anyhow!("the default prompt: {e}"))?;
    let plan = Plan::new(bytes.len() as u64, &hp, device_kv(&hp), n_prompt, budgets);
    let fit = Fit::new(&plan, board);
    Ok((plan, fit))
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
    /// Bytes of the static run state.
    pub run_state_bytes: u64,
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
        } else if line.contains("INFO  run state:") {
            run.run_state_bytes = number_after(line, "run state:").unwrap_or(0);
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
pub fn parse_summary(text: &str) -> BTreeMap<String, String> {
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

/// How many ids a summary list such as `[449, 466]` holds.
pub fn count_ids(list: Option<&String>) -> usize {
    list.map_or(0, |s| {
        s.trim_matches(['[', ']']).split(',').filter(|x| !x.trim().is_empty()).count()
    })
}

/// The release `mote` binary, built now.
pub fn host_mote(root: &Path) -> Result<PathBuf> {
    let cargo = toolchain::host_cargo();
    shell::run(Command::new(cargo).current_dir(root).args(["build", "--release", "-p", "mote"]))?;
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from);
    Ok(dir.join("release").join("mote"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_counts_the_default_prompt_and_the_board_ram() {
        let root = crate::repo_root();
        let boards = crate::boards::load(&root).unwrap();
        let board = boards.get("mps2-an386").unwrap();
        let (plan, fit) = default_plan(&root, board, boards.budgets).unwrap();
        assert_eq!(plan.prompt, 4 * 4, "\"Once upon a time\" is 4 tokens");
        assert!(fit.fits());
        let tiny = Board {
            ram: crate::boards::Region { size: plan.ram - 1, ..board.ram },
            ..board.clone()
        };
        let (_, fit) = default_plan(&root, &tiny, boards.budgets).unwrap();
        assert_eq!((fit.fits(), fit.ram_margin), (false, -1));
    }

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
}
