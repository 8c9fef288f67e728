//! JSON logs enriched with AWS ECS identity, for Rust services on ECS (Fargate, EC2 and
//! Managed Instances).
//!
//! One line in `main`:
//!
//! ```no_run
//! let _guard = tracing_aws_ecs::init(); // writes what is held as `main` returns
//! tracing::info!(order_id = 42, "order placed");
//! // {"timestamp":"2026-11-29T03:49:31.123456Z","level":"INFO","target":"orders","message":"order placed",
//! //  "order_id":42,"ecs":{"cluster":"prod-web","task_arn":"arn:aws:ecs:…","container_name":"app","image":"…"}}
//! ```
//!
//! [`init`] reads the task metadata endpoint (v4, falling back to v3) once, within a
//! deadline, caches it for the process, and installs a subscriber that writes every event as
//! one JSON line on stdout, where the awslogs driver ships it to CloudWatch Logs. Off ECS it
//! does the same without the ECS fields, at once. The line format, and the rule for field
//! names that clash, are in [`mod@format`]; the ECS keys in [`FieldScheme`].
//!
//! To compose with other layers, use [`layer`] (or [`builder`]) in your own
//! `tracing_subscriber::registry()` stack. [`metadata()`] gives the cached [`EcsMetadata`];
//! a [`MetadataClient`] reads stats or metadata with other settings.
//!
//! [`stats`] turns task stats into CPU %, memory, network and I/O figures, and
//! a [`MetricsReporter`] writes them as CloudWatch Embedded Metric Format lines
//! ([`emf`]) next to the logs. The `opentelemetry` feature adds `EcsMetadata::to_resource` and
//! trace ids on every line inside a traced span. The `emulator` feature adds the `emulator`
//! module, a local endpoint for tests and development, and the `ecs-metadata serve` command.
//!
//! # What the crate root holds
//!
//! - **Installing**: [`init`], [`try_init`], [`layer`], [`builder`] and the [`Builder`] they
//!   share ([`EcsLayer`], [`InitError`]); [`install_panic_hook`] and
//!   [`log_metadata_status`] for a stack of one's own.
//! - **Configuring**: [`FieldScheme`], [`ExtraFields`], [`Timestamp`], [`FmtSpan`],
//!   [`Buffering`], [`RequestMetrics`], [`BackgroundWriter`] ([`WhenFull`]).
//! - **At run time**: [`FlushGuard`], [`metadata()`], [`metadata_result`], [`on_ecs`],
//!   [`flush()`], [`flush_buffered`], [`LineCounter`] and [`LineCounts`] (what became of
//!   the lines: written, or lost by reason), [`EcsMetadata`], [`Identity`], [`Error`],
//!   [`MetadataClient`], and the [`MetricsReporter`] ([`MetricsBuilder`], [`MetricsError`]).
//!
//! The modules hold the rest: [`format`](mod@format) (the line),
//! [`metadata`](mod@metadata), [`stats`], [`emf`], [`endpoint`] (the variables, the API
//! versions, the documents served), and `http` (feature `axum`: the `tower` layer).
//!
//! # How it is built
//!
//! Bottom up: `endpoint` finds the endpoint and `client` reads it, within a deadline and
//! with retries; `metadata` and `stats` model what it serves, and `cache` keeps the
//! metadata for the process (recovering it in the background after a failed start-up).
//! `line_counts` counts what becomes of each writer's lines. `json`, `time` and `write`
//! write JSON, timestamps and whole lines (`time` also holds the clock reading a request's
//! layer shares with request metrics); `background` is the thread that writes lines
//! many to a write, and `sink` where a layer's lines go, directly or through it (each
//! written whole or counted lost, every loss said on the next line); `thread_flag` says
//! what a thread is doing in the crate (writing a line, making a request of its own);
//! `fields` lays the identity out per scheme; `format` turns an event into a line (reserved
//! keys in `format::keys`, each span's fields in `format::store`) and `emf` turns figures
//! into EMF. `request_metrics` counts requests from their root spans' fields, read back from
//! the store at the close. On top, `layer` is the `tracing` layer (with `buffering` and
//! `span_events`; a span's fields and its open request share one extension), `builder`
//! configures and installs it, `status` writes the start-up note, `panic` the panic line,
//! `reporter` runs the metrics thread, `shutdown` is the guard that writes what is held as
//! `main` returns, and `http` (feature `axum`) the `tower` layer that makes each HTTP
//! request a root span. The `emulator` and the `ecs-metadata` binary are leaves: nothing in
//! the library depends on them.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod background;
mod buffering;
mod builder;
mod cache;
mod client;
pub mod emf;
pub mod endpoint;
mod error;
mod fields;
pub mod format;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod http;
mod json;
mod layer;
mod line_counts;
pub mod metadata;
#[cfg(feature = "opentelemetry")]
mod otel;
mod panic;
mod reporter;
mod request_metrics;
mod shutdown;
mod sink;
mod span_events;
pub mod stats;
mod status;
mod thread_flag;
mod time;
mod write;

#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
pub mod emulator;

pub use background::{BackgroundWriter, WhenFull};
pub use buffering::{Buffering, flush_buffered};
pub use builder::{Builder, InitError};
pub use client::MetadataClient;
pub use error::Error;
pub use fields::{ExtraFields, FieldScheme};
pub use format::Timestamp;
pub use layer::EcsLayer;
pub use line_counts::{LineCounter, LineCounts};
pub use metadata::{EcsMetadata, Identity};
pub use panic::install_panic_hook;
pub use reporter::{MetricsBuilder, MetricsError, MetricsReporter};
pub use request_metrics::RequestMetrics;
pub use shutdown::FlushGuard;
pub use status::log_metadata_status;
pub use tracing_subscriber::fmt::format::FmtSpan;

/// Renamed [`endpoint::Document`]; kept until 1.0.
#[deprecated(since = "0.1.0", note = "renamed `endpoint::Document`")]
#[doc(hidden)]
pub type Path = endpoint::Document;
/// Moved to [`endpoint::Endpoint`]; kept until 1.0.
#[deprecated(since = "0.1.0", note = "moved to `endpoint::Endpoint`")]
#[doc(hidden)]
pub type Endpoint = endpoint::Endpoint;
/// Moved to [`endpoint::ApiVersion`]; kept until 1.0.
#[deprecated(since = "0.1.0", note = "moved to `endpoint::ApiVersion`")]
#[doc(hidden)]
pub type ApiVersion = endpoint::ApiVersion;
/// Moved to [`endpoint::V4_VARIABLE`]; kept until 1.0.
#[deprecated(since = "0.1.0", note = "moved to `endpoint::V4_VARIABLE`")]
#[doc(hidden)]
pub const V4_VARIABLE: &str = endpoint::V4_VARIABLE;
/// Moved to [`endpoint::V3_VARIABLE`]; kept until 1.0.
#[deprecated(since = "0.1.0", note = "moved to `endpoint::V3_VARIABLE`")]
#[doc(hidden)]
pub const V3_VARIABLE: &str = endpoint::V3_VARIABLE;

/// Installs the enriched JSON subscriber globally with the defaults of [`builder`] (see
/// [`Builder::try_init`]). Works inside `#[tokio::main]`. Keep the [`FlushGuard`] it
/// returns until `main` returns: `let _guard = tracing_aws_ecs::init();`.
///
/// # Panics
///
/// When a global `tracing` subscriber is already set, like `tracing_subscriber::fmt::init`.
#[track_caller]
pub fn init() -> FlushGuard {
    builder().init()
}

/// As [`init`], returning an error instead of panicking.
///
/// # Errors
///
/// [`InitError`] when a global `tracing` subscriber is already set. An existing `log` logger
/// is not an error: it costs one WARN line.
pub fn try_init() -> Result<FlushGuard, InitError> {
    builder().try_init()
}

/// The enriched layer with the defaults of [`builder`], for your own stack:
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
/// use tracing_subscriber::EnvFilter;
///
/// let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
/// tracing_subscriber::registry()
///     .with(filter)
///     .with(tracing_aws_ecs::layer())
///     .init();
/// tracing_aws_ecs::log_metadata_status();
/// ```
pub fn layer<S>() -> EcsLayer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    builder().layer()
}

/// A [`Builder`] with the defaults: fetch within 2 s, [`FieldScheme::Nested`], no extra
/// fields, stdout, INFO unless `RUST_LOG` says otherwise.
pub fn builder() -> Builder {
    Builder::default()
}

/// The metadata of this container and its task, fetched on first use and cached for the life
/// of the process; `None` off ECS or while the fetch has failed.
///
/// Every caller on every thread gets the same value. Concurrent first calls wait for one
/// fetch. When it fails for a reason that can pass (timeout, 5xx, 429, …), one background
/// thread keeps trying (see [`Builder::with_recovery`]); once it succeeds, this returns what
/// it read. Whoever fetches first, [`init`], a [`builder`] or this function, sets the
/// deadline (2 s by default) and whether to recover.
pub fn metadata() -> Option<&'static EcsMetadata> {
    metadata_result().ok()
}

/// As [`metadata()`], with the reason when there is none ([`Error::NotOnEcs`] off ECS).
pub fn metadata_result() -> Result<&'static EcsMetadata, &'static Error> {
    cache::get_or_fetch(cache::Startup {
        deadline: client::DEFAULT_DEADLINE,
        recover: true,
    })
}

/// Writes everything the layers hold: the lines requests hold (as [`flush_buffered`] does)
/// and the current interval of [request metrics](RequestMetrics), then waits (up to 1 s)
/// for [background writers](BackgroundWriter) to write what they hold. The [`FlushGuard`]
/// that [`init`] returns calls it when dropped.
pub fn flush() {
    flush_buffered();
    request_metrics::flush_all();
    background::drain_all(background::DRAIN_WAIT);
}

/// Whether this process runs in an ECS task: an endpoint variable
/// (`ECS_CONTAINER_METADATA_URI_V4` or `ECS_CONTAINER_METADATA_URI`) is set and not blank.
/// Reads the environment only: no request, no wait.
///
/// The check for "pretty output on my laptop, JSON on ECS" (or use
/// [`Builder::with_text_off_ecs`]); unlike `metadata().is_some()`, it stays true on ECS
/// when the endpoint fails.
///
/// ```
/// if tracing_aws_ecs::on_ecs() {
///     // JSON lines for CloudWatch
/// } else {
///     // a laptop, CI
/// }
/// ```
pub fn on_ecs() -> bool {
    [endpoint::V4_VARIABLE, endpoint::V3_VARIABLE]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.to_string_lossy().trim().is_empty()))
}

// The README's examples use the emulator and OpenTelemetry: they are tested with every
// feature on (`cargo test --all-features`).
#[cfg(all(doctest, feature = "emulator", feature = "opentelemetry"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
