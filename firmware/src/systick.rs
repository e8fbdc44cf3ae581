//! A 64-bit tick counter on SysTick, the one timer every Cortex-M has.
//!
//! SysTick counts down from 2^24 - 1 at the core clock ([`crate::BOARD`]`.clock_hz`) and raises an
//! exception at each wrap, which extends it to 64 bits. On a real board a tick is a core clock
//! cycle. Under `qemu -icount shift=0` a tick is a fixed number of executed instructions (40 on
//! the 25 MHz mps2-an386 and -an500, 50 on the 20 MHz mps2-an505, 31.25 on the 32 MHz
//! mps3-an547), so counts are the same on every run of the same binary; without `-icount`,
//! QEMU's SysTick does not advance.
//!
//! The firmware owns SysTick: binaries must not take `SYST` from `cortex_m::Peripherals`.

use core::sync::atomic::{AtomicU32, Ordering};

use cortex_m::peripheral::SYST;
use cortex_m_rt::exception;

/// The counter's name, for logs.
pub const COUNTER: &str = "SysTick";

/// SysTick's reload value: the counter is 24 bits wide.
const RELOAD: u32 = 0x00FF_FFFF;

/// Completed wraps of the 24-bit counter.
static WRAPS: AtomicU32 = AtomicU32::new(0);

/// SysTick control and status bits: counter on, exception on each wrap, clock = core clock.
const CSR_ENABLE_TICKINT_CORE: u32 = 0b111;

/// Starts counting from zero. [`crate::init`] calls it.
pub fn start() {
    // SAFETY: the firmware owns SysTick (see the module docs), so nothing else writes it.
    let syst = unsafe { &*SYST::PTR };
    WRAPS.store(0, Ordering::Relaxed);
    // SAFETY: plain writes to SysTick's registers; its exception handler is below.
    unsafe {
        syst.csr.write(0);
        syst.rvr.write(RELOAD);
        syst.cvr.write(0); // any write clears it; the first tick loads RELOAD
        syst.csr.write(CSR_ENABLE_TICKINT_CORE);
    }
}

/// Ticks since [`start`]. The counter wraps every 2^24 ticks (0.67 s at 25 MHz) and the wrap is
/// counted when SysTick's exception runs: read with interrupts masked for longer than that, the
/// count comes out 2^24 ticks short.
pub fn now() -> u64 {
    // SAFETY: reads of SysTick's current value register have no side effects.
    let syst = unsafe { &*SYST::PTR };
    loop {
        let wraps = WRAPS.load(Ordering::Acquire);
        let down = syst.cvr.read() & RELOAD;
        if wraps == 0 && down == 0 {
            return 0; // before the first tick has loaded RELOAD
        }
        // A wrap between the two reads makes `down` belong to the next period: read again.
        if WRAPS.load(Ordering::Acquire) == wraps {
            return u64::from(wraps) * u64::from(RELOAD + 1) + u64::from(RELOAD - down);
        }
    }
}

#[exception]
fn SysTick() {
    // A load then a store, not `fetch_add` (ARMv6-M has no atomic read-modify-write): this
    // handler is the only writer once `start` has enabled it, and it does not preempt itself.
    WRAPS.store(WRAPS.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}
