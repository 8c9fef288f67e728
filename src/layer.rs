//! The enriched layer, its builder, and global installation.

use std::fmt;
use std::io;
use std::sync::Once;
use std::time::Duration;

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::TryInitError;

use crate::client::{DEFAULT_DEADLINE, DEFAULT_REQUEST_TIMEOUT, Endpoint, MetadataClient};
use crate::fields::{ExtraFields, FieldScheme};
use crate::format::{EcsFormat, JsonFields};
use crate::metadata::EcsMetadata;

/// The layer [`layer`](crate::layer) and [`Builder::layer`] return: `tracing_subscriber`'s
/// `fmt` layer with the [`EcsFormat`] event formatter and [`JsonFields`] span fields, so
/// writers, filters and the per-thread line buffer work as they do for `fmt`.
pub type EcsLayer<S, W = fn() -> io::Stdout> =
    tracing_subscriber::fmt::Layer<S, JsonFields, EcsFormat, W>;

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
    timeout: Duration,
    default_level: Level,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            metadata: None,
            scheme: FieldScheme::default(),
            extra: ExtraFields::NONE,
            writer: io::stdout,
            timeout: DEFAULT_DEADLINE,
            default_level: Level::INFO,
        }
    }
}

impl<W> Builder<W> {
    /// Enrich with this metadata instead of fetching (tests, or metadata read elsewhere).
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
            timeout: self.timeout,
            default_level: self.default_level,
        }
    }

    /// The longest the metadata fetch may take, retries included (default 2 s). Off ECS
    /// there is no fetch and no wait.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The level [`init`](Self::init) enables when `RUST_LOG` is unset (default INFO).
    pub fn with_default_level(mut self, level: Level) -> Self {
        self.default_level = level;
        self
    }

    /// The formatter for the given or process-wide metadata (fetched now if not yet).
    fn format(&self) -> EcsFormat {
        let metadata = match &self.metadata {
            Some(given) => Some(given),
            None => fetch_cached(self.timeout).ok(),
        };
        EcsFormat::new(metadata, self.scheme, self.extra)
    }

    /// The layer, for a `tracing_subscriber::registry()` stack of your own. Call
    /// [`log_metadata_status`](crate::log_metadata_status) once your subscriber is
    /// installed to log why lines carry no ECS fields, if they do not.
    pub fn layer<S>(self) -> EcsLayer<S, W>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
        W: for<'w> MakeWriter<'w> + 'static,
    {
        let format = self.format();
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .fmt_fields(JsonFields::default())
            .event_format(format)
            .with_writer(self.writer)
    }

    /// Installs the global subscriber: an [`EnvFilter`] from `RUST_LOG` (the default level
    /// when unset), this layer, and capture of `log` records. Then logs, once, why lines
    /// carry no ECS fields if they do not (DEBUG off ECS, WARN when the fetch failed).
    ///
    /// Fails only when a global subscriber is already set. Never panics.
    pub fn try_init(self) -> Result<(), InitError>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let filter = EnvFilter::builder()
            .with_default_directive(self.default_level.into())
            .from_env_lossy();
        let fetched = self.metadata.is_none();
        tracing_subscriber::registry()
            .with(filter)
            .with(self.layer())
            .try_init()
            .map_err(|source| InitError { source })?;
        if fetched {
            log_metadata_status();
        }
        Ok(())
    }

    /// As [`try_init`](Self::try_init), panicking if a global subscriber is already set
    /// (as `tracing_subscriber::fmt::init` does).
    pub fn init(self)
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        if let Err(e) = self.try_init() {
            panic!("{e}");
        }
    }
}

/// The process-wide metadata, fetched within `timeout` if not cached yet.
fn fetch_cached(timeout: Duration) -> Result<&'static EcsMetadata, &'static crate::Error> {
    crate::cached_or_fetch(|| {
        MetadataClient::from_env()?
            .with_deadline(timeout)
            .with_request_timeout(timeout.min(DEFAULT_REQUEST_TIMEOUT))
            .fetch_metadata()
    })
}

/// Logs, once per process, why lines carry no (or partial) ECS fields: at DEBUG off ECS, at
/// WARN when the endpoint failed or `/task` did, or when a malformed v4 variable was passed
/// over for the v3 one. Silent when all is well.
///
/// [`init`](crate::init) calls it; call it yourself after installing a stack built with
/// [`layer`](crate::layer).
pub fn log_metadata_status() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Some(why) = Endpoint::from_env()
            .ok()
            .as_ref()
            .and_then(Endpoint::ignored)
        {
            tracing::warn!(target: "tracing_aws_ecs", "{why}");
        }
        log_fetch_outcome();
    });
}

fn log_fetch_outcome() {
    match crate::metadata_result() {
        Err(e) if e.is_not_on_ecs() => {
            tracing::debug!(target: "tracing_aws_ecs", "{e}: logging without ECS fields");
        }
        Err(e) => {
            tracing::warn!(target: "tracing_aws_ecs", "ECS metadata unavailable, logging without ECS fields: {e}");
        }
        Ok(meta) => {
            if let Some(reason) = meta.task_error() {
                tracing::warn!(
                    target: "tracing_aws_ecs",
                    "ECS task metadata unavailable, lines carry what the container metadata gives: {reason}"
                );
            }
        }
    }
}

/// A global subscriber was already installed.
#[derive(Debug)]
#[non_exhaustive]
pub struct InitError {
    source: TryInitError,
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
