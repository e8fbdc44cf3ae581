//! UART0 through esp-hal's blocking driver (115200 8N1, its default configuration), as
//! `embedded_io::{Read, Write}`: the form mote's console code takes.

use embedded_io::{ErrorKind, ErrorType, Read, Write};
use esp_hal::peripherals::{GPIO20, GPIO21, UART0};
use esp_hal::uart::{Config, Uart as Driver};
use esp_hal::Blocking;

/// The console.
pub struct Uart(Driver<'static, Blocking>);

impl Uart {
    /// UART0 with TX on GPIO21 and RX on GPIO20, where the DevKit's USB-serial bridge is wired.
    /// `None` if the driver refuses the configuration (it accepts its default).
    pub fn new(uart: UART0<'static>, tx: GPIO21<'static>, rx: GPIO20<'static>) -> Option<Self> {
        let driver = Driver::new(uart, Config::default()).ok()?;
        Some(Uart(driver.with_tx(tx).with_rx(rx)))
    }
}

impl ErrorType for Uart {
    type Error = ErrorKind;
}

impl Read for Uart {
    /// Blocks until at least one byte is there. An overrun, a framing or a parity error is
    /// `ErrorKind::Other`: the byte it concerns is lost.
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.0.read(buf).map_err(|_| ErrorKind::Other)
    }
}

impl Write for Uart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.0.write(buf).map_err(|_| ErrorKind::Other)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        self.0.flush().map_err(|_| ErrorKind::Other)
    }
}
