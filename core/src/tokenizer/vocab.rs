//! The vocabulary and merges as they sit in the GGUF: look-ups by id, by string and by pair, with
//! binary searches over the `mote.tokenizer.*` index when the file has it and linear scans when not.

use core::cmp::Ordering;

use crate::gguf::{Array, Gguf, ValueType};

use super::bytes::char_to_byte;
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
    merge_pairs: &'a [u8], // (merge, 4): left id, right id, rank, merged id; sorted
}

/// Tokens, merges and token types borrowed from a GGUF, and the token of each byte.
#[derive(Clone, Debug)]
pub struct Vocab<'a> {
    tokens: Array<'a>,
    merges: Array<'a>,
    /// `tokenizer.ggml.token_type`'s i32 data, if present.
    types: Option<&'a [u8]>,
    index: Option<Index<'a>>,
    /// The token of each byte's single character (`NO_TOKEN` if none): BPE's starting parts.
    byte_ids: [u32; 256],
}

/// A byte with no token of its own in `byte_ids`.
const NO_TOKEN: u32 = u32::MAX;

/// Element `i` of raw little-endian u32 data.
fn u32_at(raw: &[u8], i: usize) -> Option<u32> {
    let at = i.checked_mul(4)?;
    let b = raw.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(*b.first_chunk::<4>()?))
}

/// The strings of a GGUF string array's data as bytes, walked without re-checking UTF-8 (the
/// array was checked whole by `Gguf::parse`); stops at the first record that does not fit.
fn records(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut at = 0usize;
    core::iter::from_fn(move || {
        let s = record_at(data, at)?;
        // `record_at` found the record inside `data`, so this stays within its length.
        at = at.saturating_add(8).saturating_add(s.len());
        Some(s)
    })
}

/// Row `i` of the merge table.
fn pair_row(raw: &[u8], i: usize) -> Option<[u32; 4]> {
    let at = i.checked_mul(4)?;
    let word = |k: usize| u32_at(raw, at.checked_add(k)?);
    Some([word(0)?, word(1)?, word(2)?, word(3)?])
}

/// The first row in `0..n` of the sorted merge table for which `before` is false.
fn partition(raw: &[u8], n: usize, before: impl Fn([u32; 4]) -> bool) -> usize {
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        // lo < hi: neither the midpoint nor lo + 1 can overflow.
        let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
        if pair_row(raw, mid).is_some_and(&before) {
            lo = mid.saturating_add(1);
        } else {
            hi = mid;
        }
    }
    lo
}

/// The string whose GGUF record (u64 length, bytes) starts at `offset` of `data`.
fn record_at(data: &[u8], offset: usize) -> Option<&[u8]> {
    let len = data.get(offset..offset.checked_add(8)?)?;
    let len = u64::from_le_bytes(*len.first_chunk::<8>()?);
    let start = offset.checked_add(8)?;
    data.get(start..start.checked_add(usize::try_from(len).ok()?)?)
}

// Loading runs once: out of line, one copy of each check (docs/size.md).
#[inline(never)]
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
    #[inline(never)]
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
            u32s(index::MERGE_PAIRS, merges.len().saturating_mul(4))?,
        ) {
            (None, None, None) => None,
            (Some(token_offsets), Some(token_order), Some(merge_pairs)) => {
                Some(Index { token_offsets, token_order, merge_pairs })
            }
            _ => return Err(TokenizerError::PartialIndex),
        };
        let mut byte_ids = [NO_TOKEN; 256];
        for (id, t) in (0u32..).zip(tokens.strings().into_iter().flatten()) {
            let mut chars = t.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                if let Some(slot) = char_to_byte(c).and_then(|b| byte_ids.get_mut(usize::from(b))) {
                    if *slot == NO_TOKEN {
                        *slot = id;
                    }
                }
            }
        }
        let vocab = Vocab { tokens, merges, types, index, byte_ids };
        if let Some(ix) = vocab.index {
            vocab.check_index(ix)?;
        }
        Ok(vocab)
    }

    /// Checks that the offsets point at each record, that the token order is a sorted permutation
    /// and that the merge table holds exactly the file's merges, so that the binary searches are
    /// right: O(V + M log V) once, no allocation.
    #[cfg_attr(feature = "optimize-size", optimize(size))]
    fn check_index(&self, ix: Index<'a>) -> Result<(), TokenizerError> {
        let bad = |key: &'static str, at: usize| TokenizerError::BadIndex { key, at };
        let mut it = self.tokens.strings().ok_or_else(|| bad(index::TOKEN_OFFSETS, 0))?;
        for i in 0..self.len() {
            let pos = it.position();
            if u32_at(ix.token_offsets, i).map(|o| o as usize) != Some(pos) || it.next().is_none() {
                return Err(bad(index::TOKEN_OFFSETS, i));
            }
        }
        // Strictly increasing by (string, id) with every id in range: a sorted permutation.
        let mut prev: Option<(&[u8], u32)> = None;
        for i in 0..self.len() {
            let id = u32_at(ix.token_order, i).ok_or_else(|| bad(index::TOKEN_ORDER, i))?;
            let s = self.token_at(ix, id).ok_or_else(|| bad(index::TOKEN_ORDER, i))?;
            if prev.is_some_and(|p| p >= (s, id)) {
                return Err(bad(index::TOKEN_ORDER, i));
            }
            prev = Some((s, id));
        }
        // Rows strictly increasing: no row twice. Then every merge of the file, by rank, has its
        // row with the right ids: M distinct rows for M merges, so nothing else is in the table.
        let mut prev: Option<[u32; 4]> = None;
        for i in 0..self.n_merges() {
            let row = pair_row(ix.merge_pairs, i).ok_or_else(|| bad(index::MERGE_PAIRS, i))?;
            if prev.is_some_and(|p| p >= row) {
                return Err(bad(index::MERGE_PAIRS, i));
            }
            prev = Some(row);
        }
        let mut merges = self.merges.strings().ok_or_else(|| bad(index::MERGE_PAIRS, 0))?;
        for rank in 0..self.n_merges() as u32 {
            // Built only when needed: an error carries a name, and copying one is code.
            let wrong = || bad(index::MERGE_PAIRS, rank as usize);
            let (l, r) = merges.next().and_then(|m| split_merge(m.as_bytes())).ok_or_else(wrong)?;
            let (left, right) = (self.token_id(l), self.token_id(r));
            let (Some(left), Some(right)) = (left, right) else { return Err(wrong()) };
            let at = partition(ix.merge_pairs, self.n_merges(), |row| row < [left, right, rank, 0]);
            let row = pair_row(ix.merge_pairs, at).ok_or_else(wrong)?;
            let merged = self.token_at(ix, row[3]);
            if row[..3] != [left, right, rank]
                || merged.is_none_or(|t| index::cmp_concat(t, l, r) != Ordering::Equal)
            {
                return Err(wrong());
            }
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

    /// The token of byte `b`'s character alone, if the vocabulary has one.
    pub fn byte_id(&self, b: u8) -> Option<u32> {
        self.byte_ids.get(usize::from(b)).copied().filter(|&id| id != NO_TOKEN)
    }

    /// The (mapped) string of token `id`: O(1) with the index, a walk without.
    pub fn token(&self, id: u32) -> Option<&'a [u8]> {
        match self.index {
            Some(ix) => self.token_at(ix, id),
            None => records(self.tokens.raw()).nth(id as usize),
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
    #[cfg_attr(feature = "optimize-size", optimize(size))]
    pub fn token_id(&self, s: &[u8]) -> Option<u32> {
        match self.index {
            Some(ix) => {
                let (mut lo, mut hi) = (0usize, self.len());
                while lo < hi {
                    let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
                    let id = u32_at(ix.token_order, mid)?;
                    if self.token_at(ix, id)? < s {
                        lo = mid.saturating_add(1);
                    } else {
                        hi = mid;
                    }
                }
                let id = u32_at(ix.token_order, lo)?;
                (self.token_at(ix, id)? == s).then_some(id)
            }
            None => records(self.tokens.raw()).position(|t| t == s).map(|i| i as u32),
        }
    }

    /// The rank of the merge of the strings `left` and `right` (the lowest such rank), by a scan
    /// of the merges (the path for files without the index).
    pub fn merge_rank(&self, left: &[u8], right: &[u8]) -> Option<u32> {
        // A merge "left right" has exactly this length; most merges are rejected on it alone.
        let len = left.len().saturating_add(1).saturating_add(right.len());
        records(self.merges.raw())
            .position(|m| m.len() == len && split_merge(m) == Some((left, right)))
            .map(|i| i as u32)
    }

    /// `(rank, merged id)` of the merge of tokens `left` and `right` (the lowest rank), by binary
    /// search; `None` without the index (use [`Vocab::merge_rank`]) or when there is no such merge.
    pub fn pair(&self, left: u32, right: u32) -> Option<(u32, u32)> {
        let ix = self.index?;
        let at = partition(ix.merge_pairs, self.n_merges(), |row| row < [left, right, 0, 0]);
        let row = pair_row(ix.merge_pairs, at)?;
        (row[0] == left && row[1] == right).then_some((row[2], row[3]))
    }

    /// Calls `f` with each special token's id and string, in id order, until it returns `false`.
    pub fn for_each_special(&self, mut f: impl FnMut(u32, &'a [u8]) -> bool) {
        let Some(raw) = self.types else { return };
        let Some(mut strings) = self.tokens.strings() else { return };
        let mut next = 0usize; // the id of the string `strings` yields next
        for (id, chunk) in (0u32..).zip(raw.chunks_exact(4)) {
            let Some(&bytes) = chunk.first_chunk::<4>() else { return };
            let t = i32::from_le_bytes(bytes);
            if !matches!(t, TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED) {
                continue;
            }
            let s = match self.index {
                Some(ix) => self.token_at(ix, id),
                None => {
                    let s = strings.nth((id as usize).saturating_sub(next)).map(str::as_bytes);
                    next = (id as usize).saturating_add(1);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(s: &[u8]) -> Vec<u8> {
        let mut r = (s.len() as u64).to_le_bytes().to_vec();
        r.extend_from_slice(s);
        r
    }

    #[test]
    fn reads_records_and_stops_at_a_truncated_one() {
        let mut data = record(b"ab");
        data.extend(record(b""));
        data.extend(record(b"xyz"));
        let all: Vec<&[u8]> = records(&data).collect();
        assert_eq!(all, [&b"ab"[..], b"", b"xyz"]);
        assert_eq!(record_at(&data, 10), Some(&b""[..]));
        data.truncate(data.len() - 1);
        assert_eq!(records(&data).count(), 2);
        assert_eq!(record_at(&data, 18), None);
        assert_eq!(record_at(&data, usize::MAX - 3), None);
    }

    #[test]
    fn reads_u32s_and_rows_only_inside_the_data() {
        let raw: Vec<u8> = [1u32, 2, 3, 4, 5].iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(u32_at(&raw, 4), Some(5));
        assert_eq!(u32_at(&raw, 5), None);
        assert_eq!(u32_at(&raw, usize::MAX), None);
        assert_eq!(pair_row(&raw, 0), Some([1, 2, 3, 4]));
        assert_eq!(pair_row(&raw, 1), None);
    }

    #[test]
    fn binary_search_finds_the_first_row_not_before_the_key() {
        let rows = [[0u32, 1, 5, 9], [0, 2, 1, 9], [3, 0, 0, 9]];
        let raw: Vec<u8> = rows.iter().flatten().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(partition(&raw, 3, |r| r < [0, 2, 0, 0]), 1);
        assert_eq!(partition(&raw, 3, |r| r < [9, 0, 0, 0]), 3);
        assert_eq!(partition(&raw, 3, |r| r < [0, 0, 0, 0]), 0);
    }
}
