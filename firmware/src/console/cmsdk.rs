//! UART0 of the Arm MPS2/MPS3 FPGA images: the Cortex-M System Design Kit's APB UART, which
//! QEMU wires to its first serial port (`-serial`).
//!
//! Registers (CMSDK TRM, ARM DDI0479; QEMU's `hw/char/cmsdk-apb-uart.c`): `DATA` (one byte each
//! way), `STATE` (bit 0 TX full, bit 1 RX full, bits 2-3 overruns, write 1 to clear), `CTRL`
//! (bit 0 TX enable, bit 1 RX enable), `BAUDDIV` (the APB clock over the baud rate, at least 16).
//! The UART is always 8N1, with a one-byte buffer each way and no FIFO.
//!
//! No interrupts: reads and writes busy-wait on `STATE`. A byte that arrives while the previous
//! one has not been read sets the RX overrun bit and is lost; the reader clears the bit and goes
//! on (QEMU never overruns: it holds input until the buffer is empty).

use core::convert::Infallible;
use core::ptr::{read_volatile, write_volatile};

use crate::BOARD;

/// UART0's base address on this board's FPGA image. AN505 and AN547 run this firmware in the
/// secure state, so the secure alias (address bit 28 set) of the peripheral is used.
#[cfg(any(
    feature = "board-mps2-an385",
    feature = "board-mps2-an386",
    feature = "board-mps2-an500"
))]
const BASE: usize = 0x4000_4000;
#[cfg(feature = "board-mps2-an505")]
const BASE: usize = 0x5020_0000;
#[cfg(feature = "board-mps3-an547")]
const BASE: usize = 0x5930_3000;

const DATA: usize = BASE;
const STATE: usize = BASE + 0x04;
const CTRL: usize = BASE + 0x08;
const BAUDDIV: usize = BASE + 0x10;

const STATE_TX_FULL: u32 = 1 << 0;
const STATE_RX_FULL: u32 = 1 << 1;
const STATE_RX_OVERRUN: u32 = 1 << 3;
const CTRL_TX_ENABLE: u32 = 1 << 0;
const CTRL_RX_ENABLE: u32 = 1 << 1;

/// The console's speed.
const BAUD: u32 = 115_200;

/// UART0, 115200 8N1, polled.
pub struct Uart {
    _private: (),
}

fn read(reg: usize) -> u32 {
    // SAFETY: `reg` is one of UART0's registers above: a device address of this board, aligned,
    // whose reads have no effect beyond the UART's own (reading DATA takes the received byte).
    unsafe { read_volatile(reg as *const u32) }
}

fn write(reg: usize, value: u32) {
    // SAFETY: as in `read`; the UART is this firmware's only user of these addresses.
    unsafe { write_volatile(reg as *mut u32, value) }
}

impl Uart {
    /// Sets UART0 to 115200 baud (the APB clock is the core clock on these images) and enables
    /// both directions.
    pub fn new() -> Uart {
        write(BAUDDIV, (BOARD.clock_hz / BAUD).max(16));
        write(CTRL, CTRL_TX_ENABLE | CTRL_RX_ENABLE);
        Uart { _private: () }
    }

    fn read_byte(&mut self) -> u8 {
        while read(STATE) & STATE_RX_FULL == 0 {}
        if read(STATE) & STATE_RX_OVERRUN != 0 {
            write(STATE, STATE_RX_OVERRUN);
        }
        read(DATA) as u8
    }
}

impl Default for Uart {
    fn default() -> Self {
        Self::new()
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = Infallible;
}

impl embedded_io::Read for Uart {
    /// Waits for one byte, then takes whatever else has already arrived, up to `buf`'s length.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let Some((first, rest)) = buf.split_first_mut() else { return Ok(0) };
        *first = self.read_byte();
        let mut n = 1;
        for slot in rest {
            if read(STATE) & STATE_RX_FULL == 0 {
                break;
            }
            *slot = self.read_byte();
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        for &b in buf {
            while read(STATE) & STATE_TX_FULL != 0 {}
            write(DATA, u32::from(b));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        while read(STATE) & STATE_TX_FULL != 0 {}
        Ok(())
    }
}
