//! `mote tokenize` and `mote detokenize`: text to GPT-2 token ids and back, with the tokenizer of a
//! GGUF model (the same `mote_core` code the firmware runs).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use crate::model_file::ModelFile;
use anyhow::{bail, Context};
use mote_core::tokenizer::{BpeScratch, Special, StreamDecoder, Tokenizer};

/// Arguments of `mote tokenize`.
#[derive(clap::Args)]
pub struct TokenizeArgs {
    /// The GGUF model whose tokenizer to use, or a bundled model by name; without it, the
    /// bundled tinystories-base.
    #[arg(long, value_name = "M.gguf|NAME")]
    pub model: Option<PathBuf>,
    /// The text to tokenize (UTF-8).
    #[arg(value_name = "TEXT", required_unless_present = "file", conflicts_with = "file")]
    pub text: Option<OsString>,
    /// Tokenize the contents of FILE instead of TEXT (`-`: standard input).
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Print JSON: {"ids": [...], "tokens": [...]} (tokens in the vocabulary's GPT-2 form).
    #[arg(long)]
    pub json: bool,
    /// Recognise special tokens such as <|endoftext|> written in the text.
    #[arg(long)]
    pub special: bool,
    /// Print only the number of ids and the encoding speed.
    #[arg(long, conflicts_with = "json")]
    pub stats: bool,
}

/// Arguments of `mote detokenize`.
#[derive(clap::Args)]
pub struct DetokenizeArgs {
    /// The GGUF model whose tokenizer to use, or a bundled model by name; without it, the
    /// bundled tinystories-base.
    #[arg(long, value_name = "M.gguf|NAME")]
    pub model: Option<PathBuf>,
    /// Token ids, as separate arguments or separated by commas or spaces ("[1, 2]" works too).
    #[arg(value_name = "IDS", required = true, num_args = 1..)]
    pub ids: Vec<String>,
    /// Write the exact bytes (which may be invalid UTF-8 if the ids split a character), with no
    /// newline; by default invalid sequences print as U+FFFD and a newline follows.
    #[arg(long, conflicts_with = "json")]
    pub raw: bool,
    /// Print JSON: {"text": "..."}.
    #[arg(long)]
    pub json: bool,
}

/// The tokenizer of `file`, with a message that says what to do when it has none.
fn tokenizer(file: &ModelFile) -> anyhow::Result<Tokenizer<'_>> {
    let gguf = file.gguf()?;
    Tokenizer::from_gguf(&gguf).with_context(|| {
        format!(
            "{} has no usable GPT-2 tokenizer; convert the model with `mote convert` \
             (it needs the tokenizer files beside the checkpoint)",
            file.name()
        )
    })
}

/// `bytes` as UTF-8, or an error naming the first bad byte and what to do.
pub fn utf8_text<'b>(bytes: &'b [u8], what: &str) -> anyhow::Result<&'b str> {
    std::str::from_utf8(bytes).map_err(|e| {
        let at = e.valid_up_to();
        anyhow::anyhow!(
            "{what} is not valid UTF-8 (byte 0x{:02x} at offset {at}); mote tokenizes UTF-8 text \
             only: convert it first, e.g. `iconv -f latin1 -t utf-8`",
            bytes.get(at).copied().unwrap_or(0)
        )
    })
}

/// Encodes `text` into a vector of ids.
pub fn encode(tok: &Tokenizer<'_>, text: &str, special: Special) -> anyhow::Result<Vec<u32>> {
    let mut scratch = Box::new(BpeScratch::new());
    let mut ids = Vec::with_capacity(text.len() / 3 + 1);
    tok.encode_each(text, special, &mut scratch, |id| {
        ids.push(id);
        Ok(())
    })
    .context("cannot tokenize the text")?;
    Ok(ids)
}

/// Decodes `ids` into their exact bytes.
pub fn decode(tok: &Tokenizer<'_>, ids: &[u32]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for &id in ids {
        tok.token_bytes(id, |b| out.extend_from_slice(b))
            .with_context(|| format!("cannot decode id {id}"))?;
    }
    Ok(out)
}

/// Runs `mote tokenize`.
pub fn run_tokenize(args: TokenizeArgs) -> anyhow::Result<()> {
    let model = ModelFile::open_arg(args.model.as_deref())?;
    let tok = tokenizer(&model)?;
    let bytes = match (&args.file, &args.text) {
        (Some(f), _) => crate::input::read(f, "the file")?,
        (None, Some(t)) => t.as_encoded_bytes().to_vec(),
        (None, None) => bail!("give TEXT or --file FILE"),
    };
    let text = utf8_text(&bytes, if args.file.is_some() { "the file" } else { "TEXT" })?;
    let special = if args.special { Special::Recognize } else { Special::AsText };
    let start = Instant::now();
    let ids = encode(&tok, text, special)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    if args.stats {
        writeln!(
            out,
            "{} bytes, {} ids, {:.3} s, {:.2} MB/s (index: {})",
            text.len(),
            ids.len(),
            seconds,
            text.len() as f64 / 1e6 / seconds.max(1e-9),
            if tok.vocab().has_index() { "yes" } else { "no, linear scans" }
        )?;
        return Ok(());
    }
    let tokens: Vec<String> = ids
        .iter()
        .map(|&id| {
            let t = tok.vocab().token(id).unwrap_or_default();
            String::from_utf8_lossy(t).into_owned()
        })
        .collect();
    if args.json {
        let v = serde_json::json!({ "ids": ids, "tokens": tokens });
        writeln!(out, "{v}")?;
    } else {
        for (id, token) in ids.iter().zip(&tokens) {
            let text = String::from_utf8_lossy(&decode(&tok, &[*id])?).into_owned();
            writeln!(out, "{id}\t{token}\t{text:?}")?;
        }
    }
    Ok(())
}

/// Parses ids given as arguments, each possibly a list separated by commas or spaces.
pub fn parse_ids(args: &[String]) -> anyhow::Result<Vec<u32>> {
    let mut ids = Vec::new();
    for arg in args {
        for part in arg.split(|c: char| c == ',' || c.is_whitespace() || c == '[' || c == ']') {
            if part.is_empty() {
                continue;
            }
            let id = part.parse::<u32>().with_context(|| {
                format!(
                    "\"{part}\" is not a token id: give non-negative integers, e.g. `15496 995`"
                )
            })?;
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Runs `mote detokenize`.
pub fn run_detokenize(args: DetokenizeArgs) -> anyhow::Result<()> {
    let model = ModelFile::open_arg(args.model.as_deref())?;
    let tok = tokenizer(&model)?;
    let ids = parse_ids(&args.ids)?;
    if let Some(&bad) = ids.iter().find(|&&id| id as usize >= tok.n_vocab()) {
        bail!("token id {bad} is outside the vocabulary of {} tokens", tok.n_vocab());
    }
    let bytes = decode(&tok, &ids)?;
    let mut out = std::io::stdout().lock();
    if args.raw {
        out.write_all(&bytes)?;
        return Ok(());
    }
    let mut text = String::new();
    let mut stream = StreamDecoder::new();
    stream.push(&bytes, &mut |s: &str| text.push_str(s));
    stream.finish(&mut |s: &str| text.push_str(s));
    if args.json {
        writeln!(out, "{}", serde_json::json!({ "text": text }))?;
    } else {
        writeln!(out, "{text}")?;
    }
    Ok(())
}
