//! A 64-bit tick counter on RISC-V: `minstret`, the instructions the hart has retired, with the
//! same interface as SysTick's counter on Cortex-M (`crate::systick` on both).
//!
//! A tick is one instruction, and [`crate::BOARD`]`.clock_hz` says 1 GHz because QEMU under
//! `-icount shift=0` retires one instruction per nanosecond of virtual time. minstret's value at
//! reset is not the same on every run, but the difference of two reads is: so [`start`] records
//! where counting begins and [`now`] counts from there.

use core::sync::atomic::{AtomicU32, Ordering};

use riscv::register::minstret;

/// The counter's name, for logs.
pub const COUNTER: &str = "minstret";

/// minstret's low and high words when [`start`] ran.
static START_LOW: AtomicU32 = AtomicU32::new(0);
static START_HIGH: AtomicU32 = AtomicU32::new(0);

/// The 64-bit minstret (riscv reads minstreth, minstret, minstreth again, so that a carry between
/// the two halves is seen).
fn read() -> u64 {
    minstret::read64()
}

/// Starts counting from zero. [`crate::init`] calls it.
pub fn start() {
    let now = read();
    START_LOW.store(now as u32, Ordering::Relaxed);
    START_HIGH.store((now >> 32) as u32, Ordering::Relaxed);
}

/// Instructions retired since [`start`].
pub fn now() -> u64 {
    let start = (u64::from(START_HIGH.load(Ordering::Relaxed)) << 32)
        | u64::from(START_LOW.load(Ordering::Relaxed));
    read().wrapping_sub(start)
}
