//! `cargo xtask setup`: make this machine able to build, run and test everything.
//!
//! Detects each piece, installs only what is missing, and says one line when nothing is:
//! - Debian packages (apt-get, as root; otherwise it prints the command and fails): the Debian
//!   toolchain route (rustc-web, cargo-web, rust-web-src, rust-web-clippy, lld-19) when rustup
//!   lacks a bare-metal target, and qemu-system-arm;
//! - defmt-print, pinned, with `cargo install --locked`;
//! - for `cargo xtask fuzz`: rustup's nightly toolchain (minimal profile) and cargo-fuzz (`cargo
//!   install --locked`);
//! - the light Python test dependencies of tools/py/requirements-test.txt, with pip.
//!
//! On Debian bookworm with qemu-utils from backports (10.x), qemu-system-arm 7.2 cannot be
//! installed beside it: setup pins qemu-utils (and qemu-block-extra, if present) to
//! qemu-system-arm's version, a downgrade apt is told to allow.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::qemu::DEFMT_PRINT_VERSION;
use crate::toolchain::{self, Job, CORE_TARGETS};
use crate::{boards, fuzz, shell};

/// Options of `cargo xtask setup`.
#[derive(Args)]
pub struct SetupArgs {
    /// Only report what is missing; install nothing (exit 1 if anything is).
    #[arg(long)]
    check: bool,
}

/// The Python requirements file, from the repository root.
const PY_REQUIREMENTS: &str = "tools/py/requirements-test.txt";
/// QEMU's Arm system emulator, and the Debian package of it.
const QEMU: &str = "qemu-system-arm";

/// Runs the setup.
pub fn run(root: &Path, args: &SetupArgs) -> Result<()> {
    let apt = missing_packages(root)?;
    let defmt_print = !defmt_print_ok();
    let python = missing_python(root)?;
    let components = missing_rustup_components();
    let nightly = !fuzz::nightly_ok();
    let cargo_fuzz = !fuzz::cargo_fuzz_ok();
    if apt.is_empty()
        && !defmt_print
        && python.is_empty()
        && components.is_empty()
        && !nightly
        && !cargo_fuzz
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
    if !python.is_empty() {
        missing.push(format!("Python packages {}", python.join(" ")));
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
    if !python.is_empty() {
        let result = python_bin()
            .context("no python3: install the Debian package python3-pip")
            .and_then(|python| {
                shell::run(
                    Command::new(python)
                        .current_dir(root)
                        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"])
                        .arg("-r")
                        .arg(PY_REQUIREMENTS),
                )
            });
        if let Err(e) = result {
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
    if packages.contains(QEMU) {
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

fn python_bin() -> Option<std::path::PathBuf> {
    shell::which("python3")
}

/// The pinned Python requirements that are not installed at their version.
fn missing_python(root: &Path) -> Result<Vec<String>> {
    let path = root.join(PY_REQUIREMENTS);
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let pins: Vec<(&str, &str)> = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.split_once("==").with_context(|| format!("{PY_REQUIREMENTS}: pin {l:?} with =="))
        })
        .collect::<Result<_>>()?;
    let Some(python) = python_bin() else {
        return Ok(pins.iter().map(|(name, v)| format!("{name}=={v}")).collect());
    };
    let script = "import sys, importlib.metadata as m\n\
                  for pin in sys.argv[1:]:\n    \
                      name, version = pin.split('==')\n    \
                      try: ok = m.version(name) == version\n    \
                      except m.PackageNotFoundError: ok = False\n    \
                      if not ok: print(pin)\n";
    let mut cmd = Command::new(python);
    cmd.arg("-c").arg(script);
    cmd.args(pins.iter().map(|(name, v)| format!("{name}=={v}")));
    let out = shell::output(&mut cmd).context("python3 could not check the installed packages")?;
    Ok(out.lines().map(str::to_string).collect())
}
