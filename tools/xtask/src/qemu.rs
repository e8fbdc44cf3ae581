//! Running a firmware binary in QEMU: `-icount shift=0` (deterministic SysTick counts),
//! semihosting for output and exit, the defmt stream decoded by `defmt-print`, the result compared
//! with a golden file.
//!
//! Golden files live at `firmware/golden/<bin>/<board>.out`: the decoded lines, then
//! `exit <code>`. A file there registers a test: `cargo xtask ci` runs every one of them, and
//! `cargo xtask qemu --board B --bin X --bless` writes one.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::boards::{Board, Boards};
use crate::firmware::{self, Options};
use crate::{console, golden, shell};

/// Seconds before a run that has not exited is killed.
pub const DEFAULT_TIMEOUT_SECS: u64 = 300;
/// The defmt-print version that `cargo xtask setup` installs.
pub const DEFMT_PRINT_VERSION: &str = "1.2.0";
/// Log level and message only: locations would change with every edit of a source line.
pub const LOG_FORMAT: &str = "{L} {s}";

/// What to do with the golden file.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Golden {
    /// Compare, if there is one.
    Compare,
    /// Write it from this run.
    Bless,
    /// Leave it alone.
    Ignore,
}

/// Where the golden output of `bin` on `board` lives.
pub fn golden_path(root: &Path, bin: &str, board: &str) -> PathBuf {
    root.join("firmware/golden").join(bin).join(format!("{board}.out"))
}

/// Every registered golden run: (board, binary) for each golden file of a QEMU board.
pub fn golden_runs<'b>(root: &Path, boards: &'b Boards) -> Result<Vec<(&'b Board, String)>> {
    let mut runs = Vec::new();
    for board in boards.qemu_boards() {
        for bin in firmware::binaries(root)? {
            if golden_path(root, &bin, &board.name).is_file() {
                runs.push((board, bin));
            }
        }
    }
    Ok(runs)
}

/// Builds `bin` for `board`, runs it, handles its golden file; returns the run (its log and the
/// firmware's exit code). A golden mismatch is an error.
pub fn build_and_run(
    root: &Path,
    board: &Board,
    bin: &str,
    options: &Options,
    golden_mode: Golden,
    timeout_secs: u64,
) -> Result<Run> {
    if board.qemu.is_none() {
        bail!(
            "board {} does not run in QEMU; flash it with `probe-rs run --chip {} <elf>`",
            board.name,
            board.probe_rs_chip.as_deref().unwrap_or("<chip>")
        )
    }
    let built =
        firmware::build(root, board, &Options { bin: Some(bin.to_string()), ..options.clone() })?;
    let elf = &built.elfs[0];
    let run = run(board, elf, Duration::from_secs(timeout_secs))?;
    let transcript = format!("{}exit {}\n", run.log, run.code);

    let path = golden_path(root, bin, &board.name);
    match golden_mode {
        Golden::Ignore => {}
        Golden::Bless => {
            let old = fs::read_to_string(&path).unwrap_or_default();
            fs::create_dir_all(path.parent().unwrap())?;
            fs::write(&path, golden::bless(&old, &transcript))?;
            println!("blessed {}", path.display());
        }
        Golden::Compare if !path.exists() => {
            println!("(no golden file {}; --bless writes one)", path.display());
        }
        Golden::Compare => {
            let expected = fs::read_to_string(&path)?;
            let diff = golden::differences(&expected, &transcript);
            if !diff.is_empty() {
                let mut report = String::new();
                for (line, want, got) in diff {
                    let want = want.unwrap_or_else(|| "(nothing)".into());
                    let got = got.unwrap_or_else(|| "(nothing)".into());
                    report.push_str(&format!(
                        "  line {line}:\n    expected: {want}\n    got:      {got}\n"
                    ));
                }
                bail!(
                    "{bin} on {} differs from {}:\n{report}  (if the change is intended: cargo xtask \
                     qemu --board {} --bin {bin} --bless)",
                    board.name,
                    path.display(),
                    board.name
                );
            }
            println!("matches {}", path.display());
        }
    }
    Ok(run)
}

/// Builds `bin` (a console binary: `chat`) for `board`, runs it in QEMU with its console on
/// `input`, and returns what the console and the log said.
pub fn build_and_converse(
    root: &Path,
    board: &Board,
    bin: &str,
    options: &Options,
    input: console::Input,
    echo: bool,
    timeout_secs: u64,
) -> Result<console::Session> {
    if board.qemu.is_none() {
        bail!("board {} does not run in QEMU", board.name)
    }
    let built =
        firmware::build(root, board, &Options { bin: Some(bin.to_string()), ..options.clone() })?;
    console::run(board, &built.elfs[0], input, echo, Duration::from_secs(timeout_secs))
}

/// A finished run.
pub struct Run {
    /// The decoded log, one line per message.
    pub log: String,
    /// The firmware's exit code (QEMU's exit status).
    pub code: i32,
}

/// QEMU's system emulator for a board's target: its program, its Debian package, and what every
/// run of it adds to the board's machine and cpu.
pub struct System {
    /// The program: `qemu-system-arm` or `qemu-system-riscv32`.
    pub program: &'static str,
    /// The Debian package that installs it.
    pub package: &'static str,
    /// Arguments of every run: RISC-V's virt starts the image itself, without OpenSBI.
    pub args: &'static [&'static str],
}

/// The emulator for `target`: qemu-system-riscv32 for a `riscv32` triple, else qemu-system-arm.
pub fn system(target: &str) -> System {
    if target.starts_with("riscv32") {
        System {
            program: "qemu-system-riscv32",
            package: "qemu-system-misc",
            args: &["-bios", "none"],
        }
    } else {
        System { program: "qemu-system-arm", package: "qemu-system-arm", args: &[] }
    }
}

/// Runs `elf` on `board`'s QEMU machine, decoding its output; prints the log as it comes.
pub fn run(board: &Board, elf: &Path, timeout: Duration) -> Result<Run> {
    let Some(mote_boards::Qemu { machine, cpu }) = &board.qemu else {
        bail!("board {} does not run in QEMU", board.name)
    };
    let system = system(&board.target);
    let qemu_bin = shell::which(system.program).with_context(|| {
        format!(
            "no {}: install the Debian package {} (`cargo xtask setup`)",
            system.program, system.package
        )
    })?;
    let decoder_bin = shell::which("defmt-print").with_context(|| {
        format!(
            "no defmt-print: `cargo install defmt-print --locked --version {DEFMT_PRINT_VERSION}` \
             (`cargo xtask setup` does it)"
        )
    })?;
    let mut qemu = Command::new(qemu_bin);
    qemu.args(["-machine", machine, "-cpu", cpu, "-nographic"])
        .args(system.args)
        .args(["-semihosting-config", "enable=on,target=native"])
        .args(["-icount", "shift=0"])
        .arg("-kernel")
        .arg(elf);
    let mut decoder = Command::new(decoder_bin);
    decoder.arg("-e").arg(elf).args(["--log-format", LOG_FORMAT]);
    println!("$ {} | {}", shell::show(&qemu), shell::show(&decoder));

    let mut qemu = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {}", system.program))?;
    let frames = qemu.stdout.take().expect("piped");
    let mut decoder = decoder
        .stdin(Stdio::from(frames))
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start defmt-print")?;
    let decoded = decoder.stdout.take().expect("piped");
    let printer = thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(decoded).lines().map_while(Result::ok) {
            println!("{line}");
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    let mut qemu_stderr = qemu.stderr.take().expect("piped");
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = qemu_stderr.read_to_string(&mut text);
        text
    });

    let start = Instant::now();
    let status = loop {
        if let Some(status) = qemu.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = qemu.kill();
            let _ = qemu.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let decoder_status = decoder.wait()?;
    let log = printer.join().expect("printer thread");
    let stderr = stderr.join().expect("stderr thread");
    let Some(status) = status else {
        bail!("{} did not exit within {} s (--timeout)", elf.display(), timeout.as_secs());
    };
    if !stderr.trim().is_empty() {
        eprintln!("{}", stderr.trim_end());
    }
    if !decoder_status.success() {
        bail!("defmt-print failed ({decoder_status}) on the output of {}", elf.display());
    }
    let code =
        status.code().with_context(|| format!("{} was killed by a signal", system.program))?;
    println!("{} exited with {code}", elf.file_name().unwrap_or_default().to_string_lossy());
    Ok(Run { log, code })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_qemu_board_has_hello_and_kernels_golden_files() {
        // hello: the board boots and logs; kernels: the fast kernels match the portable one there.
        let root = crate::repo_root();
        let boards = crate::boards::load(&root).unwrap();
        for board in boards.qemu_boards() {
            for bin in ["hello", "kernels"] {
                let path = golden_path(&root, bin, &board.name);
                assert!(
                    path.is_file(),
                    "missing {} (cargo xtask qemu --board {} --bin {bin} --bless)",
                    path.display(),
                    board.name
                );
            }
        }
    }
}
