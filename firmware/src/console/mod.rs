//! The serial console: the UART that a dev board wires to its debug probe's virtual COM port, as
//! `embedded_io::{Read, Write}` (blocking). One driver per chip, each a `Uart` whose `Uart::new()`
//! sets up its clocks, pins and 115200 8N1 itself; the board's feature picks it as `Console`. A
//! board without a driver has no `Console`, and the `chat` binary is not built for it.

#[cfg(any(
    feature = "board-mps2-an385",
    feature = "board-mps2-an386",
    feature = "board-mps2-an500",
    feature = "board-mps2-an505",
    feature = "board-mps3-an547"
))]
pub mod cmsdk;
mod error;
#[cfg(feature = "board-nrf52840-dk")]
mod nrf52840;
#[cfg(feature = "board-qemu-rv32")]
mod ns16550;
#[cfg(any(feature = "board-netduino2", feature = "board-netduinoplus2"))]
mod stm32f4;
#[cfg(feature = "board-nucleo-h743zi")]
mod stm32h7;

#[cfg(any(
    feature = "board-mps2-an385",
    feature = "board-mps2-an386",
    feature = "board-mps2-an500",
    feature = "board-mps2-an505",
    feature = "board-mps3-an547"
))]
pub use cmsdk::Uart as Console;
pub use error::Error;
#[cfg(feature = "board-nrf52840-dk")]
pub use nrf52840::Uart as Console;
#[cfg(feature = "board-qemu-rv32")]
pub use ns16550::Uart as Console;
#[cfg(any(feature = "board-netduino2", feature = "board-netduinoplus2"))]
pub use stm32f4::Uart as Console;
#[cfg(feature = "board-nucleo-h743zi")]
pub use stm32h7::Uart as Console;
