//! `cargo xtask ci`: every check, in order of cost; all run even when one fails, and the failures
//! are listed at the end with the time each step took.

use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::Result;
use clap::Args;

use crate::boards::{self, Transport};
use crate::firmware::{self, Options};
use crate::fuzz::FuzzArgs;
use crate::qemu::{self, Golden, DEFAULT_TIMEOUT_SECS};
use crate::shell;
use crate::toolchain::{self, CORE_TARGETS};
use crate::{device, example, parity, size};

/// Seconds of fuzzing per target in CI: long enough to reach past the parsers' first checks, short
/// enough that the whole run stays well under CI's 90-minute limit (its time: docs/performance.md).
const FUZZ_SECONDS: u64 = 60;

/// Options of `cargo xtask ci`.
#[derive(Args)]
pub struct CiArgs {
    /// Stop at the first failing step.
    #[arg(long)]
    fail_fast: bool,
}

/// One step's result.
struct Outcome {
    name: String,
    seconds: f64,
    error: Option<String>,
}

/// The steps run so far.
struct Steps {
    outcomes: Vec<Outcome>,
    fail_fast: bool,
}

impl Steps {
    /// Runs `step` unless an earlier one failed under --fail-fast, timing it.
    fn run(&mut self, name: impl Into<String>, step: impl FnOnce() -> Result<()>) {
        let name = name.into();
        if self.fail_fast && self.outcomes.iter().any(|o| o.error.is_some()) {
            return;
        }
        println!("\n==> {name}");
        let start = Instant::now();
        let result = step();
        let seconds = start.elapsed().as_secs_f64();
        let error = result.err().map(|e| format!("{e:#}"));
        match &error {
            None => println!("<== {name}: ok ({seconds:.1} s)"),
            Some(e) => println!("<== {name}: FAILED ({seconds:.1} s): {e}"),
        }
        self.outcomes.push(Outcome { name, seconds, error });
    }
}

/// Succeeds when a refused build's messages contain `needle`.
fn expect_message(messages: &str, needle: &str) -> Result<()> {
    match messages.lines().find(|l| l.contains(needle)) {
        Some(line) => {
            println!("refused as expected: {}", line.trim());
            Ok(())
        }
        None => anyhow::bail!("the build failed, but not with {needle:?}:\n{messages}"),
    }
}

/// Runs the checks.
pub fn run(root: &Path, args: &CiArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let boards = boards::load(root)?;
    let cargo = toolchain::host_cargo();
    let host = |args: &[&str], dir: &Path| -> Result<()> {
        shell::run(Command::new(&cargo).current_dir(dir).args(args))
    };
    let firmware_dir = root.join("firmware");
    let mut steps = Steps { outcomes: Vec::new(), fail_fast: args.fail_fast };

    steps.run("fmt", || {
        host(&["fmt", "--all", "--check"], root)?;
        host(&["fmt", "--check"], &firmware_dir)?;
        for (name, _) in example::EXAMPLES {
            host(&["fmt", "--check"], &root.join("examples").join(name))?;
        }
        Ok(())
    });
    steps.run("clippy workspace", || {
        host(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], root)
    });
    steps.run("test workspace", || host(&["test", "--workspace"], root));
    // The library crate stays publishable: its manifest, licence files and sources package alone.
    steps.run("package mote-core", || {
        host(&["package", "-p", "mote-core", "--no-verify", "--allow-dirty"], root)
    });
    for target in CORE_TARGETS {
        steps.run(format!("mote-core {target}"), || toolchain::build_core(root, target, false));
    }
    // Clippy on the firmware once per defmt transport, then on the other console drivers (the
    // first RTT board, nrf52840-dk, has one): the code differs only there.
    for transport in [Transport::QemuSemihosting, Transport::Rtt] {
        let firmware_boards = boards.boards.iter().filter(|b| b.example.is_none());
        if let Some(board) = firmware_boards.clone().find(|b| b.transport == transport) {
            steps.run(format!("clippy firmware {}", board.name), || {
                firmware::clippy(root, board, &["--lib", "--bins"])
            });
        }
    }
    // ARMv6-M has its own fault handler (no fault status registers) and no atomic
    // read-modify-write.
    steps.run("clippy firmware mps2-an385 (ARMv6-M)", || {
        firmware::clippy(root, boards.get("mps2-an385")?, &["--lib", "--bins"])
    });
    // RISC-V has its own runtime, counter, exit and exception handler (riscv-rt, minstret).
    steps.run("clippy firmware qemu-rv32 (RISC-V)", || {
        firmware::clippy(root, boards.get("qemu-rv32")?, &["--lib", "--bins"])
    });
    for name in ["netduinoplus2", "nucleo-h743zi"] {
        let board = boards.get(name)?;
        steps.run(format!("clippy firmware {name} (console driver)"), || {
            firmware::clippy(root, board, &["--lib", "--bin", "console_echo"])
        });
    }
    // Per board, the build then its QEMU runs, so that the runs find the build up to date. A board
    // that cannot hold the default model builds every other binary, and must refuse `generate`
    // (and `chat`, if it has a console) with a message that says why.
    let runs = qemu::golden_runs(root, &boards)?;
    let release = Options { release: true, ..Options::default() };
    // A board whose firmware is an example crate is built by the example steps below.
    for board in boards.boards.iter().filter(|b| b.example.is_none()) {
        let holds_model = device::default_plan(root, board, boards.budgets)?.1.fits();
        steps.run(format!("firmware {}", board.name), || {
            if holds_model {
                return firmware::build(root, board, &release).map(|_| ());
            }
            let embeds_model =
                |b: &String| b == device::BIN || firmware::CONSOLE_BINS.contains(&&**b);
            for bin in firmware::binaries(root)?.into_iter().filter(|b| !embeds_model(b)) {
                firmware::build(root, board, &Options { bin: Some(bin), ..release.clone() })?;
            }
            Ok(())
        });
        if !holds_model {
            steps.run(format!("generate refused on {}", board.name), || {
                let bin = Some(device::BIN.to_string());
                let text = firmware::refused(root, board, &Options { bin, ..release.clone() })?;
                expect_message(&text, &format!("board {} cannot hold the", board.name))
            });
            if firmware::has_console(root, &board.name)? {
                steps.run(format!("chat refused on {}", board.name), || {
                    let bin = Some(firmware::CONSOLE_BINS[0].to_string());
                    let text = firmware::refused(root, board, &Options { bin, ..release.clone() })?;
                    expect_message(&text, &format!("board {} cannot hold", board.name))
                });
            }
        }
        // Beams whose run state the board cannot hold are refused too, the beams named: the
        // bundled model on the nRF52840-DK holds three beams, not four.
        if board.name == "nrf52840-dk" && holds_model {
            steps.run(format!("generate with 4 beams refused on {}", board.name), || {
                let settings = firmware::Settings { num_beams: Some(4), ..Default::default() };
                let bin = Some(device::BIN.to_string());
                let options = Options { bin, settings, ..release.clone() };
                let text = firmware::refused(root, board, &options)?;
                expect_message(&text, "with a q8_0 KV cache and 4 beams")
            });
        }
        // The chat build plans its beam capacity the same way: the netduinoplus2's 128 KiB hold
        // chat with one beam, not two.
        if board.name == "netduinoplus2" && holds_model {
            steps.run(format!("chat with 2 beams refused on {}", board.name), || {
                let settings = firmware::Settings { num_beams: Some(2), ..Default::default() };
                let bin = Some(firmware::CONSOLE_BINS[0].to_string());
                let options = Options { bin, settings, ..release.clone() };
                let text = firmware::refused(root, board, &options)?;
                expect_message(&text, "chat's buffers for")?;
                expect_message(&text, "with a q8_0 KV cache and 2 beams")
            });
        }
        for (_, bin) in runs.iter().filter(|(b, _)| b.name == board.name) {
            steps.run(format!("qemu {bin} on {}", board.name), || {
                qemu::build_and_run(
                    root,
                    board,
                    bin,
                    &release,
                    Golden::Compare,
                    DEFAULT_TIMEOUT_SECS,
                )
                .map(|_| ())
            });
        }
    }

    // The bundled model for 512 KiB of flash builds for such a board, which refuses the default.
    steps.run("generate tinystories-small on blackpill-f411".to_string(), || {
        let bin = Some(device::BIN.to_string());
        let model = Some("tinystories-small".into());
        firmware::build(
            root,
            boards.get("blackpill-f411")?,
            &Options { bin, model, ..release.clone() },
        )
        .map(|_| ())
    });

    // docs/boards.md's example crates: mote-core without mote's build script.
    for (name, target) in example::EXAMPLES {
        steps.run(format!("example {name}"), || example::build(root, name, target));
    }

    // The STM32F4 console driver in QEMU: lines sent come back (nrf52840-dk and nucleo-h743zi
    // build theirs above, in every binary that uses the console).
    steps.run("console echo on netduinoplus2", || {
        crate::console_echo::run(root, boards.get("netduinoplus2")?)
    });

    // The generating firmware against the desktop, and against the memory plan.
    steps.run("parity device == desktop", || {
        parity::run(root, &boards, &parity::ParityArgs::default())
    });
    // mps2-an385: an integer board's code, the integer pass alone, within the same budget.
    for name in ["mps2-an386", "nrf52840-dk", "mps2-an385"] {
        steps.run(format!("size {name} within the plan"), || {
            size::run(root, boards.get(name)?, false)
        });
    }
    let default_board = boards.get_or_default(None)?;
    let generate = Options { bin: Some(device::BIN.to_string()), ..release.clone() };
    steps.run("generate refuses an empty prompt", || {
        let options = Options { prompt: Some(String::new()), ..generate.clone() };
        expect_message(&firmware::refused(root, default_board, &options)?, "encodes to no tokens")
    });
    steps.run("generate refuses a prompt longer than the context", || {
        let options = Options { prompt: Some("Once upon a time. ".repeat(40)), ..generate.clone() };
        expect_message(&firmware::refused(root, default_board, &options)?, "shorten MOTE_PROMPT")
    });
    // Each fuzz target briefly, so that a regression in code that reads untrusted bytes surfaces;
    // CI requires the nightly toolchain that `cargo xtask setup` installs.
    let fuzz = FuzzArgs { seconds: FUZZ_SECONDS, target: None, require: true };
    steps.run("fuzz", || crate::fuzz::run(root, &fuzz));

    println!("\nci summary:");
    for o in &steps.outcomes {
        let status = if o.error.is_some() { "FAILED" } else { "ok" };
        println!("  {status:<6} {:>7.1} s  {}", o.seconds, o.name);
    }
    let failed: Vec<&Outcome> = steps.outcomes.iter().filter(|o| o.error.is_some()).collect();
    for o in &failed {
        println!(
            "\nfailed: {}\n  {}",
            o.name,
            o.error.as_deref().unwrap_or("").replace('\n', "\n  ")
        );
    }
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
    println!("ci: {} passed, {} failed", steps.outcomes.len() - failed.len(), failed.len());
    Ok(if failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
