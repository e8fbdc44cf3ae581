//! The `mote.tokenizer.*` index: four u32 arrays that `mote convert` writes after the standard GGUF
//! tokenizer keys so that a device finds a token by its string, a token's string by its id and a
//! merge's rank by its pair with binary searches, reading the GGUF in place and building nothing at
//! run time. llama.cpp ignores these keys; without them the tokenizer scans (slower, same result).
//!
//! GGUF stores an array of strings as `(u64 length, bytes)` records back to back, so string `i` can
//! only be reached by walking the `i` before it. The index holds the byte offset of each record:
//! - [`TOKEN_OFFSETS`]: `[V]`, offset of token `i`'s record in `tokenizer.ggml.tokens`' data;
//! - [`TOKEN_ORDER`]: `[V]`, token ids sorted by (token bytes, id);
//! - [`MERGE_OFFSETS`]: `[M]`, offset of merge `i`'s record in `tokenizer.ggml.merges`' data;
//! - [`MERGE_ORDER`]: `[M]`, merge ranks sorted by (left bytes, right bytes, rank).
//!
//! The functions here compute the arrays without allocating (sorting in caller-provided slices), so
//! the converter and the tests share one definition; the tokenizer checks a file's index whole when it
//! loads it.

use core::cmp::Ordering;

/// Key of the token offsets (u32 array, one per token).
pub const TOKEN_OFFSETS: &str = "mote.tokenizer.token_offsets";
/// Key of the token ids sorted by token string (u32 array, one per token).
pub const TOKEN_ORDER: &str = "mote.tokenizer.token_order";
/// Key of the merge offsets (u32 array, one per merge).
pub const MERGE_OFFSETS: &str = "mote.tokenizer.merge_offsets";
/// Key of the merge ranks sorted by pair (u32 array, one per merge).
pub const MERGE_ORDER: &str = "mote.tokenizer.merge_order";

/// Splits a merge `"left right"` at its first space after the first byte (as llama.cpp does, so
/// that a left part may itself be a space). `None` when there is no such space.
pub fn split_merge(merge: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = merge.get(1..)?.iter().position(|&b| b == b' ')? + 1;
    Some((merge.get(..at)?, merge.get(at + 1..)?))
}

/// Orders merges by (left, right); a merge without a separator sorts as `(whole, "")`.
pub fn cmp_merges(a: &[u8], b: &[u8]) -> Ordering {
    let (al, ar) = split_merge(a).unwrap_or((a, &[]));
    let (bl, br) = split_merge(b).unwrap_or((b, &[]));
    al.cmp(bl).then(ar.cmp(br))
}

/// The offsets of `strings`' records in a GGUF string array, into `out` (same length). `None` when
/// the lengths differ or an offset does not fit a u32 (an array over 4 GB).
pub fn string_offsets<S: AsRef<str>>(strings: &[S], out: &mut [u32]) -> Option<()> {
    if strings.len() != out.len() {
        return None;
    }
    let mut at: u64 = 0;
    for (s, o) in strings.iter().zip(out.iter_mut()) {
        *o = u32::try_from(at).ok()?;
        at += 8 + s.as_ref().len() as u64;
    }
    Some(())
}

/// Token ids sorted by (token bytes, id), into `out` (same length as `tokens`). `None` when the
/// lengths differ or there are more than `u32::MAX` tokens.
pub fn token_order<S: AsRef<str>>(tokens: &[S], out: &mut [u32]) -> Option<()> {
    fill_ids(out, tokens.len())?;
    let key = |i: &u32| tokens.get(*i as usize).map(|s| s.as_ref().as_bytes());
    out.sort_unstable_by(|a, b| key(a).cmp(&key(b)).then(a.cmp(b)));
    Some(())
}

/// Merge ranks sorted by (left bytes, right bytes, rank), into `out` (same length as `merges`).
/// `None` when the lengths differ or there are more than `u32::MAX` merges.
pub fn merge_order<S: AsRef<str>>(merges: &[S], out: &mut [u32]) -> Option<()> {
    fill_ids(out, merges.len())?;
    let key = |i: &u32| merges.get(*i as usize).map_or(&[][..], |s| s.as_ref().as_bytes());
    out.sort_unstable_by(|a, b| cmp_merges(key(a), key(b)).then(a.cmp(b)));
    Some(())
}

fn fill_ids(out: &mut [u32], n: usize) -> Option<()> {
    if out.len() != n || u32::try_from(n).is_err() {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = i as u32;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_merges_at_the_first_space_after_the_first_byte() {
        assert_eq!(split_merge(b"a b"), Some((&b"a"[..], &b"b"[..])));
        assert_eq!(split_merge(b"  x"), Some((&b" "[..], &b"x"[..])));
        assert_eq!(split_merge(b"ab"), None);
        assert_eq!(split_merge(b""), None);
        assert_eq!(split_merge(b"a "), Some((&b"a"[..], &b""[..])));
    }

    #[test]
    fn offsets_count_the_length_prefix() {
        let mut out = [0u32; 3];
        assert_eq!(string_offsets(&["a", "", "xyz"], &mut out), Some(()));
        assert_eq!(out, [0, 9, 17]);
        assert_eq!(string_offsets(&["a"], &mut out), None);
    }

    #[test]
    fn orders_tokens_by_bytes_then_id() {
        let tokens = ["b", "a", "ab", "a"];
        let mut out = [0u32; 4];
        assert_eq!(token_order(&tokens, &mut out), Some(()));
        assert_eq!(out, [1, 3, 2, 0]);
    }

    #[test]
    fn orders_merges_by_pair_not_by_string() {
        // As strings "a\t b" < "a x" (tab sorts before space); as pairs ("a", "x") < ("a\t", "b").
        let merges = ["a\t b", "a x", "a b", "0 1"];
        let mut out = [0u32; 4];
        assert_eq!(merge_order(&merges, &mut out), Some(()));
        assert_eq!(out, [3, 2, 1, 0]);
    }
}
