//! Request metrics from spans: how many requests each route served, how many failed, and
//! how long they took, written as CloudWatch Embedded Metric Format lines next to the logs.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use once_cell::sync::Lazy;

use crate::emf::{self, Metric, Unit};
use crate::format::name_bit;
use crate::metadata::EcsMetadata;
use crate::time::random_fraction;
use crate::write::LineSink;

/// Request metrics: give it to
/// [`Builder::with_request_metrics`](crate::Builder::with_request_metrics).
///
/// A request is a root span (as for [`Buffering`](crate::Buffering)); it lasts from the
/// span's creation to its close. At its close, its route, method and status are read from
/// the root span's fields, whenever they were recorded:
///
/// - `Route`: `route` or `http.route`, else the span's name;
/// - `Method`: `method` or `http.request.method`, else `ANY`;
/// - the status: `status` or `http.response.status_code`.
///
/// A request is an error when its status is 500 or more, or when it logged an ERROR event.
/// For each interval (60 s by default) and each (Route, Method), one EMF line carries
/// `Requests` and `Errors` (Count, exact) and `Latency` (Milliseconds, one value per request,
/// at most 100 a line: more lines when there are more requests). Past
/// [`with_max_latencies`](Self::with_max_latencies) requests of a route in one interval
/// (1,000), `Latency` is a uniform random sample of them; the counts stay exact.
///
/// Dimensions: `ClusterName` and `ServiceName` (the ECS service, else the task definition
/// family), as Container Insights names them, and `Route` and `Method`, in two sets: the
/// service as a whole, and each route. Off ECS, `ClusterName` and `ServiceName` are `local`.
/// At most [`with_max_routes`](Self::with_max_routes) (Route, Method) pairs are kept per
/// interval (100); the requests of the others are counted under `Route` and `Method`
/// `other`, and one WARN says so. Route and method values that are not ASCII have their
/// other characters written as `?`.
///
/// Lines go to the layer's writer at the end of each interval (one thread, however many
/// requests; an interval without requests writes nothing), on [`flush`](crate::flush()),
/// and when the layer is dropped.
///
/// ```
/// use std::time::Duration;
/// use tracing_aws_ecs::RequestMetrics;
///
/// let metrics = RequestMetrics::new("OrdersService").with_interval(Duration::from_secs(60));
/// # let _ = metrics;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct RequestMetrics {
    namespace: String,
    interval: Duration,
    max_routes: usize,
    max_latencies: usize,
}

impl RequestMetrics {
    /// Request metrics in the CloudWatch namespace `namespace`.
    pub fn new(namespace: impl Into<String>) -> Self {
        RequestMetrics {
            namespace: namespace.into(),
            interval: Duration::from_secs(60),
            max_routes: 100,
            max_latencies: 1_000,
        }
    }

    /// How long an interval lasts (default 60 s; at least 1 ms).
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The most (Route, Method) pairs kept per interval (default 100).
    pub fn with_max_routes(mut self, routes: usize) -> Self {
        self.max_routes = routes;
        self
    }

    /// The most latency values kept per (Route, Method) and interval (default 1,000); past
    /// it, a uniform random sample.
    pub fn with_max_latencies(mut self, values: usize) -> Self {
        self.max_latencies = values.max(1);
        self
    }
}

/// The root span's fields a request's route, method and status are read from, each list with
/// its names' bits.
pub(crate) const REQUEST_FIELDS: [(&[&str], u64); 3] = [
    (
        &["route", "http.route"],
        name_bit("route") | name_bit("http.route"),
    ),
    (
        &["method", "http.request.method"],
        name_bit("method") | name_bit("http.request.method"),
    ),
    (
        &["status", "http.response.status_code"],
        name_bit("status") | name_bit("http.response.status_code"),
    ),
];

/// What one (Route, Method) pair did in the current interval.
struct RouteStats {
    route: String,
    method: String,
    requests: u64,
    errors: u64,
    latencies: Vec<f64>,
}

/// The current interval.
#[derive(Default)]
struct Interval {
    routes: Vec<RouteStats>,
}

/// Collects one layer's request metrics and writes them.
pub(crate) struct Recorder {
    config: RequestMetrics,
    cluster: String,
    service: String,
    sink: Arc<dyn LineSink>,
    interval: Mutex<Interval>,
    /// Whether the WARN about too many routes was written.
    warned_routes: AtomicBool,
    /// Whether the WARN about a line CloudWatch would refuse was written.
    warned_emf: AtomicBool,
}

/// Every live recorder, for [`flush`](crate::flush()).
static RECORDERS: Lazy<Mutex<Vec<Weak<Recorder>>>> = Lazy::new(Default::default);

/// The route and method of requests past the cap on pairs.
const OTHER: &str = "other";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Recorder {
    /// A recorder writing to `sink`, with its dimensions from `metadata`, and its timer.
    pub(crate) fn start(
        config: RequestMetrics,
        metadata: Option<&EcsMetadata>,
        sink: Arc<dyn LineSink>,
    ) -> Arc<Recorder> {
        let cluster = metadata.and_then(EcsMetadata::cluster_name);
        let service = metadata.and_then(|m| m.service_name().or_else(|| m.family()));
        let recorder = Arc::new(Recorder {
            cluster: dimension_value(cluster.unwrap_or("local")).into_owned(),
            service: dimension_value(service.unwrap_or("local")).into_owned(),
            config,
            sink,
            interval: Mutex::default(),
            warned_routes: AtomicBool::new(false),
            warned_emf: AtomicBool::new(false),
        });
        let mut live = lock(&RECORDERS);
        live.retain(|r| r.strong_count() > 0);
        live.push(Arc::downgrade(&recorder));
        drop(live);
        start_timer(Arc::downgrade(&recorder), recorder.config.interval);
        recorder
    }

    /// Counts one request.
    pub(crate) fn record(
        &self,
        route: &str,
        method: &str,
        status: Option<u16>,
        latency: Duration,
        failed: bool,
    ) {
        let error = failed || status.is_some_and(|s| s >= 500);
        let millis = latency.as_secs_f64() * 1e3;
        let mut interval = lock(&self.interval);
        let known = interval
            .routes
            .iter()
            .position(|r| r.route == route && r.method == method);
        let at = match known {
            Some(at) => at,
            None if interval.routes.len() < self.config.max_routes => {
                interval.routes.push(RouteStats::new(route, method));
                interval.routes.len() - 1
            }
            // A pair of the last interval with no request in this one gives its place up.
            None => match interval.routes.iter().position(|r| r.requests == 0) {
                Some(at) => {
                    interval.routes[at].reuse(route, method);
                    at
                }
                None => {
                    let other = interval
                        .routes
                        .iter()
                        .position(|r| r.route == OTHER && r.method == OTHER);
                    other.unwrap_or_else(|| {
                        interval.routes.push(RouteStats::new(OTHER, OTHER));
                        interval.routes.len() - 1
                    })
                }
            },
        };
        let overflowed =
            interval.routes[at].route == OTHER && interval.routes.len() > self.config.max_routes;
        let Some(stats) = interval.routes.get_mut(at) else {
            return;
        };
        stats.requests += 1;
        stats.errors += u64::from(error);
        // A uniform sample of the interval's latencies, once there are more than it keeps.
        if stats.latencies.len() < self.config.max_latencies {
            stats.latencies.push(millis);
        } else {
            let slot = (random_fraction() * stats.requests as f64) as usize;
            if let Some(kept) = stats.latencies.get_mut(slot) {
                *kept = millis;
            }
        }
        drop(interval);
        if overflowed && !self.warned_routes.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "tracing_aws_ecs",
                "request metrics: more than {} (Route, Method) pairs in one interval; the \
                 others are counted under Route and Method \"other\"",
                self.config.max_routes
            );
        }
    }

    /// Writes the interval's lines, and starts the next interval.
    pub(crate) fn write_interval(&self) {
        let mut lines = String::new();
        let mut refused = None;
        let now = SystemTime::now();
        {
            let mut interval = lock(&self.interval);
            // Routes without requests are forgotten; the others keep their room.
            interval.routes.retain(|r| r.requests > 0);
            for stats in &mut interval.routes {
                let route = dimension_value(&stats.route);
                let method = dimension_value(&stats.method);
                let written = emf::write_samples_record(
                    &mut lines,
                    &self.config.namespace,
                    &[
                        ("ClusterName", &self.cluster),
                        ("ServiceName", &self.service),
                        ("Route", &route),
                        ("Method", &method),
                    ],
                    2,
                    &[
                        Metric {
                            name: "Requests",
                            unit: Unit::Count,
                            value: stats.requests as f64,
                        },
                        Metric {
                            name: "Errors",
                            unit: Unit::Count,
                            value: stats.errors as f64,
                        },
                    ],
                    ("Latency", Unit::Milliseconds, &stats.latencies),
                    now,
                );
                if let Err(e) = written {
                    refused = Some(e);
                }
                stats.requests = 0;
                stats.errors = 0;
                stats.latencies.clear();
            }
        }
        for line in lines.split_inclusive('\n') {
            self.sink.write_line(line.as_bytes());
        }
        if let Some(e) = refused {
            if !self.warned_emf.swap(true, Ordering::Relaxed) {
                tracing::warn!(target: "tracing_aws_ecs", "request metrics not written: {e}");
            }
        }
    }
}

impl Drop for Recorder {
    /// The layer is gone (a scoped subscriber ended): what the interval counted is written.
    fn drop(&mut self) {
        self.write_interval();
    }
}

impl RouteStats {
    /// Takes the place of a pair of the last interval, keeping its room.
    fn reuse(&mut self, route: &str, method: &str) {
        self.route.clear();
        self.route.push_str(route);
        self.method.clear();
        self.method.push_str(method);
    }

    fn new(route: &str, method: &str) -> Self {
        RouteStats {
            route: route.to_owned(),
            method: method.to_owned(),
            requests: 0,
            errors: 0,
            latencies: Vec::new(),
        }
    }
}

/// `value` as CloudWatch takes a dimension value: ASCII (other characters as `?`), not blank
/// (`-`), at most 1,024 characters.
fn dimension_value(value: &str) -> Cow<'_, str> {
    if value.trim().is_empty() {
        return Cow::Borrowed("-");
    }
    if value.is_ascii() && value.len() <= 1024 {
        return Cow::Borrowed(value);
    }
    Cow::Owned(
        value
            .chars()
            .take(1024)
            .map(|c| if c.is_ascii() { c } else { '?' })
            .collect(),
    )
}

/// One thread that writes the interval's lines at its end, while the recorder lives.
fn start_timer(recorder: Weak<Recorder>, every: Duration) {
    // Wakes at least four times a second to notice that the recorder is gone.
    const NAP: Duration = Duration::from_millis(250);
    let _ = std::thread::Builder::new()
        .name("ecs-request-metrics".into())
        .spawn(move || {
            let mut due = Instant::now() + every;
            loop {
                std::thread::sleep(due.saturating_duration_since(Instant::now()).min(NAP));
                let Some(recorder) = recorder.upgrade() else {
                    return;
                };
                let now = Instant::now();
                if now >= due {
                    recorder.write_interval();
                    due += every;
                    if due <= now {
                        due = now + every;
                    }
                }
            }
        });
}

/// Writes the current interval of every live recorder.
pub(crate) fn flush_all() {
    let live: Vec<Arc<Recorder>> = lock(&RECORDERS).iter().filter_map(Weak::upgrade).collect();
    for recorder in live {
        recorder.write_interval();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimension_values_are_what_cloudwatch_takes() {
        assert_eq!(dimension_value("/orders/{id}"), "/orders/{id}");
        assert_eq!(dimension_value("/café"), "/caf?");
        assert_eq!(dimension_value("  "), "-");
        assert_eq!(dimension_value(&"x".repeat(2000)).len(), 1024);
    }
}
