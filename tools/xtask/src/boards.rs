//! The boards of `boards.toml`, read by the `mote-boards` crate (schema at the top of that file),
//! and their listing for `cargo xtask boards`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
pub use mote_boards::{Board, Boards, Region, Transport};

/// Reads and checks `<root>/boards.toml`.
pub fn load(root: &Path) -> Result<Boards> {
    Ok(Boards::load(&root.join("boards.toml"))?)
}

/// A table of the boards, for `cargo xtask boards`.
pub fn listing(boards: &Boards) -> String {
    let mut out = String::new();
    let header =
        ["board", "cpu", "target", "math", "flash", "RAM", "clock", "runs on", "description"];
    let mut rows: Vec<[String; 9]> = vec![header.map(str::to_string)];
    for b in &boards.boards {
        let runs_on = match (&b.qemu, &b.probe_rs_chip) {
            (Some(q), _) => {
                format!("{} -machine {}", crate::qemu::system(&b.target).program, q.machine)
            }
            (None, Some(chip)) => format!("probe-rs run --chip {chip}"),
            (None, None) => String::new(),
        };
        let mark = if b.name == boards.default { " (default)" } else { "" };
        rows.push([
            format!("{}{mark}", b.name),
            b.cpu.clone(),
            b.target.clone(),
            b.math.name().to_string(),
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

/// "4 MiB at 0x20000000".
fn region(r: Region) -> String {
    let size = if r.size.is_multiple_of(1024 * 1024) {
        format!("{} MiB", r.size / (1024 * 1024))
    } else {
        format!("{} KiB", r.size / 1024)
    };
    format!("{size} at {:#010x}", r.origin)
}
