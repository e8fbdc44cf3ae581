//! Building `firmware/` for a board: the board's feature, triple and rustflags, through the
//! toolchain route for its triple, run in firmware/ so that its .cargo/config.toml applies.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::boards::Board;
use crate::shell;
use crate::toolchain::{Job, Toolchain};
use crate::FirmwareArgs;

/// How to build.
#[derive(Clone, Default)]
pub struct Options {
    /// The release profile.
    pub release: bool,
    /// One binary only.
    pub bin: Option<String>,
    /// MOTE_PROMPT.
    pub prompt: Option<String>,
    /// MOTE_MODEL.
    pub model: Option<PathBuf>,
    /// MOTE_MAX_TOKENS.
    pub max_tokens: Option<u32>,
}

impl Options {
    /// The options the command line gave.
    pub fn new(a: &FirmwareArgs, release: bool) -> Options {
        Options {
            release,
            bin: a.bin.clone(),
            prompt: a.prompt.clone(),
            model: a.model.clone(),
            max_tokens: a.max_tokens,
        }
    }
}

/// What a build made.
pub struct Built {
    /// The ELF of each binary built.
    pub elfs: Vec<PathBuf>,
}

/// The binaries of the firmware: the files of firmware/src/bin.
pub fn binaries(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("firmware/src/bin");
    let mut bins: Vec<String> = fs::read_dir(&dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(str::to_string))
        .collect();
    bins.sort();
    Ok(bins)
}

/// `cargo build` of the firmware for `board`.
pub fn build(root: &Path, board: &Board, options: &Options) -> Result<Built> {
    let dir = root.join("firmware");
    let toolchain = Toolchain::for_target(&board.target, true, Job::Build)?;
    println!("firmware for {} on {}", board.name, toolchain.describe());
    let mut cmd = cargo(root, board, &toolchain, Job::Build);
    if options.release {
        cmd.arg("--release");
    }
    let bins = match &options.bin {
        Some(bin) => {
            let known = binaries(root)?;
            if !known.contains(bin) {
                bail!("no firmware binary {bin:?}; there are: {}", known.join(", "));
            }
            cmd.args(["--bin", bin]);
            vec![bin.clone()]
        }
        None => {
            cmd.arg("--bins");
            binaries(root)?
        }
    };
    if let Some(prompt) = &options.prompt {
        cmd.env("MOTE_PROMPT", prompt);
    }
    if let Some(model) = &options.model {
        let model = model.canonicalize().with_context(|| format!("model {}", model.display()))?;
        cmd.env("MOTE_MODEL", model);
    }
    if let Some(n) = options.max_tokens {
        cmd.env("MOTE_MAX_TOKENS", n.to_string());
    }
    shell::run(&mut cmd)
        .with_context(|| format!("firmware build for board {} failed", board.name))?;
    // Cargo's output path is shared by every board of a triple, so the next board's build would
    // overwrite it: each board's ELFs are copied to a path of their own.
    let profile = if options.release { "release" } else { "debug" };
    let out = toolchain.target_dir(&dir.join("target")).join(&board.target).join(profile);
    let kept = elf_dir(root, &board.name, options.release);
    fs::create_dir_all(&kept)?;
    let mut elfs = Vec::new();
    for bin in &bins {
        fs::copy(out.join(bin), kept.join(bin)).with_context(|| {
            format!("cannot copy {} to {}", out.join(bin).display(), kept.display())
        })?;
        elfs.push(kept.join(bin));
    }
    Ok(Built { elfs })
}

/// Where the ELFs of `board` are kept: `firmware/target/<board>/<debug|release>/`.
pub fn elf_dir(root: &Path, board: &str, release: bool) -> PathBuf {
    root.join("firmware/target").join(board).join(if release { "release" } else { "debug" })
}

/// `cargo clippy -D warnings` on the firmware for `board`.
pub fn clippy(root: &Path, board: &Board) -> Result<()> {
    let toolchain = Toolchain::for_target(&board.target, false, Job::Clippy)?;
    println!("clippy on the firmware for {} on {}", board.name, toolchain.describe());
    let mut cmd = cargo(root, board, &toolchain, Job::Clippy);
    cmd.args(["--lib", "--bins", "--", "-D", "warnings"]);
    shell::run(&mut cmd)
}

/// A cargo command in firmware/ with the board's feature and flags.
fn cargo(root: &Path, board: &Board, toolchain: &Toolchain, job: Job) -> std::process::Command {
    let dir = root.join("firmware");
    let mut cmd = toolchain.cargo(job, &dir, &dir.join("target"), &board.rustflags);
    cmd.args(["--no-default-features", "--features", &format!("board-{}", board.name)]);
    cmd
}
