//! JSON writing shared by the line formatter and the EMF writer: string escaping, numbers,
//! error chains.

use std::fmt;

pub(crate) fn write_f64(w: &mut impl fmt::Write, value: f64) -> fmt::Result {
    if value.is_finite() {
        write!(w, "{value}")
    } else {
        // JSON has no NaN or infinity.
        write!(w, "\"{value}\"")
    }
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

/// Which bytes need escaping: `"`, `\`, control characters, and 0xE2, which starts U+2028
/// and U+2029 (looked at more closely when met).
pub(crate) const NEEDS_ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table[0xe2] = true;
    table
};

/// The JSON escaping of `s`, without quotes.
pub(crate) fn write_escaped(w: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
    escape_pieces(s, |piece, _| w.write_str(piece))
}

/// Hands `s` to `emit` as escaped pieces: runs of characters that need no escaping
/// (`raw` true) and single escape sequences (`raw` false).
pub(crate) fn escape_pieces(
    s: &str,
    mut emit: impl FnMut(&str, bool) -> fmt::Result,
) -> fmt::Result {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
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
            other => {
                control = [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(other >> 4)],
                    HEX[usize::from(other & 0xf)],
                ];
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

/// Whether `raw`, escaped, equals `escaped`: span keys are stored escaped, event field
/// names are raw. Field names rarely need escaping, so the fast path is a plain compare.
pub(crate) fn escaped_eq(raw: &str, escaped: &str) -> bool {
    if !raw.bytes().any(|b| NEEDS_ESCAPE[b as usize]) {
        return raw == escaped;
    }
    struct Compare<'a> {
        rest: &'a str,
        equal: bool,
    }
    impl fmt::Write for Compare<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            match self.rest.strip_prefix(s) {
                Some(rest) if self.equal => self.rest = rest,
                _ => self.equal = false,
            }
            Ok(())
        }
    }
    let mut compare = Compare {
        rest: escaped,
        equal: true,
    };
    let _ = write_escaped(&mut compare, raw);
    compare.equal && compare.rest.is_empty()
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
    fn escaped_comparison() {
        assert!(escaped_eq("plain", "plain"));
        assert!(!escaped_eq("plain", "plainer"));
        assert!(escaped_eq("a\nb", "a\\nb"));
        assert!(!escaped_eq("a\nb", "a\\nc"));
        assert!(!escaped_eq("a\nb", "a\\nbc"));
    }
}
