//! `cargo xtask fuzz`: every cargo-fuzz target of `fuzz/` for a few seconds each, seeded from
//! `tools/py/make_fuzz_seeds.py` and from the saved inputs of `fuzz/regressions/<target>/`.
//!
//! cargo-fuzz needs a nightly toolchain (libFuzzer and the sanitizer flags), which only rustup
//! provides. Without one, a developer's run is skipped with a message; CI (`--require`, or the `CI`
//! environment variable) fails instead, so that the fuzz step cannot silently stop running.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};
use clap::Args;

use crate::shell;

/// The fuzz targets, in `fuzz/fuzz_targets/`.
pub const TARGETS: [&str; 5] =
    ["gguf_parse", "model_generate", "tokenizer", "convert_inputs", "chat"];

/// Longest input libFuzzer makes: enough for the tiny seed models, and small enough that a
/// mutation runs thousands of times a second (a whole 884 KB model runs a few hundred).
const MAX_LEN: u32 = 32 * 1024;

/// Options of `cargo xtask fuzz`.
#[derive(Args)]
pub struct FuzzArgs {
    /// Seconds per target.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Only this target (default: all).
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    pub target: Option<String>,
    /// Fail, rather than skip, when the nightly toolchain or cargo-fuzz is missing.
    #[arg(long)]
    pub require: bool,
}

/// Whether rustup has a nightly toolchain.
pub fn nightly_ok() -> bool {
    shell::output(Command::new("rustup").args(["run", "nightly", "rustc", "--version"])).is_some()
}

/// Whether cargo-fuzz is installed.
pub fn cargo_fuzz_ok() -> bool {
    shell::which("cargo-fuzz").is_some()
}

/// Runs the targets.
pub fn run(root: &Path, args: &FuzzArgs) -> Result<()> {
    let require = args.require || std::env::var_os("CI").is_some();
    let missing: Vec<&str> = [
        (!nightly_ok()).then_some("a nightly toolchain (`rustup toolchain install nightly`)"),
        (!cargo_fuzz_ok()).then_some("cargo-fuzz (`cargo install cargo-fuzz --locked`)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        let what = missing.join(" and ");
        if require {
            bail!("fuzzing needs {what}; `cargo xtask setup` installs them");
        }
        println!("fuzz: skipped, this machine lacks {what} (`cargo xtask setup` installs them)");
        return Ok(());
    }
    let fuzz_dir = root.join("fuzz");
    let targets: Vec<&str> = match &args.target {
        Some(t) => vec![t.as_str()],
        None => TARGETS.to_vec(),
    };
    for target in targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        if !corpus.is_dir() || corpus.read_dir()?.next().is_none() {
            let mut cmd = Command::new(mote_pyenv::python(root)?);
            cmd.current_dir(root).arg("tools/py/make_fuzz_seeds.py").arg(target).arg(&corpus);
            if target == "gguf_parse" {
                cmd.arg("models/tinystories-base/tinystories-base-q8_0.gguf");
            }
            shell::run(&mut cmd)?;
        }
        let regressions = fuzz_dir.join("regressions").join(target);
        shell::run(
            Command::new("rustup")
                .current_dir(&fuzz_dir)
                .args(["run", "nightly", "cargo", "fuzz", "run", target])
                .arg(&corpus)
                .arg(&regressions)
                .arg("--")
                .arg(format!("-max_total_time={}", args.seconds))
                .arg(format!("-max_len={MAX_LEN}"))
                .arg("-print_final_stats=1"),
        )?;
    }
    Ok(())
}
