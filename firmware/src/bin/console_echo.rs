//! The serial console, end to end: it says `ready`, then every line received is written back as
//! `echo: <line>`, until the line `exit`. `cargo xtask console-echo --board B` feeds it lines in QEMU and checks the
//! replies; on a board without a console driver it says so and fails.
#![no_std]
#![no_main]

use mote_firmware::{self as fw, ExitCode, BOARD};

/// The first line: the console is on and listening.
#[cfg(feature = "console")]
const READY: &[u8] = b"ready\n";
/// The longest line echoed whole; the rest of a longer one is dropped and reported.
#[cfg(feature = "console")]
const LINE: usize = 128;

#[mote_firmware::entry]
fn main() -> ! {
    fw::init();
    fw::finish(echo())
}

#[cfg(feature = "console")]
fn echo() -> ExitCode {
    use embedded_io::{Read, Write};
    use mote_firmware::console::Console;

    let mut console = Console::new();
    defmt::info!("console echo on {=str}: a line `exit` ends the run", BOARD.name);
    // Bytes that arrive before the UART is on are lost: the host waits for this line.
    if console.write_all(READY).is_err() {
        return ExitCode::Failure;
    }
    let mut line = [0u8; LINE];
    let (mut len, mut too_long, mut lines) = (0usize, false, 0u32);
    let mut chunk = [0u8; 16];
    loop {
        let n = match console.read(&mut chunk) {
            Ok(n) => n,
            Err(e) => {
                defmt::warn!("read: {}", e);
                (len, too_long) = (0, false);
                if console.write_all(b"error: a byte was lost; line dropped\n").is_err() {
                    return ExitCode::Failure;
                }
                continue;
            }
        };
        for &byte in &chunk[..n] {
            if byte == b'\r' {
                continue;
            }
            if byte != b'\n' {
                match line.get_mut(len) {
                    Some(slot) => *slot = byte,
                    None => too_long = true,
                }
                len = (len + 1).min(LINE + 1);
                continue;
            }
            lines += 1;
            let text = &line[..len.min(LINE)];
            defmt::info!("line {=u32}: {=usize} bytes", lines, len.min(LINE));
            let reply = if too_long {
                console.write_all(b"error: line longer than 128 bytes\n")
            } else if text == b"exit" {
                return match console.write_all(b"bye\n").and_then(|()| console.flush()) {
                    Ok(()) => ExitCode::Success,
                    Err(_) => ExitCode::Failure,
                };
            } else {
                console
                    .write_all(b"echo: ")
                    .and_then(|()| console.write_all(text))
                    .and_then(|()| console.write_all(b"\n"))
            };
            if reply.is_err() {
                return ExitCode::Failure;
            }
            (len, too_long) = (0, false);
        }
    }
}

#[cfg(not(feature = "console"))]
fn echo() -> ExitCode {
    defmt::error!("board {=str} has no console driver (firmware/src/console/)", BOARD.name);
    ExitCode::Failure
}
