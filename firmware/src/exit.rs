//! Ending a run with a status the host sees.
//!
//! Through semihosting on every board: QEMU exits with the code (SYS_EXIT_EXTENDED), and so does
//! `probe-rs run` on a real board. Without a debugger attached, the semihosting breakpoint faults
//! instead, and the core stops there, which is also a fine end for a run nobody watches.

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
    /// A HardFault: the core trapped (bad address, undefined instruction, ...).
    HardFault = 102,
    /// The stack reached its guard band ([`crate::stack::GUARD`]): statics may be corrupt.
    StackOverflow = 103,
}

/// Ends the run with `code`.
pub fn exit(code: ExitCode) -> ! {
    semihosting::process::exit(code as i32)
}
