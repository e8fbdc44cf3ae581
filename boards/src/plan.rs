//! The memory plan: what a model needs of a device (flash for the file and the code, RAM for the
//! run state, the tokenizer, the prompt and a reserve), and how it fits a board. `mote inspect
//! --board` prints it, the firmware's build script refuses a build it rules out, and `cargo xtask
//! size` checks a build against it.

use mote_core::beam::BeamSearch;
use mote_core::model::HParams;
use mote_core::quant::QK8_0;
use mote_core::state::{KvType, RunState};
use mote_core::tokenizer::BpeScratch;

use crate::schema::{Board, Budgets};

/// The device's KV type for a model: Q8_0, or F16 when the width is not whole Q8_0 blocks.
pub fn device_kv(hp: &HParams) -> KvType {
    if kv_fits(hp, KvType::Q8_0) {
        KvType::Q8_0
    } else {
        KvType::F16
    }
}

/// Whether a KV cache of type `kv` can hold the model's rows: Q8_0 needs the width in whole blocks.
pub fn kv_fits(hp: &HParams, kv: KvType) -> bool {
    kv != KvType::Q8_0 || hp.n_embd % QK8_0 == 0
}

/// What a model needs of a device, in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The whole GGUF file (header, tokenizer and weights are all read in place).
    pub model_flash: u64,
    /// Flash for the model and the firmware's code.
    pub flash: u64,
    /// The KV type the run state is sized with.
    pub kv: KvType,
    /// Beams the run state holds (1: no beam search).
    pub beams: usize,
    /// The run state at full context (with beams, [`BeamSearch::bytes_needed`]).
    pub run_state: u64,
    /// The tokenizer's working memory.
    pub tokenizer_scratch: u64,
    /// The prompt's token ids (none when the plan is for no particular prompt).
    pub prompt: u64,
    /// RAM for the run state, the tokenizer, the prompt and the reserve.
    pub ram: u64,
    /// The budgets the plan was made with.
    pub budgets: Budgets,
}

impl Plan {
    /// The plan for a model file of `model_flash` bytes with hyper-parameters `hp`, a KV cache
    /// of type `kv` and a prompt of `prompt_tokens` ids, with `budgets` for code and reserve.
    pub fn new(
        model_flash: u64,
        hp: &HParams,
        kv: KvType,
        prompt_tokens: usize,
        budgets: Budgets,
    ) -> Self {
        Self::with_beams(model_flash, hp, kv, prompt_tokens, 1, budgets)
    }

    /// [`Plan::new`] for a beam search over `beams` beams (1: none).
    pub fn with_beams(
        model_flash: u64,
        hp: &HParams,
        kv: KvType,
        prompt_tokens: usize,
        beams: usize,
        budgets: Budgets,
    ) -> Self {
        let run_state = if beams > 1 {
            BeamSearch::bytes_needed(hp, kv, beams) as u64
        } else {
            RunState::bytes_needed(hp, kv) as u64
        };
        let tokenizer_scratch = std::mem::size_of::<BpeScratch>() as u64;
        let prompt = (std::mem::size_of::<u32>() * prompt_tokens) as u64;
        Self {
            model_flash,
            flash: model_flash + budgets.code_flash,
            kv,
            beams,
            run_state,
            tokenizer_scratch,
            prompt,
            ram: run_state + tokenizer_scratch + prompt + budgets.ram_reserve,
            budgets,
        }
    }
}

/// How a plan fits a board: bytes left (negative: missing) in flash and RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fit {
    /// Flash left over: in the code memory, or, on a board with a model region, in whichever of
    /// the two has less room.
    pub flash_margin: i64,
    /// RAM left over.
    pub ram_margin: i64,
}

impl Fit {
    /// Checks `plan` against `board`.
    pub fn new(plan: &Plan, board: &Board) -> Self {
        let flash_margin = match board.model {
            None => board.flash.size as i64 - plan.flash as i64,
            Some(model) => {
                let code = plan.flash - plan.model_flash;
                (board.flash.size as i64 - code as i64)
                    .min(model.size as i64 - plan.model_flash as i64)
            }
        };
        Self { flash_margin, ram_margin: board.ram.size as i64 - plan.ram as i64 }
    }

    /// Whether both margins are non-negative.
    pub fn fits(&self) -> bool {
        self.flash_margin >= 0 && self.ram_margin >= 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Math, Region, Transport};
    use crate::Boards;

    /// A small GPT-2: width 128 (whole Q8_0 blocks), context 128.
    const HP: HParams = HParams {
        n_vocab: 2048,
        n_ctx: 128,
        n_embd: 128,
        n_head: 4,
        n_layer: 2,
        n_ff: 512,
        eps: 1e-5,
        eos_token: None,
    };

    #[test]
    fn plan_adds_code_budget_ram_reserve_and_prompt() {
        let boards = Boards::builtin().unwrap();
        let b = boards.budgets;
        let p = Plan::new(800_000, &HP, device_kv(&HP), 0, b);
        assert_eq!(p.kv, KvType::Q8_0);
        assert_eq!(p.flash, 800_000 + b.code_flash);
        assert_eq!(p.ram, p.run_state + p.tokenizer_scratch + b.ram_reserve);
        assert_eq!(Plan::new(800_000, &HP, p.kv, 4, b).ram, p.ram + 16);
        let fit = Fit::new(&p, boards.get("nrf52840-dk").unwrap());
        assert!(fit.fits());
        assert_eq!(fit.flash_margin, (1 << 20) - 800_000 - b.code_flash as i64);
    }

    /// A board with an STM32F405's memory: 1 MiB of flash, 128 KiB of SRAM (its 64 KiB of CCM
    /// aside, which a DMA or a plan cannot count on).
    fn stm32f405_like() -> Board {
        Board {
            name: "stm32f405-like".into(),
            description: "1 MiB of flash, 128 KiB of RAM".into(),
            target: "thumbv7em-none-eabihf".into(),
            cpu: "cortex-m4f".into(),
            clock_hz: 16_000_000,
            clock_source: "16 MHz internal RC oscillator (HSI), the reset default".into(),
            flash: Region { origin: 0x0800_0000, size: 1 << 20 },
            ram: Region { origin: 0x2000_0000, size: 128 << 10 },
            model: None,
            transport: Transport::Rtt,
            qemu: None,
            probe_rs_chip: Some("STM32F405RGTx".into()),
            rustflags: Vec::new(),
            math: Math::Float,
            example: None,
        }
    }

    #[test]
    fn default_model_fits_1_mib_of_flash_and_128_kib_of_ram() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let blob = std::fs::read(root.join(crate::DEFAULT_MODEL)).unwrap();
        let hp = HParams::from_gguf(&mote_core::gguf::Gguf::parse(&blob).unwrap()).unwrap();
        let boards = Boards::load(&root.join("boards.toml")).unwrap();
        let plan = Plan::new(blob.len() as u64, &hp, device_kv(&hp), 0, boards.budgets);
        let fit = Fit::new(&plan, &stm32f405_like());
        println!(
            "default model on 1 MiB / 128 KiB: flash {} of {} (margin {}), RAM {} of {} (margin {})",
            plan.flash,
            1 << 20,
            fit.flash_margin,
            plan.ram,
            128 << 10,
            fit.ram_margin
        );
        assert!(fit.fits(), "{plan:?} does not fit: {fit:?}");
    }

    #[test]
    fn a_model_region_holds_the_model_and_the_code_memory_the_code() {
        let boards = Boards::builtin().unwrap();
        let b = boards.budgets;
        let an547 = boards.get("mps3-an547").unwrap();
        let model = an547.model.expect("mps3-an547 keeps its model in QSPI flash");
        let p = Plan::new(884_000, &HP, device_kv(&HP), 0, b);
        assert!(p.flash > an547.flash.size, "the test needs a model too big for the ITCM");
        let fit = Fit::new(&p, an547);
        assert_eq!(
            fit.flash_margin,
            (an547.flash.size as i64 - b.code_flash as i64).min(model.size as i64 - 884_000)
        );
        assert!(fit.fits());
        let huge = Plan::new(model.size + 1, &HP, device_kv(&HP), 0, b);
        assert_eq!(Fit::new(&huge, an547).flash_margin, -1);
    }

    #[test]
    fn beams_grow_the_run_state_by_whole_beams() {
        let b = Boards::builtin().unwrap().budgets;
        let kv = device_kv(&HP);
        let one = Plan::new(800_000, &HP, kv, 0, b);
        let (two, four) = (
            Plan::with_beams(800_000, &HP, kv, 0, 2, b),
            Plan::with_beams(800_000, &HP, kv, 0, 4, b),
        );
        let per = BeamSearch::bytes_per_beam(&HP, kv) as u64;
        assert_eq!(two.run_state, BeamSearch::bytes_needed(&HP, kv, 2) as u64);
        assert!(two.run_state > one.run_state);
        assert_eq!(four.run_state, two.run_state + 2 * per);
        assert_eq!(four.ram - one.ram, four.run_state - one.run_state);
        assert_eq!((one.beams, four.beams), (1, 4));
    }

    #[test]
    fn width_outside_q8_0_blocks_falls_back_to_f16() {
        let hp = HParams { n_embd: 120, n_head: 4, ..HP };
        assert_eq!(device_kv(&hp), KvType::F16);
        assert!(!kv_fits(&hp, KvType::Q8_0) && kv_fits(&hp, KvType::F32));
    }
}
