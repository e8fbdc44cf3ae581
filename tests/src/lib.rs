//! Shared helpers for mote's end-to-end tests and fuzz targets: where the repository, the shared
//! data and the `mote` binary are; GPT-2's vocabulary as a GGUF; and what each fuzz target does
//! with one input, so that the test replaying saved crash inputs runs exactly the same code.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mote_core::forward::forward;
use mote_core::gguf::{Gguf, Value};
use mote_core::model::{Layer, Model, MAX_LAYERS};
use mote_core::sampler::{Sampler, SamplerConfig};
use mote_core::session::Session;
use mote_core::split::Serial;
use mote_core::state::{KvType, RunState};
use mote_core::tokenizer::{index, BpeScratch, Special, StreamDecoder, Tokenizer, TokenizerError};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("..")).to_path_buf()
}

/// `shared/data`: third-party data, read in place, never copied. CI keeps it beside the repository
/// (`../shared/data`); a git worktree may sit deeper, so every ancestor of the repository is tried.
pub fn shared_data() -> PathBuf {
    let root = repo_root();
    root.ancestors()
        .skip(1)
        .map(|a| a.join("shared/data"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| root.join("../shared/data"))
}

/// The test Python (`target/py`, made by `cargo xtask setup`); panics with what to do when it is
/// missing or stale. Tests never run `python3` from PATH.
pub fn python() -> PathBuf {
    mote_pyenv::python(&repo_root()).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `tools/py/SCRIPT ARGS` with the test Python and panics with its output if it fails.
pub fn python_script<S: AsRef<OsStr>>(script: &str, args: &[S]) {
    let o = Command::new(python())
        .arg(repo_root().join("tools/py").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        o.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The `mote` binary that cargo built beside the running test (`target/<profile>/mote`): an
/// integration test's executable sits in `target/<profile>/deps/`.
pub fn mote_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe.parent().and_then(Path::parent).unwrap_or(Path::new("."));
    profile_dir.join(format!("mote{}", std::env::consts::EXE_SUFFIX))
}

/// Runs `mote ARGS`, which must succeed, and parses the one JSON object it prints.
pub fn mote_json<S: AsRef<OsStr>>(args: &[S]) -> serde_json::Value {
    let out = mote(args);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

/// Runs `mote ARGS` and returns its output.
pub fn mote<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let bin = mote_bin();
    Command::new(&bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// A file of little-endian f32 values (the reference logits that tools/py scripts save).
pub fn read_f32s(path: &Path) -> Vec<f32> {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// A Hugging Face checkpoint directory converted to an F32 GGUF file by `mote convert`, as bytes.
pub fn convert_f32(hf_dir: &Path) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = dir.path().join("f32.gguf");
    let args = mote::convert::Args {
        hf_dir: hf_dir.to_path_buf(),
        output: out.clone(),
        out_type: mote::convert::OutType::F32,
        tokenizer: None,
        force: false,
        json: false,
    };
    mote::convert::convert(&args).unwrap_or_else(|e| panic!("{}: {e}", hf_dir.display()));
    std::fs::read(out).expect("the converted file")
}

/// Logits at every position of `tokens`, fed one by one from position 0.
pub fn logits_at_every_position(model: &Model<'_>, kv: KvType, tokens: &[u32]) -> Vec<Vec<f32>> {
    let mut buf = vec![0u8; RunState::bytes_needed(&model.hparams, kv)];
    let mut s = RunState::new(&model.hparams, kv, &mut buf).expect("state");
    tokens
        .iter()
        .enumerate()
        .map(|(p, &t)| {
            forward(model, &mut s, t, p, &Serial, true).expect("forward");
            s.logits().to_vec()
        })
        .collect()
}

/// GPT-2's vocabulary (id order) and merges (rank order), from `shared/data/gpt2-tokenizer`.
pub fn gpt2_files() -> (Vec<String>, Vec<String>) {
    let dir = shared_data().join("gpt2-tokenizer");
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let encoder: std::collections::HashMap<String, u32> =
        serde_json::from_str(&read("encoder.json")).unwrap_or_default();
    let mut tokens = vec![String::new(); encoder.len()];
    for (t, id) in encoder {
        if let Some(slot) = tokens.get_mut(id as usize) {
            *slot = t;
        }
    }
    let merges = read("vocab.bpe")
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.is_empty())
        .map(str::to_string)
        .collect();
    (tokens, merges)
}

/// A minimal GGUF v3 writer: metadata only, no tensors.
#[derive(Default)]
pub struct GgufBytes {
    kv: Vec<u8>,
    n_kv: u64,
}

impl GgufBytes {
    fn key(&mut self, k: &str, ty: u32) {
        self.n_kv += 1;
        self.kv.extend((k.len() as u64).to_le_bytes());
        self.kv.extend(k.as_bytes());
        self.kv.extend(ty.to_le_bytes());
    }

    /// A string value.
    pub fn string(&mut self, k: &str, v: &str) {
        self.key(k, 8);
        self.kv.extend((v.len() as u64).to_le_bytes());
        self.kv.extend(v.as_bytes());
    }

    /// A `u32` value.
    pub fn u32(&mut self, k: &str, v: u32) {
        self.key(k, 4);
        self.kv.extend(v.to_le_bytes());
    }

    /// An array of strings.
    pub fn strings(&mut self, k: &str, v: &[String]) {
        self.key(k, 9);
        self.kv.extend(8u32.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        for s in v {
            self.kv.extend((s.len() as u64).to_le_bytes());
            self.kv.extend(s.as_bytes());
        }
    }

    /// An array of 4-byte elements of GGUF type `elem` (4 = u32, 5 = i32).
    pub fn words(&mut self, k: &str, elem: u32, v: &[u32]) {
        self.key(k, 9);
        self.kv.extend(elem.to_le_bytes());
        self.kv.extend((v.len() as u64).to_le_bytes());
        for x in v {
            self.kv.extend(x.to_le_bytes());
        }
    }

    /// The file's bytes.
    pub fn finish(self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.extend(self.n_kv.to_le_bytes());
        out.extend(self.kv);
        out
    }
}

/// Index arrays computed with `mote_core::tokenizer::index`, as `mote convert` writes them.
pub fn index_arrays(tokens: &[String], merges: &[String]) -> [(&'static str, Vec<u32>); 3] {
    let mut offsets = vec![0; tokens.len()];
    let mut order = vec![0; tokens.len()];
    let mut rows = vec![[0u32; 4]; merges.len()];
    index::string_offsets(tokens, &mut offsets).expect("GPT-2's vocabulary indexes");
    index::token_order(tokens, &mut order).expect("GPT-2's vocabulary indexes");
    index::merge_pairs(tokens, merges, &order, &mut rows).expect("GPT-2's merges index");
    [
        (index::TOKEN_OFFSETS, offsets),
        (index::TOKEN_ORDER, order),
        (index::MERGE_PAIRS, rows.concat()),
    ]
}

/// GPT-2's tokenizer as a metadata-only GGUF, as llama.cpp's converter writes it
/// (`<|endoftext|>` a control token, bos = eos = 50256), with the converter's index if
/// `with_index`, plus `extra` u32 arrays.
pub fn gpt2_gguf(with_index: bool, extra: &[(&'static str, Vec<u32>)]) -> Vec<u8> {
    let (tokens, merges) = gpt2_files();
    let mut g = GgufBytes::default();
    g.string("general.architecture", "gpt2");
    g.string("tokenizer.ggml.model", "gpt2");
    g.strings("tokenizer.ggml.tokens", &tokens);
    let types: Vec<u32> = tokens.iter().map(|t| if t == "<|endoftext|>" { 3 } else { 1 }).collect();
    g.words("tokenizer.ggml.token_type", 5, &types);
    g.strings("tokenizer.ggml.merges", &merges);
    g.u32("tokenizer.ggml.bos_token_id", 50256);
    g.u32("tokenizer.ggml.eos_token_id", 50256);
    if with_index {
        for (k, v) in index_arrays(&tokens, &merges) {
            g.words(k, 4, &v);
        }
    }
    for (k, v) in extra {
        g.words(k, 4, v);
    }
    g.finish()
}

/// What the GGUF fuzz target does with each input, shared with the test that replays every saved
/// crash: parse, and if that succeeds read back every metadata value, array element and tensor view.
/// Panics only on a broken invariant of the reader.
pub fn exercise_gguf(data: &[u8]) -> usize {
    let Ok(g) = Gguf::parse(data) else { return 0 };
    let mut n = 0usize;
    for (key, value) in g.metadata() {
        assert!(g.get(key).is_some());
        if let Value::Array(a) = value {
            n += a.iter().count();
            if let Some(strings) = a.strings() {
                n += strings.map(str::len).sum::<usize>();
            }
            let _ = a.get(a.len().saturating_sub(1));
        }
    }
    for t in g.tensors() {
        let bytes = t.ty.bytes_for(t.n_elements()).unwrap_or(0);
        assert_eq!(t.data.len() as u64, bytes, "tensor view has the size its type and shape give");
        assert!(g.tensor(t.name).is_some());
        n += t.data.len();
    }
    assert_eq!(g.tensors().count(), g.n_tensors());
    n
}

/// The largest run state the model fuzz target allocates: a mutated width or context could ask
/// for gigabytes, which is the caller's memory to refuse, not a fault of the core.
pub const FUZZ_MAX_STATE_BYTES: usize = 8 << 20;

/// What the `model_generate` fuzz target does with each input: parse, load the model, and if
/// that succeeds generate a few tokens with a small run state (each KV type in turn, greedy and
/// sampled), from a prompt taken from the input's last bytes (ids may be out of range). Returns
/// the number of tokens generated; every error is an answer, only a panic is a fault.
pub fn exercise_model(data: &[u8]) -> usize {
    let Ok(g) = Gguf::parse(data) else { return 0 };
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let Ok(model) = Model::load(&g, &mut layers) else { return 0 };
    let hp = model.hparams;
    let n_vocab = u32::try_from(hp.n_vocab).unwrap_or(u32::MAX);
    // Up to 3 prompt tokens from the tail; mostly in range, sometimes one past the end.
    let prompt: Vec<u32> = data
        .iter()
        .rev()
        .take(3)
        .map(|&b| u32::from(b) % n_vocab.saturating_add(1).max(1))
        .collect();
    let mut n = 0;
    for (kv, sampled) in [(KvType::F32, false), (KvType::F16, true), (KvType::Q8_0, false)] {
        let needed = RunState::bytes_needed(&hp, kv);
        if needed > FUZZ_MAX_STATE_BYTES {
            continue;
        }
        let mut storage = vec![0u8; needed];
        let Ok(state) = RunState::new(&hp, kv, &mut storage) else { continue };
        let mut session = Session::new(&model, state);
        let mut sampler = if sampled {
            let cfg = SamplerConfig {
                temperature: 0.8,
                top_k: Some(5),
                top_p: 0.9,
                repetition_penalty: 1.3,
                no_repeat_ngram_size: 2,
                seed: 7,
            };
            match Sampler::new(cfg, hp.n_ctx) {
                Ok(s) => s,
                Err(_) => continue,
            }
        } else {
            Sampler::greedy()
        };
        if let Ok(done) = session.generate_with(&prompt, 4, &mut sampler, |t| {
            assert!(t < n_vocab, "generated token {t} is outside the vocabulary of {n_vocab}");
        }) {
            n += done.n_generated;
        }
    }
    n
}

/// What the `tokenizer` fuzz target does with each input, against a real vocabulary: the input's
/// bytes as text (lossily made UTF-8) must encode and decode back to the same text, with and
/// without special tokens; the same bytes read as ids must decode, in one piece and streamed, to
/// the same text (`String::from_utf8_lossy` of the raw bytes), or give an error for an id outside
/// the vocabulary. Panics only on a broken invariant.
pub fn exercise_tokenizer(tok: &Tokenizer<'_>, data: &[u8]) -> usize {
    let text = String::from_utf8_lossy(data);
    let mut scratch = BpeScratch::new();
    let mut n = 0;
    for special in [Special::AsText, Special::Recognize] {
        let mut ids = Vec::new();
        let encoded = tok.encode_each(&text, special, &mut scratch, |id| {
            ids.push(id);
            Ok(())
        });
        match encoded {
            Ok(()) => {}
            // A pre-token longer than the BPE scratch is refused whole, never split or truncated.
            Err(TokenizerError::PretokenTooLong { .. }) => continue,
            Err(e) => panic!("encoding failed with {e} (both vocabularies hold every byte)"),
        }
        let mut out = vec![0u8; text.len()];
        let len = tok.decode(&ids, &mut out).expect("encoded ids decode into the text's length");
        assert_eq!(&out[..len], text.as_bytes(), "encode then decode gives the text back");
        n += ids.len();
    }
    // The same bytes as little-endian u16 ids (GPT-2 has 50257 tokens), decoded whole and streamed.
    let ids: Vec<u32> =
        data.chunks_exact(2).map(|c| u32::from(u16::from_le_bytes([c[0], c[1]]))).collect();
    let mut whole = Vec::new();
    let mut streamed = String::new();
    let mut stream = StreamDecoder::new();
    let mut ok = true;
    for &id in &ids {
        let in_vocab = (id as usize) < tok.n_vocab();
        let r = tok.token_bytes(id, |b| whole.extend_from_slice(b));
        assert_eq!(r.is_ok(), in_vocab, "token_bytes answers by whether {id} is in the vocabulary");
        let r = tok.decode_stream(id, &mut stream, &mut |s| streamed.push_str(s));
        assert_eq!(r.is_ok(), in_vocab);
        ok &= in_vocab;
    }
    stream.finish(&mut |s| streamed.push_str(s));
    assert_eq!(
        streamed,
        String::from_utf8_lossy(&whole),
        "streamed decode is lossy UTF-8 of the bytes"
    );
    let mut out = vec![0u8; whole.len()];
    match tok.decode(&ids, &mut out) {
        Ok(len) => assert!(ok && out[..len] == whole[..]),
        Err(_) => assert!(!ok),
    }
    n + whole.len()
}

/// The vocabularies the `tokenizer` fuzz target runs on, loaded once: the default model's
/// (`models/tinystories-base`, 2048 tokens) and GPT-2's (50257 tokens, with the converter's index).
pub fn fuzz_tokenizers() -> &'static [Tokenizer<'static>] {
    use std::sync::OnceLock;
    static BLOBS: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    static GGUFS: OnceLock<Vec<Gguf<'static>>> = OnceLock::new();
    static TOKS: OnceLock<Vec<Tokenizer<'static>>> = OnceLock::new();
    TOKS.get_or_init(|| {
        let blobs = BLOBS.get_or_init(|| {
            let default = repo_root().join("models/tinystories-base/tinystories-base-q8_0.gguf");
            let default =
                std::fs::read(&default).unwrap_or_else(|e| panic!("{}: {e}", default.display()));
            [default, gpt2_gguf(true, &[])]
        });
        let ggufs = GGUFS.get_or_init(|| {
            blobs.iter().map(|b| Gguf::parse(b).expect("the fuzz vocabularies parse")).collect()
        });
        ggufs.iter().map(|g| Tokenizer::from_gguf(g).expect("the fuzz vocabularies load")).collect()
    })
}

/// What the `convert_inputs` fuzz target does with each input: the bytes up to the first NUL are
/// `config.json`, the rest the safetensors file; the converter's reading path checks them against
/// each other and converts every tensor (to Q8_0, then F16) into a sink. Returns the tensors
/// converted; every error is an answer, only a panic is a fault.
pub fn exercise_convert(data: &[u8]) -> usize {
    use mote::convert::{convert_in_memory, OutType};
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (config, rest) = data.split_at(split);
    let safetensors = rest.get(1..).unwrap_or(&[]);
    [OutType::Q8_0, OutType::F16]
        .into_iter()
        .filter_map(|ty| convert_in_memory(config, safetensors, ty, std::io::sink()).ok())
        .sum()
}

/// The chat's console in the `chat` fuzz target: bytes to read, everything written.
struct FuzzConsole<'a> {
    input: &'a [u8],
    output: Vec<u8>,
}

impl embedded_io::ErrorType for FuzzConsole<'_> {
    type Error = std::convert::Infallible;
}

impl embedded_io::Read for FuzzConsole<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.input.read(buf)
    }
}

impl embedded_io::Write for FuzzConsole<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Bytes of the `chat` fuzz target's line buffer: small, so that over-long lines are common.
pub const FUZZ_CHAT_LINE_BYTES: usize = 48;

/// What the `chat` fuzz target does with each input: the bytes, typed on the console of a chat
/// over the default model (replies limited to 4 tokens unless the input says otherwise), with a
/// [`FUZZ_CHAT_LINE_BYTES`]-byte line buffer. The chat must answer every line (one prompt marker
/// each, after the boot's) with UTF-8 only. Returns the bytes written.
pub fn exercise_chat(data: &[u8]) -> usize {
    use mote_chat::{Chat, Input, LineReader, PROMPT_MARKER};
    use std::sync::OnceLock;
    static BLOB: OnceLock<Vec<u8>> = OnceLock::new();
    let blob = BLOB.get_or_init(|| {
        let path = repo_root().join("models/tinystories-base/tinystories-base-q8_0.gguf");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    });
    let gguf = Gguf::parse(blob).expect("the default model parses");
    let mut layers = [Layer::EMPTY; MAX_LAYERS];
    let model = Model::load(&gguf, &mut layers).expect("the default model loads");
    let tokenizer = Tokenizer::from_gguf(&gguf).expect("the default model has a tokenizer");
    // Room for 3 beams, so that `/beams` is exercised too.
    let bytes = mote_core::beam::BeamSearch::bytes_needed(&model.hparams, KvType::Q8_0, 3);
    let mut storage = vec![0u8; bytes];
    let mut scratch = Box::new(BpeScratch::new());
    let mut ids = vec![0u32; model.hparams.n_ctx + 1];
    let mut chat =
        Chat::new(&model, &tokenizer, KvType::Q8_0, &mut storage, &mut scratch, &mut ids)
            .expect("buffers fit");

    let input = [b"/max-tokens 4\n".as_slice(), data].concat();
    let mut line = [0u8; FUZZ_CHAT_LINE_BYTES];
    let mut console = FuzzConsole { input: &input, output: Vec::new() };
    let Ok(()) = chat.run(&mut LineReader::new(&mut line), &mut console, &mut ());

    // The same bytes through a line reader alone: how many lines the chat had to answer.
    let mut count_buf = [0u8; FUZZ_CHAT_LINE_BYTES];
    let mut reader = LineReader::new(&mut count_buf);
    let mut rest = input.as_slice();
    let mut lines = 0usize;
    while reader.read_line(&mut rest).is_ok_and(|i| i != Input::End) {
        lines += 1;
    }
    let text = std::str::from_utf8(&console.output).expect("the chat writes UTF-8 only");
    let markers = usize::from(text.starts_with(PROMPT_MARKER))
        + text.matches(&format!("\n{PROMPT_MARKER}")).count();
    // Generated text could itself hold a marker at a line start, never fewer than one per line.
    assert!(markers > lines, "{lines} lines but {markers} markers:\n{text}");
    assert!(text.ends_with(PROMPT_MARKER), "the chat ends waiting for a line");
    console.output.len()
}
