//! GPT-2's byte-to-unicode map: every byte gets a printable character, so that a token, which is a
//! sequence of bytes, can be stored as a string without spaces or control characters.
//!
//! Bytes `!..=~`, `¡..=¬` and `®..=ÿ` map to the character with the same code point; the 68 others
//! (controls, space, DEL, NBSP, soft hyphen) map in increasing order to U+0100, U+0101, ..., U+0143.
//! So a space becomes `Ġ` (U+0120) and a newline `Ċ` (U+010A), as in GPT-2's `encoder.json`. Every
//! mapped character is one or two bytes of UTF-8.

// Hot encode/decode loops over bounded scratch: exempt from the tokenizer's indexing and overflow
// lints (the panic lints still apply) because the byte map tables have 256 entries indexed by a byte, and output positions are
// checked against the buffer before each write; the `tokenizer` fuzz target exercises them.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

/// The character that byte `b` maps to (GPT-2's `bytes_to_unicode`).
pub const fn byte_to_char(b: u8) -> char {
    let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    if printable {
        return b as char;
    }
    // The rank of `b` among the non-printable bytes: those below it that are non-printable.
    let rank = if b < b'!' {
        b as u32
    } else if b < 0xA1 {
        // 0..=0x20 (33 bytes), then 0x7F..b.
        33 + (b as u32 - 0x7F)
    } else {
        // 0..=0x20, 0x7F..=0xA0 (34 bytes), then 0xAD.
        67
    };
    match char::from_u32(256 + rank) {
        Some(c) => c,
        None => '\u{FFFD}', // unreachable: 256 + rank <= 323 is a valid scalar value
    }
}

/// The UTF-8 encoding of every byte's character: `(bytes, len)` with `len` 1 or 2.
pub const BYTE_UTF8: [([u8; 2], u8); 256] = {
    let mut table = [([0u8; 2], 0u8); 256];
    let mut b = 0;
    while b < 256 {
        let c = byte_to_char(b as u8) as u32;
        table[b] = if c < 0x80 {
            ([c as u8, 0], 1)
        } else {
            ([0xC0 | (c >> 6) as u8, 0x80 | (c & 0x3F) as u8], 2)
        };
        b += 1;
    }
    table
};

/// The byte that character `c` stands for, if `c` is one of the 256 mapped characters.
pub const fn char_to_byte(c: char) -> Option<u8> {
    let c = c as u32;
    if c < 256 {
        let b = c as u8;
        if matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF) {
            return Some(b);
        }
        return None;
    }
    match c - 256 {
        r @ 0..=32 => Some(r as u8),
        r @ 33..=66 => Some((r - 33) as u8 + 0x7F),
        67 => Some(0xAD),
        _ => None,
    }
}

/// Appends the mapped UTF-8 of `bytes` to `out` at `at`; returns the new end, or `None` when `out`
/// is too small.
pub fn map_bytes(bytes: &[u8], out: &mut [u8], mut at: usize) -> Option<usize> {
    for &b in bytes {
        let (enc, len) = BYTE_UTF8[usize::from(b)];
        let len = usize::from(len);
        out.get_mut(at..at + len)?.copy_from_slice(&enc[..len]);
        at += len;
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_and_newline_map_like_gpt2() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
        assert_eq!(byte_to_char(b'a'), 'a');
        assert_eq!(byte_to_char(0), 'Ā');
        assert_eq!(byte_to_char(0x7F), 'ġ');
        assert_eq!(byte_to_char(0xAD), 'Ń');
        assert_eq!(byte_to_char(0xFF), 'ÿ');
    }

    #[test]
    fn map_is_a_bijection_onto_256_characters() {
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = byte_to_char(b);
            assert!(seen.insert(c), "byte {b} maps to a character already used");
            assert_eq!(char_to_byte(c), Some(b));
            let mut buf = [0u8; 4];
            let s = c.encode_utf8(&mut buf);
            let (enc, len) = BYTE_UTF8[usize::from(b)];
            assert_eq!(s.as_bytes(), &enc[..usize::from(len)]);
        }
        assert_eq!(char_to_byte('Ņ'), None);
        assert_eq!(char_to_byte(' '), None);
        assert_eq!(char_to_byte('\u{AD}'), None);
    }

    #[test]
    fn map_bytes_reports_a_full_buffer() {
        let mut out = [0u8; 3];
        assert_eq!(map_bytes(b"a ", &mut out, 0), Some(3));
        assert_eq!(&out, "aĠ".as_bytes());
        assert_eq!(map_bytes(b"  ", &mut out, 0), None);
    }
}
