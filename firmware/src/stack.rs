//! The stack's high-water mark, by painting: at boot every free word of the stack gets a known
//! pattern, and later the lowest word that no longer holds it tells how deep the stack has been.
//!
//! The stack is everything cortex-m-rt leaves in RAM above the statics: it grows down from
//! `_stack_start` (the top of RAM) to `_stack_end` (the end of `.bss`/`.uninit`). Its lowest
//! [`GUARD`] bytes are a guard band: a run is sized so that it never reaches them, and
//! [`crate::finish`] checks that they still hold the paint, reporting a stack overflow (and exiting
//! with [`crate::ExitCode::StackOverflow`]) when they do not, because the statics just below may
//! then be corrupt.

use core::ptr::{addr_of, read_volatile, write_volatile};

/// The paint: an unlikely value for a return address, a saved register or a float.
const PAINT: u32 = 0xC0DE_C0DE;

/// Bytes below the stack pointer that [`paint`] leaves alone: the frames of whatever it calls
/// while painting (nothing, once optimized; `write_volatile` itself in an unoptimized build).
const PAINT_MARGIN: usize = 256;

extern "C" {
    // Both from cortex-m-rt's link.x.
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Bytes at the bottom of the stack that a correct run never touches.
pub const GUARD: usize = 1024;

/// Top of the stack (exclusive) and its lowest address.
fn bounds() -> (usize, usize) {
    // Only the symbols' addresses are taken, never their contents (which needs no unsafe).
    (addr_of!(_stack_start) as usize, addr_of!(_stack_end) as usize)
}

/// The stack's lowest address: the end of the statics.
pub fn bottom() -> usize {
    bounds().1
}

/// Size of the stack in bytes.
pub fn size() -> usize {
    let (top, bottom) = bounds();
    top - bottom
}

/// Paints the free part of the stack: from its bottom up to just below the current frame.
#[inline(never)]
pub fn paint() {
    let (_, bottom) = bounds();
    let sp = cortex_m::register::msp::read() as usize;
    let mut word = bottom as *mut u32;
    while (word as usize) + PAINT_MARGIN < sp {
        // SAFETY: between the end of the statics and below the live stack: memory nobody uses.
        unsafe {
            write_volatile(word, PAINT);
            word = word.add(1);
        }
    }
}

/// The most stack used since [`paint`], in bytes (to within [`PAINT_MARGIN`] when little was).
pub fn high_water_mark() -> usize {
    let (top, bottom) = bounds();
    let mut word = bottom as *const u32;
    // SAFETY: reads within the stack's bounds; the scan stops at the first unpainted word, which
    // exists because this function's own frame is on the stack.
    while (word as usize) < top && unsafe { read_volatile(word) } == PAINT {
        word = unsafe { word.add(1) };
    }
    top - word as usize
}

/// Whether the stack has reached its guard band, given the high-water mark.
pub fn overflowed(high_water_mark: usize) -> bool {
    high_water_mark + GUARD > size()
}
