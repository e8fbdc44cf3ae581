//! A firmware binary's serial console in QEMU, connected to this terminal or to a script: the
//! `chat` binary.
//!
//! QEMU's first serial port (the board's console UART) goes to a Unix socket that xtask relays:
//! lines from standard input (typed, or piped) go in, the console's output comes out on standard
//! output. Semihosting keeps QEMU's standard output for the defmt frames, which `defmt-print`
//! decodes to standard error. At the end of the input, xtask waits until the console has printed
//! one prompt marker per line sent (each line gets exactly one reply, then the marker), then
//! ends QEMU: the firmware itself never exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::boards::Board;
use crate::qemu::{DEFMT_PRINT_VERSION, LOG_FORMAT};
use crate::shell;

/// What the console prints when it waits for a line (mote-chat's `PROMPT_MARKER`), at the start
/// of a line.
pub const PROMPT_MARKER: &str = "> ";

/// Where the console's input comes from.
pub enum Input {
    /// This process's standard input, line by line, relayed as it comes (a person or a pipe).
    Stdin,
    /// These lines (parity), sent at once.
    Text(String),
}

/// A finished console session.
pub struct Session {
    /// Everything the console printed.
    pub transcript: String,
    /// The decoded defmt log.
    pub log: String,
}

/// How many replies `transcript` holds: prompt markers at the start of a line, the boot's one
/// included.
pub fn markers(transcript: &str) -> usize {
    let at_start = usize::from(transcript.starts_with(PROMPT_MARKER));
    at_start + transcript.matches(&format!("\n{PROMPT_MARKER}")).count()
}

/// Runs `elf` on `board`'s QEMU machine with its console relayed; `echo` copies the console to
/// standard output as it comes. `timeout` bounds the wait for the replies after the input ended.
pub fn run(
    board: &Board,
    elf: &Path,
    input: Input,
    echo: bool,
    timeout: Duration,
) -> Result<Session> {
    let Some(mote_boards::Qemu { machine, cpu }) = &board.qemu else {
        bail!("board {} does not run in QEMU", board.name)
    };
    let system = crate::qemu::system(&board.target);
    let program = system.program;
    let qemu_bin = shell::which(program).with_context(|| {
        format!("no {program}: install the Debian package {} (`cargo xtask setup`)", system.package)
    })?;
    let decoder_bin = shell::which("defmt-print").with_context(|| {
        format!(
            "no defmt-print: `cargo install defmt-print --locked --version {DEFMT_PRINT_VERSION}`"
        )
    })?;
    let dir = tempfile::tempdir()?;
    let socket = dir.path().join("console.sock");
    let mut qemu = Command::new(qemu_bin);
    qemu.args(["-machine", machine, "-cpu", cpu, "-nographic", "-monitor", "none"])
        .args(system.args)
        .args(["-semihosting-config", "enable=on,target=native"])
        .arg("-chardev")
        .arg(format!("socket,id=console,path={},server=on,wait=on", socket.display()))
        .args(["-serial", "chardev:console"])
        .args(["-icount", "shift=0"])
        .arg("-kernel")
        .arg(elf);
    let mut decoder = Command::new(decoder_bin);
    decoder.arg("-e").arg(elf).args(["--log-format", LOG_FORMAT]);
    eprintln!("$ {} | {} >&2", shell::show(&qemu), shell::show(&decoder));

    let mut qemu = qemu
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let frames = qemu.stdout.take().context("qemu's stdout")?;
    let mut decoder = decoder
        .stdin(Stdio::from(frames))
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start defmt-print")?;
    let decoded = decoder.stdout.take().context("defmt-print's stdout")?;
    let logger = thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(decoded).lines().map_while(Result::ok) {
            eprintln!("{line}");
            log.push_str(&line);
            log.push('\n');
        }
        log
    });

    let result = converse(&mut qemu, &socket, input, echo, timeout);
    let _ = qemu.kill();
    let _ = qemu.wait();
    let _ = decoder.wait();
    let log = logger.join().unwrap_or_default();
    let transcript = result?;
    Ok(Session { transcript, log })
}

/// Connects to the console, sends the input, and returns the console's output once every line
/// has been answered.
fn converse(
    qemu: &mut Child,
    socket: &Path,
    input: Input,
    echo: bool,
    timeout: Duration,
) -> Result<String> {
    let start = Instant::now();
    let mut stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(e) if start.elapsed() > Duration::from_secs(10) => {
                bail!("cannot connect to QEMU's console at {}: {e}", socket.display())
            }
            Err(_) => {
                if let Some(status) = qemu.try_wait()? {
                    bail!("QEMU ended before its console opened ({status})");
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    };
    let output = Arc::new(Mutex::new(Vec::<u8>::new()));
    let mut reader = stream.try_clone()?;
    let sink = Arc::clone(&output);
    thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut stdout = std::io::stdout();
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            if echo {
                let _ = stdout.write_all(&buf[..n]);
                let _ = stdout.flush();
            }
            if let Ok(mut out) = sink.lock() {
                out.extend_from_slice(&buf[..n]);
            }
        }
    });

    // Nothing is sent before the boot's prompt marker: a UART drops what arrives before the
    // firmware turns its receiver on (QEMU's STM32 USART does), as a real one would.
    let booting = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&output.lock().map_err(|_| anyhow::anyhow!("lock"))?)
            .into_owned();
        if markers(&text) >= 1 {
            break;
        }
        if let Some(status) = qemu.try_wait()? {
            bail!("QEMU ended ({status}) before the console was ready:\n{text}");
        }
        if booting.elapsed() > timeout {
            bail!(
                "the console showed no prompt within {} s (--timeout):\n{text}",
                timeout.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }

    let mut lines_sent = 0usize;
    let mut send = |stream: &mut UnixStream, line: &str| -> Result<()> {
        let line = line.trim_end_matches(['\n', '\r']);
        stream.write_all(line.as_bytes())?;
        stream.write_all(b"\n")?;
        lines_sent += 1;
        Ok(())
    };
    match input {
        Input::Text(text) => {
            for line in text.lines() {
                send(&mut stream, line)?;
            }
        }
        Input::Stdin => {
            for line in std::io::stdin().lock().lines() {
                send(&mut stream, &line?)?;
            }
        }
    }

    // Every line gets one reply and one marker, after the boot's marker.
    let wanted = lines_sent + 1;
    let waiting = Instant::now();
    loop {
        let text = String::from_utf8_lossy(&output.lock().map_err(|_| anyhow::anyhow!("lock"))?)
            .into_owned();
        if markers(&text) >= wanted {
            return Ok(text);
        }
        if let Some(status) = qemu.try_wait()? {
            bail!("QEMU ended ({status}) before the console answered every line:\n{text}");
        }
        if waiting.elapsed() > timeout {
            bail!(
                "the console answered {} of {lines_sent} lines within {} s (--timeout):\n{text}",
                markers(&text).saturating_sub(1),
                timeout.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_count_at_line_starts_only() {
        assert_eq!(markers("banner\n> settings: x\n> a > b\n> "), 3);
        assert_eq!(markers("> "), 1);
        assert_eq!(markers("banner\n"), 0);
    }
}
