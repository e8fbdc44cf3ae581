//! `cargo xtask setup`: make this machine able to build, run and test everything.
//!
//! Detects each piece, installs only what is missing, and says one line when nothing is:
//! - Debian packages (apt-get, as root; otherwise it prints the command and fails): the Debian
//!   toolchain route (rustc-web, cargo-web, rust-web-src, rust-web-clippy, lld-19) when rustup
//!   lacks a bare-metal target, qemu-system-arm, and qemu-system-misc (qemu-system-riscv32) for
//!   the RISC-V board;
//! - defmt-print, pinned, with `cargo install --locked`;
//! - for `cargo xtask fuzz`: rustup's nightly toolchain (minimal profile) and cargo-fuzz (`cargo
//!   install --locked`);
//! - with `--probe` only: probe-rs (`cargo install probe-rs-tools --locked`, pinned), which `cargo
//!   xtask run` flashes real boards with;
//! - the test Python: a virtual environment in target/py with the light, pinned packages of
//!   tools/py/requirements-test.txt (see the `mote-pyenv` crate). Every Python run of xtask and of
//!   `cargo test` uses it; none uses `python3` from PATH, so a package installed there by hand can
//!   never make a check pass that fails on a fresh machine.
//!
//! On Debian bookworm with qemu-utils from backports (10.x), qemu-system-arm 7.2 cannot be
//! installed beside it: setup pins qemu-utils (and qemu-block-extra, if present) to
//! qemu-system-arm's version, a downgrade apt is told to allow.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::qemu::DEFMT_PRINT_VERSION;
use crate::toolchain::{self, Job, CORE_TARGETS};
use crate::{boards, fuzz, probe, shell};

/// Options of `cargo xtask setup`.
#[derive(Args)]
pub struct SetupArgs {
    /// Only report what is missing; install nothing (exit 1 if anything is).
    #[arg(long)]
    check: bool,
    /// Also install probe-rs (probe-rs-tools from crates.io), for `cargo xtask run` on a real
    /// board; it compiles for several minutes, so the default setup leaves it out.
    #[arg(long)]
    probe: bool,
}

/// QEMU's Arm system emulator, and the Debian package of it.
const QEMU: &str = "qemu-system-arm";

/// Runs the setup.
pub fn run(root: &Path, args: &SetupArgs) -> Result<()> {
    let apt = missing_packages(root)?;
    let defmt_print = !defmt_print_ok();
    let python = mote_pyenv::python(root).err();
    let components = missing_rustup_components();
    let nightly = !fuzz::nightly_ok();
    let cargo_fuzz = !fuzz::cargo_fuzz_ok();
    let probe_rs = args.probe && !probe::installed();
    if apt.is_empty()
        && !defmt_print
        && python.is_none()
        && components.is_empty()
        && !nightly
        && !cargo_fuzz
        && !probe_rs
    {
        println!("setup: everything is installed");
        return Ok(());
    }

    let mut missing = Vec::new();
    if !apt.is_empty() {
        missing
            .push(format!("Debian packages {}", apt.iter().cloned().collect::<Vec<_>>().join(" ")));
    }
    if defmt_print {
        missing.push(format!("defmt-print {DEFMT_PRINT_VERSION}"));
    }
    if python.is_some() {
        missing.push(format!("the test Python environment {}", mote_pyenv::VENV_DIR));
    }
    if !components.is_empty() {
        missing.push(format!("rustup components {}", components.join(" ")));
    }
    if nightly {
        missing.push("the nightly toolchain".into());
    }
    if cargo_fuzz {
        missing.push("cargo-fuzz".into());
    }
    if probe_rs {
        missing.push(format!("probe-rs-tools {}", probe::PROBE_RS_VERSION));
    }
    println!("setup: missing {}", missing.join("; "));
    if args.check {
        bail!("setup --check: something is missing (run `cargo xtask setup`)");
    }

    // Every piece is tried even when one fails, so that one run says everything that is needed.
    let mut failures: Vec<String> = Vec::new();
    if !apt.is_empty() {
        if let Err(e) = install_packages(&apt) {
            failures.push(format!("{e:#}"));
        }
    }
    if !components.is_empty() {
        // rustup's components come from rustup's servers: say how, don't try.
        failures.push(format!("install `rustup component add {}`", components.join(" ")));
    }
    if defmt_print {
        let mut cmd = Command::new(toolchain::host_cargo());
        cmd.args(["install", "defmt-print", "--locked", "--version", DEFMT_PRINT_VERSION]);
        if let Err(e) = shell::run(&mut cmd) {
            failures.push(format!("{e:#}"));
        }
    }
    if nightly {
        // The only route to a nightly compiler with libFuzzer's sanitizer support.
        let mut cmd = Command::new("rustup");
        cmd.args(["toolchain", "install", "nightly", "--profile", "minimal"]);
        if let Err(e) = shell::run(&mut cmd) {
            failures.push(format!("{e:#} (cargo xtask fuzz needs rustup's nightly toolchain)"));
        }
    }
    if cargo_fuzz {
        let mut cmd = Command::new(toolchain::host_cargo());
        cmd.args(["install", "cargo-fuzz", "--locked"]);
        if let Err(e) = shell::run(&mut cmd) {
            failures.push(format!("{e:#}"));
        }
    }
    if probe_rs {
        if let Err(e) = shell::run(&mut probe::install_command(&toolchain::host_cargo())) {
            failures.push(format!("{e:#}"));
        }
    }
    if python.is_some() {
        if let Err(e) = make_python_env(root) {
            failures.push(format!("{e:#}"));
        }
    }
    if !failures.is_empty() {
        bail!("setup is incomplete:\n- {}", failures.join("\n- "));
    }
    println!("setup: done");
    Ok(())
}

/// Debian packages this machine needs and lacks.
fn missing_packages(root: &Path) -> Result<BTreeSet<&'static str>> {
    let boards = boards::load(root)?;
    let mut targets: BTreeSet<&str> = CORE_TARGETS.into_iter().collect();
    targets.extend(boards.boards.iter().map(|b| b.target.as_str()));
    let forced_debian = std::env::var("MOTE_TOOLCHAIN").is_ok_and(|v| v == "debian");
    let need_debian = forced_debian || targets.iter().any(|t| !toolchain::rustup_has_target(t));
    let mut packages = BTreeSet::new();
    if need_debian {
        packages
            .extend(toolchain::debian_missing(true, Job::Clippy).into_iter().map(|m| m.package));
    }
    if shell::which(QEMU).is_none() {
        packages.insert(QEMU);
    }
    // The other system emulators the QEMU boards need: qemu-system-riscv32 (qemu-system-misc).
    for board in boards.qemu_boards() {
        let system = crate::qemu::system(&board.target);
        if shell::which(system.program).is_none() {
            packages.insert(system.package);
        }
    }
    Ok(packages)
}

/// apt-get update, then install `packages`, as root; otherwise the commands to run, and an error.
fn install_packages(packages: &BTreeSet<&'static str>) -> Result<()> {
    let mut install: Vec<String> = packages.iter().map(|p| p.to_string()).collect();
    let root = shell::is_root();
    if root {
        shell::run(Command::new("apt-get").args(["update", "-q"]))?;
    }
    let mut downgrade = false;
    if packages.iter().any(|p| p.starts_with("qemu-system-")) {
        for pin in qemu_pins() {
            install.push(pin);
            downgrade = true;
        }
    }
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd.args(["install", "-y", "-q", "--no-install-recommends"]);
    if downgrade {
        cmd.arg("--allow-downgrades");
    }
    cmd.args(&install);
    if !root {
        bail!(
            "installing Debian packages needs root; run:\n  sudo apt-get update\n  sudo {}\nthen \
             `cargo xtask setup` again",
            shell::show(&cmd)
        );
    }
    shell::run(&mut cmd)
}

/// `pkg=version` for each installed QEMU package whose version differs from the candidate of
/// qemu-system-arm (bookworm's 7.2 against backports' 10.x), so that apt installs matching ones.
fn qemu_pins() -> Vec<String> {
    let candidate =
        shell::output(Command::new("apt-cache").args(["policy", QEMU])).and_then(|out| {
            out.lines()
                .find_map(|l| l.trim().strip_prefix("Candidate:").map(|v| v.trim().to_string()))
        });
    let Some(candidate) = candidate.filter(|c| c != "(none)") else { return Vec::new() };
    // Built from the same source as qemu-system-arm for the same architecture, so same version.
    ["qemu-utils", "qemu-block-extra"]
        .into_iter()
        .filter_map(|pkg| {
            let status = shell::output(Command::new("dpkg-query").args([
                "-W",
                "-f=${Status}|${Version}",
                pkg,
            ]))?;
            let (state, version) = status.split_once('|')?;
            (state.ends_with(" installed") && version != candidate)
                .then(|| format!("{pkg}={candidate}"))
        })
        .collect()
}

/// Whether the pinned defmt-print is installed.
fn defmt_print_ok() -> bool {
    shell::which("defmt-print")
        .and_then(|p| shell::output(Command::new(p).arg("--version")))
        .is_some_and(|v| v.split_whitespace().any(|w| w == DEFMT_PRINT_VERSION))
}

/// rustfmt and clippy for the host, which `cargo xtask ci` runs.
fn missing_rustup_components() -> Vec<String> {
    ["fmt", "clippy"]
        .into_iter()
        .filter(|sub| {
            shell::output(Command::new(toolchain::host_cargo()).args([sub, "--version"])).is_none()
        })
        .map(|sub| if sub == "fmt" { "rustfmt".to_string() } else { sub.to_string() })
        .collect()
}

/// Makes the test Python environment afresh: a virtual environment from the `python3` on PATH
/// (only its standard library is used), then the pinned requirements, then the stamp that says
/// which requirements it holds.
fn make_python_env(root: &Path) -> Result<()> {
    let base = shell::which("python3")
        .context("no python3 on PATH: install the Debian packages python3 and python3-venv")?;
    let venv = mote_pyenv::venv_dir(root);
    let make = || shell::run(Command::new(&base).arg("-m").arg("venv").arg("--clear").arg(&venv));
    if make().is_err() {
        // Debian's python3 makes virtual environments only with python3-venv installed.
        if !shell::is_root() {
            bail!(
                "python3 cannot make a virtual environment: install python3-venv \
                 (sudo apt-get install python3-venv), then `cargo xtask setup` again"
            );
        }
        let mut install = Command::new("apt-get");
        install.env("DEBIAN_FRONTEND", "noninteractive");
        install.args(["install", "-y", "-q", "--no-install-recommends", "python3-venv"]);
        shell::run(&mut install)?;
        make()?;
    }
    let requirements = mote_pyenv::requirements(root)?;
    shell::run(
        Command::new(mote_pyenv::interpreter_path(root))
            .current_dir(root)
            .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(mote_pyenv::REQUIREMENTS),
    )
    .context("installing the test Python packages")?;
    mote_pyenv::stamp(root, &requirements)
        .with_context(|| format!("cannot write the stamp in {}", venv.display()))?;
    Ok(())
}
