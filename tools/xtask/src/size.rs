//! `cargo xtask size`: the generating firmware's flash and RAM as built and run, next to the plan
//! of `mote inspect --board`.

use std::fs;
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use clap::Args;
use mote_boards::DEFAULT_MODEL;
use object::read::elf::{ElfFile32, ProgramHeader as _};
use object::{Object, ObjectSection, ObjectSymbol};

use crate::boards::Board;
use crate::device::{host_mote, run_device, BIN};
use crate::firmware::{self, Options};
use crate::shell;
use crate::size_table::{size_table, SizeTable};

/// How far the plan of `mote inspect --board` may be from what the build and the run use.
pub const PLAN_TOLERANCE: u64 = 4 * 1024;

/// Options of `cargo xtask size`.
#[derive(Args)]
pub struct SizeArgs {
    /// Board (default: boards.toml's default).
    #[arg(long)]
    pub board: Option<String>,
    /// Write the table by crate and module into docs/size.md (the default board's build only)
    #[arg(long)]
    pub bless: bool,
}

/// The document that keeps the default board's size table, and the markers around the table.
const SIZE_DOC: &str = "docs/size.md";
const TABLE_BEGIN: &str = "<!-- size table: written by `cargo xtask size --bless` -->";
const TABLE_END: &str = "<!-- end of size table -->";

/// Flash and RAM of a built ELF, by region and by the symbols the generating binary names.
#[derive(Debug)]
pub struct Footprint {
    /// Bytes loaded into flash (code, read-only data, the model, .data's initial values).
    pub flash: u64,
    /// Bytes of statics in RAM (.data, .bss, .uninit).
    pub ram_statics: u64,
    /// The embedded model (`MOTE_MODEL`).
    pub model: u64,
    /// The run state's storage (`MOTE_RUN_STATE`).
    pub run_state: u64,
    /// The tokenizer's scratch (`MOTE_BPE_SCRATCH`).
    pub tokenizer_scratch: u64,
    /// The prompt's ids (`MOTE_PROMPT_IDS`).
    pub prompt_ids: u64,
}

/// Whether `addr` is in `board`'s flash or in its model region (read-only memory both).
fn in_flash(board: &Board, addr: u64) -> bool {
    board.flash.contains(addr) || board.model.is_some_and(|m| m.contains(addr))
}

/// Reads `elf`'s footprint on `board`.
pub fn footprint(elf: &Path, board: &Board) -> Result<Footprint> {
    let data = fs::read(elf).with_context(|| format!("cannot read {}", elf.display()))?;
    let file = ElfFile32::<object::LittleEndian>::parse(&*data)
        .with_context(|| format!("{} is not a 32-bit ELF", elf.display()))?;
    let endian = file.endian();
    let (mut flash, mut ram) = (0u64, 0u64);
    for ph in file.elf_program_headers() {
        if ph.p_type(endian) != object::elf::PT_LOAD {
            continue;
        }
        let (paddr, vaddr) = (u64::from(ph.p_paddr(endian)), u64::from(ph.p_vaddr(endian)));
        if in_flash(board, paddr) {
            flash += u64::from(ph.p_filesz(endian));
        }
        if board.ram.contains(vaddr) {
            ram += u64::from(ph.p_memsz(endian));
        }
    }
    // riscv-rt's link.x describes the heap and the stack as sections (`.heap`, `.stack`, no bytes
    // in the file) that share the segment of `.bss`: they are not statics.
    for section in file.sections() {
        if matches!(section.name(), Ok(".heap" | ".stack")) && board.ram.contains(section.address())
        {
            ram = ram.saturating_sub(section.size());
        }
    }
    // By plain name (`#[no_mangle]`) or as the last part of a mangled path: `...14MOTE_RUN_STATE`
    // (v0 mangling) or `...14MOTE_RUN_STATE17h<hash>E` (legacy).
    let symbol = |name: &str| -> Result<u64> {
        let part = format!("{}{name}", name.len());
        file.symbols()
            .find(|s| {
                s.name().is_ok_and(|n| {
                    n == name || n.ends_with(&part) || n.contains(&format!("{part}17h"))
                })
            })
            .map(|s| s.size())
            .with_context(|| format!("{} has no symbol {name}", elf.display()))
    };
    Ok(Footprint {
        flash,
        ram_statics: ram,
        model: symbol("MOTE_MODEL")?,
        run_state: symbol("MOTE_RUN_STATE")?,
        tokenizer_scratch: symbol("MOTE_BPE_SCRATCH")?,
        prompt_ids: symbol("MOTE_PROMPT_IDS")?,
    })
}

/// Replaces the table between the markers of docs/size.md with `table`.
fn bless_table(root: &Path, table: &SizeTable) -> Result<()> {
    let path = root.join(SIZE_DOC);
    let doc = fs::read_to_string(&path).with_context(|| format!("cannot read {SIZE_DOC}"))?;
    let (head, rest) = doc
        .split_once(TABLE_BEGIN)
        .with_context(|| format!("{SIZE_DOC} has no line {TABLE_BEGIN}"))?;
    let (_, tail) = rest
        .split_once(TABLE_END)
        .with_context(|| format!("{SIZE_DOC} has no line {TABLE_END}"))?;
    let new = format!("{head}{TABLE_BEGIN}\n\n{}\n{TABLE_END}{tail}", table.markdown());
    fs::write(&path, new).with_context(|| format!("cannot write {SIZE_DOC}"))?;
    println!("  wrote the table into {SIZE_DOC}");
    Ok(())
}

/// What `mote inspect --board B --json` plans for the model on the board.
#[derive(Debug)]
pub struct PlanBytes {
    model_flash: u64,
    code_budget: u64,
    run_state: u64,
    tokenizer_scratch: u64,
    reserve: u64,
    ram: u64,
}

fn plan(mote: &Path, board: &Board, model: &Path) -> Result<PlanBytes> {
    let mut cmd = Command::new(mote);
    cmd.args(["inspect", "--json", "--board", &board.name]).arg(model);
    println!("$ {}", shell::show(&cmd));
    let out = cmd.output().context("cannot run mote inspect")?;
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!("mote inspect printed no JSON: {}", String::from_utf8_lossy(&out.stderr))
    })?;
    let device = &json["memory"]["ram"]["device"];
    let get = |v: &serde_json::Value, what: &str| -> Result<u64> {
        v.as_u64().with_context(|| format!("mote inspect's JSON has no {what}"))
    };
    Ok(PlanBytes {
        model_flash: get(&json["memory"]["flash_bytes"], "memory.flash_bytes")?,
        code_budget: get(&device["code_flash_budget_bytes"], "code_flash_budget_bytes")?,
        run_state: get(&device["run_state_bytes"], "run_state_bytes")?,
        tokenizer_scratch: get(&device["tokenizer_scratch_bytes"], "tokenizer_scratch_bytes")?,
        reserve: get(&device["reserve_bytes"], "reserve_bytes")?,
        ram: get(&device["ram_bytes"], "ram_bytes")?,
    })
}

/// `cargo xtask size`: the generating firmware's flash and RAM as built (and its stack as run, on
/// a QEMU board), next to the plan of `mote inspect --board`; fails when they disagree by more
/// than [`PLAN_TOLERANCE`] or the code outgrows its budget.
pub fn run(root: &Path, board: &Board, bless: bool) -> Result<()> {
    let mote = host_mote(root)?;
    let options = Options { bin: Some(BIN.to_string()), release: true, ..Options::default() };
    let stack = if board.qemu.is_some() {
        Some(run_device(root, board, &options)?.stack)
    } else {
        firmware::build(root, board, &options)?;
        None
    };
    let elf = firmware::elf_dir(root, &board.name, true).join(BIN);
    let fp = footprint(&elf, board)?;
    let table = {
        let data = fs::read(&elf).with_context(|| format!("cannot read {}", elf.display()))?;
        let file = object::File::parse(&*data)
            .with_context(|| format!("{} is not an ELF", elf.display()))?;
        size_table(&file, |a| in_flash(board, a), |a| board.ram.contains(a))
    };
    println!("\n{BIN} on {} (release), flash by crate and module:\n", board.name);
    print!("{}", table.markdown());
    if bless {
        ensure!(
            board.name == crate::boards::load(root)?.default,
            "--bless writes {SIZE_DOC}, which holds the default board's table"
        );
        bless_table(root, &table)?;
    }
    let p = plan(&mote, board, &root.join(DEFAULT_MODEL))?;
    let code = fp.flash - fp.model;
    let other_statics = fp.ram_statics - fp.run_state - fp.tokenizer_scratch - fp.prompt_ids;
    let kib = |b: u64| format!("{:.1} KiB", b as f64 / 1024.0);
    println!("\n{BIN} on {} (release), next to `mote inspect --board {}`:", board.name, board.name);
    println!("  {:<34} {:>10} {:>10}", "", "built", "planned");
    let row = |what: &str, built: u64, planned: Option<u64>| {
        let planned = planned.map_or(String::from("-"), |p| p.to_string());
        println!("  {what:<34} {built:>10} {planned:>10}");
    };
    row("flash: model", fp.model, Some(p.model_flash));
    row("flash: code and other data", code, Some(p.code_budget));
    row("flash: total", fp.flash, Some(p.model_flash + p.code_budget));
    row("RAM: run state", fp.run_state, Some(p.run_state));
    row("RAM: tokenizer scratch", fp.tokenizer_scratch, Some(p.tokenizer_scratch));
    row("RAM: prompt ids", fp.prompt_ids, None);
    row("RAM: other statics", other_statics, None);
    row("RAM: statics total", fp.ram_statics, Some(p.run_state + p.tokenizer_scratch));
    if let Some(stack) = stack {
        row("RAM: stack peak (measured)", stack, None);
        row("RAM: total with stack", fp.ram_statics + stack, Some(p.ram));
    }
    println!(
        "  code {} (goal: at most 48 KiB); RAM beyond the run state {} + stack {} (goal: at most \
         8 KiB + stack); plan reserve for stack and other statics {}",
        kib(code),
        kib(fp.ram_statics - fp.run_state),
        stack.map_or("not measured".to_string(), kib),
        kib(p.reserve)
    );

    let mut problems = Vec::new();
    let mut close = |what: &str, built: u64, planned: u64| {
        if built.abs_diff(planned) > PLAN_TOLERANCE {
            problems.push(format!("{what}: built {built}, planned {planned}"));
        }
    };
    close("model flash", fp.model, p.model_flash);
    close("run state", fp.run_state, p.run_state);
    close("statics", fp.ram_statics, p.run_state + p.tokenizer_scratch);
    if code > p.code_budget {
        problems.push(format!("code is {code} bytes, over the plan's budget of {}", p.code_budget));
    }
    if let Some(stack) = stack {
        if fp.ram_statics + stack > p.ram {
            problems.push(format!(
                "statics {} + stack {stack} exceed the plan's RAM {}",
                fp.ram_statics, p.ram
            ));
        }
    }
    ensure!(
        problems.is_empty(),
        "the build departs from the plan by more than {PLAN_TOLERANCE} bytes: {}",
        problems.join("; ")
    );
    println!("  agrees with the plan within {PLAN_TOLERANCE} bytes");
    Ok(())
}
