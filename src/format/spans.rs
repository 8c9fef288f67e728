//! The span-field store: each span's fields rendered once, when the span is created or
//! recorded, in a form that events copy whole or read back without parsing.

use std::cell::Cell;
use std::cell::RefCell;
use std::fmt;

use tracing::field::Field;
use tracing::span::Record;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

use super::truncate::{Line, StringValue, Strings};
use super::{ValueSink, Values, may_be_reserved, name_bit};
use crate::json::write_escaped;

/// A span's fields are stored as a fixed header, then three sections:
///
/// - header: `'R'` or `'-'`, then 16 hex digits, then the lengths of the fragment and of the
///   keys, 8 hex digits each ([`HEADER`] bytes in all). `'R'` marks a span with a field name
///   that some configuration reserves; the 16 digits are the [`name_bit`]s of its keys, so
///   that most events rule out a clash without comparing a single name;
/// - the fragment: the fields as they go on a line (`,"k":v,…`), copied whole when no name
///   clashes;
/// - the keys: each escaped key followed by `FIELD_END`, for the keys already on a line;
/// - the entries: `<escaped key>` `KEY_END` `<JSON value>` `FIELD_END`, for the line where a
///   name clashes; a value that is not a string starts with `PLAIN`.
///
/// Reading it back is a slice of each section: no scan, no parse. None of the separators can
/// occur in escaped JSON.
pub(super) const HEADER: usize = 1 + 16 + 8 + 8;
pub(super) const KEY_END: char = '\u{1f}';
/// Marks an entry's value that is not a string (a number, a boolean, a NaN or infinity
/// spelled in quotes): never cut when a line is cut to its limit. In the entries only.
pub(super) const PLAIN: char = '\u{1c}';
pub(super) const FIELD_END: char = '\u{1e}';

/// The field formatter for spans: stores each span's fields as escaped key and JSON value
/// pairs, ready to copy into every event inside the span. Use it with [`EcsFormat`](super::EcsFormat).
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanFields {
    _private: (),
}

thread_local! {
    /// Scratch for the entries being recorded and the store being built: spans are created
    /// and recorded often, and reusing these keeps it to the store's own allocation.
    static SCRATCH: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
}

/// Runs `f` with two empty scratch strings (fresh ones when a `Debug` impl re-enters).
fn with_scratch<R>(f: impl FnOnce(&mut String, &mut String) -> R) -> R {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut pair) => {
            let (entries, built) = &mut *pair;
            entries.clear();
            built.clear();
            f(entries, built)
        }
        Err(_) => f(&mut String::new(), &mut String::new()),
    })
}

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        with_scratch(|entries, built| {
            let mut visitor = Values(SpanVisitor::new(entries));
            fields.record(&mut visitor);
            visitor.0.result?;
            let reserved = visitor.0.reserved;
            build(built, entries, reserved);
            writer.write_str(built)
        })
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        // `span.record`: the new values replace the old ones of the same name.
        with_scratch(|added, merged| {
            let mut visitor = Values(SpanVisitor::new(added));
            fields.record(&mut visitor);
            visitor.0.result?;
            let old = StoredFields::parse(&current.fields);
            // Kept keys keep their mark; a replaced one may leave it set: only a cost.
            let reserved = visitor.0.reserved || old.maybe_reserved;
            for (key, value) in old.entries() {
                let bit = name_bit(key);
                if visitor.0.seen & bit == 0 || !visitor.0.has(bit, key) {
                    push_entry(merged, key, value);
                }
            }
            merged.push_str(visitor.0.entries);
            // Built into the scratch, then copied: the store keeps its own capacity.
            let entries = std::mem::take(merged);
            build(merged, &entries, reserved);
            current.fields.clear();
            current.fields.push_str(merged);
            *merged = entries;
            Ok(())
        })
    }
}

fn push_entry(entries: &mut String, key: &str, value: &str) {
    entries.push_str(key);
    entries.push(KEY_END);
    entries.push_str(value);
    entries.push(FIELD_END);
}

/// Whether `entries` has an entry of `key`.
fn has_key(entries: &str, key: &str) -> bool {
    entries
        .split(FIELD_END)
        .filter_map(|entry| entry.split_once(KEY_END))
        .any(|(k, _)| k == key)
}

/// The stored form of `entries` (`<key>` `KEY_END` `<value>` `FIELD_END`, …), into `out`;
/// `reserved` when some configuration reserves one of the keys.
fn build(out: &mut String, entries: &str, reserved: bool) {
    let pairs = || {
        entries
            .split_terminator(FIELD_END)
            .filter_map(|entry| entry.split_once(KEY_END))
    };
    out.reserve(HEADER + 2 * entries.len() + 8);
    // The header's numbers are known once the fragment is written: filled in after it.
    let header_at = out.len();
    if let Ok(placeholder) = std::str::from_utf8(&PLACEHOLDER) {
        out.push_str(placeholder);
    }
    let (mut mask, mut keys_len) = (0u64, 0usize);
    let fragment_at = out.len();
    for (key, value) in pairs() {
        let value = value.strip_prefix(PLAIN).unwrap_or(value);
        mask |= name_bit(key);
        keys_len += key.len() + 1;
        out.push_str(",\"");
        out.push_str(key);
        out.push_str("\":");
        out.push_str(value);
    }
    let fragment_len = out.len() - fragment_at;
    for (key, _) in pairs() {
        out.push_str(key);
        out.push(FIELD_END);
    }
    out.push_str(entries);
    let mut header = [b'-'; HEADER];
    if reserved {
        header[0] = b'R';
    }
    put_hex(&mut header[1..17], mask);
    put_hex(&mut header[17..25], fragment_len as u64);
    put_hex(&mut header[25..HEADER], keys_len as u64);
    // Only ASCII was put in it.
    if let Ok(header) = std::str::from_utf8(&header) {
        out.replace_range(header_at..header_at + HEADER, header);
    }
}

/// Where the header goes until its numbers are known.
const PLACEHOLDER: [u8; HEADER] = [b'-'; HEADER];

/// The value of lowercase hex digits (as [`put_hex`] writes them); `None` for anything else.
fn parse_hex(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &d| {
        let nibble = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some(value << 4 | u64::from(nibble))
    })
}

/// `value` in lowercase hex, filling `digits`.
fn put_hex(digits: &mut [u8], mut value: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for digit in digits.iter_mut().rev() {
        *digit = HEX[(value & 0xf) as usize];
        value >>= 4;
    }
}

/// A span's stored fields, read back (see [`HEADER`] for the layout).
pub(super) struct StoredFields<'a> {
    pub(super) fragment: &'a str,
    pub(super) maybe_reserved: bool,
    pub(super) mask: u64,
    /// The keys, each followed by `FIELD_END`.
    pub(super) keys: &'a str,
    entries: &'a str,
}

impl<'a> StoredFields<'a> {
    pub(super) fn parse(stored: &'a str) -> Self {
        let hex = |range: std::ops::Range<usize>| stored.as_bytes().get(range).and_then(parse_hex);
        let header = (hex(1..17), hex(17..25), hex(25..HEADER));
        let (Some(mask), Some(fragment_len), Some(keys_len)) = header else {
            // Not a store of ours: nothing to copy, everything to compare.
            return StoredFields {
                fragment: "",
                maybe_reserved: true,
                mask: u64::MAX,
                keys: "",
                entries: "",
            };
        };
        let fragment_end = HEADER + fragment_len as usize;
        let keys_end = fragment_end + keys_len as usize;
        StoredFields {
            fragment: stored.get(HEADER..fragment_end).unwrap_or(""),
            maybe_reserved: stored.starts_with('R'),
            mask,
            keys: stored.get(fragment_end..keys_end).unwrap_or(""),
            entries: stored.get(keys_end..).unwrap_or(""),
        }
    }

    /// `(escaped key, JSON value)` pairs.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        self.entries
            .split(FIELD_END)
            .filter_map(|field| field.split_once(KEY_END))
    }
}

/// Records span fields as entries (see [`HEADER`]), into a scratch string. The first field
/// of a name wins; a field without a value is never visited, so it is as if absent.
struct SpanVisitor<'s> {
    entries: &'s mut String,
    /// The name bits of the keys recorded so far: most names need no comparison.
    seen: u64,
    /// Each recorded key's bit and place in `entries` (a callsite has at most 32 fields).
    keys: [(u64, usize, usize); 32],
    count: usize,
    /// Whether some configuration reserves one of the names.
    reserved: bool,
    result: fmt::Result,
}

/// [`may_be_reserved`] of a callsite's field name, remembered per thread by the name's
/// address: spans of a callsite are made again and again with the same names.
fn name_may_be_reserved(name: &'static str) -> bool {
    const SLOTS: usize = 64;
    thread_local! {
        static CACHE: [Cell<(usize, bool)>; SLOTS] = const { [const { Cell::new((0, false)) }; SLOTS] };
    }
    let key = name.as_ptr() as usize ^ name.len().rotate_left(48);
    let slot = key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (usize::BITS - 6);
    let (cached, reserved) = CACHE.with(|cache| cache[slot].get());
    if cached == key && key != 0 {
        return reserved;
    }
    let mut escaped = String::new();
    let reserved = write_escaped(&mut escaped, name).is_ok() && may_be_reserved(&escaped);
    CACHE.with(|cache| cache[slot].set((key, reserved)));
    reserved
}

impl<'s> SpanVisitor<'s> {
    fn new(entries: &'s mut String) -> Self {
        SpanVisitor {
            entries,
            seen: 0,
            keys: [(0, 0, 0); 32],
            count: 0,
            reserved: false,
            result: Ok(()),
        }
    }

    /// Whether a key recorded so far is `key`, whose bit is `bit`.
    fn has(&self, bit: u64, key: &str) -> bool {
        if self.count == self.keys.len() {
            // More fields than a callsite has: look through the text.
            return has_key(self.entries, key);
        }
        self.keys[..self.count]
            .iter()
            .any(|&(b, start, end)| b == bit && &self.entries[start..end] == key)
    }

    fn field(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let start = self.entries.len();
        self.result = write_escaped(self.entries, field.name());
        let end = self.entries.len();
        let bit = name_bit(&self.entries[start..]);
        if self.seen & bit != 0 && self.has(bit, &self.entries[start..end]) {
            self.entries.truncate(start);
            return;
        }
        self.seen |= bit;
        if let Some(slot) = self.keys.get_mut(self.count) {
            *slot = (bit, start, end);
            self.count += 1;
        }
        self.reserved |= name_may_be_reserved(field.name());
        self.entries.push(KEY_END);
        self.result = self.result.and_then(|()| write(self.entries));
        self.entries.push(FIELD_END);
    }
}

impl ValueSink for SpanVisitor<'_> {
    fn plain(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result) {
        self.field(field, |w| {
            w.push(PLAIN);
            write(w)
        });
    }

    fn string(&mut self, field: &Field, content: impl FnOnce(&mut StringValue<'_>) -> fmt::Result) {
        self.field(field, |w| Line::new(w, Strings::Whole).string(content));
    }
}

/// The keys already on a line, for the spans further out: kept per thread, reused.
pub(super) struct LineKeys<'a> {
    keys: &'a mut String,
    mask: u64,
}

impl<'a> LineKeys<'a> {
    pub(super) fn new(keys: &'a mut String) -> Self {
        keys.clear();
        LineKeys { keys, mask: 0 }
    }

    /// Adds a span's keys (its `keys` section) and their bits.
    pub(super) fn add(&mut self, stored: &StoredFields<'_>) {
        self.keys.push_str(stored.keys);
        self.mask |= stored.mask;
    }

    pub(super) fn mask(&self) -> u64 {
        self.mask
    }

    /// Whether `key` (escaped) is on the line already.
    pub(super) fn contains(&self, key: &str) -> bool {
        self.mask & name_bit(key) != 0 && self.keys.split_terminator(FIELD_END).any(|k| k == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_fields_round_trip() {
        let mut entries = String::new();
        push_entry(&mut entries, "a", "1");
        push_entry(&mut entries, "b\\n", "\"x\"");
        let mut stored = String::new();
        build(&mut stored, &entries, false);
        let parsed = StoredFields::parse(&stored);
        assert_eq!(parsed.fragment, r#","a":1,"b\n":"x""#);
        assert_eq!(parsed.keys, "a\u{1e}b\\n\u{1e}");
        assert_eq!(parsed.mask, name_bit("a") | name_bit("b\\n"));
        assert!(!parsed.maybe_reserved);
        assert_eq!(
            parsed.entries().collect::<Vec<_>>(),
            [("a", "1"), ("b\\n", "\"x\"")]
        );
        let mut reserved_entries = String::new();
        push_entry(&mut reserved_entries, "container.id", "1");
        let mut reserved = String::new();
        build(&mut reserved, &reserved_entries, true);
        assert!(StoredFields::parse(&reserved).maybe_reserved);
        assert!(name_may_be_reserved("container.id") && name_may_be_reserved("fields.x"));
        assert!(!name_may_be_reserved("order_id"));
        // Anything else reads as "compare everything".
        let foreign = StoredFields::parse("a=1");
        assert_eq!((foreign.fragment, foreign.mask), ("", u64::MAX));
    }
}
