//! Turns the one `board-<name>` feature into everything the linker and the code need to know about
//! that board, taken from `../boards.toml` (the single source of truth) rather than repeated by
//! hand: it checks that the build targets the board's triple and uses its defmt transport, checks
//! that `boards/<name>/memory.x` agrees with boards.toml and hands it to cortex-m-rt's `link.x`,
//! adds the linker scripts, and writes `board.rs` (name, cpu, clock, memory map) into `OUT_DIR`.
//! It also reads the build-time inputs of the binaries (`MOTE_PROMPT`, `MOTE_MAX_TOKENS`,
//! `MOTE_MODEL`) so that changing one rebuilds the firmware, and a bad one fails here, by name.

use std::env;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Prompt the generating binaries use when the build is given none.
const DEFAULT_PROMPT: &str = "Once upon a time";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let boards_toml = manifest_dir.join("../boards.toml");
    println!("cargo:rerun-if-changed={}", boards_toml.display());
    println!("cargo:rerun-if-changed=build.rs");

    let text = fs::read_to_string(&boards_toml)
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", boards_toml.display())));
    let doc: toml::Table =
        text.parse().unwrap_or_else(|e| fail(format!("{}: {e}", boards_toml.display())));
    let boards = doc.get("board").and_then(|b| b.as_array()).map(Vec::as_slice).unwrap_or(&[]);
    let names: Vec<&str> =
        boards.iter().filter_map(|b| b.get("name").and_then(|n| n.as_str())).collect();

    let name = selected_board(&names);
    let board = boards
        .iter()
        .find(|b| b.get("name").and_then(|n| n.as_str()) == Some(name.as_str()))
        .and_then(|b| b.as_table())
        .unwrap_or_else(|| fail(format!("board {name} is not in boards.toml")));
    let field = |key: &str| -> &toml::Value {
        board.get(key).unwrap_or_else(|| fail(format!("boards.toml: board {name} has no {key}")))
    };
    let string = |key: &str| -> String {
        field(key)
            .as_str()
            .unwrap_or_else(|| fail(format!("boards.toml: {name}.{key} is not a string")))
            .to_string()
    };
    let number = |value: &toml::Value, what: &str| -> u64 {
        value
            .as_integer()
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or_else(|| fail(format!("boards.toml: {name}.{what} is not a number")))
    };
    let region = |key: &str| -> (u64, u64) {
        let table = field(key);
        let part = |p: &str| {
            number(
                table.get(p).unwrap_or_else(|| fail(format!("boards.toml: {name}.{key}.{p}"))),
                &format!("{key}.{p}"),
            )
        };
        (part("origin"), part("size"))
    };

    // The triple: a board built for the wrong core would link and then fault at its first FPU or
    // DSP instruction, so say so here.
    let target = string("target");
    let building_for = env::var("TARGET").unwrap();
    if building_for != target {
        fail(format!(
            "board {name} runs {target}, but this build targets {building_for}: build with \
             `cargo xtask firmware --board {name}` (or `--target {target}`)"
        ));
    }

    let transport = string("transport");
    let semihosting = env::var_os("CARGO_FEATURE_DEFMT_SEMIHOSTING").is_some();
    let rtt = env::var_os("CARGO_FEATURE_DEFMT_RTT").is_some();
    let transport_ok = match transport.as_str() {
        "qemu-semihosting" => semihosting && !rtt,
        "rtt" => rtt && !semihosting,
        other => fail(format!(
            "boards.toml: {name}.transport {other:?} is neither qemu-semihosting nor rtt"
        )),
    };
    if !transport_ok {
        fail(format!(
            "board {name} logs over {transport}, but the features select semihosting={semihosting} \
             rtt={rtt}: feature board-{name} in Cargo.toml must enable exactly the matching one"
        ));
    }

    // memory.x: written by a person, checked against boards.toml, then found by link.x's INCLUDE.
    let flash = region("flash");
    let ram = region("ram");
    let memory_x_path = manifest_dir.join("boards").join(&name).join("memory.x");
    println!("cargo:rerun-if-changed={}", memory_x_path.display());
    let memory_x = fs::read_to_string(&memory_x_path)
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", memory_x_path.display())));
    for (region_name, expected) in [("FLASH", flash), ("RAM", ram)] {
        let found = memory_x_region(&memory_x, region_name).unwrap_or_else(|| {
            fail(format!(
                "{}: no `{region_name} : ORIGIN = ..., LENGTH = ...` line",
                memory_x_path.display()
            ))
        });
        if found != expected {
            fail(format!(
                "{}: {region_name} is ORIGIN {:#010x} LENGTH {:#x}, boards.toml says origin {:#010x} \
                 size {:#x}: make them agree",
                memory_x_path.display(),
                found.0,
                found.1,
                expected.0,
                expected.1
            ));
        }
    }
    fs::write(out_dir.join("memory.x"), memory_x).unwrap();
    println!("cargo:rustc-link-search={}", out_dir.display());
    // --nmagic: no page alignment of sections, which would waste flash.
    for arg in ["--nmagic", "-Tlink.x", "-Tdefmt.x"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }

    let transport_variant = if transport == "rtt" { "Rtt" } else { "QemuSemihosting" };
    let board_rs = format!(
        "// Generated by build.rs from boards.toml: board {name}.\n\
         Board {{\n    name: {name:?},\n    cpu: {cpu:?},\n    target: {target:?},\n    \
         clock_hz: {clock_hz},\n    clock_source: {clock_source:?},\n    \
         flash: Region {{ origin: {:#010x}, size: {:#x} }},\n    \
         ram: Region {{ origin: {:#010x}, size: {:#x} }},\n    \
         transport: Transport::{transport_variant},\n}}\n",
        flash.0,
        flash.1,
        ram.0,
        ram.1,
        cpu = string("cpu"),
        clock_hz = number(field("clock_hz"), "clock_hz"),
        clock_source = string("clock_source"),
    );
    fs::write(out_dir.join("board.rs"), board_rs).unwrap();

    write_inputs(&out_dir);
}

/// The board named by the one enabled `board-<name>` feature.
fn selected_board(known: &[&str]) -> String {
    let selected: Vec<String> = env::vars()
        .filter_map(|(k, _)| k.strip_prefix("CARGO_FEATURE_BOARD_").map(str::to_string))
        .collect();
    let feature_of = |name: &str| name.to_uppercase().replace('-', "_");
    let list = known.iter().map(|n| format!("board-{n}")).collect::<Vec<_>>().join(", ");
    match selected.as_slice() {
        [one] => known
            .iter()
            .find(|n| feature_of(n) == *one)
            .map(|n| n.to_string())
            .unwrap_or_else(|| {
                fail(format!("feature board-{} is not a board of boards.toml ({list})", one.to_lowercase().replace('_', "-")))
            }),
        [] => fail(format!("no board selected: enable one feature of {list}")),
        many => fail(format!(
            "{} board features enabled ({}): enable exactly one (--no-default-features --features board-<name>)",
            many.len(),
            many.join(", ")
        )),
    }
}

/// `(origin, length)` of `name`'s line in a memory.x: `NAME : ORIGIN = 0x..., LENGTH = 256K`.
fn memory_x_region(memory_x: &str, name: &str) -> Option<(u64, u64)> {
    let line = memory_x.lines().find(|l| l.trim_start().split([' ', ':']).next() == Some(name))?;
    let value_after = |key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?.trim_start().strip_prefix('=')?.trim_start();
        let token: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        parse_size(&token)
    };
    Some((value_after("ORIGIN")?, value_after("LENGTH")?))
}

/// A linker-script number: decimal or 0x hex, with an optional K or M suffix.
fn parse_size(token: &str) -> Option<u64> {
    let (digits, scale) = match token.as_bytes().last()? {
        b'K' | b'k' => (&token[..token.len() - 1], 1024),
        b'M' | b'm' => (&token[..token.len() - 1], 1024 * 1024),
        _ => (token, 1),
    };
    let n = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok()?,
        None => digits.parse().ok()?,
    };
    n.checked_mul(scale)
}

/// `inputs.rs` with the build-time inputs of the binaries; `MOTE_MODEL` also becomes an absolute
/// path in the environment of the crate, for `include_aligned!(env!("MOTE_MODEL"))`.
fn write_inputs(out_dir: &Path) {
    for var in ["MOTE_PROMPT", "MOTE_MAX_TOKENS", "MOTE_MODEL"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let prompt = env::var("MOTE_PROMPT").unwrap_or_else(|_| DEFAULT_PROMPT.to_string());
    let max_tokens = match env::var("MOTE_MAX_TOKENS") {
        Ok(v) => match v.parse::<u32>() {
            Ok(n) if n > 0 => format!("Some({n})"),
            _ => fail(format!("MOTE_MAX_TOKENS={v:?} is not a positive whole number")),
        },
        Err(_) => "None".to_string(),
    };
    let model = match env::var("MOTE_MODEL") {
        Ok(path) => {
            let abs = fs::canonicalize(&path).unwrap_or_else(|e| {
                fail(format!("MOTE_MODEL={path}: {e} (give the path of a .gguf file)"))
            });
            println!("cargo:rerun-if-changed={}", abs.display());
            println!("cargo:rustc-env=MOTE_MODEL={}", abs.display());
            format!("Some({:?})", abs.display().to_string())
        }
        Err(_) => "None".to_string(),
    };
    let mut rs = String::from("// Generated by build.rs from the build's environment.\n");
    writeln!(rs, "/// The prompt (`MOTE_PROMPT`, default {DEFAULT_PROMPT:?}).").unwrap();
    writeln!(rs, "pub const PROMPT: &str = {prompt:?};").unwrap();
    writeln!(rs, "/// Generated-token limit (`MOTE_MAX_TOKENS`), if the build set one.").unwrap();
    writeln!(rs, "pub const MAX_TOKENS: Option<u32> = {max_tokens};").unwrap();
    writeln!(rs, "/// Absolute path of the model (`MOTE_MODEL`), if the build was given one.")
        .unwrap();
    writeln!(rs, "pub const MODEL_PATH: Option<&str> = {model};").unwrap();
    fs::write(out_dir.join("inputs.rs"), rs).unwrap();
}

/// Stops the build with `message`; cargo shows it under the build script's stderr.
fn fail(message: String) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
