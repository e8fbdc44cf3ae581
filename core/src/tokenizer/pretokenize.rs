//! GPT-2's pre-tokenizer: the text is cut into words before BPE, by the pattern
//!
//! ```text
//! 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//! ```
//!
//! written here as a hand-made scanner (no regex engine fits a microcontroller) that gives the same
//! pieces as Hugging Face `tokenizers`, which runs the pattern with Oniguruma: alternatives are tried
//! in order at each position and the first that matches wins (not the longest), `+` is greedy, and
//! `\s+(?!\S)` backs off one character so that the last space of a run goes with the next word.
//!
//! Character classes, as Oniguruma defines them for Unicode text:
//! - `\p{L}`: general category Lu, Ll, Lt, Lm or Lo; `\p{N}`: Nd, Nl or No;
//! - `\s`: U+0009..=U+000D, U+0085 and the categories Zs, Zl, Zp (not U+001C..=U+001F, which
//!   Python's `str.isspace` would include).
//!
//! The categories come from the `unicode-properties` crate (the unicode-rs project, which also keeps
//! `unicode-normalization` and `unicode-segmentation`), which follows the current Unicode release.
//! Only four classes matter here, so the build script (core/build.rs) turns its general categories
//! into runs of equal class, searched by bisection: 6.6 KB of flash (1,640 runs) where the crate's own category
//! table is 40.6 KB. A test compares the two at every code point. Hand-made tables would drift
//! from Unicode; `regex-syntax`'s tables need `alloc`.

// Hot encode/decode loops over bounded scratch: exempt from the tokenizer's indexing and overflow
// lints (the panic lints still apply) because positions are char boundaries of the text being split, found by the scan itself; the `tokenizer` fuzz target exercises them.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

include!(concat!(env!("OUT_DIR"), "/class_runs.rs"));

/// The class of a character for the pre-tokenizer pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// `\p{L}`.
    Letter,
    /// `\p{N}`.
    Number,
    /// `\s`.
    Space,
    /// Anything else: `[^\s\p{L}\p{N}]`.
    Other,
}

/// The pattern class of `c`.
pub fn class(c: char) -> Class {
    if c.is_ascii() {
        return match c {
            'a'..='z' | 'A'..='Z' => Class::Letter,
            '0'..='9' => Class::Number,
            '\t'..='\r' | ' ' => Class::Space,
            _ => Class::Other,
        };
    }
    // The run holding `c`: the last whose first code point is at or below it. U+0080 starts
    // the first run, so there is always one.
    let cp = c as u32;
    let at = CLASS_RUNS.partition_point(|&run| run >> 2 <= cp);
    match CLASS_RUNS.get(at.wrapping_sub(1)).map_or(RUN_OTHER, |run| run & 3) {
        RUN_LETTER => Class::Letter,
        RUN_NUMBER => Class::Number,
        RUN_SPACE => Class::Space,
        _ => Class::Other,
    }
}

/// GPT-2's contractions, tried first at an apostrophe.
const CONTRACTIONS: [&str; 7] = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d"];

/// The pieces of a text, in order; together they are the whole text.
#[derive(Clone, Debug)]
pub struct Pretokens<'t> {
    rest: &'t str,
}

/// Cuts `text` into GPT-2's pre-tokens.
pub fn pretokenize(text: &str) -> Pretokens<'_> {
    Pretokens { rest: text }
}

/// The end of the run of characters of class `class` that starts at byte `from` of `s`.
fn run_end(s: &str, from: usize, class_of_run: Class) -> usize {
    match s.get(from..) {
        Some(tail) => tail
            .char_indices()
            .find(|&(_, c)| class(c) != class_of_run)
            .map_or(s.len(), |(i, _)| from + i),
        None => s.len(),
    }
}

/// The length in bytes of the first piece of the non-empty `s`.
fn first_piece(s: &str) -> usize {
    let mut chars = s.chars();
    let Some(c) = chars.next() else { return 0 };
    if c == '\'' {
        if let Some(k) = CONTRACTIONS.iter().find(|k| s.starts_with(**k)) {
            return k.len();
        }
    }
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: an optional space, then a run of one class.
    let (start, head) = if c == ' ' { (1, chars.next()) } else { (0, Some(c)) };
    if let Some(head) = head {
        let k = class(head);
        if k != Class::Space {
            return run_end(s, start + head.len_utf8(), k);
        }
    }
    // `\s+(?!\S)` then `\s+`: `s` starts with whitespace.
    let end = run_end(s, 0, Class::Space);
    if end == s.len() {
        return end;
    }
    // A run followed by a non-space: all but its last character, unless that is all of it.
    let last = s.get(..end).and_then(|run| run.char_indices().next_back()).map_or(0, |(i, _)| i);
    if last > 0 {
        last
    } else {
        end
    }
}

impl<'t> Iterator for Pretokens<'t> {
    type Item = &'t str;
    fn next(&mut self) -> Option<&'t str> {
        if self.rest.is_empty() {
            return None;
        }
        let n = first_piece(self.rest);
        // `first_piece` returns a char boundary in 1..=len; fall back to the whole rest if not.
        let (piece, rest) = match self.rest.split_at_checked(n) {
            Some((p, r)) if !p.is_empty() => (p, r),
            _ => (self.rest, ""),
        };
        self.rest = rest;
        Some(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_table_agrees_with_unicode_categories_at_every_code_point() {
        use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
        let expected = |c: char| match c.general_category() {
            G::UppercaseLetter
            | G::LowercaseLetter
            | G::TitlecaseLetter
            | G::ModifierLetter
            | G::OtherLetter => Class::Letter,
            G::DecimalNumber | G::LetterNumber | G::OtherNumber => Class::Number,
            G::SpaceSeparator | G::LineSeparator | G::ParagraphSeparator => Class::Space,
            _ if matches!(c, '\t'..='\r' | '\u{85}') => Class::Space,
            _ => Class::Other,
        };
        for c in (0..=0x10_FFFF).filter_map(char::from_u32) {
            assert_eq!(class(c), expected(c), "U+{:04X}", c as u32);
        }
        assert_eq!(class('\u{85}'), Class::Space);
        assert_eq!(class('\u{1C}'), Class::Other, "Python's isspace, not the pattern's \\s");
        assert_eq!(class('\u{10FFFF}'), Class::Other);
    }

    fn pieces(s: &str) -> Vec<&str> {
        pretokenize(s).collect()
    }

    #[test]
    fn splits_words_with_their_leading_space() {
        assert_eq!(pieces("Hello world"), ["Hello", " world"]);
        assert_eq!(pieces("Hello, world!"), ["Hello", ",", " world", "!"]);
    }

    #[test]
    fn contractions_come_first_and_are_case_sensitive() {
        assert_eq!(pieces("it's"), ["it", "'s"]);
        assert_eq!(pieces("IT'S"), ["IT", "'", "S"]);
        assert_eq!(pieces("we'll'd"), ["we", "'ll", "'d"]);
        assert_eq!(pieces(" 's"), [" '", "s"]);
        assert_eq!(pieces("!!'s"), ["!!'", "s"]);
    }

    #[test]
    fn last_space_of_a_run_goes_with_the_next_word() {
        assert_eq!(pieces("a   b"), ["a", "  ", " b"]);
        assert_eq!(pieces("a \n b"), ["a", " \n", " b"]);
        assert_eq!(pieces("a\tb"), ["a", "\t", "b"]);
        assert_eq!(pieces("a  \tb"), ["a", "  ", "\t", "b"]);
        assert_eq!(pieces("word   "), ["word", "   "]);
        assert_eq!(pieces(" "), [" "]);
        assert_eq!(pieces("\n\n\n"), ["\n\n\n"]);
    }

    #[test]
    fn digits_letters_and_punctuation_are_separate_runs() {
        assert_eq!(pieces("abc123def 45"), ["abc", "123", "def", " 45"]);
        assert_eq!(pieces("x!!! ??"), ["x", "!!!", " ??"]);
    }

    #[test]
    fn classes_follow_unicode_categories() {
        assert_eq!(class('é'), Class::Letter);
        assert_eq!(class('日'), Class::Letter);
        assert_eq!(class('٣'), Class::Number);
        assert_eq!(class('½'), Class::Number);
        assert_eq!(class('\u{3000}'), Class::Space);
        assert_eq!(class('\u{85}'), Class::Space);
        assert_eq!(class('\u{1c}'), Class::Other);
        assert_eq!(class('\u{200b}'), Class::Other);
        assert_eq!(class('\u{301}'), Class::Other);
        assert_eq!(class('😀'), Class::Other);
    }

    #[test]
    fn pieces_cover_the_text() {
        let s = "Hé said: 'I'm 42!'\n\n  — ok?  ";
        assert_eq!(pieces(s).concat(), s);
    }
}
