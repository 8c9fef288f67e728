//! Request metrics from spans: how many requests each route served, how many failed, and
//! how long they took, written as CloudWatch Embedded Metric Format lines next to the logs.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime};

use once_cell::sync::Lazy;
use smallvec::SmallVec;

use crate::emf::{self, Metric, Unit};
use crate::format::{SpanStore, name_bit, same_name};
use crate::json::unescaped;
use crate::line_counts::LineCounts;
use crate::metadata::EcsMetadata;
use crate::sink::LineSink;
use crate::time::random_u64;

/// Request metrics: give it to
/// [`Builder::with_request_metrics`](crate::Builder::with_request_metrics).
///
/// A request is a root span (as for [`Buffering`](crate::Buffering)) that carries a route;
/// it lasts from the span's creation to its close. At its close, what it was is read from
/// the root span's fields, whenever they were recorded:
///
/// - `Route`: `http.route`, `route` or `matched_path` (axum's name). A root span without one
///   is not a request (a background job's span): it is not counted. When such a span has a
///   method or a `uri` (it looks like a request, as tower-http's default span does), one WARN
///   says how to give it a route;
/// - `Method`: `http.request.method` or `method`, else `ANY`;
/// - the status: `http.response.status_code` or `status`, a number or a string that starts
///   with the code (`%response.status()` gives `503 Service Unavailable`);
/// - the request's id and trace: `request_id` and `xray_trace_id` (the trace id an
///   OpenTelemetry tracer gave the request's lines, feature `opentelemetry`, wins over the
///   field), kept for the slowest request of each (Route, Method) and interval.
///
/// A request is counted as its root span closes, when the registry drops the span's data
/// (`tracing_subscriber`'s `Registry` does so at the close; requests still open when the
/// subscriber is dropped are not counted). A request of `http::RequestLayer` (feature
/// `axum`) is counted at its last line, `request finished`, and timed to it: a task spawned
/// with `.in_current_span()` may hold its span open for longer.
///
/// A request is an error when its status is 500 or more, or when it logged an ERROR event.
/// For each interval (60 s by default) and each (Route, Method), one EMF line carries
/// `Requests` and `Errors` (Count, exact) and `Latency` (Milliseconds to the microsecond, one
/// value per request, at most 100 a line: more lines when there are more requests), and the
/// `request_id` and `xray_trace_id` of the pair's slowest request in the interval, when it
/// had them (an id longer than 128 bytes is left out: X-Ray's are 35, and an id past that is
/// not one a query would be written with): a latency spike leads to that request's lines in
/// one Logs Insights query. Past
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
/// Each interval also has one line of `LinesWritten` and `LinesLost` (Count), under
/// `ClusterName` and `ServiceName`: what became of the layer's lines in the interval (see
/// [`LineCounts`](crate::LineCounts); the metrics lines are lines too, counted in the next
/// interval, which writes nothing when they are all it has).
///
/// Lines go to the layer's writer at the end of each interval (one thread, however many
/// requests; an interval without requests or lines writes nothing), on
/// [`flush`](crate::flush()), and when the layer is dropped.
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

/// What one (Route, Method) pair did in the current interval.
struct RouteStats {
    /// The route and method as JSON escapes them, without quotes: as the span's store has
    /// them, so that a request is counted without unescaping its fields.
    route: String,
    method: String,
    /// [`pair_key`] of the two.
    key: u64,
    requests: u64,
    errors: u64,
    latencies: Vec<f64>,
    /// The slowest request of the interval: its latency, and its `request_id` and
    /// `xray_trace_id` as the store has them (escaped, without quotes; empty when it had none).
    slowest: (f64, String, String),
}

/// The current interval.
struct Interval {
    /// The pairs counted on their own: at most [`RequestMetrics::with_max_routes`].
    routes: Vec<RouteStats>,
    /// Where the pairs are in `routes`, by [`pair_key`]: comparing a request with each pair
    /// made 50 routes that look alike cost about 75 ns a request more than one.
    index: HashMap<u64, usize, BuildHasherDefault<KeyHasher>>,
    /// The requests of the pairs past the cap.
    other: RouteStats,
    /// The pairs before this one have had a request this interval: the next pair that has
    /// none yet (a pair of the last interval) is looked for from here. A pair never goes
    /// back to none within an interval.
    busy_before: usize,
}

impl Default for Interval {
    fn default() -> Self {
        Interval {
            routes: Vec::new(),
            index: HashMap::default(),
            other: RouteStats::new(pair_key(OTHER, OTHER), OTHER, OTHER),
            busy_before: 0,
        }
    }
}

impl Interval {
    /// Counts a request of `(route, method)`, whose [`pair_key`] is `key`: where, in
    /// `routes`; `None` for `other`.
    fn count(&mut self, key: u64, request: &Request<'_>, config: &RequestMetrics) -> Option<usize> {
        let (route, method) = (request.route, request.method);
        let at = match self.find(key, route, method) {
            Some(at) => Some(at),
            None => self.place(key, route, method, config.max_routes),
        };
        let stats = match at.and_then(|at| self.routes.get_mut(at)) {
            Some(stats) => stats,
            None => &mut self.other,
        };
        stats.count(request, config.max_latencies);
        at
    }

    /// Where the pair `(route, method)`, whose [`pair_key`] is `key`, is in `routes`.
    fn find(&self, key: u64, route: &str, method: &str) -> Option<usize> {
        let is = |r: &RouteStats| same_name(&r.route, route) && same_name(&r.method, method);
        match self.index.get(&key) {
            Some(&at) if self.routes.get(at).is_some_and(is) => Some(at),
            // Another pair has the same key.
            Some(_) => self.routes.iter().position(is),
            None => None,
        }
    }

    /// Indexes the pair at `at`, unless another pair has its key.
    fn index(&mut self, at: usize) {
        if let Some(stats) = self.routes.get(at) {
            self.index.entry(stats.key).or_insert(at);
        }
    }

    /// Starts the next interval: the pairs that had no request are forgotten, the others
    /// keep their place (and their room) with their counts at zero.
    fn restart(&mut self) {
        self.routes.retain(|r| r.requests > 0);
        self.index.clear();
        for at in 0..self.routes.len() {
            self.routes[at].zero();
            self.index(at);
        }
        self.other.zero();
        self.busy_before = 0;
    }

    /// Where a pair this interval has not seen is counted: a place of its own while there is
    /// room, else that of a pair of the last interval with no request in this one (which
    /// gives it up, so that routes that change between intervals are not counted as
    /// `other`); `None` for `other`.
    // Out of `record`'s way: once per pair and interval, or for a request counted as `other`.
    #[cold]
    #[inline(never)]
    fn place(&mut self, key: u64, route: &str, method: &str, max_routes: usize) -> Option<usize> {
        if self.routes.len() < max_routes {
            self.routes.push(RouteStats::new(key, route, method));
            let at = self.routes.len() - 1;
            self.index(at);
            return Some(at);
        }
        while self
            .routes
            .get(self.busy_before)
            .is_some_and(|r| r.requests > 0)
        {
            self.busy_before += 1;
        }
        let at = self.busy_before;
        let idle = self.routes.get_mut(at)?;
        let old = idle.key;
        idle.reuse(key, route, method);
        if self.index.get(&old) == Some(&at) {
            self.index.remove(&old);
            // Another pair of the old key, never indexed while this one was: it is now.
            if let Some(sibling) = self.routes.iter().position(|r| r.key == old) {
                self.index(sibling);
            }
        }
        self.index(at);
        Some(at)
    }
}

/// Collects one layer's request metrics and writes them.
pub(crate) struct Recorder {
    config: RequestMetrics,
    /// `ClusterName` and `ServiceName`, from the metadata at start, and from the metadata
    /// recovered in the background when start-up had none (see [`Recorder::follow_recovery`]).
    dimensions: (String, String),
    recovered: once_cell::sync::OnceCell<(String, String)>,
    sink: Arc<dyn LineSink>,
    interval: Mutex<Interval>,
    /// Whether the WARN about too many routes was written.
    warned_routes: AtomicBool,
    /// Whether the WARN about a line CloudWatch would refuse was written.
    warned_emf: AtomicBool,
    /// Whether the WARN about root spans that look like requests but carry no route was
    /// written.
    warned_no_route: AtomicBool,
    /// Whether its layer is gone: the requests still open then are dropped with the
    /// subscriber, unfinished, and not counted.
    layer_gone: AtomicBool,
    timer: Arc<Timer>,
    /// The sink's counts when the last interval's lines were written, and how many metrics
    /// lines it wrote: the next interval's `LinesWritten` and `LinesLost` are what changed
    /// since.
    lines_before: Mutex<(LineCounts, u64)>,
}

/// One request as its root span's fields say at its close; strings as the store has them
/// (escaped as in a JSON string, without quotes).
struct Request<'a> {
    route: &'a str,
    method: &'a str,
    millis: f64,
    error: bool,
    request_id: Option<&'a str>,
    trace_id: Option<&'a str>,
}

/// The field names a request is read from, one list per value: the first field of a list's
/// names gives its value.
const FIELD_NAMES: [&[&str]; 6] = [
    // The route: a root span without one is not a request.
    &["http.route", "route", "matched_path"],
    &["http.request.method", "method"],
    &["http.response.status_code", "status"],
    &["request_id"],
    &["xray_trace_id"],
    // What makes a root span without a route look like a request (tower-http's default
    // span has `method`, `uri` and `version`).
    &["uri", "url.path"],
];

/// The [`name_bit`] of each name of [`FIELD_NAMES`], in its place.
const NAME_BITS: [[u64; 3]; 6] = {
    let mut bits = [[0; 3]; 6];
    let mut list = 0;
    while list < FIELD_NAMES.len() {
        let mut name = 0;
        while name < FIELD_NAMES[list].len() {
            bits[list][name] = name_bit(FIELD_NAMES[list][name]);
            name += 1;
        }
        list += 1;
    }
    bits
};

/// For each of the 64 [`name_bit`]s, the lists of [`FIELD_NAMES`] that have a name of that
/// bit (bit `i` for list `i`): a field is matched with a table read and, for the few that
/// may be ours, one list's names.
const LISTS_OF_BIT: [u8; 64] = {
    let mut table = [0; 64];
    let mut list = 0;
    while list < FIELD_NAMES.len() {
        let mut name = 0;
        while name < FIELD_NAMES[list].len() {
            table[NAME_BITS[list][name].trailing_zeros() as usize] |= 1 << list;
            name += 1;
        }
        list += 1;
    }
    table
};

/// The [`name_bit`]s of all of [`FIELD_NAMES`].
const FIELD_BITS: u64 = {
    let mut bits = 0;
    let mut bit = 0;
    while bit < 64 {
        if LISTS_OF_BIT[bit] != 0 {
            bits |= 1 << bit;
        }
        bit += 1;
    }
    bits
};

/// The values of [`FIELD_NAMES`] in `fields`: for each list, the field of its first name
/// that has one, whatever the order the span declared them in. A status that is not one
/// ([`status_code`] refuses it) is passed over for another of the list.
fn request_fields(fields: &SpanStore) -> [Option<&str>; 6] {
    const STATUS: usize = 2;
    let mut values = [None; 6];
    // Where in its list the name that gave each value is: a name earlier in the list wins.
    let mut ranks = [usize::MAX; 6];
    if fields.mask() & FIELD_BITS == 0 {
        return values;
    }
    for (name, bit, value) in fields.written() {
        let mut lists = LISTS_OF_BIT[bit.trailing_zeros() as usize];
        while lists != 0 {
            let list = lists.trailing_zeros() as usize;
            lists &= lists - 1;
            let mut names = FIELD_NAMES[list].iter().zip(NAME_BITS[list]);
            let Some(rank) = names.position(|(n, b)| b == bit && same_name(n, name)) else {
                continue;
            };
            if rank < ranks[list] && (list != STATUS || status_code(value).is_some()) {
                values[list] = Some(value);
                ranks[list] = rank;
            }
        }
    }
    values
}

/// A request whose root span is open, kept beside the span's fields: when it opened, whether
/// it logged an error, and the recorders it goes to when it ends (one per layer that counts
/// requests).
pub(crate) struct OpenRequest {
    opened: Instant,
    failed: AtomicBool,
    /// Whether it was counted: at its last line, or else as its span closed.
    counted: AtomicBool,
    /// The trace id an OpenTelemetry tracer gave the request, in X-Ray's form (35 bytes),
    /// noted from its lines: it wins over a span field's.
    #[cfg(feature = "opentelemetry")]
    traced: std::sync::OnceLock<[u8; 35]>,
    recorders: SmallVec<[Arc<Recorder>; 1]>,
}

impl OpenRequest {
    /// A request whose root span opens now, counted by `recorder`.
    pub(crate) fn now(recorder: &Arc<Recorder>) -> Self {
        OpenRequest {
            opened: crate::time::shared_or_now(),
            failed: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            #[cfg(feature = "opentelemetry")]
            traced: std::sync::OnceLock::new(),
            recorders: smallvec::smallvec![Arc::clone(recorder)],
        }
    }

    /// The request logged an ERROR.
    pub(crate) fn mark_failed(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }

    /// The trace id an OpenTelemetry tracer gave the request, once noted.
    #[cfg(feature = "opentelemetry")]
    fn traced(&self) -> Option<&str> {
        self.traced
            .get()
            .and_then(|id| std::str::from_utf8(id).ok())
    }

    #[cfg(not(feature = "opentelemetry"))]
    fn traced(&self) -> Option<&str> {
        None
    }

    /// Notes the request's trace id as an OpenTelemetry tracer gave it (X-Ray's form); the
    /// first noted stays (a request is one trace).
    #[cfg(feature = "opentelemetry")]
    pub(crate) fn note_trace_id(&self, xray: &[u8; 35]) {
        let _ = self.traced.set(*xray);
    }

    /// Counts the request in `recorder` too, unless it is counted there already.
    pub(crate) fn add_recorder(&mut self, recorder: &Arc<Recorder>) {
        if !self.recorders.iter().any(|r| Arc::ptr_eq(r, recorder)) {
            self.recorders.push(Arc::clone(recorder));
        }
    }

    /// The request ended (its last line is written, or its root span closed) with `fields`:
    /// it is counted, if it is one and was not counted before.
    pub(crate) fn end(&self, fields: &SpanStore) {
        // Not a swap: the two calls are never at once (the last line is written before its
        // request lets go of the span, whose close is the other), and a load and a store
        // cost no atomic operation on the request's path.
        if self.counted.load(Ordering::Relaxed) {
            return;
        }
        self.counted.store(true, Ordering::Relaxed);
        let latency = crate::time::shared_or_now().saturating_duration_since(self.opened);
        let [route, method, status, request_id, trace_id, uri] = request_fields(fields);
        let Some(route) = route else {
            if method.is_some() || uri.is_some() {
                for recorder in &self.recorders {
                    recorder.warn_no_route();
                }
            }
            return;
        };
        let status = status.and_then(status_code);
        let request = Request {
            route,
            method: method.unwrap_or("ANY"),
            millis: crate::time::millis_to_the_microsecond(latency),
            error: self.failed.load(Ordering::Relaxed) || status.is_some_and(|s| s >= 500),
            request_id,
            trace_id: self.traced().or(trace_id),
        };
        for recorder in &self.recorders {
            recorder.record(&request);
        }
    }
}

impl fmt::Debug for OpenRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenRequest")
            .field("opened", &self.opened)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// A status as a span's field has it: a number, or text that starts with the code (`503`,
/// `"503"`, `503 Service Unavailable`).
fn status_code(value: &str) -> Option<u16> {
    match value.as_bytes() {
        [a, b, c, rest @ ..]
            if [a, b, c].iter().all(|d| d.is_ascii_digit())
                && rest.first().is_none_or(|d| !d.is_ascii_digit()) =>
        {
            Some(
                [a, b, c]
                    .iter()
                    .fold(0, |code, d| code * 10 + u16::from(*d - b'0')),
            )
        }
        _ => None,
    }
}

/// Every live recorder, for [`flush`](crate::flush()).
static RECORDERS: Lazy<Mutex<Vec<Weak<Recorder>>>> = Lazy::new(Default::default);

/// The longest `request_id` or `xray_trace_id` an interval's line names, in bytes as
/// escaped.
const MAX_ID_BYTES: usize = 128;

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
        let recorder = Arc::new(Recorder {
            dimensions: dimensions(metadata),
            recovered: once_cell::sync::OnceCell::new(),
            config,
            interval: Mutex::default(),
            warned_routes: AtomicBool::new(false),
            warned_emf: AtomicBool::new(false),
            warned_no_route: AtomicBool::new(false),
            layer_gone: AtomicBool::new(false),
            timer: Arc::default(),
            lines_before: Mutex::new((sink.counter().counts(), 0)),
            sink,
        });
        let mut live = lock(&RECORDERS);
        live.retain(|r| r.strong_count() > 0);
        live.push(Arc::downgrade(&recorder));
        drop(live);
        Timer::start(
            &recorder.timer,
            Arc::downgrade(&recorder),
            recorder.config.interval,
        );
        recorder
    }

    /// Takes its dimensions from the metadata the background recovery reads, if it does:
    /// the lines of the intervals after it carry the task's cluster and service, as the log
    /// lines do.
    pub(crate) fn follow_recovery(self: &Arc<Self>) {
        let recorder = Arc::downgrade(self);
        crate::cache::on_recovery(move |metadata| {
            if let Some(recorder) = recorder.upgrade() {
                let _ = recorder.recovered.set(dimensions(Some(metadata)));
            }
        });
    }

    /// Counts one request.
    fn record(&self, request: &Request<'_>) {
        if self.layer_gone.load(Ordering::Relaxed) {
            return;
        }
        let key = pair_key(request.route, request.method);
        let at = lock(&self.interval).count(key, request, &self.config);
        if at.is_none() && !self.warned_routes.swap(true, Ordering::Relaxed) {
            self.warn_routes();
        }
    }

    /// Its layer is gone: requests that end from now on were cut off, not finished.
    pub(crate) fn layer_gone(&self) {
        self.layer_gone.store(true, Ordering::Relaxed);
    }

    // Out of `record`'s way, which runs at each request's close.
    #[cold]
    #[inline(never)]
    fn warn_routes(&self) {
        tracing::warn!(
            target: "tracing_aws_ecs",
            "request metrics: more than {} (Route, Method) pairs in one interval; the \
             others are counted under Route and Method \"other\"",
            self.config.max_routes
        );
    }

    /// Says once that root spans which look like requests are not counted, and why.
    #[cold]
    #[inline(never)]
    fn warn_no_route(&self) {
        if self.layer_gone.load(Ordering::Relaxed)
            || self.warned_no_route.swap(true, Ordering::Relaxed)
        {
            return;
        }
        tracing::warn!(
            target: "tracing_aws_ecs",
            "request metrics: a root span with a method or a uri but no route closed, and is \
             not counted: record the route template as `http.route` on the request's root \
             span (tower-http's default span has none), or use \
             tracing_aws_ecs::http::RequestLayer"
        );
    }

    /// Writes the interval's lines, and starts the next interval.
    pub(crate) fn write_interval(&self) {
        let (cluster, service) = self.recovered.get().unwrap_or(&self.dimensions);
        let mut lines = String::new();
        let mut refused = None;
        let now = SystemTime::now();
        {
            let mut interval = lock(&self.interval);
            let counted = interval.routes.iter().chain([&interval.other]);
            for stats in counted.filter(|r| r.requests > 0) {
                let route = escaped_dimension_value(&stats.route);
                let method = escaped_dimension_value(&stats.method);
                let (_, request_id, trace_id) = &stats.slowest;
                let slowest = [("request_id", request_id), ("xray_trace_id", trace_id)];
                let properties: SmallVec<[(&str, &str); 2]> = slowest
                    .iter()
                    .filter(|(_, id)| !id.is_empty())
                    .map(|(key, id)| (*key, id.as_str()))
                    .collect();
                let record = emf::SamplesRecord {
                    namespace: &self.config.namespace,
                    dimensions: &[
                        ("ClusterName", cluster),
                        ("ServiceName", service),
                        ("Route", &route),
                        ("Method", &method),
                    ],
                    rollup: 2,
                    counts: &[
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
                    samples: ("Latency", Unit::Milliseconds, &stats.latencies),
                    properties: &properties,
                };
                let written = emf::write_samples_record(&mut lines, &record, now);
                if let Err(e) = written {
                    refused = Some(e);
                }
            }
            interval.restart();
        }
        self.write_line_counts(&mut lines, (cluster, service), now);
        for line in lines.split_inclusive('\n') {
            self.sink
                .write_line(line.as_bytes(), crate::sink::metrics_line());
        }
        if let Some(e) = refused {
            if !self.warned_emf.swap(true, Ordering::Relaxed) {
                tracing::warn!(target: "tracing_aws_ecs", "request metrics not written: {e}");
            }
        }
    }
}

impl Recorder {
    /// The line of `LinesWritten` and `LinesLost` since the last interval's, when there
    /// were lines besides the metrics lines the last interval wrote; `out` holds this
    /// interval's metrics lines so far.
    fn write_line_counts(
        &self,
        out: &mut String,
        (cluster, service): (&str, &str),
        now: SystemTime,
    ) {
        let counts = self.sink.counter().counts();
        let mut last = lock(&self.lines_before);
        let (before, own) = *last;
        let written = counts.written.saturating_sub(before.written);
        let lost = counts.lost().saturating_sub(before.lost());
        // This interval's metrics lines, the line counts' among them, are counted in the
        // next one.
        let own_now = out.matches('\n').count() as u64 + 1;
        *last = (counts, own_now);
        if written + lost <= own {
            // Nothing but the last interval's own metrics lines: an idle service writes
            // nothing.
            *last = (counts, out.matches('\n').count() as u64);
            return;
        }
        // The dimensions are checked already, and the names are fixed: it cannot fail.
        let _ = emf::write_record(
            out,
            &self.config.namespace,
            &[("ClusterName", cluster), ("ServiceName", service)],
            &[],
            &[
                Metric {
                    name: "LinesWritten",
                    unit: Unit::Count,
                    value: written as f64,
                },
                Metric {
                    name: "LinesLost",
                    unit: Unit::Count,
                    value: lost as f64,
                },
            ],
            now,
        );
    }
}

impl Drop for Recorder {
    /// The layer is gone (a scoped subscriber ended): what the interval counted is written,
    /// and the timer ends.
    fn drop(&mut self) {
        self.write_interval();
        self.timer.stop();
    }
}

impl RouteStats {
    fn zero(&mut self) {
        self.requests = 0;
        self.errors = 0;
        self.latencies.clear();
        self.slowest.0 = f64::NEG_INFINITY;
        self.slowest.1.clear();
        self.slowest.2.clear();
    }

    /// Counts `request`, keeping at most `max_latencies` latencies: past that, a uniform
    /// sample of the interval's. The slowest request's ids are kept, in room that stays
    /// from one interval to the next.
    fn count(&mut self, request: &Request<'_>, max_latencies: usize) {
        let millis = request.millis;
        self.requests += 1;
        self.errors += u64::from(request.error);
        if millis > self.slowest.0 {
            let (slowest, request_id, trace_id) = &mut self.slowest;
            *slowest = millis;
            // An id past its cap is left out whole (cutting its escaped text could end the
            // line's JSON mid-escape): the line must stay within CloudWatch's event limit.
            for (kept, id) in [
                (request_id, request.request_id),
                (trace_id, request.trace_id),
            ] {
                kept.clear();
                kept.push_str(id.filter(|id| id.len() <= MAX_ID_BYTES).unwrap_or_default());
            }
        }
        if self.latencies.len() < max_latencies {
            self.latencies.push(millis);
        } else {
            // Uniform in `0..requests`, by a multiply rather than a division.
            let slot = ((u128::from(random_u64()) * u128::from(self.requests)) >> 64) as usize;
            if let Some(kept) = self.latencies.get_mut(slot) {
                *kept = millis;
            }
        }
    }

    /// Takes the place of a pair of the last interval, keeping its room.
    fn reuse(&mut self, key: u64, route: &str, method: &str) {
        self.route.clear();
        self.route.push_str(route);
        self.method.clear();
        self.method.push_str(method);
        self.key = key;
    }

    fn new(key: u64, route: &str, method: &str) -> Self {
        RouteStats {
            route: route.to_owned(),
            method: method.to_owned(),
            key,
            requests: 0,
            errors: 0,
            latencies: Vec::new(),
            slowest: (f64::NEG_INFINITY, String::new(), String::new()),
        }
    }
}

/// A hash of a (route, method) pair, eight bytes a step.
fn pair_key(route: &str, method: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mix = |key: u64, word: u64| (key.rotate_left(5) ^ word).wrapping_mul(K);
    let mut key = (route.len() as u64) << 32 | method.len() as u64;
    for part in [route, method] {
        let mut words = part.as_bytes().chunks_exact(8);
        for word in &mut words {
            let word = word.iter().rev().fold(0, |w, &b| w << 8 | u64::from(b));
            key = mix(key, word);
        }
        let rest = words.remainder().iter().rev();
        key = mix(key, rest.fold(0, |w, &b| w << 8 | u64::from(b)));
    }
    // The low bits pick the index's buckets: mix the high ones in.
    key ^ key >> 29
}

/// Hands a [`pair_key`] through to the index: it is a hash already.
#[derive(Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// `ClusterName` and `ServiceName` as Container Insights names them: the ECS service, else
/// the task definition family; `local` off ECS.
fn dimensions(metadata: Option<&EcsMetadata>) -> (String, String) {
    let cluster = metadata.and_then(EcsMetadata::cluster_name);
    let service = metadata.and_then(|m| m.service_name().or_else(|| m.family()));
    (
        dimension_value(cluster.unwrap_or("local")).into_owned(),
        dimension_value(service.unwrap_or("local")).into_owned(),
    )
}

/// A route or method as the store has it (escaped as in a JSON string) as CloudWatch takes a
/// dimension value.
fn escaped_dimension_value(escaped: &str) -> Cow<'_, str> {
    match unescaped(escaped) {
        Some(Cow::Owned(text)) => Cow::Owned(dimension_value(&text).into_owned()),
        _ => dimension_value(escaped),
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

/// The thread that writes a recorder's intervals as they end, and what stops it: the
/// recorder's drop stops it and waits for it, so that it ends with its layer.
#[derive(Default)]
struct Timer {
    stop: Mutex<bool>,
    wake: Condvar,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Timer {
    /// Starts the thread for `recorder`, an interval every `every`; a thread that cannot be
    /// had costs one WARN line per process.
    fn start(timer: &Arc<Timer>, recorder: Weak<Recorder>, every: Duration) {
        let signal = Arc::clone(timer);
        let spawned = std::thread::Builder::new()
            .name("ecs-request-metrics".into())
            .spawn(move || {
                let mut due = Instant::now() + every;
                loop {
                    let wait = due.saturating_duration_since(Instant::now());
                    let stop = lock(&signal.stop);
                    let (stop, _) = signal
                        .wake
                        .wait_timeout_while(stop, wait, |stop| !*stop)
                        .unwrap_or_else(PoisonError::into_inner);
                    if *stop {
                        return;
                    }
                    drop(stop);
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
        match spawned {
            Ok(thread) => *lock(&timer.thread) = Some(thread),
            Err(e) => {
                static SAID: AtomicBool = AtomicBool::new(false);
                if !SAID.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        target: "tracing_aws_ecs",
                        "request metrics: no thread to end intervals ({e}): they are written \
                         by tracing_aws_ecs::flush() and when the layer goes"
                    );
                }
            }
        }
    }

    /// Stops the thread and waits for it, unless this is it.
    fn stop(&self) {
        *lock(&self.stop) = true;
        self.wake.notify_all();
        if let Some(thread) = lock(&self.thread).take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
    }
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
        assert_eq!(
            escaped_dimension_value(r#"/a\"b\\c\u0001"#),
            "/a\"b\\c\u{1}"
        );
        assert_eq!(escaped_dimension_value(r"/caf\u00e9"), "/caf?");
        assert_eq!(escaped_dimension_value(r"/bad\x"), r"/bad\x");
    }

    /// Counts a request of `route` (method GET) whose key is `key`, with room for 3 pairs.
    fn count_keyed(interval: &mut Interval, key: u64, route: &str) -> Option<usize> {
        let config = RequestMetrics::new("Test").with_max_routes(3);
        let request = Request {
            route,
            method: "GET",
            millis: 1.0,
            error: false,
            request_id: None,
            trace_id: None,
        };
        interval.count(key, &request, &config)
    }

    fn count(interval: &mut Interval, route: &str) -> Option<usize> {
        count_keyed(interval, pair_key(route, "GET"), route)
    }

    #[test]
    fn pairs_that_share_a_key_are_told_apart() {
        let mut interval = Interval::default();
        // Two routes of one key, as if their hashes collided.
        assert_eq!(count_keyed(&mut interval, 7, "/a"), Some(0));
        assert_eq!(count_keyed(&mut interval, 7, "/b"), Some(1));
        assert_eq!(count_keyed(&mut interval, 7, "/b"), Some(1));
        assert_eq!(count_keyed(&mut interval, 7, "/a"), Some(0));
        interval.restart();
        assert_eq!(interval.index.len(), 1);
        assert_eq!(count_keyed(&mut interval, 7, "/b"), Some(1));
        assert_eq!(count_keyed(&mut interval, 7, "/c"), Some(2));
        let requests: Vec<u64> = interval.routes.iter().map(|r| r.requests).collect();
        assert_eq!(requests, [0, 1, 1]);
    }

    #[test]
    fn a_pair_whose_key_sibling_gives_its_place_up_is_still_found() {
        let mut interval = Interval::default();
        // "/a" and "/b" share key 7: "/a" is indexed, "/b" found by a scan.
        assert_eq!(count_keyed(&mut interval, 7, "/a"), Some(0));
        assert_eq!(count_keyed(&mut interval, 7, "/b"), Some(1));
        assert_eq!(count_keyed(&mut interval, 9, "/c"), Some(2));
        interval.restart();
        // "/b" and "/c" come back; "/d" takes the idle place of "/a", the indexed one of 7.
        assert_eq!(count_keyed(&mut interval, 7, "/b"), Some(1));
        assert_eq!(count_keyed(&mut interval, 9, "/c"), Some(2));
        assert_eq!(count_keyed(&mut interval, 11, "/d"), Some(0));
        // "/b" is still found in its place, not sent to `other`.
        for _ in 0..3 {
            assert_eq!(count_keyed(&mut interval, 7, "/b"), Some(1));
        }
        assert_eq!(interval.routes[1].requests, 4);
        assert_eq!(interval.other.requests, 0);
    }

    #[test]
    fn idle_pairs_give_their_places_up_in_turn() {
        let mut interval = Interval::default();
        for route in ["/a", "/b", "/c"] {
            count(&mut interval, route);
        }
        assert_eq!(count(&mut interval, "/d"), None, "past the cap");
        interval.restart();
        assert_eq!(interval.other.requests, 0);
        // "/b" comes back; "/d" and "/e" take the places of "/a" and "/c", then `other`.
        assert_eq!(count(&mut interval, "/b"), Some(1));
        assert_eq!(count(&mut interval, "/d"), Some(0));
        assert_eq!(count(&mut interval, "/e"), Some(2));
        assert_eq!(count(&mut interval, "/f"), None);
        assert_eq!(count(&mut interval, "/d"), Some(0), "found by its new key");
        assert_eq!(interval.find(pair_key("/a", "GET"), "/a", "GET"), None);
        let routes: Vec<_> = interval
            .routes
            .iter()
            .map(|r| (r.route.as_str(), r.requests))
            .collect();
        assert_eq!(routes, [("/d", 2), ("/b", 1), ("/e", 1)]);
    }

    #[test]
    fn statuses_are_read_from_numbers_and_text() {
        assert_eq!(status_code("503"), Some(503));
        assert_eq!(status_code("503 Service Unavailable"), Some(503));
        assert_eq!(status_code("200 OK"), Some(200));
        assert_eq!(status_code("5030"), None);
        assert_eq!(status_code("50"), None);
        assert_eq!(status_code("ok"), None);
        assert_eq!(status_code("NaN"), None);
    }

    #[test]
    fn the_slowest_request_of_a_pair_keeps_its_ids() {
        let mut interval = Interval::default();
        let config = RequestMetrics::new("Test");
        let request = |millis, id| Request {
            route: "/a",
            method: "GET",
            millis,
            error: false,
            request_id: id,
            trace_id: id.map(|_| "1-5e1b4151-5ac6c58f5fb0f6a3a2a8e0a0"),
        };
        let key = pair_key("/a", "GET");
        interval.count(key, &request(2.0, Some("r1")), &config);
        interval.count(key, &request(9.0, Some("r2")), &config);
        interval.count(key, &request(3.0, Some("r3")), &config);
        assert_eq!(interval.routes[0].slowest.0, 9.0);
        assert_eq!(interval.routes[0].slowest.1, "r2");
        interval.restart();
        // A new interval: its first request is its slowest so far, ids or none.
        interval.count(key, &request(0.5, None), &config);
        assert_eq!(
            interval.routes[0].slowest,
            (0.5, String::new(), String::new())
        );
    }

    #[test]
    fn pair_keys_tell_route_from_method() {
        assert_ne!(pair_key("/ab", "C"), pair_key("/a", "bC"));
        assert_ne!(
            pair_key("/orders/{id}", "GET"),
            pair_key("/orders/{id}", "PUT")
        );
        assert_ne!(pair_key("/12345678", ""), pair_key("/1234567", "8"));
    }
}
