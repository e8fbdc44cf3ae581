//! # mote-firmware: what every mote binary shares on a Cortex-M board
//!
//! A binary is short: it calls [`init`] first, logs through `defmt`, and ends with [`exit`]. This
//! crate owns the rest, the same way on every board:
//! - the defmt transport: semihosting under QEMU, RTT on a real board (one `board-<name>` feature
//!   picks the board, and the board picks the transport);
//! - [`exit`] with an [`ExitCode`], through semihosting, which QEMU and `probe-rs run` both turn
//!   into their own exit status; on a real board with no debugger attached, a `wfi` loop instead
//!   of the semihosting call that would fault;
//! - the panic and HardFault handlers ([`fault`]), which print the cause and exit non-zero;
//! - the SysTick tick counter ([`systick`]) and the painted stack ([`stack`]), for measuring;
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
pub mod systick;

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
