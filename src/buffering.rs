//! Request-scoped buffering: lines at the lower levels are held per request (a root span and
//! everything under it) and written only when that request logs an error.
//!
//! Each event is routed before it is rendered ([`Buffer::route`]); a line to hold is then
//! handed to its request's buffer by the layer, explicitly: no state is left on the thread,
//! so an event logged while another is rendered (a `Debug` impl that logs) is routed on its
//! own merits, and a panic leaves nothing behind. The buffer belongs to the root span and to
//! one layer, so tasks that hop threads share it and two layers never do.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, Weak};

use once_cell::sync::Lazy;

use crate::line_counts::Loss;
use crate::sink::LineSink;
use crate::time::random_fraction;
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

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
/// Outside any span, events at the buffered levels are dropped when
/// [`init`](crate::Builder::init) raised the level for buffering (`RUST_LOG` unset), as they
/// would be at INFO: background noise must not flood the logs because of it. When
/// `RUST_LOG` is set, or on the [`layer`](crate::Builder::layer) path with a filter of
/// yours, the filter decides: what it lets through outside a request is written.
///
/// Memory is bounded: a request keeps at most [`with_max_request_bytes`](Self::with_max_request_bytes)
/// of lines (64 KiB), dropping its oldest first, and all requests together at most
/// [`with_max_total_bytes`](Self::with_max_total_bytes) (8 MiB), counted as what their
/// buffers have allocated, not just what they hold. A request allocates nothing until it
/// holds a line; then about 200 bytes of bookkeeping, counted too, which is all it keeps
/// once flushed. When the process-wide room is used up, a request that needs more drops its
/// oldest lines, or the new one. The first line a request flushes says how many it dropped,
/// as `buffer_dropped`; the layer's [`LineCounts`](crate::LineCounts) count them as
/// `buffer_full`, and one WARN says so before the request's lines (lines dropped from a
/// request that never flushes were never to be written, and are not counted).
///
/// A panic is an ERROR line (see the [panic hook](crate::install_panic_hook)): it flushes
/// its own request, as any error does, and no other; a panic caught by a runtime (tokio, a
/// web framework) leaves the other requests in flight as they were. Call
/// [`flush_buffered`](crate::flush_buffered) when the service shuts down (the
/// [`FlushGuard`](crate::FlushGuard) that `init` returns does), so that what the requests in
/// flight held is not lost.
///
/// An event logged while another is rendered (from a `Debug` impl) is routed on its own:
/// held, written or flushing as its level and request say.
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
    /// Whether lines at the buffered levels outside any request are dropped: when `init`
    /// raised the level for buffering (`RUST_LOG` unset), not when a filter of the user's
    /// lets them through.
    pub(crate) drop_outside_requests: bool,
}

impl Default for Buffering {
    fn default() -> Self {
        Buffering {
            buffered: Level::DEBUG,
            flush: Level::ERROR,
            max_request_bytes: 64 * 1024,
            max_total_bytes: 8 * 1024 * 1024,
            sample_rate: 0.0,
            drop_outside_requests: false,
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

/// The most verbose level a buffering layer of this process holds (0 for none; 1 for ERROR
/// to 5 for TRACE), for the start-up check that such lines can reach it.
static MOST_VERBOSE_BUFFERED: AtomicU8 = AtomicU8::new(0);

fn verbosity(level: Level) -> u8 {
    match level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

/// Logs one WARN, once per process, when a buffering layer was built and the global filter
/// lets none of the lines it holds through (`RUST_LOG=info` where it holds DEBUG): buffering
/// would silently do nothing.
pub(crate) fn warn_if_filtered_out() {
    static ONCE: Once = Once::new();
    let buffered = MOST_VERBOSE_BUFFERED.load(Ordering::Relaxed);
    let passes = LevelFilter::current().into_level().map_or(0, verbosity);
    if buffered == 0 || passes >= buffered {
        return;
    }
    ONCE.call_once(|| {
        let rust_log = std::env::var("RUST_LOG")
            .map(|value| format!("RUST_LOG={value:?}"))
            .unwrap_or_else(|_| "the filter".to_owned());
        tracing::warn!(
            target: "tracing_aws_ecs",
            "request buffering holds DEBUG and TRACE lines, but {rust_log} lets none reach it: \
             set RUST_LOG=debug, or RUST_LOG=info,<your crate>=debug"
        );
    });
}

/// What all live requests have allocated to hold lines (their bookkeeping included), in bytes.
static TOTAL: AtomicUsize = AtomicUsize::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);
/// Every live buffer, to flush at shutdown.
static LIVE: Lazy<Mutex<HashMap<u64, Weak<RequestBuffer>>>> = Lazy::new(Default::default);

/// What one request's buffer costs beyond its lines: the buffer, its entries in the root
/// span's list and in [`LIVE`] (a hash map entry at most half full), and the list's box.
const BOOKKEEPING: usize = std::mem::size_of::<RequestBuffer>()
    + 2 * std::mem::size_of::<usize>()
    + std::mem::size_of::<(u64, Arc<RequestBuffer>)>()
    + std::mem::size_of::<RootBuffers>()
    + 2 * (std::mem::size_of::<(u64, Weak<RequestBuffer>)>() + 1);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a buffer must not silence logging for good.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Takes `bytes` of the process-wide room, if that leaves it within `max`.
fn take_room(bytes: usize, max: usize) -> bool {
    TOTAL
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |total| {
            total.checked_add(bytes).filter(|&after| after <= max)
        })
        .is_ok()
}

/// A held line's length, and the metadata of its event.
type HeldLine = (u32, &'static Metadata<'static>);

/// The lines one request holds, and what their storage has been counted as.
#[derive(Default)]
struct Held {
    lines: String,
    /// Each line's length, and the metadata of the event it renders: the writer routes the
    /// line by it, as it routes the event's line written at once.
    lengths: VecDeque<HeldLine>,
    dropped: usize,
    /// The bytes of `lines`' and `lengths`' capacity counted in [`TOTAL`].
    counted: usize,
}

impl Held {
    fn storage(&self) -> usize {
        self.lines.capacity() + self.lengths.capacity() * std::mem::size_of::<HeldLine>()
    }

    /// Whether `line` fits in what is allocated.
    fn fits(&self, line: &str) -> bool {
        self.lines.len() + line.len() <= self.lines.capacity()
            && self.lengths.len() < self.lengths.capacity()
    }

    fn drop_oldest(&mut self) -> bool {
        let Some((oldest, _)) = self.lengths.pop_front() else {
            return false;
        };
        self.lines.drain(..oldest as usize);
        self.dropped += 1;
        true
    }

    /// Holds `line`, dropping the request's oldest lines to stay within the caps.
    fn hold(&mut self, line: &str, meta: &'static Metadata<'static>, config: &Buffering) {
        let max = config.max_request_bytes;
        if line.len() > max {
            self.dropped += 1;
            return;
        }
        while self.lines.len() + line.len() > max {
            self.drop_oldest();
        }
        if !self.fits(line) && !self.grow_for(line, config) {
            // No room to grow: older lines make room within what is allocated, or this
            // line goes.
            while !self.fits(line) && self.drop_oldest() {}
            if !self.fits(line) {
                self.dropped += 1;
                return;
            }
        }
        self.lines.push_str(line);
        // Within `max_request_bytes`, which a line never exceeds here.
        self.lengths
            .push_back((u32::try_from(line.len()).unwrap_or(u32::MAX), meta));
    }

    /// Grows the storage to fit `line`, four times over up to the request's cap (a request
    /// that holds lines usually holds dozens), if the process-wide room allows it.
    fn grow_for(&mut self, line: &str, config: &Buffering) -> bool {
        let needed = self.lines.len() + line.len();
        let lines = (self.lines.capacity() * 4)
            .clamp(1024, config.max_request_bytes)
            .max(needed);
        let lengths = if self.lengths.len() < self.lengths.capacity() {
            self.lengths.capacity()
        } else {
            (self.lengths.capacity() * 4).max(16)
        };
        let growth = (lines - self.lines.capacity())
            + (lengths - self.lengths.capacity()) * std::mem::size_of::<HeldLine>();
        if !take_room(growth, config.max_total_bytes) {
            return false;
        }
        self.lines.reserve_exact(lines - self.lines.len());
        self.lengths.reserve_exact(lengths - self.lengths.len());
        // The allocator may give more than asked: count what it gave.
        let (storage, taken) = (self.storage(), self.counted + growth);
        if storage > taken {
            TOTAL.fetch_add(storage - taken, Ordering::AcqRel);
        } else {
            TOTAL.fetch_sub(taken - storage, Ordering::AcqRel);
        }
        self.counted = storage;
        true
    }

    /// Everything held, and the storage given back.
    fn take(&mut self) -> (String, VecDeque<HeldLine>, usize) {
        TOTAL.fetch_sub(self.counted, Ordering::AcqRel);
        self.counted = 0;
        (
            std::mem::take(&mut self.lines),
            std::mem::take(&mut self.lengths),
            std::mem::take(&mut self.dropped),
        )
    }
}

/// One request's buffer for one layer, in its root span's extensions and in [`LIVE`].
pub(crate) struct RequestBuffer {
    id: u64,
    held: Mutex<Held>,
    /// Flushed, or sampled: lines at the buffered levels are written as they come. Read for
    /// every such line, so not behind the lock; set, and checked again, under it.
    writes_through: AtomicBool,
    sink: Arc<dyn LineSink>,
    config: Arc<Buffering>,
}

impl RequestBuffer {
    fn new(sink: Arc<dyn LineSink>, config: Arc<Buffering>) -> Arc<Self> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let sampled = config.sample_rate > 0.0 && random_fraction() < config.sample_rate;
        TOTAL.fetch_add(BOOKKEEPING, Ordering::AcqRel);
        let buffer = Arc::new(RequestBuffer {
            id,
            held: Mutex::new(Held::default()),
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

    /// Holds one rendered line, of an event of `meta`; writes it instead when the request
    /// was flushed since it was routed here (the flush and this line raced on two threads).
    pub(crate) fn hold(&self, line: &str, meta: &'static Metadata<'static>) {
        let mut held = lock(&self.held);
        if self.writes_through() {
            drop(held);
            self.sink.write_line(line.as_bytes(), meta);
            return;
        }
        held.hold(line, meta, &self.config);
    }

    /// Writes what the request holds, in order, the first line saying how many were dropped;
    /// from then on the request's lines are written as they come.
    fn flush(&self) {
        let (lines, lengths, dropped) = {
            let mut held = lock(&self.held);
            self.writes_through.store(true, Ordering::Release);
            held.take()
        };
        // Lost for good now that the request shows what it held: counted, and said first.
        self.sink.lost(Loss::BufferFull, dropped as u64);
        // Written outside the lock: a writer that logs must not find it taken.
        let mut at = 0;
        for (i, (length, meta)) in lengths.into_iter().enumerate() {
            let line = &lines[at..at + length as usize];
            at += length as usize;
            if i == 0 && dropped > 0 {
                self.sink
                    .write_line(with_dropped(line, dropped).as_bytes(), meta);
            } else {
                self.sink.write_line(line.as_bytes(), meta);
            }
        }
    }
}

impl Drop for RequestBuffer {
    fn drop(&mut self) {
        let held = self.held.get_mut().unwrap_or_else(PoisonError::into_inner);
        TOTAL.fetch_sub(held.counted + BOOKKEEPING, Ordering::AcqRel);
        lock(&LIVE).remove(&self.id);
    }
}

/// `line` with `"buffer_dropped":n` before its closing brace.
fn with_dropped(line: &str, dropped: usize) -> String {
    let body = line.trim_end_matches('\n');
    let body = body.strip_suffix('}').unwrap_or(body);
    format!("{body},\"{DROPPED_KEY}\":{dropped}}}\n")
}

/// Writes the lines every live request holds, as if each had logged an error. Call it when
/// the service shuts down, so that what the requests in flight held is not lost.
pub fn flush_buffered() {
    let live: Vec<Arc<RequestBuffer>> = lock(&LIVE).values().filter_map(Weak::upgrade).collect();
    for buffer in live {
        buffer.flush();
    }
}

/// A request's buffers, one per buffering layer, kept in its root span's extensions.
struct RootBuffers(Vec<(u64, Arc<RequestBuffer>)>);

impl RootBuffers {
    fn of(&self, layer: u64) -> Option<Arc<RequestBuffer>> {
        self.0
            .iter()
            .find(|(id, _)| *id == layer)
            .map(|(_, buffer)| Arc::clone(buffer))
    }
}

/// Runs `f` on the root of the span tree `leaf` is in: `leaf` itself when it has no parent,
/// with no second lookup.
pub(crate) fn with_root<'a, S, R>(leaf: &SpanRef<'a, S>, f: impl FnOnce(&SpanRef<'a, S>) -> R) -> R
where
    S: LookupSpan<'a>,
{
    let mut root = None;
    let mut next = leaf.parent();
    while let Some(span) = next {
        next = span.parent();
        root = Some(span);
    }
    f(root.as_ref().unwrap_or(leaf))
}

/// The buffering one layer does.
pub(crate) struct Buffer {
    /// Tells this layer's buffers from another's in a root span.
    layer: u64,
    config: Arc<Buffering>,
    sink: Arc<dyn LineSink>,
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
    /// Hold its line in the request's buffer ([`RequestBuffer::hold`]).
    Hold(Arc<RequestBuffer>),
}

impl Buffer {
    pub(crate) fn new(config: Buffering, sink: Arc<dyn LineSink>) -> Self {
        static NEXT_LAYER: AtomicU64 = AtomicU64::new(0);
        MOST_VERBOSE_BUFFERED.fetch_max(verbosity(config.buffered), Ordering::Relaxed);
        Buffer {
            layer: NEXT_LAYER.fetch_add(1, Ordering::Relaxed),
            config: Arc::new(config),
            sink,
        }
    }

    /// Where `event`, whose span is `leaf`, goes; an event at the flush level writes its
    /// request's held lines first.
    pub(crate) fn route<S>(&self, event: &Event<'_>, leaf: Option<&SpanRef<'_, S>>) -> Route
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
        let Some(leaf) = leaf else {
            return if buffered && self.config.drop_outside_requests {
                Route::Drop
            } else {
                Route::Write
            };
        };
        let buffer = with_root(leaf, |root| self.buffer_of(root));
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

    /// This layer's buffer for the request whose root span is `root`, made on the request's
    /// first line that needs one.
    fn buffer_of<S>(&self, root: &SpanRef<'_, S>) -> Arc<RequestBuffer>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let existing = root
            .extensions()
            .get::<RootBuffers>()
            .and_then(|buffers| buffers.of(self.layer));
        if let Some(buffer) = existing {
            return buffer;
        }
        let mut extensions = root.extensions_mut();
        // Another thread of the request may have made it meanwhile.
        if let Some(buffer) = extensions
            .get_mut::<RootBuffers>()
            .and_then(|buffers| buffers.of(self.layer))
        {
            return buffer;
        }
        let buffer = RequestBuffer::new(Arc::clone(&self.sink), Arc::clone(&self.config));
        let entry = (self.layer, Arc::clone(&buffer));
        match extensions.get_mut::<RootBuffers>() {
            Some(buffers) => buffers.0.push(entry),
            None => extensions.insert(RootBuffers(vec![entry])),
        }
        buffer
    }
}
