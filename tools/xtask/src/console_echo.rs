//! `cargo xtask console-echo --board B`: the board's serial console driver, end to end in QEMU.
//!
//! Builds `console_echo`, runs it with the board's first serial port on a Unix socket (QEMU waits
//! for the connection before it starts the core), waits for its `ready` line, sends it lines (ASCII, multi-byte UTF-8, CR LF,
//! an empty line, one longer than its buffer, then `exit`), and checks that every reply comes back
//! as the driver must deliver it, byte for byte, and that the firmware exits with success. The
//! defmt log (semihosting, QEMU's standard output) is decoded after the run.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use clap::Args;

use crate::boards::Board;
use crate::firmware::{self, Options};
use crate::qemu::DEFMT_PRINT_VERSION;
use crate::shell;

/// The binary.
const BIN: &str = "console_echo";
/// How long the whole exchange may take.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Options of `cargo xtask console-echo`.
#[derive(Args)]
pub struct ConsoleEchoArgs {
    /// A QEMU board with a console driver (default: netduinoplus2).
    #[arg(long, default_value = "netduinoplus2")]
    pub board: String,
}

/// What is sent, and what must come back.
fn exchange() -> (Vec<u8>, Vec<u8>) {
    let long = "x".repeat(200);
    let input = format!("hello\nÜber 😀 grüße\r\n\n{long}\nafter the long one\nexit\n");
    let expected = "echo: hello\necho: Über 😀 grüße\necho: \n\
                    error: line longer than 128 bytes\necho: after the long one\nbye\n";
    (input.into_bytes(), expected.as_bytes().to_vec())
}

/// Builds and runs the check on `board`.
pub fn run(root: &Path, board: &Board) -> Result<()> {
    let Some(qemu) = &board.qemu else {
        bail!("board {} does not run in QEMU: the console check needs QEMU", board.name)
    };
    let options = Options { release: true, bin: Some(BIN.to_string()), ..Options::default() };
    let elf = firmware::build(root, board, &options)?.elfs.remove(0);
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

    let dir = std::env::temp_dir().join(format!("mote-console-echo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("console.sock");
    let _ = std::fs::remove_file(&socket);
    let mut cmd = Command::new(qemu_bin);
    cmd.args(["-machine", &qemu.machine, "-cpu", &qemu.cpu, "-display", "none"])
        .args(system.args)
        .args(["-monitor", "none", "-semihosting-config", "enable=on,target=native"])
        .args(["-icount", "shift=0", "-chardev"])
        .arg(format!("socket,id=console,path={},server=on,wait=on", socket.display()))
        .args(["-serial", "chardev:console", "-kernel"])
        .arg(&elf);
    println!("$ {}", shell::show(&cmd));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let frames = thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });

    let result = talk(&socket);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_dir_all(&dir);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let log = decode(&decoder_bin, &elf, &frames.join().expect("reader thread"))?;
    print!("{log}");
    let received = result?;
    let Some(status) = status else { bail!("{BIN} did not exit within {} s", TIMEOUT.as_secs()) };
    // QEMU announces that it waits for the connection; anything else is a complaint.
    let complaints: Vec<&str> =
        stderr.lines().filter(|l| !l.contains("QEMU waiting for connection")).collect();
    ensure!(complaints.is_empty(), "{program}: {}", complaints.join("\n"));

    let (_, expected) = exchange();
    ensure!(
        received == expected,
        "the console answered\n{}\ninstead of\n{}",
        String::from_utf8_lossy(&received),
        String::from_utf8_lossy(&expected)
    );
    ensure!(status.code() == Some(0), "{BIN} on {} exited with {status}", board.name);
    println!(
        "console on {}: {} bytes sent, every reply as expected",
        board.name,
        exchange().0.len()
    );
    Ok(())
}

/// Connects to the console, sends the input and reads until the firmware's `bye` line.
fn talk(socket: &Path) -> Result<Vec<u8>> {
    let start = Instant::now();
    let mut stream = loop {
        match UnixStream::connect(socket) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < Duration::from_secs(10) => {
                thread::sleep(Duration::from_millis(20))
            }
            Err(e) => bail!("cannot connect to QEMU's console at {}: {e}", socket.display()),
        }
    };
    stream.set_read_timeout(Some(TIMEOUT))?;
    // QEMU's USART drops what arrives before the firmware has turned it on: wait for its word.
    let ready = read_until(&mut stream, Vec::new(), b"\n")?;
    ensure!(ready == b"ready\n", "the console began with {:?}", String::from_utf8_lossy(&ready));
    let (input, _) = exchange();
    stream.write_all(&input).context("cannot write to the console")?;
    read_until(&mut stream, Vec::new(), b"bye\n")
}

/// Appends what the console sends to `received` until it ends with `end` (or the console closes).
fn read_until(stream: &mut UnixStream, mut received: Vec<u8>, end: &[u8]) -> Result<Vec<u8>> {
    let mut byte = [0u8; 1];
    while !received.ends_with(end) {
        if stream.read(&mut byte).context("no answer from the console")? == 0 {
            break;
        }
        received.push(byte[0]);
    }
    Ok(received)
}

/// The defmt log of a finished run.
fn decode(decoder: &Path, elf: &Path, frames: &[u8]) -> Result<String> {
    let mut child = Command::new(decoder)
        .arg("-e")
        .arg(elf)
        .args(["--log-format", "{L} {s}"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start defmt-print")?;
    let mut stdin = child.stdin.take().expect("piped");
    let frames = frames.to_vec();
    let writer = thread::spawn(move || stdin.write_all(&frames));
    let out = child.wait_with_output()?;
    let _ = writer.join();
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
