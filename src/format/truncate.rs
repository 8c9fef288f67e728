//! Cutting string values so that a line fits its limit: each rendering of a line writes
//! strings whole, measures them, or cuts them to a shared cap.

use std::fmt;

use crate::json::{escape_pieces, write_escaped, write_json_str};

/// The largest cap such that the values, each cut to it, fit in `room` bytes together.
pub(super) fn share(lengths: &mut [usize], mut room: usize) -> usize {
    lengths.sort_unstable();
    let count = lengths.len();
    for (i, &length) in lengths.iter().enumerate() {
        let left = count - i;
        if length.saturating_mul(left) <= room {
            room -= length;
        } else {
            return room / left;
        }
    }
    usize::MAX
}

/// How string values are written in one rendering of a line.
pub(super) enum Strings<'a> {
    /// As they are.
    Whole,
    /// Counted, not written: each one's escaped length is noted, and only its quotes go on
    /// the line, so that what the line takes besides its strings is the line's length.
    Measure(&'a mut Vec<usize>),
    /// Cut to this many escaped bytes.
    Capped(usize),
}

/// A line being rendered.
pub(super) struct Line<'a> {
    pub(super) out: &'a mut String,
    pub(super) strings: Strings<'a>,
    /// Whether a value was cut.
    pub(super) cut: bool,
}

impl<'a> Line<'a> {
    pub(super) fn new(out: &'a mut String, strings: Strings<'a>) -> Self {
        Line {
            out,
            strings,
            cut: false,
        }
    }

    /// A JSON string of what `content` writes, escaped, and cut if this rendering cuts.
    pub(super) fn string(
        &mut self,
        content: impl FnOnce(&mut StringValue<'_>) -> fmt::Result,
    ) -> fmt::Result {
        let remaining = match self.strings {
            Strings::Capped(cap) => cap,
            _ => usize::MAX,
        };
        self.out.push('"');
        let mut value = StringValue {
            out: self.out,
            remaining,
            written: 0,
            cut: false,
            count_only: matches!(self.strings, Strings::Measure(_)),
        };
        content(&mut value)?;
        let (written, cut) = (value.written, value.cut);
        self.out.push('"');
        if let Strings::Measure(lengths) = &mut self.strings {
            lengths.push(written);
        }
        self.cut |= cut;
        Ok(())
    }

    /// A JSON string of `value`: as [`string`](Self::string) makes it, straight into the
    /// line when nothing is measured or cut.
    pub(super) fn str(&mut self, value: &str) -> fmt::Result {
        if matches!(self.strings, Strings::Whole) {
            write_json_str(self.out, value)
        } else {
            self.string(|w| fmt::Write::write_str(w, value))
        }
    }

    /// A span's stored JSON value, measured or cut as a string value would be.
    /// `plain` for numbers, booleans, NaN and infinities (spelled in quotes): never cut.
    pub(super) fn stored_value(&mut self, value: &str, plain: bool) {
        if plain {
            self.out.push_str(value);
            return;
        }
        let inner = value.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
        match (&mut self.strings, inner) {
            (Strings::Capped(cap), Some(inner)) => {
                let kept = cut_escaped(inner, *cap);
                self.cut |= kept.len() < inner.len();
                self.out.push('"');
                self.out.push_str(kept);
                self.out.push('"');
            }
            (Strings::Measure(lengths), Some(inner)) => {
                lengths.push(inner.len());
                self.out.push_str("\"\"");
            }
            _ => self.out.push_str(value),
        }
    }
}

/// The longest prefix of escaped JSON text within `cap` bytes that splits neither an escape
/// sequence nor a character.
pub(super) fn cut_escaped(escaped: &str, cap: usize) -> &str {
    let bytes = escaped.as_bytes();
    let mut end = 0;
    while end < bytes.len() {
        let step = match bytes[end] {
            b'\\' if bytes.get(end + 1) == Some(&b'u') => 6,
            b'\\' => 2,
            b if b < 0x80 => 1,
            b if b < 0xe0 => 2,
            b if b < 0xf0 => 3,
            _ => 4,
        };
        if end + step > cap || end + step > bytes.len() {
            break;
        }
        end += step;
    }
    &escaped[..end]
}

/// Escapes what is written into it onto the line, up to `remaining` escaped bytes; a cut
/// falls between characters and never inside an escape sequence.
pub(super) struct StringValue<'a> {
    pub(super) out: &'a mut String,
    pub(super) remaining: usize,
    pub(super) written: usize,
    pub(super) cut: bool,
    /// Count the escaped bytes without writing them.
    pub(super) count_only: bool,
}

impl fmt::Write for StringValue<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.cut {
            return Ok(());
        }
        if self.remaining == usize::MAX && !self.count_only {
            // Nothing to cut (a line rendered whole): the escaping every `&str` value and
            // span field goes through, rather than code of its own.
            let before = self.out.len();
            write_escaped(self.out, s)?;
            self.written += self.out.len() - before;
            return Ok(());
        }
        if self.count_only {
            return escape_pieces(s, |piece, _| {
                self.written += piece.len();
                Ok(())
            });
        }
        escape_pieces(s, |piece, raw| {
            if piece.len() <= self.remaining {
                self.out.push_str(piece);
                self.remaining -= piece.len();
                self.written += piece.len();
            } else {
                if raw {
                    let mut end = self.remaining;
                    while !piece.is_char_boundary(end) {
                        end -= 1;
                    }
                    self.out.push_str(&piece[..end]);
                    self.written += end;
                }
                self.remaining = 0;
                self.cut = true;
            }
            Ok(())
        })
    }
}
