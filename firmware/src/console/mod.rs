//! The serial console: one driver per board, each a `Uart` with `Uart::new()` that implements
//! `embedded_io::{Read, Write}` (blocking). A board without a driver has no `Console`, and the
//! `chat` binary is not built for it.

#[cfg(any(
    feature = "board-mps2-an386",
    feature = "board-mps2-an500",
    feature = "board-mps2-an505",
    feature = "board-mps3-an547"
))]
pub mod cmsdk;

#[cfg(any(
    feature = "board-mps2-an386",
    feature = "board-mps2-an500",
    feature = "board-mps2-an505",
    feature = "board-mps3-an547"
))]
pub use cmsdk::Uart as Console;
