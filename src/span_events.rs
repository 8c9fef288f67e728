//! Lines for a span's life: when it opens, is entered, exited and closes, the close line
//! carrying how long the span lived (`elapsed_ms`) and was busy (`busy_ms`), as numbers that
//! Logs Insights can aggregate.

use std::time::Instant;

use tracing::field::{FieldSet, Value};
use tracing::{Event, Subscriber, span};
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Which span events are written.
#[derive(Clone, Debug, Default)]
pub(crate) struct SpanEvents {
    new: bool,
    enter: bool,
    exit: bool,
    close: bool,
}

/// How long a span has lived and been entered, kept in its extensions.
struct Times {
    opened: Instant,
    /// Time spent entered, in seconds, up to `since` when entered now.
    busy: f64,
    /// How many times it is entered now (on any thread).
    entered: u32,
    since: Instant,
}

impl SpanEvents {
    pub(crate) fn new(kind: &FmtSpan) -> Self {
        let has = |flag: FmtSpan| kind.clone() & flag.clone() == flag;
        SpanEvents {
            new: has(FmtSpan::NEW),
            enter: has(FmtSpan::ENTER),
            exit: has(FmtSpan::EXIT),
            close: has(FmtSpan::CLOSE),
        }
    }

    /// Whether any line is written: when none is, the layer skips these hooks.
    pub(crate) fn any(&self) -> bool {
        self.new || self.enter || self.exit || self.close
    }

    pub(crate) fn on_new_span<S, L>(&self, layer: &L, id: &span::Id, ctx: Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        L: Layer<S>,
    {
        if self.close {
            if let Some(span) = ctx.span(id) {
                let now = Instant::now();
                span.extensions_mut().replace(Times {
                    opened: now,
                    busy: 0.0,
                    entered: 0,
                    since: now,
                });
            }
        }
        if self.new {
            emit(layer, id, &ctx, "new", None);
        }
    }

    pub(crate) fn on_enter<S, L>(&self, layer: &L, id: &span::Id, ctx: Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        L: Layer<S>,
    {
        self.update_times(id, &ctx, |times| {
            if times.entered == 0 {
                times.since = Instant::now();
            }
            times.entered += 1;
        });
        if self.enter {
            emit(layer, id, &ctx, "enter", None);
        }
    }

    pub(crate) fn on_exit<S, L>(&self, layer: &L, id: &span::Id, ctx: Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        L: Layer<S>,
    {
        self.update_times(id, &ctx, |times| {
            times.entered = times.entered.saturating_sub(1);
            if times.entered == 0 {
                times.busy += times.since.elapsed().as_secs_f64();
            }
        });
        if self.exit {
            emit(layer, id, &ctx, "exit", None);
        }
    }

    /// Runs `f` on the span's times, which are kept only for close lines.
    fn update_times<S>(&self, id: &span::Id, ctx: &Context<'_, S>, f: impl FnOnce(&mut Times))
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if !self.close {
            return;
        }
        if let Some(span) = ctx.span(id) {
            if let Some(times) = span.extensions_mut().get_mut::<Times>() {
                f(times);
            }
        }
    }

    pub(crate) fn on_close<S, L>(&self, layer: &L, id: &span::Id, ctx: Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        L: Layer<S>,
    {
        if !self.close {
            return;
        }
        let times = ctx.span(id).and_then(|span| {
            let extensions = span.extensions();
            let times = extensions.get::<Times>()?;
            let busy = times.busy
                + if times.entered > 0 {
                    times.since.elapsed().as_secs_f64()
                } else {
                    0.0
                };
            Some((times.opened.elapsed().as_secs_f64() * 1e3, busy * 1e3))
        });
        emit(layer, id, &ctx, "close", times);
    }
}

/// Hands `layer` an event inside span `id`, with the span's metadata (its target, level and
/// callsite, as `tracing-subscriber`'s own span events do), the message, and the times.
fn emit<S, L>(
    layer: &L,
    id: &span::Id,
    ctx: &Context<'_, S>,
    message: &'static str,
    times: Option<(f64, f64)>,
) where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    const FIELDS: &[&str] = &["message", "elapsed_ms", "busy_ms"];
    let Some(span) = ctx.span(id) else {
        return;
    };
    let meta = span.metadata();
    drop(span);
    let fields = FieldSet::new(FIELDS, meta.callsite());
    let mut names = fields.iter();
    let (Some(m), Some(e), Some(b)) = (names.next(), names.next(), names.next()) else {
        return;
    };
    // Without times the two fields have no value: as if absent from the line.
    let (elapsed_ms, busy_ms) = times.unzip();
    let values = [
        (&m, Some(&message as &dyn Value)),
        (&e, elapsed_ms.as_ref().map(|v| v as &dyn Value)),
        (&b, busy_ms.as_ref().map(|v| v as &dyn Value)),
    ];
    let values = fields.value_set(&values);
    let event = Event::new_child_of(id.clone(), meta, &values);
    layer.on_event(&event, ctx.clone());
}
