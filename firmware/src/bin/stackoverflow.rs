//! Grows the stack into its guard band on purpose: its golden file pins that a run whose stack
//! reached the guard is reported as a stack overflow and exits with `ExitCode::StackOverflow`
//! (103) rather than passing with possibly corrupt statics.
#![no_std]
#![no_main]

use mote_firmware::{self as fw, ExitCode};

/// Recurses, each frame holding a painted-over buffer, until the stack pointer is inside the
/// guard band; returns a value that depends on every frame so none is optimized away.
#[inline(never)]
fn descend(depth: u32, guard_top: usize) -> u32 {
    let mut frame = [0u32; 32];
    frame[0] = depth;
    let frame = core::hint::black_box(&mut frame);
    let sp = fw::stack::pointer();
    let below = if sp > guard_top { descend(depth + 1, guard_top) } else { depth };
    below.wrapping_add(frame[0] & 1)
}

#[mote_firmware::entry]
fn main() -> ! {
    fw::init();
    defmt::info!("growing the stack into its guard band");
    core::hint::black_box(descend(0, fw::stack::bottom() + fw::stack::GUARD / 2));
    fw::finish(ExitCode::Success)
}
