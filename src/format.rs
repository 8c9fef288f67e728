//! The JSON event formatter.
//!
//! Each event is one line of JSON:
//!
//! ```text
//! {"timestamp":"2026-11-29T03:49:31.123456Z","level":"INFO","target":"orders","message":"placed",
//!  "order_id":42,"user":"ada","ecs":{"cluster":"prod-web",…}}
//! ```
//!
//! - `timestamp` (RFC 3339, UTC, microseconds), `level`, `target`, then `message` when the
//!   event has one.
//! - The event's fields at the top level: integers and floats as numbers (non-finite floats
//!   as strings), booleans as booleans, strings as strings, `Debug` and `Display` values as
//!   strings, errors as their message followed by their `source()` chain, `": "`-separated.
//! - The fields of the current span and of its parents, at the top level too. **On a clash
//!   the nearest wins**: the event's own field over any span's, an inner span's over an outer
//!   one's (names are compared as given, before the renaming below). Within one event or span, the first field of a name wins; `span.record` replaces
//!   a span's value.
//! - The ECS identity, as the [`FieldScheme`] lays it out.
//!
//! **Reserved keys.** `timestamp`, `level`, `target`, `message` (for span fields),
//! `truncated`, and the keys and key families of the field scheme (see [`FieldScheme`]: for
//! `Nested`, `ecs` and every key starting with `ecs.`, which CloudWatch Logs Insights would
//! flatten onto the identity's own keys) belong to the formatter. A field with one of these
//! names is written as `fields.<name>`; so is a field whose name already starts with
//! `fields.`, which keeps the renaming one-to-one: no key ever appears twice on a line, none
//! passes for the identity, and nothing is dropped.
//!
//! **One event, one line.** Every string is escaped: quotes, backslashes, every control
//! character (newlines, ANSI escapes) and U+2028/U+2029 — a message cannot forge a second line.
//!
//! The identity is rendered once, when the formatter is built (and once more if the metadata
//! is recovered in the background after a failed start-up); span fields once, when the span
//! is created or recorded. Formatting an event copies those bytes and allocates nothing.

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::sync::Arc;

use once_cell::sync::OnceCell;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::dispatcher::WeakDispatch;

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::fields::{ExtraFields, FieldScheme};
use crate::metadata::EcsMetadata;
use crate::time::Civil;

/// Keys the formatter writes itself.
#[cfg(not(feature = "opentelemetry"))]
pub(crate) const BASE_KEYS: &[&str] = &["timestamp", "level", "target", "message", "truncated"];
/// With trace correlation on, the trace keys are the formatter's too.
#[cfg(feature = "opentelemetry")]
pub(crate) const BASE_KEYS: &[&str] = &[
    "timestamp",
    "level",
    "target",
    "message",
    "truncated",
    "trace_id",
    "span_id",
    "xray_trace_id",
];

/// The longest line written by default, newline excluded: CloudWatch Logs' 256 KiB event
/// limit less the 26 bytes it counts for each event.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024 - 26;
/// Marks a line whose string values were cut to fit.
const TRUNCATED: &str = ",\"truncated\":true";
/// The prefix of renamed keys.
const RENAMED: &str = "fields.";

/// A span's fields are stored as `<fragment>` `FRAGMENT_END` `<'R' or '-'>` `<16 hex digits>`
/// then `<escaped key>` `KEY_END` `<JSON value>` `FIELD_END`, once per field. The fragment is
/// the fields as they go on a line (`,"k":v,…`), copied whole when no name clashes; the
/// entries serve the rare line where one does. 'R' marks a span with a field name that some
/// configuration reserves; the hex digits are the [`name_bit`]s of its keys, so that most
/// events rule out a clash without comparing a single name. None of these bytes can occur in
/// escaped JSON.
const FRAGMENT_END: char = '\u{1d}';
const KEY_END: char = '\u{1f}';
const FIELD_END: char = '\u{1e}';

/// The event formatter: plug it into [`tracing_subscriber::fmt::Layer::event_format`] with
/// [`JsonFields`] as the field formatter. [`crate::layer`] does that for you.
///
/// ```
/// use tracing_aws_ecs::{EcsFormat, FieldScheme, ExtraFields, JsonFields};
/// use tracing_subscriber::prelude::*;
///
/// let format = EcsFormat::new(None, FieldScheme::Nested, ExtraFields::NONE);
/// let layer = tracing_subscriber::fmt::layer()
///     .with_ansi(false)
///     .fmt_fields(JsonFields::default())
///     .event_format(format);
/// let _subscriber = tracing_subscriber::registry().with(layer);
/// ```
#[derive(Clone, Debug)]
pub struct EcsFormat {
    /// `,"ecs":{…}` or the flat keys: empty when there is no metadata.
    identity: Arc<LiveIdentity>,
    /// Keys event and span fields must not take.
    reserved: Box<[&'static str]>,
    /// The key prefixes they must not take either (the scheme's families and `fields.`).
    reserved_prefixes: Box<[&'static str]>,
    /// The first bytes of those prefixes, less 64 (they are lowercase ASCII letters), to clear
    /// most names with one test.
    prefix_firsts: u64,
    /// Their [`name_bit`]s, to clear most names without a comparison.
    reserved_mask: u64,
    /// The longest line, newline excluded.
    max_line: usize,
    /// The subscriber the layer joined, for the trace context of spans.
    #[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
    dispatch: Option<Arc<OnceCell<WeakDispatch>>>,
}

impl EcsFormat {
    /// A formatter enriching every line with `metadata` (none when `None`), laid out by
    /// `scheme` with the `extra` fields.
    pub fn new(metadata: Option<&EcsMetadata>, scheme: FieldScheme, extra: ExtraFields) -> Self {
        let initial = metadata
            .map(|m| scheme.render(m, extra))
            .unwrap_or_default();
        let mut reserved: Vec<&'static str> = BASE_KEYS.to_vec();
        reserved.extend(scheme.top_level_keys(extra));
        let mut reserved_prefixes = vec![RENAMED];
        reserved_prefixes.extend(scheme.reserved_prefixes());
        EcsFormat {
            identity: Arc::new(LiveIdentity {
                scheme,
                extra,
                initial: initial.into_boxed_str(),
                recovered: OnceCell::new(),
            }),
            reserved_mask: reserved.iter().fold(0, |mask, key| mask | name_bit(key)),
            reserved: reserved.into_boxed_slice(),
            prefix_firsts: reserved_prefixes
                .iter()
                .fold(0, |mask, prefix| mask | first_byte_bit(prefix)),
            reserved_prefixes: reserved_prefixes.into_boxed_slice(),
            max_line: DEFAULT_MAX_LINE_BYTES,
            dispatch: None,
        }
    }

    /// Where the layer puts the subscriber it joins (see [`crate::EcsLayer`]).
    pub(crate) fn with_dispatch(mut self, dispatch: Arc<OnceCell<WeakDispatch>>) -> Self {
        self.dispatch = Some(dispatch);
        self
    }

    /// The longest line to write, newline excluded (default [`DEFAULT_MAX_LINE_BYTES`]). A
    /// longer line has its longest string values cut, at a character boundary, until it fits,
    /// and carries `"truncated":true`. Keys, numbers and the ECS fields are never cut.
    /// Docker splits lines longer than 16 KiB into several records: set 16,384 where the log
    /// driver does not join them again.
    pub fn with_max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line = bytes;
        self
    }

    /// Whether lines carry ECS fields.
    pub fn is_enriched(&self) -> bool {
        !self.identity.current().is_empty()
    }

    /// From now on, when the process-wide metadata is recovered in the background (see
    /// [`crate::cache`]), write the recovered identity on every line.
    pub(crate) fn follow_recovery(&self) {
        let identity = Arc::downgrade(&self.identity);
        crate::cache::on_recovery(move |metadata| {
            if let Some(identity) = identity.upgrade() {
                let rendered = identity.scheme.render(metadata, identity.extra);
                let _ = identity.recovered.set(rendered.into_boxed_str());
            }
        });
    }

    fn is_reserved(&self, key: &str) -> bool {
        (self.prefix_firsts & first_byte_bit(key) != 0
            && self.reserved_prefixes.iter().any(|p| key.starts_with(p)))
            || (self.reserved_mask & name_bit(key) != 0 && self.reserved.contains(&key))
    }

    /// `,"key":` with the renaming rule applied; `key` is raw.
    fn write_key(&self, w: &mut impl fmt::Write, key: &str) -> fmt::Result {
        w.write_str(",\"")?;
        if self.is_reserved(key) {
            w.write_str(RENAMED)?;
        }
        write_escaped(w, key)?;
        w.write_str("\":")
    }
}

impl<S> FormatEvent<S, JsonFields> for EcsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|buffer| {
            let mut fresh = String::new();
            let mut borrowed = buffer.try_borrow_mut();
            // Formatting that logs (a `Debug` impl) re-enters: it gets a buffer of its own.
            let out = borrowed.as_deref_mut().unwrap_or(&mut fresh);
            out.clear();
            let now = SystemTime::now();
            let identity = self.identity.current();
            self.render(
                ctx,
                event,
                now,
                identity,
                &mut Line::new(out, Strings::Whole),
            )?;
            if out.len() > self.max_line + 1 {
                self.render_truncated(ctx, event, now, identity, out)?;
            }
            writer.write_str(out)?;
            // One huge event must not pin its size in memory for the thread's life.
            if out.capacity() > 2 * (self.max_line + 1) {
                out.clear();
                out.shrink_to(self.max_line + 1);
            }
            Ok(())
        })
    }
}

impl EcsFormat {
    /// Writes the line for `event`, ending with `identity`, into `line`.
    fn render<S>(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        event: &Event<'_>,
        now: SystemTime,
        identity: &str,
        line: &mut Line<'_>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        write_prelude(line.out, now, *meta.level(), meta.target())?;

        let names = EventNames::of(event);
        let mut visitor = Values(EventVisitor {
            format: self,
            line: &mut *line,
            names: &names,
            pass: Pass::Message,
            skip_log_fields: normalized.is_some(),
            result: Ok(()),
        });
        event.record(&mut visitor);
        #[cfg(feature = "opentelemetry")]
        self.write_trace_ids(ctx, visitor.0.line.out);
        visitor.0.pass = Pass::Fields;
        event.record(&mut visitor);
        visitor.0.result?;

        if let Some(scope) = ctx.event_scope() {
            // The name bits of the spans nearer the event than the one at hand.
            let mut inner_mask = 0u64;
            for (depth, span) in scope.enumerate() {
                let extensions = span.extensions();
                let Some(stored) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                let stored = StoredFields::parse(&stored.fields);
                let nearer = names.mask | inner_mask;
                inner_mask |= stored.mask;
                let whole = matches!(line.strings, Strings::Whole);
                if whole && !stored.maybe_reserved && stored.mask & nearer == 0 {
                    line.out.push_str(stored.fragment);
                    continue;
                }
                // Maybe a clash, or values to measure or cut: field by field.
                let hidden = |key: &str| names.contains(key) || inner_span_has(ctx, depth, key);
                for (key, value) in stored.entries() {
                    if hidden(key) {
                        continue;
                    }
                    line.out.push_str(",\"");
                    if self.is_reserved(key) {
                        line.out.push_str(RENAMED);
                    }
                    line.out.push_str(key);
                    line.out.push_str("\":");
                    line.stored_value(value);
                }
            }
        }

        if line.cut {
            line.out.push_str(TRUNCATED);
        }
        line.out.push_str(identity);
        line.out.push_str("}\n");
        Ok(())
    }

    /// Renders again with every string value cut to the length that makes the line fit:
    /// first measuring the values, then sharing the room left among them, longest cut first.
    fn render_truncated<S>(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        event: &Event<'_>,
        now: SystemTime,
        identity: &str,
        out: &mut String,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let mut lengths = Vec::new();
        out.clear();
        self.render(
            ctx,
            event,
            now,
            identity,
            &mut Line::new(out, Strings::Measure(&mut lengths)),
        )?;
        let values: usize = lengths.iter().sum();
        let fixed = out.len() - values + TRUNCATED.len();
        let cap = share(&mut lengths, (self.max_line + 1).saturating_sub(fixed));
        out.clear();
        self.render(
            ctx,
            event,
            now,
            identity,
            &mut Line::new(out, Strings::Capped(cap)),
        )
    }
}

#[cfg(feature = "opentelemetry")]
impl EcsFormat {
    /// The trace context of the event's span, when a `tracing-opentelemetry` layer traces it.
    fn write_trace_ids<S>(&self, ctx: &FmtContext<'_, S, JsonFields>, out: &mut String)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(dispatch) = self.dispatch.as_ref().and_then(|d| d.get()) else {
            return;
        };
        let Some(span) = ctx.event_scope().and_then(|mut scope| scope.next()) else {
            return;
        };
        if let Some(ids) = span.extensions().get::<crate::otel::TraceIds>() {
            return ids.write(out);
        }
        // Not looked up yet: the lookup locks the span's extensions, so release ours first.
        let id = span.id();
        drop(span);
        let ids = crate::otel::TraceIds::of(&id, dispatch);
        ids.write(out);
        // The lookup started the span, so its ids are settled: keep them for its next events.
        if let Some(span) = ctx.span(&id) {
            // `replace`: another thread may have cached them meanwhile (`insert` would panic).
            span.extensions_mut().replace(ids);
        }
    }
}

/// The identity fragment lines end with: what was known when the formatter was built, until
/// the background recovery of the metadata completes it. Reading it is one atomic load.
#[derive(Debug)]
struct LiveIdentity {
    scheme: FieldScheme,
    extra: ExtraFields,
    initial: Box<str>,
    recovered: OnceCell<Box<str>>,
}

impl LiveIdentity {
    fn current(&self) -> &str {
        self.recovered.get().unwrap_or(&self.initial)
    }
}

/// The largest cap such that the values, each cut to it, fit in `room` bytes together.
fn share(lengths: &mut [usize], mut room: usize) -> usize {
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
enum Strings<'a> {
    /// As they are.
    Whole,
    /// As they are, noting each one's escaped length.
    Measure(&'a mut Vec<usize>),
    /// Cut to this many escaped bytes.
    Capped(usize),
}

/// A line being rendered.
struct Line<'a> {
    out: &'a mut String,
    strings: Strings<'a>,
    /// Whether a value was cut.
    cut: bool,
}

impl<'a> Line<'a> {
    fn new(out: &'a mut String, strings: Strings<'a>) -> Self {
        Line {
            out,
            strings,
            cut: false,
        }
    }

    /// A JSON string of what `content` writes, escaped, and cut if this rendering cuts.
    fn string(&mut self, content: impl FnOnce(&mut StringValue<'_>) -> fmt::Result) -> fmt::Result {
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

    /// A span's stored JSON value, measured or cut as a string value would be.
    fn stored_value(&mut self, value: &str) {
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
                self.out.push_str(value);
            }
            _ => self.out.push_str(value),
        }
    }
}

/// The longest prefix of escaped JSON text within `cap` bytes that splits neither an escape
/// sequence nor a character.
fn cut_escaped(escaped: &str, cap: usize) -> &str {
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
struct StringValue<'a> {
    out: &'a mut String,
    remaining: usize,
    written: usize,
    cut: bool,
}

impl fmt::Write for StringValue<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.cut {
            return Ok(());
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

/// Whether one of the `depth` spans nearer the event than this one stores `key`.
fn inner_span_has<S>(ctx: &FmtContext<'_, S, JsonFields>, depth: usize, key: &str) -> bool
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
            .get::<FormattedFields<JsonFields>>()
            .is_some_and(|stored| {
                StoredFields::parse(&stored.fields)
                    .entries()
                    .any(|(k, _)| k == key)
            })
    })
}

/// `{"timestamp":"…","level":"…","target":"…"`.
fn write_prelude(
    w: &mut impl fmt::Write,
    now: SystemTime,
    level: Level,
    target: &str,
) -> fmt::Result {
    w.write_str("{\"timestamp\":\"")?;
    write_timestamp(w, now)?;
    w.write_str("\",\"level\":\"")?;
    w.write_str(level.as_str())?;
    w.write_str("\",\"target\":")?;
    write_json_str(w, target)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Only `message`, so that it comes right after the target.
    Message,
    /// Everything else.
    Fields,
}

/// What the formatter needs to know of an event's field names: their [`name_bit`]s (all bits
/// when a name needs escaping), and whether two share a bit, so that one may repeat another.
/// Both depend only on the callsite, so they are worked out once per callsite and thread and
/// kept in a small direct-mapped cache; the rare events that need the names themselves (a
/// possible repeat or clash) walk the field set.
struct EventNames<'a> {
    event: &'a Event<'a>,
    mask: u64,
    may_repeat: bool,
}

impl<'a> EventNames<'a> {
    fn of(event: &'a Event<'a>) -> Self {
        const SLOTS: usize = 64;
        thread_local! {
            /// (callsite metadata address, mask, may repeat); address 0 is an empty slot.
            static CACHE: [Cell<(usize, u64, bool)>; SLOTS] = const { [const { Cell::new((0, 0, false)) }; SLOTS] };
        }
        let key = std::ptr::from_ref(event.metadata()) as usize;
        // Metadata are statics at least 8-byte aligned: drop the low bits before hashing.
        let slot = (key >> 3).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (usize::BITS - 6);
        let (cached, mask, may_repeat) = CACHE.with(|cache| cache[slot].get());
        let (mask, may_repeat) = if cached == key {
            (mask, may_repeat)
        } else {
            let computed = Self::compute(event);
            CACHE.with(|cache| cache[slot].set((key, computed.0, computed.1)));
            computed
        };
        EventNames {
            event,
            mask,
            may_repeat,
        }
    }

    fn compute(event: &Event<'_>) -> (u64, bool) {
        let mut mask = 0;
        let mut may_repeat = false;
        for field in event.fields() {
            let name = field.name();
            let bit = name_bit(name);
            may_repeat |= mask & bit != 0;
            mask |= if name.bytes().any(|b| NEEDS_ESCAPE[b as usize]) {
                u64::MAX
            } else {
                bit
            };
        }
        (mask, may_repeat)
    }

    /// Whether a field before `field` has its name.
    fn repeats(&self, field: &Field) -> bool {
        self.may_repeat
            && self
                .event
                .fields()
                .take_while(|f| f.index() < field.index())
                .any(|f| f.name() == field.name())
    }

    /// Whether the event has a field whose escaped name is `escaped`.
    fn contains(&self, escaped: &str) -> bool {
        self.event.fields().any(|f| escaped_eq(f.name(), escaped))
    }
}

struct EventVisitor<'a, 'l> {
    format: &'a EcsFormat,
    line: &'a mut Line<'l>,
    names: &'a EventNames<'a>,
    pass: Pass,
    skip_log_fields: bool,
    result: fmt::Result,
}

impl EventVisitor<'_, '_> {
    /// Writes the key of `field` if this pass writes it; `false` to skip the field.
    fn key(&mut self, field: &Field) -> bool {
        if self.result.is_err() {
            return false;
        }
        let name = field.name();
        let is_message = name == "message";
        if (self.pass == Pass::Message) != is_message {
            return false;
        }
        // The first field of a name wins.
        if self.names.repeats(field) || (self.skip_log_fields && name.starts_with("log.")) {
            return false;
        }
        self.result = if is_message {
            self.line.out.write_str(",\"message\":")
        } else {
            self.format.write_key(self.line.out, name)
        };
        self.result.is_ok()
    }
}

impl ValueSink for EventVisitor<'_, '_> {
    fn plain(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result) {
        if self.key(field) {
            self.result = write(self.line.out);
        }
    }

    fn string(&mut self, field: &Field, content: impl FnOnce(&mut StringValue<'_>) -> fmt::Result) {
        if self.key(field) {
            self.result = self.line.string(content);
        }
    }
}

/// Where a visitor sends each field's value: a JSON number or literal, written as is, or a
/// JSON string whose content the closure writes (the sink escapes, and may cut, it).
trait ValueSink {
    fn plain(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result);
    fn string(&mut self, field: &Field, content: impl FnOnce(&mut StringValue<'_>) -> fmt::Result);
}

/// How each type of value goes on a line, for events and spans alike.
struct Values<T>(T);

impl<T: ValueSink> Visit for Values<T> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.string(field, |w| write!(w, "{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.string(field, |w| w.write_str(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.plain(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.plain(field, |w| write!(w, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.0.plain(field, |w| write!(w, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.0.plain(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.plain(field, |w| write_f64(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0
            .plain(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.string(field, |w| write_error_chain(w, value));
    }
}

/// The field formatter for spans: stores each span's fields as escaped key and JSON value
/// pairs, ready to copy into every event inside the span. Use it with [`EcsFormat`].
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonFields {
    _private: (),
}

impl<'writer> FormatFields<'writer> for JsonFields {
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
struct StoredFields<'a> {
    fragment: &'a str,
    maybe_reserved: bool,
    mask: u64,
    entries: &'a str,
}

impl<'a> StoredFields<'a> {
    fn parse(stored: &'a str) -> Self {
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
    fn entries(&self) -> impl Iterator<Item = (&'a str, &'a str)> + use<'a> {
        self.entries
            .split(FIELD_END)
            .filter_map(|field| field.split_once(KEY_END))
    }

    /// The stored form of `(escaped key, JSON value)` pairs.
    fn build(entries: &[(String, String)]) -> String {
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
struct SpanVisitor {
    entries: Vec<(String, String)>,
    result: fmt::Result,
}

impl SpanVisitor {
    fn new() -> Self {
        SpanVisitor {
            entries: Vec::new(),
            result: Ok(()),
        }
    }

    fn field(&mut self, field: &Field, write: impl FnOnce(&mut String) -> fmt::Result) {
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

fn write_f64(w: &mut impl fmt::Write, value: f64) -> fmt::Result {
    if value.is_finite() {
        write!(w, "{value}")
    } else {
        // JSON has no NaN or infinity.
        write!(w, "\"{value}\"")
    }
}

/// The error's message, then each `source()`'s, separated by `": "`.
fn write_error_chain(
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
    table[0xe2] = true;
    table
};

/// The JSON escaping of `s`, without quotes.
pub(crate) fn write_escaped(w: &mut (impl fmt::Write + ?Sized), s: &str) -> fmt::Result {
    escape_pieces(s, |piece, _| w.write_str(piece))
}

/// Hands `s` to `emit` as escaped pieces: runs of characters that need no escaping
/// (`raw` true) and single escape sequences (`raw` false).
fn escape_pieces(s: &str, mut emit: impl FnMut(&str, bool) -> fmt::Result) -> fmt::Result {
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

/// Whether some configuration reserves `key` (span fields are stored before the formatter
/// that reads them is known): the formatter's own keys, `fields.`, or any scheme's.
fn may_be_reserved(key: &str) -> bool {
    key.starts_with(RENAMED)
        || BASE_KEYS.contains(&key)
        || FieldScheme::ALL
            .iter()
            .any(|scheme| scheme.reserves(key, ExtraFields::ALL))
}

/// A bit for the first byte of `key` when it is in 64..128 (where lowercase letters are),
/// else none.
fn first_byte_bit(key: &str) -> u64 {
    match key.as_bytes().first() {
        Some(&b) if (64..128).contains(&b) => 1 << (b - 64),
        _ => 0,
    }
}

/// One of 64 bits for a (escaped) name: equal names have equal bits, so names whose bits
/// differ cannot be equal.
fn name_bit(escaped: &str) -> u64 {
    let bytes = escaped.as_bytes();
    let (first, last) = match bytes {
        [] => (0, 0),
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
    };
    let hash =
        bytes.len().wrapping_mul(31) ^ usize::from(first).wrapping_mul(7) ^ usize::from(last);
    1 << (hash % 64)
}

/// Whether `raw`, escaped, equals `escaped`: span keys are stored escaped, event field
/// names are raw. Field names rarely need escaping, so the fast path is a plain compare.
fn escaped_eq(raw: &str, escaped: &str) -> bool {
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

/// `2026-11-29T03:49:31.123456Z`. The date and time to the second are worked out once per
/// second per thread; each event writes only the microseconds.
fn write_timestamp(w: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since_epoch.as_secs();
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    let put = |buf: &mut [u8], at: usize, digits: usize, mut value: u64| {
        for i in (at..at + digits).rev() {
            buf[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    let (cached_secs, prefix) = SECOND.with(Cell::get);
    if cached_secs == secs {
        buf[..19].copy_from_slice(&prefix);
    } else {
        let c = Civil::from_system_time(now);
        put(&mut buf, 0, 4, c.year.clamp(0, 9999) as u64);
        put(&mut buf, 5, 2, c.month.into());
        put(&mut buf, 8, 2, c.day.into());
        put(&mut buf, 11, 2, c.hour.into());
        put(&mut buf, 14, 2, c.minute.into());
        put(&mut buf, 17, 2, c.second.into());
        let mut prefix = [0; 19];
        prefix.copy_from_slice(&buf[..19]);
        SECOND.with(|cell| cell.set((secs, prefix)));
    }
    put(&mut buf, 20, 6, since_epoch.subsec_micros().into());
    // Only ASCII digits and separators were written.
    w.write_str(std::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    #[test]
    fn timestamps() {
        let at = |secs, nanos| {
            let mut out = String::new();
            write_timestamp(&mut out, UNIX_EPOCH + Duration::new(secs, nanos)).unwrap();
            out
        };
        assert_eq!(
            at(1_601_599_873, 410_254_284),
            "2020-10-02T00:51:13.410254Z"
        );
        // The same second again (cached), then the next one.
        assert_eq!(
            at(1_601_599_873, 999_999_999),
            "2020-10-02T00:51:13.999999Z"
        );
        assert_eq!(at(1_601_599_874, 5_000), "2020-10-02T00:51:14.000005Z");
        assert_eq!(at(1_709_164_799, 0), "2024-02-28T23:59:59.000000Z");
    }

    #[test]
    fn stored_fields_round_trip() {
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
