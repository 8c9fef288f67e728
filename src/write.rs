//! Writing one line, or a run of whole lines, to a writer: whole, or with its fragment
//! ended, retrying what can be retried.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::line_counts::Loss;
use crate::thread_flag::ThreadFlag;

/// Why a line that failed with `error` was lost.
pub(crate) fn loss(error: &io::Error) -> Loss {
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
pub(crate) struct Failure {
    pub(crate) error: io::Error,
    /// Part of the line went out, and the newline that would end it did not.
    pub(crate) fragment_open: bool,
}

/// Writes `line` (ending in `\n`) to `writer`, so that the next line starts clean whatever
/// happens:
///
/// - an interrupted write is retried, and so is one that would block (up to
///   [`WOULD_BLOCK_PATIENCE`] from the line's first, in short sleeps; not before the line's
///   first byte when `patience` says so);
/// - when the writer fails after part of the line went out, the rest of the line is lost and
///   a newline ends the fragment (with patience of its own), so that the next line is not
///   glued to it; when that fails too, the failure says so.
///
/// A line that fails before any byte went out is lost alone, with no retry.
pub(crate) fn write_line(
    writer: &mut impl Write,
    line: &[u8],
    patience: Patience,
) -> Result<(), Failure> {
    match write_patiently(writer, line, patience) {
        Ok(()) => Ok(()),
        Err((0, error)) => Err(Failure {
            error,
            fragment_open: false,
        }),
        Err((_, error)) => Err(Failure {
            error,
            fragment_open: write_patiently(writer, b"\n", Patience::Line).is_err(),
        }),
    }
}

thread_local! {
    static WRITING_NOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is writing a line: a panic raised meanwhile (a writer that panics,
/// maybe holding a lock of its own) must not be logged through the same writer.
pub(crate) static WRITING: ThreadFlag = ThreadFlag(&WRITING_NOW);

/// How long a write waits for a writer that would block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Patience {
    /// [`WOULD_BLOCK_PATIENCE`] in all, from the first time it would block: a line written
    /// by the thread that logs it.
    Line,
    /// Not at all before the first byte, then as [`Patience::Line`]: a line while the
    /// writer is known to be stalled.
    OnceStarted,
    /// [`WOULD_BLOCK_PATIENCE`] without progress: a run of lines written by a thread of
    /// their own, which a reader that keeps up drains however long it is.
    SinceProgress,
}

/// Writes all of `bytes`, retrying interrupted writes and writes that would block, as
/// `patience` says; on failure, how many bytes went out and why.
pub(crate) fn write_patiently(
    writer: &mut impl Write,
    bytes: &[u8],
    patience: Patience,
) -> Result<(), (usize, io::Error)> {
    let mut written = 0;
    // The clock is read only once the writer would block: not for every line.
    let mut blocked_since: Option<Instant> = None;
    let mut pause = Duration::from_micros(50);
    while written < bytes.len() {
        match writer.write(&bytes[written..]) {
            Ok(0) => return Err((written, io::ErrorKind::WriteZero.into())),
            Ok(n) => {
                written += n;
                if patience == Patience::SinceProgress {
                    blocked_since = None;
                    pause = Duration::from_micros(50);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    && (written > 0 || patience != Patience::OnceStarted)
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
            write_line(&mut writer, b"{\"a\":\"some line\"}\n", Patience::Line).unwrap();
            write_line(&mut writer, b"{\"b\":2}\n", Patience::Line).unwrap();
            assert_eq!(writer.out, b"{\"a\":\"some line\"}\n{\"b\":2}\n");
        }
    }

    #[test]
    fn a_failure_mid_line_ends_the_fragment() {
        let mut writer = choppy(io::ErrorKind::BrokenPipe);
        assert!(write_line(&mut writer, b"{\"a\":\"some line\"}\n", Patience::Line).is_err());
        assert_eq!(writer.out, b"{\"a\":\"so\n");
    }

    #[test]
    fn a_failure_before_any_byte_writes_nothing_more() {
        let mut writer = choppy(io::ErrorKind::BrokenPipe);
        writer.every = 1;
        assert!(write_line(&mut writer, b"{}\n", Patience::Line).is_err());
        assert_eq!(
            (writer.out.len(), writer.calls),
            (0, 1),
            "one attempt, no newline"
        );
    }
}
