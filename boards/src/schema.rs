//! The schema of `boards.toml` (documented at the top of that file) and the checks serde cannot
//! make: unique, well-formed names, a transport with what it needs, a `default` that is a board.

use std::fmt;
use std::fs;
use std::path::Path;

use serde::Deserialize;

/// boards.toml as a whole.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Boards {
    /// The board used when none is named.
    pub default: String,
    /// What every memory plan keeps beside the model and the run state.
    #[serde(rename = "plan")]
    pub budgets: Budgets,
    /// Every board, in listing order.
    #[serde(rename = "board")]
    pub boards: Vec<Board>,
}

/// boards.toml's `[plan]`: bytes kept on every board beside the model and the run state.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Flash for the firmware's code and read-only data beside the model.
    pub code_flash: u64,
    /// RAM for the stack and the other statics beside the run state, the tokenizer's scratch and
    /// the prompt.
    pub ram_reserve: u64,
}

/// One board.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Board {
    /// What `--board` takes; the firmware's cargo feature is `board-<name>`.
    pub name: String,
    /// One line for listings.
    pub description: String,
    /// Rust target triple.
    pub target: String,
    /// The core, by its Arm name.
    pub cpu: String,
    /// SysTick's clock in Hz.
    pub clock_hz: u64,
    /// What drives that clock, one phrase (the firmware prints it).
    pub clock_source: String,
    /// Code and read-only data, the model included unless `model` names a region of its own.
    pub flash: Region,
    /// Statics and the stack.
    pub ram: Region,
    /// Read-only memory that holds the model file alone (a board whose code memory is too small
    /// for a model, beside a larger flash elsewhere in its map); `None`: the model is in `flash`.
    #[serde(default)]
    pub model: Option<Region>,
    /// How defmt frames leave the chip.
    pub transport: Transport,
    /// QEMU's machine and cpu (transport = qemu-semihosting).
    pub qemu: Option<Qemu>,
    /// probe-rs's chip name (transport = rtt).
    pub probe_rs_chip: Option<String>,
    /// Extra rustc flags for this board.
    #[serde(default)]
    pub rustflags: Vec<String>,
    /// The arithmetic of the forward pass on this board: float where the core has an FPU,
    /// integer where f32 would be soft-float.
    #[serde(default)]
    pub math: Math,
    /// The example crate, `examples/<example>`, that is this board's firmware: for a chip whose
    /// runtime, linker script and image format are its vendor's (the ESP32-C3's bootloader and
    /// its two flash mappings), which mote's firmware/ does not build for. `None`: firmware/ does.
    #[serde(default)]
    pub example: Option<String>,
}

/// Which arithmetic a board's firmware runs the forward pass in (boards.toml's `math`).
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Math {
    /// f32 outside the int8 dot products: the path every board runs today.
    #[default]
    Float,
    /// Fixed-point integers throughout: for cores without an FPU.
    Integer,
}

impl Math {
    /// The word boards.toml and `--math` use: `float` or `integer`.
    pub fn name(self) -> &'static str {
        match self {
            Math::Float => "float",
            Math::Integer => "integer",
        }
    }
}

/// A range of the address space.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// First address.
    pub origin: u64,
    /// Length in bytes.
    pub size: u64,
}

impl Region {
    /// Whether `addr` lies in the region.
    pub fn contains(&self, addr: u64) -> bool {
        addr >= self.origin && addr < self.origin + self.size
    }
}

/// How defmt frames leave the chip.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// Semihosting, in QEMU.
    QemuSemihosting,
    /// RTT, read by a debug probe.
    Rtt,
}

/// QEMU's view of a board.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Qemu {
    /// `-machine`.
    pub machine: String,
    /// `-cpu`.
    pub cpu: String,
}

/// What is wrong with a boards.toml, or with a board name asked of one.
#[derive(Debug)]
pub struct Error(String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Whether `s` is a name boards.toml accepts for a board or an example: lowercase letters, digits
/// and dashes, not empty.
fn is_dashed_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

impl Boards {
    /// The boards.toml this crate was built with ([`crate::BOARDS_TOML`]).
    pub fn builtin() -> Result<Self, Error> {
        Self::parse(crate::BOARDS_TOML).map_err(|e| Error(format!("boards.toml is malformed: {e}")))
    }

    /// Reads and checks the boards.toml at `path`.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = fs::read_to_string(path)
            .map_err(|e| Error(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| Error(format!("in {}: {e}", path.display())))
    }

    /// Parses and checks the text of a boards.toml.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let boards: Boards = toml::from_str(text).map_err(|e| Error(e.to_string()))?;
        for (i, board) in boards.boards.iter().enumerate() {
            let name = &board.name;
            if boards.boards[..i].iter().any(|b| &b.name == name) {
                return Err(Error(format!("board {name} appears twice")));
            }
            if !is_dashed_name(name) {
                return Err(Error(format!(
                    "board name {name:?}: use lowercase letters, digits and dashes"
                )));
            }
            if let Some(example) = &board.example {
                if !is_dashed_name(example) {
                    return Err(Error(format!(
                        "board {name}: example {example:?}: name a directory of examples/ \
                         (lowercase letters, digits and dashes)"
                    )));
                }
            }
            let missing = match board.transport {
                Transport::QemuSemihosting if board.qemu.is_none() => "qemu = { machine, cpu }",
                Transport::Rtt if board.probe_rs_chip.is_none() => "probe_rs_chip",
                _ => continue,
            };
            let transport = match board.transport {
                Transport::QemuSemihosting => "qemu-semihosting",
                Transport::Rtt => "rtt",
            };
            return Err(Error(format!("board {name}: transport {transport} needs {missing}")));
        }
        boards.get(&boards.default).map_err(|e| Error(format!("`default`: {e}")))?;
        Ok(boards)
    }

    /// The board called `name`; an unknown name is an error that lists the known ones.
    pub fn get(&self, name: &str) -> Result<&Board, Error> {
        self.boards.iter().find(|b| b.name == name).ok_or_else(|| {
            Error(format!("unknown board {name:?}; known boards: {}", self.names().join(", ")))
        })
    }

    /// The board called `name`, or the default one.
    pub fn get_or_default(&self, name: Option<&str>) -> Result<&Board, Error> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn repo_root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
    }

    #[test]
    fn repository_boards_include_the_required_ones() {
        let boards = Boards::load(&repo_root().join("boards.toml")).unwrap();
        for name in [
            "mps2-an385",
            "mps2-an386",
            "mps2-an500",
            "mps2-an505",
            "netduino2",
            "netduinoplus2",
            "nrf52840-dk",
            "nucleo-h743zi",
        ] {
            boards.get(name).unwrap();
        }
        assert_eq!(boards.default, "mps2-an386");
        assert_eq!(boards.get("nrf52840-dk").unwrap().flash.size, 1 << 20);
        assert_eq!(boards.budgets, Budgets { code_flash: 84 * 1024, ram_reserve: 12 * 1024 });
    }

    #[test]
    fn math_defaults_to_float_and_fpu_less_boards_say_integer() {
        let boards = Boards::builtin().unwrap();
        assert_eq!(boards.get("mps2-an386").unwrap().math, Math::Float);
        assert_eq!(boards.get("mps2-an385").unwrap().math, Math::Integer);
        let text = |math: &str| {
            format!(
                "default = \"x\"\nplan = {{ code_flash = 1, ram_reserve = 1 }}\n[[board]]\n\
                 name = \"x\"\ndescription = \"d\"\ntarget = \"t\"\ncpu = \"c\"\n\
                 clock_hz = 1\nclock_source = \"c\"\nflash = {{ origin = 0, size = 1 }}\n\
                 ram = {{ origin = 0, size = 1 }}\ntransport = \"qemu-semihosting\"\n\
                 qemu = {{ machine = \"m\", cpu = \"c\" }}\n{math}"
            )
        };
        assert_eq!(Boards::parse(&text("")).unwrap().boards[0].math, Math::Float);
        let integer = Boards::parse(&text("math = \"integer\"")).unwrap();
        assert_eq!(integer.boards[0].math, Math::Integer);
        let err = Boards::parse(&text("math = \"fixed\"")).expect_err("rejected").to_string();
        assert!(err.contains("unknown variant `fixed`"), "{err}");
    }

    #[test]
    fn unknown_board_error_lists_known_boards() {
        let err = Boards::builtin().unwrap().get("arduino-uno").unwrap_err().to_string();
        assert!(err.contains("unknown board \"arduino-uno\""), "{err}");
        assert!(err.contains("mps2-an386, mps2-an500"), "{err}");
    }

    #[test]
    fn every_board_has_a_memory_x_and_a_firmware_feature() {
        let root = repo_root();
        let cargo_toml = fs::read_to_string(root.join("firmware/Cargo.toml")).unwrap();
        for board in Boards::builtin().unwrap().boards.iter().filter(|b| b.example.is_none()) {
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
    fn every_example_board_has_its_crate() {
        let root = repo_root();
        for board in &Boards::builtin().unwrap().boards {
            if let Some(example) = &board.example {
                let manifest = root.join("examples").join(example).join("Cargo.toml");
                assert!(manifest.is_file(), "board {}: missing {}", board.name, manifest.display());
            }
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
        let err = Boards::parse(text).expect_err("rejected").to_string();
        assert!(err.contains("transport rtt needs probe_rs_chip"), "{err}");
    }

    #[test]
    fn rejects_default_that_is_not_a_board() {
        let text = "default = \"nope\"\nboard = []\nplan = { code_flash = 1, ram_reserve = 1 }\n";
        let err = Boards::parse(text).expect_err("rejected").to_string();
        assert!(err.contains("unknown board \"nope\""), "{err}");
    }
}
