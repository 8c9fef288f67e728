//! JSON writing shared by the line formatter and the EMF writer: string escaping, numbers,
//! error chains.

use std::borrow::Cow;
use std::fmt;

/// A finite float in the shortest form that reads back as the same value, with an exponent
/// for magnitudes from 10^21 or under 10^-6 (as `serde_json` and `ryu` write them), so that
/// every mainstream parser reads it; NaN and infinities as the strings `"NaN"`, `"inf"` and
/// `"-inf"`, since JSON has no such numbers.
pub(crate) fn write_f64(w: &mut impl fmt::Write, value: f64) -> fmt::Result {
    match thousandths(value) {
        Some(thousandths) => write_thousandths(w, thousandths),
        None => write_shortest(w, value),
    }
}

/// [`write_f64`] of any float, by `zmij`.
fn write_shortest(w: &mut impl fmt::Write, value: f64) -> fmt::Result {
    if !value.is_finite() {
        return write!(w, "\"{value}\"");
    }
    // `zmij` finds the shortest digits at a fraction of what `{value}` costs; the form is
    // `{value}`'s: `zmij` writes `1.0`, `1e+16` and `1e-6` where it writes `1`,
    // `10000000000000000` and `0.000001`.
    let mut buffer = zmij::Buffer::new();
    let text = buffer.format_finite(value);
    let Some((mantissa, exponent)) = text.split_once('e') else {
        // From 1e-5 to 1e16: the same form, but for the `.0` of whole numbers.
        return w.write_str(text.strip_suffix(".0").unwrap_or(text));
    };
    let exponent = exponent.trim_start_matches('+');
    let magnitude = value.abs();
    if !(1e-6..1e21).contains(&magnitude) {
        // `{value:e}`'s form: `1.5e-7`, `1e21`.
        w.write_str(mantissa)?;
        w.write_char('e')?;
        return w.write_str(exponent);
    }
    // From 1e16 to 1e21, and from 1e-6 to 1e-5: `d.ddd` with its point moved.
    let exponent: i32 = exponent.parse().map_err(|_| fmt::Error)?;
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(mantissa) => ("-", mantissa),
        None => ("", mantissa),
    };
    let (first, rest) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    w.write_str(sign)?;
    let shift = exponent.unsigned_abs() as usize;
    if exponent >= 0 {
        w.write_str(first)?;
        if rest.len() > shift {
            w.write_str(&rest[..shift])?;
            w.write_char('.')?;
            w.write_str(&rest[shift..])
        } else {
            w.write_str(rest)?;
            zeros(w, shift - rest.len())
        }
    } else {
        w.write_str("0.")?;
        zeros(w, shift - 1)?;
        w.write_str(first)?;
        w.write_str(rest)
    }
}

/// `count` zeros.
fn zeros(w: &mut impl fmt::Write, mut count: usize) -> fmt::Result {
    const ZEROS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
    while count > 0 {
        let run = count.min(ZEROS.len());
        w.write_str(&ZEROS[..run])?;
        count -= run;
    }
    Ok(())
}

/// `value` in thousandths, when it is a positive number of thousandths under 10^12 (a
/// latency in milliseconds to the microsecond): the double nearest to `k / 1000` for an
/// integer `k`. Its shortest form is then `k / 1000`'s decimals, with no zero at the end: any
/// other decimal of as many digits or fewer is at least 0.001 away, where doubles under
/// 10^12 are far closer together than that.
fn thousandths(value: f64) -> Option<u64> {
    if !(0.001..1e12).contains(&value) {
        return None;
    }
    // Truncating adds a half: rounds, without a call to `round`.
    let thousandths = (value * 1e3 + 0.5) as u64;
    (thousandths as f64 / 1e3 == value).then_some(thousandths)
}

/// `thousandths / 1000` in decimal, as [`write_f64`] writes it (`12`, `0.5`, `1.234`).
fn write_thousandths(w: &mut impl fmt::Write, thousandths: u64) -> fmt::Result {
    let (whole, mut fraction) = (thousandths / 1000, thousandths % 1000);
    write_integer(w, whole)?;
    if fraction == 0 {
        return Ok(());
    }
    let mut digits = [b'.', b'0', b'0', b'0'];
    let mut len = 4;
    for at in (1..4).rev() {
        digits[at] = b'0' + (fraction % 10) as u8;
        fraction /= 10;
    }
    while digits[len - 1] == b'0' {
        len -= 1;
    }
    digits[..len]
        .iter()
        .try_for_each(|&digit| w.write_char(char::from(digit)))
}

/// An integer in decimal (by `itoa`: a fifth of what `write!` costs).
pub(crate) fn write_integer(w: &mut impl fmt::Write, value: impl itoa::Integer) -> fmt::Result {
    w.write_str(itoa::Buffer::new().format(value))
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

/// [`is_clean`] for eight bytes, as one word (where the byte-wise form does not vectorize
/// well): the zero-byte test of each byte it must not have, and the less-than test for the
/// controls, each exact as a whole (a borrow can only flag a byte above one flagged already).
fn is_clean_word(bytes: &[u8; 8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let word = u64::from_ne_bytes(*bytes);
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let flagged = word.wrapping_sub(ONES * 0x20) & !word & HIGHS
        | zero_byte(word ^ (ONES * u64::from(b'"')))
        | zero_byte(word ^ (ONES * u64::from(b'\\')))
        | zero_byte(word ^ (ONES * 0x7f))
        | zero_byte(word ^ (ONES * 0xc2))
        | zero_byte(word ^ (ONES * 0xe2));
    flagged == 0
}

/// Whether `s` goes into JSON as it is: no byte of it needs a look (short strings, names).
pub(crate) fn is_plain(s: &str) -> bool {
    let bytes = s.as_bytes();
    let looked_at = clean_run(bytes, 0);
    !bytes[looked_at..]
        .iter()
        .any(|&b| NEEDS_ESCAPE[usize::from(b)])
}

/// Where, from `from`, the first byte is that may need a look: clean runs go by 32 bytes at
/// a time, then by 8 (names, messages, targets), and fewer than eight left go at once as the
/// last eight bytes, over some seen already. The bytes from there are looked at one by one.
/// Inlined: called out of line it cost 80 instructions a request of the axum bench.
#[inline(always)]
fn clean_run(bytes: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(chunk) = bytes.get(i..).and_then(<[u8]>::first_chunk::<32>) {
        if !is_clean(chunk) {
            return i;
        }
        i += 32;
    }
    while let Some(word) = bytes.get(i..).and_then(<[u8]>::first_chunk::<8>) {
        if !is_clean_word(word) {
            return i;
        }
        i += 8;
    }
    if bytes.len() - i < 8 && bytes.last_chunk::<8>().is_some_and(is_clean_word) {
        return bytes.len();
    }
    i
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
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` in lowercase hex digits, into `digits` (twice as long), eight bytes at a time.
#[cfg(feature = "opentelemetry")]
pub(crate) fn hex(bytes: &[u8], digits: &mut [u8]) {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    let mut pairs = digits.chunks_exact_mut(2);
    for word in words {
        let word = u64::from_be_bytes(word.try_into().unwrap_or_default());
        // The word's digits first: `zip` then takes no pair past them.
        for (two, pair) in hex_word(word).chunks_exact(2).zip(&mut pairs) {
            pair.copy_from_slice(two);
        }
    }
    for (byte, pair) in rest.iter().zip(pairs) {
        pair[0] = HEX_DIGITS[usize::from(byte >> 4)];
        pair[1] = HEX_DIGITS[usize::from(byte & 0xf)];
    }
}

/// `word`'s sixteen hex digits, most significant first: each nibble spread to a byte of its
/// own, then made a digit, all at once.
#[cfg(any(feature = "axum", feature = "opentelemetry"))]
pub(crate) fn hex_word(word: u64) -> [u8; 16] {
    const ONES: u128 = u128::MAX / 0xff;
    let mut x = u128::from(word);
    x = (x | x << 32) & 0x0000_0000_ffff_ffff_0000_0000_ffff_ffff;
    x = (x | x << 16) & 0x0000_ffff_0000_ffff_0000_ffff_0000_ffff;
    x = (x | x << 8) & 0x00ff_00ff_00ff_00ff_00ff_00ff_00ff_00ff;
    x = (x | x << 4) & 0x0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f_0f0f;
    // 1 in the bytes of 10 to 15, which become `a` to `f`.
    let letters = ((x + ONES * 6) >> 4) & ONES;
    (x + ONES * u128::from(b'0') + letters * u128::from(b'a' - b'0' - 10)).to_be_bytes()
}

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
        i = clean_run(bytes, i);
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
    fn the_word_scan_misses_no_byte_that_needs_escaping() {
        for special in 0u8..=255 {
            for plain in [b'a', b'!', 0x7e, 0x80, 0xff] {
                for at in 0..8 {
                    let mut word = [plain; 8];
                    word[at] = special;
                    assert_eq!(
                        is_clean_word(&word),
                        !NEEDS_ESCAPE[usize::from(special)] && !NEEDS_ESCAPE[usize::from(plain)],
                        "{special:#x} at {at} among {plain:#x}"
                    );
                }
            }
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
        // Strings with a special at every offset, long and short, escape as byte by byte
        // would: past the 32-byte runs, the 8-byte runs, and the bytes left over.
        for len in [1, 7, 8, 9, 15, 16, 17, 31, 40, 47] {
            for at in 0..len {
                let mut s = "x".repeat(len);
                s.replace_range(at..at + 1, "\n");
                assert_eq!(escaped(&s).matches("\\n").count(), 1, "{len} {at}");
                assert!(!is_plain(&s), "{len} {at}");
                s.replace_range(at..at + 1, "\"");
                assert_eq!(escaped(&s).matches("\\\"").count(), 1, "{len} {at}");
            }
            assert!(is_plain(&"x".repeat(len)));
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

    /// Thousandths (latencies) are written without `zmij`, as `zmij` writes them: every
    /// number of them to two million, at random to 10^15, and their neighbours.
    #[test]
    fn thousandths_as_zmij_writes_them() {
        let (mut fast, mut slow) = (String::new(), String::new());
        let mut check = |v: f64| {
            fast.clear();
            slow.clear();
            write_f64(&mut fast, v).unwrap();
            write_shortest(&mut slow, v).unwrap();
            assert_eq!(fast, slow, "{v:?}");
        };
        let mut taken = 0;
        for k in 0..2_000_000u32 {
            let v = f64::from(k) / 1e3;
            taken += usize::from(thousandths(v).is_some());
            check(v);
        }
        assert_eq!(taken, 1_999_999, "all but 0 by the short path");
        for _ in 0..300_000 {
            let k = crate::time::random_u64() % 1_000_000_000_000_000;
            let v = k as f64 / 1e3;
            check(v);
            check(f64::from_bits(v.to_bits() + 1));
            check(f64::from_bits(v.to_bits().saturating_sub(1)));
            check(v * 10.0);
            check(v / 1e7);
        }
    }

    #[test]
    #[cfg(feature = "opentelemetry")]
    fn hex_digits_as_format_writes_them() {
        for len in 0..=24 {
            let bytes: Vec<u8> = (0..len).map(|_| crate::time::random_u64() as u8).collect();
            let mut digits = vec![0; len * 2];
            hex(&bytes, &mut digits);
            let by_format: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(String::from_utf8(digits).unwrap(), by_format);
            // Room for more digits: the rest stays as it was.
            let mut wide = vec![b'-'; len * 2 + 5];
            hex(&bytes, &mut wide);
            assert_eq!(wide[..len * 2], *by_format.as_bytes());
            assert!(wide[len * 2..].iter().all(|&b| b == b'-'));
        }
        for word in [0, u64::MAX, 0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210] {
            assert_eq!(hex_word(word), *format!("{word:016x}").as_bytes());
        }
        for _ in 0..100_000 {
            let word = crate::time::random_u64();
            assert_eq!(hex_word(word), *format!("{word:016x}").as_bytes());
        }
    }

    /// What `write_f64` wrote when `std`'s formatting did the work.
    fn written_by_std(value: f64) -> String {
        let magnitude = value.abs();
        if magnitude >= 1e21 || (magnitude != 0.0 && magnitude < 1e-6) {
            format!("{value:e}")
        } else {
            format!("{value}")
        }
    }

    /// `std` and `zmij` find the shortest digits that read back as the value; where several
    /// do (17 digits), they may pick a different last digit. The rest is the same.
    #[test]
    fn floats_in_std_form_shortest_and_read_back() {
        let mut out = String::new();
        let mut last_digit_differs = 0;
        let mut check = |v: f64| {
            if v.is_finite() {
                out.clear();
                write_f64(&mut out, v).unwrap();
                let by_std = written_by_std(v);
                assert_eq!(
                    out.parse::<f64>().unwrap().to_bits(),
                    v.to_bits(),
                    "{v:?}: {out}"
                );
                assert_eq!(out.len(), by_std.len(), "{v:?}: {out} against {by_std}");
                assert_eq!(out.contains('e'), by_std.contains('e'), "{v:?}");
                if out != by_std {
                    let common = out.len() - 1;
                    assert_eq!(out[..common], by_std[..common], "{v:?}");
                    last_digit_differs += 1;
                }
            }
        };
        // Every bit pattern's neighbourhood at random, the edges of each form, integers,
        // and short decimals.
        for _ in 0..200_000 {
            check(f64::from_bits(crate::time::random_u64()));
        }
        for edge in [
            1e21,
            1e-6,
            1e16,
            1e15,
            1e-5,
            0.0,
            1.0,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            let mut v = edge;
            for _ in 0..50 {
                check(v);
                check(-v);
                v = f64::from_bits(v.to_bits().wrapping_add(1));
            }
            let mut v = edge;
            for _ in 0..50 {
                check(v);
                v = f64::from_bits(v.to_bits().wrapping_sub(1));
            }
        }
        for i in 0..100_000u32 {
            check(f64::from(i));
            check(f64::from(i) / 1000.0);
            check(f64::from(i) * 1e12);
        }
        check(5e-324);
        check(-0.0);
        // The last digit is rarely another candidate's.
        assert!(last_digit_differs < 1000, "{last_digit_differs}");
    }

    #[test]
    fn plain_strings() {
        for plain in ["order_id", "http.request.method", "é", "日本", ""] {
            assert!(is_plain(plain), "{plain:?}");
        }
        // A byte that starts U+2028 starts `€` too: looked at, then written as it is.
        assert!(!is_plain("€"));
        assert_eq!(escaped("€"), "€");
        for not in [
            "a\nb",
            "q\"",
            "b\\",
            "\u{85}",
            "\u{7f}",
            "long_name_\u{1f}",
            "\0",
        ] {
            assert!(!is_plain(not), "{not:?}");
        }
        // Each byte at each place in a word, and in the bytes after the last word.
        for byte in 0u8..0x80 {
            for len in [8, 11] {
                for at in 0..len {
                    let mut name = vec![b'a'; len];
                    name[at] = byte;
                    let name = std::str::from_utf8(&name).unwrap();
                    let plain = !NEEDS_ESCAPE[usize::from(byte)];
                    assert_eq!(is_plain(name), plain, "{byte:#x} at {at} of {len}");
                }
            }
        }
    }
}
