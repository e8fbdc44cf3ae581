//! What a UART reports about a received byte: the line said something the byte cannot be
//! trusted after. The byte is dropped and the error returned once; the next read goes on.

use core::fmt;

/// A receive error of a console UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Error {
    /// A byte arrived before the previous one was read: at least one byte was lost.
    Overrun,
    /// A byte without its stop bit (wrong baud rate, a break, a loose wire).
    Framing,
    /// Noise on the line while a byte was sampled.
    Noise,
    /// A byte whose parity bit is wrong.
    Parity,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Overrun => "UART overrun: a received byte was lost",
            Error::Framing => "UART framing error: a byte without its stop bit",
            Error::Noise => "UART noise on a received byte",
            Error::Parity => "UART parity error on a received byte",
        })
    }
}

impl core::error::Error for Error {}

impl embedded_io::Error for Error {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            Error::Overrun => embedded_io::ErrorKind::Other,
            Error::Framing | Error::Noise | Error::Parity => embedded_io::ErrorKind::InvalidData,
        }
    }
}
