//! Writing whole lines to a writer, counted: each line written whole, or lost and counted
//! by reason, with its fragment ended before anything else is written, and every loss said
//! on the next line.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tracing::Metadata;

use crate::line_counts::{LineCounter, LineCounts, Loss};
use crate::thread_flag::ThreadFlag;
use tracing_subscriber::fmt::MakeWriter;

/// Where whole lines go: a layer's writer, shared by what writes lines besides the layer
/// (held lines when their request is flushed, request metrics at each interval, container
/// metrics).
pub(crate) trait LineSink: Send + Sync {
    /// Writes one line of `meta` (the event it renders, or [`metrics_line`]); a line the
    /// writer fails is lost, and counted.
    fn write_line(&self, line: &[u8], meta: &Metadata<'_>);

    /// Counts `lines` lost before they reached the sink.
    fn lost(&self, reason: Loss, lines: u64);

    /// The sink's counts.
    fn counter(&self) -> &LineCounter;

    /// Writes the notice of the losses not said yet, if any, without waiting for a line
    /// (at shutdown: no line may come after).
    fn say_losses(&self);
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
}

/// A writer of whole lines, counted (see the module's documentation).
pub(crate) struct CountingWriter<W> {
    writer: W,
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
}

impl<W> CountingWriter<W>
where
    W: for<'a> MakeWriter<'a>,
{
    /// Lines to `writer` (the process's stdout when `stdout`), a loss said by `notice`.
    pub(crate) fn new(writer: W, stdout: bool, notice: Arc<dyn Notice>) -> Self {
        CountingWriter {
            writer,
            stdout,
            counter: LineCounter::default(),
            notice,
            fragment_open: AtomicBool::new(false),
            notice_failed: AtomicBool::new(false),
            stalled: AtomicBool::new(false),
        }
    }

    /// The writer's counts.
    pub(crate) fn counter(&self) -> &LineCounter {
        &self.counter
    }

    /// Writes `line` (ending in `\n`) of an event of `meta`, after the notice of the losses
    /// not said yet; whether it was written whole.
    #[inline]
    pub(crate) fn write(&self, line: &[u8], meta: &Metadata<'_>) -> bool {
        if self.counter.pending() && !self.notice_failed.load(Ordering::Relaxed) {
            self.say_losses();
        }
        match self.write_on(line, meta) {
            Ok(()) => {
                self.counter.written();
                self.notice_failed.store(false, Ordering::Relaxed);
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
        if self.write_on(notice.as_bytes(), notice_line()).is_err() {
            self.counter.put_back(&unsaid);
            self.notice_failed.store(true, Ordering::Relaxed);
        }
    }

    fn write_on(&self, line: &[u8], meta: &Metadata<'_>) -> Result<(), Loss> {
        if self.stdout {
            self.write_to(&mut io::stdout().lock(), line)
        } else {
            self.write_to(&mut self.writer.make_writer_for(meta), line)
        }
    }

    /// Writes `line` whole on `writer`, once it has ended the fragment an earlier line left
    /// (checked here, once the writer is held: a writer that locks has it to itself).
    fn write_to(&self, writer: &mut impl Write, line: &[u8]) -> Result<(), Loss> {
        let _writing = WRITING.raise();
        if self.fragment_open.load(Ordering::Acquire) {
            // Not ended: this line is lost rather than glued to it.
            write_patiently(writer, b"\n", Start::Wait).map_err(|(_, e)| loss(&e))?;
            self.fragment_open.store(false, Ordering::Release);
        }
        let start = if self.stalled.load(Ordering::Relaxed) {
            Start::AtOnce
        } else {
            Start::Wait
        };
        match write_line(writer, line, start) {
            Ok(()) => {
                if start == Start::AtOnce {
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
    fn write_line(&self, line: &[u8], meta: &Metadata<'_>) {
        self.write(line, meta);
    }

    fn lost(&self, reason: Loss, lines: u64) {
        self.counter.lost(reason, lines);
    }

    fn counter(&self) -> &LineCounter {
        CountingWriter::counter(self)
    }

    fn say_losses(&self) {
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

/// Why a line that failed with `error` was lost.
fn loss(error: &io::Error) -> Loss {
    if error.kind() == io::ErrorKind::WouldBlock {
        Loss::WouldBlock
    } else {
        Loss::WriteError
    }
}

/// How long a line waits, in all, on a writer that answers `WouldBlock` (a non-blocking
/// stdout whose pipe is full) before it is given up.
const WOULD_BLOCK_PATIENCE: Duration = Duration::from_millis(100);

/// A line [`write_line`] could not write whole.
#[derive(Debug)]
struct Failure {
    error: io::Error,
    /// Part of the line went out, and the newline that would end it did not.
    fragment_open: bool,
}

/// Writes `line` (ending in `\n`) to `writer`, so that the next line starts clean whatever
/// happens:
///
/// - an interrupted write is retried, and so is one that would block (up to
///   [`WOULD_BLOCK_PATIENCE`] from the line's first, in short sleeps; not before the line's
///   first byte when `start` says so);
/// - when the writer fails after part of the line went out, the rest of the line is lost and
///   a newline ends the fragment (with patience of its own), so that the next line is not
///   glued to it; when that fails too, the failure says so.
///
/// A line that fails before any byte went out is lost alone, with no retry.
fn write_line(writer: &mut impl Write, line: &[u8], start: Start) -> Result<(), Failure> {
    match write_patiently(writer, line, start) {
        Ok(()) => Ok(()),
        Err((0, error)) => Err(Failure {
            error,
            fragment_open: false,
        }),
        Err((_, error)) => Err(Failure {
            error,
            fragment_open: write_patiently(writer, b"\n", Start::Wait).is_err(),
        }),
    }
}

thread_local! {
    static WRITING_NOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is writing a line: a panic raised meanwhile (a writer that panics,
/// maybe holding a lock of its own) must not be logged through the same writer.
pub(crate) static WRITING: ThreadFlag = ThreadFlag(&WRITING_NOW);

/// Whether a write waits for a writer that would block before its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Start {
    Wait,
    AtOnce,
}

/// Writes all of `bytes`, retrying interrupted writes and, for up to `WOULD_BLOCK_PATIENCE`
/// from the first, writes that would block (once a byte went out, with [`Start::AtOnce`]);
/// on failure, how many bytes went out and why.
fn write_patiently(
    writer: &mut impl Write,
    bytes: &[u8],
    start: Start,
) -> Result<(), (usize, io::Error)> {
    let mut written = 0;
    // The clock is read only once the writer would block: not for every line.
    let mut blocked_since: Option<Instant> = None;
    let mut pause = Duration::from_micros(50);
    while written < bytes.len() {
        match writer.write(&bytes[written..]) {
            Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    && (written > 0 || start == Start::Wait)
                    && blocked_since.get_or_insert_with(Instant::now).elapsed()
                        < WOULD_BLOCK_PATIENCE =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(5));
            }
            Err(e) => return Err((written, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `take` bytes per write, failing with `error` every `every`th call.
    struct Choppy {
        out: Vec<u8>,
        calls: usize,
        take: usize,
        every: usize,
        error: io::ErrorKind,
    }

    impl Write for Choppy {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls % self.every == 0 {
                return Err(self.error.into());
            }
            let n = self.take.min(buf.len());
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn choppy(error: io::ErrorKind) -> Choppy {
        Choppy {
            out: Vec::new(),
            calls: 0,
            take: 4,
            every: 3,
            error,
        }
    }

    #[test]
    fn short_writes_interruptions_and_would_block_are_retried() {
        for error in [io::ErrorKind::Interrupted, io::ErrorKind::WouldBlock] {
            let mut writer = choppy(error);
            write_line(&mut writer, b"{\"a\":\"some line\"}\n", Start::Wait).unwrap();
            write_line(&mut writer, b"{\"b\":2}\n", Start::Wait).unwrap();
            assert_eq!(writer.out, b"{\"a\":\"some line\"}\n{\"b\":2}\n");
        }
    }

    #[test]
    fn a_failure_mid_line_ends_the_fragment() {
        let mut writer = choppy(io::ErrorKind::BrokenPipe);
        assert!(write_line(&mut writer, b"{\"a\":\"some line\"}\n", Start::Wait).is_err());
        assert_eq!(writer.out, b"{\"a\":\"so\n");
    }

    #[test]
    fn a_failure_before_any_byte_writes_nothing_more() {
        let mut writer = choppy(io::ErrorKind::BrokenPipe);
        writer.every = 1;
        assert!(write_line(&mut writer, b"{}\n", Start::Wait).is_err());
        assert_eq!(
            (writer.out.len(), writer.calls),
            (0, 1),
            "one attempt, no newline"
        );
    }
}
