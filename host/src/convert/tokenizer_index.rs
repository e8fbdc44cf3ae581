//! Extra `mote.tokenizer.*` metadata that `mote convert` writes beside the standard GGUF tokenizer
//! keys, so that a device finds token ids and merge ranks by binary search instead of building tables
//! at run time. llama.cpp ignores these keys. The layout is defined (and checked on load) in
//! `mote_core::tokenizer::index`.

use mote_core::tokenizer::index;

/// The extra metadata for a vocabulary and its merges: `(key, u32 array)` pairs, written in this
/// order as GGUF arrays of u32, after `tokenizer.ggml.tokens` and `tokenizer.ggml.merges` written
/// from the same `tokens` and `merges`.
///
/// Empty (no index: the tokenizer then scans, more slowly) when the strings are too large for u32
/// offsets (over 4 GB), or a merge is not `"left right"` of two tokens whose concatenation is a
/// token (such a tokenizer is broken; the tokenizer reports it when it encodes).
pub fn build(tokens: &[String], merges: &[String]) -> Vec<(String, Vec<u32>)> {
    let mut token_offsets = vec![0u32; tokens.len()];
    let mut token_order = vec![0u32; tokens.len()];
    let mut merge_pairs = vec![[0u32; 4]; merges.len()];
    let built = index::string_offsets(tokens, &mut token_offsets)
        .and_then(|()| index::token_order(tokens, &mut token_order))
        .and_then(|()| index::merge_pairs(tokens, merges, &token_order, &mut merge_pairs));
    if built.is_none() {
        return Vec::new();
    }
    vec![
        (index::TOKEN_OFFSETS.to_string(), token_offsets),
        (index::TOKEN_ORDER.to_string(), token_order),
        (index::MERGE_PAIRS.to_string(), merge_pairs.concat()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_three_arrays_in_order() {
        let tokens: Vec<String> = ["b", "a", "ab"].iter().map(|s| s.to_string()).collect();
        let merges: Vec<String> = vec!["a b".to_string()];
        let index = build(&tokens, &merges);
        let keys: Vec<&str> = index.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "mote.tokenizer.token_offsets",
                "mote.tokenizer.token_order",
                "mote.tokenizer.merge_pairs"
            ]
        );
        assert_eq!(index[0].1, [0, 9, 18]);
        assert_eq!(index[1].1, [1, 2, 0]);
        assert_eq!(index[2].1, [1, 0, 0, 2]);
    }

    #[test]
    fn builds_no_index_for_a_merge_whose_result_is_not_a_token() {
        let tokens: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        assert!(build(&tokens, &["a b".to_string()]).is_empty());
    }
}
