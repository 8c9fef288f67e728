//! The enriched layer: each event as one JSON line, with request-scoped buffering and span
//! events (or `fmt`'s text off ECS, when asked for).

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;

use once_cell::sync::OnceCell;
use tracing::dispatcher::WeakDispatch;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, span};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{DefaultFields, Format};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::buffering::{Buffer, Route};
use crate::format::{EcsFormat, HasStore, SpanStore};
use crate::line_counts::LineCounter;
use crate::request_metrics::{OpenRequest, Recorder};
use crate::sink::{CountingWriter, LineSink};
use crate::span_events::SpanEvents;

/// The layer [`layer`](crate::layer) and [`Builder::layer`](crate::Builder::layer) return:
/// each event as one JSON line (see [`format`](crate::format)) written to a [`MakeWriter`]
/// (or, off ECS with [`Builder::with_text_off_ecs`](crate::Builder::with_text_off_ecs), the
/// `fmt` layer's own text format). It also keeps a handle on the subscriber it joins,
/// through which the `opentelemetry` feature reads the trace context of spans.
pub struct EcsLayer<S, W = fn() -> io::Stdout> {
    inner: Inner<S, W>,
    dispatch: Arc<OnceCell<WeakDispatch>>,
    /// Lines for spans opening and closing, on the JSON path (the text path has `fmt`'s own).
    span_events: SpanEvents,
    /// Request-scoped buffering, on the JSON path.
    buffer: Option<Buffer>,
}

/// The JSON lines, or human-readable text off ECS.
enum Inner<S, W> {
    Json(JsonLayer<S, W>),
    Text(TextLayer<S, W>),
}

/// What the layer keeps in each span's extensions: the span's fields and, on a request's root
/// span when request metrics are on, the open request. One allocation for both.
#[derive(Debug, Default)]
struct SpanData {
    fields: SpanStore,
    request: Option<OpenRequest>,
}

impl HasStore for SpanData {
    fn store(&self) -> &SpanStore {
        &self.fields
    }
}

impl Drop for SpanData {
    /// The span closed (the registry drops its data after every layer's `on_close`), or the
    /// registry went: a request's root span ends the request. Here rather than in
    /// `on_close`, which would cost every span that is not a request a lookup.
    fn drop(&mut self) {
        if let Some(request) = &self.request {
            request.end(&self.fields);
        }
    }
}

/// The JSON path: each span's fields kept in its extensions as a [`SpanStore`], and each
/// event's line rendered by [`EcsFormat`] in its own per-thread buffer and written straight
/// to the writer.
struct JsonLayer<S, W> {
    format: Arc<EcsFormat>,
    sink: Arc<CountingWriter<W>>,
    /// The same, its writer's type left aside: for what the layer's drop says.
    shared: Arc<dyn LineSink>,
    /// Where root spans' requests go, when request metrics are on.
    requests: Option<Arc<Recorder>>,
    _subscriber: PhantomData<fn(S)>,
}

impl<S, W> Drop for JsonLayer<S, W> {
    /// The subscriber is going: the registry drops the spans still open after its layers,
    /// and those requests did not finish; no line will come to say the losses not said.
    fn drop(&mut self) {
        self.shared.say_losses();
        if let Some(recorder) = &self.requests {
            recorder.layer_gone();
        }
    }
}

impl<S, W> JsonLayer<S, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    /// Renders `event`'s line and hands it to `emit`; `leaf` is its span.
    fn render(&self, event: &Event<'_>, leaf: Option<&SpanRef<'_, S>>, emit: impl FnOnce(&str)) {
        let _ = self.format.format_line::<S, SpanData>(leaf, event, emit);
    }
}

impl<S, W> JsonLayer<S, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    /// Renders `event`'s line and writes it.
    fn write(&self, event: &Event<'_>, leaf: Option<&SpanRef<'_, S>>) {
        self.render(event, leaf, |line| {
            // A line that cannot be written is lost, counted, and said on the next line
            // written: not on stderr, which would only add to the trouble (stdout closed).
            if self.sink.write(line.as_bytes(), event.metadata()) {
                crate::panic::note_written(event.metadata().target());
            }
        });
    }
}

impl<S, W> Layer<S> for JsonLayer<S, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    // The fields are rendered before the span's extensions are locked: their `Debug` and
    // `Display` impls may log, or panic, and the panic hook's line reads the span. Another
    // layer of ours in the registry may have stored them already: the store is the same for
    // every configuration.
    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let fields = SpanStore::new(attrs, attrs.metadata().fields().len());
        let Some(span) = ctx.span(id) else {
            return;
        };
        // A request starts with its root span.
        let recorder = self.requests.as_ref().filter(|_| span.parent().is_none());
        let mut extensions = span.extensions_mut();
        match (extensions.get_mut::<SpanData>(), recorder) {
            // Another layer of ours stored the fields: this one counts the request that layer
            // opened, or opens it if that layer counts none.
            (Some(stored), Some(recorder)) => match &mut stored.request {
                Some(request) => request.add_recorder(recorder),
                None => stored.request = Some(OpenRequest::now(recorder)),
            },
            (Some(_), None) => {}
            (None, recorder) => extensions.insert(SpanData {
                fields,
                request: recorder.map(OpenRequest::now),
            }),
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        SpanStore::record(values, |merge| {
            let mut extensions = span.extensions_mut();
            match extensions.get_mut::<SpanData>() {
                Some(data) => merge(&mut data.fields),
                None => {
                    let mut data = SpanData::default();
                    merge(&mut data.fields);
                    extensions.insert(data);
                }
            }
        });
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        self.write(event, ctx.event_span(event).as_ref());
    }
}

/// Calls the same method on whichever layer `inner` holds.
macro_rules! delegate {
    ($inner:expr, $layer:ident => $call:expr) => {
        match $inner {
            Inner::Json($layer) => $call,
            Inner::Text($layer) => $call,
        }
    };
}

impl<S, W> EcsLayer<S, W>
where
    W: for<'w> MakeWriter<'w>,
{
    /// What became of the lines the layer was given: written, or lost by reason (see
    /// [`LineCounts`](crate::LineCounts)). Read it at any time, from any thread, after the
    /// layer has moved into its subscriber. Off ECS with
    /// [`Builder::with_text_off_ecs`](crate::Builder::with_text_off_ecs), `fmt`'s text layer
    /// writes the lines and nothing is counted.
    pub fn line_counter(&self) -> LineCounter {
        match &self.inner {
            Inner::Json(layer) => layer.sink.counter().clone(),
            Inner::Text(_) => LineCounter::default(),
        }
    }
}

impl<S, W> fmt::Debug for EcsLayer<S, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let format = match self.inner {
            Inner::Json(_) => "json",
            Inner::Text(_) => "text",
        };
        f.debug_struct("EcsLayer")
            .field("format", &format)
            .finish_non_exhaustive()
    }
}

impl<S, W> Layer<S> for EcsLayer<S, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
        delegate!(&self.inner, layer => layer.on_register_dispatch(dispatch));
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        delegate!(&mut self.inner, layer => layer.on_layer(subscriber));
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        delegate!(&self.inner, layer => layer.register_callsite(metadata))
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        delegate!(&self.inner, layer => layer.enabled(metadata, ctx))
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        delegate!(&self.inner, layer => layer.on_new_span(attrs, id, ctx.clone()));
        if let (Inner::Json(layer), true) = (&self.inner, self.span_events.any()) {
            self.span_events.on_new_span(layer, id, ctx);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: Context<'_, S>) {
        delegate!(&self.inner, layer => layer.on_record(id, values, ctx));
    }

    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, ctx: Context<'_, S>) {
        delegate!(&self.inner, layer => layer.on_follows_from(id, follows, ctx));
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        crate::panic::event_begins();
        delegate!(&self.inner, layer => layer.event_enabled(event, ctx))
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if crate::panic::is_second_report(event) || dependency_of_ours(event) {
            return;
        }
        let layer = match &self.inner {
            Inner::Json(layer) => layer,
            Inner::Text(layer) => return layer.on_event(event, ctx),
        };
        // Looked up once for the routing, the failed request and the line.
        let leaf = ctx.event_span(event);
        let leaf = leaf.as_ref();
        if layer.requests.is_some() && *event.metadata().level() == tracing::Level::ERROR {
            mark_failed(leaf);
        }
        match self.buffer.as_ref().map(|buffer| buffer.route(event, leaf)) {
            None | Some(Route::Write) => layer.write(event, leaf),
            Some(Route::Drop) => {}
            Some(Route::Hold(held)) => {
                layer.render(event, leaf, |line| held.hold(line, event.metadata()));
            }
        }
        #[cfg(feature = "opentelemetry")]
        if let (Some(leaf), Some(_)) = (leaf, &layer.requests) {
            note_trace_id(leaf);
        }
        // A request's last line ends it, whoever holds its span on (a spawned task).
        #[cfg(feature = "axum")]
        if layer.requests.is_some() && crate::http::ends_its_request(event) {
            if let Some(leaf) = leaf {
                end_request(leaf);
            }
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        delegate!(&self.inner, layer => layer.on_enter(id, ctx.clone()));
        if let (Inner::Json(layer), true) = (&self.inner, self.span_events.any()) {
            self.span_events.on_enter(layer, id, ctx);
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: Context<'_, S>) {
        delegate!(&self.inner, layer => layer.on_exit(id, ctx.clone()));
        if let (Inner::Json(layer), true) = (&self.inner, self.span_events.any()) {
            self.span_events.on_exit(layer, id, ctx);
        }
    }

    fn on_close(&self, id: span::Id, ctx: Context<'_, S>) {
        // The close line first: the span and its fields are still there.
        if let (Inner::Json(layer), true) = (&self.inner, self.span_events.any()) {
            self.span_events.on_close(layer, &id, ctx.clone());
        }
        delegate!(&self.inner, layer => layer.on_close(id, ctx));
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: Context<'_, S>) {
        delegate!(&self.inner, layer => layer.on_id_change(old, new, ctx));
    }
}

/// The `fmt` layer that writes text off ECS.
pub(crate) type TextLayer<S, W> = tracing_subscriber::fmt::Layer<S, DefaultFields, Format, W>;

impl<S, W> EcsLayer<S, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    /// The JSON layer: `format` renders each line, `sink` takes it, unless `buffer` holds
    /// it; `dispatch` is where the subscriber it joins goes (the formatter reads it).
    pub(crate) fn json(
        format: Arc<EcsFormat>,
        (sink, shared): (Arc<CountingWriter<W>>, Arc<dyn LineSink>),
        span_events: SpanEvents,
        buffer: Option<Buffer>,
        metrics: Option<Arc<Recorder>>,
        dispatch: Arc<OnceCell<WeakDispatch>>,
    ) -> Self {
        EcsLayer {
            inner: Inner::Json(JsonLayer {
                format,
                sink,
                shared,
                requests: metrics,
                _subscriber: PhantomData,
            }),
            dispatch,
            span_events,
            buffer,
        }
    }

    /// `fmt`'s text layer, as it is.
    pub(crate) fn text(layer: TextLayer<S, W>) -> Self {
        EcsLayer {
            inner: Inner::Text(layer),
            dispatch: Arc::default(),
            span_events: SpanEvents::default(),
            buffer: None,
        }
    }
}

/// Whether `event` was logged by a dependency while the crate made a request of its own:
/// the service's logs are not the place for it.
fn dependency_of_ours(event: &Event<'_>) -> bool {
    crate::client::OWN_REQUEST.is_raised()
        && !event.metadata().target().starts_with("tracing_aws_ecs")
}

/// Notes on the request of `leaf` the trace id an OpenTelemetry tracer gave it, which the
/// line just rendered looked up (request metrics name the slowest request by it).
#[cfg(feature = "opentelemetry")]
fn note_trace_id<S>(leaf: &SpanRef<'_, S>)
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    // Copied out: the span's extensions are not held while its root's are read.
    let mut xray = [0u8; 35];
    let noted = leaf
        .extensions()
        .get::<crate::otel::TraceIds>()
        .and_then(|ids| ids.xray_trace_id())
        .filter(|id| id.len() == xray.len())
        .map(|id| xray.copy_from_slice(id.as_bytes()))
        .is_some();
    if noted {
        with_open_request(leaf, |request| request.note_trace_id(&xray));
    }
}

/// Counts the request of `span`, whose last line is written. That line is in the request's
/// own span, a root (`RequestLayer` makes it with no parent): no walk up to it. (A span that
/// is not a root has no request, which its root's close then counts.)
#[cfg(feature = "axum")]
fn end_request<S>(span: &SpanRef<'_, S>)
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    if let Some(data) = span.extensions().get::<SpanData>() {
        if let Some(request) = &data.request {
            request.end(&data.fields);
        }
    }
}

/// Marks the request of an ERROR event, whose span is `leaf`, as failed.
fn mark_failed<S>(leaf: Option<&SpanRef<'_, S>>)
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    if let Some(leaf) = leaf {
        with_open_request(leaf, OpenRequest::mark_failed);
    }
}

/// Runs `f` on the open request of the request `leaf` is in, when request metrics count it.
fn with_open_request<S>(leaf: &SpanRef<'_, S>, f: impl FnOnce(&OpenRequest))
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    crate::buffering::with_root(leaf, |root| {
        if let Some(request) = root
            .extensions()
            .get::<SpanData>()
            .and_then(|data| data.request.as_ref())
        {
            f(request);
        }
    });
}
