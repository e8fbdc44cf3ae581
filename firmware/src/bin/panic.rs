//! Panics on purpose: its golden file pins that a panic prints where it happened and exits with
//! `ExitCode::Panic` (101).
#![no_std]
#![no_main]

use mote_firmware as fw;

#[mote_firmware::entry]
fn main() -> ! {
    fw::init();
    let table = [1u32, 2, 3];
    // black_box: an index the compiler cannot prove out of bounds, so the check runs on the core.
    let index = core::hint::black_box(7);
    defmt::info!("reading element {=usize} of {=usize}", index, table.len());
    let value = table[index];
    defmt::info!("unreachable: {=u32}", value);
    fw::exit(fw::ExitCode::Success)
}
