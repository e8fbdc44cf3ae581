//! Executes an undefined instruction on purpose: its golden file pins that a HardFault prints its
//! cause and exits with `ExitCode::HardFault` (102).
#![no_std]
#![no_main]

use mote_firmware as fw;

#[cortex_m_rt::entry]
fn main() -> ! {
    fw::init();
    defmt::info!("executing an undefined instruction");
    // UsageFault (UNDEFINSTR), escalated to HardFault since UsageFault is not enabled.
    cortex_m::asm::udf()
}
