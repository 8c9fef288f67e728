//! The span-field store: each span's fields rendered once, when the span is created or
//! recorded, in a form that events copy whole or read back field by field.

use std::fmt::{self, Write as _};

use tracing::Subscriber;
use tracing::field::Field;
use tracing::span::Record;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::truncate::{Line, StringValue, Strings};
use super::{ValueSink, Values, may_be_reserved, name_bit};
use crate::json::write_escaped;

/// A span's fields are stored as `<fragment>` `FRAGMENT_END` `<'R' or '-'>` `<16 hex digits>`
/// then `<escaped key>` `KEY_END` `<JSON value>` `FIELD_END`, once per field. The fragment is
/// the fields as they go on a line (`,"k":v,…`), copied whole when no name clashes; the
/// entries serve the rare line where one does. 'R' marks a span with a field name that some
/// configuration reserves; the hex digits are the [`name_bit`]s of its keys, so that most
/// events rule out a clash without comparing a single name. None of these bytes can occur in
/// escaped JSON.
pub(super) const FRAGMENT_END: char = '\u{1d}';
pub(super) const KEY_END: char = '\u{1f}';
pub(super) const FIELD_END: char = '\u{1e}';

/// The field formatter for spans: stores each span's fields as escaped key and JSON value
/// pairs, ready to copy into every event inside the span. Use it with [`EcsFormat`](super::EcsFormat).
#[derive(Clone, Copy, Debug, Default)]
pub struct SpanFields {
    _private: (),
}

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = Values(SpanVisitor::new());
        fields.record(&mut visitor);
        visitor.0.result?;
        writer.write_str(&StoredFields::build(&visitor.0.entries))
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        // `span.record`: the new values replace the old ones of the same name.
        let mut visitor = Values(SpanVisitor::new());
        fields.record(&mut visitor);
        visitor.0.result?;
        let added = visitor.0.entries;
        let old = StoredFields::parse(&current.fields);
        let mut entries: Vec<(String, String)> = old
            .entries()
            .filter(|(key, _)| added.iter().all(|(k, _)| k != key))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        entries.extend(added);
        current.fields = StoredFields::build(&entries);
        Ok(())
    }
}

/// A span's stored fields, read back (see [`FRAGMENT_END`] for the layout).
pub(super) struct StoredFields<'a> {
    pub(super) fragment: &'a str,
    pub(super) maybe_reserved: bool,
    pub(super) mask: u64,
    pub(super) entries: &'a str,
}

impl<'a> StoredFields<'a> {
    pub(super) fn parse(stored: &'a str) -> Self {
        let (fragment, rest) = stored.split_once(FRAGMENT_END).unwrap_or(("", ""));
        StoredFields {
            fragment,
            maybe_reserved: rest.starts_with('R'),
            // Unreadable bits would only cost the fast path: read them as "all".
            mask: rest
                .get(1..17)
                .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                .unwrap_or(u64::MAX),
            entries: rest.get(17..).unwrap_or(""),
        }
    }

    /// `(escaped key, JSON value)` pairs.
    pub(super) fn entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        self.entries
            .split(FIELD_END)
            .filter_map(|field| field.split_once(KEY_END))
    }

    /// The stored form of `(escaped key, JSON value)` pairs.
    pub(super) fn build(entries: &[(String, String)]) -> String {
        let mut stored = String::new();
        for (key, value) in entries {
            stored.push_str(",\"");
            stored.push_str(key);
            stored.push_str("\":");
            stored.push_str(value);
        }
        stored.push(FRAGMENT_END);
        let reserved = entries.iter().any(|(key, _)| may_be_reserved(key));
        stored.push(if reserved { 'R' } else { '-' });
        let mask = entries
            .iter()
            .fold(0, |mask, (key, _)| mask | name_bit(key));
        let _ = write!(stored, "{mask:016x}");
        for (key, value) in entries {
            stored.push_str(key);
            stored.push(KEY_END);
            stored.push_str(value);
            stored.push(FIELD_END);
        }
        stored
    }
}

/// Records span fields as `(escaped key, JSON value)`; spans are created far less often
/// than events, so this may allocate. The first field of a name wins.
pub(super) struct SpanVisitor {
    pub(super) entries: Vec<(String, String)>,
    pub(super) result: fmt::Result,
}

impl SpanVisitor {
    pub(super) fn new() -> Self {
        SpanVisitor {
            entries: Vec::new(),
            result: Ok(()),
        }
    }

    pub(super) fn field(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        let mut key = String::new();
        let mut value = String::new();
        self.result = write_escaped(&mut key, field.name()).and_then(|()| write(&mut value));
        if self.result.is_ok() && self.entries.iter().all(|(k, _)| *k != key) {
            self.entries.push((key, value));
        }
    }
}

impl ValueSink for SpanVisitor {
    fn plain(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result) {
        self.field(field, write);
    }

    fn string(&mut self, field: &Field, content: impl FnOnce(&mut StringValue<'_>) -> fmt::Result) {
        self.field(field, |w| Line::new(w, Strings::Whole).string(content));
    }
}

/// Whether one of the `depth` spans nearer the event than this one stores `key`.
pub(super) fn inner_span_has<S>(
    ctx: &FmtContext<'_, S, SpanFields>,
    depth: usize,
    key: &str,
) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    if depth == 0 {
        return false;
    }
    let Some(scope) = ctx.event_scope() else {
        return false;
    };
    scope.take(depth).any(|span| {
        span.extensions()
            .get::<FormattedFields<SpanFields>>()
            .is_some_and(|stored| {
                StoredFields::parse(&stored.fields)
                    .entries()
                    .any(|(k, _)| k == key)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn stored_fields_round_trip() {
        let entries = [
            ("a".to_owned(), "1".to_owned()),
            ("b\\n".to_owned(), "\"x\"".to_owned()),
        ];
        let stored = StoredFields::build(&entries);
        let parsed = StoredFields::parse(&stored);
        assert_eq!(parsed.fragment, r#","a":1,"b\n":"x""#);
        assert_eq!(parsed.mask, name_bit("a") | name_bit("b\\n"));
        assert!(!parsed.maybe_reserved);
        assert_eq!(
            parsed.entries().collect::<Vec<_>>(),
            [("a", "1"), ("b\\n", "\"x\"")]
        );
        let reserved = StoredFields::build(&[("container.id".to_owned(), "1".to_owned())]);
        assert!(StoredFields::parse(&reserved).maybe_reserved);
    }
}
