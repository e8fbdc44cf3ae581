//! `mote bench`: how fast a model runs here, on `--threads` threads, and how fast llama.cpp runs
//! the same file with as many threads in the same run when its `llama-bench` is installed.
//!
//! Prompt speed is what [`Session::generate`] spends before its first new token (the output head
//! at the last prompt position only), measured both batched (`--batch` positions per pass) and
//! one position at a time; decode speed is that of single steps from position 0 with
//! greedy feedback, which is what `llama-bench -p 0 -n N` times. Wall-clock figures on a shared
//! machine are noisy: compare the ratio, which comes from one run.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context as _};
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::sampler::argmax;
use mote_core::session::Session;
use mote_core::split::RowSplit;
use mote_core::state::{KvType, RunState};
use mote_core::Math;

use crate::generate::{check_math, load_model, state_storage, KvArg, MathArg};
use crate::model_file::ModelFile;
use crate::threads::{prefill_scratch, prefill_storage, row_split, SpeedArgs};

/// The environment variable naming `llama-bench`, checked before `PATH`.
pub const LLAMA_BENCH_ENV: &str = "MOTE_LLAMA_BENCH";

/// Arguments of `mote bench`.
#[derive(clap::Args)]
pub struct Args {
    /// GGUF model file, or a bundled model by name: tinystories-base (the default) or
    /// tinystories-small.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prompt tokens to prefill.
    #[arg(long, default_value_t = 64)]
    pub prompt_tokens: usize,
    /// Tokens to decode from position 0 (`llama-bench -n`).
    #[arg(long, default_value_t = 64)]
    pub tokens: usize,
    /// Element type of the KV cache (llama.cpp's default is f16).
    #[arg(long, value_enum, default_value_t = KvArg::F16)]
    pub kv: KvArg,
    /// Arithmetic of the forward pass (`integer` needs `--kv q8_0`).
    #[arg(long, value_enum, default_value_t = MathArg::Float)]
    pub math: MathArg,
    /// Threads (also llama-bench's `-t`) and prefill batch; the prompt is also timed one
    /// position at a time.
    #[command(flatten)]
    pub speed: SpeedArgs,
    /// Runs of each measurement; the mean is reported (`llama-bench -r`).
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Do not run llama-bench even if it is found.
    #[arg(long)]
    pub no_llama: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// llama.cpp's decode speed on the same file, from `llama-bench`.
#[derive(Debug, serde::Serialize)]
pub struct LlamaFigures {
    /// The command that was run.
    pub command: String,
    /// Mean decode tokens/s over its runs.
    pub decode_tokens_per_second: f64,
    /// mote's decode tokens/s over llama.cpp's.
    pub ratio: f64,
}

/// What one `mote bench` run measured.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    /// The model's path, or what the bundled model is called.
    pub model: String,
    /// `C`, `L`, `V`.
    pub n_embd: usize,
    /// Blocks.
    pub n_layer: usize,
    /// Vocabulary size.
    pub n_vocab: usize,
    /// The Q8_0 kernel in use (`avx2` or `portable`).
    pub kernel: &'static str,
    /// Threads.
    pub threads: usize,
    /// Prompt positions per batched-prefill pass (0: none).
    pub batch: usize,
    /// KV cache type.
    pub kv: &'static str,
    /// Arithmetic of the forward pass (`float` or `integer`).
    pub math: &'static str,
    /// Prompt tokens per run.
    pub prompt_tokens: usize,
    /// Mean prompt tokens/s, batched (one position at a time with `--batch 0`).
    pub prompt_tokens_per_second: f64,
    /// Mean prompt tokens/s, one position at a time.
    pub prompt_unbatched_tokens_per_second: f64,
    /// Decoded tokens per run.
    pub decode_tokens: usize,
    /// Mean decode tokens/s.
    pub decode_tokens_per_second: f64,
    /// llama.cpp on the same file, if `llama-bench` was found and not turned off.
    pub llama_cpp: Option<LlamaFigures>,
}

/// A fixed prompt of `n` ids spread over the vocabulary (speed does not depend on which).
fn prompt(n: usize, n_vocab: usize) -> Vec<u32> {
    (0..n).map(|i| ((i * 7919 + 1) % n_vocab) as u32).collect()
}

/// Seconds to prefill `tokens` (up to the first new token's logits), `batch` positions per pass
/// (0: one at a time).
fn time_prefill(
    model: &Model<'_>,
    (kv, math): (KvType, Math),
    tokens: &[u32],
    split: &dyn RowSplit,
    batch: usize,
) -> anyhow::Result<f64> {
    let mut storage = state_storage(model, kv);
    let mut scratch = prefill_storage(&model.hparams, batch);
    let state = RunState::new_math(&model.hparams, kv, math, &mut storage)?;
    let mut session = Session::new(model, state).with_row_split(split);
    if let Some(p) = prefill_scratch(&model.hparams, batch, &mut scratch)? {
        session = session.with_prefill(p);
    }
    let start = Instant::now();
    session.generate(tokens, 0, |_| {})?;
    Ok(start.elapsed().as_secs_f64())
}

/// Seconds to decode `n` tokens from position 0, each the argmax of the previous step's logits.
fn time_decode(
    model: &Model<'_>,
    (kv, math): (KvType, Math),
    n: usize,
    split: &dyn RowSplit,
) -> anyhow::Result<f64> {
    let mut storage = state_storage(model, kv);
    let state = RunState::new_math(&model.hparams, kv, math, &mut storage)?;
    let mut session = Session::new(model, state).with_row_split(split);
    let mut next = 0u32;
    let start = Instant::now();
    for _ in 0..n {
        next = argmax(session.step(next)?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    // Keep the result observable so the steps cannot be optimized away.
    std::hint::black_box(next);
    Ok(elapsed)
}

/// Mean of `count / seconds` over `repeat` runs of `f`.
fn mean_rate(
    repeat: usize,
    count: usize,
    mut f: impl FnMut() -> anyhow::Result<f64>,
) -> anyhow::Result<f64> {
    let mut sum = 0.0;
    for _ in 0..repeat {
        let s = f()?;
        sum += if s > 0.0 { count as f64 / s } else { 0.0 };
    }
    Ok(sum / repeat as f64)
}

/// `llama-bench`: `$MOTE_LLAMA_BENCH` if set (it must exist), else the first on `PATH`.
pub fn find_llama_bench() -> anyhow::Result<Option<PathBuf>> {
    if let Some(p) = std::env::var_os(LLAMA_BENCH_ENV) {
        let p = PathBuf::from(p);
        if !p.is_file() {
            bail!(
                "{LLAMA_BENCH_ENV}={} is not a file; point it at llama.cpp's llama-bench",
                p.display()
            );
        }
        return Ok(Some(p));
    }
    let Some(path) = std::env::var_os("PATH") else { return Ok(None) };
    Ok(std::env::split_paths(&path).map(|d| d.join("llama-bench")).find(|p| p.is_file()))
}

/// Runs `llama-bench -m M -p 0 -n N -t T -r R -o json` and returns its mean decode tokens/s.
fn run_llama_bench(
    exe: &Path,
    model: &Path,
    n: usize,
    threads: usize,
    repeat: usize,
) -> anyhow::Result<(String, f64)> {
    let args = [
        "-m".to_string(),
        model.display().to_string(),
        "-p".into(),
        "0".into(),
        "-n".into(),
        n.to_string(),
        "-t".into(),
        threads.to_string(),
        "-r".into(),
        repeat.to_string(),
        "-o".into(),
        "json".into(),
    ];
    let command = format!("{} {}", exe.display(), args.join(" "));
    let mut cmd = Command::new(exe);
    cmd.args(&args);
    // A llama.cpp build tree keeps its shared libraries beside the binaries.
    if let Some(dir) = exe.parent() {
        let mut dirs = vec![dir.to_path_buf()];
        if let Some(old) = std::env::var_os("LD_LIBRARY_PATH") {
            dirs.extend(std::env::split_paths(&old));
        }
        cmd.env("LD_LIBRARY_PATH", std::env::join_paths(dirs)?);
    }
    let out = cmd.output().with_context(|| format!("cannot run {}", exe.display()))?;
    if !out.status.success() {
        bail!(
            "`{command}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
        );
    }
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("`{command}` did not print the JSON array llama-bench prints"))?;
    let ts = rows
        .iter()
        .find(|r| r["n_gen"].as_u64() == Some(n as u64))
        .and_then(|r| r["avg_ts"].as_f64())
        .with_context(|| format!("`{command}` printed no decode result (n_gen {n}, avg_ts)"))?;
    Ok((command, ts))
}

/// Measures `model` (named `name`, at `path` on disk if it is a file).
pub fn bench(
    model: &Model<'_>,
    name: &str,
    args: &Args,
    llama: Option<(&Path, &Path)>,
) -> anyhow::Result<Report> {
    let hp = model.hparams;
    let kv = KvType::from(args.kv);
    let math = Math::from(args.math);
    check_math(math, kv)?;
    let km = (kv, math);
    if args.repeat == 0 {
        bail!("--repeat must be at least 1");
    }
    for (flag, n) in [("--prompt-tokens", args.prompt_tokens), ("--tokens", args.tokens)] {
        if n == 0 || n > hp.n_ctx {
            bail!("{flag} {n} must be between 1 and the model's context length {}", hp.n_ctx);
        }
    }
    let split = row_split(args.speed.threads)?;
    let split = &*split;
    let tokens = prompt(args.prompt_tokens, hp.n_vocab);
    let n = tokens.len();
    let unbatched_tps = mean_rate(args.repeat, n, || time_prefill(model, km, &tokens, split, 0))?;
    let prompt_tps = match args.speed.batch {
        0 => unbatched_tps,
        b => mean_rate(args.repeat, n, || time_prefill(model, km, &tokens, split, b))?,
    };
    let decode_tps =
        mean_rate(args.repeat, args.tokens, || time_decode(model, km, args.tokens, split))?;
    let llama_cpp = match llama {
        Some((exe, file)) => {
            let (command, ts) =
                run_llama_bench(exe, file, args.tokens, args.speed.threads, args.repeat)?;
            Some(LlamaFigures {
                command,
                decode_tokens_per_second: ts,
                ratio: if ts > 0.0 { decode_tps / ts } else { 0.0 },
            })
        }
        None => None,
    };
    Ok(Report {
        model: name.to_string(),
        n_embd: hp.n_embd,
        n_layer: hp.n_layer,
        n_vocab: hp.n_vocab,
        kernel: mote_core::ops::q8_0_kernel_name(),
        threads: args.speed.threads,
        batch: args.speed.batch,
        kv: kv.name(),
        math: math.name(),
        prompt_tokens: n,
        prompt_tokens_per_second: prompt_tps,
        prompt_unbatched_tokens_per_second: unbatched_tps,
        decode_tokens: args.tokens,
        decode_tokens_per_second: decode_tps,
        llama_cpp,
    })
}

/// Runs `mote bench`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let file = ModelFile::open_arg(args.model.as_deref())?;
    let gguf = file.gguf()?;
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = load_model(&gguf, file.name(), &mut layers)?;
    let exe = if args.no_llama { None } else { find_llama_bench()? };
    // llama-bench reads a file: the bundled model is written to a temporary one.
    let mut temp = None;
    let on_disk = match (&exe, file.path()) {
        (None, _) => None,
        (Some(_), Some(p)) => Some(p),
        (Some(_), None) => {
            let mut t = tempfile::Builder::new().suffix(".gguf").tempfile()?;
            t.write_all(file.bytes())?;
            t.flush()?;
            let p = t.path().to_path_buf();
            temp = Some(t);
            Some(p)
        }
    };
    let llama = exe.as_deref().zip(on_disk.as_deref());
    let r = bench(&model, file.name(), &args, llama)?;
    drop(temp);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer(&mut out, &r)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "model {} (n_embd {}, {} blocks, vocab {}); Q8_0 kernel {}, {} thread{}, kv {}, math {}",
        r.model,
        r.n_embd,
        r.n_layer,
        r.n_vocab,
        r.kernel,
        r.threads,
        if r.threads == 1 { "" } else { "s" },
        r.kv,
        r.math
    )?;
    if r.batch > 0 {
        writeln!(
            out,
            "mote       prompt {:>4} tokens: {:>10.1} tokens/s  (batches of {})",
            r.prompt_tokens, r.prompt_tokens_per_second, r.batch
        )?;
    }
    writeln!(
        out,
        "mote       prompt {:>4} tokens: {:>10.1} tokens/s  (one position at a time)",
        r.prompt_tokens, r.prompt_unbatched_tokens_per_second
    )?;
    writeln!(
        out,
        "mote       decode {:>4} tokens: {:>10.1} tokens/s",
        r.decode_tokens, r.decode_tokens_per_second
    )?;
    match &r.llama_cpp {
        Some(l) => {
            writeln!(out, "llama.cpp  decode {:>4} tokens: {:>10.1} tokens/s", r.decode_tokens, l.decode_tokens_per_second)?;
            writeln!(out, "decode ratio mote / llama.cpp: {:.2}x   ({})", l.ratio, l.command)?;
        }
        None if args.no_llama => {}
        None => writeln!(
            out,
            "llama-bench not found (set {LLAMA_BENCH_ENV} or put it on PATH) to compare with llama.cpp"
        )?,
    }
    Ok(())
}
