//! GPT-2's byte-level BPE tokenizer, read in place from a GGUF's metadata, with no heap.
//!
//! Encoding is GPT-2's, step by step, one module each:
//! 1. [`pretokenize`]: cut the text into words with GPT-2's pattern (contractions, letter runs,
//!    number runs, punctuation runs, each with an optional leading space; whitespace runs);
//! 2. [`bytes`]: map each word's bytes to GPT-2's printable characters;
//! 3. [`bpe`]: merge adjacent parts by merge rank; each final part is a token of the vocabulary
//!    ([`vocab`] finds strings, ids and ranks, by binary search over the [`index`] when the GGUF
//!    has one).
//!
//! Decoding ([`decode`]) undoes the map; [`StreamDecoder`] prints token by token without ever
//! emitting a broken UTF-8 sequence.
//!
//! Memory: the vocabulary and merges are never copied; encoding uses a caller-provided
//! [`BpeScratch`] (about 6 KB) and writes ids into a caller-provided slice or callback. A word longer
//! than [`MAX_PRETOKEN_BYTES`] or more ids than the output holds is a typed error, never a
//! truncation.
//!
//! Input: text is `&str`, so it is valid UTF-8 by construction; text that is not UTF-8 must be
//! rejected or converted (for example with `String::from_utf8_lossy`, which gives U+FFFD, a
//! character like any other here) by the caller; `mote tokenize` rejects it with a clear error.
//! Special tokens (control and user-defined types, such as `<|endoftext|>`) are matched in the text
//! only with [`Special::Recognize`]; otherwise they are ordinary text, as in Hugging Face's
//! `tokenizers` with no added tokens.

// Reads bytes from outside: no unchecked indexing, no arithmetic that can overflow.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::arithmetic_side_effects))]

pub mod bpe;
pub mod bytes;
pub mod decode;
pub mod index;
pub mod pretokenize;
pub mod vocab;

use core::fmt;

use crate::gguf::{name_of, Gguf, GgufError, ValueType};

/// A short copy of a string for an error message: the GGUF reader's.
pub use crate::gguf::Name;
pub use bpe::{BpeScratch, MAX_PRETOKEN_BYTES};
pub use decode::StreamDecoder;
pub use vocab::Vocab;

/// `b` (UTF-8, or shown lossily) cut to fit a [`Name`].
pub(crate) fn name_bytes(b: &[u8]) -> Name {
    match core::str::from_utf8(b) {
        Ok(s) => name_of(s),
        Err(e) => {
            name_of(core::str::from_utf8(b.get(..e.valid_up_to()).unwrap_or(&[])).unwrap_or(""))
        }
    }
}

/// Why a tokenizer could not be loaded, or text could not be encoded or ids decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TokenizerError {
    /// A required key is missing or has the wrong type.
    Gguf(GgufError),
    /// `tokenizer.ggml.model` names a tokenizer other than GPT-2's byte-level BPE.
    UnsupportedModel {
        /// The value in the file.
        found: Name,
    },
    /// An array whose elements have the wrong type.
    WrongArrayType {
        /// The key.
        key: &'static str,
        /// The element type mote reads.
        expected: ValueType,
        /// The element type in the file.
        found: ValueType,
    },
    /// An array with the wrong number of elements (token types or index arrays must have one per
    /// token or per merge).
    LengthMismatch {
        /// The key.
        key: &'static str,
        /// Elements expected.
        expected: usize,
        /// Elements in the file.
        found: usize,
    },
    /// More than `u32::MAX` tokens or merges.
    TooManyEntries {
        /// Tokens in the file.
        tokens: usize,
        /// Merges in the file.
        merges: usize,
    },
    /// A merge that is not two strings separated by a space.
    MalformedMerge {
        /// Its rank (index in `tokenizer.ggml.merges`).
        rank: u32,
    },
    /// Some but not all of the four `mote.tokenizer.*` index arrays.
    PartialIndex,
    /// An index array that does not describe the vocabulary or merges of this file.
    BadIndex {
        /// The array.
        key: &'static str,
        /// The first wrong element.
        at: usize,
    },
    /// A pre-token longer than the BPE scratch holds.
    PretokenTooLong {
        /// Its length in bytes.
        len: usize,
        /// [`MAX_PRETOKEN_BYTES`].
        max: usize,
    },
    /// A BPE part that is not in the vocabulary (a byte with no token, or a merge whose result is
    /// missing).
    NoToken {
        /// The part, in GPT-2's mapped form.
        token: Name,
    },
    /// The output holds fewer ids or bytes than the result.
    OutputFull {
        /// The output's capacity.
        capacity: usize,
    },
    /// A token id outside the vocabulary.
    IdOutOfRange {
        /// The id.
        id: u32,
        /// Tokens in the vocabulary.
        n_vocab: usize,
    },
}

impl fmt::Display for TokenizerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Gguf(e) => write!(f, "tokenizer metadata: {e}"),
            Self::UnsupportedModel { found } => {
                write!(f, "tokenizer.ggml.model is \"{found}\"; mote reads GPT-2 byte-level BPE (\"gpt2\") only")
            }
            Self::WrongArrayType { key, expected, found } => {
                write!(f, "{key} is an array of {found:?}, expected {expected:?}")
            }
            Self::LengthMismatch { key, expected, found } => {
                write!(f, "{key} has {found} elements, expected {expected}")
            }
            Self::TooManyEntries { tokens, merges } => {
                write!(f, "{tokens} tokens and {merges} merges: more than u32 ids can number")
            }
            Self::MalformedMerge { rank } => {
                write!(f, "merge {rank} in tokenizer.ggml.merges is not \"left right\"")
            }
            Self::PartialIndex => {
                write!(f, "only some of the mote.tokenizer.* index arrays are present")
            }
            Self::BadIndex { key, at } => write!(f, "{key} is wrong at element {at}"),
            Self::PretokenTooLong { len, max } => {
                write!(f, "a word of {len} bytes is longer than the tokenizer's limit of {max}")
            }
            Self::NoToken { token } => write!(f, "no token \"{token}\" in the vocabulary"),
            Self::OutputFull { capacity } => write!(f, "the output holds only {capacity} elements"),
            Self::IdOutOfRange { id, n_vocab } => {
                write!(f, "token id {id} is outside the vocabulary of {n_vocab} tokens")
            }
        }
    }
}

impl core::error::Error for TokenizerError {}

impl From<GgufError> for TokenizerError {
    fn from(e: GgufError) -> Self {
        TokenizerError::Gguf(e)
    }
}

/// Whether special tokens written in the text (such as `<|endoftext|>`) become their ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Special {
    /// Special tokens are plain text (safe for untrusted input).
    #[default]
    AsText,
    /// Control and user-defined tokens in the text become their ids (leftmost, then longest).
    Recognize,
}

/// GPT-2's tokenizer over a GGUF's vocabulary and merges.
#[derive(Clone, Debug)]
pub struct Tokenizer<'a> {
    vocab: Vocab<'a>,
    bos: Option<u32>,
    eos: Option<u32>,
}

impl<'a> Tokenizer<'a> {
    /// Reads the tokenizer of `gguf`: `tokenizer.ggml.tokens` and `.merges` (required),
    /// `.token_type`, `.bos_token_id`, `.eos_token_id` and the `mote.tokenizer.*` index (optional),
    /// checking them all.
    pub fn from_gguf(gguf: &Gguf<'a>) -> Result<Self, TokenizerError> {
        if gguf.get(vocab::keys::MODEL).is_some() {
            let model = gguf.get_str(vocab::keys::MODEL)?;
            if model != "gpt2" {
                return Err(TokenizerError::UnsupportedModel { found: name_of(model) });
            }
        }
        let vocab = Vocab::from_gguf(gguf)?;
        let id = |key: &str| -> Result<Option<u32>, TokenizerError> {
            if gguf.get(key).is_none() {
                return Ok(None);
            }
            let v = gguf.get_uint(key)?;
            match u32::try_from(v) {
                Ok(id) if (id as usize) < vocab.len() => Ok(Some(id)),
                _ => Err(TokenizerError::IdOutOfRange {
                    id: v.min(u32::MAX.into()) as u32,
                    n_vocab: vocab.len(),
                }),
            }
        };
        Ok(Tokenizer { bos: id(vocab::keys::BOS)?, eos: id(vocab::keys::EOS)?, vocab })
    }

    /// The vocabulary.
    pub fn vocab(&self) -> &Vocab<'a> {
        &self.vocab
    }

    /// Number of tokens.
    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    /// The beginning-of-sequence token, if the file names one.
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }

    /// The end-of-sequence token, if the file names one.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Encodes `text`, calling `emit` with each id in order.
    pub fn encode_each(
        &self,
        text: &str,
        special: Special,
        scratch: &mut BpeScratch,
        mut emit: impl FnMut(u32) -> Result<(), TokenizerError>,
    ) -> Result<(), TokenizerError> {
        let mut rest = text;
        if special == Special::Recognize {
            while let Some((at, len, id)) = self.find_special(rest) {
                let (before, after) = rest.split_at_checked(at).unwrap_or((rest, ""));
                self.encode_plain(before, scratch, &mut emit)?;
                emit(id)?;
                rest = after.get(len..).unwrap_or("");
            }
        }
        self.encode_plain(rest, scratch, &mut emit)
    }

    /// Encodes `text` into `out`; returns the number of ids written.
    pub fn encode(
        &self,
        text: &str,
        special: Special,
        scratch: &mut BpeScratch,
        out: &mut [u32],
    ) -> Result<usize, TokenizerError> {
        let mut n = 0;
        let capacity = out.len();
        self.encode_each(text, special, scratch, |id| {
            let slot = out.get_mut(n).ok_or_else(|| TokenizerError::OutputFull { capacity })?;
            *slot = id;
            n = n.saturating_add(1);
            Ok(())
        })?;
        Ok(n)
    }

    fn encode_plain<E>(
        &self,
        text: &str,
        scratch: &mut BpeScratch,
        emit: &mut E,
    ) -> Result<(), TokenizerError>
    where
        E: FnMut(u32) -> Result<(), TokenizerError>,
    {
        for word in pretokenize::pretokenize(text) {
            bpe::encode_word(&self.vocab, word, scratch, emit)?;
        }
        Ok(())
    }

    /// The leftmost (then longest) special token in `text`: `(byte offset, length, id)`.
    fn find_special(&self, text: &str) -> Option<(usize, usize, u32)> {
        let mut best: Option<(usize, usize, u32)> = None;
        self.vocab.for_each_special(|id, s| {
            let Ok(s) = core::str::from_utf8(s) else { return true };
            if s.is_empty() {
                return true;
            }
            if let Some(at) = text.find(s) {
                let better = match best {
                    None => true,
                    Some((b_at, b_len, _)) => at < b_at || (at == b_at && s.len() > b_len),
                };
                if better {
                    best = Some((at, s.len(), id));
                }
            }
            true
        });
        best
    }

    /// Calls `emit` with the bytes of token `id`, in chunks.
    pub fn token_bytes(&self, id: u32, mut emit: impl FnMut(&[u8])) -> Result<(), TokenizerError> {
        let token = self
            .vocab
            .token(id)
            .ok_or_else(|| TokenizerError::IdOutOfRange { id, n_vocab: self.n_vocab() })?;
        decode::unmap_token(token, &mut emit);
        Ok(())
    }

    /// Decodes `ids` into `out` (the raw bytes, which need not be UTF-8 if the ids split a
    /// character); returns the number of bytes written.
    pub fn decode(&self, ids: &[u32], out: &mut [u8]) -> Result<usize, TokenizerError> {
        let mut n = 0usize;
        let mut full = false;
        for &id in ids {
            self.token_bytes(id, |b| match out.get_mut(n..n.saturating_add(b.len())) {
                Some(dst) => {
                    dst.copy_from_slice(b);
                    n = n.saturating_add(b.len());
                }
                None => full = true,
            })?;
            if full {
                return Err(TokenizerError::OutputFull { capacity: out.len() });
            }
        }
        Ok(n)
    }

    /// Decodes one token into `stream`, calling `emit` with the valid text that is ready.
    pub fn decode_stream(
        &self,
        id: u32,
        stream: &mut StreamDecoder,
        emit: &mut impl FnMut(&str),
    ) -> Result<(), TokenizerError> {
        self.token_bytes(id, |b| stream.push(b, emit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF with only tokenizer metadata: tokens, merges, optional types and index.
    fn toy_gguf(
        model: &str,
        tokens: &[&str],
        merges: &[&str],
        types: &[i32],
        with_index: bool,
    ) -> Vec<u8> {
        let mut kv = Vec::new();
        let mut n_kv = 0u64;
        let mut key = |kv: &mut Vec<u8>, k: &str, ty: u32| {
            n_kv += 1;
            kv.extend((k.len() as u64).to_le_bytes());
            kv.extend(k.as_bytes());
            kv.extend(ty.to_le_bytes());
        };
        let strings = |kv: &mut Vec<u8>, v: &[&str]| {
            kv.extend(8u32.to_le_bytes());
            kv.extend((v.len() as u64).to_le_bytes());
            for s in v {
                kv.extend((s.len() as u64).to_le_bytes());
                kv.extend(s.as_bytes());
            }
        };
        let words = |kv: &mut Vec<u8>, elem: u32, v: &[u32]| {
            kv.extend(elem.to_le_bytes());
            kv.extend((v.len() as u64).to_le_bytes());
            for x in v {
                kv.extend(x.to_le_bytes());
            }
        };
        key(&mut kv, "tokenizer.ggml.model", 8);
        kv.extend((model.len() as u64).to_le_bytes());
        kv.extend(model.as_bytes());
        key(&mut kv, "tokenizer.ggml.tokens", 9);
        strings(&mut kv, tokens);
        key(&mut kv, "tokenizer.ggml.merges", 9);
        strings(&mut kv, merges);
        if !types.is_empty() {
            key(&mut kv, "tokenizer.ggml.token_type", 9);
            words(&mut kv, 5, &types.iter().map(|&t| t as u32).collect::<Vec<_>>());
        }
        if with_index {
            let mut a = vec![0; tokens.len()];
            let mut b = vec![0; tokens.len()];
            let mut rows = vec![[0u32; 4]; merges.len()];
            index::string_offsets(tokens, &mut a).unwrap();
            index::token_order(tokens, &mut b).unwrap();
            index::merge_pairs(tokens, merges, &b, &mut rows).unwrap();
            let c: Vec<u32> = rows.concat();
            for (k, v) in
                [(index::TOKEN_OFFSETS, a), (index::TOKEN_ORDER, b), (index::MERGE_PAIRS, c)]
            {
                key(&mut kv, k, 9);
                words(&mut kv, 4, &v);
            }
        }
        let mut out = b"GGUF".to_vec();
        out.extend(3u32.to_le_bytes());
        out.extend(0u64.to_le_bytes());
        out.extend(n_kv.to_le_bytes());
        out.extend(kv);
        out
    }

    const TOKENS: [&str; 10] = ["a", "b", "c", "Ġ", "ab", "bc", "abc", "Ġa", "<|end|>", "Ġabc"];
    const MERGES: [&str; 5] = ["b c", "a b", "a bc", "Ġ a", "Ġa bc"];
    const TYPES: [i32; 10] = [1, 1, 1, 1, 1, 1, 1, 1, 3, 1];

    fn ids(blob: &[u8], text: &str, special: Special) -> Result<Vec<u32>, TokenizerError> {
        let gguf = Gguf::parse(blob).unwrap();
        let tok = Tokenizer::from_gguf(&gguf)?;
        let mut out = [0u32; 64];
        let n = tok.encode(text, special, &mut BpeScratch::new(), &mut out)?;
        Ok(out[..n].to_vec())
    }

    #[test]
    fn merges_the_lowest_ranked_pair_first() {
        for with_index in [false, true] {
            let blob = toy_gguf("gpt2", &TOKENS, &MERGES, &TYPES, with_index);
            // "abc": (b, c) rank 0 before (a, b) rank 1, then (a, bc) rank 2.
            assert_eq!(ids(&blob, "abc", Special::AsText), Ok(vec![6]));
            // " abc": (b, c) rank 0, then (a, bc) rank 2 beats (Ġ, a) rank 3, so never "Ġabc".
            assert_eq!(ids(&blob, " abc", Special::AsText), Ok(vec![3, 6]));
            assert_eq!(ids(&blob, "cab", Special::AsText), Ok(vec![2, 4]));
        }
    }

    #[test]
    fn recognizes_special_tokens_only_on_request() {
        let blob = toy_gguf("gpt2", &TOKENS, &MERGES, &TYPES, true);
        assert_eq!(ids(&blob, "a<|end|>b", Special::Recognize), Ok(vec![0, 8, 1]));
        assert!(matches!(
            ids(&blob, "a<|end|>b", Special::AsText),
            Err(TokenizerError::NoToken { .. })
        ));
    }

    #[test]
    fn finds_the_leftmost_special_token_among_multibyte_text() {
        let tokens = ["a", "b", "<|end|>", "<|e", "Ã", "©"];
        let blob = toy_gguf("gpt2", &tokens, &[], &[1, 1, 3, 3, 1, 1], true);
        // "é" is two bytes, mapped to "Ã©"; the longer special wins at the same position.
        assert_eq!(ids(&blob, "é<|end|>é<|e", Special::Recognize), Ok(vec![4, 5, 2, 4, 5, 3]));
    }

    #[test]
    fn reports_each_bad_vocabulary_or_text_by_what_is_wrong() {
        let cases: [(Vec<u8>, &str, TokenizerError); 4] = [
            // "d" has no byte token.
            (
                toy_gguf("gpt2", &TOKENS, &MERGES, &TYPES, true),
                "abd",
                TokenizerError::NoToken { token: name_of("d") },
            ),
            (
                toy_gguf("llama", &TOKENS, &MERGES, &TYPES, false),
                "a",
                TokenizerError::UnsupportedModel { found: name_of("llama") },
            ),
            // The second merge has no space between its two parts.
            (
                toy_gguf("gpt2", &TOKENS, &["b c", "ab"], &TYPES, false),
                "a",
                TokenizerError::MalformedMerge { rank: 1 },
            ),
            (
                toy_gguf("gpt2", &TOKENS, &MERGES, &[1, 1], false),
                "a",
                TokenizerError::LengthMismatch {
                    key: "tokenizer.ggml.token_type",
                    expected: 10,
                    found: 2,
                },
            ),
        ];
        for (blob, text, want) in cases {
            assert_eq!(ids(&blob, text, Special::AsText), Err(want));
        }
    }

    #[test]
    fn decodes_ids_to_bytes_and_reports_a_small_output() {
        let blob = toy_gguf("gpt2", &TOKENS, &MERGES, &TYPES, true);
        let gguf = Gguf::parse(&blob).unwrap();
        let tok = Tokenizer::from_gguf(&gguf).unwrap();
        let mut out = [0u8; 8];
        assert_eq!(tok.decode(&[9, 2], &mut out), Ok(5));
        assert_eq!(&out[..5], b" abcc");
        assert_eq!(
            tok.decode(&[9, 9, 9], &mut out),
            Err(TokenizerError::OutputFull { capacity: 8 })
        );
        assert_eq!(
            tok.decode(&[10], &mut out),
            Err(TokenizerError::IdOutOfRange { id: 10, n_vocab: 10 })
        );
    }
}
