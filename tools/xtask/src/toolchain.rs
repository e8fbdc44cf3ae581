//! Which compiler builds for a bare-metal target, and how to call it.
//!
//! Two routes, tried in this order:
//! 1. **rustup**: the target is installed (`rustup target list --installed`); plain
//!    `cargo build --target T` with the cargo that runs xtask.
//! 2. **Debian**: Debian's `rustc-web`/`cargo-web` (1.85 or newer, in /usr/bin) build `core` from
//!    `rust-web-src` with `-Zbuild-std` (`RUSTC_BOOTSTRAP=1`), and link with `ld.lld-19` (the
//!    `rust-lld` that rustc-web installs points at an lld that is not there).
//!
//! Each route has its own target directory (`<target-dir>/debian` for the second), so artifacts of
//! two compilers never mix and switching routes never rebuilds the other's. `MOTE_TOOLCHAIN=rustup`
//! or `=debian` forces a route.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Result};

use crate::shell;

/// Debian's compiler, cargo and clippy (packages rustc-web, cargo-web, rust-web-clippy).
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_RUSTDOC: &str = "/usr/bin/rustdoc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_CARGO_CLIPPY: &str = "/usr/bin/cargo-clippy";
/// The standard library's sources that -Zbuild-std compiles (package rust-web-src).
const DEBIAN_LIBRARY_SRC: &str = "/usr/lib/rustlib/src/rust/library/core/Cargo.toml";
/// The linker for the Debian route (package lld-19).
pub const DEBIAN_LINKER: &str = "ld.lld-19";
/// Oldest rustc the Debian route accepts: the workspace's rust-version. Bookworm's plain `rustc`
/// package (1.63) also installs /usr/bin/rustc, and is too old.
const DEBIAN_MIN_RUSTC: (u32, u32) = (1, 85);

/// The bare-metal targets mote-core must build for: riscv32imc is the ESP32-C3's and `qemu-rv32`'s
/// (no atomics, no FPU), riscv32imac the common RISC-V microcontroller's.
pub const CORE_TARGETS: [&str; 5] = [
    "thumbv6m-none-eabi",
    "thumbv7em-none-eabihf",
    "thumbv8m.main-none-eabihf",
    "riscv32imc-unknown-none-elf",
    "riscv32imac-unknown-none-elf",
];

/// What a cargo invocation will do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// `cargo build`.
    Build,
    /// `cargo clippy`.
    Clippy,
}

/// How to build for one target.
pub enum Route {
    /// An installed rustup target, built by the cargo that runs xtask.
    Rustup,
    /// Debian's rustc-web with -Zbuild-std.
    Debian,
}

/// A route chosen for a target.
pub struct Toolchain {
    /// The route.
    pub route: Route,
    /// The target triple.
    pub target: String,
}

/// The cargo that runs xtask (set by cargo for the programs it runs).
pub fn host_cargo() -> PathBuf {
    env::var_os("CARGO").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("cargo"))
}

/// Targets rustup has installed for the active toolchain (empty without rustup).
fn rustup_targets() -> &'static [String] {
    static TARGETS: OnceLock<Vec<String>> = OnceLock::new();
    TARGETS.get_or_init(|| {
        shell::output(Command::new("rustup").args(["target", "list", "--installed"]))
            .map(|out| out.lines().map(str::to_string).collect())
            .unwrap_or_default()
    })
}

/// Whether the rustup route can build for `target`.
pub fn rustup_has_target(target: &str) -> bool {
    rustup_targets().iter().any(|t| t == target)
}

/// A missing piece of the Debian route: what it is, and the apt package that brings it.
pub struct Missing {
    /// What is missing, in words.
    pub what: String,
    /// The Debian package to install.
    pub package: &'static str,
}

/// What the Debian route lacks on this machine, for a job that may `link` binaries.
pub fn debian_missing(link: bool, job: Job) -> Vec<Missing> {
    let mut missing = Vec::new();
    match debian_rustc_version() {
        Some(v) if v >= DEBIAN_MIN_RUSTC => {}
        Some((major, minor)) => missing.push(Missing {
            what: format!(
                "a {DEBIAN_RUSTC} of {}.{} or newer (it is {major}.{minor})",
                DEBIAN_MIN_RUSTC.0, DEBIAN_MIN_RUSTC.1
            ),
            package: "rustc-web",
        }),
        None => missing.push(Missing { what: DEBIAN_RUSTC.to_string(), package: "rustc-web" }),
    }
    let files: [(&str, &'static str, bool); 3] = [
        (DEBIAN_CARGO, "cargo-web", true),
        (DEBIAN_LIBRARY_SRC, "rust-web-src", true),
        (DEBIAN_CARGO_CLIPPY, "rust-web-clippy", job == Job::Clippy),
    ];
    for (path, package, needed) in files {
        if needed && !Path::new(path).exists() {
            missing.push(Missing { what: path.to_string(), package });
        }
    }
    if link && shell::which(DEBIAN_LINKER).is_none() {
        missing.push(Missing { what: format!("{DEBIAN_LINKER} (on PATH)"), package: "lld-19" });
    }
    missing
}

/// (major, minor) of /usr/bin/rustc.
fn debian_rustc_version() -> Option<(u32, u32)> {
    let out = shell::output(Command::new(DEBIAN_RUSTC).arg("-V"))?;
    let version = out.split_whitespace().nth(1)?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

impl Toolchain {
    /// The route for `target`: rustup if it has the target, else Debian's, if complete. `link`:
    /// the job links binaries (firmware), so the Debian route needs its linker.
    pub fn for_target(target: &str, link: bool, job: Job) -> Result<Toolchain> {
        let forced = env::var("MOTE_TOOLCHAIN").ok();
        let route = match forced.as_deref() {
            Some("rustup") => Route::Rustup,
            Some("debian") => Route::Debian,
            Some(other) => bail!("MOTE_TOOLCHAIN={other:?}: use rustup or debian, or unset it"),
            None if rustup_has_target(target) => Route::Rustup,
            None => Route::Debian,
        };
        if let Route::Debian = route {
            let missing = debian_missing(link, job);
            if !missing.is_empty() {
                let what: Vec<&str> = missing.iter().map(|m| m.what.as_str()).collect();
                let mut packages: Vec<&str> = missing.iter().map(|m| m.package).collect();
                packages.dedup();
                bail!(
                    "cannot build for {target}: rustup has no such target installed (`rustup \
                     target add {target}` where rustup can download), and the Debian route is \
                     missing {}: install the Debian package{} {} (`cargo xtask setup` does it as root)",
                    what.join(", "),
                    if packages.len() > 1 { "s" } else { "" },
                    packages.join(" ")
                );
            }
        }
        Ok(Toolchain { route, target: target.to_string() })
    }

    /// One line on how this target gets built.
    pub fn describe(&self) -> String {
        match self.route {
            Route::Rustup => format!("{}: rustup's installed target", self.target),
            Route::Debian => format!(
                "{}: Debian rustc-web with -Zbuild-std (rustup has no such target)",
                self.target
            ),
        }
    }

    /// The target directory of this route, given the default one.
    pub fn target_dir(&self, default: &Path) -> PathBuf {
        match self.route {
            Route::Rustup => default.to_path_buf(),
            Route::Debian => default.join("debian"),
        }
    }

    /// A cargo command for `job` on this target, run in `dir` (whose .cargo/config.toml applies),
    /// with artifacts under `default_target_dir` (or beside it, per route), and `rustflags` added.
    pub fn cargo(
        &self,
        job: Job,
        dir: &Path,
        default_target_dir: &Path,
        rustflags: &[String],
    ) -> Command {
        let target = self.target.as_str();
        let mut cmd = match (&self.route, job) {
            (Route::Rustup, _) => Command::new(host_cargo()),
            (Route::Debian, Job::Build) => Command::new(DEBIAN_CARGO),
            (Route::Debian, Job::Clippy) => {
                // cargo-clippy runs $CARGO check with its own clippy-driver as the wrapper.
                let mut c = Command::new(DEBIAN_CARGO_CLIPPY);
                c.env("CARGO", DEBIAN_CARGO);
                c
            }
        };
        cmd.current_dir(dir);
        cmd.arg(match job {
            Job::Build => "build",
            Job::Clippy => "clippy",
        });
        cmd.args(["--target", target]);
        cmd.arg("--target-dir").arg(self.target_dir(default_target_dir));
        let mut flags: Vec<String> = rustflags.to_vec();
        if let Route::Debian = self.route {
            // Nothing of rustup's may leak into Debian's cargo: its rustc, its toolchain choice.
            cmd.env_remove("RUSTUP_TOOLCHAIN").env_remove("CARGO_TARGET_DIR");
            cmd.env("RUSTC", DEBIAN_RUSTC)
                .env("RUSTDOC", DEBIAN_RUSTDOC)
                .env("RUSTC_BOOTSTRAP", "1");
            cmd.args([
                "-Zbuild-std=core,compiler_builtins",
                "-Zbuild-std-features=compiler-builtins-mem",
            ]);
            cmd.env(target_env(target, "LINKER"), DEBIAN_LINKER);
            flags.extend(["-C".to_string(), "linker-flavor=ld.lld".to_string()]);
        }
        if !flags.is_empty() {
            cmd.env(target_env(target, "RUSTFLAGS"), flags.join(" "));
        }
        cmd
    }
}

/// The environment variable for `target.<target>.<key>` of cargo's configuration. Not `--config
/// target."<target>".<key>`: cargo splits the triple at its dots when it looks the key up, so a
/// table for `thumbv8m.main-none-eabihf` is never found; the variable's name has no dots.
fn target_env(target: &str, key: &str) -> String {
    format!("CARGO_TARGET_{}_{key}", target.to_uppercase().replace(['-', '.'], "_"))
}

/// `cargo build -p mote-core --target <target>` through the route for that target.
pub fn build_core(root: &Path, target: &str, release: bool) -> Result<()> {
    let toolchain = Toolchain::for_target(target, false, Job::Build)?;
    println!("mote-core for {}", toolchain.describe());
    let mut cmd = toolchain.cargo(Job::Build, root, &root.join("target"), &[]);
    cmd.args(["-p", "mote-core"]);
    if release {
        cmd.arg("--release");
    } else {
        // This build proves that mote-core builds for the target; the workspace's dev profile
        // optimizes dependencies, which -Zbuild-std extends to `core` itself, and that triples the
        // cost (thumbv6m: 330 s of CPU at opt-level 3, 111 s at 0).
        cmd.args(["--config", "profile.dev.package.\"*\".opt-level = 0"]);
    }
    shell::run(&mut cmd)
}
