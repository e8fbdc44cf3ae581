//! The `mote.tokenizer.*` index: u32 arrays that `mote convert` writes after the standard GGUF
//! tokenizer keys so that a device finds a token's string by its id, a token by its string and a
//! merge by its pair of token ids with O(1) reads and binary searches, reading the GGUF in place and
//! building nothing at run time. llama.cpp ignores these keys; without them the tokenizer scans the
//! string arrays (slower, same result).
//!
//! GGUF stores an array of strings as `(u64 length, bytes)` records back to back, so string `i` can
//! only be reached by walking the `i` before it. The index:
//! - [`TOKEN_OFFSETS`]: `[V]`, byte offset of token `i`'s record in `tokenizer.ggml.tokens`' data;
//! - [`TOKEN_ORDER`]: `[V]`, token ids sorted by (token bytes, id);
//! - [`MERGE_PAIRS`]: `[M, 4]`, one `(left id, right id, rank, merged id)` per merge, sorted (so by
//!   pair, then rank): BPE works on token ids and finds a pair's rank and result with one binary
//!   search over integers, never touching strings.
//!
//! The functions here compute the arrays without allocating (sorting caller-provided slices), so the
//! converter and the tests share one definition; the tokenizer checks a file's index whole (every
//! merge against `tokenizer.ggml.merges`) when it loads it.

use core::cmp::Ordering;

/// Key of the token offsets (u32 array, one per token).
pub const TOKEN_OFFSETS: &str = "mote.tokenizer.token_offsets";
/// Key of the token ids sorted by token string (u32 array, one per token).
pub const TOKEN_ORDER: &str = "mote.tokenizer.token_order";
/// Key of the merge table (u32 array, four per merge: left id, right id, rank, merged id; sorted).
pub const MERGE_PAIRS: &str = "mote.tokenizer.merge_pairs";

/// Splits a merge `"left right"` at its first space after the first byte (as llama.cpp does, so
/// that a left part may itself be a space). `None` when there is no such space.
pub fn split_merge(merge: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = merge.get(1..)?.iter().position(|&b| b == b' ')?.checked_add(1)?;
    Some((merge.get(..at)?, merge.get(at.checked_add(1)?..)?))
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
        at = at.checked_add(8)?.checked_add(s.as_ref().len() as u64)?;
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

/// `(token bytes) cmp (a ++ b)`, without concatenating.
pub fn cmp_concat(token: &[u8], a: &[u8], b: &[u8]) -> Ordering {
    let (head, tail) = token.split_at(token.len().min(a.len()));
    head.cmp(a).then_with(|| if head.len() < a.len() { Ordering::Less } else { tail.cmp(b) })
}

/// The lowest id of the token `a ++ b`, by binary search over `order` (from [`token_order`]).
fn find_token<S: AsRef<str>>(tokens: &[S], order: &[u32], a: &[u8], b: &[u8]) -> Option<u32> {
    let key = |i: u32| tokens.get(i as usize).map(|s| s.as_ref().as_bytes());
    let at = order.partition_point(|&i| key(i).is_some_and(|t| cmp_concat(t, a, b).is_lt()));
    let id = *order.get(at)?;
    (cmp_concat(key(id)?, a, b) == Ordering::Equal).then_some(id)
}

/// The merge table: `(left id, right id, rank, merged id)` per merge, sorted, into `out` (one row
/// per merge); `order` is [`token_order`]'s result. Ids are the lowest of equal tokens. `None` when
/// the lengths differ, a merge is not `"left right"`, or a part or the result is not a token.
pub fn merge_pairs<S: AsRef<str>>(
    tokens: &[S],
    merges: &[S],
    order: &[u32],
    out: &mut [[u32; 4]],
) -> Option<()> {
    if merges.len() != out.len() || order.len() != tokens.len() {
        return None;
    }
    for ((rank, m), row) in (0u32..).zip(merges).zip(out.iter_mut()) {
        let (l, r) = split_merge(m.as_ref().as_bytes())?;
        let left = find_token(tokens, order, l, &[])?;
        let right = find_token(tokens, order, r, &[])?;
        let merged = find_token(tokens, order, l, r)?;
        *row = [left, right, rank, merged];
    }
    out.sort_unstable();
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
    fn merge_table_rows_are_ids_sorted_by_pair() {
        let tokens = ["b", "a", "ab", "c", "abc", "a"];
        let mut order = [0u32; 6];
        assert_eq!(token_order(&tokens, &mut order), Some(()));
        let mut rows = [[0u32; 4]; 2];
        assert_eq!(merge_pairs(&tokens, &["ab c", "a b"], &order, &mut rows), Some(()));
        assert_eq!(rows, [[1, 0, 1, 2], [2, 3, 0, 4]]);
        assert_eq!(merge_pairs(&tokens, &["a x", "a b"], &order, &mut rows), None);
        assert_eq!(merge_pairs(&tokens, &["ab", "a b"], &order, &mut rows), None);
    }

    #[test]
    fn compares_a_token_with_a_concatenation() {
        assert_eq!(cmp_concat(b"abc", b"a", b"bc"), Ordering::Equal);
        assert_eq!(cmp_concat(b"ab", b"a", b"bc"), Ordering::Less);
        assert_eq!(cmp_concat(b"a", b"ab", b""), Ordering::Less);
        assert_eq!(cmp_concat(b"b", b"a", b"zz"), Ordering::Greater);
        assert_eq!(cmp_concat(b"abd", b"a", b"bc"), Ordering::Greater);
    }
}
