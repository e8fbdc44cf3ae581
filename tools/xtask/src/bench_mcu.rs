//! `cargo xtask bench-mcu`: instructions per token and per weight multiply-accumulate of the
//! generating firmware under `qemu -icount shift=0`.

use std::path::Path;

use anyhow::{ensure, Result};
use clap::Args;
use mote_boards::DEFAULT_PROMPT;

use crate::boards::Board;
use crate::device::{count_ids, run_device, DeviceRun};
use crate::firmware::{Options, Settings};

/// Options of `cargo xtask bench-mcu`.
#[derive(Args)]
pub struct BenchArgs {
    /// Board (default: boards.toml's default).
    #[arg(long)]
    pub board: Option<String>,
    /// Also measure the cost of each sampling control, one build each.
    #[arg(long)]
    controls: bool,
    /// Also measure beam search with these numbers of beams (`--beams 2,4`), one build each.
    #[arg(long, value_delimiter = ',')]
    beams: Vec<usize>,
    /// The forward pass's arithmetic, float or integer (default: the board's `math`).
    #[arg(long)]
    pub math: Option<String>,
}

/// Instructions per tick of the board's counter (SysTick; `minstret` on RISC-V, whose
/// `clock_hz` makes a tick one instruction) under `-icount shift=0` (one instruction per ns).
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
pub fn run(root: &Path, board: &Board, args: &BenchArgs) -> Result<()> {
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
    println!(
        "\nbench-mcu: default model on {} ({}), {} path, qemu -icount shift=0",
        board.name,
        board.cpu,
        board.math.name()
    );
    let counter = if board.target.starts_with("riscv32") { "minstret" } else { "SysTick" };
    println!("  {:.3} instructions per tick ({} Hz {counter})", per_tick, board.clock_hz);
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
    if !args.beams.is_empty() {
        beams(root, board, &default, &args.beams)?;
    }
    Ok(())
}

/// Instructions per generated token (a step: one new token for every beam) of beam search with
/// each number of beams, against greedy decoding over the same positions. `early_stopping`
/// "never" with the default length penalty runs every step (the default model does not produce
/// its end of text within the default token limit).
fn beams(root: &Path, board: &Board, greedy: &DeviceRun, counts: &[usize]) -> Result<()> {
    let per_tick = instructions_per_tick(board);
    let per_token =
        |r: &DeviceRun| r.generation_ticks as f64 * per_tick / (r.generated.max(2) - 1) as f64;
    let base = per_token(greedy);
    println!("\n  beam search, instructions per generated token after the first (positions as greedy's):");
    println!(
        "  {:<10} {:>14} {:>10} {:>16}",
        "beams", "instr/token", "x greedy", "run state bytes"
    );
    println!("  {:<10} {:>14.0} {:>10} {:>16}", "greedy", base, "1.00", "-");
    for &n in counts {
        let settings = Settings {
            num_beams: Some(n),
            early_stopping: Some("never".to_string()),
            ..Settings::default()
        };
        let run = run_device(root, board, &Options { settings, ..Options::default() })?;
        ensure!(
            run.generated == greedy.generated,
            "{n} beams: {} steps against greedy's {}; the comparison needs as many",
            run.generated,
            greedy.generated
        );
        let cost = per_token(&run);
        let state = run.run_state_bytes;
        println!("  {n:<10} {cost:>14.0} {:>10.2} {state:>16}", cost / base);
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
