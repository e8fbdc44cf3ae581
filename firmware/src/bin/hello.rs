//! Hello from mote: which mote-core, which board, which clock; then a clean exit.
#![no_std]
#![no_main]

use mote_firmware::{self as fw, BOARD};

#[mote_firmware::entry]
fn main() -> ! {
    fw::init();
    defmt::info!("mote-core {=str}", mote_core::VERSION);
    defmt::info!(
        "board {=str}: {=str}, {=str}, flash {=u32} KiB at {=u32:#010x}, RAM {=u32} KiB at {=u32:#010x}",
        BOARD.name,
        BOARD.cpu,
        BOARD.target,
        BOARD.flash.size / 1024,
        BOARD.flash.origin,
        BOARD.ram.size / 1024,
        BOARD.ram.origin
    );
    defmt::info!(
        "clock: {=str} at {=u32} Hz, from {=str}",
        fw::systick::COUNTER,
        BOARD.clock_hz,
        BOARD.clock_source
    );
    defmt::info!("ticks since init: {=u64}", fw::systick::now());
    fw::finish(fw::ExitCode::Success)
}
