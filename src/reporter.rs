//! The metrics reporter: task stats as EMF lines, at an interval, on the logs' writer.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use tracing_subscriber::fmt::MakeWriter;

use crate::client::MetadataClient;
use crate::emf;
use crate::metadata::EcsMetadata;
use crate::stats::{TaskFigures, TaskStats};

/// A background thread that reads `/task/stats` every interval and writes the figures as
/// [EMF](crate::emf) lines — each line in one write, so it never interleaves with a log line
/// on the same writer.
///
/// On an endpoint error it logs one WARN for the outage (not one per attempt) and backs off,
/// doubling the wait up to 16 intervals; one INFO says when stats are back. It stops when
/// [`stop`](Self::stop)ped or dropped, within the client's deadline.
///
/// ```no_run
/// use std::time::Duration;
/// use tracing_aws_ecs::{MetadataClient, MetricsReporter};
///
/// let client = MetadataClient::from_env()?;
/// let reporter = MetricsReporter::start(client, None, std::io::stdout, Duration::from_secs(60), "MyApp")?;
/// // … later:
/// reporter.stop();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MetricsReporter {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsReporter {
    /// Starts reporting. `metadata` names the containers and gives the dimensions and limits
    /// (the process-wide metadata when `None`). Fails only when no thread can be started.
    pub fn start<W>(
        client: MetadataClient,
        metadata: Option<EcsMetadata>,
        writer: W,
        every: Duration,
        namespace: impl Into<String>,
    ) -> std::io::Result<Self>
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let namespace = namespace.into();
        let every = every.max(Duration::from_millis(1));
        let thread = thread::Builder::new()
            .name("ecs-metrics".into())
            .spawn(move || {
                let metadata = metadata.or_else(|| crate::metadata().cloned());
                run(
                    &client,
                    metadata.as_ref(),
                    &writer,
                    every,
                    &namespace,
                    &signal,
                );
            })?;
        Ok(MetricsReporter {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        let (flag, wake) = &*self.stop;
        *flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsReporter {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Waits `wait` or until stopped; `true` when stopped.
fn stopped(signal: &(Mutex<bool>, Condvar), wait: Duration) -> bool {
    let (flag, wake) = signal;
    let guard = flag.lock().unwrap_or_else(PoisonError::into_inner);
    let (guard, _) = wake
        .wait_timeout_while(guard, wait, |stop| !*stop)
        .unwrap_or_else(PoisonError::into_inner);
    *guard
}

fn run<W>(
    client: &MetadataClient,
    metadata: Option<&EcsMetadata>,
    writer: &W,
    every: Duration,
    namespace: &str,
    signal: &(Mutex<bool>, Condvar),
) where
    W: for<'a> MakeWriter<'a>,
{
    let task = metadata.and_then(EcsMetadata::task);
    let mut previous: Option<TaskStats> = None;
    let mut outage = false;
    let mut wait = every;
    while !stopped(signal, wait) {
        match client.task_stats() {
            Ok(stats) => {
                if outage {
                    tracing::info!(target: "tracing_aws_ecs", "task stats readable again: metrics resume");
                    outage = false;
                }
                wait = every;
                let figures = TaskFigures::new(&stats, task, previous.as_ref());
                match emf::task_records(&figures, metadata, namespace, SystemTime::now()) {
                    Ok(lines) => {
                        for line in lines.split_inclusive('\n') {
                            // A failing writer loses the line, as it loses log lines.
                            let _ = writer.make_writer().write_all(line.as_bytes());
                        }
                    }
                    Err(e) => {
                        tracing::warn!(target: "tracing_aws_ecs", "metrics not written: {e}");
                        return;
                    }
                }
                previous = Some(stats);
            }
            Err(e) => {
                if !outage {
                    tracing::warn!(target: "tracing_aws_ecs", "cannot read task stats, metrics paused: {e}");
                    outage = true;
                }
                wait = (wait * 2).min(every.saturating_mul(16));
            }
        }
    }
}
