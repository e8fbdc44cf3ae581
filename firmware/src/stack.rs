//! The stack's high-water mark, by painting: at boot every free word of the stack gets a known
//! pattern, and later the lowest word that no longer holds it tells how deep the stack has been.
//!
//! The stack is everything the runtime (cortex-m-rt, riscv-rt) leaves in RAM above the statics: it
//! grows down from `_stack_start` (the top of RAM) to the end of `.bss`/`.uninit` (cortex-m-rt's
//! `_stack_end`, riscv-rt's `__estack`). Its lowest
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
    // From the runtime's link.x: cortex-m-rt's or riscv-rt's.
    static _stack_start: u32;
    #[cfg(target_arch = "arm")]
    static _stack_end: u32;
    // riscv-rt's name for the stack's lowest address (the start of its `.stack` section).
    #[cfg(target_arch = "riscv32")]
    #[link_name = "__estack"]
    static _stack_end: u32;
}

/// The stack pointer now.
#[inline(always)]
pub fn pointer() -> usize {
    #[cfg(target_arch = "arm")]
    let sp = cortex_m::register::msp::read() as usize;
    #[cfg(target_arch = "riscv32")]
    let sp = {
        let sp: usize;
        // SAFETY: reads a register, touches no memory.
        unsafe { core::arch::asm!("mv {}, sp", out(reg) sp, options(nomem, nostack)) };
        sp
    };
    sp
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
    let sp = pointer();
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
