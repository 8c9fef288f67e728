//! Never silent: every line the layer is given is written whole or counted lost, by reason;
//! each loss is said by one WARN line before the next line written; the counts are readable
//! from the layer and, with request metrics, written as metrics each interval.

mod common;

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tracing_aws_ecs::RequestMetrics;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

use common::fargate_metadata;

/// A writer into memory that, at random, fails before a line or part way through it, would
/// block for a while (now and then for longer than a line waits), and takes lines in small
/// pieces; healthy once `healthy` is set. Each line's writer holds the output for the line,
/// as a locked stdout does.
#[derive(Clone, Default)]
struct Hostile {
    out: Arc<Mutex<Vec<u8>>>,
    seed: Arc<AtomicU64>,
    healthy: Arc<AtomicBool>,
}

struct HostileWriter<'a> {
    out: MutexGuard<'a, Vec<u8>>,
    random: u64,
    healthy: bool,
    /// Bytes this line may write before it fails, once.
    fail_after: Option<usize>,
    /// Writes answered `WouldBlock` before the writer takes bytes again.
    blocked: u32,
    /// The most bytes one write takes.
    piece: usize,
}

impl HostileWriter<'_> {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.random ^= self.random >> 12;
        self.random ^= self.random << 25;
        self.random ^= self.random >> 27;
        self.random.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl io::Write for HostileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.healthy {
            self.out.extend_from_slice(buf);
            return Ok(buf.len());
        }
        if self.blocked > 0 {
            self.blocked -= 1;
            // A short stall: sleep a little, as a pipe being drained.
            std::thread::sleep(Duration::from_micros(200));
            return Err(io::ErrorKind::WouldBlock.into());
        }
        match self.next() % 100 {
            0..=1 => self.blocked = 3,
            // Longer than a line waits (100 ms): about 600 writes of 200 µs.
            2 if self.next() % 10 == 0 => self.blocked = 1_000,
            _ => {}
        }
        if self.blocked > 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = match self.fail_after {
            Some(0) => {
                self.fail_after = None;
                return Err(io::Error::other("disk on fire"));
            }
            Some(budget) => budget.min(buf.len()).min(self.piece),
            None => buf.len().min(self.piece),
        };
        if let Some(budget) = &mut self.fail_after {
            *budget -= n;
        }
        self.out.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Hostile {
    type Writer = HostileWriter<'a>;

    fn make_writer(&'a self) -> HostileWriter<'a> {
        let mut writer = HostileWriter {
            out: self.out.lock().unwrap_or_else(|e| e.into_inner()),
            random: self
                .seed
                .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
                .max(1),
            healthy: self.healthy.load(Ordering::Relaxed),
            fail_after: None,
            blocked: 0,
            piece: usize::MAX,
        };
        writer.fail_after = match writer.next() % 100 {
            0..=2 => Some(0),
            3..=5 => Some((writer.next() % 200) as usize),
            _ => None,
        };
        if writer.next() % 3 == 0 {
            writer.piece = 1 + (writer.next() % 64) as usize;
        }
        writer
    }
}

/// Sorts what came out into event lines (their `i`), notices, and line starts cut short;
/// panics on a line glued to another, or on a piece that is no line's start.
fn sort_out(text: &str) -> (Vec<u64>, Vec<Value>, usize) {
    let (mut events, mut notices, mut fragments) = (Vec::new(), Vec::new(), 0);
    for line in text.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(line) if line.get("lines_lost").is_some() => notices.push(line),
            Ok(line) => events.push(line["i"].as_u64().unwrap_or(u64::MAX)),
            Err(_) => {
                let start = r#"{"timestamp""#;
                let one_start = if line.len() < start.len() {
                    start.starts_with(line)
                } else {
                    line.starts_with(start) && line.matches(start).count() == 1
                };
                assert!(one_start, "a glued line: {line}");
                fragments += 1;
            }
        }
    }
    (events, notices, fragments)
}

#[test]
fn lines_written_and_lines_counted_lost_are_the_lines_logged() {
    const THREADS: u64 = 4;
    const LINES: u64 = 500;
    let hostile = Hostile::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(hostile.clone())
        .layer();
    let counter = layer.line_counter();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        std::thread::scope(|scope| {
            for thread in 0..THREADS {
                let dispatch = dispatch.clone();
                scope.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        for n in 0..LINES {
                            tracing::info!(i = thread * LINES + n, "line");
                        }
                    });
                });
            }
        });
        // Writing works again: the next line says what is left to say.
        hostile.healthy.store(true, Ordering::Relaxed);
        tracing::info!(i = THREADS * LINES, "line");
    });
    let counts = counter.counts();
    let text = String::from_utf8(hostile.out.lock().unwrap().clone()).unwrap();
    let (mut events, notices, fragments) = sort_out(&text);
    let logged = THREADS * LINES + 1;
    println!(
        "{logged} lines logged: {counts:?}; {fragments} fragments, {} notices",
        notices.len()
    );
    assert_eq!(counts.written + counts.lost(), logged, "{counts:?}");
    assert_eq!(
        events.len() as u64,
        counts.written,
        "a line counted written is whole"
    );
    events.sort_unstable();
    events.dedup();
    assert_eq!(events.len() as u64, counts.written, "each line once");
    assert!(
        counts.write_error > 0 && counts.would_block > 0,
        "{counts:?}"
    );
    assert!(fragments > 0, "lines were cut part way");
    // Every loss said, once.
    let said = |key: &str| -> u64 { notices.iter().map(|n| n[key].as_u64().unwrap_or(0)).sum() };
    assert_eq!(said("lines_lost"), counts.lost());
    assert_eq!(said("lost_write_error"), counts.write_error);
    assert_eq!(said("lost_would_block"), counts.would_block);
    let last = text.lines().last().unwrap();
    assert!(
        last.contains(r#""i":2000"#),
        "the healthy line comes last: {last}"
    );
}

#[test]
fn the_counts_are_metrics_each_interval() {
    let out = common::Refusing::failing("doomed");
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .with_request_metrics(
            RequestMetrics::new("Test/Lines").with_interval(Duration::from_secs(3_600)),
        )
        .layer();
    let counter = layer.line_counter();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..10 {
            tracing::info!(i, "kept");
        }
        for i in 0..3 {
            tracing::info!(i, "doomed");
        }
        tracing_aws_ecs::flush();
        tracing::info!("kept");
        tracing::info!("doomed");
    });
    // The second interval was written as the layer went.
    let text = out.out.text();
    let intervals: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l.get("LinesWritten").is_some())
        .collect();
    let figures: Vec<(u64, u64)> = intervals
        .iter()
        .map(|l| {
            common::assert_emf(l);
            assert_eq!(l["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Test/Lines");
            assert_eq!(l["ClusterName"], fargate_metadata().cluster_name().unwrap());
            (
                l["LinesWritten"].as_u64().unwrap(),
                l["LinesLost"].as_u64().unwrap(),
            )
        })
        .collect();
    // 10 written and 3 lost; then the first interval's metrics line and 1 written (the
    // notice is not counted), 1 lost.
    assert_eq!(figures, [(10, 3), (2, 1)], "{text}");
    let counts = counter.counts();
    assert_eq!(counts.write_error, 4);
}
