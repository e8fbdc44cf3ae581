//! `cargo xtask parity`: the generating firmware against the desktop, the same tokens and logits
//! bit for bit; then the `chat` firmware, several prompts typed on its console in one boot with
//! the settings changed between them (a beam search among them on [`BEAM_BOARD`]), each reply's
//! summary against the desktop's.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Result};
use clap::Args;
use mote_boards::{DEFAULT_MAX_TOKENS, DEFAULT_MODEL, DEFAULT_PROMPT};

use crate::boards::{Board, Boards};
use crate::console;
use crate::device::{host_mote, model_plan, parse_summary, run_device, PARITY_BOARDS};
use crate::firmware::{model_path, Options, Settings};
use crate::qemu::{self, DEFAULT_TIMEOUT_SECS};
use crate::shell;

/// The QEMU boards whose `chat` console parity runs on.
pub const CHAT_PARITY_BOARDS: [&str; 4] =
    ["mps2-an386", "netduinoplus2", "mps2-an385", "qemu-rv32"];

/// Options of `cargo xtask parity`.
#[derive(Args, Default)]
pub struct ParityArgs {
    /// Boards to run on (default: mps2-an386, mps2-an500, mps2-an505, mps3-an547, netduinoplus2,
    /// mps2-an385, netduino2 and qemu-rv32, each if the default model's plan fits it).
    #[arg(long)]
    board: Vec<String>,
    /// Only greedy decoding (default: greedy, then every sampling control with a seed).
    #[arg(long)]
    greedy_only: bool,
    /// The model: a GGUF file or a bundled model's name, such as tinystories-small (default: the
    /// default model).
    #[arg(long)]
    model: Option<PathBuf>,
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

/// The prompts typed into `chat` in one boot, each with its settings and token limit: greedy
/// first, then sampling with a seed, then every control, then greedy again; then, `with_beams`,
/// the beam search of [`parity_cases`].
pub fn chat_cases(with_beams: bool) -> Vec<Options> {
    let sampled = Settings {
        temperature: Some(0.8),
        top_k: Some(40),
        top_p: Some(0.9),
        seed: Some(1234),
        ..Settings::default()
    };
    let case = |prompt: &str, max_tokens: u32, settings: Settings| Options {
        prompt: Some(prompt.to_string()),
        max_tokens: Some(max_tokens),
        settings,
        ..Options::default()
    };
    let mut cases = vec![
        case(DEFAULT_PROMPT, DEFAULT_MAX_TOKENS, Settings::default()),
        case("The little dog", 32, Settings::default()),
        case(DEFAULT_PROMPT, 48, sampled.clone()),
        case("Tom and Sue went to the park.", 40, Settings { seed: Some(7), ..sampled.clone() }),
        case("Tom and Sue went to the park.", 40, parity_cases(false)[1].clone()),
        case("A girl named Lily had a red ball.", 128, Settings::default()),
    ];
    if with_beams {
        cases.push(case("The little dog", 24, parity_cases(false)[2].clone()));
    }
    cases
}

/// The lines that set `options` up in `chat` and then type its prompt.
fn chat_lines(options: &Options) -> Vec<String> {
    let mut lines = vec!["/greedy".to_string()];
    for (name, value) in options.settings.given() {
        match name {
            "kv" => {}
            "num-beams" => lines.push(format!("/beams {value}")),
            _ => lines.push(format!("/{name} {value}")),
        }
    }
    lines.push(format!("/max-tokens {}", options.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)));
    lines.push(options.prompt.clone().unwrap_or_else(|| DEFAULT_PROMPT.to_string()));
    lines
}

/// `chat` on `board`: every case typed in one boot; each reply's summary against the desktop's.
fn chat_parity(root: &Path, board: &Board, mote: &Path, model: &Path) -> Result<()> {
    let cases: Vec<Options> = chat_cases(board.name == BEAM_BOARD)
        .into_iter()
        .map(|case| Options { model: Some(model.to_path_buf()), ..case })
        .collect();
    let input: Vec<String> = cases.iter().flat_map(chat_lines).collect();
    // The build holds as many beams as the cases use (`/beams` refuses more).
    let beams = cases.iter().filter_map(|c| c.settings.num_beams).max().filter(|&n| n > 1);
    let settings = Settings { num_beams: beams, ..Settings::default() };
    let options =
        Options { release: true, settings, model: Some(model.to_path_buf()), ..Options::default() };
    let session = qemu::build_and_converse(
        root,
        board,
        "chat",
        &options,
        console::Input::Text(input.join("\n")),
        false,
        DEFAULT_TIMEOUT_SECS,
    )?;
    ensure!(!session.log.contains("ERROR"), "the firmware logged an error:\n{}", session.log);
    let errors: Vec<&str> = session.transcript.lines().filter(|l| l.contains("error: ")).collect();
    ensure!(errors.is_empty(), "the console refused a line: {}", errors.join("; "));
    let summaries: Vec<BTreeMap<String, String>> = session
        .transcript
        .lines()
        .filter_map(|l| l.split_once("summary: ").map(|(_, rest)| parse_summary(rest)))
        .collect();
    ensure!(
        summaries.len() == cases.len(),
        "{} replies for {} prompts:\n{}",
        summaries.len(),
        cases.len(),
        session.transcript
    );
    let mut failures = Vec::new();
    for (case, device) in cases.iter().zip(&summaries) {
        // `chat` runs the board's forward pass, as `generate` does.
        let want = desktop(mote, case, board.math.name())?;
        let diffs: Vec<String> = want
            .iter()
            .filter(|(k, v)| device.get(*k) != Some(v))
            .map(|(k, v)| {
                let got = device.get(k).map(String::as_str).unwrap_or("(missing)");
                format!("{k}: device {got}, desktop {v}")
            })
            .collect();
        let what = format!(
            "{:?}, {} tokens, {}",
            case.prompt.as_deref().unwrap_or(DEFAULT_PROMPT),
            case.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            case.settings.describe()
        );
        if diffs.is_empty() {
            println!("chat parity {} ({what}): identical", board.name);
        } else {
            failures.push(format!("{what}: {}", diffs.join("; ")));
        }
    }
    ensure!(failures.is_empty(), "{}", failures.join("\n  "));
    Ok(())
}

/// The desktop's answer for the same model, prompt and settings: the summary's fields from
/// `mote generate --json`.
fn desktop(mote: &Path, options: &Options, math: &str) -> Result<BTreeMap<String, String>> {
    let model = options.model.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_MODEL));
    let mut cmd = Command::new(mote);
    cmd.arg("generate").arg("--json").arg("--model").arg(&model);
    cmd.args(["--prompt", options.prompt.as_deref().unwrap_or(DEFAULT_PROMPT)]);
    cmd.args(["--max-tokens", &options.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS).to_string()]);
    cmd.args(options.settings.cli_args());
    cmd.args(["--math", math]);
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
    let model = match &args.model {
        Some(model) => model_path(root, model)?,
        None => root.join(DEFAULT_MODEL),
    };
    let names: Vec<String> = if args.board.is_empty() {
        let mut names = Vec::new();
        for name in PARITY_BOARDS {
            let board = boards.get(name)?;
            let (plan, fit) = model_plan(&model, board, boards.budgets)?;
            if fit.fits() {
                names.push(name.to_string());
            } else {
                // Its build is refused, which `cargo xtask ci` checks.
                println!(
                    "parity {name}: not run, the model's plan does not fit: flash {} of {} bytes, \
                     RAM {} of {} bytes (`mote inspect --board {name}`)",
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
        let options = Options {
            settings: settings.clone(),
            model: Some(model.clone()),
            ..Options::default()
        };
        // The desktop's answer in each arithmetic a board runs (boards.toml's `math`).
        let mut wants: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
        for name in &names {
            if settings.num_beams.is_some_and(|n| n > 1) && name != BEAM_BOARD {
                continue;
            }
            let board = boards.get(name)?;
            let want = match wants.entry(board.math.name()) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(desktop(&mote, &options, board.math.name())?),
            };
            match parity_one(root, board, &options, want) {
                Ok(()) => println!("parity {} ({}): identical", board.name, settings.describe()),
                Err(e) => failures.push(format!("{} ({}): {e:#}", board.name, settings.describe())),
            }
        }
    }
    for name in names.iter().filter(|n| CHAT_PARITY_BOARDS.contains(&n.as_str())) {
        let board = boards.get(name)?;
        if let Err(e) = chat_parity(root, board, &mote, &model) {
            failures.push(format!("{} (chat): {e:#}", board.name));
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
    fn chat_cases_are_typed_as_commands_then_the_prompt() {
        let cases = chat_cases(true);
        assert!(cases.len() >= 5);
        assert_eq!(chat_lines(&cases[0]), ["/greedy", "/max-tokens 64", DEFAULT_PROMPT]);
        assert_eq!(
            chat_lines(&cases[2]),
            [
                "/greedy",
                "/temperature 0.8",
                "/top-k 40",
                "/top-p 0.9",
                "/seed 1234",
                "/max-tokens 48",
                DEFAULT_PROMPT
            ]
        );
        assert_eq!(
            chat_lines(cases.last().unwrap()),
            [
                "/greedy",
                "/no-repeat-ngram-size 2",
                "/beams 3",
                "/length-penalty 0.5",
                "/early-stopping never",
                "/max-tokens 24",
                "The little dog"
            ]
        );
        assert_eq!(chat_cases(false).len() + 1, cases.len());
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
