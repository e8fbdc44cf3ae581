//! Lines from a byte stream into a fixed buffer.
//!
//! A line ends at `\n`, `\r` or `\r\n` (terminals send `\r` for Enter; files and pipes `\n`). A
//! line longer than the buffer is not cut: the reader remembers that it overflowed, drops every
//! byte up to the line's end, and reports [`Input::TooLong`] once, so that the tail of a long line
//! is never taken for a prompt of its own.

use embedded_io::Read;

/// What [`LineReader::read_line`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input<'a> {
    /// One line, without its end (not yet checked to be UTF-8).
    Line(&'a [u8]),
    /// A line longer than the buffer; all of it has been read and discarded.
    TooLong {
        /// The buffer's capacity in bytes.
        capacity: usize,
    },
    /// The stream ended (a test's input, a closed pipe); a device's console never ends.
    End,
}

/// Reads lines into a caller-provided buffer.
pub struct LineReader<'b> {
    buf: &'b mut [u8],
    /// The last byte read was `\r`: a `\n` right after it ends no new line.
    after_cr: bool,
}

impl<'b> LineReader<'b> {
    /// A reader whose lines hold at most `buf.len()` bytes.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, after_cr: false }
    }

    /// The longest line, in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Reads the next line. Bytes are read one at a time, so nothing after the line's end is
    /// taken from the stream. At the end of the stream a last line without its end still counts.
    pub fn read_line<R: Read>(&mut self, r: &mut R) -> Result<Input<'_>, R::Error> {
        let mut len = 0usize;
        let mut overflow = false;
        let mut any = false;
        loop {
            let mut byte = [0u8; 1];
            if r.read(&mut byte)? == 0 {
                return Ok(if overflow {
                    Input::TooLong { capacity: self.buf.len() }
                } else if any {
                    Input::Line(self.buf.get(..len).unwrap_or(&[]))
                } else {
                    Input::End
                });
            }
            let [b] = byte;
            let after_cr = core::mem::replace(&mut self.after_cr, b == b'\r');
            if b == b'\n' && after_cr {
                continue;
            }
            if b == b'\n' || b == b'\r' {
                return Ok(if overflow {
                    Input::TooLong { capacity: self.buf.len() }
                } else {
                    Input::Line(self.buf.get(..len).unwrap_or(&[]))
                });
            }
            any = true;
            if overflow {
                continue;
            }
            match self.buf.get_mut(len) {
                Some(slot) => {
                    *slot = b;
                    len += 1;
                }
                None => overflow = true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input of `bytes` read with a buffer of `capacity`, lines as strings.
    fn lines(bytes: &[u8], capacity: usize) -> Vec<String> {
        let mut buf = vec![0u8; capacity];
        let mut reader = LineReader::new(&mut buf);
        let mut input = bytes;
        let mut out = Vec::new();
        loop {
            match reader.read_line(&mut input).unwrap() {
                Input::Line(l) => out.push(String::from_utf8_lossy(l).into_owned()),
                Input::TooLong { capacity } => out.push(format!("<too long: {capacity}>")),
                Input::End => return out,
            }
        }
    }

    #[test]
    fn splits_on_lf_cr_and_crlf() {
        assert_eq!(lines(b"a\nb\rc\r\nd", 8), ["a", "b", "c", "d"]);
        assert_eq!(lines(b"\n\r\n\r", 8), ["", "", ""]);
    }

    #[test]
    fn a_line_that_fills_the_buffer_exactly_is_kept() {
        assert_eq!(lines(b"abcd\nxy\n", 4), ["abcd", "xy"]);
    }

    #[test]
    fn an_overlong_line_is_reported_once_and_its_tail_discarded() {
        assert_eq!(lines(b"abcdefghij\nok\n", 4), ["<too long: 4>", "ok"]);
        assert_eq!(lines(b"abcdefghij", 4), ["<too long: 4>"]);
    }

    #[test]
    fn end_of_stream_after_a_line_end_yields_no_empty_line() {
        assert_eq!(lines(b"a\n", 4), ["a"]);
        assert!(lines(b"", 4).is_empty());
    }

    #[test]
    fn a_zero_byte_buffer_reports_every_nonempty_line_too_long() {
        assert_eq!(lines(b"a\n\n", 0), ["<too long: 0>", ""]);
    }
}
