//! The serial console: the UART that a dev board wires to its debug probe's virtual COM port, as
//! `embedded_io::{Read, Write}`. One driver per chip; the board's feature picks it as `Console`.
//! Each driver's `Uart::new()` sets up its clocks, pins and 115200 8N1 itself.

mod error;
#[cfg(feature = "board-nrf52840-dk")]
mod nrf52840;
#[cfg(feature = "board-netduinoplus2")]
mod stm32f4;
#[cfg(feature = "board-nucleo-h743zi")]
mod stm32h7;

pub use error::Error;
#[cfg(feature = "board-nrf52840-dk")]
pub use nrf52840::Uart as Console;
#[cfg(feature = "board-netduinoplus2")]
pub use stm32f4::Uart as Console;
#[cfg(feature = "board-nucleo-h743zi")]
pub use stm32h7::Uart as Console;
