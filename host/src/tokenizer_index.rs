//! Extra `mote.tokenizer.*` metadata that `mote convert` writes beside the standard GGUF tokenizer
//! keys, so that a device finds token ids and merge ranks by binary search instead of building tables
//! at run time. llama.cpp ignores these keys.

/// The extra metadata for a vocabulary and its merges: `(key, u32 array)` pairs, written in this
/// order as GGUF arrays of u32.
pub fn build(_tokens: &[String], _merges: &[String]) -> Vec<(String, Vec<u32>)> {
    Vec::new()
}
