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
//! - The event's fields at the top level: integers as numbers, finite floats as numbers in
//!   the shortest form that reads back as the same value (with an exponent for magnitudes
//!   from 10^21 or under 10^-6, as `serde_json` writes them, so that every mainstream parser
//!   reads every line), NaN and infinities as the strings `"NaN"`, `"inf"` and `"-inf"`,
//!   booleans as booleans, strings as strings, `Debug` and `Display` values as strings,
//!   errors as their message followed by their `source()` chain, `": "`-separated.
//! - The fields of the current span and of its parents, at the top level too. **On a clash
//!   the nearest wins**: the event's own field over any span's, an inner span's over an outer
//!   one's (names are compared as given, before the renaming below). Within one event or
//!   span, the first field of a name wins; `span.record` replaces a span's value.
//! - **A field without a value is as if absent** (an `Option` that is `None`, a span field
//!   declared `Empty` and not recorded): it hides nothing and is not the first of its name.
//! - The optional keys, when their options are on (see [`EcsFormat::with_file`] and the
//!   methods after it): `filename`, `line_number`, `threadName`, `threadId`, `span`, `spans`,
//!   and the static fields.
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
//! character — C0 (U+0000–U+001F, newlines and the ESC of ANSI sequences among them), DEL
//! (U+007F) and C1 (U+0080–U+009F, among them NEL and the 8-bit CSI) — and U+2028/U+2029:
//! a message cannot forge a second line for any reader. **Numbers are never cut** when a line
//! is cut to its limit, nor are keys or the identity; only string values are.
//!
//! The identity is rendered once, when the formatter is built (and once more if the metadata
//! is recovered in the background after a failed start-up); span fields once, when the span
//! is created or recorded. Formatting an event copies those bytes and allocates nothing.

mod address_map;
mod event;
mod options;
mod spans;
mod truncate;

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::thread::LocalKey;
use std::time::SystemTime;

use once_cell::sync::OnceCell;
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
#[cfg(feature = "opentelemetry")]
use tracing::span::Id;
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::layer::Context;
#[cfg(feature = "opentelemetry")]
use tracing_subscriber::registry::SpanRef;
use tracing_subscriber::registry::{LookupSpan, Scope};

use crate::fields::{ExtraFields, FieldScheme};
use crate::json::{write_error_chain, write_escaped, write_f64, write_integer, write_json_str};
use crate::metadata::EcsMetadata;
use event::{EventNames, EventVisitor, Pass, Valued, write_prelude};
use options::LineOptions;
pub use options::Timestamp;
pub use spans::SpanFields;
use spans::{LineKeys, StoredFields};
use truncate::{Line, StringValue, Strings, share};

/// Keys the formatter writes itself.
const BASE_KEYS: &[&str] = &["timestamp", "level", "target", "message", "truncated"];
/// Keys the formatter writes on lines inside a traced span (feature `opentelemetry`): the
/// formatter's on those lines only, so that a program without tracing keeps its own fields
/// of these names whatever features the dependency graph turns on.
const TRACE_KEYS: &[&str] = &["trace_id", "span_id", "trace_flags", "xray_trace_id"];

/// The longest line written by default, newline excluded: CloudWatch Logs' 256 KiB event
/// limit less the 26 bytes it counts for each event.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024 - 26;
/// Marks a line whose string values were cut to fit.
const TRUNCATED: &str = ",\"truncated\":true";
/// The prefix of renamed keys.
const RENAMED: &str = "fields.";

/// The event formatter: plug it into [`tracing_subscriber::fmt::Layer::event_format`] with
/// [`SpanFields`] as the field formatter. [`crate::layer`] does that for you.
///
/// ```
/// use tracing_aws_ecs::{EcsFormat, FieldScheme, ExtraFields, SpanFields};
/// use tracing_subscriber::prelude::*;
///
/// let format = EcsFormat::new(None, FieldScheme::Nested, ExtraFields::NONE);
/// let layer = tracing_subscriber::fmt::layer()
///     .with_ansi(false)
///     .fmt_fields(SpanFields::default())
///     .event_format(format);
/// let _subscriber = tracing_subscriber::registry().with(layer);
/// ```
#[derive(Clone, Debug)]
pub struct EcsFormat {
    /// `,"ecs":{…}` or the flat keys: empty when there is no metadata.
    identity: Arc<LiveIdentity>,
    /// Keys event and span fields must not take.
    reserved: Vec<Cow<'static, str>>,
    /// The optional keys: file, line, thread, span names, timestamp form, static fields.
    options: LineOptions,
    /// The key prefixes they must not take either (the scheme's families and `fields.`).
    reserved_prefixes: Box<[&'static str]>,
    /// The first bytes of those prefixes, less 64 (they are lowercase ASCII letters), to clear
    /// most names with one test.
    prefix_firsts: u64,
    /// Their [`name_bit`]s, to clear most names without a comparison.
    reserved_mask: u64,
    /// The bits of the reserved keys that only this formatter's options add.
    own_mask: u64,
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
        let reserved: Vec<Cow<'static, str>> = BASE_KEYS
            .iter()
            .copied()
            .chain(scheme.top_level_keys(extra))
            .map(Cow::Borrowed)
            .collect();
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
            reserved,
            own_mask: 0,
            options: LineOptions::default(),
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

    /// Writes the callsite's source file as `"filename"` (default off).
    pub fn with_file(self, on: bool) -> Self {
        self.option(|options| options.file = on)
    }

    /// Writes the callsite's line as `"line_number"` (default off).
    pub fn with_line_number(self, on: bool) -> Self {
        self.option(|options| options.line_number = on)
    }

    /// Writes the thread's id as `"threadId"` (`"ThreadId(1)"`, default off).
    pub fn with_thread_ids(self, on: bool) -> Self {
        self.option(|options| options.thread_ids = on)
    }

    /// Writes the thread's name as `"threadName"` (its id when unnamed; default off).
    pub fn with_thread_names(self, on: bool) -> Self {
        self.option(|options| options.thread_names = on)
    }

    /// Writes the name of the span the event is in as `"span"` (default off). Its fields are
    /// on the line already.
    pub fn with_current_span(self, on: bool) -> Self {
        self.option(|options| options.current_span = on)
    }

    /// Writes the names of the spans the event is in, from the root, as `"spans"` (default
    /// off).
    pub fn with_span_list(self, on: bool) -> Self {
        self.option(|options| options.span_list = on)
    }

    /// How the `timestamp` is written (default [`Timestamp::Rfc3339Micros`]).
    pub fn with_timestamp(mut self, timestamp: Timestamp) -> Self {
        self.options.timestamp = timestamp;
        self
    }

    /// A field written on every line, rendered once like the identity: `service`, `env`,
    /// `version`. Its key is reserved: an event or span field of that name is written as
    /// `fields.<name>`. A key the formatter owns already is renamed the same way.
    pub fn with_static_field(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        let key = key.into();
        let written = if self.is_reserved(&key, false) {
            format!("{RENAMED}{key}")
        } else {
            key
        };
        let mut rendered = String::from(std::mem::take(&mut self.options.statics));
        rendered.push(',');
        // Writing to a String cannot fail.
        let _ = write_json_str(&mut rendered, &written);
        rendered.push(':');
        let _ = crate::json::write_value(&mut rendered, &value.into());
        self.options.statics = rendered.into_boxed_str();
        self.reserve(Cow::Owned(written));
        self
    }

    /// Reserves a key the layer writes itself on some lines.
    pub(crate) fn reserving(mut self, key: &'static str) -> Self {
        self.reserve(Cow::Borrowed(key));
        self
    }

    /// Sets an option, then reserves the keys the options write.
    fn option(mut self, set: impl FnOnce(&mut LineOptions)) -> Self {
        set(&mut self.options);
        for key in self.options.keys() {
            self.reserve(Cow::Borrowed(key));
        }
        self
    }

    fn reserve(&mut self, key: Cow<'static, str>) {
        if !self.reserved.contains(&key) {
            self.reserved_mask |= name_bit(&key);
            self.own_mask |= name_bit(&key);
            self.reserved.push(key);
        }
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

    /// Whether a field named `key` is renamed; `traced` when the line carries trace ids.
    fn is_reserved(&self, key: &str, traced: bool) -> bool {
        self.is_reserved_with_bit(key, name_bit(key), traced)
    }

    /// [`Self::is_reserved`], given the key's [`name_bit`].
    fn is_reserved_with_bit(&self, key: &str, bit: u64, traced: bool) -> bool {
        (self.prefix_firsts & first_byte_bit(key) != 0
            && self.reserved_prefixes.iter().any(|p| key.starts_with(p)))
            || (self.reserved_mask & bit != 0 && self.reserved.iter().any(|k| k == key))
            || (traced && TRACE_KEYS.contains(&key))
    }

    /// `,"key":` with the renaming rule applied; `key` is raw.
    fn write_key(&self, w: &mut impl fmt::Write, key: &str, traced: bool) -> fmt::Result {
        w.write_str(",\"")?;
        if self.is_reserved(key, traced) {
            w.write_str(RENAMED)?;
        }
        write_escaped(w, key)?;
        w.write_str("\":")
    }
}

impl<S> FormatEvent<S, SpanFields> for EcsFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, SpanFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        self.format_line(ctx, event, |line| writer.write_str(line))
    }
}

/// The spans an event's line reads: through `fmt`'s context when the formatter is plugged
/// into `fmt`'s layer, or through a layer's context when the crate's layer writes the line
/// itself.
pub(crate) trait EventSpans<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    /// The event's span and its parents, innermost first.
    fn scope(&self) -> Option<Scope<'_, S>>;
    /// A span by its id.
    #[cfg(feature = "opentelemetry")]
    fn span(&self, id: &Id) -> Option<SpanRef<'_, S>>;
}

impl<S> EventSpans<S> for FmtContext<'_, S, SpanFields>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn scope(&self) -> Option<Scope<'_, S>> {
        self.event_scope()
    }

    #[cfg(feature = "opentelemetry")]
    fn span(&self, id: &Id) -> Option<SpanRef<'_, S>> {
        FmtContext::span(self, id)
    }
}

/// A layer's context, with the event it is asked about.
pub(crate) struct LayerSpans<'c, 'a, S> {
    pub(crate) ctx: &'c Context<'a, S>,
    pub(crate) event: &'c Event<'c>,
}

impl<S> EventSpans<S> for LayerSpans<'_, '_, S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn scope(&self) -> Option<Scope<'_, S>> {
        self.ctx.event_scope(self.event)
    }

    #[cfg(feature = "opentelemetry")]
    fn span(&self, id: &Id) -> Option<SpanRef<'_, S>> {
        self.ctx.span(id)
    }
}

impl EcsFormat {
    /// Renders the line for `event` in a per-thread buffer, cut to the line limit if need be,
    /// and hands it to `emit`.
    pub(crate) fn format_line<S>(
        &self,
        ctx: &impl EventSpans<S>,
        event: &Event<'_>,
        emit: impl FnOnce(&str) -> fmt::Result,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        with_reused(&LINE, |out| {
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
            let emitted = emit(out);
            shrink_after_huge_lines(out);
            emitted
        })
    }
}

impl EcsFormat {
    /// Writes the line for `event`, ending with `identity`, into `line`.
    fn render<S>(
        &self,
        ctx: &impl EventSpans<S>,
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
        write_prelude(line.out, &self.options, now, *meta.level(), meta.target())?;

        #[cfg(feature = "opentelemetry")]
        let ids = self.trace_ids(ctx);
        #[cfg(feature = "opentelemetry")]
        let trace_ids = ids.as_ref().and_then(crate::otel::TraceIds::as_str);
        #[cfg(not(feature = "opentelemetry"))]
        let trace_ids = None;
        let traced = trace_ids.is_some();

        let names = EventNames::of(event);
        // One visit when `message` comes first anyway, else `message` first, then the rest.
        let one_pass = names.facts.message_first;
        let mut visitor = Values(EventVisitor {
            format: self,
            line: &mut *line,
            names: &names,
            pass: if one_pass { Pass::All } else { Pass::Message },
            valued: Valued::default(),
            skip_log_fields: normalized.is_some(),
            traced,
            trace_ids,
            result: Ok(()),
        });
        event.record(&mut visitor);
        if !one_pass {
            visitor.0.pass = Pass::Fields;
            event.record(&mut visitor);
        }
        // No field after `message`: the ids end the event's part of the line.
        if let Some(ids) = visitor.0.trace_ids.take() {
            visitor.0.line.out.push_str(ids);
        }
        visitor.0.result?;
        let valued = std::mem::take(&mut visitor.0.valued);

        if let Some(scope) = ctx.scope() {
            thread_local! {
                static KEYS: RefCell<String> = const { RefCell::new(String::new()) };
            }
            with_reused(&KEYS, |keys| {
                let mut on_line = LineKeys::new(keys);
                let mut scope = scope.peekable();
                while let Some(span) = scope.next() {
                    let extensions = span.extensions();
                    let Some(stored) = extensions.get::<FormattedFields<SpanFields>>() else {
                        continue;
                    };
                    let stored = StoredFields::parse(&stored.fields);
                    let nearer = names.facts.mask | on_line.mask() | self.own_mask;
                    let whole = matches!(line.strings, Strings::Whole);
                    // The keys this formatter reserves beyond what every configuration does
                    // (line options, static fields) are not marked in the store: their bits
                    // are in `own_mask`.
                    if whole && !stored.maybe_reserved && stored.mask & nearer == 0 {
                        line.out.push_str(stored.fragment);
                    } else {
                        // Maybe a clash, or values to measure or cut: field by field.
                        for entry in stored.entries() {
                            let key = entry.key;
                            let bit = name_bit(key);
                            if names.contains(key, bit, &valued) || on_line.contains(key, bit) {
                                continue;
                            }
                            line.out.push_str(",\"");
                            if self.is_reserved_with_bit(key, bit, traced) {
                                line.out.push_str(RENAMED);
                            }
                            line.out.push_str(key);
                            line.out.push_str("\":");
                            line.stored_value(entry.value, entry.plain);
                        }
                    }
                    // Only spans further out need to know this one's keys.
                    if scope.peek().is_some() {
                        on_line.add(&stored);
                    }
                }
            });
        }

        if self.options.any() {
            self.options.write_keys(line.out, meta, ctx)?;
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
        ctx: &impl EventSpans<S>,
        event: &Event<'_>,
        now: SystemTime,
        identity: &str,
        out: &mut String,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        thread_local! {
            static LENGTHS: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
        }
        let cap = with_reused(&LENGTHS, |lengths| {
            lengths.clear();
            out.clear();
            // A count of the strings' escaped lengths, not a rendering: the line gets only
            // what is not a string value.
            self.render(
                ctx,
                event,
                now,
                identity,
                &mut Line::new(out, Strings::Measure(lengths)),
            )?;
            let fixed = out.len() + TRUNCATED.len();
            Ok(share(lengths, (self.max_line + 1).saturating_sub(fixed)))
        })?;
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
    fn trace_ids<S>(&self, ctx: &impl EventSpans<S>) -> Option<crate::otel::TraceIds>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let dispatch = self.dispatch.as_ref().and_then(|d| d.get())?;
        let span = ctx.scope().and_then(|mut scope| scope.next())?;
        if let Some(ids) = span.extensions().get::<crate::otel::TraceIds>() {
            return Some(*ids);
        }
        // Not looked up yet: the lookup locks the span's extensions, so release ours first.
        let id = span.id();
        drop(span);
        let ids = crate::otel::TraceIds::of(&id, dispatch);
        // The lookup started the span, so its ids are settled: keep them for its next events.
        if let Some(span) = ctx.span(&id) {
            // `replace`: another thread may have cached them meanwhile (`insert` would panic).
            span.extensions_mut().replace(ids);
        }
        Some(ids)
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
        self.0.plain(field, |w| write_integer(w, value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.plain(field, |w| write_integer(w, value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.0.plain(field, |w| write_integer(w, value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.0.plain(field, |w| write_integer(w, value));
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

/// Runs `f` on this thread's `T` in `cell`, as the last use left it; on a fresh `T` when it
/// is in use already (formatting that logs, in a `Debug` impl, re-enters).
fn with_reused<T: Default, R>(
    cell: &'static LocalKey<RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    cell.with(|cell| {
        let mut fresh = None;
        let mut reused = cell.try_borrow_mut();
        // One call of `f`, so that it is inlined as if written here.
        let value = match reused.as_deref_mut() {
            Ok(reused) => reused,
            Err(_) => fresh.insert(T::default()),
        };
        f(value)
    })
}

/// The size a thread's line buffer returns to.
const STEADY_LINE_BYTES: usize = 16 * 1024;

/// One huge line must not pin its size in memory for the thread's life: after 64 lines in a
/// row that fit in half the steady size, the buffer shrinks back to it. A thread that keeps
/// writing big lines keeps its buffer, and allocates nothing per line.
fn shrink_after_huge_lines(out: &mut String) {
    thread_local! {
        static SMALL_RUN: Cell<u32> = const { Cell::new(0) };
    }
    if out.capacity() <= STEADY_LINE_BYTES {
        return;
    }
    let run = if out.len() <= STEADY_LINE_BYTES / 2 {
        SMALL_RUN.with(|n| n.get()) + 1
    } else {
        0
    };
    if run >= 64 {
        out.clear();
        out.shrink_to(STEADY_LINE_BYTES);
        SMALL_RUN.with(|n| n.set(0));
    } else {
        SMALL_RUN.with(|n| n.set(run));
    }
}

/// Whether some configuration reserves `key` (span fields are stored before the formatter
/// that reads them is known): the formatter's own keys, `fields.`, or any scheme's.
fn may_be_reserved(key: &str) -> bool {
    /// Every key and key family any configuration reserves, worked out once.
    struct Reserved {
        exact: Vec<&'static str>,
        prefixes: Vec<&'static str>,
    }
    static RESERVED: once_cell::sync::Lazy<Reserved> = once_cell::sync::Lazy::new(|| {
        let mut exact: Vec<&str> = BASE_KEYS.iter().chain(TRACE_KEYS).copied().collect();
        let mut prefixes = vec![RENAMED];
        for scheme in FieldScheme::ALL {
            exact.extend(scheme.top_level_keys(ExtraFields::ALL));
            prefixes.extend(scheme.reserved_prefixes());
        }
        exact.sort_unstable();
        exact.dedup();
        Reserved { exact, prefixes }
    });
    RESERVED.exact.binary_search(&key).is_ok()
        || RESERVED
            .prefixes
            .iter()
            .any(|prefix| key.starts_with(prefix))
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
/// differ cannot be equal. FNV-1a over every byte, then mixed: FNV's top bits never see the
/// last byte, and names that differ only there (`f01`, `f02`) are the commonest look-alikes.
fn name_bit(escaped: &str) -> u64 {
    let hash = escaped.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mixed = (hash ^ (hash >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    1 << (mixed >> 58)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alike_names_spread_over_the_bits() {
        // 20 names into 64 bits: about 17 bits expected; all in one bit (as when the last
        // byte is not mixed in) sends every name to the slow path.
        let bits = |names: &[String]| {
            names
                .iter()
                .fold(0u64, |mask, name| mask | name_bit(name))
                .count_ones()
        };
        let numbered: Vec<String> = (1..=20).map(|i| format!("f{i:02}")).collect();
        let letters: Vec<String> = ('a'..='t').map(String::from).collect();
        let ids: Vec<String> = ["order", "offer", "owner", "other", "outer"]
            .iter()
            .flat_map(|stem| [format!("{stem}_id"), format!("{stem}_ids")])
            .collect();
        assert!(bits(&numbered) >= 12, "{}", bits(&numbered));
        assert!(bits(&letters) >= 12, "{}", bits(&letters));
        assert!(bits(&ids) >= 6, "{}", bits(&ids));
    }

    #[test]
    fn a_huge_line_does_not_pin_its_buffer() {
        let mut out = String::with_capacity(300 * 1024);
        out.push_str("a huge line");
        // Big lines keep the buffer: no allocation per line for a thread that writes them.
        out.push_str(&"x".repeat(20 * 1024));
        for _ in 0..100 {
            shrink_after_huge_lines(&mut out);
        }
        assert!(out.capacity() >= 300 * 1024);
        // Then 64 small lines in a row give the memory back.
        for i in 0..64 {
            out.clear();
            out.push_str("small");
            assert!(out.capacity() >= 300 * 1024, "not before 64: {i}");
            shrink_after_huge_lines(&mut out);
        }
        assert!(out.capacity() <= STEADY_LINE_BYTES);
    }
}
