//! What became of the lines a writer of the crate was given: written, or lost, by reason.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Why a line was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Loss {
    /// The writer failed, before or part way through the line.
    WriteError,
    /// The writer would block (a full non-blocking pipe) for longer than a line waits.
    WouldBlock,
    /// A request's held line was dropped for room before its request flushed.
    BufferFull,
    /// The process was stopping, and the line was not waited for.
    Shutdown,
    /// The background writer's buffer was full.
    QueueFull,
}

/// Every reason, in the order of [`LineCounts`]' fields.
const REASONS: [Loss; 5] = [
    Loss::WriteError,
    Loss::WouldBlock,
    Loss::BufferFull,
    Loss::Shutdown,
    Loss::QueueFull,
];

/// The lines one writer of the crate was given, and what became of them. Written + lost =
/// the lines given: each event's line, each held line of a request that flushed, each
/// metrics line (the notices that say a loss are not counted).
///
/// Read it from a [`LineCounter`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LineCounts {
    /// Lines written whole.
    pub written: u64,
    /// Lost: the writer failed (an error other than would-block), before or part way
    /// through the line; a part written is ended with a newline.
    pub write_error: u64,
    /// Lost: the writer would block (a full non-blocking pipe) for longer than a line
    /// waits (100 ms).
    pub would_block: u64,
    /// Lost: a held line of a request that logged an error, dropped earlier for room (the
    /// request's cap, or all requests' cap; see [`Buffering`](crate::Buffering)).
    pub buffer_full: u64,
    /// Lost: not written as the process stopped (the container metrics' last report, when
    /// its read takes longer than stopping waits, counted as one line; lines the
    /// [background writer](crate::BackgroundWriter) could not write within its wait at
    /// shutdown).
    pub shutdown: u64,
    /// Lost: the [background writer](crate::BackgroundWriter)'s buffer was full (its
    /// reader stalled), and it drops rather than waits.
    pub queue_full: u64,
}

impl LineCounts {
    /// All the lines lost, whatever the reason.
    pub fn lost(&self) -> u64 {
        self.write_error
            .saturating_add(self.would_block)
            .saturating_add(self.buffer_full)
            .saturating_add(self.shutdown)
            .saturating_add(self.queue_full)
    }

    fn lost_for(&self, reason: Loss) -> u64 {
        match reason {
            Loss::WriteError => self.write_error,
            Loss::WouldBlock => self.would_block,
            Loss::BufferFull => self.buffer_full,
            Loss::Shutdown => self.shutdown,
            Loss::QueueFull => self.queue_full,
        }
    }

    fn lost_for_mut(&mut self, reason: Loss) -> &mut u64 {
        match reason {
            Loss::WriteError => &mut self.write_error,
            Loss::WouldBlock => &mut self.would_block,
            Loss::BufferFull => &mut self.buffer_full,
            Loss::Shutdown => &mut self.shutdown,
            Loss::QueueFull => &mut self.queue_full,
        }
    }

    /// The reasons of the losses, each with its count, the key it has on a notice, and the
    /// words the notice's message gives it.
    pub(crate) fn losses(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> + '_ {
        REASONS.into_iter().filter_map(|reason| {
            let (key, words) = match reason {
                Loss::WriteError => ("lost_write_error", "the writer failed"),
                Loss::WouldBlock => ("lost_would_block", "the writer would block"),
                Loss::BufferFull => ("lost_buffer_full", "dropped from a full request buffer"),
                Loss::Shutdown => ("lost_shutdown", "not waited for at shutdown"),
                Loss::QueueFull => ("lost_queue_full", "dropped by the full background writer"),
            };
            let count = self.lost_for(reason);
            (count > 0).then_some((key, words, count))
        })
    }
}

impl fmt::Display for LineCounts {
    /// `"3 lines lost (2 the writer failed, 1 the writer would block)"`, or `"0 lines lost"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lost = self.lost();
        write!(f, "{lost} line{} lost", if lost == 1 { "" } else { "s" })?;
        for (i, (_, words, count)) in self.losses().enumerate() {
            let sep = if i == 0 { " (" } else { ", " };
            write!(f, "{sep}{count} {words}")?;
        }
        if lost > 0 {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Counts what became of the lines of one writer: a handle on the counts of a layer (see
/// [`EcsLayer::line_counter`](crate::EcsLayer::line_counter),
/// [`FlushGuard::line_counter`](crate::FlushGuard::line_counter)) or of a
/// [`MetricsReporter`](crate::MetricsReporter). Clones share the counts.
///
/// ```
/// use tracing_subscriber::prelude::*;
///
/// let layer = tracing_aws_ecs::builder().with_writer(std::io::sink).layer();
/// let counter = layer.line_counter();
/// tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
///     tracing::info!("one line");
/// });
/// let counts = counter.counts();
/// assert_eq!((counts.written, counts.lost()), (1, 0));
/// ```
#[derive(Clone, Default)]
pub struct LineCounter(Arc<Counters>);

#[derive(Default)]
struct Counters {
    written: AtomicU64,
    /// Lost since the start, by reason, in the order of [`REASONS`].
    lost: [AtomicU64; 5],
    /// Lost since the last notice said so.
    unsaid: [AtomicU64; 5],
    /// Some loss is not said yet: read before every line, so one load.
    pending: AtomicBool,
}

impl fmt::Debug for LineCounter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LineCounter").field(&self.counts()).finish()
    }
}

impl LineCounter {
    /// The counts since the writer was made.
    pub fn counts(&self) -> LineCounts {
        let mut counts = LineCounts {
            written: self.0.written.load(Ordering::Relaxed),
            ..LineCounts::default()
        };
        for (reason, lost) in REASONS.into_iter().zip(&self.0.lost) {
            *counts.lost_for_mut(reason) = lost.load(Ordering::Relaxed);
        }
        counts
    }

    /// Counts one line written.
    pub(crate) fn written(&self) {
        self.written_many(1);
    }

    /// Counts `lines` lines written.
    pub(crate) fn written_many(&self, lines: u64) {
        self.0.written.fetch_add(lines, Ordering::Relaxed);
    }

    /// Counts `lines` lost for `reason`, to be said.
    pub(crate) fn lost(&self, reason: Loss, lines: u64) {
        if lines == 0 {
            return;
        }
        let at = REASONS.iter().position(|r| *r == reason).unwrap_or(0);
        self.0.lost[at].fetch_add(lines, Ordering::Relaxed);
        self.0.unsaid[at].fetch_add(lines, Ordering::Relaxed);
        self.0.pending.store(true, Ordering::Release);
    }

    /// Whether a loss is still to be said.
    #[inline]
    pub(crate) fn pending(&self) -> bool {
        self.0.pending.load(Ordering::Relaxed)
    }

    /// The losses not said yet, taken to be said: `None` when there are none (another
    /// thread took them).
    pub(crate) fn take_unsaid(&self) -> Option<LineCounts> {
        if !self.0.pending.swap(false, Ordering::Acquire) {
            return None;
        }
        let mut unsaid = LineCounts::default();
        for (reason, count) in REASONS.into_iter().zip(&self.0.unsaid) {
            *unsaid.lost_for_mut(reason) = count.swap(0, Ordering::AcqRel);
        }
        (unsaid.lost() > 0).then_some(unsaid)
    }

    /// Puts back losses taken to be said, whose notice could not be written.
    pub(crate) fn put_back(&self, unsaid: &LineCounts) {
        for (reason, count) in REASONS.into_iter().zip(&self.0.unsaid) {
            count.fetch_add(unsaid.lost_for(reason), Ordering::Relaxed);
        }
        self.0.pending.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_said_once_and_counted_for_good() {
        let counter = LineCounter::default();
        counter.written();
        counter.lost(Loss::WriteError, 2);
        counter.lost(Loss::WouldBlock, 1);
        assert!(counter.pending());
        let unsaid = counter.take_unsaid().unwrap();
        assert_eq!((unsaid.write_error, unsaid.would_block), (2, 1));
        assert_eq!(
            unsaid.to_string(),
            "3 lines lost (2 the writer failed, 1 the writer would block)"
        );
        assert!(counter.take_unsaid().is_none(), "said once");
        assert_eq!(LineCounts::default().to_string(), "0 lines lost");
        counter.put_back(&unsaid);
        counter.lost(Loss::Shutdown, 1);
        let again = counter.take_unsaid().unwrap();
        assert_eq!((again.lost(), again.shutdown), (4, 1));
        let counts = counter.counts();
        assert_eq!((counts.written, counts.lost()), (1, 4));
    }
}
