//! The background writer: lines copied into a bounded buffer, and written by one thread,
//! many lines to a write.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

use crate::line_counts::{LineCounter, Loss};
use crate::write::{Start, WRITING, loss, write_patiently};

/// Lines written by a thread of their own, many to a write, so that logging never waits on
/// stdout; give it to [`Builder::with_background_writer`](crate::Builder::with_background_writer).
///
/// A line is copied into a buffer of [`with_capacity`](Self::with_capacity) bytes (1 MiB by
/// default) and the call returns. One thread, `ecs-log-writer`, writes what has gathered: it
/// wakes on a line, lets more gather for up to [`with_linger`](Self::with_linger) (2 ms by
/// default; at once for an ERROR line, or when the buffer is half full), then writes them
/// all, each `write(2)` ending on a line boundary. Lines keep the order they were logged in,
/// and are never split or glued.
///
/// When the buffer is full (stdout stalled: a blocking awslogs driver waiting on CloudWatch),
/// a line is dropped, counted as `queue_full` in the layer's [`LineCounts`](crate::LineCounts)
/// and said by one WARN once writing resumes; [`WhenFull::Wait`] makes the caller wait for
/// room instead.
///
/// On the way out nothing is lost: the [`FlushGuard`](crate::FlushGuard) (as `main` returns,
/// after a graceful shutdown) and the [panic hook](crate::install_panic_hook) wait for the
/// buffer to be written, up to 1 s (lines still not written then are counted as
/// `shutdown`). A process killed (`SIGKILL` after ECS's stop timeout, or out of memory) loses
/// what the buffer holds: at most the last [`with_linger`](Self::with_linger) of lines, or
/// a full buffer when stdout was stalled.
///
/// Lines go to the process's stdout: with a writer of one's own
/// ([`Builder::with_writer`](crate::Builder::with_writer)), they are written directly, and
/// one WARN at start-up says so.
///
/// ```no_run
/// use tracing_aws_ecs::BackgroundWriter;
///
/// let _guard = tracing_aws_ecs::builder()
///     .with_background_writer(BackgroundWriter::default())
///     .init();
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackgroundWriter {
    capacity: usize,
    linger: Duration,
    when_full: WhenFull,
}

/// What a line does when the [`BackgroundWriter`]'s buffer is full.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhenFull {
    /// The line is dropped, and counted (the default): logging never waits.
    #[default]
    Drop,
    /// The caller waits until the thread has made room: nothing is dropped, and logging
    /// waits as long as stdout does.
    Wait,
}

impl Default for BackgroundWriter {
    fn default() -> Self {
        BackgroundWriter {
            capacity: 1024 * 1024,
            linger: Duration::from_millis(2),
            when_full: WhenFull::Drop,
        }
    }
}

impl BackgroundWriter {
    /// The most bytes of lines waiting to be written (default 1 MiB; at least 64 KiB). The
    /// thread holds as much again while it writes.
    pub fn with_capacity(mut self, bytes: usize) -> Self {
        self.capacity = bytes.max(64 * 1024);
        self
    }

    /// How long lines gather before they are written (default 2 ms; at most 1 s): what a
    /// `SIGKILL` may lose, against fewer writes.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger.min(Duration::from_secs(1));
        self
    }

    /// What a line does when the buffer is full (default [`WhenFull::Drop`]).
    pub fn when_full(mut self, when_full: WhenFull) -> Self {
        self.when_full = when_full;
        self
    }
}

/// How long the guard and the panic hook wait for the buffer to be written.
pub(crate) const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// What the thread writes to, and how a loss is said: given by the sink that owns the queue.
pub(crate) trait Output: Send + Sync + 'static {
    /// The writer of one run of lines.
    fn writer(&self) -> Box<dyn Write + '_>;
    /// The notice of the losses not said yet, if any, to write before the next lines.
    fn notice(&self) -> Option<(String, crate::line_counts::LineCounts)>;
}

/// The buffer and the thread that writes it.
pub(crate) struct Queue {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    state: Mutex<State>,
    /// The thread waits on it for lines.
    lines: Condvar,
    /// Callers wait on it for room, or for their lines to be written.
    written: Condvar,
    config: BackgroundWriter,
    counter: LineCounter,
}

#[derive(Default)]
struct State {
    /// Whole lines not taken by the thread yet.
    pending: Vec<u8>,
    pending_lines: u64,
    /// Lines queued since the start, and lines the thread is done with (written or lost).
    queued: u64,
    done: u64,
    /// Write what is there at once: an ERROR line, a flush.
    urgent: bool,
    /// The thread waits for a first line with no deadline: the next line wakes it.
    idle: bool,
    /// The thread waits: a line that needs it at once wakes it.
    waiting: bool,
    /// Drains asked for, and the last the thread has served: a drain waits for the batch
    /// that follows it.
    requested: u64,
    served: u64,
    stop: bool,
}

fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every live queue, for the panic hook.
static LIVE: Lazy<Mutex<Vec<Weak<Shared>>>> = Lazy::new(Default::default);

impl Queue {
    /// Starts the thread writing to `output`, counting in `counter`; `None` when no thread
    /// can be started.
    pub(crate) fn start(
        config: BackgroundWriter,
        counter: LineCounter,
        output: Arc<dyn Output>,
    ) -> io::Result<Queue> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            lines: Condvar::new(),
            written: Condvar::new(),
            config,
            counter,
        });
        let for_thread = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ecs-log-writer".into())
            .spawn(move || run(&for_thread, &*output))?;
        let mut live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        live.retain(|queue| queue.strong_count() > 0);
        live.push(Arc::downgrade(&shared));
        Ok(Queue {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Copies `line` in; `urgent` (an ERROR line) has it written at once. The line is lost
    /// when the buffer is full and the configuration drops.
    pub(crate) fn push(&self, line: &[u8], urgent: bool) -> Result<(), Loss> {
        let shared = &*self.shared;
        let capacity = shared.config.capacity;
        let mut state = lock(&shared.state);
        // A line longer than the whole buffer goes in alone.
        while !state.pending.is_empty() && state.pending.len() + line.len() > capacity {
            // The thread itself (its writer logs) must not wait for itself.
            if shared.config.when_full == WhenFull::Drop || state.stop || WRITING.is_raised() {
                return Err(Loss::QueueFull);
            }
            state = shared
                .written
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.pending.extend_from_slice(line);
        state.pending_lines += 1;
        state.queued += 1;
        state.urgent |= urgent;
        let wake =
            state.waiting && (state.idle || state.urgent || state.pending.len() >= capacity / 2);
        if wake {
            state.waiting = false;
            drop(state);
            shared.lines.notify_one();
        }
        Ok(())
    }

    /// Has what is queued written now, and waits for it up to `wait`; whether it was.
    pub(crate) fn drain(&self, wait: Duration) -> bool {
        self.shared.drain(wait)
    }

    /// Gives up the lines not taken by the thread yet (stdout stalled past the wait at
    /// shutdown): counted lost. A batch being written is the thread's to count.
    pub(crate) fn give_up(&self) {
        let mut state = lock(&self.shared.state);
        let lines = std::mem::take(&mut state.pending_lines);
        state.pending.clear();
        state.done += lines;
        drop(state);
        self.shared.counter.lost(Loss::Shutdown, lines);
        self.shared.written.notify_all();
    }
}

impl Shared {
    fn drain(&self, wait: Duration) -> bool {
        // The thread itself (a line logged while it writes) must not wait for itself.
        if WRITING.is_raised() {
            return false;
        }
        let mut state = lock(&self.state);
        state.requested += 1;
        let mine = state.requested;
        state.urgent = true;
        state.waiting = false;
        self.lines.notify_one();
        let deadline = Instant::now() + wait;
        while state.served < mine && !state.stop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            state = self
                .written
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.served >= mine
    }
}

impl Drop for Queue {
    /// The layer is going: what is queued is written (up to [`DRAIN_WAIT`]), then the
    /// thread ends; a writer that blocks longer leaves it to end by itself, and what it
    /// still held is counted lost.
    fn drop(&mut self) {
        let drained = self.shared.drain(DRAIN_WAIT);
        if !drained {
            self.give_up();
        }
        lock(&self.shared.state).stop = true;
        self.shared.lines.notify_one();
        self.shared.written.notify_all();
        if !drained {
            return;
        }
        let thread = self.thread.get_mut().map(Option::take);
        if let Ok(Some(thread)) = thread {
            let _ = thread.join();
        }
    }
}

/// Has every live background writer write what it holds, waiting up to `wait` for each:
/// the panic hook's, so that the panic line and every line before it are out before the
/// process ends.
pub(crate) fn drain_all(wait: Duration) {
    let live: Vec<Arc<Shared>> = LIVE
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for shared in live {
        shared.drain(wait);
    }
}

/// The thread: waits for lines, lets more gather, writes them; until stopped with nothing
/// left.
fn run(shared: &Shared, output: &dyn Output) {
    let _writing = WRITING.raise();
    let mut batch = Vec::new();
    loop {
        let mut state = lock(&shared.state);
        while state.pending.is_empty() && !state.urgent && !state.stop {
            state.idle = true;
            state.waiting = true;
            state = shared
                .lines
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.idle = false;
        let deadline = Instant::now() + shared.config.linger;
        while !state.urgent && !state.stop && state.pending.len() < shared.config.capacity / 2 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            state.waiting = true;
            state = shared
                .lines
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.waiting = false;
        state.urgent = false;
        if state.stop && state.pending.is_empty() {
            return;
        }
        std::mem::swap(&mut batch, &mut state.pending);
        let lines = std::mem::take(&mut state.pending_lines);
        let serving = state.requested;
        drop(state);
        // Room was made.
        shared.written.notify_all();
        // A writer that panics loses its batch, not the thread: the lines after it are
        // written still.
        let wrote = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_batch(output, &shared.counter, &batch, lines);
        }));
        if wrote.is_err() {
            shared.counter.lost(Loss::WriteError, lines);
        }
        batch.clear();
        let mut state = lock(&shared.state);
        state.done += lines;
        state.served = serving;
        drop(state);
        shared.written.notify_all();
    }
}

/// Writes the notice of the losses not said yet, then `lines` whole lines in `batch`, in as
/// few writes as the writer takes; counts them written, or lost.
fn write_batch(output: &dyn Output, counter: &LineCounter, batch: &[u8], lines: u64) {
    let mut writer = output.writer();
    if let Some((notice, unsaid)) = output.notice() {
        if write_patiently(&mut writer, notice.as_bytes(), Start::Wait).is_err() {
            counter.put_back(&unsaid);
        }
    }
    if batch.is_empty() {
        return;
    }
    match write_patiently(&mut writer, batch, Start::Wait) {
        Ok(()) => counter.written_many(lines),
        Err((out, error)) => {
            let whole = batch[..out].iter().filter(|&&b| b == b'\n').count() as u64;
            if out > 0 && batch[out - 1] != b'\n' {
                // A line's fragment is out: end it.
                let _ = write_patiently(&mut writer, b"\n", Start::Wait);
            }
            counter.written_many(whole);
            counter.lost(loss(&error), lines - whole);
        }
    }
}
