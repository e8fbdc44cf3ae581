//! The vocabulary and merges as they sit in the GGUF: look-ups by id, by string and by pair, with
//! binary searches over the `mote.tokenizer.*` index when the file has it and linear scans when not.

use core::cmp::Ordering;

use crate::gguf::{Array, Gguf, ValueType};

use super::index::{self, split_merge};
use super::TokenizerError;

/// GGUF keys of the standard tokenizer metadata.
pub mod keys {
    /// The tokenizer family; mote reads "gpt2" (byte-level BPE).
    pub const MODEL: &str = "tokenizer.ggml.model";
    /// Token strings, in id order (GPT-2's byte-to-unicode mapped form).
    pub const TOKENS: &str = "tokenizer.ggml.tokens";
    /// Merges `"left right"`, by rank.
    pub const MERGES: &str = "tokenizer.ggml.merges";
    /// Token types (i32, one per token): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused,
    /// 6 byte.
    pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
    /// Beginning-of-sequence token id.
    pub const BOS: &str = "tokenizer.ggml.bos_token_id";
    /// End-of-sequence token id.
    pub const EOS: &str = "tokenizer.ggml.eos_token_id";
}

/// Token type of a control token such as `<|endoftext|>` (llama.cpp's numbering).
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// Token type of a user-defined added token.
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// The index arrays' raw little-endian u32 data, checked at load.
#[derive(Clone, Copy, Debug)]
struct Index<'a> {
    token_offsets: &'a [u8],
    token_order: &'a [u8],
    merge_offsets: &'a [u8],
    merge_order: &'a [u8],
}

/// Tokens, merges and token types borrowed from a GGUF.
#[derive(Clone, Copy, Debug)]
pub struct Vocab<'a> {
    tokens: Array<'a>,
    merges: Array<'a>,
    /// `tokenizer.ggml.token_type`'s i32 data, if present.
    types: Option<&'a [u8]>,
    index: Option<Index<'a>>,
}

/// Element `i` of raw little-endian u32 data.
fn u32_at(raw: &[u8], i: usize) -> Option<u32> {
    let at = i.checked_mul(4)?;
    let b = raw.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The string whose GGUF record (u64 length, bytes) starts at `offset` of `data`.
fn record_at(data: &[u8], offset: usize) -> Option<&[u8]> {
    let len = data.get(offset..offset.checked_add(8)?)?;
    let len = u64::from_le_bytes([len[0], len[1], len[2], len[3], len[4], len[5], len[6], len[7]]);
    let start = offset + 8;
    data.get(start..start.checked_add(usize::try_from(len).ok()?)?)
}

fn string_array<'a>(gguf: &Gguf<'a>, key: &'static str) -> Result<Array<'a>, TokenizerError> {
    let a = gguf.get_array(key)?;
    if a.elem_type() != ValueType::String {
        return Err(TokenizerError::WrongArrayType {
            key,
            expected: ValueType::String,
            found: a.elem_type(),
        });
    }
    Ok(a)
}

fn fixed_array<'a>(
    gguf: &Gguf<'a>,
    key: &'static str,
    elem: ValueType,
    len: usize,
) -> Result<Option<&'a [u8]>, TokenizerError> {
    if gguf.get(key).is_none() {
        return Ok(None);
    }
    let a = gguf.get_array(key)?;
    if a.elem_type() != elem {
        return Err(TokenizerError::WrongArrayType { key, expected: elem, found: a.elem_type() });
    }
    if a.len() != len {
        return Err(TokenizerError::LengthMismatch { key, expected: len, found: a.len() });
    }
    Ok(Some(a.raw()))
}

impl<'a> Vocab<'a> {
    /// Reads and checks the vocabulary, the merges, the token types and, if present, the index.
    pub fn from_gguf(gguf: &Gguf<'a>) -> Result<Self, TokenizerError> {
        let tokens = string_array(gguf, keys::TOKENS)?;
        let merges = string_array(gguf, keys::MERGES)?;
        if u32::try_from(tokens.len()).is_err() || u32::try_from(merges.len()).is_err() {
            return Err(TokenizerError::TooManyEntries {
                tokens: tokens.len(),
                merges: merges.len(),
            });
        }
        if let Some((rank, _)) = merges
            .strings()
            .into_iter()
            .flatten()
            .enumerate()
            .find(|(_, m)| split_merge(m.as_bytes()).is_none())
        {
            return Err(TokenizerError::MalformedMerge { rank: rank as u32 });
        }
        let types = fixed_array(gguf, keys::TOKEN_TYPE, ValueType::I32, tokens.len())?;
        let u32s = |key, len| fixed_array(gguf, key, ValueType::U32, len);
        let index = match (
            u32s(index::TOKEN_OFFSETS, tokens.len())?,
            u32s(index::TOKEN_ORDER, tokens.len())?,
            u32s(index::MERGE_OFFSETS, merges.len())?,
            u32s(index::MERGE_ORDER, merges.len())?,
        ) {
            (None, None, None, None) => None,
            (Some(token_offsets), Some(token_order), Some(merge_offsets), Some(merge_order)) => {
                Some(Index { token_offsets, token_order, merge_offsets, merge_order })
            }
            _ => return Err(TokenizerError::PartialIndex),
        };
        let vocab = Vocab { tokens, merges, types, index };
        if let Some(ix) = index {
            vocab.check_index(ix)?;
        }
        Ok(vocab)
    }

    /// Checks that the offsets point at each record and that the orders are sorted permutations, so
    /// that the binary searches are right: O(V + M) once, no allocation.
    fn check_index(&self, ix: Index<'a>) -> Result<(), TokenizerError> {
        let bad = |key: &'static str, at: usize| TokenizerError::BadIndex { key, at };
        for (list, offsets, key) in [
            (self.tokens, ix.token_offsets, index::TOKEN_OFFSETS),
            (self.merges, ix.merge_offsets, index::MERGE_OFFSETS),
        ] {
            let mut it = list.strings().ok_or(bad(key, 0))?;
            for i in 0..list.len() {
                let pos = it.position();
                if u32_at(offsets, i).map(|o| o as usize) != Some(pos) || it.next().is_none() {
                    return Err(bad(key, i));
                }
            }
        }
        // Strictly increasing by (key, id) with every id in range: a sorted permutation.
        let mut prev: Option<(&[u8], u32)> = None;
        for i in 0..self.len() {
            let id = u32_at(ix.token_order, i).ok_or(bad(index::TOKEN_ORDER, i))?;
            let s = self.token_at(ix, id).ok_or(bad(index::TOKEN_ORDER, i))?;
            if prev.is_some_and(|p| p >= (s, id)) {
                return Err(bad(index::TOKEN_ORDER, i));
            }
            prev = Some((s, id));
        }
        let mut prev: Option<(&[u8], u32)> = None;
        for i in 0..self.n_merges() {
            let rank = u32_at(ix.merge_order, i).ok_or(bad(index::MERGE_ORDER, i))?;
            let m = self.merge_at(ix, rank).ok_or(bad(index::MERGE_ORDER, i))?;
            if let Some((pm, pr)) = prev {
                if index::cmp_merges(pm, m).then(pr.cmp(&rank)) != Ordering::Less {
                    return Err(bad(index::MERGE_ORDER, i));
                }
            }
            prev = Some((m, rank));
        }
        Ok(())
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the vocabulary is empty.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Number of merges.
    pub fn n_merges(&self) -> usize {
        self.merges.len()
    }

    /// Whether the file has the `mote.tokenizer.*` index (binary searches) or not (scans).
    pub fn has_index(&self) -> bool {
        self.index.is_some()
    }

    fn token_at(&self, ix: Index<'a>, id: u32) -> Option<&'a [u8]> {
        let off = u32_at(ix.token_offsets, id as usize)?;
        record_at(self.tokens.raw(), off as usize)
    }

    fn merge_at(&self, ix: Index<'a>, rank: u32) -> Option<&'a [u8]> {
        let off = u32_at(ix.merge_offsets, rank as usize)?;
        record_at(self.merges.raw(), off as usize)
    }

    /// The (mapped) string of token `id`: O(1) with the index, a walk without.
    pub fn token(&self, id: u32) -> Option<&'a [u8]> {
        match self.index {
            Some(ix) => self.token_at(ix, id),
            None => self.tokens.strings()?.nth(id as usize).map(str::as_bytes),
        }
    }

    /// The type of token `id` (1 normal when the file has no token types).
    pub fn token_type(&self, id: u32) -> Option<i32> {
        if id as usize >= self.len() {
            return None;
        }
        match self.types {
            Some(raw) => u32_at(raw, id as usize).map(|v| v as i32),
            None => Some(1),
        }
    }

    /// Whether token `id` is a control or user-defined token (recognised in text only on request).
    pub fn is_special(&self, id: u32) -> bool {
        matches!(self.token_type(id), Some(TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED))
    }

    /// The id of the token whose string is `s` (the lowest such id).
    pub fn token_id(&self, s: &[u8]) -> Option<u32> {
        match self.index {
            Some(ix) => {
                let (mut lo, mut hi) = (0usize, self.len());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    let id = u32_at(ix.token_order, mid)?;
                    if self.token_at(ix, id)? < s {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                let id = u32_at(ix.token_order, lo)?;
                (self.token_at(ix, id)? == s).then_some(id)
            }
            None => {
                let mut it = self.tokens.strings()?;
                Iterator::position(&mut it, |t| t.as_bytes() == s).map(|i| i as u32)
            }
        }
    }

    /// The rank of the merge of `left` and `right` (the lowest such rank), if there is one.
    pub fn merge_rank(&self, left: &[u8], right: &[u8]) -> Option<u32> {
        let cmp = |m: &[u8]| match split_merge(m) {
            Some((l, r)) => l.cmp(left).then(r.cmp(right)),
            None => Ordering::Less,
        };
        match self.index {
            Some(ix) => {
                let (mut lo, mut hi) = (0usize, self.n_merges());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    let rank = u32_at(ix.merge_order, mid)?;
                    if cmp(self.merge_at(ix, rank)?) == Ordering::Less {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                let rank = u32_at(ix.merge_order, lo)?;
                (cmp(self.merge_at(ix, rank)?) == Ordering::Equal).then_some(rank)
            }
            None => {
                let mut it = self.merges.strings()?;
                Iterator::position(&mut it, |m| cmp(m.as_bytes()) == Ordering::Equal)
                    .map(|i| i as u32)
            }
        }
    }

    /// Calls `f` with each special token's id and string, in id order, until it returns `false`.
    pub fn for_each_special(&self, mut f: impl FnMut(u32, &'a [u8]) -> bool) {
        let Some(raw) = self.types else { return };
        let Some(mut strings) = self.tokens.strings() else { return };
        let mut next = 0usize; // the id of the string `strings` yields next
        for (id, chunk) in (0u32..).zip(raw.chunks_exact(4)) {
            let t = i32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
            if !matches!(t, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED) {
                continue;
            }
            let s = match self.index {
                Some(ix) => self.token_at(ix, id),
                None => {
                    let s = strings.nth(id as usize - next).map(str::as_bytes);
                    next = id as usize + 1;
                    s
                }
            };
            match s {
                Some(s) if f(id, s) => {}
                _ => return,
            }
        }
    }
}
