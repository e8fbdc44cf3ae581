//! `mote inspect`: what a GGUF model holds (metadata, tensors, totals) and what it costs a device:
//! flash for the file, RAM for the run state.
//!
//! The file is memory-mapped ([`ModelFile`]) and read with `mote_core::gguf`, the reader the device
//! uses, so a file that inspects cleanly parses on the device too.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use mote_boards::{device_kv, kv_fits, Boards, Budgets, Fit, Plan};
use mote_core::beam::{BeamSearch, MAX_BEAMS};
use mote_core::gguf::{Gguf, Value, RUNNABLE_TYPES_ADVICE};
use mote_core::model::HParams;
use mote_core::state::{KvType, RunState};

use crate::model_file::{ModelFile, BUNDLED};
use serde_json::{json, Value as Json};

/// Arrays longer than this are summarised (length, element type, first few elements).
const ARRAY_PREVIEW: usize = 5;

/// Arguments of `mote inspect`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The GGUF model file, or a bundled model by name (tinystories-base, tinystories-small);
    /// without it, the bundled tinystories-base (with `--boards`: every bundled model).
    pub model: Option<PathBuf>,
    /// Check the model against a board's flash and RAM (see boards.toml).
    #[arg(long)]
    pub board: Option<String>,
    /// Which boards of boards.toml the model fits, with the flash and RAM margins, in place of
    /// the model's contents; without MODEL, for every bundled model.
    #[arg(long, conflicts_with = "board")]
    pub boards: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Plan the board's RAM for a beam search over N beams (`mote generate --num-beams N`, the
    /// firmware's `--num-beams N`).
    #[arg(long, default_value_t = 1, requires = "board")]
    pub beams: usize,
}

/// Runs `mote inspect`.
pub fn run(args: Args) -> Result<()> {
    if args.beams == 0 || args.beams > MAX_BEAMS {
        anyhow::bail!("--beams {}: give 1 (no beam search) to {MAX_BEAMS}", args.beams);
    }
    if args.boards {
        return run_boards(&args);
    }
    let file = ModelFile::open_arg(args.model.as_deref())?;
    let g = file.gguf()?;
    let boards = Boards::builtin()?;
    let mut report = report(&g, boards.budgets);
    if let Some(name) = &args.board {
        let board = boards.get(name)?;
        let hp = HParams::from_gguf(&g).with_context(|| {
            format!("{} is not a GPT-2 model, so it has no device plan", file.name())
        })?;
        let plan = Plan::with_beams(
            g.blob().len() as u64,
            &hp,
            device_kv(&hp),
            0,
            args.beams,
            boards.budgets,
        );
        let fit = Fit::new(&plan, board);
        report["board"] = json!({
            "name": board.name,
            "math": board.math.name(),
            "beams": plan.beams,
            "run_state_bytes": plan.run_state,
            "ram_needed": plan.ram,
            "flash_bytes": board.flash.size,
            "model_region_bytes": board.model.map(|m| m.size),
            "ram_bytes": board.ram.size,
            "flash_margin": fit.flash_margin,
            "ram_margin": fit.ram_margin,
            "fits": fit.fits(),
        });
    }
    let text =
        if args.json { serde_json::to_string_pretty(&report)? + "\n" } else { text(&report) };
    match std::io::stdout().write_all(text.as_bytes()) {
        // `mote inspect | head` closes the pipe early: not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other.context("cannot write to stdout")?,
    }
    // A model that does not fit its board is a failure a script can see.
    let b = &report["board"];
    if b["fits"] == false {
        let beams =
            if args.beams > 1 { format!(" with {} beams", args.beams) } else { String::new() };
        anyhow::bail!(
            "{}{beams} does not fit board {}: flash margin {} bytes, RAM margin {} bytes",
            file.name(),
            b["name"].as_str().unwrap_or(""),
            b["flash_margin"],
            b["ram_margin"]
        );
    }
    Ok(())
}

/// `mote inspect --boards`: for each model, its device plan and every board's margins.
fn run_boards(args: &Args) -> Result<()> {
    let boards = Boards::builtin()?;
    let files: Vec<(String, ModelFile)> = match &args.model {
        Some(m) => vec![(m.display().to_string(), ModelFile::open_arg(Some(m))?)],
        None => BUNDLED
            .iter()
            .filter_map(|(name, _)| Some((name.to_string(), ModelFile::named(name)?)))
            .collect(),
    };
    let mut models = Vec::new();
    for (label, file) in &files {
        let g = file.gguf()?;
        let hp = HParams::from_gguf(&g).with_context(|| {
            format!("{} is not a GPT-2 model, so it has no device plan", file.name())
        })?;
        let plan = Plan::new(g.blob().len() as u64, &hp, device_kv(&hp), 0, boards.budgets);
        let fits: Vec<Json> = boards
            .boards
            .iter()
            .map(|board| {
                let fit = Fit::new(&plan, board);
                json!({"board": board.name, "fits": fit.fits(),
                       "flash_margin": fit.flash_margin, "ram_margin": fit.ram_margin})
            })
            .collect();
        models.push(json!({
            "model": label,
            "file_bytes": g.blob().len(),
            "flash_bytes": plan.flash,
            "ram_bytes": plan.ram,
            "kv": plan.kv.name(),
            "boards": fits,
        }));
    }
    let report = json!({"code_flash_budget_bytes": boards.budgets.code_flash, "models": models});
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        boards_text(&report)
    };
    match std::io::stdout().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("cannot write to stdout"),
    }
}

/// The `--boards` table: per model, what it needs, then one line per board.
fn boards_text(r: &Json) -> String {
    let mut out = String::new();
    for m in r["models"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{}: flash {} bytes (file {} + code budget {}), RAM {} bytes ({} KV)",
            m["model"].as_str().unwrap_or(""),
            m["flash_bytes"],
            m["file_bytes"],
            r["code_flash_budget_bytes"],
            m["ram_bytes"],
            m["kv"].as_str().unwrap_or("")
        );
        let _ = writeln!(
            out,
            "  {:16} {:4} {:>13} {:>13}",
            "board", "fits", "flash margin", "RAM margin"
        );
        for b in m["boards"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "  {:16} {:4} {:>13} {:>13}",
                b["board"].as_str().unwrap_or(""),
                if b["fits"] == true { "yes" } else { "no" },
                b["flash_margin"].to_string(),
                b["ram_margin"].to_string()
            );
        }
    }
    out
}

/// Everything `mote inspect` reports, as JSON (the `--json` output; the text output prints the same),
/// with the device plan made with `budgets`.
pub fn report(g: &Gguf<'_>, budgets: Budgets) -> Json {
    let metadata: Vec<Json> = g
        .metadata()
        .map(|(key, value)| json!({"key": key, "type": type_name(&value), "value": value_json(&value)}))
        .collect();
    let mut tensors = Vec::new();
    let (mut params, mut bytes) = (0u64, 0u64);
    let mut by_type: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
    for t in g.tensors() {
        let n = t.n_elements();
        params += n;
        bytes += t.data.len() as u64;
        let e = by_type.entry(t.ty.name()).or_default();
        e.0 += 1;
        e.1 += t.data.len() as u64;
        tensors
            .push(json!({"name": t.name, "type": t.ty.name(), "shape": t.shape(), "elements": n,
                            "bytes": t.data.len()}));
    }
    let types: Vec<Json> =
        by_type.iter().map(|(ty, (n, b))| json!({"type": ty, "tensors": n, "bytes": b})).collect();
    // Types the file holds that mote cannot compute with: the file inspects, but does not run.
    let mut unsupported: Vec<&str> =
        g.tensors().filter(|t| t.ty.runnable().is_none()).map(|t| t.ty.name()).collect();
    unsupported.sort_unstable();
    unsupported.dedup();
    let runnable = if unsupported.is_empty() {
        json!({"ok": true})
    } else {
        json!({"ok": false, "unsupported_types": unsupported, "advice": RUNNABLE_TYPES_ADVICE})
    };
    json!({
        "metadata": metadata,
        "notes": notes(g),
        "tensors": tensors,
        "runnable": runnable,
        "totals": {"tensors": g.n_tensors(), "parameters": params, "tensor_bytes": bytes, "by_type": types},
        "memory": {
            // The whole file is flashed: header and tokenizer are read in place like the weights.
            "flash_bytes": g.blob().len(),
            "ram": ram_plan(g, budgets),
        },
    })
}

/// What the converter changed from the checkpoint and recorded in the metadata, in words.
fn notes(g: &Gguf<'_>) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(Value::Array(a)) = g.get(crate::convert::QUERY_SCALE_KEY) {
        let scales: Vec<String> = a
            .iter()
            .map(
                |x| if let Value::F32(f) = x { f.to_string() } else { scalar_json(&x).to_string() },
            )
            .collect();
        notes.push(format!(
            "the checkpoint's attention scale was folded into the query weights at conversion \
             (per layer: {}); the file is standard GPT-2",
            scales.join(", ")
        ));
    }
    notes
}

/// RAM for the run state at full context per KV type, and the whole device plan (run state with
/// the device's KV type, tokenizer scratch, stack and statics); `null` for a file that is not a
/// GPT-2 model mote can run.
fn ram_plan(g: &Gguf<'_>, budgets: Budgets) -> Json {
    let Ok(hp) = HParams::from_gguf(g) else { return Json::Null };
    let mut run_state = serde_json::Map::new();
    for kv in [KvType::Q8_0, KvType::F16, KvType::F32] {
        let bytes = kv_fits(&hp, kv).then(|| RunState::bytes_needed(&hp, kv));
        run_state.insert(kv.name().to_string(), json!(bytes));
    }
    let plan = Plan::new(g.blob().len() as u64, &hp, device_kv(&hp), 0, budgets);
    json!({
        "n_ctx": hp.n_ctx,
        "run_state_bytes": run_state,
        // What each beam of a beam search adds to the device's run state, from two beams up: its
        // KV cache, position map, tokens and a finished hypothesis.
        "bytes_per_beam": BeamSearch::bytes_per_beam(&hp, plan.kv),
        "device": {
            "kv": plan.kv.name(),
            "run_state_bytes": plan.run_state,
            "tokenizer_scratch_bytes": plan.tokenizer_scratch,
            "reserve_bytes": plan.budgets.ram_reserve,
            "ram_bytes": plan.ram,
            "flash_bytes": plan.flash,
            "code_flash_budget_bytes": plan.budgets.code_flash,
        },
    })
}

fn type_name(v: &Value<'_>) -> String {
    match v {
        Value::Array(a) => format!("[{:?}; {}]", a.elem_type(), a.len()),
        other => format!("{:?}", other.value_type()),
    }
}

fn scalar_json(v: &Value<'_>) -> Json {
    match *v {
        Value::F32(x) => json!(x),
        Value::F64(x) => json!(x),
        Value::Bool(x) => json!(x),
        Value::Str(s) => json!(s),
        Value::Array(a) => json!(format!("[{:?}; {}]", a.elem_type(), a.len())),
        // Every integer type: as itself, whatever its width and sign.
        _ => v.as_u64().map_or_else(|| json!(v.as_i64()), |x| json!(x)),
    }
}

/// Short arrays in full; long ones as their length and first elements.
fn value_json(v: &Value<'_>) -> Json {
    match v {
        Value::Array(a) => {
            let head: Vec<Json> = a.iter().take(ARRAY_PREVIEW).map(|x| scalar_json(&x)).collect();
            if a.len() <= ARRAY_PREVIEW {
                Json::Array(head)
            } else {
                json!({"len": a.len(), "first": head})
            }
        }
        other => scalar_json(other),
    }
}

fn text(r: &Json) -> String {
    let mut out = String::new();
    macro_rules! println {
        ($($a:tt)*) => {{ let _ = writeln!(out, $($a)*); }};
    }
    println!("metadata:");
    for m in r["metadata"].as_array().into_iter().flatten() {
        println!(
            "  {:40} {:18} {}",
            m["key"].as_str().unwrap_or(""),
            m["type"].as_str().unwrap_or(""),
            m["value"]
        );
    }
    for n in r["notes"].as_array().into_iter().flatten() {
        println!("note: {}", n.as_str().unwrap_or(""));
    }
    println!("\ntensors:");
    println!("  {:32} {:5} {:>16} {:>12}", "name", "type", "shape", "bytes");
    for t in r["tensors"].as_array().into_iter().flatten() {
        println!(
            "  {:32} {:5} {:>16} {:>12}",
            t["name"].as_str().unwrap_or(""),
            t["type"].as_str().unwrap_or(""),
            t["shape"].to_string(),
            t["bytes"]
        );
    }
    let tot = &r["totals"];
    println!(
        "\ntotals: {} tensors, {} parameters, {} tensor bytes",
        tot["tensors"], tot["parameters"], tot["tensor_bytes"]
    );
    for ty in tot["by_type"].as_array().into_iter().flatten() {
        println!(
            "  {:5} {} tensors, {} bytes",
            ty["type"].as_str().unwrap_or(""),
            ty["tensors"],
            ty["bytes"]
        );
    }
    let runnable = &r["runnable"];
    if runnable["ok"] == false {
        let types: Vec<&str> = runnable["unsupported_types"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        println!(
            "\nmote cannot run this file: it holds {} tensors; {}",
            types.join(", "),
            runnable["advice"].as_str().unwrap_or("")
        );
    }
    let mem = &r["memory"];
    println!("\nmemory: flash {} bytes (the whole file)", mem["flash_bytes"]);
    let ram = &mem["ram"];
    if ram.is_null() {
        println!("        no RAM plan: not a GPT-2 model mote can run");
    } else {
        println!("        run state at full context ({} positions), by KV type:", ram["n_ctx"]);
        for (kv, bytes) in ram["run_state_bytes"].as_object().into_iter().flatten() {
            println!("          {kv:5} {bytes} bytes");
        }
        let d = &ram["device"];
        println!(
            "        on a device: RAM {} bytes = run state ({} KV) {} + tokenizer {} + stack and statics {}",
            d["ram_bytes"],
            d["kv"].as_str().unwrap_or(""),
            d["run_state_bytes"],
            d["tokenizer_scratch_bytes"],
            d["reserve_bytes"]
        );
        println!(
            "                     flash {} bytes = model + code budget {}",
            d["flash_bytes"], d["code_flash_budget_bytes"]
        );
        println!(
            "        beam search: each beam adds {} bytes of run state ({} KV)",
            ram["bytes_per_beam"],
            d["kv"].as_str().unwrap_or("")
        );
    }
    let b = &r["board"];
    if !b.is_null() {
        let verdict = if b["fits"] == true { "fits" } else { "does NOT fit" };
        let beams = match b["beams"].as_u64() {
            Some(n) if n > 1 => {
                format!(" with {n} beams (run state {} bytes)", b["run_state_bytes"])
            }
            _ => String::new(),
        };
        // A board with a model region: code in its flash, the model in the region.
        let flash = match b["model_region_bytes"].as_u64() {
            Some(m) => format!("{} bytes for code and {m} for the model", b["flash_bytes"]),
            None => format!("{} bytes", b["flash_bytes"]),
        };
        println!(
            "\nboard {} ({} math){beams}: {verdict}; flash {flash}, margin {}; RAM {} bytes, margin {}",
            b["name"].as_str().unwrap_or(""),
            b["math"].as_str().unwrap_or(""),
            b["flash_margin"],
            b["ram_bytes"],
            b["ram_margin"]
        );
    }
    out
}
