//! The span-field store: each span's fields rendered once, when the span is created, in a
//! form that events copy whole or read back without parsing, and that `span.record` changes
//! in place.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::ops::Range;

use tracing::field::Field;
use tracing::span::Record;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

use super::address_map::{AddressMap, FRONT, Front, per_thread};
use super::truncate::{Line, StringValue, Strings};
use super::{ValueSink, Values, may_be_reserved, name_bit, with_reused};
use crate::json::{HEX_DIGITS, NEEDS_ESCAPE, write_escaped};

/// A span's fields are stored as a fixed header, then three sections:
///
/// - header: `'R'` or `'-'`, then 16 hex digits, then the lengths of the keys and of the
///   table, 8 hex digits each ([`HEADER`] bytes in all). `'R'` marks a span with a field name
///   that some configuration reserves; the 16 digits are the [`name_bit`]s of its keys, so
///   that most events rule out a clash without comparing a single name;
/// - the keys: each escaped key followed by `FIELD_END`, for the keys already on a line;
/// - the table: for each field, in the same order, [`SLOT`] bytes: `PLAIN_VALUE` or
///   `STRING_VALUE`, then the length of its value in the fragment in 8 hex digits;
/// - the fragment, to the end: the fields as they go on a line (`,"k":v,…`), copied whole
///   when no name clashes.
///
/// With the keys, the table finds every value in the fragment without a scan of the values:
/// for the line where a name clashes, and for `span.record`, which replaces only the values
/// it records. A recorded value changes its slot and moves only the fragment after it; a
/// recorded new name goes at the end of each section. `FIELD_END` cannot occur in an
/// escaped key.
pub(super) const HEADER: usize = 1 + 16 + 8 + 8;
pub(super) const FIELD_END: u8 = 0x1e;
const FIELD_END_STR: &str = "\u{1e}";
/// The size of a field's entry in the table.
const SLOT: usize = 1 + 8;
/// A value that is not a string (a number, a boolean, a NaN or infinity spelled in quotes):
/// never cut when a line is cut to its limit.
const PLAIN_VALUE: u8 = b'p';
const STRING_VALUE: u8 = b's';

/// The field formatter for spans: stores each span's fields as escaped key and JSON value
/// pairs, ready to copy into every event inside the span. Use it with [`EcsFormat`](super::EcsFormat).
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanFields {
    _private: (),
}

/// Strings reused per thread: a [`Builder`]'s three sections.
#[derive(Default)]
struct Scratch {
    fragment: String,
    keys: String,
    table: String,
}

thread_local! {
    /// Spans are created and recorded often: reusing these keeps it to the store's own
    /// allocation.
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// Runs `f` with a [`Builder`] on this thread's scratch strings.
fn with_builder<R>(f: impl FnOnce(Builder<'_>) -> R) -> R {
    with_reused(&SCRATCH, |scratch| {
        let Scratch {
            fragment,
            keys,
            table,
        } = scratch;
        f(Builder::new(fragment, keys, table))
    })
}

impl SpanFields {
    /// Appends the store of a new span's `fields` to `out`: nothing when none has a value.
    /// Of the `declared` fields, those without a value yet are likely recorded later: the
    /// store gets room for them, so that it is allocated once.
    pub(crate) fn store_into(
        out: &mut String,
        fields: impl RecordFields,
        declared: usize,
    ) -> fmt::Result {
        /// Room for a recorded field: key, slot and a short value.
        const RECORD_ROOM: usize = 48;
        with_builder(|builder| {
            let mut visitor = Values(builder);
            fields.record(&mut visitor);
            let built = visitor.0.finish()?;
            let unrecorded = declared.saturating_sub(built.table.len() / SLOT);
            if built.header.mask != 0 || unrecorded > 0 {
                out.reserve_exact(built.len() + unrecorded * RECORD_ROOM);
                built.write_into(out);
            }
            Ok(())
        })
    }

    /// Applies `span.record` to a store: the recorded values replace those of their names,
    /// where they are. The values are rendered first (their `Debug` and `Display` impls run,
    /// and may log or panic), then `apply` is handed what merges them into a store: the
    /// caller takes the span's lock only then.
    pub(crate) fn record(
        fields: &Record<'_>,
        apply: impl FnOnce(&dyn Fn(&mut String)),
    ) -> fmt::Result {
        with_builder(|builder| {
            let mut visitor = Values(builder);
            fields.record(&mut visitor);
            let built = visitor.0.finish()?;
            apply(&|stored| merge(stored, &built));
            Ok(())
        })
    }
}

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        thread_local! {
            static STORE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        // Built aside, then written in one piece: the span's string is allocated once.
        with_reused(&STORE, |store| {
            store.clear();
            Self::store_into(store, fields, 0)?;
            writer.write_str(store)
        })
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        Self::record(fields, |merge| merge(&mut current.fields))
    }
}

/// A store's header, read and written back.
#[derive(Clone, Copy)]
struct Header {
    reserved: bool,
    mask: u64,
    keys_len: usize,
    table_len: usize,
}

impl Header {
    /// The header of `stored`, if it is a store of ours.
    fn read(stored: &str) -> Option<Header> {
        let hex = |range: Range<usize>| stored.as_bytes().get(range).and_then(parse_hex);
        let header = Header {
            reserved: stored.starts_with('R'),
            mask: hex(1..17)?,
            keys_len: usize::try_from(hex(17..25)?).ok()?,
            table_len: usize::try_from(hex(25..HEADER)?).ok()?,
        };
        let fits = header.fragment_at() <= stored.len() && header.table_len % SLOT == 0;
        fits.then_some(header)
    }

    fn bytes(self) -> [u8; HEADER] {
        let mut header = [b'-'; HEADER];
        if self.reserved {
            header[0] = b'R';
        }
        put_hex(&mut header[1..17], self.mask);
        put_hex(&mut header[17..25], self.keys_len as u64);
        put_hex(&mut header[25..HEADER], self.table_len as u64);
        header
    }

    fn table_at(self) -> usize {
        HEADER + self.keys_len
    }

    fn fragment_at(self) -> usize {
        HEADER + self.keys_len + self.table_len
    }
}

/// ASCII bytes as text.
fn ascii(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or_default()
}

/// A field's entry in the table.
fn slot(plain: bool, value_len: usize) -> [u8; SLOT] {
    let mut slot = [if plain { PLAIN_VALUE } else { STRING_VALUE }; SLOT];
    put_hex(&mut slot[1..], value_len as u64);
    slot
}

/// Appends ASCII bytes.
fn push_ascii(out: &mut String, bytes: &[u8]) {
    out.push_str(ascii(bytes));
}

/// Applies a record's fields (`added`) to `stored`: a recorded value replaces the one of its
/// name, where it is; a new name goes at the end. Nothing else changes.
fn merge(stored: &mut String, added: &Built<'_>) {
    let Some(mut header) = Header::read(stored) else {
        // Not a store of ours: the recorded fields are all it can hold.
        stored.clear();
        added.write_into(stored);
        return;
    };
    let mut changed = false;
    for entry in added.fields().entries() {
        let bit = name_bit(entry.key);
        let found = if header.mask & bit == 0 {
            None
        } else {
            StoredFields::at(stored, header)
                .entries()
                .enumerate()
                .find(|(_, old)| old.key == entry.key)
                .map(|(index, old)| (index, old.value_at))
        };
        let slot = slot(entry.plain, entry.value.len());
        match found {
            Some((index, value_at)) => {
                let fragment_at = header.fragment_at();
                stored.replace_range(
                    fragment_at + value_at.start..fragment_at + value_at.end,
                    entry.value,
                );
                let slot_at = header.table_at() + index * SLOT;
                stored.replace_range(slot_at..slot_at + SLOT, ascii(&slot));
            }
            None => {
                let keys_end = header.table_at();
                stored.insert_str(keys_end, FIELD_END_STR);
                stored.insert_str(keys_end, entry.key);
                header.keys_len += entry.key.len() + 1;
                stored.insert_str(header.fragment_at(), ascii(&slot));
                header.table_len += SLOT;
                stored.extend([",\"", entry.key, "\":", entry.value]);
                header.mask |= bit;
                changed = true;
            }
        }
    }
    if added.header.reserved && !header.reserved {
        header.reserved = true;
        changed = true;
    }
    if changed {
        stored.replace_range(..HEADER, ascii(&header.bytes()));
    }
}

/// The value of lowercase hex digits (as [`put_hex`] writes them); `None` for anything else.
fn parse_hex(digits: &[u8]) -> Option<u64> {
    /// Each byte's digit value; 16 and over for a byte that is not a digit.
    const VALUE: [u8; 256] = {
        let mut value = [0xff; 256];
        let mut d = 0;
        while d < 16 {
            value[HEX_DIGITS[d] as usize] = d as u8;
            d += 1;
        }
        value
    };
    // No early exit: digits are nearly always valid, and a straight loop is quicker.
    let (value, bad) = digits.iter().fold((0u64, 0u8), |(value, bad), &d| {
        let digit = VALUE[usize::from(d)];
        (value << 4 | u64::from(digit & 0xf), bad | digit)
    });
    (bad < 16).then_some(value)
}

/// `value` in lowercase hex, filling `digits`.
fn put_hex(digits: &mut [u8], mut value: u64) {
    for digit in digits.iter_mut().rev() {
        *digit = HEX_DIGITS[(value & 0xf) as usize];
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
    table: &'a [u8],
}

impl<'a> StoredFields<'a> {
    pub(super) fn parse(stored: &'a str) -> Self {
        if stored.is_empty() {
            // A span without fields.
            return StoredFields {
                fragment: "",
                maybe_reserved: false,
                mask: 0,
                keys: "",
                table: &[],
            };
        }
        match Header::read(stored) {
            Some(header) => Self::at(stored, header),
            // Not a store of ours: nothing to copy, everything to compare.
            None => StoredFields {
                fragment: "",
                maybe_reserved: true,
                mask: u64::MAX,
                keys: "",
                table: &[],
            },
        }
    }

    /// The sections of `stored`, whose header (checked) is `header`.
    fn at(stored: &'a str, header: Header) -> Self {
        StoredFields {
            fragment: stored.get(header.fragment_at()..).unwrap_or(""),
            maybe_reserved: header.reserved,
            mask: header.mask,
            keys: stored.get(HEADER..header.table_at()).unwrap_or(""),
            table: stored
                .as_bytes()
                .get(header.table_at()..header.fragment_at())
                .unwrap_or(&[]),
        }
    }

    /// The fields, in order.
    pub(super) fn entries(&self) -> Entries<'a> {
        Entries {
            fragment: self.fragment,
            keys: self.keys,
            table: self.table,
            at: 0,
        }
    }
}

/// One stored field.
pub(super) struct Entry<'a> {
    /// The escaped key.
    pub(super) key: &'a str,
    /// The JSON value.
    pub(super) value: &'a str,
    /// Whether the value is not a string: never cut.
    pub(super) plain: bool,
    /// Where the value is in the fragment.
    value_at: Range<usize>,
}

/// The fields of a store, walked by the lengths of its keys and values.
pub(super) struct Entries<'a> {
    fragment: &'a str,
    keys: &'a str,
    table: &'a [u8],
    /// Where the next field starts in the fragment.
    at: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        // Keys are short: a plain loop beats a searcher's set-up.
        let key_len = self.keys.bytes().position(|b| b == FIELD_END)?;
        let key = self.keys.get(..key_len)?;
        let (slot, table) = self.table.split_at_checked(SLOT)?;
        let value_len = usize::try_from(parse_hex(&slot[1..])?).ok()?;
        // `,"` key `":` value
        let start = self.at + 2 + key.len() + 2;
        let value_at = start..start.checked_add(value_len)?;
        let value = self.fragment.get(value_at.clone())?;
        self.keys = self.keys.get(key_len + 1..)?;
        self.table = table;
        self.at = value_at.end;
        Some(Entry {
            key,
            value,
            plain: slot[0] == PLAIN_VALUE,
            value_at,
        })
    }
}

/// The keys of a keys section.
fn each_key(keys: &str) -> impl Iterator<Item = &[u8]> {
    let keys = keys.as_bytes().strip_suffix(&[FIELD_END]);
    keys.into_iter()
        .flat_map(|keys| keys.split(|&b| b == FIELD_END))
}

/// Builds a store from fields as they are visited, in one pass over them: the fragment, the
/// keys and the table each in a scratch string. The first field of a name wins; a field
/// without a value is never visited, so it is as if absent.
struct Builder<'s> {
    fragment: &'s mut String,
    keys: &'s mut String,
    table: &'s mut String,
    /// The name bits of the keys recorded so far: most names need no comparison.
    seen: u64,
    /// Each recorded key's bit and place in `fragment` (a callsite has at most 32 fields).
    recorded: [(u64, usize, usize); 32],
    count: usize,
    /// Whether some configuration reserves one of the names.
    reserved: bool,
    result: fmt::Result,
}

/// A store, built: its sections, in scratch strings.
struct Built<'s> {
    header: Header,
    keys: &'s str,
    table: &'s str,
    fragment: &'s str,
}

impl<'s> Built<'s> {
    /// The store's length.
    fn len(&self) -> usize {
        HEADER + self.keys.len() + self.table.len() + self.fragment.len()
    }

    /// Appends the store to `out`.
    fn write_into(&self, out: &mut String) {
        let header = self.header.bytes();
        for section in [ascii(&header), self.keys, self.table, self.fragment] {
            out.push_str(section);
        }
    }

    fn fields(&self) -> StoredFields<'s> {
        StoredFields {
            fragment: self.fragment,
            maybe_reserved: self.header.reserved,
            mask: self.header.mask,
            keys: self.keys,
            table: self.table.as_bytes(),
        }
    }
}

/// What a span needs to know of a field name, worked out once per name.
#[derive(Clone, Copy, Default)]
struct NameFacts {
    /// Whether some configuration reserves it ([`may_be_reserved`]).
    reserved: bool,
    /// Whether it goes on a line as it is, with no escaping.
    clean: bool,
    /// The [`name_bit`] of its escaped form.
    bit: u64,
}

impl NameFacts {
    const NONE: NameFacts = NameFacts {
        reserved: false,
        clean: false,
        bit: 0,
    };
}

/// The [`NameFacts`] of a callsite's field name, remembered per thread by the name's address:
/// spans of a callsite are made again and again with the same names.
fn name_facts(name: &'static str) -> NameFacts {
    thread_local! {
        static RECENT: Front<NameFacts> =
            const { [const { Cell::new((0, NameFacts::NONE)) }; FRONT] };
        static FACTS: RefCell<AddressMap<NameFacts>> = const { RefCell::new(AddressMap::new()) };
    }
    // A name's address and length: a name inside another starts at the same address.
    let address = name.as_ptr() as usize ^ name.len().rotate_left(48);
    per_thread(&RECENT, &FACTS, address, || {
        let clean = !name.bytes().any(|b| NEEDS_ESCAPE[usize::from(b)]);
        let escaped = if clean {
            Cow::Borrowed(name)
        } else {
            let mut escaped = String::new();
            // Into a `String`: cannot fail.
            let _ = write_escaped(&mut escaped, name);
            Cow::Owned(escaped)
        };
        NameFacts {
            reserved: may_be_reserved(&escaped),
            clean,
            bit: name_bit(&escaped),
        }
    })
}

impl<'s> Builder<'s> {
    fn new(fragment: &'s mut String, keys: &'s mut String, table: &'s mut String) -> Self {
        fragment.clear();
        keys.clear();
        table.clear();
        Builder {
            fragment,
            keys,
            table,
            seen: 0,
            recorded: [(0, 0, 0); 32],
            count: 0,
            reserved: false,
            result: Ok(()),
        }
    }

    /// Whether a key recorded so far is `key`, whose bit is `bit`.
    fn has(&self, bit: u64, key: &str) -> bool {
        if self.count == self.recorded.len() {
            // More fields than a callsite has: look through the keys.
            return each_key(self.keys).any(|k| k == key.as_bytes());
        }
        self.recorded[..self.count]
            .iter()
            .any(|&(b, start, end)| b == bit && &self.fragment[start..end] == key)
    }

    fn field(
        &mut self,
        field: &Field,
        plain: bool,
        write: impl FnOnce(&mut String) -> fmt::Result,
    ) {
        if self.result.is_err() {
            return;
        }
        let name = name_facts(field.name());
        let item_at = self.fragment.len();
        self.fragment.push_str(",\"");
        let start = self.fragment.len();
        if name.clean {
            self.fragment.push_str(field.name());
        } else {
            self.result = write_escaped(self.fragment, field.name());
        }
        let end = self.fragment.len();
        let key = &self.fragment[start..end];
        let bit = name.bit;
        if self.seen & bit != 0 && self.has(bit, key) {
            self.fragment.truncate(item_at);
            return;
        }
        self.seen |= bit;
        if let Some(slot) = self.recorded.get_mut(self.count) {
            *slot = (bit, start, end);
            self.count += 1;
        }
        self.reserved |= name.reserved;
        self.keys.push_str(key);
        self.keys.push_str(FIELD_END_STR);
        self.fragment.push_str("\":");
        let value_at = self.fragment.len();
        self.result = self.result.and_then(|()| write(self.fragment));
        push_ascii(self.table, &slot(plain, self.fragment.len() - value_at));
    }

    fn finish(self) -> Result<Built<'s>, fmt::Error> {
        self.result?;
        let header = Header {
            reserved: self.reserved,
            mask: self.seen,
            keys_len: self.keys.len(),
            table_len: self.table.len(),
        };
        Ok(Built {
            header,
            keys: self.keys,
            table: self.table,
            fragment: self.fragment,
        })
    }
}

impl ValueSink for Builder<'_> {
    fn plain(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result) {
        self.field(field, true, write);
    }

    fn string(&mut self, field: &Field, content: impl FnOnce(&mut StringValue<'_>) -> fmt::Result) {
        self.field(field, false, |w| {
            Line::new(w, Strings::Whole).string(content)
        });
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

    /// Whether `key` (escaped; its [`name_bit`] is `bit`) is on the line already.
    pub(super) fn contains(&self, key: &str, bit: u64) -> bool {
        self.mask & bit != 0 && each_key(self.keys).any(|k| k == key.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on the store of fields `(name, JSON value, plain)`, as the builder makes it.
    fn built<R>(fields: &[(&'static str, &str, bool)], f: impl FnOnce(&Built<'_>) -> R) -> R {
        let (mut fragment, mut keys, mut table) = Default::default();
        let mut builder = Builder::new(&mut fragment, &mut keys, &mut table);
        for &(name, value, plain) in fields {
            builder.field(&field_named(name), plain, |w| {
                w.push_str(value);
                Ok(())
            });
        }
        f(&builder.finish().expect("no field fails"))
    }

    fn store(fields: &[(&'static str, &str, bool)]) -> String {
        built(fields, |built| {
            let mut store = String::new();
            built.write_into(&mut store);
            store
        })
    }

    /// `span.record` of `fields` on `stored`.
    fn record(stored: &mut String, fields: &[(&'static str, &str, bool)]) {
        built(fields, |added| merge(stored, added));
    }

    /// A `Field` of a callsite that has every name the tests use.
    fn field_named(name: &str) -> Field {
        struct Callsite;
        static CALLSITE: Callsite = Callsite;
        static FIELDS: &[&str] = &["a", "b\\n", "c", "container.id"];
        static META: tracing::Metadata<'static> = tracing::metadata! {
            name: "test",
            target: "test",
            level: tracing::Level::INFO,
            fields: FIELDS,
            callsite: &CALLSITE,
            kind: tracing::metadata::Kind::SPAN,
        };
        impl tracing::callsite::Callsite for Callsite {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &tracing::Metadata<'_> {
                &META
            }
        }
        META.fields().field(name).expect("a test field")
    }

    fn entries(stored: &str) -> Vec<(String, String, bool)> {
        StoredFields::parse(stored)
            .entries()
            .map(|e| (e.key.to_owned(), e.value.to_owned(), e.plain))
            .collect()
    }

    #[test]
    fn stored_fields_round_trip() {
        let stored = store(&[("a", "1", true), ("b\\n", "\"x\"", false), ("a", "2", true)]);
        let parsed = StoredFields::parse(&stored);
        // The first of a name wins.
        assert_eq!(parsed.fragment, r#","a":1,"b\\n":"x""#);
        assert_eq!(parsed.keys, "a\u{1e}b\\\\n\u{1e}");
        assert_eq!(parsed.mask, name_bit("a") | name_bit("b\\\\n"));
        assert!(!parsed.maybe_reserved);
        assert_eq!(
            entries(&stored),
            [
                ("a".into(), "1".into(), true),
                ("b\\\\n".into(), "\"x\"".into(), false)
            ]
        );
        assert!(StoredFields::parse(&store(&[("container.id", "1", true)])).maybe_reserved);
        let facts = |name| {
            let facts = name_facts(name);
            (facts.reserved, facts.clean, facts.bit)
        };
        assert_eq!(
            facts("container.id"),
            (true, true, name_bit("container.id"))
        );
        assert_eq!(facts("fields.x"), (true, true, name_bit("fields.x")));
        assert_eq!(facts("order_id"), (false, true, name_bit("order_id")));
        assert_eq!(facts("a\nb"), (false, false, name_bit("a\\nb")));
        // Anything else reads as "compare everything".
        let foreign = StoredFields::parse("a=1");
        assert_eq!((foreign.fragment, foreign.mask), ("", u64::MAX));
    }

    #[test]
    fn a_record_changes_only_its_values() {
        let mut stored = store(&[("a", "1", true), ("b\\n", "\"x\"", false)]);
        // A longer value, a new name, a value that changes kind.
        record(
            &mut stored,
            &[("b\\n", "\"longer\"", false), ("c", "true", true)],
        );
        record(&mut stored, &[("a", "\"one\"", false)]);
        let parsed = StoredFields::parse(&stored);
        assert_eq!(parsed.fragment, r#","a":"one","b\\n":"longer","c":true"#);
        assert_eq!(parsed.keys, "a\u{1e}b\\\\n\u{1e}c\u{1e}");
        assert_eq!(
            entries(&stored),
            [
                ("a".into(), "\"one\"".into(), false),
                ("b\\\\n".into(), "\"longer\"".into(), false),
                ("c".into(), "true".into(), true)
            ]
        );
        assert_eq!(
            parsed.mask,
            name_bit("a") | name_bit("b\\\\n") | name_bit("c")
        );
        // A reserved name marks the store.
        assert!(!parsed.maybe_reserved);
        record(&mut stored, &[("container.id", "1", true)]);
        assert!(StoredFields::parse(&stored).maybe_reserved);
        // A store that is not ours takes the recorded fields.
        let mut foreign = String::from("a=1");
        record(&mut foreign, &[("container.id", "1", true)]);
        assert_eq!(foreign, store(&[("container.id", "1", true)]));
    }
}
