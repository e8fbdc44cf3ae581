//! Executes an undefined instruction on purpose: its golden file pins that a HardFault prints its
//! cause and exits with `ExitCode::HardFault` (102).
#![no_std]
#![no_main]

use mote_firmware as fw;

#[mote_firmware::entry]
fn main() -> ! {
    fw::init();
    defmt::info!("executing an undefined instruction");
    // UsageFault (UNDEFINSTR), escalated to HardFault since UsageFault is not enabled.
    #[cfg(target_arch = "arm")]
    cortex_m::asm::udf();
    // An illegal instruction exception.
    #[cfg(target_arch = "riscv32")]
    // SAFETY: traps; the exception handler ends the run.
    unsafe {
        core::arch::asm!("unimp", options(noreturn))
    }
}
