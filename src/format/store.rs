//! Each span's fields, rendered once when the span is created: the fragment its events copy
//! whole, and where each field is in it, so that a line whose names clash reads the fields
//! one by one and `span.record` replaces values in place.

use std::cell::RefCell;
use std::fmt;

use smallvec::SmallVec;
use tracing::field::Field;
use tracing_subscriber::field::RecordFields;

use super::keys::{ReservedKeys, name_bit, same_name};
use super::truncate::{Line, StringValue, Strings};
use super::{ValueSink, Values, with_reused};
use crate::json::{is_plain, write_escaped, write_json_str};

/// A span's fields, kept in its extensions by the layer.
#[derive(Debug, Default)]
pub(crate) struct SpanStore {
    /// The fields as they go on a line: `,"key":value` each.
    fragment: String,
    /// Each field, in the order of the fragment: the first of its name to have a value.
    /// Inline up to [`INLINE_FIELDS`], so that most spans' stores are one allocation.
    fields: SmallVec<[StoredField; INLINE_FIELDS]>,
    /// The [`name_bit`]s of the names.
    mask: u64,
    /// Whether some configuration reserves one of the names.
    maybe_reserved: bool,
}

/// One field of a [`SpanStore`].
#[derive(Clone, Copy, Debug)]
pub(super) struct StoredField {
    /// The field's name, as the callsite gives it.
    pub(super) name: &'static str,
    pub(super) bit: u64,
    /// Where `,"key":value` starts in the fragment (a fragment stays under 4 GiB, so that
    /// six fields fit where four did with `usize`s).
    start: u32,
    /// Where the value starts and ends.
    value: (u32, u32),
    /// Whether the value is not a string (a number, a boolean, NaN or an infinity spelled in
    /// quotes): never cut when a line is cut to its limit.
    pub(super) plain: bool,
}

impl StoredField {
    /// The escaped key, as it is in `fragment`: between `,"` and `":`.
    pub(super) fn key<'s>(&self, fragment: &'s str) -> &'s str {
        &fragment[self.start as usize + 2..self.value.0 as usize - 2]
    }

    pub(super) fn value<'s>(&self, fragment: &'s str) -> &'s str {
        &fragment[self.value.0 as usize..self.value.1 as usize]
    }
}

/// The fields a store keeps without an allocation of their own: a request's span (four
/// fields, and two recorded later) fits.
const INLINE_FIELDS: usize = 6;

/// The most a store's fragment holds: a field that would take it further is left out.
const MAX_FRAGMENT: usize = u32::MAX as usize;

/// Room for a field recorded after the span was created: key and a short value.
const RECORD_ROOM: usize = 48;

thread_local! {
    /// Where fields are rendered before they are stored: spans are made and recorded often,
    /// and the span's own store is then allocated once, at its size.
    static SCRATCH: RefCell<Scratch> = RefCell::default();
}

/// A thread's [`SCRATCH`]: the store fields are rendered in, and what their names decide.
#[derive(Default)]
struct Scratch {
    store: SpanStore,
    names: NameCache,
}

/// What a field's name decides of its place in a store.
#[derive(Clone, Copy, Debug)]
pub(super) struct NameFacts {
    bit: u64,
    /// Whether the name goes into JSON as it is.
    plain: bool,
    /// Whether some configuration reserves it.
    reserved: bool,
}

impl NameFacts {
    pub(super) fn of(name: &str) -> Self {
        let bit = name_bit(name);
        NameFacts {
            bit,
            plain: is_plain(name),
            reserved: ReservedKeys::any().contains(name, bit, true),
        }
    }
}

/// The [`NameFacts`] of the names this thread's spans had last, by the name's address and
/// length (a span field's name is a `&'static str`: one address, one name, for good). The
/// same few names make every request's span: about 140 instructions a field, before.
struct NameCache([Option<(&'static str, NameFacts)>; NAME_SLOTS]);

/// The names a [`NameCache`] keeps (a slot each, 32 bytes).
const NAME_SLOTS: usize = 64;

impl Default for NameCache {
    fn default() -> Self {
        NameCache([None; NAME_SLOTS])
    }
}

impl NameCache {
    fn facts(&mut self, name: &'static str) -> NameFacts {
        let address = name.as_ptr() as usize as u64;
        let slot =
            (address.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - NAME_SLOTS.ilog2())) as usize;
        match &mut self.0[slot] {
            Some((cached, facts)) if std::ptr::eq(*cached, name) => *facts,
            slot => {
                let facts = NameFacts::of(name);
                *slot = Some((name, facts));
                facts
            }
        }
    }
}

/// Renders fields into a thread's scratch store.
struct Rendering<'a>(&'a mut Scratch);

impl Rendering<'_> {
    fn push(&mut self, field: &Field, plain: bool, write: impl FnOnce(&mut String) -> fmt::Result) {
        let facts = self.0.names.facts(field.name());
        self.0.store.push(field.name(), facts, plain, write);
    }
}

impl SpanStore {
    /// The store of a new span's `fields`, with room for those of the `declared` fields that
    /// have no value yet (they are likely recorded later). Their `Debug` and `Display` impls
    /// run here, before the caller locks anything.
    pub(crate) fn new(fields: impl RecordFields, declared: usize) -> Self {
        with_reused(&SCRATCH, |scratch| {
            scratch.store.clear();
            fields.record(&mut Values(Rendering(&mut *scratch)));
            let scratch = &scratch.store;
            let unrecorded = declared.saturating_sub(scratch.fields.len());
            if scratch.fields.is_empty() && unrecorded == 0 {
                return SpanStore::default();
            }
            let mut fragment =
                String::with_capacity(scratch.fragment.len() + unrecorded * RECORD_ROOM);
            fragment.push_str(&scratch.fragment);
            let mut fields = SmallVec::with_capacity(scratch.fields.len() + unrecorded);
            fields.extend_from_slice(&scratch.fields);
            SpanStore {
                fragment,
                fields,
                mask: scratch.mask,
                maybe_reserved: scratch.maybe_reserved,
            }
        })
    }

    /// Renders the fields of a `span.record` (their `Debug` and `Display` impls run here),
    /// then hands `apply` what merges them into a store: the caller takes the span's lock
    /// only then.
    pub(crate) fn record(fields: impl RecordFields, apply: impl FnOnce(&dyn Fn(&mut SpanStore))) {
        with_reused(&SCRATCH, |scratch| {
            scratch.store.clear();
            fields.record(&mut Values(Rendering(&mut *scratch)));
            apply(&|store| store.merge(&scratch.store));
        });
    }

    fn clear(&mut self) {
        self.fragment.clear();
        self.fields.clear();
        self.mask = 0;
        self.maybe_reserved = false;
    }

    /// Each field's name, [`name_bit`] and value as it is written: a string's escaped content
    /// without its quotes (NaN and the infinities are strings too), or a number or boolean
    /// as it is. For the parts that read a span's fields back (request metrics) without a
    /// visit of their own; [`mask`](Self::mask) rules most spans out first.
    pub(crate) fn written(&self) -> impl Iterator<Item = (&'static str, u64, &str)> {
        self.fields
            .iter()
            .map(|field| (field.name, field.bit, self.written_value(field)))
    }

    /// `field`'s value as [`written`](Self::written) gives it.
    fn written_value(&self, field: &StoredField) -> &str {
        let value = field.value(&self.fragment);
        // A string's quotes are ASCII: inside them is on a character's boundary.
        match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inside) => inside,
            None => value,
        }
    }

    pub(super) fn fragment(&self) -> &str {
        &self.fragment
    }

    pub(super) fn fields(&self) -> &[StoredField] {
        &self.fields
    }

    /// The [`name_bit`]s of the fields' names.
    pub(crate) fn mask(&self) -> u64 {
        self.mask
    }

    pub(super) fn maybe_reserved(&self) -> bool {
        self.maybe_reserved
    }

    fn position(&self, name: &str, bit: u64) -> Option<usize> {
        if self.mask & bit == 0 {
            return None;
        }
        self.fields.iter().position(|f| same_name(f.name, name))
    }

    /// Appends a field named `name`, unless the store has one of its name: the first of a
    /// name wins.
    fn push(
        &mut self,
        name: &'static str,
        facts: NameFacts,
        plain: bool,
        write: impl FnOnce(&mut String) -> fmt::Result,
    ) {
        let bit = facts.bit;
        if self.position(name, bit).is_some() {
            return;
        }
        let start = self.fragment.len();
        self.fragment.push_str(",\"");
        if facts.plain {
            self.fragment.push_str(name);
        } else {
            // Into a `String`: cannot fail.
            let _ = write_escaped(&mut self.fragment, name);
        }
        self.fragment.push_str("\":");
        let value_start = self.fragment.len();
        // A `Debug` impl that failed, or a store past 4 GiB: this field is left out, the
        // others kept.
        let offsets = write(&mut self.fragment).ok().and_then(|()| {
            let end = u32::try_from(self.fragment.len()).ok()?;
            // Under `end`, so under 4 GiB too.
            Some((start as u32, value_start as u32, end))
        });
        let Some((start, value_start, end)) = offsets else {
            self.fragment.truncate(start);
            return;
        };
        self.fields.push(StoredField {
            name,
            bit,
            start,
            value: (value_start, end),
            plain,
        });
        self.mask |= bit;
        self.maybe_reserved |= facts.reserved;
    }

    /// Applies recorded fields: a recorded value replaces the value of its name where it is;
    /// a new name goes at the end.
    fn merge(&mut self, recorded: &SpanStore) {
        for field in &recorded.fields {
            let value = field.value(&recorded.fragment);
            let position = self.position(field.name, field.bit);
            let added = match position {
                Some(at) => value
                    .len()
                    .saturating_sub(self.fields[at].value(&self.fragment).len()),
                None => (field.value.1 - field.start) as usize,
            };
            if self.fragment.len().saturating_add(added) > MAX_FRAGMENT {
                continue;
            }
            // Within `MAX_FRAGMENT` from here: the offsets fit in `u32`.
            match position {
                Some(at) => {
                    let old = self.fields[at];
                    let (from, to) = (old.value.0 as usize, old.value.1 as usize);
                    self.fragment.replace_range(from..to, value);
                    let moved = (value.len() as u32).wrapping_sub(old.value.1 - old.value.0);
                    self.fields[at].value.1 = old.value.0 + value.len() as u32;
                    self.fields[at].plain = field.plain;
                    for later in &mut self.fields[at + 1..] {
                        later.start = later.start.wrapping_add(moved);
                        later.value.0 = later.value.0.wrapping_add(moved);
                        later.value.1 = later.value.1.wrapping_add(moved);
                    }
                }
                None => {
                    let start = self.fragment.len() as u32;
                    self.fragment
                        .push_str(&recorded.fragment[field.start as usize..field.value.1 as usize]);
                    let shift = start.wrapping_sub(field.start);
                    self.fields.push(StoredField {
                        start,
                        value: (
                            field.value.0.wrapping_add(shift),
                            field.value.1.wrapping_add(shift),
                        ),
                        ..*field
                    });
                    self.mask |= field.bit;
                    self.maybe_reserved |= recorded.maybe_reserved;
                }
            }
        }
    }
}

impl ValueSink for Rendering<'_> {
    fn plain(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result) {
        self.push(field, true, write);
    }

    fn string(&mut self, field: &Field, content: impl FnOnce(&mut StringValue<'_>) -> fmt::Result) {
        self.push(field, false, |w| {
            Line::new(w, Strings::Whole).string(content)
        });
    }

    fn str(&mut self, field: &Field, value: &str) {
        self.push(field, false, |w| write_json_str(w, value));
    }
}

/// The names already on a line, for the spans further out. Kept per thread and reused.
#[derive(Default)]
pub(super) struct LineNames {
    names: Vec<&'static str>,
    mask: u64,
}

impl LineNames {
    pub(super) fn clear(&mut self) {
        self.names.clear();
        self.mask = 0;
    }

    /// Adds a span's names.
    pub(super) fn add(&mut self, store: &SpanStore) {
        self.names.extend(store.fields.iter().map(|f| f.name));
        self.mask |= store.mask;
    }

    /// The [`name_bit`]s of the fields' names.
    pub(crate) fn mask(&self) -> u64 {
        self.mask
    }

    /// Whether `name`, whose [`name_bit`] is `bit`, is on the line already.
    pub(super) fn contains(&self, name: &str, bit: u64) -> bool {
        self.mask & bit != 0 && self.names.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_span_fits_inline() {
        // Six fields inline take no more room than four did with `usize` offsets.
        assert!(std::mem::size_of::<StoredField>() <= 40);
        let mut store = SpanStore::default();
        for name in ["a", "b", "c", "d", "e", "f"] {
            store.fields.push(StoredField {
                name,
                bit: name_bit(name),
                start: 0,
                value: (0, 0),
                plain: true,
            });
        }
        assert!(!store.fields.spilled());
    }

    /// A `Field` of a callsite that has every name the tests use.
    fn field_named(name: &str) -> Field {
        struct Callsite;
        static CALLSITE: Callsite = Callsite;
        static FIELDS: &[&str] = &[
            "a",
            "b\n",
            "c",
            "container.id",
            "route",
            "http.route",
            "http.request.method",
            "status",
        ];
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

    /// A store of fields `(name, JSON value, plain)`, as visiting them makes it.
    fn store(fields: &[(&str, &str, bool)]) -> SpanStore {
        let mut store = SpanStore::default();
        for &(name, value, plain) in fields {
            let name = field_named(name).name();
            store.push(name, NameFacts::of(name), plain, |w| {
                w.push_str(value);
                Ok(())
            });
        }
        store
    }

    fn entries(store: &SpanStore) -> Vec<(&str, &str, &str, bool)> {
        store
            .fields
            .iter()
            .map(|f| {
                (
                    f.name,
                    f.key(&store.fragment),
                    f.value(&store.fragment),
                    f.plain,
                )
            })
            .collect()
    }

    #[test]
    fn the_first_of_a_name_wins_and_keys_are_escaped() {
        let stored = store(&[("a", "1", true), ("b\n", "\"x\"", false), ("a", "2", true)]);
        assert_eq!(stored.fragment, r#","a":1,"b\n":"x""#);
        assert_eq!(
            entries(&stored),
            [("a", "a", "1", true), ("b\n", "b\\n", "\"x\"", false)]
        );
        assert_eq!(stored.mask, name_bit("a") | name_bit("b\n"));
        assert!(!stored.maybe_reserved);
        assert!(store(&[("container.id", "1", true)]).maybe_reserved);
    }

    #[test]
    fn names_past_the_cache_keep_their_own_facts() {
        // More names than slots: names share slots, each keeps what it decides.
        let names: Vec<&'static str> = (0..4 * NAME_SLOTS)
            .map(|i| &*Box::leak(format!("name{i}").into_boxed_str()))
            .chain(["container.id", "a\n"])
            .collect();
        let mut cache = NameCache::default();
        for _ in 0..2 {
            for &name in &names {
                let (cached, made) = (cache.facts(name), NameFacts::of(name));
                assert_eq!(
                    (cached.bit, cached.plain, cached.reserved),
                    (made.bit, made.plain, made.reserved),
                    "{name:?}"
                );
            }
        }
        let (reserved, escaped) = (cache.facts("container.id"), cache.facts("a\n"));
        assert!(reserved.reserved && reserved.plain);
        assert!(!escaped.plain && !escaped.reserved);
    }

    #[test]
    fn values_are_read_back_as_written() {
        let mut stored = store(&[("http.route", r#""/a\"b""#, false), ("status", "503", true)]);
        // A new value where it was, a new name at the end.
        stored.merge(&store(&[
            ("a", "1", true),
            ("http.route", r#""/c""#, false),
        ]));
        // A plain value spelled in quotes (NaN) is read without them.
        stored.merge(&store(&[("c", r#""NaN""#, true)]));
        let written: Vec<_> = stored.written().collect();
        assert_eq!(
            written,
            [
                ("http.route", name_bit("http.route"), "/c"),
                ("status", name_bit("status"), "503"),
                ("a", name_bit("a"), "1"),
                ("c", name_bit("c"), "NaN"),
            ]
        );
        let escaped = store(&[("http.route", r#""/a\"b""#, false)]);
        assert_eq!(escaped.written().next().unwrap().2, r#"/a\"b"#);
    }

    #[test]
    fn a_record_changes_only_its_values() {
        let mut stored = store(&[("a", "1", true), ("b\n", "\"x\"", false)]);
        // A longer value, a new name, then a value that changes kind and gets shorter.
        stored.merge(&store(&[("b\n", "\"longer\"", false), ("c", "true", true)]));
        stored.merge(&store(&[("a", "\"\"", false)]));
        assert_eq!(stored.fragment, r#","a":"","b\n":"longer","c":true"#);
        assert_eq!(
            entries(&stored),
            [
                ("a", "a", "\"\"", false),
                ("b\n", "b\\n", "\"longer\"", false),
                ("c", "c", "true", true)
            ]
        );
        assert_eq!(stored.mask, name_bit("a") | name_bit("b\n") | name_bit("c"));
        assert!(!stored.maybe_reserved);
        stored.merge(&store(&[("container.id", "1", true)]));
        assert!(stored.maybe_reserved);
    }
}
