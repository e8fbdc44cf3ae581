//! Token ids back to bytes, and a streaming decoder that turns those bytes into text that is always
//! valid UTF-8, token by token.
//!
//! A token's bytes are its string with GPT-2's byte-to-unicode map undone. A token with a character
//! outside the map (an added token such as a CJK word) stands for its own UTF-8, as in Hugging Face's
//! `ByteLevel` decoder. One character can be split across tokens (an emoji is often two or three), so
//! [`StreamDecoder`] holds back an incomplete UTF-8 sequence until the next token completes it, and
//! replaces bytes that can never be completed by U+FFFD.

// Hot encode/decode loops over bounded scratch: exempt from the tokenizer's indexing and overflow
// lints (the panic lints still apply) because the pending buffer holds at most one UTF-8 character (4 bytes), indexed by
// counts bounded by the UTF-8 sequence length; the `tokenizer` fuzz target exercises them.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use super::bytes::char_to_byte;

/// Calls `emit` with the bytes of the mapped token string `token`, in chunks.
pub fn unmap_token(token: &[u8], emit: &mut impl FnMut(&[u8])) {
    let Ok(s) = core::str::from_utf8(token) else {
        emit(token);
        return;
    };
    if !s.chars().all(|c| char_to_byte(c).is_some()) {
        emit(token);
        return;
    }
    let mut buf = [0u8; 32];
    let mut n = 0;
    for c in s.chars() {
        if n == buf.len() {
            emit(&buf);
            n = 0;
        }
        if let (Some(slot), Some(b)) = (buf.get_mut(n), char_to_byte(c)) {
            *slot = b;
            n += 1;
        }
    }
    emit(&buf[..n]);
}

/// The longest UTF-8 sequence.
const MAX_UTF8: usize = 4;

/// Turns a stream of bytes into valid UTF-8 text: holds back the start of a character until its
/// last byte arrives, and emits U+FFFD for bytes that cannot start or continue a character (one per
/// maximal invalid sequence, as `String::from_utf8_lossy` does).
#[derive(Clone, Debug, Default)]
pub struct StreamDecoder {
    pending: [u8; MAX_UTF8], // (byte) an incomplete sequence held back
    len: usize,
}

impl StreamDecoder {
    /// A decoder with nothing held back.
    pub const fn new() -> Self {
        StreamDecoder { pending: [0; MAX_UTF8], len: 0 }
    }

    /// Whether an incomplete character is held back.
    pub fn has_pending(&self) -> bool {
        self.len > 0
    }

    /// Feeds `bytes`, calling `emit` with each piece of valid text that is ready.
    pub fn push(&mut self, mut bytes: &[u8], emit: &mut impl FnMut(&str)) {
        // First complete (or give up on) the held-back sequence, one byte at a time.
        while self.len > 0 {
            let Some((&b, rest)) = bytes.split_first() else { return };
            if let Some(slot) = self.pending.get_mut(self.len) {
                *slot = b;
                self.len += 1;
            }
            bytes = rest;
            let held = self.pending.get(..self.len).unwrap_or(&[]);
            match core::str::from_utf8(held) {
                Ok(s) => {
                    emit(s);
                    self.len = 0;
                }
                Err(e) if e.error_len().is_none() => {} // still incomplete
                Err(e) => {
                    // `held` cannot be completed: replace its invalid start, then re-feed the rest
                    // (at most 3 bytes, so this recursion is shallow).
                    let bad = e.valid_up_to() + e.error_len().unwrap_or(1);
                    let mut again = [0u8; MAX_UTF8];
                    let tail = held.get(bad..).unwrap_or(&[]);
                    let k = tail.len();
                    again[..k].copy_from_slice(tail);
                    if let Ok(s) = core::str::from_utf8(held.get(..e.valid_up_to()).unwrap_or(&[]))
                    {
                        emit(s);
                    }
                    emit("\u{FFFD}");
                    self.len = 0;
                    self.push(&again[..k], emit);
                }
            }
        }
        // Then the new bytes: valid runs out, invalid sequences replaced, an incomplete tail held.
        loop {
            match core::str::from_utf8(bytes) {
                Ok(s) => {
                    if !s.is_empty() {
                        emit(s);
                    }
                    return;
                }
                Err(e) => {
                    let (good, rest) = bytes.split_at(e.valid_up_to());
                    if let Ok(s) = core::str::from_utf8(good) {
                        if !s.is_empty() {
                            emit(s);
                        }
                    }
                    match e.error_len() {
                        Some(bad) => {
                            emit("\u{FFFD}");
                            bytes = rest.get(bad..).unwrap_or(&[]);
                        }
                        None => {
                            // An incomplete sequence at the end: at most 3 bytes.
                            let k = rest.len().min(MAX_UTF8);
                            self.pending[..k].copy_from_slice(&rest[..k]);
                            self.len = k;
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: a held-back incomplete character becomes U+FFFD.
    pub fn finish(&mut self, emit: &mut impl FnMut(&str)) {
        if self.len > 0 {
            emit("\u{FFFD}");
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(chunks: &[&[u8]]) -> (Vec<String>, String) {
        let mut d = StreamDecoder::new();
        let mut pieces = Vec::new();
        for c in chunks {
            d.push(c, &mut |s: &str| pieces.push(s.to_string()));
        }
        d.finish(&mut |s: &str| pieces.push(s.to_string()));
        let all = pieces.concat();
        (pieces, all)
    }

    #[test]
    fn holds_back_a_character_split_across_tokens() {
        let e = "😀".as_bytes();
        let (pieces, all) = stream(&[b"a", &e[..1], &e[1..3], &e[3..], b"b"]);
        assert_eq!(all, "a😀b");
        assert_eq!(pieces, ["a", "😀", "b"]);
    }

    #[test]
    fn replaces_bytes_that_cannot_be_utf8() {
        let (_, all) = stream(&[b"a\xffb", b"\xe2\x82", b"x"]);
        assert_eq!(all, String::from_utf8_lossy(b"a\xffb\xe2\x82x"));
        let (_, all) = stream(&[b"\xf0\x9f", b"\x98"]);
        assert_eq!(all, "\u{FFFD}");
    }

    #[test]
    fn matches_lossy_conversion_on_any_split() {
        let text: &[u8] = b"h\xc3\xa9\xf0\x9f\x91\x8d\xff\xc3(\xe2\x82\xac\x80z";
        for cut in 0..text.len() {
            for cut2 in cut..text.len() {
                let (_, all) = stream(&[&text[..cut], &text[cut..cut2], &text[cut2..]]);
                assert_eq!(all, String::from_utf8_lossy(text), "cuts {cut} {cut2}");
            }
        }
    }

    #[test]
    fn unmaps_gpt2_characters_and_passes_others_through() {
        let mut out = Vec::new();
        unmap_token("ĠhelloĊ".as_bytes(), &mut |b: &[u8]| out.extend_from_slice(b));
        assert_eq!(out, b" hello\n");
        out.clear();
        unmap_token("日本".as_bytes(), &mut |b: &[u8]| out.extend_from_slice(b));
        assert_eq!(out, "日本".as_bytes());
    }
}
