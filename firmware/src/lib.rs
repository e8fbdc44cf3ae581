//! # mote-firmware: what every mote binary shares on a Cortex-M or RISC-V board
//!
//! A binary is short: its `main` carries [`entry`] (the architecture's runtime: cortex-m-rt or
//! riscv-rt), calls [`init`] first, logs through `defmt`, and ends with [`exit`]. This crate owns
//! the rest, the same way on every board:
//! - the defmt transport: semihosting under QEMU, RTT on a real board (one `board-<name>` feature
//!   picks the board, and the board picks the transport);
//! - [`exit`] with an [`ExitCode`], through semihosting, which QEMU and `probe-rs run` both turn
//!   into their own exit status; on a real board with no debugger attached, a `wfi` loop instead
//!   of the semihosting call that would fault;
//! - the panic and HardFault (RISC-V: exception trap) handlers ([`fault`]), which print the cause
//!   and exit non-zero;
//! - the tick counter ([`systick`]: SysTick on Cortex-M, `minstret` on RISC-V) and the painted
//!   stack ([`stack`]), for measuring;
//! - the serial console ([`console`]): the board's UART as `embedded_io::{Read, Write}`;
//! - seeded pseudo-random Q8_0 data ([`random`]) for checking and timing kernels;
//! - the serial console ([`console`]), one driver per board, through `embedded-io`;
//! - the board's description ([`BOARD`], generated from `boards.toml` by the build script, `build/`) and
//!   [`blob::Aligned`] for embedding a model in flash.
#![no_std]

pub mod blob;
pub mod board;
pub mod console;
pub mod exit;
pub mod fault;
pub mod random;
pub mod stack;
#[cfg(target_arch = "arm")]
pub mod systick;
/// On RISC-V the tick counter has the same interface, over the `minstret` counter.
#[cfg(target_arch = "riscv32")]
#[path = "minstret.rs"]
pub mod systick;

/// The attribute that makes a binary's `fn main() -> !` the program's entry point, from the
/// architecture's runtime.
#[cfg(target_arch = "arm")]
pub use cortex_m_rt::entry;
#[cfg(target_arch = "riscv32")]
pub use riscv_rt::entry;

pub use board::{Board, Math, Region, Transport, BOARD};
pub use exit::{exit, ExitCode};

/// The RP2040's second-stage bootloader, in the first 256 bytes of flash (memory.x's BOOT2), where
/// the boot ROM looks for it.
#[cfg(feature = "board-rp-pico")]
#[link_section = ".boot2"]
#[used]
static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

// The defmt global logger: exactly one transport is linked in.
#[cfg(feature = "defmt-rtt")]
use defmt_rtt as _;
#[cfg(feature = "defmt-semihosting")]
use defmt_semihosting as _;
#[cfg(not(any(feature = "defmt-rtt", feature = "defmt-semihosting")))]
compile_error!("no defmt transport: build with one board-<name> feature (see boards.toml)");

/// A `&'static mut` to a new static, for a binary's `main` to take once: what cortex-m-rt's entry
/// does to a `static mut` declared in `main`, on every architecture. The static lives in `.bss`
/// (or `.data`): RAM the linker counts, never the stack; `cargo xtask size` finds it by name.
///
/// `let state = take_static!(MOTE_RUN_STATE: [u8; 64] = [0; 64]);` Each use is its own static;
/// use it only where the code runs once (in `main`, which never returns), or the second
/// reference would alias the first.
#[macro_export]
macro_rules! take_static {
    ($name:ident : $ty:ty = $init:expr) => {{
        static mut $name: $ty = $init;
        // SAFETY: the caller's code runs once (see above): this is the only reference.
        unsafe { &mut *core::ptr::addr_of_mut!($name) }
    }};
}

/// Prepares the board for a binary: paints the free stack (for [`stack::high_water_mark`]) and
/// starts the SysTick counter (for [`systick::now`]). Call it first thing in `main`.
pub fn init() {
    stack::paint();
    systick::start();
}

/// Ends a binary's run: reports the stack's high-water mark, turns a stack that reached its guard
/// band into [`ExitCode::StackOverflow`], and exits with `code` otherwise.
pub fn finish(code: ExitCode) -> ! {
    let used = stack::high_water_mark();
    let size = stack::size();
    if stack::overflowed(used) {
        defmt::error!(
            "stack overflow: {=usize} of {=usize} bytes used, into the {=usize}-byte guard; the statics below it may be corrupt",
            used,
            size,
            stack::GUARD
        );
        exit(ExitCode::StackOverflow)
    }
    defmt::info!("stack: {=usize} of {=usize} bytes used", used, size);
    exit(code)
}
