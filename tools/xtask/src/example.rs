//! The example crates of docs/boards.md (`examples/<name>`): mote-core in firmware that mote's own
//! build does not make, each with its own Cargo.toml, .cargo/config.toml and memory.x (or its HAL's
//! linker script), built as their users would build them, through the toolchain route for their
//! triple.

use std::path::Path;

use anyhow::Result;

use crate::shell;
use crate::toolchain::{Job, Toolchain};

/// Every example crate, by folder name, and its target.
pub const EXAMPLES: [(&str, &str); 2] =
    [("nucleo-f412zg", "thumbv7em-none-eabihf"), ("esp32c3-devkit", "riscv32imc-unknown-none-elf")];

/// `cargo build --release` of the example in `examples/<name>`. It shares the firmware's target
/// directory: the standard library that the Debian route builds is built once for both.
pub fn build(root: &Path, name: &str, target: &str) -> Result<()> {
    let dir = root.join("examples").join(name);
    let toolchain = Toolchain::for_target(target, true, Job::Build)?;
    println!("example {name} on {}", toolchain.describe());
    let mut cmd = toolchain.cargo(Job::Build, &dir, &root.join("firmware/target"), &[]);
    cmd.arg("--release");
    shell::run(&mut cmd)
}

#[cfg(test)]
mod tests {
    use super::EXAMPLES;

    #[test]
    fn every_example_board_is_built_for_its_target() {
        let boards = mote_boards::Boards::builtin().unwrap();
        for board in &boards.boards {
            if let Some(example) = &board.example {
                assert!(
                    EXAMPLES.contains(&(example.as_str(), board.target.as_str())),
                    "board {}: examples/{example} for {} is not in EXAMPLES",
                    board.name,
                    board.target
                );
            }
        }
    }
}
