//! Golden `.out` files: what a firmware run must print, line by line.
//!
//! A golden line matches an output line when they are equal, where each `[..]` in the golden line
//! stands for any text (as in cargo's own test snapshots): use it for numbers that depend on the
//! compiler, such as tick counts and stack depths, so that a rustup laptop and a Debian CI box
//! agree. Blessing keeps each golden line that still matches and takes the new output otherwise.

/// Stands for any text within one golden line.
pub const WILDCARD: &str = "[..]";

/// Whether `actual` is an instance of the golden line `pattern`.
pub fn line_matches(pattern: &str, actual: &str) -> bool {
    let mut parts = pattern.split(WILDCARD);
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = actual.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The lines where `actual` departs from `golden`: (line number from 1, expected, actual), with
/// `None` for a line that is missing on one side. Empty when they match.
pub fn differences(golden: &str, actual: &str) -> Vec<(usize, Option<String>, Option<String>)> {
    let (g, a): (Vec<&str>, Vec<&str>) = (golden.lines().collect(), actual.lines().collect());
    (0..g.len().max(a.len()))
        .filter_map(|i| match (g.get(i), a.get(i)) {
            (Some(p), Some(l)) if line_matches(p, l) => None,
            (p, l) => Some((i + 1, p.map(|s| s.to_string()), l.map(|s| s.to_string()))),
        })
        .collect()
}

/// The new golden text for `actual`: golden lines that still match are kept (with their
/// wildcards), the others replaced.
pub fn bless(golden: &str, actual: &str) -> String {
    let g: Vec<&str> = golden.lines().collect();
    let mut out = String::new();
    for (i, line) in actual.lines().enumerate() {
        let keep = g.get(i).filter(|p| line_matches(p, line));
        out.push_str(keep.copied().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_stands_for_any_text_within_a_line() {
        assert!(line_matches(
            "INFO  stack: [..] of [..] bytes used",
            "INFO  stack: 280 of 4194280 bytes used"
        ));
        assert!(line_matches("ticks: [..]", "ticks: "));
        assert!(line_matches("[..]", "anything"));
        assert!(line_matches("a[..]b[..]c", "a1b2b3c"));
        assert!(!line_matches("stack: [..] bytes", "stack: 280 words"));
        assert!(!line_matches("exact", "exact and more"));
        assert!(!line_matches("ab[..]ba", "aba"));
    }

    #[test]
    fn differences_name_changed_and_missing_lines() {
        let golden = "one\ntwo [..]\nthree\n";
        assert!(differences(golden, "one\ntwo 2\nthree\n").is_empty());
        let diff = differences(golden, "one\nTWO\n");
        assert_eq!(diff.len(), 2);
        assert_eq!(diff[0], (2, Some("two [..]".into()), Some("TWO".into())));
        assert_eq!(diff[1], (3, Some("three".into()), None));
    }

    #[test]
    fn blessing_keeps_matching_wildcard_lines() {
        let golden = "ticks: [..]\nold line\n";
        assert_eq!(bless(golden, "ticks: 7\nnew line\nextra\n"), "ticks: [..]\nnew line\nextra\n");
    }
}
