//! Request-scoped buffering: lines at the lower levels are held per request (a root span and
//! everything under it) and written only when that request logs an error.
//!
//! The lines are rendered as usual, then handed to the request's buffer instead of the writer
//! (the writer the layer uses routes them, see [`Routed`]). The buffer belongs to the root
//! span, so tasks that hop threads and spans entered on other threads share it.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use once_cell::sync::Lazy;

use crate::time::random_fraction;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The key of the count of lines a request's buffer dropped, on the first line it flushes.
pub(crate) const DROPPED_KEY: &str = "buffer_dropped";

/// How request-scoped buffering works; give it to
/// [`Builder::with_buffering`](crate::Builder::with_buffering).
///
/// Inside a span tree (a request), events at the buffered levels (DEBUG and TRACE by default)
/// are rendered as usual but held in a buffer that belongs to the tree's root span. When an
/// event at the flush level (ERROR by default) or more severe happens anywhere in the tree,
/// the held lines are written first, in order and with their own timestamps, then the event;
/// the request's later lines at the buffered levels are then written as they come. When the
/// root span closes without such an event, its held lines are discarded. Nothing is written
/// twice.
///
/// Outside any span, events at the buffered levels are dropped, as they would be at INFO:
/// buffering lowers the level that reaches the layer, and background noise must not flood
/// the logs because of it.
///
/// Memory is bounded: a request keeps at most [`with_max_request_bytes`](Self::with_max_request_bytes)
/// of lines (64 KiB), dropping its oldest first, and all requests together at most
/// [`with_max_total_bytes`](Self::with_max_total_bytes) (8 MiB). The first line a request
/// flushes says how many it dropped, as `buffer_dropped`. Held lines are also written on a
/// panic (by the [panic hook](crate::install_panic_hook)) and by
/// [`flush_buffered`](crate::flush_buffered), to call when the service shuts down.
///
/// ```
/// use tracing::Level;
/// use tracing_aws_ecs::Buffering;
///
/// let buffering = Buffering::default()
///     .with_max_request_bytes(32 * 1024)
///     .with_sample_rate(0.01); // every line of 1 request in 100, for a steady trickle
/// # let _ = buffering;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Buffering {
    buffered: Level,
    flush: Level,
    max_request_bytes: usize,
    max_total_bytes: usize,
    sample_rate: f64,
}

impl Default for Buffering {
    fn default() -> Self {
        Buffering {
            buffered: Level::DEBUG,
            flush: Level::ERROR,
            max_request_bytes: 64 * 1024,
            max_total_bytes: 8 * 1024 * 1024,
            sample_rate: 0.0,
        }
    }
}

impl Buffering {
    /// Events at this level and the more verbose ones are buffered (default DEBUG: DEBUG and
    /// TRACE).
    pub fn with_buffered_level(mut self, level: Level) -> Self {
        self.buffered = level;
        self
    }

    /// Events at this level and the more severe ones flush their request (default ERROR).
    pub fn with_flush_level(mut self, level: Level) -> Self {
        self.flush = level;
        self
    }

    /// The most a request holds, in bytes of lines (default 64 KiB); its oldest lines go first.
    pub fn with_max_request_bytes(mut self, bytes: usize) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// The most all requests hold together (default 8 MiB).
    pub fn with_max_total_bytes(mut self, bytes: usize) -> Self {
        self.max_total_bytes = bytes;
        self
    }

    /// The fraction of requests, from 0 to 1, whose lines at the buffered levels are all
    /// written, failing or not (default 0).
    pub fn with_sample_rate(mut self, rate: f64) -> Self {
        self.sample_rate = if rate.is_nan() {
            0.0
        } else {
            rate.clamp(0.0, 1.0)
        };
        self
    }

    /// The most verbose level the buffered events need to reach the layer.
    pub(crate) fn buffered_level(&self) -> Level {
        self.buffered
    }
}

/// Where a held line can be written when its request is flushed.
trait Sink: Send + Sync {
    fn write_line(&self, line: &[u8]);
}

struct WriterSink<W>(Arc<W>);

impl<W> Sink for WriterSink<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync,
{
    fn write_line(&self, line: &[u8]) {
        // A failing writer loses the line, as it loses any other.
        let _ = self.0.make_writer().write_all(line);
    }
}

/// The lines one request holds.
#[derive(Default)]
struct Held {
    lines: String,
    lengths: VecDeque<usize>,
    dropped: usize,
}

/// One request's buffer, in its root span's extensions and in the list of live buffers.
pub(crate) struct RequestBuffer {
    id: u64,
    held: Mutex<Held>,
    /// Flushed, or sampled: lines at the buffered levels are written as they come. Read for
    /// every such line, so not behind the lock.
    writes_through: AtomicBool,
    sink: Arc<dyn Sink>,
    config: Arc<Buffering>,
}

/// What all live requests hold, in bytes.
static TOTAL: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// Every live buffer, to flush on a panic or at shutdown.
static LIVE: Lazy<Mutex<HashMap<u64, Weak<RequestBuffer>>>> = Lazy::new(Default::default);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a buffer must not silence logging for good.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RequestBuffer {
    fn new(sink: Arc<dyn Sink>, config: Arc<Buffering>) -> Arc<Self> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let sampled = config.sample_rate > 0.0 && random_fraction() < config.sample_rate;
        // Room for a few dozen lines up front: the held text grows per request, rarely per line.
        let room = config.max_request_bytes.min(8 * 1024);
        let buffer = Arc::new(RequestBuffer {
            id,
            held: Mutex::new(Held {
                lines: String::with_capacity(room),
                lengths: VecDeque::with_capacity(32),
                dropped: 0,
            }),
            writes_through: AtomicBool::new(sampled),
            sink,
            config,
        });
        lock(&LIVE).insert(id, Arc::downgrade(&buffer));
        buffer
    }

    fn writes_through(&self) -> bool {
        self.writes_through.load(Ordering::Acquire)
    }

    /// Holds one rendered line, dropping the request's oldest ones to stay within the caps.
    fn hold(&self, line: &[u8]) {
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        let mut held = lock(&self.held);
        if line.len() > self.config.max_request_bytes {
            held.dropped += 1;
            return;
        }
        while held.lines.len() + line.len() > self.config.max_request_bytes
            || TOTAL.load(Ordering::Relaxed) + line.len() > self.config.max_total_bytes
        {
            let Some(oldest) = held.lengths.pop_front() else {
                // Other requests hold the rest of the process-wide room.
                held.dropped += 1;
                return;
            };
            held.lines.drain(..oldest);
            TOTAL.fetch_sub(oldest, Ordering::Relaxed);
            held.dropped += 1;
        }
        held.lines.push_str(line);
        held.lengths.push_back(line.len());
        TOTAL.fetch_add(line.len(), Ordering::Relaxed);
    }

    /// Writes what the request holds, in order, the first line saying how many were dropped;
    /// from then on the request's lines are written as they come.
    fn flush(&self) {
        let mut held = lock(&self.held);
        self.writes_through.store(true, Ordering::Release);
        let mut at = 0;
        let dropped = std::mem::take(&mut held.dropped);
        let mut first = true;
        while let Some(length) = held.lengths.pop_front() {
            let line = &held.lines[at..at + length];
            at += length;
            TOTAL.fetch_sub(length, Ordering::Relaxed);
            match (first, dropped) {
                (true, 1..) => self.sink.write_line(with_dropped(line, dropped).as_bytes()),
                _ => self.sink.write_line(line.as_bytes()),
            }
            first = false;
        }
        held.lines.clear();
    }
}

impl Drop for RequestBuffer {
    fn drop(&mut self) {
        let held = self.held.get_mut().unwrap_or_else(PoisonError::into_inner);
        TOTAL.fetch_sub(held.lines.len(), Ordering::Relaxed);
        lock(&LIVE).remove(&self.id);
    }
}

/// `line` with `"buffer_dropped":n` before its closing brace.
fn with_dropped(line: &str, dropped: usize) -> String {
    let body = line.trim_end_matches('\n');
    let body = body.strip_suffix('}').unwrap_or(body);
    format!("{body},\"{DROPPED_KEY}\":{dropped}}}\n")
}

/// Writes the lines every live request holds, as if each had logged an error. The panic hook
/// calls it; call it when the service shuts down, so that what the requests in flight held is
/// not lost.
pub fn flush_buffered() {
    let live: Vec<Arc<RequestBuffer>> = lock(&LIVE).values().filter_map(Weak::upgrade).collect();
    for buffer in live {
        buffer.flush();
    }
}

/// A request's buffer, kept in its root span's extensions.
struct RootBuffer(Arc<RequestBuffer>);

thread_local! {
    /// The buffer the line being written goes to, when it is held.
    static DESTINATION: RefCell<Option<Arc<RequestBuffer>>> = const { RefCell::new(None) };
}

/// The buffering a layer does.
pub(crate) struct Buffer {
    config: Arc<Buffering>,
    sink: Arc<dyn Sink>,
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("config", &self.config)
            .finish()
    }
}

/// What to do with an event.
pub(crate) enum Route {
    /// Write it.
    Write,
    /// Drop it: a buffered level outside any request.
    Drop,
    /// Hold its line in the request's buffer.
    Hold(Arc<RequestBuffer>),
}

impl Buffer {
    pub(crate) fn new<W>(config: Buffering, writer: Arc<W>) -> Self
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        Buffer {
            config: Arc::new(config),
            sink: Arc::new(WriterSink(writer)),
        }
    }

    /// Where `event` goes; an event at the flush level writes its request's held lines first.
    pub(crate) fn route<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> Route
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let level = *event.metadata().level();
        // Levels order from ERROR (least) to TRACE (most verbose).
        let buffered = level >= self.config.buffered;
        let flushes = level <= self.config.flush;
        if !buffered && !flushes {
            return Route::Write;
        }
        let Some(root) = ctx.event_scope(event).and_then(|scope| scope.last()) else {
            return if buffered { Route::Drop } else { Route::Write };
        };
        // The request's buffer, made on its first line that needs one.
        let existing = root
            .extensions()
            .get::<RootBuffer>()
            .map(|RootBuffer(buffer)| Arc::clone(buffer));
        let buffer = match existing {
            Some(buffer) => buffer,
            None => {
                let mut extensions = root.extensions_mut();
                match extensions.get_mut::<RootBuffer>() {
                    // Another thread of the request made it meanwhile.
                    Some(RootBuffer(buffer)) => Arc::clone(buffer),
                    None => {
                        let buffer =
                            RequestBuffer::new(Arc::clone(&self.sink), Arc::clone(&self.config));
                        extensions.insert(RootBuffer(Arc::clone(&buffer)));
                        buffer
                    }
                }
            }
        };
        if flushes {
            buffer.flush();
            return Route::Write;
        }
        if buffer.writes_through() {
            Route::Write
        } else {
            Route::Hold(buffer)
        }
    }

    /// Runs `write` (the layer formatting and writing the event) with its line going to
    /// `buffer`.
    pub(crate) fn hold_while(buffer: Arc<RequestBuffer>, write: impl FnOnce()) {
        DESTINATION.with(|d| *d.borrow_mut() = Some(buffer));
        write();
        DESTINATION.with(|d| *d.borrow_mut() = None);
    }
}

/// The layer's writer: the user's, except while a line is being held.
pub(crate) struct Routed<W> {
    writer: Arc<W>,
    /// Whether lines may be held at all: without buffering, no look at the thread's state.
    buffering: bool,
}

impl<W> Routed<W> {
    pub(crate) fn new(writer: Arc<W>, buffering: bool) -> Self {
        Routed { writer, buffering }
    }

    fn held(&self) -> Option<Arc<RequestBuffer>> {
        if self.buffering {
            DESTINATION.with(|d| d.borrow().clone())
        } else {
            None
        }
    }
}

impl<'a, W: MakeWriter<'a>> MakeWriter<'a> for Routed<W> {
    type Writer = RoutedWriter<W::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        match self.held() {
            Some(buffer) => RoutedWriter::Held(buffer),
            None => RoutedWriter::Written(self.writer.make_writer()),
        }
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        match self.held() {
            Some(buffer) => RoutedWriter::Held(buffer),
            None => RoutedWriter::Written(self.writer.make_writer_for(meta)),
        }
    }
}

/// A line's destination: the writer, or a request's buffer.
pub(crate) enum RoutedWriter<W> {
    Written(W),
    Held(Arc<RequestBuffer>),
}

impl<W: Write> Write for RoutedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            RoutedWriter::Written(w) => w.write(buf),
            // The formatter hands over each line in one write.
            RoutedWriter::Held(buffer) => {
                buffer.hold(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            RoutedWriter::Written(w) => w.flush(),
            RoutedWriter::Held(_) => Ok(()),
        }
    }
}
