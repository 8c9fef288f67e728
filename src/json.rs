//! JSON writing shared by the line formatter and the EMF writer: string escaping, numbers,
//! error chains.

use std::borrow::Cow;
use std::fmt;

/// A finite float in the shortest form that reads back as the same value, with an exponent
/// for magnitudes from 10^21 or under 10^-6 (as `serde_json` and `ryu` write them), so that
/// every mainstream parser reads it; NaN and infinities as the strings `"NaN"`, `"inf"` and
/// `"-inf"`, since JSON has no such numbers.
pub(crate) fn write_f64(w: &mut impl fmt::Write, value: f64) -> fmt::Result {
    let magnitude = value.abs();
    if !value.is_finite() {
        write!(w, "\"{value}\"")
    } else if magnitude >= 1e21 || (magnitude != 0.0 && magnitude < 1e-6) {
        write!(w, "{value:e}")
    } else {
        write!(w, "{value}")
    }
}

/// An integer in decimal.
pub(crate) fn write_integer(w: &mut impl fmt::Write, value: impl fmt::Display) -> fmt::Result {
    write!(w, "{value}")
}

/// The error's message, then each `source()`'s, separated by `": "`.
pub(crate) fn write_error_chain(
    w: &mut impl fmt::Write,
    error: &(dyn std::error::Error + 'static),
) -> fmt::Result {
    write!(w, "{error}")?;
    let mut source = error.source();
    while let Some(cause) = source {
        write!(w, ": {cause}")?;
        source = cause.source();
    }
    Ok(())
}

/// A quoted, escaped JSON string.
pub(crate) fn write_json_str(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    write_escaped(w, s)?;
    w.write_char('"')
}

/// Which bytes need escaping: `"`, `\`, control characters, 0xC2, which starts the C1 control
/// characters U+0080–U+009F, and 0xE2, which starts U+2028 and U+2029 (both looked at more
/// closely when met).
const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table[0xc2] = true;
    table[0xe2] = true;
    table
};

/// Whether none of the bytes needs a closer look: no byte below 0x20, `"`, `\\`, 0x7F, nor
/// 0xC2 or 0xE2 (which start the C1 controls and U+2028/U+2029). Written as one reduction
/// without early exit, which the compiler turns into vector compares.
fn is_clean(chunk: &[u8; 32]) -> bool {
    let flagged = chunk.iter().fold(0u8, |flagged, &b| {
        flagged
            | u8::from(b < 0x20)
            | u8::from(b == b'"')
            | u8::from(b == b'\\')
            | u8::from(b == 0x7f)
            | u8::from(b == 0xc2)
            | u8::from(b == 0xe2)
    });
    flagged == 0
}

/// Whether `s` goes into JSON as it is: no byte of it needs a look (short strings, names).
pub(crate) fn is_plain(s: &str) -> bool {
    !s.bytes().any(|b| NEEDS_ESCAPE[usize::from(b)])
}

/// The text of a JSON string's content as written between its quotes: `None` when it is
/// not valid JSON.
pub(crate) fn unescaped(content: &str) -> Option<Cow<'_, str>> {
    if !content.contains('\\') {
        return Some(Cow::Borrowed(content));
    }
    serde_json::from_str::<String>(&format!("\"{content}\""))
        .ok()
        .map(Cow::Owned)
}

/// The JSON escaping of `s`, without quotes.
pub(crate) fn write_escaped(w: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
    escape_pieces(s, |piece, _| w.write_str(piece))
}

/// Lowercase hex digits, by value.
pub(crate) const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `\u00XX` for the code point `XX` (a C0 or C1 control, or DEL).
fn unicode_escape(code: u8) -> [u8; 6] {
    [
        b'\\',
        b'u',
        b'0',
        b'0',
        HEX_DIGITS[usize::from(code >> 4)],
        HEX_DIGITS[usize::from(code & 0xf)],
    ]
}

/// Hands `s` to `emit` as escaped pieces: runs of characters that need no escaping
/// (`raw` true) and single escape sequences (`raw` false).
pub(crate) fn escape_pieces(
    s: &str,
    mut emit: impl FnMut(&str, bool) -> fmt::Result,
) -> fmt::Result {
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Clean runs go by 32 bytes at a time.
        while let Some(chunk) = bytes
            .get(i..i + 32)
            .and_then(|c| <&[u8; 32]>::try_from(c).ok())
        {
            if !is_clean(chunk) {
                break;
            }
            i += 32;
        }
        let Some(&b) = bytes.get(i) else {
            break;
        };
        if !NEEDS_ESCAPE[b as usize] {
            i += 1;
            continue;
        }
        let control;
        let (escape, len): (&str, usize) = match b {
            b'"' => ("\\\"", 1),
            b'\\' => ("\\\\", 1),
            b'\n' => ("\\n", 1),
            b'\r' => ("\\r", 1),
            b'\t' => ("\\t", 1),
            0x08 => ("\\b", 1),
            0x0c => ("\\f", 1),
            0xe2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xa8) => {
                ("\\u2028", 3)
            }
            0xe2 if bytes.get(i + 1) == Some(&0x80) && bytes.get(i + 2) == Some(&0xa9) => {
                ("\\u2029", 3)
            }
            0xe2 => {
                i += 1;
                continue;
            }
            // C1 controls (U+0085 NEL breaks lines for many readers, U+009B starts ANSI
            // sequences): U+00XX is 0xC2 0xXX.
            0xc2 if bytes.get(i + 1).is_some_and(|b| (0x80..=0x9f).contains(b)) => {
                control = unicode_escape(bytes[i + 1]);
                // Only ASCII was put in it.
                (std::str::from_utf8(&control).map_err(|_| fmt::Error)?, 2)
            }
            0xc2 => {
                i += 1;
                continue;
            }
            other => {
                control = unicode_escape(other);
                // Only ASCII was put in it.
                (std::str::from_utf8(&control).map_err(|_| fmt::Error)?, 1)
            }
        };
        if start < i {
            emit(&s[start..i], true)?;
        }
        emit(escape, false)?;
        i += len;
        start = i;
    }
    if start < bytes.len() {
        emit(&s[start..], true)?;
    }
    Ok(())
}

/// A JSON value with this crate's escaping (every control character, U+2028 and U+2029 too),
/// where `serde_json` would leave some raw.
pub(crate) fn write_value(w: &mut impl fmt::Write, value: &serde_json::Value) -> fmt::Result {
    use serde_json::Value;
    match value {
        Value::String(s) => write_json_str(w, s),
        Value::Array(items) => {
            w.write_char('[')?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                write_value(w, item)?;
            }
            w.write_char(']')
        }
        Value::Object(map) => {
            w.write_char('{')?;
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    w.write_char(',')?;
                }
                write_json_str(w, key)?;
                w.write_char(':')?;
                write_value(w, item)?;
            }
            w.write_char('}')
        }
        // Numbers, booleans and null print as JSON already.
        other => write!(w, "{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_display_writes_them() {
        let mut out = String::new();
        for value in [0, 7, -7, 10, 99, -100, i64::MAX, i64::MIN] {
            out.clear();
            write_integer(&mut out, value).unwrap();
            assert_eq!(out, value.to_string());
        }
        for value in [u64::MAX.into(), u128::MAX, 0] {
            out.clear();
            write_integer(&mut out, value).unwrap();
            assert_eq!(out, value.to_string());
        }
        out.clear();
        write_integer(&mut out, i128::MIN).unwrap();
        assert_eq!(out, i128::MIN.to_string());
    }

    fn escaped(s: &str) -> String {
        let mut out = String::new();
        write_escaped(&mut out, s).unwrap();
        out
    }

    #[test]
    fn escaping() {
        assert_eq!(escaped("plain"), "plain");
        assert_eq!(escaped("a\"b\\c"), "a\\\"b\\\\c");
        assert_eq!(escaped("l1\nl2\r\t\u{8}\u{c}"), "l1\\nl2\\r\\t\\b\\f");
        assert_eq!(
            escaped("\u{1b}[31mred\u{0}\u{7f}"),
            "\\u001b[31mred\\u0000\\u007f"
        );
        assert_eq!(escaped("a\u{2028}b\u{2029}c"), "a\\u2028b\\u2029c");
        // Other characters starting with 0xE2 pass through.
        assert_eq!(escaped("€ → ✓"), "€ → ✓");
        for s in ["x\u{2028}", "\"\n€\u{2029}\u{1}"] {
            let parsed: String = serde_json::from_str(&format!("\"{}\"", escaped(s))).unwrap();
            assert_eq!(parsed, s);
        }
    }

    #[test]
    fn the_chunk_scan_misses_no_byte_that_needs_escaping() {
        for special in 0u8..=255 {
            for at in 0..32 {
                let mut chunk = [b'a'; 32];
                chunk[at] = special;
                assert_eq!(
                    is_clean(&chunk),
                    !NEEDS_ESCAPE[usize::from(special)],
                    "{special:#x} at {at}"
                );
            }
        }
        // Long strings with specials at every offset escape as byte by byte would.
        for at in 0..40 {
            let mut s = "x".repeat(40);
            s.replace_range(at..at + 1, "\n");
            assert_eq!(escaped(&s).matches("\\n").count(), 1, "{at}");
        }
    }

    #[test]
    fn c1_controls_are_escaped_and_their_neighbours_are_not() {
        assert_eq!(
            escaped("a\u{85}b\u{9b}31m\u{80}\u{9f}"),
            "a\\u0085b\\u009b31m\\u0080\\u009f"
        );
        // Other characters starting with 0xC2 pass through.
        assert_eq!(escaped("\u{a0}©°"), "\u{a0}©°");
        let parsed: String = serde_json::from_str(&format!("\"{}\"", escaped("x\u{85}y"))).unwrap();
        assert_eq!(parsed, "x\u{85}y");
    }

    #[test]
    fn floats_in_a_form_every_parser_reads() {
        let written = |v: f64| {
            let mut out = String::new();
            write_f64(&mut out, v).unwrap();
            out
        };
        assert_eq!(written(f64::MAX), "1.7976931348623157e308");
        assert_eq!(written(-1e300), "-1e300");
        assert_eq!(written(1e21), "1e21");
        assert_eq!(written(1e20), "100000000000000000000");
        assert_eq!(written(1.5e-7), "1.5e-7");
        assert_eq!(written(f64::MIN_POSITIVE), "2.2250738585072014e-308");
        assert_eq!(written(0.1), "0.1");
        assert_eq!(written(0.0), "0");
        assert_eq!(written(-2.5), "-2.5");
        assert_eq!(written(f64::NAN), "\"NaN\"");
        assert_eq!(written(f64::NEG_INFINITY), "\"-inf\"");
        for v in [f64::MAX, f64::MIN, 1e-300, 123456.789, 5e-324, 1.0 / 3.0] {
            let back: f64 = serde_json::from_str(&written(v)).unwrap();
            assert_eq!(back, v, "{v:e}");
        }
    }

    #[test]
    fn plain_strings() {
        for plain in ["order_id", "é", "日本", ""] {
            assert!(is_plain(plain), "{plain:?}");
        }
        // A byte that starts U+2028 starts `€` too: looked at, then written as it is.
        assert!(!is_plain("€"));
        for not in ["a\nb", "q\"", "b\\", "\u{85}", "\u{7f}"] {
            assert!(!is_plain(not), "{not:?}");
        }
    }
}
