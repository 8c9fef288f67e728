//! Writing one line to a writer: whole, or with its fragment ended.

use std::io::{self, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::Metadata;

use crate::thread_flag::ThreadFlag;
use tracing_subscriber::fmt::MakeWriter;

/// Where whole lines go: a layer's writer, shared by what writes lines besides the layer
/// (held lines when their request is flushed, request metrics at each interval).
pub(crate) trait LineSink: Send + Sync {
    /// Writes one line of `meta` (the event it renders, or [`metrics_line`]); a failing
    /// writer loses it, as it loses any other.
    fn write_line(&self, line: &[u8], meta: &Metadata<'_>);
}

/// The metadata of the metrics lines (request metrics, container metrics): INFO, of the
/// crate's target. A writer that routes lines by their metadata (`with_max_level`,
/// `with_filter`, `or_else`) routes them as it would an INFO event of the crate.
pub(crate) fn metrics_line() -> &'static Metadata<'static> {
    struct MetricsLine;
    static CALLSITE: MetricsLine = MetricsLine;
    static META: Metadata<'static> = tracing::metadata! {
        name: "metrics",
        target: "tracing_aws_ecs",
        level: tracing::Level::INFO,
        fields: &[],
        callsite: &CALLSITE,
        kind: tracing::metadata::Kind::EVENT,
    };
    impl tracing::callsite::Callsite for MetricsLine {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}
        fn metadata(&self) -> &Metadata<'_> {
            &META
        }
    }
    &META
}

/// A [`LineSink`] on a [`MakeWriter`].
pub(crate) struct WriterSink<W>(pub(crate) Arc<W>);

impl<W> LineSink for WriterSink<W>
where
    W: for<'a> MakeWriter<'a> + Send + Sync,
{
    fn write_line(&self, line: &[u8], meta: &Metadata<'_>) {
        let _ = write_line(&mut self.0.make_writer_for(meta), line);
    }
}

/// A layer's writer, shared with another writer of lines (the container metrics).
pub(crate) struct SharedWriter<W>(pub(crate) Arc<W>);

impl<'a, W> MakeWriter<'a> for SharedWriter<W>
where
    W: MakeWriter<'a>,
{
    type Writer = W::Writer;

    fn make_writer(&'a self) -> Self::Writer {
        self.0.make_writer()
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> Self::Writer {
        self.0.make_writer_for(meta)
    }
}

/// How long a line waits, in all, on a writer that answers `WouldBlock` (a non-blocking
/// stdout whose pipe is full) before it is given up.
const WOULD_BLOCK_PATIENCE: Duration = Duration::from_millis(100);

/// Writes `line` (ending in `\n`) to `writer`, so that the next line starts clean whatever
/// happens:
///
/// - an interrupted write is retried, and so is one that would block (up to
///   [`WOULD_BLOCK_PATIENCE`] from the line's first, in short sleeps);
/// - when the writer fails after part of the line went out, the rest of the line is lost and
///   a newline ends the fragment, so that the next line is not glued to it.
///
/// A line that fails before any byte went out is lost alone, with no retry.
pub(crate) fn write_line(writer: &mut impl Write, line: &[u8]) -> io::Result<()> {
    let _writing = WRITING.raise();
    match write_patiently(writer, line) {
        Ok(()) => Ok(()),
        Err((0, e)) => Err(e),
        Err((_, e)) => {
            // A fragment is out: end it (with patience of its own, as the line may have used
            // all of its).
            let _ = write_patiently(writer, b"\n");
            Err(e)
        }
    }
}

thread_local! {
    static WRITING_NOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is writing a line: a panic raised meanwhile (a writer that panics,
/// maybe holding a lock of its own) must not be logged through the same writer.
pub(crate) static WRITING: ThreadFlag = ThreadFlag(&WRITING_NOW);

/// Writes all of `bytes`, retrying interrupted writes and, for up to `WOULD_BLOCK_PATIENCE`
/// from the first, writes that would block; on failure, how many bytes went out and why.
fn write_patiently(writer: &mut impl Write, bytes: &[u8]) -> Result<(), (usize, io::Error)> {
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
            write_line(&mut writer, b"{\"a\":\"some line\"}\n").unwrap();
            write_line(&mut writer, b"{\"b\":2}\n").unwrap();
            assert_eq!(writer.out, b"{\"a\":\"some line\"}\n{\"b\":2}\n");
        }
    }

    #[test]
    fn a_failure_mid_line_ends_the_fragment() {
        let mut writer = choppy(io::ErrorKind::BrokenPipe);
        assert!(write_line(&mut writer, b"{\"a\":\"some line\"}\n").is_err());
        assert_eq!(writer.out, b"{\"a\":\"so\n");
    }

    #[test]
    fn a_failure_before_any_byte_writes_nothing_more() {
        let mut writer = choppy(io::ErrorKind::BrokenPipe);
        writer.every = 1;
        assert!(write_line(&mut writer, b"{}\n").is_err());
        assert_eq!(
            (writer.out.len(), writer.calls),
            (0, 1),
            "one attempt, no newline"
        );
    }
}
