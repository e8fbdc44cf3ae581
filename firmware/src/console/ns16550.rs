//! The 16550 UART of QEMU's RISC-V `virt` machine, at 0x1000_0000, which QEMU wires to its first
//! serial port (`-serial`).
//!
//! Registers (byte-wide, one byte apart; the 16550A data sheet, QEMU's `hw/char/serial.c`): `RBR`
//! (read) / `THR` (write) at 0, `IER` 1, `FCR` 2 (write), `LCR` 3, `LSR` 5. `LSR` bit 0 says a byte
//! has arrived, bit 5 that the transmitter takes another, bit 1 that a byte was lost (overrun),
//! bit 2 a parity error, bit 3 a framing error. With `LCR` bit 7 (DLAB) set, offsets 0 and 1 are
//! the baud rate divisor instead.
//!
//! No interrupts: reads and writes busy-wait on `LSR`. The FIFOs are on (16 bytes each way).

use core::ptr::{read_volatile, write_volatile};

use super::Error;

/// The UART's base address on `virt`.
const BASE: usize = 0x1000_0000;

const RBR_THR: usize = 0;
const IER: usize = 1;
const FCR: usize = 2;
const LCR: usize = 3;
const LSR: usize = 5;
/// With DLAB set: the divisor's low and high bytes.
const DLL: usize = 0;
const DLM: usize = 1;

const LCR_8N1: u8 = 0b0000_0011;
const LCR_DLAB: u8 = 1 << 7;
/// FIFOs on, both cleared.
const FCR_ENABLE_CLEAR: u8 = 0b0000_0111;
const LSR_DATA_READY: u8 = 1 << 0;
const LSR_OVERRUN: u8 = 1 << 1;
const LSR_PARITY: u8 = 1 << 2;
const LSR_FRAMING: u8 = 1 << 3;
const LSR_THR_EMPTY: u8 = 1 << 5;

/// The UART's input clock on `virt` (QEMU's 3.6864 MHz) over 16 times 115200 baud.
const DIVISOR: u16 = 2;

/// The 16550, 115200 8N1, polled.
pub struct Uart {
    /// An error met after some bytes had been read: returned by the next read.
    pending: Option<Error>,
}

fn read(reg: usize) -> u8 {
    // SAFETY: `reg` is one of the UART's registers: a device address of this machine, whose reads
    // have no effect beyond the UART's own (reading RBR takes the received byte, LSR clears its
    // error bits).
    unsafe { read_volatile((BASE + reg) as *const u8) }
}

fn write(reg: usize, value: u8) {
    // SAFETY: as in `read`; the UART is this firmware's only user of these addresses.
    unsafe { write_volatile((BASE + reg) as *mut u8, value) }
}

impl Uart {
    /// Sets the UART to 115200 8N1 with its FIFOs on and its interrupts off.
    pub fn new() -> Uart {
        write(IER, 0);
        write(LCR, LCR_DLAB);
        write(DLL, DIVISOR as u8);
        write(DLM, (DIVISOR >> 8) as u8);
        write(LCR, LCR_8N1);
        write(FCR, FCR_ENABLE_CLEAR);
        Uart { pending: None }
    }

    /// Waits for one byte; a byte the line status marks as bad is dropped and its error returned.
    fn read_byte(&mut self) -> Result<u8, Error> {
        loop {
            let lsr = read(LSR);
            if lsr & LSR_OVERRUN != 0 {
                return Err(Error::Overrun);
            }
            if lsr & LSR_DATA_READY == 0 {
                continue;
            }
            let byte = read(RBR_THR);
            return match lsr {
                l if l & LSR_FRAMING != 0 => Err(Error::Framing),
                l if l & LSR_PARITY != 0 => Err(Error::Parity),
                _ => Ok(byte),
            };
        }
    }
}

impl Default for Uart {
    fn default() -> Self {
        Self::new()
    }
}

impl embedded_io::ErrorType for Uart {
    type Error = Error;
}

impl embedded_io::Read for Uart {
    /// Waits for one byte, then takes whatever else has already arrived, up to `buf`'s length.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let Some((first, rest)) = buf.split_first_mut() else { return Ok(0) };
        if let Some(error) = self.pending.take() {
            return Err(error);
        }
        *first = self.read_byte()?;
        let mut n = 1;
        for slot in rest {
            if read(LSR) & LSR_DATA_READY == 0 {
                break;
            }
            match self.read_byte() {
                Ok(byte) => *slot = byte,
                // What came before the bad byte is returned; the error, by the next read.
                Err(error) => {
                    self.pending = Some(error);
                    break;
                }
            }
            n += 1;
        }
        Ok(n)
    }
}

impl embedded_io::Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        for &b in buf {
            while read(LSR) & LSR_THR_EMPTY == 0 {}
            write(RBR_THR, b);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Error> {
        while read(LSR) & LSR_THR_EMPTY == 0 {}
        Ok(())
    }
}
