//! `boards/<name>/memory.x`: written by a person, checked against boards.toml, then found by
//! cortex-m-rt's `link.x` through its INCLUDE.

use std::fs;
use std::path::Path;

use mote_boards::{Board, Region};

use crate::fail;

/// Checks the board's memory.x against boards.toml, puts it where the linker looks, and adds the
/// linker scripts.
pub fn install(manifest_dir: &Path, out_dir: &Path, board: &Board) {
    let path = manifest_dir.join("boards").join(&board.name).join("memory.x");
    println!("cargo:rerun-if-changed={}", path.display());
    let memory_x = fs::read_to_string(&path)
        .unwrap_or_else(|e| fail(format!("cannot read {}: {e}", path.display())));
    let model = board.model.map(|m| ("MODEL", m));
    for (region_name, expected) in
        [("FLASH", board.flash), ("RAM", board.ram)].into_iter().chain(model)
    {
        let found = region(&memory_x, region_name).unwrap_or_else(|| {
            fail(format!(
                "{}: no `{region_name} : ORIGIN = ..., LENGTH = ...` line",
                path.display()
            ))
        });
        if found != expected {
            fail(format!(
                "{}: {region_name} is ORIGIN {:#010x} LENGTH {:#x}, boards.toml says origin {:#010x} \
                 size {:#x}: make them agree",
                path.display(),
                found.origin,
                found.size,
                expected.origin,
                expected.size
            ));
        }
    }
    // A board with a model region: its memory.x places the `.model` section there, and the
    // binaries put the model in that section.
    println!("cargo::rustc-check-cfg=cfg(mote_model_region)");
    if board.model.is_some() {
        if !memory_x.contains(".model") {
            fail(format!(
                "{}: boards.toml gives {} a model region, but no `.model` output section goes there",
                path.display(),
                board.name
            ));
        }
        println!("cargo:rustc-cfg=mote_model_region");
    }
    fs::write(out_dir.join("memory.x"), memory_x).unwrap();
    println!("cargo:rustc-link-search={}", out_dir.display());
    // --nmagic: no page alignment of sections, which would waste flash.
    for arg in ["--nmagic", "-Tlink.x", "-Tdefmt.x"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}

/// The region on `name`'s line of a memory.x: `NAME : ORIGIN = 0x..., LENGTH = 256K`.
fn region(memory_x: &str, name: &str) -> Option<Region> {
    let line = memory_x.lines().find(|l| l.trim_start().split([' ', ':']).next() == Some(name))?;
    let value_after = |key: &str| -> Option<u64> {
        let rest = line.split(key).nth(1)?.trim_start().strip_prefix('=')?.trim_start();
        let token: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        parse_size(&token)
    };
    Some(Region { origin: value_after("ORIGIN")?, size: value_after("LENGTH")? })
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
