//! nRF52840 UARTE0 on the nRF52840 DK's J-Link virtual COM port: TX P0.06, RX P0.08 (the DK's user
//! guide, "Virtual COM port"; RTS P0.05 and CTS P0.07 are left unconnected: no flow control).
//!
//! UARTE moves bytes by EasyDMA, which reads and writes RAM only: bytes to send are copied into a
//! buffer in the driver (a string in flash could not be sent from where it is), and each byte is
//! received into another. Between reads the receiver keeps running and holds a few bytes in its
//! FIFO until the next STARTRX takes them.

use core::sync::atomic::{compiler_fence, Ordering};

use embedded_io::{ErrorType, Read, Write};
use nrf52840_pac::{uarte0, P0, UARTE0};

use super::Error;

/// The DK's VCOM pins on port 0.
const TX_PIN: u8 = 6;
const RX_PIN: u8 = 8;
/// Bytes sent per DMA transfer.
const TX_CHUNK: usize = 64;

/// The console UART. Owns UARTE0 and pins P0.06/P0.08.
pub struct Uart {
    uarte: &'static uarte0::RegisterBlock,
    tx: [u8; TX_CHUNK],
    rx: [u8; 1],
}

impl Uart {
    /// Sets up the pins, starts UARTE0 at 115200 8N1 and its receiver.
    pub fn new() -> Uart {
        // SAFETY: the console is made once, at boot, and is the only user of UARTE0 and of pins
        // P0.06 and P0.08; the PAC's register blocks are at their fixed addresses.
        let (uarte, p0) = unsafe { (&*UARTE0::ptr(), &*P0::ptr()) };
        // TX idles high, as an output; RX is an input with its buffer connected.
        // SAFETY: setting one bit of OUTSET and DIRSET touches only that pin.
        p0.outset.write(|w| unsafe { w.bits(1 << TX_PIN) });
        p0.dirset.write(|w| unsafe { w.bits(1 << TX_PIN) });
        p0.pin_cnf[usize::from(RX_PIN)]
            .write(|w| w.dir().input().input().connect().pull().pullup());
        // SAFETY: pin numbers below 32 on port 0 are valid selections.
        uarte
            .psel
            .txd
            .write(|w| unsafe { w.pin().bits(TX_PIN).port().clear_bit().connect().connected() });
        uarte
            .psel
            .rxd
            .write(|w| unsafe { w.pin().bits(RX_PIN).port().clear_bit().connect().connected() });
        uarte.baudrate.write(|w| w.baudrate().baud115200());
        uarte.config.write(|w| w.hwfc().disabled().parity().excluded());
        uarte.enable.write(|w| w.enable().enabled());
        Uart { uarte, tx: [0; TX_CHUNK], rx: [0] }
    }

    /// The receive error ERRORSRC records, if any, cleared (its bits clear when written with 1).
    fn take_error(&self) -> Option<Error> {
        let src = self.uarte.errorsrc.read();
        let error = if src.overrun().is_present() {
            Error::Overrun
        } else if src.framing().is_present() || src.break_().is_present() {
            Error::Framing
        } else if src.parity().is_present() {
            Error::Parity
        } else {
            return None;
        };
        // SAFETY: writing back the bits read clears exactly those.
        self.uarte.errorsrc.write(|w| unsafe { w.bits(src.bits()) });
        Some(error)
    }
}

impl Default for Uart {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorType for Uart {
    type Error = Error;
}

impl Read for Uart {
    /// Waits for one byte (EasyDMA into the driver's buffer) and returns it.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let Some(slot) = buf.first_mut() else { return Ok(0) };
        // SAFETY: the buffer is ours for the transfer, which ends (ENDRX) before this returns;
        // MAXCNT 1 fits it.
        self.uarte.rxd.ptr.write(|w| unsafe { w.ptr().bits(self.rx.as_mut_ptr() as u32) });
        self.uarte.rxd.maxcnt.write(|w| unsafe { w.maxcnt().bits(1) });
        self.uarte.events_endrx.reset();
        compiler_fence(Ordering::SeqCst);
        // SAFETY: triggering a task has no other effect.
        self.uarte.tasks_startrx.write(|w| unsafe { w.bits(1) });
        while self.uarte.events_endrx.read().bits() == 0 {}
        compiler_fence(Ordering::SeqCst);
        self.uarte.events_endrx.reset();
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        *slot = self.rx[0];
        Ok(1)
    }
}

impl Write for Uart {
    /// Sends up to 64 bytes in one EasyDMA transfer from the driver's buffer.
    fn write(&mut self, buf: &[u8]) -> Result<usize, Error> {
        let n = buf.len().min(TX_CHUNK);
        if n == 0 {
            return Ok(0);
        }
        self.tx[..n].copy_from_slice(&buf[..n]);
        // SAFETY: the buffer is ours for the transfer, which ends (ENDTX) before this returns;
        // MAXCNT n fits it.
        self.uarte.txd.ptr.write(|w| unsafe { w.ptr().bits(self.tx.as_ptr() as u32) });
        self.uarte.txd.maxcnt.write(|w| unsafe { w.maxcnt().bits(n as u16) });
        self.uarte.events_endtx.reset();
        compiler_fence(Ordering::SeqCst);
        // SAFETY: triggering a task has no other effect.
        self.uarte.tasks_starttx.write(|w| unsafe { w.bits(1) });
        while self.uarte.events_endtx.read().bits() == 0 {}
        compiler_fence(Ordering::SeqCst);
        self.uarte.events_endtx.reset();
        Ok(n)
    }

    /// Stops the transmitter, which stops (TXSTOPPED) once the last byte is out.
    fn flush(&mut self) -> Result<(), Error> {
        self.uarte.events_txstopped.reset();
        // SAFETY: triggering a task has no other effect.
        self.uarte.tasks_stoptx.write(|w| unsafe { w.bits(1) });
        while self.uarte.events_txstopped.read().bits() == 0 {}
        self.uarte.events_txstopped.reset();
        Ok(())
    }
}
