//! `cargo xtask parity`: the generating firmware against the desktop, the same tokens and logits
//! bit for bit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Result};
use clap::Args;
use mote_boards::{DEFAULT_MAX_TOKENS, DEFAULT_MODEL, DEFAULT_PROMPT};

use crate::boards::{Board, Boards};
use crate::device::{default_plan, host_mote, run_device, PARITY_BOARDS};
use crate::firmware::{Options, Settings};
use crate::shell;

/// Options of `cargo xtask parity`.
#[derive(Args, Default)]
pub struct ParityArgs {
    /// Boards to run on (default: mps2-an386, mps2-an500, mps2-an505 and netduinoplus2, each if
    /// the default model's plan fits it).
    #[arg(long)]
    board: Vec<String>,
    /// Only greedy decoding (default: greedy, then every sampling control with a seed).
    #[arg(long)]
    greedy_only: bool,
}

/// The board beam search is compared on (one board keeps the check short: the search is the
/// same code on every Cortex-M, and the greedy and sampled cases cover the kernels of each).
const BEAM_BOARD: &str = "mps2-an386";

/// The configurations the parity test checks beyond greedy: every sampling control at once, and
/// a beam search (on [`BEAM_BOARD`] only) with no-repeat n-grams and a length penalty.
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
        cases.push(Settings {
            num_beams: Some(3),
            length_penalty: Some(0.5),
            early_stopping: Some("never".to_string()),
            no_repeat_ngram_size: Some(2),
            ..Settings::default()
        });
    }
    cases
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

/// `cargo xtask parity`: on each board and for each case, the device's prompt ids, generated ids,
/// stop reason and logits checksum equal the desktop's.
pub fn run(root: &Path, boards: &Boards, args: &ParityArgs) -> Result<()> {
    let names: Vec<String> = if args.board.is_empty() {
        let mut names = Vec::new();
        for name in PARITY_BOARDS {
            let board = boards.get(name)?;
            let (plan, fit) = default_plan(root, board, boards.budgets)?;
            if fit.fits() {
                names.push(name.to_string());
            } else {
                // Its build is refused, which `cargo xtask ci` checks.
                println!(
                    "parity {name}: not run, the default model's plan does not fit: flash {} of \
                     {} bytes, RAM {} of {} bytes (`mote inspect --board {name}`)",
                    plan.flash, board.flash.size, plan.ram, board.ram.size
                );
            }
        }
        names
    } else {
        args.board.clone()
    };
    let mote = host_mote(root)?;
    let mut failures = Vec::new();
    for settings in parity_cases(args.greedy_only) {
        let options = Options { settings: settings.clone(), ..Options::default() };
        let want = desktop(&mote, &options)?;
        for name in &names {
            if settings.num_beams.is_some_and(|n| n > 1) && name != BEAM_BOARD {
                continue;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

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
