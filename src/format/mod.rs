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
//! - The optional keys, when their options are on (see
//!   [`Builder::with_file`](crate::Builder::with_file) and the methods after it):
//!   `filename`, `line_number`, `threadName`, `threadId`, `span`, `spans`, and the static
//!   fields.
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
//!
//! The layer ([`crate::layer`]) is the way to write these lines; [`Timestamp`] sets how the
//! `timestamp` is written and [`DEFAULT_MAX_LINE_BYTES`] is the default line limit.

mod address_map;
mod event;
mod keys;
mod options;
mod store;
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
use tracing::{Event, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::fields::{ExtraFields, FieldScheme};
use crate::json::{write_error_chain, write_escaped, write_f64, write_integer, write_json_str};
use crate::line_counts::LineCounts;
use crate::metadata::EcsMetadata;
use event::{EventNames, EventVisitor, Pass, Target, Valued, write_prelude};
use keys::{RENAMED, ReservedKeys};
pub(crate) use keys::{name_bit, same_name};
pub(crate) use options::LineOptions;
pub use options::Timestamp;
use smallvec::SmallVec;
use store::LineNames;
pub(crate) use store::SpanStore;
use truncate::{Line, StringValue, Strings, share};

/// What a layer keeps in each span's extensions: the extension that holds the span's
/// [`SpanStore`], beside what other parts of the layer keep for the span.
pub(crate) trait HasStore: Send + Sync + 'static {
    fn store(&self) -> &SpanStore;
}

/// The longest line written by default, newline excluded: CloudWatch Logs' 256 KiB event
/// limit less the 26 bytes it counts for each event.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024 - 26;
/// Marks a line whose string values were cut to fit.
const TRUNCATED: &str = ",\"truncated\":true";

/// The event formatter: each event as one line, as the module documentation describes.
#[derive(Debug)]
pub(crate) struct EcsFormat {
    /// `,"ecs":{…}` or the flat keys: empty when there is no metadata.
    identity: Arc<LiveIdentity>,
    /// Keys event and span fields must not take.
    reserved: ReservedKeys,
    /// The optional keys: file, line, thread, span names, timestamp form.
    options: LineOptions,
    /// The static fields, rendered once: `,"service":"orders",…`.
    statics: Box<str>,
    /// The longest line, newline excluded.
    max_line: usize,
    /// The subscriber the layer joined, for the trace context of spans.
    #[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
    dispatch: Arc<OnceCell<WeakDispatch>>,
}

impl EcsFormat {
    /// A formatter enriching every line with `metadata` (none when `None`), laid out by
    /// `scheme` with the `extra` fields, with the optional keys of `options`, cutting lines
    /// longer than `max_line`; `dispatch` is where the layer puts the subscriber it joins.
    pub(crate) fn new(
        metadata: Option<&EcsMetadata>,
        (scheme, extra): (FieldScheme, ExtraFields),
        options: LineOptions,
        max_line: usize,
        dispatch: Arc<OnceCell<WeakDispatch>>,
    ) -> Self {
        let initial = metadata
            .map(|m| scheme.render(m, extra))
            .unwrap_or_default();
        let mut reserved = ReservedKeys::new(scheme, extra);
        for key in options.keys() {
            reserved.add(Cow::Borrowed(key));
        }
        // A static field's key is reserved too; one the formatter owns already is renamed.
        let mut statics = String::new();
        for (key, value) in &options.statics {
            let written = if reserved.contains(key, name_bit(key), false) {
                format!("{RENAMED}{key}")
            } else {
                key.clone()
            };
            statics.push(',');
            // Writing to a String cannot fail.
            let _ = write_json_str(&mut statics, &written);
            statics.push(':');
            let _ = crate::json::write_value(&mut statics, value);
            reserved.add(Cow::Owned(written));
        }
        EcsFormat {
            identity: Arc::new(LiveIdentity {
                scheme,
                extra,
                initial: initial.into_boxed_str(),
                recovered: OnceCell::new(),
            }),
            reserved,
            options,
            statics: statics.into_boxed_str(),
            max_line,
            dispatch,
        }
    }

    /// Reserves a key the layer writes itself on some lines.
    pub(crate) fn reserving(mut self, key: &'static str) -> Self {
        self.reserved.add(Cow::Borrowed(key));
        self
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

    /// `,"key":` with the renaming rule applied; `name` is the field's name.
    fn write_key(&self, w: &mut String, name: &str, traced: bool) -> fmt::Result {
        w.push_str(",\"");
        if self.reserved.contains(name, name_bit(name), traced) {
            w.push_str(RENAMED);
        }
        write_escaped(w, name)?;
        w.push_str("\":");
        Ok(())
    }

    /// Renders the line for `event` in a per-thread buffer, cut to the line limit if need be,
    /// and hands it to `emit`. `leaf` is the event's span (`ctx.event_span(event)`), looked
    /// up once by the caller, which may need it too.
    pub(crate) fn format_line<S, X: HasStore>(
        &self,
        leaf: Option<&SpanRef<'_, S>>,
        event: &Event<'_>,
        emit: impl FnOnce(&str),
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
            let mut line = Line::new(out, Strings::Whole);
            self.render::<S, X>(leaf, event, now, identity, &mut line)?;
            if out.len() > self.max_line + 1 {
                self.render_truncated::<S, X>(leaf, event, now, identity, out)?;
            }
            emit(out);
            shrink_after_huge_lines(out);
            Ok(())
        })
    }

    /// Writes the line for `event`, ending with `identity`, into `line`.
    fn render<S, X: HasStore>(
        &self,
        leaf: Option<&SpanRef<'_, S>>,
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
        let names = EventNames::of(event);
        // A `log` record's target is its own, not its callsite's.
        let target = if names.facts.plain_target && normalized.is_none() {
            Target::Plain(meta.target())
        } else {
            Target::Any(meta.target())
        };
        write_prelude(line.out, &self.options, now, *meta.level(), target)?;

        #[cfg(feature = "opentelemetry")]
        let ids = self.trace_ids(leaf);
        #[cfg(feature = "opentelemetry")]
        let trace_ids = ids.as_ref().and_then(crate::otel::TraceIds::as_str);
        #[cfg(not(feature = "opentelemetry"))]
        let trace_ids = None;
        let traced = trace_ids.is_some();

        // One visit when `message` comes first anyway, else `message` first, then the rest.
        let one_pass = names.facts.message_first;
        let mut visitor = Values(EventVisitor {
            format: self,
            line: &mut *line,
            names: &names,
            plain: names.facts.plain(&self.reserved),
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

        self.write_span_fields::<S, X>(leaf, &names, &valued, traced, line);
        self.options.write_keys(line.out, meta, leaf)?;
        line.out.push_str(&self.statics);
        if line.cut {
            line.out.push_str(TRUNCATED);
        }
        line.out.push_str(identity);
        line.out.push_str("}\n");
        Ok(())
    }

    /// The fields of the event's spans, nearest first, each but those whose name is on the
    /// line already: a span none of whose names is (nor reserved) is copied whole.
    fn write_span_fields<S, X: HasStore>(
        &self,
        leaf: Option<&SpanRef<'_, S>>,
        names: &EventNames<'_>,
        valued: &Valued,
        traced: bool,
        line: &mut Line<'_>,
    ) where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        thread_local! {
            static ON_LINE: RefCell<LineNames> = RefCell::default();
        }
        let Some(leaf) = leaf else {
            return;
        };
        with_reused(&ON_LINE, |on_line| {
            on_line.clear();
            // The leaf, then each parent: `leaf.scope()` would look the leaf up again.
            let mut owned;
            let mut span = leaf;
            loop {
                let parent = span.parent();
                let extensions = span.extensions();
                if let Some(store) = extensions.get::<X>().map(X::store) {
                    self.write_span_store(store, names, valued, traced, on_line, line);
                    // Only spans further out need to know this one's names.
                    if parent.is_some() {
                        on_line.add(store);
                    }
                }
                drop(extensions);
                match parent {
                    Some(parent) => {
                        owned = parent;
                        span = &owned;
                    }
                    None => break,
                }
            }
        });
    }

    /// One span's fields, as [`write_span_fields`](Self::write_span_fields) says.
    fn write_span_store(
        &self,
        store: &SpanStore,
        names: &EventNames<'_>,
        valued: &Valued,
        traced: bool,
        on_line: &LineNames,
        line: &mut Line<'_>,
    ) {
        let nearer = names.facts.mask | on_line.mask() | self.reserved.own_mask();
        let whole = matches!(line.strings, Strings::Whole);
        if whole && !store.maybe_reserved() && store.mask() & nearer == 0 {
            line.out.push_str(store.fragment());
        } else {
            // Maybe a clash, or values to measure or cut: field by field.
            for field in store.fields() {
                if names.contains(field.name, field.bit, valued)
                    || on_line.contains(field.name, field.bit)
                {
                    continue;
                }
                line.out.push_str(",\"");
                if self.reserved.contains(field.name, field.bit, traced) {
                    line.out.push_str(RENAMED);
                }
                line.out.push_str(field.key(store.fragment()));
                line.out.push_str("\":");
                line.stored_value(field.value(store.fragment()), field.plain);
            }
        }
    }

    /// Renders again with every string value cut to the length that makes the line fit:
    /// first measuring the values, then sharing the room left among them, longest cut first.
    fn render_truncated<S, X: HasStore>(
        &self,
        leaf: Option<&SpanRef<'_, S>>,
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
            let mut line = Line::new(out, Strings::Measure(lengths));
            self.render::<S, X>(leaf, event, now, identity, &mut line)?;
            let fixed = out.len() + TRUNCATED.len();
            Ok(share(lengths, (self.max_line + 1).saturating_sub(fixed)))
        })?;
        out.clear();
        self.render::<S, X>(
            leaf,
            event,
            now,
            identity,
            &mut Line::new(out, Strings::Capped(cap)),
        )
    }
}

impl EcsFormat {
    /// A WARN line of the crate's own, `{"timestamp":…,"level":"WARN","target":
    /// "tracing_aws_ecs","message":…,<fields>}` with the static fields and the identity.
    fn render_own_warning(&self, message: &str, fields: &[(&str, u64)], out: &mut String) {
        // Writing to a String cannot fail.
        let _ = write_prelude(
            out,
            &self.options,
            SystemTime::now(),
            tracing::Level::WARN,
            Target::Plain("tracing_aws_ecs"),
        );
        out.push_str(",\"message\":");
        let _ = write_json_str(out, message);
        for (key, value) in fields {
            out.push_str(",\"");
            out.push_str(key);
            out.push_str("\":");
            let _ = write_integer(out, *value);
        }
        out.push_str(&self.statics);
        out.push_str(self.identity.current());
        out.push_str("}\n");
    }
}

impl crate::sink::Notice for EcsFormat {
    /// `"message":"3 lines lost (…)","lines_lost":3,"lost_write_error":3,…`.
    fn render_notice(&self, lost: &LineCounts, out: &mut String) {
        let mut fields: SmallVec<[(&str, u64); 6]> = SmallVec::new();
        fields.push(("lines_lost", lost.lost()));
        fields.extend(lost.losses().map(|(key, _, count)| (key, count)));
        self.render_own_warning(&lost.to_string(), &fields, out);
    }

    fn render_warning(&self, message: &str, out: &mut String) {
        self.render_own_warning(message, &[], out);
    }
}

#[cfg(feature = "opentelemetry")]
impl EcsFormat {
    /// The trace context of the event's span, when a `tracing-opentelemetry` layer traces it.
    fn trace_ids<S>(&self, leaf: Option<&SpanRef<'_, S>>) -> Option<crate::otel::TraceIds>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let dispatch = self.dispatch.get()?;
        let span = leaf?;
        if let Some(ids) = span.extensions().get::<crate::otel::TraceIds>() {
            return Some(*ids);
        }
        // Not looked up yet: the lookup locks the span's extensions, so ours are released.
        let ids = crate::otel::TraceIds::of(&span.id(), dispatch);
        // The lookup started the span, so its ids are settled: keep them for its next events.
        // `replace`: another thread may have cached them meanwhile (`insert` would panic).
        span.extensions_mut().replace(ids);
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
    /// A `&str` value: the commonest string, which needs no formatting machinery.
    fn str(&mut self, field: &Field, value: &str);
}

/// How each type of value goes on a line, for events and spans alike.
struct Values<T>(T);

impl<T: ValueSink> Visit for Values<T> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.string(field, |w| write!(w, "{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.str(field, value);
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
    // A thread-local destructor that logs: this thread's value is gone, a fresh one serves.
    if cell.try_with(|_| ()).is_err() {
        return f(&mut T::default());
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
