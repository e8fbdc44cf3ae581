//! `cargo xtask run --board B --bin X`: a real board through a debug probe. Builds the firmware,
//! then `probe-rs run --chip <probe_rs_chip> <elf>` flashes it, resets the core, prints the defmt
//! logs it reads over RTT and exits with the firmware's exit code (semihosting, which the firmware
//! calls only while a debugger is attached). `--dry-run` prints the commands instead.
//!
//! Without probe-rs, or without a probe, it stops before building with one line that says what
//! is missing and how to get it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

use crate::boards::Board;
use crate::firmware::{self, Options};
use crate::shell;

/// The probe-rs-tools version that `cargo xtask setup --probe` installs.
pub const PROBE_RS_VERSION: &str = "0.32.0";
/// What `probe-rs list` prints when no probe is connected.
const NO_PROBES: &str = "No debug probes were found";

/// What `cargo xtask run` does, in order.
pub struct Plan {
    /// The firmware build.
    pub build: Command,
    /// The ELF the build leaves (`firmware/target/<board>/<profile>/<bin>`).
    pub elf: PathBuf,
    /// Flash, run and print the logs.
    pub probe_rs: Command,
}

/// The commands that build `options.bin` for `board` and run it with probe-rs.
pub fn plan(root: &Path, board: &Board, options: &Options) -> Result<Plan> {
    let Some(chip) = &board.probe_rs_chip else {
        bail!(
            "board {name} runs in QEMU, not on a probe: `cargo xtask qemu --board {name}`",
            name = board.name
        )
    };
    let Some(bin) = &options.bin else { bail!("name the binary to run: --bin <name>") };
    let (build, _, _) = firmware::build_command(root, board, options)?;
    let elf = firmware::elf_dir(root, &board.name, options.release).join(bin);
    Ok(Plan { build, probe_rs: probe_rs_run(Path::new("probe-rs"), chip, &elf), elf })
}

/// `probe-rs run --chip <chip> <elf>`, with `program` as probe-rs.
fn probe_rs_run(program: &Path, chip: &str, elf: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(["run", "--chip", chip]).arg(elf);
    cmd
}

/// The dry run's lines: each command as a shell line, in the folder it runs in.
pub fn describe(plan: &Plan) -> Vec<String> {
    [&plan.build, &plan.probe_rs]
        .into_iter()
        .map(|cmd| match cmd.get_current_dir() {
            Some(dir) => format!("cd {} && {}", dir.display(), shell::show(cmd)),
            None => shell::show(cmd),
        })
        .collect()
}

/// `cargo xtask run`: prints the plan, or checks for probe-rs and a probe, builds and runs.
pub fn run(root: &Path, board: &Board, options: &Options, dry_run: bool) -> Result<ExitCode> {
    let plan = plan(root, board, options)?;
    if dry_run {
        for line in describe(&plan) {
            println!("{line}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let probe_rs = shell::which("probe-rs").with_context(|| {
        format!(
            "no probe-rs on PATH: `cargo xtask setup --probe` installs it (cargo install \
             probe-rs-tools --locked --version {PROBE_RS_VERSION})"
        )
    })?;
    let listed =
        Command::new(&probe_rs).arg("list").output().context("cannot run probe-rs list")?;
    let text = String::from_utf8_lossy(&listed.stdout);
    if !listed.status.success() || text.contains(NO_PROBES) {
        bail!(
            "no debug probe found (`probe-rs list`): connect the {}'s debug USB port{}",
            board.name,
            if cfg!(target_os = "linux") {
                ", and check that your user may open it (probe-rs's udev rules)"
            } else {
                ""
            }
        );
    }
    // The same build command, and the copy of the ELF to this board's own path.
    firmware::build(root, board, options)?;
    let chip = board.probe_rs_chip.as_deref().unwrap_or_default();
    let mut cmd = probe_rs_run(&probe_rs, chip, &plan.elf);
    println!("$ {}", shell::show(&cmd));
    let status = cmd.status().context("cannot start probe-rs")?;
    Ok(ExitCode::from(status.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)))
}

/// `cargo install probe-rs-tools`, pinned, for `cargo xtask setup --probe`.
pub fn install_command(cargo: &Path) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.args(["install", "probe-rs-tools", "--locked", "--version", PROBE_RS_VERSION]);
    cmd
}

/// Whether probe-rs is installed.
pub fn installed() -> bool {
    shell::which("probe-rs").and_then(|p| shell::output(Command::new(p).arg("--version"))).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dry_run(board: &str) -> Vec<String> {
        let root = crate::repo_root();
        let boards = crate::boards::load(&root).unwrap();
        let options =
            Options { release: true, bin: Some("hello".to_string()), ..Options::default() };
        describe(&plan(&root, boards.get(board).unwrap(), &options).unwrap())
    }

    #[test]
    fn dry_run_builds_then_runs_with_the_boards_probe_rs_chip() {
        let root = crate::repo_root();
        for (board, chip) in [("nrf52840-dk", "nRF52840_xxAA"), ("nucleo-h743zi", "STM32H743ZITx")]
        {
            let lines = dry_run(board);
            assert_eq!(lines.len(), 2, "{lines:?}");
            let build = &lines[0];
            let in_firmware = format!("cd {} && ", root.join("firmware").display());
            assert!(build.starts_with(&in_firmware), "{build}");
            assert!(build.contains(" build --target thumbv7em-none-eabihf "), "{build}");
            assert!(
                build.contains(&format!(
                    "--no-default-features --features board-{board} --release --bin hello"
                )),
                "{build}"
            );
            let elf = root.join("firmware/target").join(board).join("release/hello");
            assert_eq!(lines[1], format!("probe-rs run --chip {chip} {}", elf.display()));
        }
    }

    #[test]
    fn qemu_boards_and_missing_binaries_are_refused_by_name() {
        let root = crate::repo_root();
        let boards = crate::boards::load(&root).unwrap();
        let options = Options { bin: Some("hello".to_string()), ..Options::default() };
        let err = plan(&root, boards.get("mps2-an386").unwrap(), &options).err().unwrap();
        assert!(err.to_string().contains("runs in QEMU"), "{err}");
        let options = Options { bin: Some("nope".to_string()), ..Options::default() };
        let err = plan(&root, boards.get("nrf52840-dk").unwrap(), &options).err().unwrap();
        assert!(err.to_string().contains("no firmware binary \"nope\""), "{err}");
    }

    #[test]
    fn setup_installs_the_pinned_probe_rs_tools() {
        let cmd = install_command(Path::new("cargo"));
        assert_eq!(
            shell::show(&cmd),
            format!("cargo install probe-rs-tools --locked --version {PROBE_RS_VERSION}")
        );
    }
}
