//! The builder of the enriched layer, and global installation.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use once_cell::sync::OnceCell;
use tracing::Level;
use tracing::subscriber::SetGlobalDefaultError;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

use crate::background::BackgroundWriter;
use crate::buffering::{Buffer, Buffering};
use crate::cache::{self, Startup};
use crate::client::DEFAULT_DEADLINE;
use crate::fields::{ExtraFields, FieldScheme};
use crate::format::{EcsFormat, LineOptions, Timestamp};
use crate::layer::EcsLayer;
use crate::metadata::EcsMetadata;
use crate::reporter::{MetricsBuilder, MetricsError, MetricsReporter};
use crate::request_metrics::{Recorder, RequestMetrics};
use crate::shutdown::FlushGuard;
use crate::sink::{CountingWriter, LineSink, Notice};
use crate::span_events::SpanEvents;

/// Configures the enriched layer; finish with [`layer`](Self::layer), [`init`](Self::init)
/// or [`try_init`](Self::try_init).
///
/// ```
/// use tracing_aws_ecs::{EcsMetadata, ExtraFields, FieldScheme};
///
/// let metadata = EcsMetadata::from_json(r#"{"Name": "app"}"#, None)?;
/// let layer = tracing_aws_ecs::builder()
///     .with_metadata(metadata)
///     .with_scheme(FieldScheme::FireLens)
///     .with_fields(ExtraFields::TASK_ID | ExtraFields::REGION)
///     .with_writer(std::io::sink)
///     .layer::<tracing_subscriber::Registry>();
/// # let _ = layer;
/// # Ok::<(), tracing_aws_ecs::Error>(())
/// ```
#[derive(Debug)]
#[must_use]
pub struct Builder<W = fn() -> io::Stdout> {
    metadata: Option<EcsMetadata>,
    scheme: FieldScheme,
    extra: ExtraFields,
    writer: W,
    deadline: Duration,
    default_level: Level,
    max_line_bytes: usize,
    recover: bool,
    text_off_ecs: bool,
    /// Whether the writer is the default stdout (text off ECS may then use colours).
    writes_to_stdout: bool,
    line: LineOptions,
    span_events: FmtSpan,
    panic_hook: bool,
    rust_panic_message: bool,
    buffering: Option<Buffering>,
    request_metrics: Option<RequestMetrics>,
    container_metrics: Option<MetricsBuilder>,
    background: Option<BackgroundWriter>,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            metadata: None,
            scheme: FieldScheme::default(),
            extra: ExtraFields::NONE,
            writer: io::stdout,
            deadline: DEFAULT_DEADLINE,
            default_level: Level::INFO,
            max_line_bytes: crate::format::DEFAULT_MAX_LINE_BYTES,
            recover: true,
            text_off_ecs: false,
            writes_to_stdout: true,
            line: LineOptions::default(),
            span_events: FmtSpan::NONE,
            panic_hook: true,
            rust_panic_message: false,
            buffering: None,
            request_metrics: None,
            container_metrics: None,
            background: None,
        }
    }
}

impl<W> Builder<W> {
    /// Enrich with this metadata instead of fetching (tests, or metadata read elsewhere).
    /// When the process has no metadata cached yet, [`layer`](Self::layer) caches this, so
    /// that [`metadata()`](crate::metadata()) returns it.
    pub fn with_metadata(mut self, metadata: EcsMetadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The field scheme (default [`FieldScheme::Nested`]).
    pub fn with_scheme(mut self, scheme: FieldScheme) -> Self {
        self.scheme = scheme;
        self
    }

    /// Extra fields to write (default none).
    pub fn with_fields(mut self, extra: ExtraFields) -> Self {
        self.extra = extra;
        self
    }

    /// Where lines go: any [`MakeWriter`] (default stdout, where the awslogs driver reads).
    pub fn with_writer<W2>(self, writer: W2) -> Builder<W2> {
        Builder {
            metadata: self.metadata,
            scheme: self.scheme,
            extra: self.extra,
            writer,
            deadline: self.deadline,
            default_level: self.default_level,
            max_line_bytes: self.max_line_bytes,
            recover: self.recover,
            text_off_ecs: self.text_off_ecs,
            writes_to_stdout: false,
            line: self.line,
            span_events: self.span_events,
            panic_hook: self.panic_hook,
            rust_panic_message: self.rust_panic_message,
            buffering: self.buffering,
            request_metrics: self.request_metrics,
            container_metrics: self.container_metrics,
            background: self.background,
        }
    }

    /// The longest the start-up metadata fetch may take, retries included (default 2 s):
    /// a slow endpoint that answers within it succeeds, however long one answer takes, and
    /// failed requests are retried while time is left. Off ECS there is no fetch and no wait.
    /// The same setting as [`MetadataClient::with_deadline`](crate::MetadataClient::with_deadline).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Renamed [`with_deadline`](Self::with_deadline); kept until 1.0.
    #[deprecated(since = "0.1.0", note = "renamed `with_deadline`")]
    pub fn with_timeout(self, deadline: Duration) -> Self {
        self.with_deadline(deadline)
    }

    /// Whether to keep reading the metadata in the background when the start-up fetch failed
    /// for a reason that can pass (timeout, connection error, 5xx, 429, a body cut short or
    /// unparsable), or read the container but not the task (default `true`).
    ///
    /// One thread retries, one request at a time, with jittered backoff from 1 s doubling to
    /// 30 s, until it succeeds; each request may take the start-up deadline (at least 1 s) at
    /// first, then twice as long at each attempt, up to 30 s, so that an endpoint slower
    /// than the deadline but healthy (one that always answers in 2.5 s, under the default
    /// 2 s) is read in the end; from then on every line carries the identity,
    /// [`metadata()`](crate::metadata()) returns it, and one INFO line says it was recovered
    /// and after how long. It never delays process exit. Nothing is retried off ECS, for a
    /// malformed variable, or for a 4xx other than 429. Like the deadline, this is a setting
    /// of the process's one start-up fetch: the first builder (or
    /// [`metadata()`](crate::metadata()) call) to fetch decides.
    pub fn with_recovery(mut self, recover: bool) -> Self {
        self.recover = recover;
        self
    }

    /// Writes the event's target (its module path, or `target:` in the macro) as `"target"`
    /// (default on, as `fmt().json()` does).
    pub fn with_target(self, on: bool) -> Self {
        self.line(|line| line.target = on)
    }

    /// Writes the callsite's source file as `"filename"` (default off).
    pub fn with_file(self, on: bool) -> Self {
        self.line(|line| line.file = on)
    }

    /// Writes the callsite's line as `"line_number"` (default off).
    pub fn with_line_number(self, on: bool) -> Self {
        self.line(|line| line.line_number = on)
    }

    /// Writes the thread's id as `"threadId"` (default off).
    pub fn with_thread_ids(self, on: bool) -> Self {
        self.line(|line| line.thread_ids = on)
    }

    /// Writes the thread's name as `"threadName"` (default off).
    pub fn with_thread_names(self, on: bool) -> Self {
        self.line(|line| line.thread_names = on)
    }

    /// Writes the name of the span the event is in as `"span"` (default off).
    pub fn with_current_span(self, on: bool) -> Self {
        self.line(|line| line.current_span = on)
    }

    /// Writes the names of the spans the event is in, from the root, as `"spans"` (default
    /// off).
    pub fn with_span_list(self, on: bool) -> Self {
        self.line(|line| line.span_list = on)
    }

    /// How the `timestamp` is written (default RFC 3339 with microseconds).
    pub fn with_timestamp(mut self, timestamp: Timestamp) -> Self {
        self.line.timestamp = timestamp;
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
        self.line.statics.push((key.into(), value.into()));
        self
    }

    /// Writes a line when spans open, are entered, exited or close, as `tracing-subscriber`'s
    /// `with_span_events` does (default [`FmtSpan::NONE`]). The line's message is `new`,
    /// `enter`, `exit` or `close`, with the span's target, level and fields; the close line
    /// also carries `elapsed_ms`, how long the span lived, and `busy_ms`, how long it was
    /// entered, both numbers in milliseconds: a request's latency, queryable in Logs
    /// Insights (`stats avg(elapsed_ms) by span`).
    pub fn with_span_events(mut self, kind: FmtSpan) -> Self {
        self.span_events = kind;
        self
    }

    fn line(mut self, set: impl FnOnce(&mut LineOptions)) -> Self {
        set(&mut self.line);
        self
    }

    /// Whether [`init`](Self::init) and [`try_init`](Self::try_init) install the panic hook
    /// that writes a panic as one JSON line (default `true`; see
    /// [`install_panic_hook`](crate::install_panic_hook)).
    pub fn with_panic_hook(mut self, install: bool) -> Self {
        self.panic_hook = install;
        self
    }

    /// Whether Rust's own panic message (the hook installed before ours) is printed on
    /// stderr after every panic's JSON line, as it was before (default `false`: only when
    /// the line could not be written). The awslogs driver ships it as several events
    /// without the identity.
    pub fn with_rust_panic_message(mut self, print: bool) -> Self {
        self.rust_panic_message = print;
        self
    }

    /// Lines written by a thread of their own, many to a write: logging never waits on
    /// stdout, and what a full buffer drops is counted and said (see [`BackgroundWriter`]).
    /// Off by default: each line is written by the thread that logs it.
    pub fn with_background_writer(mut self, background: BackgroundWriter) -> Self {
        self.background = Some(background);
        self
    }

    /// Holds the lines at the lower levels per request and writes them only when the request
    /// logs an error (default off); see [`Buffering`] for the rules. On the JSON lines only.
    ///
    /// The buffered levels must reach the layer: with buffering on, [`init`](Self::init)
    /// enables them when `RUST_LOG` is unset (DEBUG by default, where INFO would be); with
    /// [`layer`](Self::layer), let them through your filter.
    pub fn with_buffering(mut self, buffering: Buffering) -> Self {
        self.buffering = Some(buffering);
        self
    }

    /// Counts each request (a root span), its errors and its latency per route, and writes
    /// them as EMF lines on the layer's writer at each interval's end (default off); see
    /// [`RequestMetrics`]. On the JSON lines only.
    ///
    /// ```no_run
    /// use tracing_aws_ecs::RequestMetrics;
    ///
    /// let _guard = tracing_aws_ecs::builder()
    ///     .with_request_metrics(RequestMetrics::new("OrdersService"))
    ///     .init();
    /// ```
    pub fn with_request_metrics(mut self, metrics: RequestMetrics) -> Self {
        self.request_metrics = Some(metrics);
        self
    }

    /// Reports the task's container metrics (see [`MetricsReporter`]) on the layer's writer,
    /// started by [`init`](Self::init) and [`try_init`](Self::try_init) and stopped, with a
    /// last report, when the [`FlushGuard`] they return is dropped (default off). Its writer
    /// is the layer's. Off ECS there is nothing to report: one DEBUG line says so; on ECS, a
    /// reporter that cannot start costs one WARN line.
    ///
    /// ```no_run
    /// use tracing_aws_ecs::{MetricsReporter, RequestMetrics};
    ///
    /// let _guard = tracing_aws_ecs::builder()
    ///     .with_request_metrics(RequestMetrics::new("OrdersService"))
    ///     .with_container_metrics(MetricsReporter::builder())
    ///     .init();
    /// ```
    pub fn with_container_metrics(mut self, metrics: MetricsBuilder) -> Self {
        self.container_metrics = Some(metrics);
        self
    }

    /// Off ECS only ([`on_ecs`](crate::on_ecs) false), write `tracing-subscriber`'s
    /// human-readable text instead of JSON lines (default `false`): pretty output on a
    /// laptop, JSON on ECS from the same `main`. On ECS the lines stay JSON, even when the
    /// endpoint fails. The text is in colour when it goes to stdout and stdout is a
    /// terminal, unless `NO_COLOR` is set.
    pub fn with_text_off_ecs(mut self, text: bool) -> Self {
        self.text_off_ecs = text;
        self
    }

    /// The level [`init`](Self::init) enables when `RUST_LOG` is unset (default INFO).
    pub fn with_default_level(mut self, level: Level) -> Self {
        self.default_level = level;
        self
    }

    /// The longest line, newline excluded (default 262,118: CloudWatch's 256 KiB event limit
    /// less its 26-byte overhead). Longer lines have their longest string values cut to fit
    /// and carry `"truncated":true`: keys, numbers and the ECS fields are never cut. Docker
    /// splits lines longer than 16 KiB into several records: set 16,384 where the log driver
    /// does not join them again.
    pub fn with_max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes;
        self
    }

    /// The layer, for a `tracing_subscriber::registry()` stack of your own. Call
    /// [`log_metadata_status`](crate::log_metadata_status) once your subscriber is
    /// installed to log why lines carry no ECS fields, if they do not.
    pub fn layer<S>(self) -> EcsLayer<S, W>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        self.layer_and_sink().0
    }

    /// The layer, and its sink for what else writes lines beside it (none for the text
    /// lines off ECS).
    fn layer_and_sink<S>(self) -> (EcsLayer<S, W>, Option<Arc<dyn LineSink>>)
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let startup = Startup {
            deadline: self.deadline,
            recover: self.recover,
        };
        let given = self.metadata.is_some();
        let metadata = match self.metadata {
            Some(given) => {
                cache::fill(given.clone());
                Some(given)
            }
            None => cache::get_or_fetch(startup).ok().cloned(),
        };
        let writer = self.writer;
        let line = self.line;
        if self.text_off_ecs && !crate::on_ecs() {
            let colours = self.writes_to_stdout
                && text_colours(
                    std::io::IsTerminal::is_terminal(&io::stdout()),
                    std::env::var_os("NO_COLOR"),
                );
            let text = EcsLayer::text(
                tracing_subscriber::fmt::layer()
                    .with_ansi(colours)
                    .with_target(line.target)
                    .log_internal_errors(false)
                    .with_file(line.file)
                    .with_line_number(line.line_number)
                    .with_thread_ids(line.thread_ids)
                    .with_thread_names(line.thread_names)
                    .with_span_events(self.span_events)
                    .with_writer(writer),
            );
            return (text, None);
        }
        if line.thread_names {
            crate::panic::thread_names_on_lines();
        }
        let dispatch = Arc::new(OnceCell::new());
        let mut format = EcsFormat::new(
            metadata.as_ref(),
            (self.scheme, self.extra),
            line,
            self.max_line_bytes,
            Arc::clone(&dispatch),
        );
        if self.buffering.is_some() {
            format = format.reserving(crate::buffering::DROPPED_KEY);
        }
        if !given {
            format.follow_recovery();
        }
        let format = Arc::new(format);
        let mut sink = CountingWriter::new(
            writer,
            self.writes_to_stdout,
            Arc::clone(&format) as Arc<dyn Notice>,
        );
        if let Some(background) = self.background {
            if let Err(e) = sink.start_background(background) {
                sink.warn(&format!(
                    "no background writer (no thread: {e}): lines are written directly"
                ));
            }
        }
        let sink = Arc::new(sink);
        let shared = Arc::clone(&sink) as Arc<dyn LineSink>;
        let buffer = self
            .buffering
            .map(|buffering| Buffer::new(buffering, Arc::clone(&shared)));
        let metrics = self.request_metrics.map(|config| {
            let recorder = Recorder::start(config, metadata.as_ref(), Arc::clone(&shared));
            if !given {
                recorder.follow_recovery();
            }
            recorder
        });
        let layer = EcsLayer::json(
            format,
            (sink, Arc::clone(&shared)),
            SpanEvents::new(&self.span_events),
            buffer,
            metrics,
            dispatch,
        );
        (layer, Some(shared))
    }

    /// Installs the global subscriber: an [`EnvFilter`] from `RUST_LOG` (the default level
    /// when unset) and this layer; then the bridge that turns `log` records into events. Then
    /// logs, once, why lines carry no ECS fields if they do not (DEBUG off ECS, WARN when the
    /// fetch failed), and starts the [container metrics](Self::with_container_metrics).
    ///
    /// Returns the [`FlushGuard`]: keep it until `main` returns (`let _guard = …`), and what
    /// the layer holds (held lines, the request metrics' interval, a last container report)
    /// is written then.
    ///
    /// When a `log` logger is already installed, `log` records keep going to it: one WARN line
    /// says so, and the subscriber is installed all the same.
    ///
    /// # Errors
    ///
    /// [`InitError`] when a global `tracing` subscriber is already set; nothing is installed
    /// then. Never panics.
    pub fn try_init(mut self) -> Result<FlushGuard, InitError>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        // `RUST_LOG` set by hand decides which lines are written; unset, buffering raises
        // the level to its buffered one, and the lines that raise lets through outside any
        // request are dropped.
        let rust_log_set = std::env::var_os("RUST_LOG").is_some_and(|v| !v.is_empty());
        let default_level = match &mut self.buffering {
            Some(buffering) => {
                buffering.drop_outside_requests = !rust_log_set;
                self.default_level.max(buffering.buffered_level())
            }
            None => self.default_level,
        };
        let filter = EnvFilter::builder()
            .with_default_directive(default_level.into())
            .from_env_lossy();
        let fetched = self.metadata.is_none();
        let (panic_hook, rust_panic_message) = (self.panic_hook, self.rust_panic_message);
        let container_metrics = self.container_metrics.take();
        let (layer, sink) = self.layer_and_sink();
        let subscriber = tracing_subscriber::registry().with(filter).with(layer);
        tracing::subscriber::set_global_default(subscriber)
            .map_err(|source| InitError { source })?;
        // After the subscriber, so that the bridge takes its level.
        let bridge = tracing_log::LogTracer::builder()
            .with_max_level(tracing_log::AsLog::as_log(
                &tracing::level_filters::LevelFilter::current(),
            ))
            .init();
        if let Err(e) = bridge {
            tracing::warn!(
                target: "tracing_aws_ecs",
                "`log` records go to the logger already installed, not to these lines: {e}"
            );
        }
        if panic_hook {
            crate::panic::run_previous_hook(rust_panic_message);
            crate::install_panic_hook();
        }
        if fetched {
            crate::log_metadata_status();
        }
        crate::buffering::warn_if_filtered_out();
        // Written whatever the filter passes (it likely turns off the crate's WARNs too),
        // unless it turns off every line.
        #[cfg(feature = "axum")]
        let request_spans_off = tracing::level_filters::LevelFilter::current()
            != tracing::level_filters::LevelFilter::OFF
            && !crate::http::request_spans_enabled();
        #[cfg(feature = "axum")]
        if let (Some(sink), true) = (&sink, request_spans_off) {
            let filter = match std::env::var("RUST_LOG") {
                Ok(rust_log) if !rust_log.is_empty() => format!("RUST_LOG={rust_log:?}"),
                _ => format!("the default level, {default_level},"),
            };
            sink.warn(&format!(
                "{filter} turns off RequestLayer's request spans (target \
                 tracing_aws_ecs::http, INFO): requests are neither logged nor counted, and \
                 their lines carry no request_id; add tracing_aws_ecs::http=info to RUST_LOG"
            ));
        }
        let reporter = container_metrics.and_then(|metrics| start_reporter(metrics, sink.clone()));
        Ok(FlushGuard::with_reporter(reporter, sink))
    }

    /// As [`try_init`](Self::try_init), panicking where it would fail.
    ///
    /// # Panics
    ///
    /// When a global `tracing` subscriber is already set (as `tracing_subscriber::fmt::init`
    /// does).
    #[track_caller]
    pub fn init(self) -> FlushGuard
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        match self.try_init() {
            Ok(guard) => guard,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Starts the container metrics on the layer's `sink`; a reporter that cannot start is
/// one line: DEBUG off ECS (there is nothing to report), WARN on ECS.
fn start_reporter(
    metrics: MetricsBuilder,
    sink: Option<Arc<dyn LineSink>>,
) -> Option<MetricsReporter> {
    // No sink: text lines, which are written off ECS only.
    let started = match sink {
        Some(sink) => metrics.start_on(sink),
        None => Err(MetricsError::Endpoint(crate::Error::NotOnEcs)),
    };
    match started {
        Ok(reporter) => Some(reporter),
        Err(MetricsError::Endpoint(crate::Error::NotOnEcs)) => {
            tracing::debug!(target: "tracing_aws_ecs", "container metrics are not reported off ECS");
            None
        }
        Err(e) => {
            tracing::warn!(target: "tracing_aws_ecs", "container metrics are not reported: {e}");
            None
        }
    }
}

/// Whether text lines use colours: on a terminal, unless `NO_COLOR` is set and not empty
/// (<https://no-color.org>).
fn text_colours(terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    terminal && no_color.is_none_or(|value| value.is_empty())
}

/// A global subscriber was already installed.
#[derive(Debug)]
#[non_exhaustive]
pub struct InitError {
    source: SetGlobalDefaultError,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot install the tracing-aws-ecs subscriber: {}",
            self.source
        )
    }
}

impl std::error::Error for InitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_on_a_terminal_unless_no_color_says_not() {
        assert!(text_colours(true, None));
        assert!(text_colours(true, Some("".into())));
        assert!(!text_colours(true, Some("1".into())));
        assert!(!text_colours(false, None));
    }
}
