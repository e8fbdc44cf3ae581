//! The checkpoint's byte-level BPE tokenizer, read from `tokenizer.json` (Hugging Face tokenizers),
//! `vocab.json` + `merges.txt` (Hugging Face slow tokenizer), or `encoder.json` + `vocab.bpe`
//! (OpenAI's names for the same two files).
//!
//! Any GPT-2-style byte-level BPE is accepted: unlike llama.cpp's converter, no table of known
//! tokenizer hashes is consulted, so custom vocabularies (like mote's default model's) convert.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value;

/// llama.cpp's `token_type` for an ordinary token.
pub const TOKEN_TYPE_NORMAL: i32 = 1;
/// llama.cpp's `token_type` for a control token (`<|endoftext|>`): never produced by encoding text.
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// llama.cpp's `token_type` for a non-special added token.
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// A vocabulary ready for the GGUF `tokenizer.ggml.*` keys.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    /// Token strings by id (byte-level: `Ġ` for a space).
    pub tokens: Vec<String>,
    /// llama.cpp token types by id.
    pub token_types: Vec<i32>,
    /// Merges in rank order, each `"left right"`.
    pub merges: Vec<String>,
    /// Which files it was read from (for messages).
    pub source: String,
}

impl Vocab {
    /// Id of a token, if present.
    pub fn id_of(&self, token: &str) -> Option<u64> {
        self.tokens.iter().position(|t| t == token).map(|i| i as u64)
    }
}

/// Reads the tokenizer in `dir`, trying `tokenizer.json`, then `vocab.json` + `merges.txt`, then
/// `encoder.json` + `vocab.bpe`.
pub fn load(dir: &Path) -> Result<Vocab> {
    let tj = dir.join("tokenizer.json");
    if tj.is_file() {
        let v = read_json(&tj)?;
        return from_tokenizer_json(&v, &special_names(dir)?)
            .with_context(|| format!("in {}", tj.display()));
    }
    for (vocab, merges) in [("vocab.json", "merges.txt"), ("encoder.json", "vocab.bpe")] {
        let (vp, mp) = (dir.join(vocab), dir.join(merges));
        if vp.is_file() && mp.is_file() {
            let v = read_json(&vp)?;
            let m = std::fs::read_to_string(&mp)
                .with_context(|| format!("cannot read {}", mp.display()))?;
            let source = format!("{} + {}", vp.display(), mp.display());
            return from_vocab_and_merges(&v, &m, &special_names(dir)?, source)
                .with_context(|| format!("in {}", vp.display()));
        }
    }
    bail!(
        "no tokenizer in {}: expected tokenizer.json, or vocab.json + merges.txt, or encoder.json + \
         vocab.bpe; pass --tokenizer DIR to read it from another directory",
        dir.display()
    )
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

/// Special-token strings named by `special_tokens_map.json` and `tokenizer_config.json`, if present.
fn special_names(dir: &Path) -> Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let content = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        }
    };
    for file in ["special_tokens_map.json", "tokenizer_config.json"] {
        let p = dir.join(file);
        if !p.is_file() {
            continue;
        }
        let v = read_json(&p)?;
        for key in ["bos_token", "eos_token", "unk_token", "pad_token", "sep_token", "cls_token"] {
            if let Some(s) = v.get(key).and_then(content) {
                names.insert(s);
            }
        }
        if let Some(Value::Object(decoder)) = v.get("added_tokens_decoder") {
            for t in decoder.values() {
                if t.get("special").and_then(Value::as_bool) == Some(true) {
                    names.extend(content(t));
                }
            }
        }
    }
    Ok(names)
}

/// llama.cpp's `does_token_look_special` for GPT-2-style names.
fn looks_special(token: &str) -> bool {
    token.starts_with("<|") && token.ends_with("|>") && token.len() > 4
}

/// Orders a `token -> id` map by id, requiring ids `0..n` with no gap or duplicate.
fn tokens_by_id(map: &BTreeMap<String, u64>) -> Result<Vec<String>> {
    let n = map.len();
    let mut tokens: Vec<Option<String>> = vec![None; n];
    for (tok, &id) in map {
        let slot = usize::try_from(id).ok().and_then(|i| tokens.get_mut(i));
        match slot {
            Some(s @ None) => *s = Some(tok.clone()),
            Some(Some(other)) => bail!("tokens {other:?} and {tok:?} both have id {id}"),
            None => bail!(
                "token {tok:?} has id {id}, but there are only {n} tokens (ids must be 0..{n})"
            ),
        }
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(i, t)| t.with_context(|| format!("no token has id {i}")))
        .collect()
}

fn vocab_map(v: &Value, what: &str) -> Result<BTreeMap<String, u64>> {
    let Some(obj) = v.as_object() else { bail!("{what} is not a JSON object of token -> id") };
    obj.iter()
        .map(|(k, id)| match id.as_u64() {
            Some(id) => Ok((k.clone(), id)),
            None => bail!("{what}: token {k:?} has id {id}, expected a non-negative integer"),
        })
        .collect()
}

fn types_for(
    tokens: &[String],
    added: &BTreeMap<String, bool>,
    special: &BTreeSet<String>,
) -> Vec<i32> {
    tokens
        .iter()
        .map(|t| match added.get(t) {
            Some(true) => TOKEN_TYPE_CONTROL,
            _ if special.contains(t) || looks_special(t) => TOKEN_TYPE_CONTROL,
            Some(false) => TOKEN_TYPE_USER_DEFINED,
            None => TOKEN_TYPE_NORMAL,
        })
        .collect()
}

/// From a parsed `tokenizer.json`. Merges may be `"a b"` strings (older tokenizers) or `["a", "b"]`
/// pairs (tokenizers >= 0.20).
pub fn from_tokenizer_json(v: &Value, special: &BTreeSet<String>) -> Result<Vocab> {
    let model = v.get("model").context("no \"model\" object")?;
    if let Some(ty) = model.get("type").and_then(Value::as_str) {
        if ty != "BPE" {
            bail!(
                "the tokenizer model is {ty:?}; mote reads byte-level BPE (GPT-2) tokenizers only"
            );
        }
    }
    let mut map = vocab_map(model.get("vocab").context("no model.vocab")?, "model.vocab")?;
    let mut added = BTreeMap::new();
    if let Some(list) = v.get("added_tokens").and_then(Value::as_array) {
        for t in list {
            let content =
                t.get("content").and_then(Value::as_str).context("added token without content")?;
            let id = t.get("id").and_then(Value::as_u64).context("added token without id")?;
            let is_special = t.get("special").and_then(Value::as_bool).unwrap_or(false);
            match map.get(content) {
                Some(&old) if old != id => {
                    bail!("added token {content:?} has id {id} but the vocab says {old}")
                }
                _ => {}
            }
            map.insert(content.to_owned(), id);
            added.insert(content.to_owned(), is_special);
        }
    }
    let tokens = tokens_by_id(&map)?;
    let merges = match model.get("merges") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, m)| match m {
                Value::String(s) if s.split(' ').count() == 2 => Ok(s.clone()),
                Value::Array(p) => {
                    match (p.first().and_then(Value::as_str), p.get(1).and_then(Value::as_str)) {
                        (Some(a), Some(b)) if p.len() == 2 => Ok(format!("{a} {b}")),
                        _ => bail!("merge {i} is {m}, expected two strings"),
                    }
                }
                _ => bail!("merge {i} is {m}, expected \"a b\" or [\"a\", \"b\"]"),
            })
            .collect::<Result<_>>()?,
        Some(m) => bail!("model.merges is {m}, expected a list"),
    };
    let token_types = types_for(&tokens, &added, special);
    Ok(Vocab { tokens, token_types, merges, source: "tokenizer.json".into() })
}

/// From a parsed `vocab.json` (or `encoder.json`) and the text of `merges.txt` (or `vocab.bpe`).
pub fn from_vocab_and_merges(
    vocab: &Value,
    merges_txt: &str,
    special: &BTreeSet<String>,
    source: String,
) -> Result<Vocab> {
    let map = vocab_map(vocab, "the vocabulary")?;
    let tokens = tokens_by_id(&map)?;
    let mut merges = Vec::new();
    for (i, line) in merges_txt.lines().enumerate() {
        if line.is_empty() || (i == 0 && line.starts_with("#version")) {
            continue;
        }
        if line.split(' ').count() != 2 {
            bail!("merges line {} is {line:?}, expected two tokens separated by one space", i + 1);
        }
        merges.push(line.to_owned());
    }
    let token_types = types_for(&tokens, &BTreeMap::new(), special);
    Ok(Vocab { tokens, token_types, merges, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_merges_as_strings_or_pairs_and_marks_added_special_tokens_control() {
        let none = BTreeSet::new();
        for merges in [json!(["a b", "ab c"]), json!([["a", "b"], ["ab", "c"]])] {
            let v = json!({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3},
                                     "merges": merges},
                           "added_tokens": [{"id": 4, "content": "<|endoftext|>", "special": true}]});
            let voc = from_tokenizer_json(&v, &none).unwrap();
            assert_eq!(voc.tokens, ["a", "b", "c", "ab", "<|endoftext|>"]);
            assert_eq!(voc.merges, ["a b", "ab c"]);
            assert_eq!(voc.token_types, [1, 1, 1, 1, 3]);
        }
    }

    #[test]
    fn reads_openai_files_and_skips_the_version_line() {
        let v = json!({"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3});
        let voc = from_vocab_and_merges(&v, "#version: 0.2\na b\n", &BTreeSet::new(), "t".into())
            .unwrap();
        assert_eq!(voc.merges, ["a b"]);
        assert_eq!(voc.token_types, [1, 1, 1, 3]);
        assert_eq!(voc.id_of("<|endoftext|>"), Some(3));
    }

    #[test]
    fn rejects_gaps_and_duplicate_ids() {
        let none = BTreeSet::new();
        let gap = json!({"a": 0, "b": 2});
        assert!(from_vocab_and_merges(&gap, "", &none, "t".into())
            .unwrap_err()
            .to_string()
            .contains("id 2"));
        let dup = json!({"a": 0, "b": 0});
        assert!(from_vocab_and_merges(&dup, "", &none, "t".into()).is_err());
        let bad_merge = json!({"a": 0});
        assert!(from_vocab_and_merges(&bad_merge, "a b c\n", &none, "t".into()).is_err());
    }
}
