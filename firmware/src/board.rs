//! The board this firmware was built for, as `boards.toml` describes it.

/// A range of the address space.
#[derive(Clone, Copy, Debug, defmt::Format)]
pub struct Region {
    /// First address.
    pub origin: u32,
    /// Length in bytes.
    pub size: u32,
}

/// How defmt frames leave the chip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Transport {
    /// ARM semihosting, to QEMU's standard output; exits through semihosting too.
    QemuSemihosting,
    /// A RAM ring buffer that a debug probe reads (`probe-rs run`).
    Rtt,
}

/// The arithmetic of the forward pass that `boards.toml` asks of the board (its `math`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Math {
    /// f32 outside the int8 dot products.
    Float,
    /// Fixed-point integers throughout: the choice for cores without an FPU.
    Integer,
}

impl Math {
    /// The word boards.toml uses: `float` or `integer`.
    pub const fn name(self) -> &'static str {
        match self {
            Math::Float => "float",
            Math::Integer => "integer",
        }
    }
}

/// A board: what `boards.toml` says about it.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    /// The name `--board` takes.
    pub name: &'static str,
    /// The core, by its Arm name.
    pub cpu: &'static str,
    /// The Rust target triple.
    pub target: &'static str,
    /// SysTick's clock in Hz (the core clock).
    pub clock_hz: u32,
    /// What drives that clock.
    pub clock_source: &'static str,
    /// Code and read-only data, the model included.
    pub flash: Region,
    /// Statics and the stack.
    pub ram: Region,
    /// Where the logs go.
    pub transport: Transport,
    /// The forward pass's arithmetic.
    pub math: Math,
}

/// The board this binary was built for (its `board-<name>` feature).
pub const BOARD: Board = include!(concat!(env!("OUT_DIR"), "/board.rs"));
