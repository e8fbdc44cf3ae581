//! The two ways a run dies, each reported with its cause before exiting non-zero: a Rust panic
//! ([`ExitCode::Panic`]) and a HardFault ([`ExitCode::HardFault`]); on RISC-V, an exception trap
//! in its place, reported by its `mcause`, `mepc` and `mtval`.
//!
//! The cause of a HardFault is in the fault status registers of ARMv7-M and ARMv8-M Mainline
//! (CFSR, HFSR, MMFAR, BFAR). ARMv6-M (Cortex-M0/M0+, `thumbv6m`) has none of them: every fault is
//! a HardFault and nothing records why, so there the report is where it happened and the usual
//! suspects (an unaligned word access, a bad address, an undefined instruction).

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

#[cfg(target_feature = "thumb2")]
use cortex_m::peripheral::SCB;
#[cfg(target_arch = "arm")]
use cortex_m_rt::{exception, ExceptionFrame};

use crate::exit::{exit, ExitCode};

/// Set by the first panic: a panic while reporting one must not recurse into the logger.
static PANICKING: AtomicBool = AtomicBool::new(false);

/// Says where the panic happened and, when its message is a plain string, what it says. A message
/// with arguments ("index out of bounds: the len is 3 but the index is 7") is not formatted: that
/// would bring `core::fmt` into every binary (about 1.6 KB of flash); its source line tells.
#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    // A load then a store, not a swap: ARMv6-M has no atomic read-modify-write, and a panic that
    // comes between the two (from an interrupt handler) only prints its message too.
    if !PANICKING.load(Ordering::Relaxed) {
        PANICKING.store(true, Ordering::Relaxed);
        let message = info.message().as_str();
        match (info.location(), message) {
            (Some(at), Some(text)) => {
                defmt::error!("panicked at {=str}:{=u32}: {=str}", at.file(), at.line(), text)
            }
            (Some(at), None) => defmt::error!(
                "panicked at {=str}:{=u32} (a formatted message, left out: see that line)",
                at.file(),
                at.line()
            ),
            (None, Some(text)) => defmt::error!("panicked: {=str}", text),
            (None, None) => defmt::error!("panicked (no location, a formatted message)"),
        }
    }
    exit(ExitCode::Panic)
}

/// Configurable Fault Status Register bits (ARMv7-M/ARMv8-M), the first set one named.
#[cfg(target_feature = "thumb2")]
const CFSR_CAUSES: [(u32, &str); 15] = [
    (1 << 0, "instruction access violation (MemManage IACCVIOL)"),
    (1 << 1, "data access violation (MemManage DACCVIOL)"),
    (1 << 3, "MemManage fault on exception return (MUNSTKERR)"),
    (1 << 4, "MemManage fault on exception entry (MSTKERR)"),
    (1 << 8, "instruction bus error (BusFault IBUSERR)"),
    (1 << 9, "precise data bus error (BusFault PRECISERR)"),
    (1 << 10, "imprecise data bus error (BusFault IMPRECISERR)"),
    (1 << 11, "BusFault on exception return (UNSTKERR)"),
    (1 << 12, "BusFault on exception entry (STKERR)"),
    (1 << 16, "undefined instruction (UsageFault UNDEFINSTR)"),
    (1 << 17, "invalid state, e.g. a branch to an even address (UsageFault INVSTATE)"),
    (1 << 18, "invalid EXC_RETURN (UsageFault INVPC)"),
    (1 << 19, "coprocessor access, e.g. FPU off (UsageFault NOCP)"),
    (1 << 24, "unaligned access (UsageFault UNALIGNED)"),
    (1 << 25, "divide by zero (UsageFault DIVBYZERO)"),
];

/// The first cause that `cfsr` and `hfsr` record, in words.
#[cfg(target_feature = "thumb2")]
fn cause(cfsr: u32, hfsr: u32) -> &'static str {
    if let Some((_, what)) = CFSR_CAUSES.iter().find(|(bit, _)| cfsr & bit != 0) {
        return what;
    }
    if cfsr & (1 << 20) != 0 {
        return "stack overflow (UsageFault STKOF)";
    }
    if hfsr & (1 << 1) != 0 {
        return "vector table read error (HFSR VECTTBL)";
    }
    "unknown (CFSR and HFSR record nothing)"
}

#[cfg(target_feature = "thumb2")]
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    // SAFETY: the fault status registers are read-only here, and nothing else runs.
    let scb = unsafe { &*SCB::PTR };
    let (cfsr, hfsr) = (scb.cfsr.read(), scb.hfsr.read());
    let (mmfar, bfar) = (scb.mmfar.read(), scb.bfar.read());
    defmt::error!(
        "HardFault: {=str} at pc {=u32:#010x} (lr {=u32:#010x}); CFSR {=u32:#010x} HFSR {=u32:#010x} MMFAR {=u32:#010x} BFAR {=u32:#010x}",
        cause(cfsr, hfsr),
        frame.pc(),
        frame.lr(),
        cfsr,
        hfsr,
        mmfar,
        bfar
    );
    exit(ExitCode::HardFault)
}

#[cfg(all(target_arch = "arm", not(target_feature = "thumb2")))]
#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    defmt::error!(
        "HardFault at pc {=u32:#010x} (lr {=u32:#010x}, xPSR {=u32:#010x}); ARMv6-M records no cause: an unaligned word or halfword access, a bad address or an undefined instruction",
        frame.pc(),
        frame.lr(),
        frame.xpsr()
    );
    exit(ExitCode::HardFault)
}

/// The RISC-V exception causes (`mcause` with its interrupt bit clear), by code.
#[cfg(target_arch = "riscv32")]
const EXCEPTION_CAUSES: [&str; 16] = [
    "instruction address misaligned",
    "instruction access fault",
    "illegal instruction",
    "breakpoint",
    "load address misaligned",
    "load access fault",
    "store/AMO address misaligned",
    "store/AMO access fault",
    "environment call from U-mode",
    "environment call from S-mode",
    "reserved",
    "environment call from M-mode",
    "instruction page fault",
    "load page fault",
    "reserved",
    "store/AMO page fault",
];

/// riscv-rt's handler for every exception without one of its own: the trap's cause, where it
/// happened (`mepc`) and its value (`mtval`: the bad address, or the instruction's bits).
#[cfg(target_arch = "riscv32")]
#[export_name = "ExceptionHandler"]
fn exception_handler(frame: &riscv_rt::TrapFrame) -> ! {
    use riscv::register::{mcause, mepc, mtval};
    let cause = mcause::read().bits();
    let what = EXCEPTION_CAUSES.get(cause).copied().unwrap_or("unknown cause");
    defmt::error!(
        "exception: {=str} (mcause {=u32:#x}) at pc {=u32:#010x} (ra {=u32:#010x}); mtval {=u32:#010x}",
        what,
        cause as u32,
        mepc::read() as u32,
        frame.ra as u32,
        mtval::read() as u32
    );
    exit(ExitCode::HardFault)
}
