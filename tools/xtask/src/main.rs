//! `cargo xtask`: every job of mote's that is more than one cargo command, one subcommand each.
//!
//! The same commands work on a developer's laptop (rustup with the Cortex-M targets installed) and
//! on a fresh CI box (Debian's rustc-web with `-Zbuild-std`): [`toolchain`] picks the route per
//! target. Boards come from `boards.toml` at the repository root ([`boards`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

mod bench;
mod bench_kernels;
mod bench_mcu;
mod boards;
mod ci;
mod console;
mod console_echo;
mod device;
mod example;
mod firmware;
mod fuzz;
mod golden;
mod parity;
mod probe;
mod qemu;
mod setup;
mod shell;
mod size;
mod size_table;
mod toolchain;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "mote's setup, firmware builds, QEMU runs and CI"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what this machine lacks to build, run and test everything (apt as root, cargo, pip).
    Setup(setup::SetupArgs),
    /// List the boards of boards.toml.
    Boards,
    /// Build mote-core without std for a target (the no_std check).
    BuildCore(BuildCoreArgs),
    /// Build the firmware for a board and print where the ELF files are.
    Firmware(FirmwareCmd),
    /// Build a firmware binary, run it in QEMU, decode its defmt output, compare it with its golden
    /// `.out` file; exits with the firmware's exit code. `--bin chat` connects the board's serial
    /// console to this terminal (typed or piped lines; at the end of the input, xtask waits for the
    /// last reply, then ends QEMU) and decodes the defmt log to standard error.
    Qemu(QemuArgs),
    /// Check a board's serial console driver in QEMU: lines sent to `console_echo` come back.
    ConsoleEcho(console_echo::ConsoleEchoArgs),
    /// Build a firmware binary and run it on a real board through a debug probe (`probe-rs run
    /// --chip <probe_rs_chip>`, defmt logs over RTT); exits with the firmware's exit code.
    Run(RunArgs),
    /// Run the generating firmware in QEMU and check that its tokens and logits checksum equal
    /// `mote generate`'s on the desktop, bit for bit (greedy, then with every sampling control).
    Parity(parity::ParityArgs),
    /// Flash and RAM of the generating firmware, as built and run, next to `mote inspect --board`'s
    /// plan; fails when they differ by more than 4 KiB.
    Size(size::SizeArgs),
    /// Count the default model's instructions per token and per weight multiply-accumulate in
    /// QEMU (`-icount shift=0`).
    BenchMcu(bench_mcu::BenchArgs),
    /// Run each cargo-fuzz target briefly (nightly toolchain; skipped without one outside CI).
    Fuzz(fuzz::FuzzArgs),
    /// Run every check: fmt, clippy, tests, no_std builds, firmware builds, QEMU golden runs,
    /// device == desktop parity, memory against the plan, fuzzing.
    Ci(ci::CiArgs),
    /// Count instructions per multiply-accumulate of the Q8_0 kernels on every QEMU board.
    BenchKernels(bench_kernels::BenchKernelsArgs),
    /// Every speed figure in one table: kernels and the decode step per QEMU board, desktop
    /// tokens/s for three model sizes next to llama.cpp's when it is installed.
    Bench(bench::BenchAllArgs),
}

/// Build mote-core for a bare-metal target.
#[derive(Args)]
struct BuildCoreArgs {
    /// Target triple, e.g. thumbv6m-none-eabi.
    #[arg(long)]
    target: String,
    /// Optimized build.
    #[arg(long)]
    release: bool,
}

/// Which firmware binary, for which board, with what build-time inputs.
#[derive(Args, Clone)]
pub struct FirmwareArgs {
    /// Board name from boards.toml (default: its `default`); `cargo xtask boards` lists them.
    #[arg(long)]
    board: Option<String>,
    /// Only this binary of firmware/src/bin (`firmware`: default all; `qemu`: default hello).
    #[arg(long)]
    bin: Option<String>,
    /// The firmware's prompt (sets MOTE_PROMPT for the build).
    #[arg(long)]
    prompt: Option<String>,
    /// Model to embed in flash: a GGUF file or a bundled model's name, such as tinystories-small
    /// (sets MOTE_MODEL for the build).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Limit on generated tokens (sets MOTE_MAX_TOKENS for the build).
    #[arg(long)]
    max_tokens: Option<u32>,
    /// KV type, sampler and beam settings (set MOTE_KV, MOTE_TEMPERATURE, MOTE_NUM_BEAMS, ... for
    /// the build).
    #[command(flatten)]
    settings: firmware::Settings,
}

/// Build the firmware.
#[derive(Args)]
struct FirmwareCmd {
    #[command(flatten)]
    firmware: FirmwareArgs,
    /// Optimized build (what `qemu` and `ci` run).
    #[arg(long)]
    release: bool,
    /// The forward pass's arithmetic, float or integer (default: the board's `math`).
    #[arg(long)]
    math: Option<String>,
}

/// Run a firmware binary on a real board.
#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    firmware: FirmwareArgs,
    /// Run the unoptimized build (default: release).
    #[arg(long)]
    debug: bool,
    /// Print the commands (build, then probe-rs) instead of running them.
    #[arg(long)]
    dry_run: bool,
}

/// Run a firmware binary in QEMU.
#[derive(Args)]
struct QemuArgs {
    #[command(flatten)]
    firmware: FirmwareArgs,
    /// Run the unoptimized build (default: release, as CI runs it and as tick counts mean
    /// something).
    #[arg(long)]
    debug: bool,
    /// Rewrite the golden file with this run's output (keeping lines that still match).
    #[arg(long)]
    bless: bool,
    /// Do not compare with the golden file.
    #[arg(long, conflicts_with = "bless")]
    no_golden: bool,
    /// Kill QEMU after this many seconds.
    #[arg(long, default_value_t = qemu::DEFAULT_TIMEOUT_SECS)]
    timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    let root = repo_root();
    match command {
        Command::Setup(args) => setup::run(&root, &args).map(|()| ExitCode::SUCCESS),
        Command::Boards => {
            let boards = boards::load(&root)?;
            print!("{}", boards::listing(&boards));
            Ok(ExitCode::SUCCESS)
        }
        Command::BuildCore(args) => {
            toolchain::build_core(&root, &args.target, args.release).map(|()| ExitCode::SUCCESS)
        }
        Command::Firmware(args) => {
            let boards = boards::load(&root)?;
            let board = boards.get_or_default(args.firmware.board.as_deref())?;
            let board = &firmware::with_math(board, args.math.as_deref())?;
            let options = firmware::Options::new(&args.firmware, args.release);
            let built = firmware::build(&root, board, &options)?;
            for elf in &built.elfs {
                println!("{}", elf.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Qemu(args) => {
            let boards = boards::load(&root)?;
            let board = boards.get_or_default(args.firmware.board.as_deref())?;
            let bin = args.firmware.bin.clone().unwrap_or_else(|| "hello".to_string());
            let golden = if args.no_golden {
                qemu::Golden::Ignore
            } else if args.bless {
                qemu::Golden::Bless
            } else {
                qemu::Golden::Compare
            };
            let options = firmware::Options::new(&args.firmware, !args.debug);
            if firmware::CONSOLE_BINS.contains(&bin.as_str()) {
                // The console on this terminal: typed or piped lines in, replies out.
                qemu::build_and_converse(
                    &root,
                    board,
                    &bin,
                    &options,
                    console::Input::Stdin,
                    true,
                    args.timeout,
                )?;
                return Ok(ExitCode::SUCCESS);
            }
            let code =
                qemu::build_and_run(&root, board, &bin, &options, golden, args.timeout)?.code;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::ConsoleEcho(args) => {
            let boards = boards::load(&root)?;
            console_echo::run(&root, boards.get(&args.board)?).map(|()| ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let boards = boards::load(&root)?;
            let board = boards.get_or_default(args.firmware.board.as_deref())?;
            let mut options = firmware::Options::new(&args.firmware, !args.debug);
            options.bin.get_or_insert_with(|| "hello".to_string());
            probe::run(&root, board, &options, args.dry_run)
        }
        Command::Parity(args) => {
            let boards = boards::load(&root)?;
            parity::run(&root, &boards, &args).map(|()| ExitCode::SUCCESS)
        }
        Command::Size(args) => {
            let boards = boards::load(&root)?;
            let board = boards.get_or_default(args.board.as_deref())?;
            size::run(&root, board, args.bless).map(|()| ExitCode::SUCCESS)
        }
        Command::BenchMcu(args) => {
            let boards = boards::load(&root)?;
            let board = boards.get_or_default(args.board.as_deref())?;
            let board = &firmware::with_math(board, args.math.as_deref())?;
            bench_mcu::run(&root, board, &args).map(|()| ExitCode::SUCCESS)
        }
        Command::Fuzz(args) => fuzz::run(&root, &args).map(|()| ExitCode::SUCCESS),
        Command::Ci(args) => ci::run(&root, &args),
        Command::BenchKernels(args) => bench_kernels::run(&root, &args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => {
            let boards = boards::load(&root)?;
            bench::run(&root, &boards, &args).map(|()| ExitCode::SUCCESS)
        }
    }
}

/// The repository root: xtask lives in tools/xtask.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tools/xtask is two levels below the root")
        .to_path_buf()
}
