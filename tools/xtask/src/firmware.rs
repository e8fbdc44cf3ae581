//! Building `firmware/` for a board: the board's feature, triple and rustflags, through the
//! toolchain route for its triple, run in firmware/ so that its .cargo/config.toml applies.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use mote_boards::{device_kv, Math, DEFAULT_MODEL};
use mote_core::gguf::Gguf;
use mote_core::model::{HParams, Layer, Model};
use mote_core::state::KvType;

use crate::boards::Board;
use crate::shell;
use crate::toolchain::{Job, Route, Toolchain};
use crate::FirmwareArgs;

/// `--model`: a bundled model's name (`tinystories-small`) or a GGUF file, as an absolute path.
pub fn model_path(root: &Path, model: &Path) -> Result<PathBuf> {
    if let Some(path) = model.to_str().and_then(mote_boards::bundled_model) {
        return Ok(root.join(path));
    }
    model.canonicalize().map_err(|e| {
        anyhow::anyhow!(
            "model {}: {e}; give a GGUF file or a bundled model: {}",
            model.display(),
            mote_boards::bundled_model_names()
        )
    })
}

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
    /// KV type and sampler settings of the generating binaries.
    pub settings: Settings,
}

/// The generating binaries' KV type and sampler settings: the firmware takes them at build time
/// (`MOTE_KV`, `MOTE_TEMPERATURE`, ...), `mote generate` as flags of the same names.
#[derive(Args, Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// KV cache type: q8_0, f16 or f32 (default: q8_0, f16 for widths not in 32-blocks).
    #[arg(long)]
    pub kv: Option<String>,
    /// Softmax temperature; 0 (the default) decodes greedily.
    #[arg(long)]
    pub temperature: Option<f32>,
    /// Sample among the K most likely tokens only.
    #[arg(long)]
    pub top_k: Option<u32>,
    /// Sample from the smallest set of tokens whose probability reaches P.
    #[arg(long)]
    pub top_p: Option<f32>,
    /// Penalty on tokens already seen (1 is off).
    #[arg(long)]
    pub repetition_penalty: Option<f32>,
    /// Never repeat an n-gram of this size (0 is off).
    #[arg(long)]
    pub no_repeat_ngram_size: Option<u32>,
    /// Seed of the sampler's pseudo-random generator.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Beam search over N beams (1, the default: none); for `chat`, the most beams `/beams`
    /// accepts, which sizes its run state.
    #[arg(long)]
    pub num_beams: Option<usize>,
    /// Beam search: a finished sequence's log-probability over its length to this power.
    #[arg(long)]
    pub length_penalty: Option<f32>,
    /// Beam search: when to stop early (true, false, never).
    #[arg(long)]
    pub early_stopping: Option<String>,
    /// Beam search: finished sequences to print, best first.
    #[arg(long)]
    pub num_return_sequences: Option<usize>,
    /// The end-of-text token cannot come before this many new tokens.
    #[arg(long)]
    pub min_new_tokens: Option<usize>,
}

impl Settings {
    /// (flag without dashes, value) of each setting given.
    pub fn given(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let mut put = |name: &'static str, value: Option<String>| {
            if let Some(v) = value {
                out.push((name, v));
            }
        };
        put("kv", self.kv.clone());
        put("temperature", self.temperature.map(|v| v.to_string()));
        put("top-k", self.top_k.map(|v| v.to_string()));
        put("top-p", self.top_p.map(|v| v.to_string()));
        put("repetition-penalty", self.repetition_penalty.map(|v| v.to_string()));
        put("no-repeat-ngram-size", self.no_repeat_ngram_size.map(|v| v.to_string()));
        put("seed", self.seed.map(|v| v.to_string()));
        put("num-beams", self.num_beams.map(|v| v.to_string()));
        put("length-penalty", self.length_penalty.map(|v| v.to_string()));
        put("early-stopping", self.early_stopping.clone());
        put("num-return-sequences", self.num_return_sequences.map(|v| v.to_string()));
        put("min-new-tokens", self.min_new_tokens.map(|v| v.to_string()));
        out
    }

    /// The firmware build's environment: `MOTE_KV=q8_0`, `MOTE_TOP_K=40`, ...
    pub fn env(&self) -> Vec<(String, String)> {
        self.given()
            .into_iter()
            .map(|(k, v)| (format!("MOTE_{}", k.to_uppercase().replace('-', "_")), v))
            .collect()
    }

    /// The same settings as `mote generate` flags; the KV type defaults to the device's.
    pub fn cli_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.kv.is_none() {
            args.extend(["--kv".to_string(), "q8_0".to_string()]);
        }
        for (k, v) in self.given() {
            args.push(format!("--{k}"));
            args.push(v);
        }
        args
    }

    /// One line for reports: `greedy` or the settings given.
    pub fn describe(&self) -> String {
        let given = self.given();
        if given.is_empty() {
            return "greedy, kv q8_0".to_string();
        }
        given.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    }
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
            settings: a.settings.clone(),
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

/// The binaries that talk over the serial console: built only for boards whose feature enables
/// `console` (firmware/Cargo.toml's `required-features`).
pub const CONSOLE_BINS: [&str; 1] = ["chat"];

/// Whether `board`'s feature in firmware/Cargo.toml enables the `console` feature (it has a
/// console driver in firmware/src/console/).
pub fn has_console(root: &Path, board: &str) -> Result<bool> {
    let manifest = root.join("firmware/Cargo.toml");
    let text = fs::read_to_string(&manifest)
        .with_context(|| format!("cannot read {}", manifest.display()))?;
    let prefix = format!("board-{board} =");
    Ok(text
        .lines()
        .find(|l| l.trim_start().starts_with(&prefix))
        .is_some_and(|l| l.contains("\"console\"")))
}

/// The `cargo build` of the firmware for `board` with `options`, and the binaries it builds.
pub fn build_command(
    root: &Path,
    board: &Board,
    options: &Options,
) -> Result<(std::process::Command, Vec<String>, Toolchain)> {
    ensure_firmware(board)?;
    let toolchain = Toolchain::for_target(&board.target, true, Job::Build)?;
    println!("firmware for {} on {}", board.name, toolchain.describe());
    let mut cmd = cargo(root, board, &toolchain, Job::Build);
    if options.release {
        cmd.arg("--release");
    } else if board.cpu == "cortex-m55" {
        // Compiling `core` to machine code for the Cortex-M55 stops LLVM 22's Arm back end during
        // instruction selection ("Do not know how to promote this operator!"; docs/firmware.md).
        // With LTO, cargo compiles the dependencies to bitcode only, and the code the firmware
        // never calls is dropped before code generation, as in the release profile.
        cmd.env("CARGO_PROFILE_DEV_LTO", "fat");
    }
    let bins = match &options.bin {
        Some(bin) => {
            let known = binaries(root)?;
            if !known.contains(bin) {
                bail!("no firmware binary {bin:?}; there are: {}", known.join(", "));
            }
            if CONSOLE_BINS.contains(&bin.as_str()) && !has_console(root, &board.name)? {
                bail!(
                    "board {} has no console driver (firmware/src/console/), so no {bin} binary",
                    board.name
                );
            }
            cmd.args(["--bin", bin]);
            vec![bin.clone()]
        }
        None => {
            cmd.arg("--bins");
            let console = has_console(root, &board.name)?;
            let mut bins = binaries(root)?;
            bins.retain(|b| console || !CONSOLE_BINS.contains(&b.as_str()));
            bins
        }
    };
    // `chat` carries the beam search's code only when its build holds beams.
    if options.settings.num_beams.is_some_and(|n| n > 1) {
        cmd.args(["--features", "chat-beams"]);
    }
    // The forward pass the board runs, and only it.
    cmd.env("MOTE_MATH", board.math.name());
    cmd.args([
        "--features",
        if board.math == Math::Integer { "integer-only" } else { "float-only" },
    ]);
    // The integer path's decode step at opt-level 2 takes 5.7% more instructions than at 3 on
    // ARMv6-M and 5.4% more on RV32IMC (its fixed-point helpers are plain Rust); the float path's
    // kernels are assembly or hand-unrolled, the same at 2 in less code (docs/performance.md).
    if board.math == Math::Integer {
        cmd.env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "3");
    }
    // A Q8_0 KV cache, Q8_0 matrix products: the other types' code stays out of the firmware.
    let (kv, products) = q8_0_only(root, options);
    if kv {
        cmd.args(["--features", "kv-q8_0-only"]);
    }
    if products {
        cmd.args(["--features", "weights-q8_0-only"]);
    }
    // Cold code optimised for size: `#[optimize(size)]` is unstable, and only the Debian route's
    // compiler (RUSTC_BOOTSTRAP=1 for -Zbuild-std) accepts it.
    if let Route::Debian = toolchain.route {
        cmd.args(["--features", "optimize-size"]);
    }
    if let Some(prompt) = &options.prompt {
        cmd.env("MOTE_PROMPT", prompt);
    }
    if let Some(model) = &options.model {
        cmd.env("MOTE_MODEL", model_path(root, model)?);
    }
    if let Some(n) = options.max_tokens {
        cmd.env("MOTE_MAX_TOKENS", n.to_string());
    }
    for (var, value) in options.settings.env() {
        cmd.env(var, value);
    }
    Ok((cmd, bins, toolchain))
}

/// `board` running the forward pass in `math` (`float` or `integer`) instead of its boards.toml
/// `math`, when given: `--math` of `cargo xtask firmware` and `bench-mcu`.
pub fn with_math(board: &Board, math: Option<&str>) -> Result<Board> {
    let math = match math {
        None => board.math,
        Some("float") => Math::Float,
        Some("integer") => Math::Integer,
        Some(other) => bail!("--math {other:?} is neither float nor integer"),
    };
    Ok(Board { math, ..board.clone() })
}

/// Whether the generating binaries' KV type is Q8_0 (`--kv`, or the device's rule for the model,
/// as the build script decides), and whether every matrix the model multiplies is Q8_0. A model
/// that cannot be read answers no to both: the build script then says what is wrong with it.
fn q8_0_only(root: &Path, options: &Options) -> (bool, bool) {
    let path = options.model.clone().unwrap_or_else(|| root.join(DEFAULT_MODEL));
    let Ok(bytes) = fs::read(path) else { return (false, false) };
    let Ok(gguf) = Gguf::parse(&bytes) else { return (false, false) };
    let Ok(hp) = HParams::from_gguf(&gguf) else { return (false, false) };
    let kv = match options.settings.kv.as_deref() {
        Some(kv) => kv == "q8_0",
        None => device_kv(&hp) == KvType::Q8_0,
    };
    let mut layers = vec![Layer::EMPTY; hp.n_layer];
    let products = Model::load(&gguf, &mut layers).is_ok_and(|m| m.multiplies_q8_0_only());
    (kv, products)
}

/// Builds the firmware expecting the build to be refused (a model the board cannot hold, a
/// prompt of no tokens, ...); returns the compiler's messages. A build that succeeds is an error.
pub fn refused(root: &Path, board: &Board, options: &Options) -> Result<String> {
    let (mut cmd, _, _) = build_command(root, board, options)?;
    println!("$ {} (expected to fail)", shell::show(&cmd));
    let out = cmd.output().context("cannot run cargo")?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        bail!("the build for {} succeeded, but it should have been refused", board.name);
    }
    Ok(text)
}

/// `cargo build` of the firmware for `board`.
pub fn build(root: &Path, board: &Board, options: &Options) -> Result<Built> {
    let dir = root.join("firmware");
    let (mut cmd, bins, toolchain) = build_command(root, board, options)?;
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

/// `cargo clippy -D warnings` on the firmware for `board`, on its `targets` (`--lib`, `--bins`,
/// `--bin X`).
pub fn clippy(root: &Path, board: &Board, targets: &[&str]) -> Result<()> {
    ensure_firmware(board)?;
    let toolchain = Toolchain::for_target(&board.target, false, Job::Clippy)?;
    println!("clippy on the firmware for {} on {}", board.name, toolchain.describe());
    let mut cmd = cargo(root, board, &toolchain, Job::Clippy);
    cmd.args(targets).args(["--", "-D", "warnings"]);
    shell::run(&mut cmd)
}

/// An error for a board whose firmware is an example crate (boards.toml `example`): firmware/ has
/// no build for it.
fn ensure_firmware(board: &Board) -> Result<()> {
    match &board.example {
        Some(example) => bail!(
            "board {} runs the example crate examples/{example}, not mote's firmware: \
             build it there (`cargo build --release`, as docs/boards.md says)",
            board.name
        ),
        None => Ok(()),
    }
}

/// A cargo command in firmware/ with the board's feature and flags.
fn cargo(root: &Path, board: &Board, toolchain: &Toolchain, job: Job) -> std::process::Command {
    let dir = root.join("firmware");
    let mut cmd = toolchain.cargo(job, &dir, &dir.join("target"), &board.rustflags);
    cmd.args(["--no-default-features", "--features", &format!("board-{}", board.name)]);
    cmd
}
