//! Where lines go: a writer of whole lines, counted (each line written whole, or lost and
//! counted by reason, with its fragment ended before anything else is written), every loss
//! said on the next line.

use std::cell::Cell;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Metadata;

use crate::background::{BackgroundWriter, DRAIN_WAIT, Output, Queue};
use crate::line_counts::{LineCounter, LineCounts, Loss};
use crate::write::{Patience, WRITING, loss, write_line, write_patiently};
use tracing_subscriber::fmt::MakeWriter;

/// Where whole lines go: a layer's writer, shared by what writes lines besides the layer
/// (held lines when their request is flushed, request metrics at each interval, container
/// metrics).
pub(crate) trait LineSink: Send + Sync {
    /// Writes one line of `meta` (the event it renders, or [`metrics_line`]); a line the
    /// writer fails is lost, and counted.
    fn write_line(&self, line: &[u8], meta: &'static Metadata<'static>);

    /// Counts `lines` lost before they reached the sink.
    fn lost(&self, reason: Loss, lines: u64);

    /// The sink's counts.
    fn counter(&self) -> &LineCounter;

    /// Writes the notice of the losses not said yet, if any, without waiting for a line
    /// (at shutdown: no line may come after).
    fn say_losses(&self);

    /// Writes a WARN line of the crate's own that says `message`, whatever the filter lets
    /// through: what it says is that the filter, or a setting, keeps something from working.
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    fn warn(&self, message: &str);
}

/// The static metadata of a line the crate writes of its own, named `$name` at `$level`.
macro_rules! own_line_metadata {
    ($name:literal, $level:ident) => {{
        struct OwnLine;
        static CALLSITE: OwnLine = OwnLine;
        impl tracing::callsite::Callsite for OwnLine {
            fn set_interest(&self, _: tracing::subscriber::Interest) {}
            fn metadata(&self) -> &Metadata<'_> {
                &META
            }
        }
        tracing::metadata! {
            name: $name,
            target: "tracing_aws_ecs",
            level: tracing::Level::$level,
            fields: &[],
            callsite: &CALLSITE,
            kind: tracing::metadata::Kind::EVENT,
        }
    }};
}

/// The metadata of the metrics lines (request metrics, container metrics): INFO, of the
/// crate's target. A writer that routes lines by their metadata (`with_max_level`,
/// `with_filter`, `or_else`) routes them as it would an INFO event of the crate.
pub(crate) fn metrics_line() -> &'static Metadata<'static> {
    static META: Metadata<'static> = own_line_metadata!("metrics", INFO);
    &META
}

/// The metadata of the notice that says lines were lost: a WARN of the crate's target.
fn notice_line() -> &'static Metadata<'static> {
    static META: Metadata<'static> = own_line_metadata!("lines lost", WARN);
    &META
}

/// Renders the line that says lines were lost: a WARN line as the writer's other lines are.
pub(crate) trait Notice: Send + Sync {
    /// Renders the notice for `lost` into `out`, ending it with a newline.
    fn render_notice(&self, lost: &LineCounts, out: &mut String);

    /// Renders a WARN line of the crate's own with `message` into `out`.
    fn render_warning(&self, message: &str, out: &mut String);
}

/// A writer of whole lines, counted (see the module's documentation).
pub(crate) struct CountingWriter<W> {
    writer: Arc<W>,
    /// `writer` is the process's stdout: each line is written under one hold of it, so that
    /// no other thread's bytes come between a line's fragment and its end.
    stdout: bool,
    counter: LineCounter,
    notice: Arc<dyn Notice>,
    /// A line's fragment went out and the newline that ends it did not: the next line ends
    /// it first.
    fragment_open: AtomicBool,
    /// The last notice was not written: the next one waits for a line to get through, so
    /// that a stalled writer does not make every line wait twice.
    notice_failed: AtomicBool,
    /// The last line was lost to a writer that would block: until a line gets through, a
    /// line that cannot start at once is lost at once, so that the lines queued behind the
    /// one that waited do not each wait as long again.
    stalled: AtomicBool,
    /// The background writer, when lines are written by a thread of their own.
    background: Option<Queue>,
}

impl<W> CountingWriter<W>
where
    W: for<'a> MakeWriter<'a>,
{
    /// Lines to `writer` (the process's stdout when `stdout`), a loss said by `notice`.
    pub(crate) fn new(writer: W, stdout: bool, notice: Arc<dyn Notice>) -> Self {
        CountingWriter {
            writer: Arc::new(writer),
            stdout,
            counter: LineCounter::default(),
            notice,
            fragment_open: AtomicBool::new(false),
            notice_failed: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
            background: None,
        }
    }

    /// Has lines written to stdout by a background writer, as `config` says: a thread of
    /// their own, many to a write.
    ///
    /// # Errors
    ///
    /// When no thread can be started; lines are then written directly.
    pub(crate) fn start_background(&mut self, config: BackgroundWriter) -> io::Result<()>
    where
        W: Send + Sync + 'static,
    {
        let output = Batches {
            writer: Arc::clone(&self.writer),
            stdout: self.stdout,
            counter: self.counter.clone(),
            notice: Arc::clone(&self.notice),
        };
        self.background = Some(Queue::start(
            config,
            self.counter.clone(),
            Arc::new(output),
        )?);
        Ok(())
    }

    /// Writes a WARN line of the crate's own that says `message`: what it says cannot wait
    /// for a subscriber to be installed (a setting that cannot work as configured).
    pub(crate) fn warn(&self, message: &str) {
        let mut line = String::new();
        self.notice.render_warning(message, &mut line);
        self.write(line.as_bytes(), notice_line());
    }

    /// The writer's counts.
    pub(crate) fn counter(&self) -> &LineCounter {
        &self.counter
    }

    /// Writes `line` (ending in `\n`) of an event of `meta`, after the notice of the losses
    /// not said yet; whether it was written whole.
    #[inline]
    pub(crate) fn write(&self, line: &[u8], meta: &'static Metadata<'static>) -> bool {
        if let Some(queue) = &self.background {
            // Counted written by the thread, once it is.
            return match queue.push(line, meta, *meta.level() == tracing::Level::ERROR) {
                Ok(()) => true,
                Err(loss) => {
                    self.counter.lost(loss, 1);
                    false
                }
            };
        }
        if self.counter.pending() && !self.notice_failed.load(Ordering::Relaxed) {
            self.say_losses();
        }
        // A writer that panics loses the line: counted as the unwinding passes.
        let unwinding = OnUnwind::new(|| self.counter.lost(Loss::WriteError, 1));
        let written = self.write_on(line, meta);
        unwinding.disarm();
        match written {
            Ok(()) => {
                self.counter.written();
                // Read first: a store on every line would bounce the cache line between
                // the threads that log.
                if self.notice_failed.load(Ordering::Relaxed) {
                    self.notice_failed.store(false, Ordering::Relaxed);
                }
                true
            }
            Err(reason) => {
                self.counter.lost(reason, 1);
                false
            }
        }
    }

    /// Writes the notice of the losses not said yet; they stay to be said if it fails.
    #[cold]
    #[inline(never)]
    fn say_losses(&self) {
        let Some(unsaid) = self.counter.take_unsaid() else {
            return;
        };
        let mut notice = String::new();
        self.notice.render_notice(&unsaid, &mut notice);
        let unwinding = OnUnwind::new(|| self.counter.put_back(&unsaid));
        let written = self.write_on(notice.as_bytes(), notice_line());
        unwinding.disarm();
        if written.is_err() {
            self.counter.put_back(&unsaid);
            self.notice_failed.store(true, Ordering::Relaxed);
        }
    }

    fn write_on(&self, line: &[u8], meta: &Metadata<'_>) -> Result<(), Loss> {
        // Raised before the writer is made: making it may take a lock of the writer's, and
        // panic (a poisoned mutex); the panic hook must not log through it then.
        let _writing = WRITING.raise();
        // A writer that panics once part of the line is out leaves a fragment: the next
        // line ends it.
        let started = Cell::new(false);
        let unwinding = OnUnwind::new(|| {
            if started.get() {
                self.fragment_open.store(true, Ordering::Release);
            }
        });
        let written = if self.stdout {
            let mut stdout = io::stdout().lock();
            let written = self.write_to(&mut Tracked(&mut stdout, &started), line);
            started.set(false);
            written
        } else {
            let mut writer = self.writer.make_writer_for(meta);
            let written = self.write_to(&mut Tracked(&mut writer, &started), line);
            // Done with the line: a writer that panics as it is dropped cut nothing.
            started.set(false);
            written
        };
        unwinding.disarm();
        written
    }

    /// Writes `line` whole on `writer`, once it has ended the fragment an earlier line left
    /// (checked here, once the writer is held: a writer that locks has it to itself).
    fn write_to(&self, writer: &mut impl Write, line: &[u8]) -> Result<(), Loss> {
        if self.fragment_open.load(Ordering::Acquire) {
            // Not ended: this line is lost rather than glued to it.
            write_patiently(writer, b"\n", Patience::Line).map_err(|(_, e)| loss(&e))?;
            self.fragment_open.store(false, Ordering::Release);
        }
        let patience = if self.stalled.load(Ordering::Relaxed) {
            Patience::OnceStarted
        } else {
            Patience::Line
        };
        match write_line(writer, line, patience) {
            Ok(()) => {
                if patience == Patience::OnceStarted {
                    self.stalled.store(false, Ordering::Relaxed);
                }
                Ok(())
            }
            Err(failure) => {
                if failure.fragment_open {
                    self.fragment_open.store(true, Ordering::Release);
                }
                let loss = loss(&failure.error);
                if loss == Loss::WouldBlock {
                    self.stalled.store(true, Ordering::Relaxed);
                }
                Err(loss)
            }
        }
    }
}

impl<W> LineSink for CountingWriter<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync,
{
    fn write_line(&self, line: &[u8], meta: &'static Metadata<'static>) {
        self.write(line, meta);
    }

    fn lost(&self, reason: Loss, lines: u64) {
        self.counter.lost(reason, lines);
    }

    fn counter(&self) -> &LineCounter {
        CountingWriter::counter(self)
    }

    fn warn(&self, message: &str) {
        CountingWriter::warn(self, message);
    }

    fn say_losses(&self) {
        if let Some(queue) = &self.background {
            // The thread says them, after what is queued; what it cannot write in time is
            // counted lost.
            if !queue.drain(DRAIN_WAIT) {
                queue.give_up();
            }
            return;
        }
        // No line comes after: this one waits up to 10 times a line's patience for a
        // writer that would block.
        for _ in 0..10 {
            self.stalled.store(false, Ordering::Relaxed);
            CountingWriter::say_losses(self);
            if !self.counter.pending() || !self.stalled.load(Ordering::Relaxed) {
                return;
            }
        }
    }
}

/// What a background writer writes to: stdout, held for each run of lines, or each line
/// through the sink's own writer, as its metadata routes it; and how it says a loss.
struct Batches<W> {
    writer: Arc<W>,
    stdout: bool,
    counter: LineCounter,
    notice: Arc<dyn Notice>,
}

impl<W> Output for Batches<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    fn run_writer(&self) -> Option<Box<dyn Write + '_>> {
        self.stdout
            .then(|| Box::new(io::stdout().lock()) as Box<dyn Write>)
    }

    fn writer_for(&self, meta: &'static Metadata<'static>) -> Box<dyn Write + '_> {
        Box::new(self.writer.make_writer_for(meta))
    }

    fn notice(&self) -> Option<(String, LineCounts, &'static Metadata<'static>)> {
        let unsaid = self.counter.take_unsaid()?;
        let mut notice = String::new();
        self.notice.render_notice(&unsaid, &mut notice);
        Some((notice, unsaid, notice_line()))
    }
}

/// A writer that notes when it has taken a byte.
struct Tracked<'a, W>(&'a mut W, &'a Cell<bool>);

impl<W: Write> Write for Tracked<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.0.write(buf);
        if matches!(written, Ok(n) if n > 0) {
            self.1.set(true);
        }
        written
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Runs its closure if dropped armed: as a panic unwinds past it.
struct OnUnwind<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnUnwind<F> {
    fn new(on_unwind: F) -> Self {
        OnUnwind(Some(on_unwind))
    }

    /// The call returned: nothing to do.
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnUnwind<F> {
    fn drop(&mut self) {
        if let Some(on_unwind) = self.0.take() {
            on_unwind();
        }
    }
}
