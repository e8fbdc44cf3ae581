//! `cargo xtask bench-kernels`: instructions per multiply-accumulate of each Q8_0 matrix-vector
//! kernel on each QEMU board, counted by the firmware binary `bench_kernels` under `-icount
//! shift=0` (where SysTick advances by a fixed number of instructions), as one table.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Args;

use crate::boards::{self, Board};
use crate::firmware::{self, Options};
use crate::qemu;

/// The firmware binary that does the counting.
const BIN: &str = "bench_kernels";

/// Options of `cargo xtask bench-kernels`.
#[derive(Args)]
pub struct BenchKernelsArgs {
    /// Only these boards (repeatable; default: every QEMU board).
    #[arg(long)]
    board: Vec<String>,
    /// Kill a QEMU run after this many seconds.
    #[arg(long, default_value_t = qemu::DEFAULT_TIMEOUT_SECS)]
    timeout: u64,
}

/// One line of the firmware's report: kernel `name` on a `rows` x `cols` matrix took `ticks`.
#[derive(Debug, PartialEq)]
pub struct Count {
    /// The kernel.
    pub kernel: String,
    /// Rows (outputs).
    pub rows: u64,
    /// Columns (inputs).
    pub cols: u64,
    /// SysTick ticks.
    pub ticks: u64,
}

impl Count {
    /// Instructions per multiply-accumulate on a board whose SysTick runs at `clock_hz`: under
    /// `-icount shift=0` an instruction takes 1 ns, so a tick is 1e9 / clock_hz instructions.
    pub fn per_mac(&self, clock_hz: u64) -> f64 {
        self.ticks as f64 * 1e9 / clock_hz as f64 / (self.rows * self.cols) as f64
    }
}

/// Reads a `kernel <name> <rows> x <cols>: <ticks> ticks, ...` line of the decoded log (after the
/// log level); other lines give `None`.
pub fn parse_line(line: &str) -> Option<Count> {
    let rest = line.split_once("kernel ")?.1;
    let mut words = rest.split_whitespace();
    let kernel = words.next()?.to_string();
    let rows = words.next()?.parse().ok()?;
    (words.next()? == "x").then_some(())?;
    let cols = words.next()?.strip_suffix(':')?.parse().ok()?;
    let ticks = words.next()?.parse().ok()?;
    (words.next()? == "ticks,").then_some(())?;
    Some(Count { kernel, rows, cols, ticks })
}

/// Builds and runs the bench on each board, then prints the table.
pub fn run(root: &Path, args: &BenchKernelsArgs) -> Result<()> {
    let boards = boards::load(root)?;
    let chosen: Vec<&Board> = if args.board.is_empty() {
        boards.qemu_boards().collect()
    } else {
        args.board.iter().map(|name| boards.get(name)).collect::<Result<_, _>>()?
    };
    let mut table = Table::default();
    let mut measured = Vec::new();
    for board in chosen {
        let counts = measure(root, board, args.timeout)?;
        if counts.is_empty() {
            continue;
        }
        for c in counts {
            let per_mac = c.per_mac(board.clock_hz);
            table.insert((c.kernel.clone(), c.rows, c.cols), &board.name, per_mac);
        }
        measured.push(board);
    }
    print!("{}", render(&measured, &table));
    Ok(())
}

/// Builds `bench_kernels` for `board`, runs it in QEMU and returns its counts, in the order it
/// printed them; none when the board's RAM cannot hold the bench's matrices (128 KiB boards),
/// which the firmware says and this prints.
pub fn measure(root: &Path, board: &Board, timeout_secs: u64) -> Result<Vec<Count>> {
    if board.qemu.is_none() {
        bail!("board {} does not run in QEMU", board.name);
    }
    let options = Options { release: true, bin: Some(BIN.to_string()), ..Options::default() };
    let built = firmware::build(root, board, &options)?;
    let run = qemu::run(board, &built.elfs[0], Duration::from_secs(timeout_secs))?;
    if run.code != 0 {
        if let Some(line) = run.log.lines().find(|l| l.contains("bench_kernels needs")) {
            println!(
                "bench-kernels: {} left out: {}",
                board.name,
                line.trim_start_matches("ERROR ")
            );
            return Ok(Vec::new());
        }
        bail!("{BIN} on {} exited with {}", board.name, run.code);
    }
    let counts: Vec<Count> = run.log.lines().filter_map(parse_line).collect();
    if counts.is_empty() {
        bail!("{BIN} on {} printed no `kernel` lines", board.name);
    }
    Ok(counts)
}

/// A kernel on a shape: (kernel, rows, cols).
type Key = (String, u64, u64);

/// Instructions per MAC by kernel and shape, in the order the bench first printed them, then by
/// board.
#[derive(Default)]
struct Table {
    rows: Vec<(Key, BTreeMap<String, f64>)>,
}

impl Table {
    fn insert(&mut self, key: Key, board: &str, per_mac: f64) {
        let at = match self.rows.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                self.rows.push((key, BTreeMap::new()));
                self.rows.len() - 1
            }
        };
        self.rows[at].1.insert(board.to_string(), per_mac);
    }
}

/// The table in Markdown: one row per kernel and shape, grouped by shape, one column per board.
fn render(boards: &[&Board], table: &Table) -> String {
    // Shapes in the order first seen; within a shape, kernels in the order first seen (a kernel
    // that only some boards have comes after the others).
    let mut shapes: Vec<(u64, u64)> = Vec::new();
    for ((_, r, c), _) in &table.rows {
        if !shapes.contains(&(*r, *c)) {
            shapes.push((*r, *c));
        }
    }
    let mut rows: Vec<&(Key, BTreeMap<String, f64>)> = table.rows.iter().collect();
    rows.sort_by_key(|((_, r, c), _)| shapes.iter().position(|s| *s == (*r, *c)));
    let mut out = String::from("\ninstructions per multiply-accumulate (QEMU -icount shift=0)\n\n");
    out.push_str("| kernel | rows x cols |");
    for b in boards {
        out.push_str(&format!(" {} ({}) |", b.name, b.cpu));
    }
    out.push_str("\n|---|---|");
    out.push_str(&"---:|".repeat(boards.len()));
    out.push('\n');
    for ((kernel, rows, cols), by_board) in rows {
        out.push_str(&format!("| {kernel} | {rows} x {cols} |"));
        for b in boards {
            match by_board.get(&b.name) {
                Some(v) => out.push_str(&format!(" {v:.2} |")),
                None => out.push_str(" - |"),
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_lines_and_skips_others() {
        let line = "INFO  kernel dsp 512 x 128: 2496 ticks, 1.5234375 instructions per MAC";
        let c = parse_line(line).expect("a kernel line");
        assert_eq!(c, Count { kernel: "dsp".into(), rows: 512, cols: 128, ticks: 2496 });
        assert_eq!(c.per_mac(25_000_000), 2496.0 * 40.0 / 65536.0);
        assert_eq!(c.per_mac(32_000_000), 2496.0 * 31.25 / 65536.0);
        assert!(parse_line("INFO  mps2-an386 (cortex-m4f): one SysTick tick = ...").is_none());
        assert!(parse_line("INFO  kernel dsp 512 x 128: many ticks").is_none());
    }

    #[test]
    fn table_groups_kernels_by_shape() {
        let boards = crate::boards::load(&crate::repo_root()).unwrap();
        let (m4, m55) = (boards.get("mps2-an386").unwrap(), boards.get("mps3-an547").unwrap());
        let mut table = Table::default();
        for (kernel, rows, board, v) in [
            ("portable", 128, m4, 8.0),
            ("dsp", 128, m4, 1.6),
            ("portable", 512, m4, 7.9),
            ("portable", 128, m55, 7.7),
            ("helium", 128, m55, 0.4),
        ] {
            table.insert((kernel.into(), rows, 128), &board.name, v);
        }
        let text = render(&[m4, m55], &table);
        let lines: Vec<&str> =
            text.lines().skip_while(|l| !l.starts_with("|---")).skip(1).collect();
        assert_eq!(
            lines,
            [
                "| portable | 128 x 128 | 8.00 | 7.70 |",
                "| dsp | 128 x 128 | 1.60 | - |",
                "| helium | 128 x 128 | - | 0.40 |",
                "| portable | 512 x 128 | 7.90 | - |",
            ]
        );
    }
}
