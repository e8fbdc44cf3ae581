//! Ending a run with a status the host sees, and without faulting when nobody is watching.
//!
//! On RISC-V (QEMU's `virt`, the only RISC-V board so far) the run ends through the machine's
//! test device ([`TEST_DEVICE`]), whose writes end QEMU with an exit status. On Cortex-M:
//!
//! Under QEMU (transport `qemu-semihosting`) the run always ends through semihosting
//! (SYS_EXIT_EXTENDED): QEMU exits with the code. On a real board (transport `rtt`) a semihosting
//! call is a breakpoint instruction, which `probe-rs run` turns into its own exit status, and
//! which, with no debugger attached, escalates to a HardFault (and a HardFault that exits would
//! fault again). So there the call is made only when DHCSR.C_DEBUGEN says a debugger is attached;
//! otherwise the core sleeps in a `wfi` loop, its last words already sent over RTT.

use crate::board::Transport;
#[cfg(target_arch = "arm")]
use crate::board::BOARD;

/// Why a run ended; the value is the host's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
#[repr(i32)]
pub enum ExitCode {
    /// The binary did its job.
    Success = 0,
    /// The binary found its own result wrong (a check failed).
    Failure = 1,
    /// A Rust panic (101, as for a panicking Rust program on a desktop).
    Panic = 101,
    /// A HardFault (RISC-V: an exception trap): the core trapped (bad address, undefined
    /// instruction, ...).
    HardFault = 102,
    /// The stack reached its guard band ([`crate::stack::GUARD`]): statics may be corrupt.
    StackOverflow = 103,
}

/// How a run with a given transport and debugger state ends.
#[cfg_attr(target_arch = "riscv32", allow(dead_code))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ending {
    /// Semihosting's exit call: the host's exit status.
    Semihosting,
    /// Sleep forever: no debugger would catch the call.
    Park,
}

/// The one rule: semihosting under QEMU, or on a board a debugger is attached to.
#[cfg_attr(target_arch = "riscv32", allow(dead_code))]
const fn ending(transport: Transport, debugger_attached: bool) -> Ending {
    match transport {
        Transport::QemuSemihosting => Ending::Semihosting,
        Transport::Rtt if debugger_attached => Ending::Semihosting,
        Transport::Rtt => Ending::Park,
    }
}

/// QEMU virt's test device (SiFive's "test finisher"): writing [`FINISHER_PASS`] ends QEMU with
/// status 0, `(status << 16) | FINISHER_FAIL` with that status.
#[cfg(target_arch = "riscv32")]
const TEST_DEVICE: *mut u32 = 0x0010_0000 as *mut u32;
#[cfg(target_arch = "riscv32")]
const FINISHER_PASS: u32 = 0x5555;
#[cfg(target_arch = "riscv32")]
const FINISHER_FAIL: u32 = 0x3333;

/// Ends the run with `code`.
#[cfg(target_arch = "riscv32")]
pub fn exit(code: ExitCode) -> ! {
    let word = match code {
        ExitCode::Success => FINISHER_PASS,
        other => ((other as u32) << 16) | FINISHER_FAIL,
    };
    // SAFETY: the test device's register; the write ends the run.
    unsafe { core::ptr::write_volatile(TEST_DEVICE, word) };
    loop {
        riscv::asm::wfi();
    }
}

/// Ends the run with `code`.
#[cfg(target_arch = "arm")]
pub fn exit(code: ExitCode) -> ! {
    // DHCSR is only read on a real board: QEMU's core has no debugger and reads C_DEBUGEN as 0.
    let attached =
        BOARD.transport == Transport::Rtt && cortex_m::peripheral::DCB::is_debugger_attached();
    match ending(BOARD.transport, attached) {
        Ending::Semihosting => semihosting::process::exit(code as i32),
        Ending::Park => {
            defmt::info!("exit {}: no debugger attached, sleeping", code);
            loop {
                cortex_m::asm::wfi();
            }
        }
    }
}

// The firmware has no test harness: the rule's table is checked at compile time.
const _: () = {
    assert!(matches!(ending(Transport::QemuSemihosting, false), Ending::Semihosting));
    assert!(matches!(ending(Transport::Rtt, true), Ending::Semihosting));
    assert!(matches!(ending(Transport::Rtt, false), Ending::Park));
};
