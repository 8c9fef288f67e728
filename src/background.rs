//! The background writer: lines copied into a bounded buffer, and written by one thread,
//! many lines to a write.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

use tracing::Metadata;

use crate::line_counts::{LineCounter, LineCounts, Loss};
use crate::write::{Patience, WRITING, loss, write_line, write_patiently};

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
/// With the default stdout, a run of lines is one write (or as few as the pipe takes). With
/// a writer of one's own ([`Builder::with_writer`](crate::Builder::with_writer)), the thread
/// writes each line through it as the layer would (`make_writer_for` with the line's
/// metadata, so that routing by level holds), one write a line: callers still never wait.
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
    /// waits as long as stdout does (a panic's line at most 1 s). Logging while holding
    /// stdout's lock (`io::stdout().lock()`) then waits for ever: the thread needs it.
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
    /// The writer of a whole run of lines (stdout, held for the run), or `None` when each
    /// line goes to the writer its metadata picks ([`writer_for`](Self::writer_for)).
    fn run_writer(&self) -> Option<Box<dyn Write + '_>>;
    /// The writer of one line of `meta`.
    fn writer_for(&self, meta: &'static Metadata<'static>) -> Box<dyn Write + '_>;
    /// The notice of the losses not said yet, if any, to write before the next lines, with
    /// its metadata.
    fn notice(&self) -> Option<(String, LineCounts, &'static Metadata<'static>)>;
}

/// Each queued line's length and the metadata of its event.
type Line = (u32, &'static Metadata<'static>);

/// The line length the list of lines is sized for: shorter lines (rare: a line with the
/// identity is 300 bytes and more) may make a caller grow it.
const AVERAGE_LINE: usize = 64;

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
    /// The lines of `pending`, in order.
    lines: Vec<Line>,
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
        // Room for a full buffer on both sides of the swap, from the start: a caller never
        // allocates (the memory is touched only as lines fill it).
        let state = State {
            pending: Vec::with_capacity(config.capacity),
            lines: Vec::with_capacity(config.capacity / AVERAGE_LINE),
            ..State::default()
        };
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
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
    pub(crate) fn push(
        &self,
        line: &[u8],
        meta: &'static Metadata<'static>,
        urgent: bool,
    ) -> Result<(), Loss> {
        let shared = &*self.shared;
        let capacity = shared.config.capacity;
        let mut state = lock(&shared.state);
        if state.stop {
            // The thread is gone (it cannot end otherwise while the queue lives).
            return Err(Loss::WriteError);
        }
        // A line longer than the whole buffer goes in alone.
        let mut waited_since: Option<Instant> = None;
        while !state.pending.is_empty() && state.pending.len() + line.len() > capacity {
            // The thread itself (its writer logs) must not wait for itself, nor a panic
            // line for longer than the hook waits.
            let limit = if std::thread::panicking() {
                DRAIN_WAIT
            } else {
                Duration::MAX
            };
            let waited = waited_since.get_or_insert_with(Instant::now).elapsed();
            if shared.config.when_full == WhenFull::Drop
                || state.stop
                || WRITING.is_raised()
                || waited >= limit
            {
                return Err(Loss::QueueFull);
            }
            state = shared
                .written
                .wait_timeout(state, (limit - waited).min(DRAIN_WAIT))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        state.pending.extend_from_slice(line);
        // A line longer than 4 GiB is not written by anyone.
        let length = u32::try_from(line.len()).unwrap_or(u32::MAX);
        state.lines.push((length, meta));
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
        let lines = state.lines.len() as u64;
        state.lines.clear();
        state.pending.clear();
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
    // However the thread ends, callers waiting for room or a drain stop waiting.
    let _stopped = Stopped(shared);
    let capacity = shared.config.capacity;
    let mut batch = Vec::with_capacity(capacity);
    let mut batch_lines = Vec::with_capacity(capacity / AVERAGE_LINE);
    // A fragment of the last run is out, not ended: the next run ends it first.
    let mut fragment_open = false;
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
        std::mem::swap(&mut batch_lines, &mut state.lines);
        let lines = batch_lines.len() as u64;
        let serving = state.requested;
        drop(state);
        // Room was made.
        shared.written.notify_all();
        // A writer that panics loses its batch, not the thread: the lines after it are
        // written still.
        let mut handled = 0;
        let wrote = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let run = (&batch[..], &batch_lines[..]);
            write_batch(
                output,
                &shared.counter,
                run,
                (&mut fragment_open, &mut handled),
            );
        }));
        if wrote.is_err() {
            fragment_open = true;
            shared.counter.lost(Loss::WriteError, lines - handled);
        }
        batch.clear();
        batch_lines.clear();
        let mut state = lock(&shared.state);
        state.served = serving;
        drop(state);
        shared.written.notify_all();
    }
}

/// Ends the fragment the last run left, writes the notice of the losses not said yet, then
/// the run's whole lines: in as few writes as stdout takes, or each through the writer its
/// metadata picks. Counts them written or lost (then sets `counted`), and notes a fragment
/// it could not end.
fn write_batch(
    output: &dyn Output,
    counter: &LineCounter,
    (batch, lines): (&[u8], &[Line]),
    (fragment_open, handled): (&mut bool, &mut u64),
) {
    let Some(mut writer) = output.run_writer() else {
        return write_lines(output, counter, (batch, lines), (fragment_open, handled));
    };
    let all = lines.len() as u64;
    if !end_fragment(&mut writer, fragment_open) {
        // Not ended: the run is lost rather than glued to it.
        counter.lost(Loss::WriteError, all);
        *handled = all;
        return;
    }
    if let Some((notice, unsaid, _)) = output.notice() {
        if let Err(failure) = write_line(&mut writer, notice.as_bytes(), Patience::SinceProgress) {
            counter.put_back(&unsaid);
            *fragment_open = failure.fragment_open;
        }
    }
    if batch.is_empty() || *fragment_open {
        counter.lost(Loss::WriteError, all);
        *handled = all;
        return;
    }
    match write_patiently(&mut writer, batch, Patience::SinceProgress) {
        Ok(()) => counter.written_many(all),
        Err((out, error)) => {
            let whole = batch[..out].iter().filter(|&&b| b == b'\n').count() as u64;
            if out > 0 && batch[out - 1] != b'\n' {
                // A line's fragment is out: end it, or have the next run end it.
                *fragment_open =
                    write_patiently(&mut writer, b"\n", Patience::SinceProgress).is_err();
            }
            counter.written_many(whole);
            counter.lost(loss(&error), all - whole);
        }
    }
    *handled = all;
}

/// The run's lines each through the writer its metadata picks (a writer of the user's,
/// which may route lines by level), each counted as it goes.
fn write_lines(
    output: &dyn Output,
    counter: &LineCounter,
    (batch, lines): (&[u8], &[Line]),
    (fragment_open, handled): (&mut bool, &mut u64),
) {
    if let Some((notice, unsaid, meta)) = output.notice() {
        let mut writer = output.writer_for(meta);
        let said = end_fragment(&mut writer, fragment_open)
            && match write_line(&mut writer, notice.as_bytes(), Patience::SinceProgress) {
                Ok(()) => true,
                Err(failure) => {
                    *fragment_open = failure.fragment_open;
                    false
                }
            };
        if !said {
            counter.put_back(&unsaid);
        }
    }
    let mut at = 0;
    for &(length, meta) in lines {
        let line = &batch[at..at + length as usize];
        at += length as usize;
        let mut writer = output.writer_for(meta);
        let written = if end_fragment(&mut writer, fragment_open) {
            write_line(&mut writer, line, Patience::SinceProgress).map_err(|failure| {
                *fragment_open = failure.fragment_open;
                loss(&failure.error)
            })
        } else {
            Err(Loss::WriteError)
        };
        // Counted one by one: a writer that panics later loses only the lines after.
        match written {
            Ok(()) => counter.written(),
            Err(reason) => counter.lost(reason, 1),
        }
        *handled += 1;
    }
}

/// Ends the fragment an earlier write left open, if any: whether the writer is clean.
fn end_fragment(writer: &mut impl Write, fragment_open: &mut bool) -> bool {
    if *fragment_open && write_patiently(writer, b"\n", Patience::SinceProgress).is_ok() {
        *fragment_open = false;
    }
    !*fragment_open
}

/// Marks the queue stopped as the thread ends, however it ends, and wakes who waits on it.
struct Stopped<'a>(&'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).stop = true;
        self.0.written.notify_all();
    }
}
