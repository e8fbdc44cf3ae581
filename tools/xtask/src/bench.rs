//! `cargo xtask bench`: every speed figure mote reports, measured in one run, as one Markdown table.
//!
//! - Cortex-M, counted in QEMU under `-icount shift=0`: instructions per multiply-accumulate of
//!   each Q8_0 matrix-vector kernel on each QEMU board (the `bench_kernels` firmware), and the
//!   default model's decode step at position 64 on each board that holds it (the `generate`
//!   firmware's per-token SysTick counts).
//! - The desktop, timed: `mote bench --json` on the bundled model, on a random model of the
//!   issue's small shape (width 128, 4 blocks, vocabulary 2048) and on GPT-2 124M's shape (one
//!   thread, and two for 124M), next to llama.cpp's `llama-bench` with as many threads on the same
//!   files in the same run when it is installed (`tools/py/build_llama_cpp.sh`; `MOTE_LLAMA_BENCH`
//!   or `PATH`). The random models are made once with `tools/py/make_random_gpt2.py` (the test
//!   Python of `cargo xtask setup`: numpy and safetensors) and `mote convert`, and kept in
//!   `target/bench-models`.
//!
//! CMSIS-NN's figures are not measured here (building it needs Arm's GCC); they are the published
//! counts of issue 8, measured on the same QEMU boards, and the table says so.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context as _, Result};
use clap::Args;

use crate::bench_kernels;
use crate::boards::{Board, Boards};
use crate::device::{self, DeviceRun, BENCH_BOARDS};
use crate::firmware::Options;
use crate::{qemu, shell};

/// Options of `cargo xtask bench`.
#[derive(Args)]
pub struct BenchAllArgs {
    /// Skip the QEMU counts.
    #[arg(long)]
    no_device: bool,
    /// Skip the desktop timings.
    #[arg(long)]
    no_desktop: bool,
    /// Skip the desktop models that need generating (Python with torch and transformers).
    #[arg(long)]
    bundled_only: bool,
    /// Where the generated benchmark models are kept between runs.
    #[arg(long)]
    models: Option<PathBuf>,
    /// Runs of each desktop measurement (`mote bench --repeat`).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
    /// Kill a QEMU run after this many seconds.
    #[arg(long, default_value_t = qemu::DEFAULT_TIMEOUT_SECS)]
    timeout: u64,
}

/// The position the decode step is reported at (issue 8's goal is stated there).
pub const DECODE_POSITION: usize = 64;

/// CMSIS-NN's `arm_nn_vec_mat_mult_t_s8` in QEMU, instructions per multiply-accumulate, as issue 8
/// publishes them: (cpu, kernel of ours it compares with, rows or 0 for any, columns, figure).
const CMSIS_NN: [(&str, &str, u64, u64, f64); 4] = [
    ("cortex-m4f", "dsp", 0, 128, 2.27),
    ("cortex-m4f", "dsp", 0, 512, 1.97),
    ("cortex-m4f", "dsp", 768, 768, 1.94),
    ("cortex-m55", "helium", 0, 128, 0.58),
];

/// One line of the table.
#[derive(Debug, PartialEq)]
pub struct Row {
    /// What is measured, with its unit.
    pub what: String,
    /// Where: board and core, or the desktop and its kernel.
    pub place: String,
    /// mote's figure.
    pub mote: String,
    /// The peer and where its figure comes from ("-" if none).
    pub peer: String,
    /// The peer's figure ("-" if none).
    pub peer_figure: String,
    /// How mote compares ("-" if there is no peer).
    pub compared: String,
}

impl Row {
    fn alone(what: String, place: String, mote: String) -> Self {
        let none = || "-".to_string();
        Self { what, place, mote, peer: none(), peer_figure: none(), compared: none() }
    }
}

/// Measures everything asked for and prints the table.
pub fn run(root: &Path, boards: &Boards, args: &BenchAllArgs) -> Result<()> {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if !args.no_device {
        for board in boards.qemu_boards() {
            rows.extend(kernel_rows(board, &bench_kernels::measure(root, board, args.timeout)?));
        }
        for name in BENCH_BOARDS {
            let board = boards.get(name)?;
            let run = device::run_device(root, board, &Options::default())?;
            rows.push(decode_row(board, &run)?);
        }
    }
    if !args.no_desktop {
        let mote = device::host_mote(root)?;
        let mut models = vec![(BUNDLED.to_string(), None, &[1][..])];
        if !args.bundled_only {
            let dir = args.models.clone().unwrap_or_else(|| target_dir(root).join("bench-models"));
            for shape in SHAPES {
                match shape.gguf(root, &mote, &dir) {
                    Ok(path) => models.push((shape.name.to_string(), Some(path), shape.threads)),
                    Err(e) => notes.push(format!("{}: not measured: {e:#}", shape.name)),
                }
            }
        }
        for (name, path, threads) in &models {
            for &n in *threads {
                rows.extend(desktop_rows(&mote, name, path.as_deref(), n, args.repeat)?);
            }
        }
    }
    println!("\n{}", render(&rows));
    for note in notes {
        println!("{note}");
    }
    Ok(())
}

/// A board's kernel counts, one row per kernel with its shapes side by side (`a / b / ...`), next
/// to CMSIS-NN's published figures for that core and those shapes where there are some.
fn kernel_rows(board: &Board, counts: &[bench_kernels::Count]) -> Vec<Row> {
    let mut kernels: Vec<&str> = Vec::new();
    for c in counts {
        if !kernels.contains(&c.kernel.as_str()) {
            kernels.push(&c.kernel);
        }
    }
    kernels
        .into_iter()
        .map(|kernel| {
            let mine: Vec<&bench_kernels::Count> =
                counts.iter().filter(|c| c.kernel == kernel).collect();
            let shapes: Vec<String> =
                mine.iter().map(|c| format!("{}x{}", c.rows, c.cols)).collect();
            let per_mac: Vec<f64> = mine.iter().map(|c| c.per_mac(board.clock_hz)).collect();
            let published: Vec<Option<f64>> = mine
                .iter()
                .map(|c| {
                    CMSIS_NN
                        .iter()
                        .find(|(cpu, k, rows, cols, _)| {
                            *cpu == board.cpu
                                && *k == kernel
                                && (*rows == 0 || *rows == c.rows)
                                && *cols == c.cols
                        })
                        .map(|entry| entry.4)
                })
                .collect();
            let mut row = Row::alone(
                format!("Q8_0 matrix-vector {}, instructions/MAC", shapes.join(" / ")),
                format!("{} ({}), {kernel}", board.name, board.cpu),
                per_mac.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(" / "),
            );
            if published.iter().any(Option::is_some) {
                let show = |f: &dyn Fn(f64, f64) -> String| -> String {
                    let cells: Vec<String> = published
                        .iter()
                        .zip(&per_mac)
                        .map(|(p, &m)| p.map_or("-".to_string(), |p| f(p, m)))
                        .collect();
                    cells.join(" / ")
                };
                row.peer = "CMSIS-NN (issue 8's count)".to_string();
                row.peer_figure = show(&|p, _| format!("{p:.2}"));
                row.compared = format!("{} fewer", show(&|p, m| format!("{:.2}x", p / m)));
            }
            row
        })
        .collect()
}

/// The decode step at [`DECODE_POSITION`] on a board, per token and per weight MAC.
fn decode_row(board: &Board, run: &DeviceRun) -> Result<Row> {
    let n_prompt = run.summary.get("prompt").map_or(0, |p| p.split(',').count());
    // Token k > 1 comes from the step at position n_prompt + k - 2 (token 1 from the prompt).
    let k = DECODE_POSITION + 2 - n_prompt;
    let ticks = *run.token_ticks.get(k - 1).with_context(|| {
        format!(
            "{} printed {} tokens; position {DECODE_POSITION} needs {k}",
            board.name,
            run.token_ticks.len()
        )
    })?;
    ensure!(run.weight_macs > 0, "{} did not print its weight multiply-accumulates", board.name);
    let instructions = ticks as f64 * 1e9 / board.clock_hz as f64;
    Ok(Row::alone(
        format!("decode step, default model, position {DECODE_POSITION}, instructions"),
        format!("{} ({})", board.name, board.cpu),
        format!(
            "{} ({:.3}/weight MAC)",
            thousands(instructions),
            instructions / run.weight_macs as f64
        ),
    ))
}

/// A desktop model the bench generates: a random Hugging Face checkpoint of a shape, converted to
/// Q8_0.
struct Shape {
    name: &'static str,
    file: &'static str,
    /// `tools/py/make_random_gpt2.py` arguments after the output directory.
    args: &'static [&'static str],
    /// Thread counts to measure (only matrices of 1 MiB or more are split between threads).
    threads: &'static [usize],
}

/// The bundled model's name in the table.
const BUNDLED: &str = "tinystories-base (bundled)";

const SHAPES: [Shape; 2] = [
    Shape {
        name: "1.3M shape (128 wide, 4 blocks, vocab 2048)",
        file: "small-1.3m-q8_0.gguf",
        args: &[
            "--n-embd",
            "128",
            "--n-layer",
            "4",
            "--n-head",
            "4",
            "--n-positions",
            "128",
            "--tokenizer",
            "models/tinystories-base",
        ],
        threads: &[1],
    },
    Shape { name: "GPT-2 124M shape", file: "gpt2-124m-q8_0.gguf", args: &[], threads: &[1, 2] },
];

impl Shape {
    /// The shape's Q8_0 GGUF in `dir`, made now if missing.
    fn gguf(&self, root: &Path, mote: &Path, dir: &Path) -> Result<PathBuf> {
        let out = dir.join(self.file);
        if out.is_file() {
            return Ok(out);
        }
        std::fs::create_dir_all(dir)?;
        let checkpoint = dir.join(self.file.trim_end_matches(".gguf"));
        shell::run(
            Command::new(mote_pyenv::python(root)?)
                .current_dir(root)
                .arg("tools/py/make_random_gpt2.py")
                .arg(&checkpoint)
                .args(self.args),
        )
        .context("generating the random checkpoint")?;
        shell::run(Command::new(mote).arg("convert").arg(&checkpoint).arg("-o").arg(&out))?;
        Ok(out)
    }
}

/// `mote bench --json` on a model (the bundled one when `path` is `None`) with `threads`: decode
/// and prompt rows.
fn desktop_rows(
    mote: &Path,
    name: &str,
    path: Option<&Path>,
    threads: usize,
    repeat: usize,
) -> Result<Vec<Row>> {
    let mut cmd = Command::new(mote);
    cmd.args(["bench", "--json", "--repeat", &repeat.to_string()]);
    cmd.args(["--threads", &threads.to_string()]);
    if let Some(path) = path {
        cmd.arg("--model").arg(path);
    }
    let json = shell::json(&mut cmd)?;
    desktop_rows_from(name, &json)
}

/// The rows of one `mote bench --json` report.
fn desktop_rows_from(name: &str, json: &serde_json::Value) -> Result<Vec<Row>> {
    let number = |key: &str| json[key].as_f64().with_context(|| format!("no `{key}` in {json}"));
    let place = format!(
        "x86_64, {}, {} thread{}, kv {}",
        json["kernel"].as_str().unwrap_or("?"),
        json["threads"].as_u64().unwrap_or(1),
        if json["threads"].as_u64().unwrap_or(1) == 1 { "" } else { "s" },
        json["kv"].as_str().unwrap_or("?"),
    );
    let decode = number("decode_tokens_per_second")?;
    let mut decode_row =
        Row::alone(format!("decode tokens/s, {name}"), place.clone(), thousands(decode));
    if let Some(llama) = json["llama_cpp"].as_object() {
        let theirs = llama["decode_tokens_per_second"].as_f64().unwrap_or(0.0);
        decode_row.peer = "llama.cpp llama-bench, same run".to_string();
        decode_row.peer_figure = thousands(theirs);
        decode_row.compared = format!("{:.2}x", decode / theirs);
    }
    let prompt = Row::alone(
        format!(
            "prompt tokens/s ({} tokens), batched {} / one at a time, {name}",
            json["prompt_tokens"], json["batch"]
        ),
        place,
        format!(
            "{} / {}",
            thousands(number("prompt_tokens_per_second")?),
            thousands(number("prompt_unbatched_tokens_per_second")?)
        ),
    );
    Ok(vec![decode_row, prompt])
}

/// The table in Markdown.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::from(
        "| measure | where | mote | peer | peer's figure | mote against peer |\n\
         |---|---|---:|---|---:|---:|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.what, r.place, r.mote, r.peer, r.peer_figure, r.compared
        ));
    }
    out
}

/// `x` rounded, with thousands separated by commas (figures of four digits or more), or with one
/// decimal below 100.
fn thousands(x: f64) -> String {
    if x < 100.0 {
        return format!("{x:.1}");
    }
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or(root.join("target"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row from its what, place, and mote / peer / peer's figure / comparison.
    fn row(what: &str, place: &str, [mote, peer, peer_figure, compared]: [&str; 4]) -> Row {
        let [what, place, mote, peer, peer_figure, compared] =
            [what, place, mote, peer, peer_figure, compared].map(String::from);
        Row { what, place, mote, peer, peer_figure, compared }
    }

    /// The repository's board called `name`.
    fn board(name: &str) -> Board {
        crate::boards::load(&crate::repo_root()).unwrap().get(name).unwrap().clone()
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(1_591_792.4), "1,591,792");
        assert_eq!(thousands(4673.4), "4,673");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(21.04), "21.0");
    }

    #[test]
    fn kernel_rows_put_shapes_side_by_side_with_cmsis_nn_where_counted() {
        let (m4, m7) = (board("mps2-an386"), board("mps2-an500"));
        let count = |kernel: &str, rows, cols, ticks| bench_kernels::Count {
            kernel: kernel.into(),
            rows,
            cols,
            ticks,
        };
        // At 40 instructions per tick: 655 ticks on 128 x 128 is 1.60 per MAC, 4915 ticks on
        // 512 x 768 is 0.50.
        let counts = [
            count("portable", 128, 128, 3277),
            count("dsp", 128, 128, 655),
            count("dsp", 512, 768, 4915),
        ];
        assert_eq!(
            kernel_rows(&m4, &counts),
            [
                row(
                    "Q8_0 matrix-vector 128x128, instructions/MAC",
                    "mps2-an386 (cortex-m4f), portable",
                    ["8.00", "-", "-", "-"]
                ),
                row(
                    "Q8_0 matrix-vector 128x128 / 512x768, instructions/MAC",
                    "mps2-an386 (cortex-m4f), dsp",
                    ["1.60 / 0.50", "CMSIS-NN (issue 8's count)", "2.27 / -", "1.42x / - fewer"]
                ),
            ]
        );
        assert_eq!(kernel_rows(&m7, &counts[1..2])[0].peer, "-", "CMSIS-NN was counted on the M4F");
    }

    #[test]
    fn decode_row_takes_the_step_at_position_64() {
        let m4 = board("mps2-an386");
        let mut run = DeviceRun { weight_macs: 1000, ..DeviceRun::default() };
        run.summary.insert("prompt".into(), "[449, 466, 259, 413]".into());
        // Token 1 is the prompt's; token k > 1 is the step at position 4 + k - 2.
        run.token_ticks = (1..=64).map(|k| 1000 + k).collect();
        let r = decode_row(&m4, &run).unwrap();
        // Position 64 is token 62: 1062 ticks of 40 instructions.
        assert_eq!(r.mote, "42,480 (42.480/weight MAC)");
        run.token_ticks.truncate(61);
        assert!(decode_row(&m4, &run).is_err());
    }

    #[test]
    fn desktop_rows_show_llama_cpp_when_it_ran() {
        let json = serde_json::json!({
            "kernel": "avx2", "threads": 1, "kv": "f16", "prompt_tokens": 64, "batch": 64,
            "prompt_tokens_per_second": 8412.0, "prompt_unbatched_tokens_per_second": 6101.2,
            "decode_tokens_per_second": 4673.4,
            "llama_cpp": { "decode_tokens_per_second": 6751.5 }
        });
        let place = "x86_64, avx2, 1 thread, kv f16";
        assert_eq!(
            desktop_rows_from("m", &json).unwrap(),
            [
                row(
                    "decode tokens/s, m",
                    place,
                    ["4,673", "llama.cpp llama-bench, same run", "6,752", "0.69x"]
                ),
                row(
                    "prompt tokens/s (64 tokens), batched 64 / one at a time, m",
                    place,
                    ["8,412 / 6,101", "-", "-", "-"]
                ),
            ]
        );
        let alone = serde_json::json!({
            "kernel": "portable", "threads": 2, "kv": "f16", "prompt_tokens": 8, "batch": 0,
            "prompt_tokens_per_second": 10.0, "prompt_unbatched_tokens_per_second": 10.0,
            "decode_tokens_per_second": 5.0, "llama_cpp": null
        });
        let rows = desktop_rows_from("m", &alone).unwrap();
        assert_eq!(rows[0].place, "x86_64, portable, 2 threads, kv f16");
        assert_eq!(rows[0].compared, "-");
    }
}
