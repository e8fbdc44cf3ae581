//! The boards of `boards.toml` (schema at the top of that file).

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// boards.toml as a whole.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boards {
    /// The board used when none is named.
    pub default: String,
    /// What every memory plan keeps beside the model and the run state.
    pub plan: Plan,
    /// Every board, in listing order.
    #[serde(rename = "board")]
    pub boards: Vec<Board>,
}

/// boards.toml's `[plan]`: bytes kept on every board beside the model and the run state.
#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Flash for the firmware's code and read-only data.
    pub code_flash: u64,
    /// RAM for the stack and the other statics.
    #[allow(dead_code)]
    pub ram_reserve: u64,
}

/// One board.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// What --board takes.
    pub name: String,
    /// One line for listings.
    pub description: String,
    /// Rust target triple.
    pub target: String,
    /// The core.
    pub cpu: String,
    /// SysTick's clock in Hz.
    pub clock_hz: u64,
    /// What drives that clock (the firmware prints it; parsed here to check the file).
    #[allow(dead_code)]
    pub clock_source: String,
    /// Code and read-only data.
    pub flash: Region,
    /// Statics and stack.
    pub ram: Region,
    /// How defmt frames leave the chip.
    pub transport: Transport,
    /// QEMU's machine and cpu (transport = qemu-semihosting).
    pub qemu: Option<Qemu>,
    /// probe-rs's chip name (transport = rtt).
    pub probe_rs_chip: Option<String>,
    /// Extra rustc flags for this board.
    #[serde(default)]
    pub rustflags: Vec<String>,
}

/// A range of the address space.
#[derive(Deserialize, Clone, Copy, Debug)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// First address.
    pub origin: u64,
    /// Length in bytes.
    pub size: u64,
}

/// How defmt frames leave the chip.
#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Semihosting, in QEMU.
    QemuSemihosting,
    /// RTT, read by a debug probe.
    Rtt,
}

/// QEMU's view of a board.
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Qemu {
    /// `-machine`.
    pub machine: String,
    /// `-cpu`.
    pub cpu: String,
}

/// Reads and checks `<root>/boards.toml`.
pub fn load(root: &Path) -> Result<Boards> {
    let path = root.join("boards.toml");
    let text =
        fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text).with_context(|| format!("in {}", path.display()))
}

/// Parses and checks the text of a boards.toml.
pub fn parse(text: &str) -> Result<Boards> {
    let boards: Boards = toml::from_str(text)?;
    for (i, board) in boards.boards.iter().enumerate() {
        let name = &board.name;
        if boards.boards[..i].iter().any(|b| &b.name == name) {
            bail!("board {name} appears twice");
        }
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            bail!("board name {name:?}: use lowercase letters, digits and dashes");
        }
        match board.transport {
            Transport::QemuSemihosting if board.qemu.is_none() => {
                bail!("board {name}: transport qemu-semihosting needs qemu = {{ machine, cpu }}")
            }
            Transport::Rtt if board.probe_rs_chip.is_none() => {
                bail!("board {name}: transport rtt needs probe_rs_chip")
            }
            _ => {}
        }
    }
    boards.get(&boards.default).context("`default`")?;
    Ok(boards)
}

impl Boards {
    /// The board called `name`; an unknown name is an error that lists the known ones.
    pub fn get(&self, name: &str) -> Result<&Board> {
        match self.boards.iter().find(|b| b.name == name) {
            Some(board) => Ok(board),
            None => bail!("unknown board {name:?}; known boards: {}", self.names().join(", ")),
        }
    }

    /// The board called `name`, or the default one.
    pub fn get_or_default(&self, name: Option<&str>) -> Result<&Board> {
        self.get(name.unwrap_or(&self.default))
    }

    /// Every board's name, in order.
    pub fn names(&self) -> Vec<&str> {
        self.boards.iter().map(|b| b.name.as_str()).collect()
    }

    /// The boards that run in QEMU.
    pub fn qemu_boards(&self) -> impl Iterator<Item = &Board> {
        self.boards.iter().filter(|b| b.transport == Transport::QemuSemihosting)
    }

    /// A table of the boards, for `cargo xtask boards`.
    pub fn listing(&self) -> String {
        let mut out = String::new();
        let header = ["board", "cpu", "target", "flash", "RAM", "clock", "runs on", "description"];
        let mut rows: Vec<[String; 8]> = vec![header.map(str::to_string)];
        for b in &self.boards {
            let runs_on = match (&b.qemu, &b.probe_rs_chip) {
                (Some(q), _) => format!("qemu-system-arm -machine {}", q.machine),
                (None, Some(chip)) => format!("probe-rs run --chip {chip}"),
                (None, None) => String::new(),
            };
            let mark = if b.name == self.default { " (default)" } else { "" };
            rows.push([
                format!("{}{mark}", b.name),
                b.cpu.clone(),
                b.target.clone(),
                region(b.flash),
                region(b.ram),
                format!("{} MHz", b.clock_hz as f64 / 1e6),
                runs_on,
                b.description.clone(),
            ]);
        }
        let widths: Vec<usize> =
            (0..header.len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
        for row in &rows {
            let cells: Vec<String> =
                row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            writeln!(out, "{}", cells.join("  ").trim_end()).unwrap();
        }
        out
    }
}

/// "4 MiB at 0x20000000".
fn region(r: Region) -> String {
    let size = if r.size.is_multiple_of(1024 * 1024) {
        format!("{} MiB", r.size / (1024 * 1024))
    } else {
        format!("{} KiB", r.size / 1024)
    };
    format!("{size} at {:#010x}", r.origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_boards() -> Boards {
        load(&crate::repo_root()).expect("the repository's boards.toml is valid")
    }

    #[test]
    fn repository_boards_include_the_required_ones() {
        let boards = repo_boards();
        for name in ["mps2-an386", "mps2-an500", "mps2-an505", "nrf52840-dk", "nucleo-h743zi"] {
            boards.get(name).unwrap();
        }
        assert_eq!(boards.default, "mps2-an386");
    }

    #[test]
    fn unknown_board_error_lists_known_boards() {
        let err = repo_boards().get("arduino-uno").unwrap_err().to_string();
        assert!(err.contains("unknown board \"arduino-uno\""), "{err}");
        assert!(err.contains("mps2-an386, mps2-an500"), "{err}");
    }

    #[test]
    fn every_board_has_a_memory_x_and_a_firmware_feature() {
        let root = crate::repo_root();
        let cargo_toml = fs::read_to_string(root.join("firmware/Cargo.toml")).unwrap();
        for board in &repo_boards().boards {
            let memory_x = root.join("firmware/boards").join(&board.name).join("memory.x");
            assert!(memory_x.is_file(), "missing {}", memory_x.display());
            let feature = format!("\nboard-{} = ", board.name);
            assert!(
                cargo_toml.contains(&feature),
                "firmware/Cargo.toml lacks feature board-{}",
                board.name
            );
        }
    }

    #[test]
    fn rejects_rtt_board_without_probe_rs_chip() {
        let text = r#"
            default = "x"
            plan = { code_flash = 1, ram_reserve = 1 }
            [[board]]
            name = "x"
            description = "d"
            target = "thumbv7em-none-eabihf"
            cpu = "cortex-m4f"
            clock_hz = 1
            clock_source = "c"
            flash = { origin = 0, size = 1 }
            ram = { origin = 0, size = 1 }
            transport = "rtt"
        "#;
        let err = parse(text).err().expect("rejected").to_string();
        assert!(err.contains("probe_rs_chip"), "{err}");
    }

    #[test]
    fn rejects_default_that_is_not_a_board() {
        let err =
            parse("default = \"nope\"\nboard = []\nplan = { code_flash = 1, ram_reserve = 1 }\n")
                .err()
                .expect("rejected");
        assert!(format!("{err:#}").contains("unknown board \"nope\""), "{err:#}");
    }
}
