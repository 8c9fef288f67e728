//! The metrics reporter: task stats as EMF lines, at an interval, on the logs' writer.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use tracing_subscriber::fmt::MakeWriter;

use crate::client::MetadataClient;
use crate::emf::{self, EmfError};
use crate::error::Error;
use crate::format::{EcsFormat, LineOptions};
use crate::line_counts::{LineCounter, Loss};
use crate::metadata::EcsMetadata;
use crate::sink::{CountingWriter, LineSink};
use crate::stats::{TaskFigures, TaskStats};

/// The default interval between two reports.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// A background thread that reads `/task/stats` at start and then every interval, and writes
/// the figures as
/// [EMF](crate::emf) lines — each line in one write, so it never interleaves with a log line
/// on the same writer. Built and started by [`MetricsReporter::builder`]; reporting stops
/// when this guard is dropped (or [`stop`](Self::stop)ped), with a last report: the sample
/// being read, or one more read at once, so that what the task did since the last report
/// is not lost when the service stops. Dropping returns within a second whatever the
/// endpoint does (a read slower than that is left to end by itself, and nothing is written
/// after it).
///
/// On an endpoint error it logs one WARN for the outage (not one per attempt) and backs off,
/// doubling the wait up to 16 intervals; one INFO says when stats are back. A sample it
/// cannot write (a container name CloudWatch would refuse as a dimension) costs one WARN
/// for that sample, and reporting goes on.
///
/// ```no_run
/// use std::time::Duration;
/// use tracing_aws_ecs::MetricsReporter;
///
/// let _guard = tracing_aws_ecs::init();
/// // Off ECS there is nothing to report: `start` says so, and the service goes on.
/// let _metrics = MetricsReporter::builder()
///     .with_interval(Duration::from_secs(60))
///     .with_namespace("MyApp")
///     .start()
///     .ok();
/// // … the service runs; reporting stops when `_metrics` is dropped.
/// ```
#[must_use = "reporting stops when the reporter is dropped"]
pub struct MetricsReporter {
    state: Arc<(Mutex<State>, Condvar)>,
    /// The guard stopped waiting for the last report: nothing more is written (a write
    /// begun finishes). Outside the state's lock, so that a stalled writer never holds it.
    writing: Arc<Writing>,
    thread: Option<JoinHandle<()>>,
    /// Where the lines go, with their counts.
    sink: Arc<dyn LineSink>,
    /// The sink is the reporter's own, not a layer's: the reporter says its losses.
    own_sink: bool,
}

impl fmt::Debug for MetricsReporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsReporter")
            .field("running", &self.thread.is_some())
            .field("lines", &self.sink.counter())
            .finish_non_exhaustive()
    }
}

/// How long stopping waits for the thread's last report: a request may take up to the
/// client's deadline, and a service stopping (ECS gives it 30 s by default) must not wait
/// for it.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// Where the reporting thread is, shared with its guard.
#[derive(Debug, Default)]
struct State {
    /// The guard asked the thread to stop.
    stop: bool,
    /// The thread has ended.
    ended: bool,
}

/// Configures a [`MetricsReporter`]; [`start`](Self::start) validates and starts it.
#[derive(Debug)]
#[must_use]
pub struct MetricsBuilder<W = fn() -> io::Stdout> {
    interval: Duration,
    namespace: String,
    metadata: Option<EcsMetadata>,
    client: Option<MetadataClient>,
    writer: W,
    /// `writer` is the process's stdout.
    stdout: bool,
}

impl MetricsReporter {
    /// A builder with the defaults: every 60 s, namespace `ECS/TaskMetrics`, the endpoint
    /// named by the environment, the process-wide metadata, stdout.
    pub fn builder() -> MetricsBuilder {
        MetricsBuilder {
            interval: DEFAULT_INTERVAL,
            namespace: emf::DEFAULT_NAMESPACE.to_owned(),
            metadata: None,
            client: None,
            writer: io::stdout,
            stdout: true,
        }
    }

    /// What became of the lines the reporter was given: written, or lost by reason. With
    /// [`Builder::with_container_metrics`](crate::Builder::with_container_metrics), the
    /// counts are the layer's, shared with its log lines.
    pub fn line_counter(&self) -> LineCounter {
        self.sink.counter().clone()
    }

    /// Stops the thread after a last report, and waits for it (as dropping does).
    pub fn stop(mut self) {
        self.shut_down();
    }

    /// Stops the thread after its last report (the sample being read, or one more read),
    /// waiting for it at most [`STOP_WAIT`]: a read slower than that is left to end by
    /// itself, and writes nothing.
    fn shut_down(&mut self) {
        // Stopped already (`stop`, then the drop).
        let Some(thread) = self.thread.take() else {
            return;
        };
        let (state, wake) = &*self.state;
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.stop = true;
        wake.notify_all();
        let (state, _) = wake
            .wait_timeout_while(state, STOP_WAIT, |state| !state.ended)
            .unwrap_or_else(PoisonError::into_inner);
        let ended = state.ended;
        drop(state);
        if ended {
            let _ = thread.join();
        } else if self.writing.abandon() {
            // The last report is given up: counted as one line (a report being written
            // finishes, and the thread counts the one after it).
            self.sink.lost(Loss::Shutdown, 1);
        }
        if self.own_sink {
            // No line of a layer's will follow to say what the reporter lost.
            self.sink.say_losses();
        }
    }
}

impl<W> MetricsBuilder<W> {
    /// How often to report (default 60 s; at least 1 ms). The first report is written at
    /// start, with what one sample tells (CPU % only where the payload carries the previous
    /// counters), so that a task that lives less than an interval reports too.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The CloudWatch namespace of the metrics (default `ECS/TaskMetrics`). Checked by
    /// [`start`](Self::start).
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// The metadata that names the containers and gives the dimensions and limits (default:
    /// the process-wide [`metadata()`](crate::metadata()), read when reporting starts).
    pub fn with_metadata(mut self, metadata: EcsMetadata) -> Self {
        self.metadata = Some(metadata);
        self
    }

    /// The client that reads the stats (default: [`MetadataClient::from_env`]).
    pub fn with_client(mut self, client: MetadataClient) -> Self {
        self.client = Some(client);
        self
    }

    /// Where lines go (default stdout). Give it the writer the log lines go to (a clone of
    /// the one given to [`Builder::with_writer`](crate::Builder::with_writer)): each line is
    /// one write, so metric and log lines never cut into each other.
    pub fn with_writer<W2>(self, writer: W2) -> MetricsBuilder<W2> {
        MetricsBuilder {
            interval: self.interval,
            namespace: self.namespace,
            metadata: self.metadata,
            client: self.client,
            writer,
            stdout: false,
        }
    }

    /// Checks the settings and starts reporting.
    ///
    /// # Errors
    ///
    /// [`MetricsError::Endpoint`] when no client was given and the environment names no
    /// endpoint (off ECS: [`Error::NotOnEcs`](crate::Error::NotOnEcs)) or a malformed one;
    /// [`MetricsError::Namespace`] when CloudWatch would refuse the namespace;
    /// [`MetricsError::Thread`] when no thread can be started.
    pub fn start(self) -> Result<MetricsReporter, MetricsError>
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        // A loss is said as a log line is: with the process's identity.
        let notice = EcsFormat::new(
            crate::metadata(),
            Default::default(),
            LineOptions::default(),
            crate::format::DEFAULT_MAX_LINE_BYTES,
            Arc::default(),
        );
        let (writer, stdout) = (self.writer, self.stdout);
        let builder = MetricsBuilder {
            interval: self.interval,
            namespace: self.namespace,
            metadata: self.metadata,
            client: self.client,
            writer: (),
            stdout,
        };
        let mut reporter = builder.start_on(Arc::new(CountingWriter::new(
            writer,
            stdout,
            Arc::new(notice),
        )))?;
        reporter.own_sink = true;
        Ok(reporter)
    }
}

impl<W> MetricsBuilder<W> {
    /// Starts reporting on `sink` (a layer's, when the layer starts it), the builder's
    /// writer left aside.
    pub(crate) fn start_on(self, sink: Arc<dyn LineSink>) -> Result<MetricsReporter, MetricsError> {
        emf::check_namespace(&self.namespace).map_err(MetricsError::Namespace)?;
        let client = match self.client {
            Some(client) => client,
            None => MetadataClient::from_env().map_err(MetricsError::Endpoint)?,
        };
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let signal = Arc::clone(&state);
        let writing = Arc::new(Writing::default());
        let handover = Arc::clone(&writing);
        let (namespace, every, metadata) = (self.namespace, self.interval, self.metadata);
        let writer = Arc::clone(&sink);
        let thread = thread::Builder::new()
            .name("ecs-metrics".into())
            .spawn(move || {
                // Given, it stays; read by the process, the one recovered later replaces it.
                let follows = metadata.is_none();
                let metadata = metadata.or_else(|| crate::metadata().cloned());
                run(
                    &client,
                    (metadata.as_ref(), follows),
                    (&*writer, &handover),
                    every,
                    &namespace,
                    &signal,
                );
                handover.finish();
                let (state, wake) = &*signal;
                state.lock().unwrap_or_else(PoisonError::into_inner).ended = true;
                wake.notify_all();
            })
            .map_err(MetricsError::Thread)?;
        Ok(MetricsReporter {
            state,
            writing,
            thread: Some(thread),
            sink,
            own_sink: false,
        })
    }
}

/// Why a [`MetricsReporter`] did not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum MetricsError {
    /// No endpoint to read stats from: off ECS, or a malformed variable.
    Endpoint(Error),
    /// CloudWatch would refuse the namespace.
    Namespace(EmfError),
    /// No thread could be started.
    Thread(io::Error),
}

impl fmt::Display for MetricsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot report metrics: ")?;
        match self {
            MetricsError::Endpoint(e) => write!(f, "{e}"),
            MetricsError::Namespace(e) => write!(f, "{e}"),
            MetricsError::Thread(e) => write!(f, "no thread: {e}"),
        }
    }
}

impl std::error::Error for MetricsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MetricsError::Endpoint(e) => Some(e),
            MetricsError::Namespace(e) => Some(e),
            MetricsError::Thread(e) => Some(e),
        }
    }
}

impl Drop for MetricsReporter {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Waits `wait` or until stopped; `true` when stopped.
fn stopped(signal: &(Mutex<State>, Condvar), wait: Duration) -> bool {
    let (state, wake) = signal;
    let state = state.lock().unwrap_or_else(PoisonError::into_inner);
    let (state, _) = wake
        .wait_timeout_while(state, wait, |state| !state.stop)
        .unwrap_or_else(PoisonError::into_inner);
    state.stop
}

/// Whether the reporting thread writes, shared with its guard, so that a last report given
/// up is counted once: by the guard when the thread was not writing, else by the thread.
#[derive(Debug, Default)]
struct Writing(AtomicU8);

const IDLE: u8 = 0;
const WRITING: u8 = 1;
const ABANDONED: u8 = 2;
/// The thread wrote its last report, or ended without one: nothing to give up.
const DONE: u8 = 3;

impl Writing {
    /// The thread begins a report: `false` when the guard gave up on it.
    fn begin(&self) -> bool {
        self.0
            .compare_exchange(IDLE, WRITING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The thread ended a report, its `last` or not: `true` when the guard gave up on it
    /// meanwhile.
    fn end(&self, last: bool) -> bool {
        let next = if last { DONE } else { IDLE };
        self.0
            .compare_exchange(WRITING, next, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
    }

    /// The thread ends: no report is left to give up.
    fn finish(&self) {
        let _ = self
            .0
            .compare_exchange(IDLE, DONE, Ordering::AcqRel, Ordering::Acquire);
    }

    /// The guard gives up: whether a report is given up with it (the thread was between
    /// reports, reading its last one).
    fn abandon(&self) -> bool {
        self.0.swap(ABANDONED, Ordering::AcqRel) == IDLE
    }
}

/// Writes a report's `lines` unless the guard gave up on the thread (and counted the
/// report); a report that is not the `last`, written as the guard gave up, counts the last
/// one lost.
fn write_lines((sink, writing): (&dyn LineSink, &Writing), lines: &str, last: bool) {
    if !writing.begin() {
        return;
    }
    for line in lines.split_inclusive('\n') {
        sink.write_line(line.as_bytes(), crate::sink::metrics_line());
    }
    if writing.end(last) && !last {
        sink.lost(Loss::Shutdown, 1);
    }
}

fn run(
    client: &MetadataClient,
    (at_start, follows): (Option<&EcsMetadata>, bool),
    writer: (&dyn LineSink, &Writing),
    every: Duration,
    namespace: &str,
    signal: &(Mutex<State>, Condvar),
) {
    let mut previous: Option<TaskStats> = None;
    let mut outage = false;
    // The first sample at once, written with what one sample tells (CPU % from the
    // payload's previous counters, unknown where they are empty).
    let mut wait = Duration::ZERO;
    // Metrics whose values CloudWatch would refuse, noted once each.
    let mut noted: Vec<&'static str> = Vec::new();
    loop {
        // Stopped while waiting: one more read, the last report.
        let mut last = stopped(signal, wait);
        let metadata = crate::cache::recovered().filter(|_| follows).or(at_start);
        let task = metadata.and_then(EcsMetadata::task);
        let stats = client.task_stats();
        // Stopped while the read was in flight: it is the last report.
        last |= stopped(signal, Duration::ZERO);
        match stats {
            Ok(stats) => {
                if outage && !last {
                    tracing::info!(target: "tracing_aws_ecs", "task stats readable again: metrics resume");
                    outage = false;
                }
                wait = every;
                let figures = TaskFigures::new(&stats, task, previous.as_ref());
                match emf::task_records(&figures, metadata, namespace, SystemTime::now()) {
                    Ok(records) => {
                        write_lines(writer, &records.lines, last);
                        for name in records.left_out {
                            if !noted.contains(&name) {
                                noted.push(name);
                                tracing::warn!(target: "tracing_aws_ecs", "metric {name} left out: its value is one CloudWatch refuses");
                            }
                        }
                    }
                    // A payload CloudWatch would refuse costs its sample, not the reporter.
                    Err(e) => {
                        tracing::warn!(target: "tracing_aws_ecs", "metrics not written for this sample: {e}");
                    }
                }
                previous = Some(stats);
            }
            Err(e) => {
                if !outage && !last {
                    tracing::warn!(target: "tracing_aws_ecs", "cannot read task stats, metrics paused: {e}");
                    outage = true;
                }
                wait = wait.saturating_mul(2).min(every.saturating_mul(16));
            }
        }
        if last {
            return;
        }
    }
}
