//! `mote convert`: a Hugging Face GPT-2 checkpoint directory to one GGUF file, written the way
//! llama.cpp's `convert_hf_to_gguf.py` writes GPT-2 (same metadata keys, tensor names, Conv1D
//! transposes, and byte-identical Q8_0 blocks), so the file runs in mote and in llama.cpp.
//!
//! Streaming: the safetensors file is memory-mapped and each tensor is converted and written in row
//! tiles, so memory stays close to the mapped input plus a few rows. The output goes to a temporary
//! file beside the target, is `fsync`ed, then renamed: the output path never holds a partial file.
//!
//! Tensor types per llama.cpp 0c1e570 (`conversion/base.py`, `prepare_tensors`): 1-D tensors
//! (norms, biases) are F32; `position_embd` is always F32; every other 2-D weight (including
//! `token_embd` and `output`) takes the requested type, and a matrix whose rows are not whole Q8_0
//! blocks falls back to F16.
//!
//! Shapes: the checkpoint stores Conv1D weights (`c_attn`, `c_proj`, `c_fc`) as `[n_in, n_out]`; the
//! GGUF matrix has one row per output unit, so they are transposed and GGUF's `ne` is
//! `[n_in, n_out]`.

pub mod config;
pub mod gguf_writer;
pub mod tokenizer;
pub mod tokenizer_index;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use mote_core::gguf::{GgmlType, ValueType};
use mote_core::quant::{f32_to_f16_bits, quantize_block_q8_0, QK8_0};
use safetensors::{Dtype, SafeTensorError, SafeTensors};

use config::HfConfig;
use gguf_writer::{GgufBuilder, GgufStream, MetaArray, MetaValue};
use tokenizer::Vocab;

/// Arguments of `mote convert`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Hugging Face checkpoint directory (config.json, model.safetensors).
    pub hf_dir: PathBuf,
    /// Output GGUF file.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Weight type for 2-D matrices (norms and biases stay F32).
    #[arg(long = "type", value_enum, default_value_t = OutType::Q8_0)]
    pub out_type: OutType,
    /// Directory holding the tokenizer (tokenizer.json, vocab.json + merges.txt, or encoder.json +
    /// vocab.bpe); default: HF_DIR.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// Replace the output file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Print one JSON object (output path, bytes, tensor count per type, notes, seconds) instead of
    /// the summary line.
    #[arg(long)]
    pub json: bool,
}

/// The requested weight type (`--type`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    /// Blocks of 32 int8 with an f16 scale (llama.cpp file type 7).
    #[value(name = "q8_0")]
    Q8_0,
    /// IEEE half (file type 1).
    #[value(name = "f16")]
    F16,
    /// 32-bit float (file type 0).
    #[value(name = "f32")]
    F32,
}

impl OutType {
    /// llama.cpp's `general.file_type` (`LLAMA_FTYPE_*`).
    pub fn file_type(self) -> u32 {
        match self {
            OutType::F32 => 0,
            OutType::F16 => 1,
            OutType::Q8_0 => 7,
        }
    }

    fn ggml(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::Q8_0 => GgmlType::Q8_0,
        }
    }
}

/// Per layer, the factor the query (the first `n_embd` outputs of `attn_qkv`, weight and bias) was
/// multiplied by at conversion, so that q.k / sqrt(head_dim) gives the checkpoint's attention
/// scores. Written only when a factor differs from 1; informational: the tensors already hold it.
pub const QUERY_SCALE_KEY: &str = "mote.attention.query_scale_folded";

/// `general.quantization_version` written by llama.cpp (`GGML_QUANT_VERSION`).
const GGML_QUANT_VERSION: u32 = 2;

/// Output rows converted per batch for a transposed matrix: enough that each read of a source row
/// touches a cache line's worth of neighbouring columns.
const TRANSPOSE_TILE: usize = 64;

/// What a finished conversion wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The output file.
    pub output: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// `(gguf name, type)` of every tensor, in file order.
    pub tensors: Vec<(String, GgmlType)>,
    /// Notes printed for the user (fallbacks, tied head).
    pub notes: Vec<String>,
}

impl Report {
    /// How many tensors of each type, by ggml's type name.
    pub fn tensors_by_type(&self) -> std::collections::BTreeMap<&'static str, usize> {
        let mut by_type = std::collections::BTreeMap::new();
        for (_, ty) in &self.tensors {
            *by_type.entry(ty.name()).or_default() += 1;
        }
        by_type
    }
}

/// Runs `mote convert`.
pub fn run(args: Args) -> Result<()> {
    let started = std::time::Instant::now();
    let report = convert(&args)?;
    let seconds = started.elapsed().as_secs_f64();
    let by_type = report.tensors_by_type();
    if args.json {
        let summary = serde_json::json!({
            "output": report.output,
            "bytes": report.bytes,
            "tensors": report.tensors.len(),
            "tensors_by_type": by_type,
            "notes": report.notes,
            "seconds": seconds,
        });
        println!("{summary:#}");
        return Ok(());
    }
    let types: Vec<String> = by_type.iter().map(|(ty, n)| format!("{n} {ty}")).collect();
    println!(
        "wrote {} ({} bytes, {} tensors: {}) in {seconds:.1} s",
        report.output.display(),
        report.bytes,
        report.tensors.len(),
        types.join(", ")
    );
    Ok(())
}

/// The reading half of `mote convert` on in-memory inputs, with no tokenizer and no file: checks
/// `config_json` and the safetensors file `safetensors` against each other, then converts every
/// tensor to `out_type` into `sink`. Returns the number of tensors converted. The `convert_inputs`
/// fuzz target drives this with arbitrary bytes; [`convert`] runs the same checks on files.
pub fn convert_in_memory(
    config_json: &[u8],
    safetensors: &[u8],
    out_type: OutType,
    sink: impl Write,
) -> Result<usize> {
    let path = Path::new("model.safetensors");
    let cfg = config::from_json(config_json).context("in config.json")?;
    let st = SafeTensors::deserialize(safetensors).map_err(|e| safetensors_error(path, e))?;
    let plan = plan_tensors(&st, path, &cfg, out_type, &mut Vec::new())?;
    let mut b = GgufBuilder::new();
    for t in &plan {
        b.add_tensor(&t.gguf_name, &t.dims, t.ty)?;
    }
    let mut stream = b.start(sink)?;
    for t in &plan {
        write_tensor(&mut stream, &st, t)?;
    }
    stream.finish()?;
    Ok(plan.len())
}

/// Converts `args.hf_dir` to `args.output`. On any error no output file is left behind.
pub fn convert(args: &Args) -> Result<Report> {
    let dir = &args.hf_dir;
    if !dir.is_dir() {
        bail!("{} is not a directory; pass a Hugging Face checkpoint directory", dir.display());
    }
    if args.output.exists() && !args.force {
        bail!("{} already exists; pass --force to replace it", args.output.display());
    }
    let cfg = config::load(dir)?;
    let st_path = dir.join("model.safetensors");
    let st_file = File::open(&st_path).with_context(|| {
        format!(
            "cannot open {}: the checkpoint's weights must be in one model.safetensors file \
             (save the model with safe_serialization=True)",
            st_path.display()
        )
    })?;
    // SAFETY: the map is read-only and lives while the conversion reads it; like every reader of a
    // memory-mapped file we rely on nobody truncating the checkpoint while it is converted.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&st_file) }
        .with_context(|| format!("cannot memory-map {}", st_path.display()))?;
    let st = SafeTensors::deserialize(&map).map_err(|e| safetensors_error(&st_path, e))?;
    let tok_dir = args.tokenizer.as_deref().unwrap_or(dir);
    let vocab = tokenizer::load(tok_dir)?;
    if vocab.tokens.len() as u64 != cfg.vocab_size {
        bail!(
            "the tokenizer ({}) has {} tokens but the model's embedding has {} rows (config.json \
             vocab_size); use the tokenizer the model was trained with",
            vocab.source,
            vocab.tokens.len(),
            cfg.vocab_size
        );
    }

    let mut notes = Vec::new();
    let plan = plan_tensors(&st, &st_path, &cfg, args.out_type, &mut notes)?;
    let mut b = GgufBuilder::new();
    add_metadata(&mut b, &cfg, &vocab, args.out_type)?;
    for t in &plan {
        b.add_tensor(&t.gguf_name, &t.dims, t.ty)?;
    }
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    for n in &notes {
        eprintln!("note: {n}");
    }

    let out_dir = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let out_name =
        args.output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{out_name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".partial");
    // A temporary file is private (0600); the model is an ordinary file, so ask for 0666 and let
    // the umask decide, as any other file creation would.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let tmp = builder.tempfile_in(&out_dir).with_context(|| {
        format!("cannot create a file in {}; choose a writable output path", out_dir.display())
    })?;
    let total = b.file_size();
    let progress = crate::progress::bar(total, "{bar:40} {bytes}/{total_bytes} {eta}");
    let mut stream = b.start(BufWriter::with_capacity(1 << 20, tmp.as_file()))?;
    for t in &plan {
        write_tensor(&mut stream, &st, t)?;
        progress.inc(t.out_bytes);
    }
    let mut out = stream.finish()?;
    out.flush().with_context(|| format!("cannot write to {}", out_dir.display()))?;
    drop(out);
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot sync the output in {}", out_dir.display()))?;
    progress.finish_and_clear();
    let persisted =
        if args.force { tmp.persist(&args.output) } else { tmp.persist_noclobber(&args.output) };
    persisted
        .map_err(|e| e.error)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    // The rename is durable once the directory entry is on disk.
    if let Ok(d) = File::open(&out_dir) {
        let _ = d.sync_all();
    }
    Ok(Report {
        output: args.output.clone(),
        bytes: total,
        tensors: plan.iter().map(|t| (t.gguf_name.clone(), t.ty)).collect(),
        notes,
    })
}

fn safetensors_error(path: &Path, e: SafeTensorError) -> anyhow::Error {
    let what = match e {
        SafeTensorError::InvalidOffset(name) => format!(
            "tensor {name}'s data offsets are invalid: tensors must follow each other without gaps or \
             overlaps"
        ),
        SafeTensorError::MetadataIncompleteBuffer => {
            "the data section does not match the header's offsets (is the file truncated?)".into()
        }
        SafeTensorError::TensorInvalidInfo => {
            "a tensor's shape and dtype do not match its data size".into()
        }
        SafeTensorError::HeaderTooSmall
        | SafeTensorError::HeaderTooLarge
        | SafeTensorError::InvalidHeaderLength => {
            "the header length is wrong (is the file truncated?)".into()
        }
        other => format!("{other:?}"),
    };
    anyhow::anyhow!(
        "{} is not a valid safetensors file: {what}; re-save or re-download it",
        path.display()
    )
}

/// One output tensor: where it comes from and how it is written.
#[derive(Debug, Clone)]
struct TensorPlan {
    gguf_name: String,
    src_name: String,
    /// Conv1D weight: GGUF row `r` is source column `r`.
    transpose: bool,
    /// GGUF `ne`.
    dims: Vec<u64>,
    ty: GgmlType,
    out_bytes: u64,
    /// The first `.0` output values are multiplied by `.1` (the query's attention scale, folded).
    fold: Option<(usize, f32)>,
}

/// Finds a tensor with or without the `transformer.` prefix.
fn find<'a>(
    st: &'a SafeTensors<'a>,
    name: &str,
) -> Option<(String, safetensors::tensor::TensorView<'a>)> {
    [format!("transformer.{name}"), name.to_owned()]
        .into_iter()
        .find_map(|n| st.tensor(&n).ok().map(|v| (n, v)))
}

fn plan_tensors(
    st: &SafeTensors<'_>,
    path: &Path,
    cfg: &HfConfig,
    out: OutType,
    notes: &mut Vec<String>,
) -> Result<Vec<TensorPlan>> {
    let (e, v, p, f) = (cfg.n_embd, cfg.vocab_size, cfg.n_positions, cfg.n_ff);
    // Every layer has 12 tensors: a config with more layers than the file has tensors is wrong, and
    // is refused before a tensor list is sized from it.
    let layers_in_file = st.len() as u64 / 12;
    if cfg.n_layer > layers_in_file {
        bail!(
            "{}: config.json says n_layer {}, but the file has {} tensors, 12 per layer: at most \
             {layers_in_file}; the config does not match the weights",
            path.display(),
            cfg.n_layer,
            st.len()
        );
    }
    // (HF name, GGUF name, expected HF shape, Conv1D transpose)
    let mut wanted: Vec<(String, String, Vec<u64>, bool)> = vec![
        ("wte.weight".into(), "token_embd.weight".into(), vec![v, e], false),
        ("wpe.weight".into(), "position_embd.weight".into(), vec![p, e], false),
    ];
    for i in 0..cfg.n_layer {
        let h = |s: &str| format!("h.{i}.{s}");
        let g = |s: &str| format!("blk.{i}.{s}");
        wanted.extend([
            (h("ln_1.weight"), g("attn_norm.weight"), vec![e], false),
            (h("ln_1.bias"), g("attn_norm.bias"), vec![e], false),
            (h("attn.c_attn.weight"), g("attn_qkv.weight"), vec![e, 3 * e], true),
            (h("attn.c_attn.bias"), g("attn_qkv.bias"), vec![3 * e], false),
            (h("attn.c_proj.weight"), g("attn_output.weight"), vec![e, e], true),
            (h("attn.c_proj.bias"), g("attn_output.bias"), vec![e], false),
            (h("ln_2.weight"), g("ffn_norm.weight"), vec![e], false),
            (h("ln_2.bias"), g("ffn_norm.bias"), vec![e], false),
            (h("mlp.c_fc.weight"), g("ffn_up.weight"), vec![e, f], true),
            (h("mlp.c_fc.bias"), g("ffn_up.bias"), vec![f], false),
            (h("mlp.c_proj.weight"), g("ffn_down.weight"), vec![f, e], true),
            (h("mlp.c_proj.bias"), g("ffn_down.bias"), vec![e], false),
        ]);
    }
    wanted.push(("ln_f.weight".into(), "output_norm.weight".into(), vec![e], false));
    wanted.push(("ln_f.bias".into(), "output_norm.bias".into(), vec![e], false));

    let mut used = std::collections::BTreeSet::new();
    let mut plan = Vec::new();
    for (hf, gguf, shape, transpose) in &wanted {
        let src = find(st, hf).with_context(|| {
            format!(
                "{} has no tensor {hf} (or transformer.{hf}); config.json says n_layer {}; is this a \
                 complete GPT-2 checkpoint?",
                path.display(),
                cfg.n_layer
            )
        })?;
        used.insert(src.0.clone());
        let mut t = plan_one(path, cfg, out, gguf, shape, *transpose, src, notes)?;
        t.fold = query_fold(cfg, hf, e as usize);
        plan.push(t);
    }
    match find(st, "lm_head.weight") {
        Some(head) => {
            used.insert(head.0.clone());
            let equal = find(st, "wte.weight").is_some_and(|(_, wte)| {
                wte.dtype() == head.1.dtype() && wte.data() == head.1.data()
            });
            if equal {
                notes.push(
                    "lm_head.weight equals wte.weight (tied): no output.weight written".into(),
                );
            } else {
                // transformers (5.24) keeps a distinct lm_head even when tie_word_embeddings says
                // tied, and so does mote.
                plan.push(plan_one(path, cfg, out, "output.weight", &[v, e], false, head, notes)?);
            }
        }
        None if !cfg.tie_word_embeddings => bail!(
            "{}: config.json has tie_word_embeddings false but the file has no lm_head.weight; \
             save the whole GPT2LMHeadModel",
            path.display()
        ),
        None => {}
    }
    for name in st.names() {
        let ignorable = name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias");
        if !used.contains(name.as_str()) && !ignorable {
            bail!(
                "{}: unexpected tensor {name}; mote converts plain GPT-2 (GPT2LMHeadModel) checkpoints",
                path.display()
            );
        }
    }
    Ok(plan)
}

/// The attention scale folded into layer `i`'s query: the first `n_embd` outputs of `c_attn`
/// (GGUF rows of `n_embd` values for the weight, single values for the bias), when the checkpoint
/// scores attention other than q.k / sqrt(head_dim).
fn query_fold(cfg: &HfConfig, hf_name: &str, n_embd: usize) -> Option<(usize, f32)> {
    let layer = hf_name.strip_prefix("h.")?.split('.').next()?.parse::<u64>().ok()?;
    let count = if hf_name.ends_with(".attn.c_attn.weight") {
        n_embd * n_embd
    } else if hf_name.ends_with(".attn.c_attn.bias") {
        n_embd
    } else {
        return None;
    };
    cfg.folds_query_scale().then(|| (count, cfg.query_scale(layer)))
}

/// Checks one source tensor against the shape the config implies and picks its GGUF type.
#[allow(clippy::too_many_arguments)]
fn plan_one(
    path: &Path,
    cfg: &HfConfig,
    out: OutType,
    gguf: &str,
    shape: &[u64],
    transpose: bool,
    src: (String, safetensors::tensor::TensorView<'_>),
    notes: &mut Vec<String>,
) -> Result<TensorPlan> {
    let (src_name, view) = src;
    let actual: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
    if actual != shape {
        bail!(
            "{}: tensor {src_name} has shape {actual:?}, but config.json (n_embd {}, n_ff {}, vocab_size \
             {}, n_positions {}) needs {shape:?}; the config does not match the weights",
            path.display(),
            cfg.n_embd,
            cfg.n_ff,
            cfg.vocab_size,
            cfg.n_positions
        );
    }
    if !matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16) {
        bail!(
            "{}: tensor {src_name} has dtype {:?}; mote converts F32, F16 and BF16 checkpoints",
            path.display(),
            view.dtype()
        );
    }
    // GGUF ne: row length first. Conv1D [n_in, n_out] is transposed to n_out rows of n_in, i.e.
    // ne = [n_in, n_out]; a Linear or embedding [rows, cols] has ne = [cols, rows].
    let dims: Vec<u64> =
        if transpose { shape.to_vec() } else { shape.iter().rev().copied().collect() };
    let ty = if dims.len() == 1 || gguf == "position_embd.weight" {
        GgmlType::F32
    } else if out == OutType::Q8_0 && dims[0] % QK8_0 as u64 != 0 {
        notes.push(format!(
            "{gguf}: rows of {} values are not whole Q8_0 blocks of {QK8_0}; written as F16",
            dims[0]
        ));
        GgmlType::F16
    } else {
        out.ggml()
    };
    let n: u64 = dims.iter().product();
    let out_bytes = ty.bytes_for(n).context("tensor size overflows")?;
    Ok(TensorPlan {
        gguf_name: gguf.to_owned(),
        src_name,
        transpose,
        dims,
        ty,
        out_bytes,
        fold: None,
    })
}

fn add_metadata(b: &mut GgufBuilder, cfg: &HfConfig, vocab: &Vocab, out: OutType) -> Result<()> {
    let u32v = |x: u64, what: &str| -> Result<MetaValue> {
        Ok(MetaValue::U32(
            u32::try_from(x).with_context(|| format!("{what} {x} does not fit a u32"))?,
        ))
    };
    b.add("general.architecture", MetaValue::Str("gpt2".into()))?;
    b.add("general.type", MetaValue::Str("model".into()))?;
    b.add("gpt2.block_count", u32v(cfg.n_layer, "n_layer")?)?;
    b.add("gpt2.context_length", u32v(cfg.n_ctx, "n_ctx")?)?;
    b.add("gpt2.embedding_length", u32v(cfg.n_embd, "n_embd")?)?;
    b.add("gpt2.feed_forward_length", u32v(cfg.n_ff, "n_inner")?)?;
    b.add("gpt2.attention.head_count", u32v(cfg.n_head, "n_head")?)?;
    b.add("gpt2.attention.layer_norm_epsilon", MetaValue::F32(cfg.layer_norm_epsilon))?;
    b.add("general.file_type", MetaValue::U32(out.file_type()))?;
    b.add("general.quantization_version", MetaValue::U32(GGML_QUANT_VERSION))?;
    b.add("tokenizer.ggml.model", MetaValue::Str("gpt2".into()))?;
    b.add("tokenizer.ggml.pre", MetaValue::Str("gpt-2".into()))?;
    b.add("tokenizer.ggml.tokens", MetaArray::new(ValueType::String, vocab.tokens.clone()).into())?;
    b.add(
        "tokenizer.ggml.token_type",
        MetaArray::new(ValueType::I32, vocab.token_types.clone()).into(),
    )?;
    b.add("tokenizer.ggml.merges", MetaArray::new(ValueType::String, vocab.merges.clone()).into())?;
    let eot = vocab.id_of("<|endoftext|>");
    let n = vocab.tokens.len() as u64;
    for (key, id) in [
        ("tokenizer.ggml.bos_token_id", cfg.bos_token_id.filter(|&i| i < n).or(eot)),
        ("tokenizer.ggml.eos_token_id", cfg.eos_token_id.filter(|&i| i < n).or(eot)),
    ] {
        if let Some(id) = id {
            b.add(key, u32v(id, key)?)?;
        }
    }
    b.add("tokenizer.ggml.add_bos_token", MetaValue::Bool(false))?;
    for (key, values) in tokenizer_index::build(&vocab.tokens, &vocab.merges) {
        b.add(&key, MetaArray::new(ValueType::U32, values).into())?;
    }
    if cfg.folds_query_scale() {
        let scales = (0..cfg.n_layer).map(|i| cfg.query_scale(i));
        b.add(QUERY_SCALE_KEY, MetaArray::new(ValueType::F32, scales).into())?;
    }
    Ok(())
}

/// Decodes element `i` of a little-endian F32/F16/BF16 buffer (safetensors data may sit at any
/// alignment in the map, so values are read from bytes).
fn decoder(dtype: Dtype) -> fn(&[u8], usize) -> f32 {
    match dtype {
        Dtype::F16 => |d, i| half::f16::from_le_bytes([d[2 * i], d[2 * i + 1]]).to_f32(),
        Dtype::BF16 => |d, i| half::bf16::from_le_bytes([d[2 * i], d[2 * i + 1]]).to_f32(),
        _ => |d, i| f32::from_le_bytes([d[4 * i], d[4 * i + 1], d[4 * i + 2], d[4 * i + 3]]),
    }
}

fn write_tensor<W: Write>(
    stream: &mut GgufStream<W>,
    st: &SafeTensors<'_>,
    t: &TensorPlan,
) -> Result<()> {
    let view = st.tensor(&t.src_name).with_context(|| format!("tensor {} vanished", t.src_name))?;
    let data = view.data();
    let get = decoder(view.dtype());
    let row_len = t.dims[0] as usize;
    let n_rows = (t.dims.iter().product::<u64>() / t.dims[0]) as usize;
    // Source layout: not transposed, GGUF row r is source row r; transposed, the source is
    // [row_len, n_rows] and GGUF row r is its column r.
    let tile = if t.transpose { TRANSPOSE_TILE } else { 1 };
    let mut rows = vec![0f32; tile * row_len];
    let mut bytes = Vec::with_capacity(tile * row_len * 4);
    let mut r0 = 0;
    while r0 < n_rows {
        let nt = tile.min(n_rows - r0);
        if t.transpose {
            for i in 0..row_len {
                for k in 0..nt {
                    rows[k * row_len + i] = get(data, i * n_rows + r0 + k);
                }
            }
        } else {
            for (i, x) in rows[..row_len].iter_mut().enumerate() {
                *x = get(data, r0 * row_len + i);
            }
        }
        if let Some((count, factor)) = t.fold {
            let done = r0 * row_len;
            let end = count.saturating_sub(done).min(nt * row_len);
            rows[..end].iter_mut().for_each(|x| *x *= factor);
        }
        let rows = &rows[..nt * row_len];
        if let Some(pos) = rows.iter().position(|x| !x.is_finite()) {
            let (r, c) = (r0 + pos / row_len, pos % row_len);
            let (i, j) = if t.transpose { (c, r) } else { (r, c) };
            bail!(
                "tensor {} has a non-finite value {} at [{i}, {j}]; the checkpoint is damaged (fix or \
                 retrain it)",
                t.src_name,
                rows[pos]
            );
        }
        bytes.clear();
        encode(&mut bytes, rows, t)?;
        stream.write(&bytes)?;
        r0 += nt;
    }
    Ok(())
}

fn encode(out: &mut Vec<u8>, rows: &[f32], t: &TensorPlan) -> Result<()> {
    match t.ty {
        GgmlType::F32 => rows.iter().for_each(|x| out.extend(x.to_le_bytes())),
        GgmlType::F16 => {
            for &x in rows {
                let h = f32_to_f16_bits(x);
                if half::f16::from_bits(h).is_infinite() {
                    bail!(
                        "tensor {} has value {x}, too large for F16; convert with --type f32",
                        t.src_name
                    );
                }
                out.extend(h.to_le_bytes());
            }
        }
        GgmlType::Q8_0 => {
            for chunk in rows.chunks_exact(QK8_0) {
                let mut block = [0f32; QK8_0];
                block.copy_from_slice(chunk);
                out.extend(quantize_block_q8_0(&block).to_bytes());
            }
        }
    }
    Ok(())
}
