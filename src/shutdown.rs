//! Nothing lost at shutdown: the guard [`init`](crate::init) returns writes what the layers
//! hold and a last container-metrics report when it is dropped, as `main` returns.

use std::fmt;
use std::sync::Arc;

use crate::line_counts::LineCounter;
use crate::reporter::MetricsReporter;
use crate::sink::LineSink;

/// Writes, when dropped, what would otherwise be lost as the process ends: the lines that
/// requests in flight hold ([`Buffering`](crate::Buffering)), the current interval of
/// [request metrics](crate::RequestMetrics), and a last report of the container metrics
/// started with [`Builder::with_container_metrics`](crate::Builder::with_container_metrics).
///
/// [`init`](crate::init) and [`try_init`](crate::try_init) return it: keep it in `main`
/// until `main` returns, after the server's graceful shutdown, so that the requests drained
/// then are counted. A panic that unwinds out of `main` drops it too. A process killed
/// (`SIGKILL`, after ECS's stop timeout, or out of memory) writes nothing: what the
/// interval counted so far is lost.
///
/// ```no_run
/// let _guard = tracing_aws_ecs::init();
/// // … serve until told to stop; as `main` returns, `_guard` is dropped and writes the
/// // last interval, the held lines and the last container report.
/// ```
///
/// On the [`layer`](crate::layer) path, make one with [`FlushGuard::new`].
#[derive(Default)]
#[must_use = "dropping the guard writes at once what it would write at shutdown: keep it until main returns (`let _guard = …`)"]
pub struct FlushGuard {
    reporter: Option<MetricsReporter>,
    /// The lines of the layer `init` installed: what they lost is said as the guard goes.
    lines: Option<Arc<dyn LineSink>>,
    counter: LineCounter,
}

impl FlushGuard {
    /// A guard that writes what every layer of this process holds when dropped (as
    /// [`flush`](crate::flush()) does).
    pub fn new() -> Self {
        Self::default()
    }

    /// A guard that also stops `reporter`, with a last report, and gives the `counter` of
    /// the layer `init` installed.
    pub(crate) fn with_reporter(
        reporter: Option<MetricsReporter>,
        lines: Option<Arc<dyn LineSink>>,
    ) -> Self {
        let counter = lines
            .as_ref()
            .map(|lines| lines.counter().clone())
            .unwrap_or_default();
        FlushGuard {
            reporter,
            lines,
            counter,
        }
    }

    /// What became of the lines of the layer [`init`](crate::init) installed (and of its
    /// container metrics): written, or lost by reason. A guard made with
    /// [`FlushGuard::new`] counts nothing: read [`EcsLayer::line_counter`](crate::EcsLayer::line_counter) then.
    pub fn line_counter(&self) -> &LineCounter {
        &self.counter
    }
}

impl fmt::Debug for FlushGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlushGuard")
            .field("reporter", &self.reporter)
            .field("lines", &self.counter)
            .finish()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        crate::flush();
        if let Some(reporter) = self.reporter.take() {
            reporter.stop();
        }
        // Last: no line will come after to say what was lost.
        if let Some(lines) = &self.lines {
            lines.say_losses();
        }
    }
}
