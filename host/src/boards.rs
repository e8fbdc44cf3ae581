//! The boards mote builds for, read from the repository's `boards.toml` (compiled in), and the
//! memory plan of a model on a device: what `mote inspect --board` checks.

use anyhow::{bail, Context as _, Result};
use mote_core::model::HParams;
use mote_core::state::{KvType, RunState};
use mote_core::tokenizer::BpeScratch;
use serde::Deserialize;

/// `boards.toml`, the single source of truth about boards (schema at its top).
const BOARDS_TOML: &str = include_str!("../../boards.toml");

/// What every plan keeps beside the model and the run state: `boards.toml`'s `[plan]`.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// Flash for the firmware's code and read-only data beside the model.
    pub code_flash: u64,
    /// RAM for the stack and the other statics beside the run state and the tokenizer's scratch.
    pub ram_reserve: u64,
}

/// A memory region of a board.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct Region {
    /// Start address.
    pub origin: u64,
    /// Size in bytes.
    pub size: u64,
}

/// One board of `boards.toml` (the fields the host needs).
#[derive(Clone, Debug, Deserialize)]
pub struct Board {
    /// What `--board` takes.
    pub name: String,
    /// One line for listings.
    pub description: String,
    /// Code and read-only data, the model included.
    pub flash: Region,
    /// Statics and the stack.
    pub ram: Region,
}

#[derive(Deserialize)]
struct BoardsFile {
    plan: Budgets,
    board: Vec<Board>,
}

fn read() -> Result<BoardsFile> {
    toml::from_str(BOARDS_TOML).context("boards.toml is malformed")
}

/// Every board, in `boards.toml`'s order.
pub fn all() -> Result<Vec<Board>> {
    Ok(read()?.board)
}

/// What every plan keeps beside the model and the run state.
pub fn budgets() -> Result<Budgets> {
    Ok(read()?.plan)
}

/// The board called `name`; an unknown name lists the known ones.
pub fn find(name: &str) -> Result<Board> {
    let boards = all()?;
    if let Some(b) = boards.iter().find(|b| b.name == name) {
        return Ok(b.clone());
    }
    let known: Vec<&str> = boards.iter().map(|b| b.name.as_str()).collect();
    bail!("unknown board \"{name}\"; known boards: {}", known.join(", "))
}

/// What a model needs of a device, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The whole GGUF file (header, tokenizer and weights are all read in place).
    pub model_flash: u64,
    /// Flash for the model and the firmware's code.
    pub flash: u64,
    /// The run state at full context with a Q8_0 KV cache (F16 when the width is not a multiple
    /// of 32).
    pub run_state: u64,
    /// The KV type the run state was sized with.
    pub kv: KvType,
    /// The tokenizer's working memory.
    pub tokenizer_scratch: u64,
    /// RAM for the run state, the tokenizer and the reserve.
    pub ram: u64,
    /// The budgets the plan was made with.
    pub budgets: Budgets,
}

impl Plan {
    /// The plan for a model file of `model_flash` bytes with hyper-parameters `hp`, with
    /// `budgets` for code and reserve. Q8_0 is the device's KV type; a model whose width is not
    /// whole Q8_0 blocks falls back to F16.
    pub fn new(model_flash: u64, hp: &HParams, budgets: Budgets) -> Self {
        let kv = if hp.n_embd % 32 == 0 { KvType::Q8_0 } else { KvType::F16 };
        let run_state = RunState::bytes_needed(hp, kv) as u64;
        let tokenizer_scratch = std::mem::size_of::<BpeScratch>() as u64;
        Self {
            model_flash,
            flash: model_flash + budgets.code_flash,
            run_state,
            kv,
            tokenizer_scratch,
            ram: run_state + tokenizer_scratch + budgets.ram_reserve,
            budgets,
        }
    }
}

/// How a plan fits a board: bytes left (negative: missing) in flash and RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit {
    /// Flash left over.
    pub flash_margin: i64,
    /// RAM left over.
    pub ram_margin: i64,
}

impl Fit {
    /// Checks `plan` against `board`.
    pub fn new(plan: &Plan, board: &Board) -> Self {
        Self {
            flash_margin: board.flash.size as i64 - plan.flash as i64,
            ram_margin: board.ram.size as i64 - plan.ram as i64,
        }
    }

    /// Whether both margins are non-negative.
    pub fn fits(&self) -> bool {
        self.flash_margin >= 0 && self.ram_margin >= 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_board_and_names_them_on_a_miss() {
        let boards = all().unwrap();
        assert!(boards.iter().any(|b| b.name == "nrf52840-dk" && b.flash.size == 1 << 20));
        let e = find("arduino-uno").unwrap_err().to_string();
        assert!(e.contains("unknown board \"arduino-uno\"") && e.contains("mps2-an386"), "{e}");
    }

    #[test]
    fn plan_adds_code_budget_and_ram_reserve() {
        let hp = HParams {
            n_vocab: 2048,
            n_ctx: 128,
            n_embd: 128,
            n_head: 4,
            n_layer: 2,
            n_ff: 512,
            eps: 1e-5,
            eos_token: None,
        };
        let b = budgets().unwrap();
        assert_eq!(b, Budgets { code_flash: 128 * 1024, ram_reserve: 40 * 1024 });
        let p = Plan::new(800_000, &hp, b);
        assert_eq!(p.kv, KvType::Q8_0);
        assert_eq!(p.flash, 800_000 + b.code_flash);
        assert_eq!(p.ram, p.run_state + p.tokenizer_scratch + b.ram_reserve);
        let nrf = find("nrf52840-dk").unwrap();
        let fit = Fit::new(&p, &nrf);
        assert!(fit.fits());
        assert_eq!(fit.flash_margin, (1 << 20) - 800_000 - b.code_flash as i64);
    }
}
