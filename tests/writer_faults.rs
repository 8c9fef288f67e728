//! A writer that fails never takes the service down: stdout closed, stdout full (`/dev/full`),
//! a writer that errors, a pipe nobody reads for a while. Failing writes lose their own line
//! and nothing else; a blocked pipe delays the logging thread until it drains and loses
//! nothing. Cases that need a real stdout run in a child process: this file re-run, which is
//! why it has no test harness (libtest would itself fail to print on a broken stdout).

mod common;

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fargate_metadata;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

const CASE: &str = "TRACING_AWS_ECS_WRITER_CASE";
const EVENTS: usize = 2_000;

fn main() {
    match std::env::var(CASE).as_deref() {
        Ok("glue") => return wide_lines_child(),
        Ok(_) => return child(),
        Err(_) => {}
    }
    let cases: [(&str, fn()); 7] = [
        ("stdout_closed", stdout_closed),
        ("stdout_full", stdout_full),
        (
            "slow_reader_delays_but_loses_nothing",
            slow_reader_delays_but_loses_nothing,
        ),
        (
            "an_erroring_writer_loses_only_its_lines",
            an_erroring_writer_loses_only_its_lines,
        ),
        (
            "a_write_failing_mid_line_never_glues_lines",
            a_write_failing_mid_line_never_glues_lines,
        ),
        (
            "a_writer_that_would_block_loses_nothing",
            a_writer_that_would_block_loses_nothing,
        ),
        (
            "a_full_non_blocking_stdout_never_glues_lines",
            a_full_non_blocking_stdout_never_glues_lines,
        ),
    ];
    let mut failed = 0;
    for (name, case) in cases {
        let ok = std::panic::catch_unwind(case).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    }
    println!(
        "writer_faults: {} passed, {failed} failed",
        cases.len() - failed
    );
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The child: `init()` on stdout, log, then say on stderr that it got through.
fn child() {
    let _guard = tracing_aws_ecs::init();
    for i in 0..EVENTS {
        tracing::info!(i, padding = "x".repeat(200).as_str(), "line");
    }
    eprintln!("survived {EVENTS} events");
}

const WIDE_THREADS: usize = 4;
const WIDE_LINES: usize = 60;

/// The child of the non-blocking case: 4 threads of 10 KB lines, then the counts on stderr
/// (`written lost would_block slowest_call_us`).
fn wide_lines_child() {
    let guard = tracing_aws_ecs::init();
    let padding = "w".repeat(10_000);
    let slowest = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..WIDE_THREADS)
            .map(|thread| {
                let padding = padding.as_str();
                scope.spawn(move || {
                    let mut slowest = Duration::ZERO;
                    for i in 0..WIDE_LINES {
                        let start = std::time::Instant::now();
                        tracing::info!(thread, i, padding, "wide");
                        slowest = slowest.max(start.elapsed());
                    }
                    slowest
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .max()
            .unwrap()
    });
    let counts = guard.line_counter().counts();
    eprintln!(
        "{} {} {} {}",
        counts.written,
        counts.lost(),
        counts.would_block,
        slowest.as_micros()
    );
}

fn child_command() -> Command {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .env(CASE, "1")
        .env_remove("ECS_CONTAINER_METADATA_URI_V4")
        .env_remove("ECS_CONTAINER_METADATA_URI")
        .env_remove("RUST_LOG");
    command
}

/// The child's lines on stderr.
fn child_notes(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn stdout_closed() {
    let mut child = child_command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // nobody will ever read: every write gets EPIPE
    let mut stderr = Vec::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_end(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "the service died: {status}");
    assert_eq!(
        child_notes(&stderr),
        [format!("survived {EVENTS} events")],
        "no note per lost line"
    );
}

fn stdout_full() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = child_command().stdout(full).output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        child_notes(&out.stderr),
        [format!("survived {EVENTS} events")]
    );
}

fn slow_reader_delays_but_loses_nothing() {
    let mut child = child_command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // ~500 KiB of lines against a 64 KiB pipe: the child blocks until we read.
    std::thread::sleep(Duration::from_millis(300));
    let lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| l.unwrap())
        .filter(|l| l.contains(r#""message":"line""#))
        .count();
    assert!(child.wait().unwrap().success());
    assert_eq!(lines, EVENTS);
}

/// A writer whose every write fails, counting the attempts.
#[derive(Clone, Default)]
struct Failing(Arc<AtomicUsize>);

impl io::Write for Failing {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::other("disk on fire"))
    }

    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::other("disk on fire"))
    }
}

impl<'a> MakeWriter<'a> for Failing {
    type Writer = Failing;

    fn make_writer(&'a self) -> Failing {
        self.clone()
    }
}

fn an_erroring_writer_loses_only_its_lines() {
    let failing = Failing::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(failing.clone())
        .layer();
    let counter = layer.line_counter();
    let capture = common::Capture::default();
    let healthy = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(capture.clone())
        .layer();
    tracing::subscriber::with_default(
        tracing_subscriber::registry().with(layer).with(healthy),
        || {
            for i in 0..100 {
                tracing::info!(i, "attempt");
            }
        },
    );
    // One attempt per line, and one to say the loss (it waits for a line to get through
    // before it is tried again), and one more as the layer goes.
    assert_eq!(
        failing.0.load(Ordering::SeqCst),
        102,
        "one attempt per line, no retry storm"
    );
    let counts = counter.counts();
    assert_eq!((counts.written, counts.write_error), (0, 100));
    assert_eq!(
        capture.lines().len(),
        100,
        "another layer's lines are untouched"
    );
}

/// How a [`Flaky`] writer fails: every third line, after some of its bytes.
#[derive(Clone, Copy)]
enum Flake {
    /// An error, then the writer works again (a full disk that was cleaned, a pipe that
    /// drained): the rest of the line is lost.
    Error,
    /// `WouldBlock`, as a non-blocking stdout answers when its pipe is full.
    WouldBlock,
}

/// A writer into memory whose every third line fails once, after its first 25 bytes.
#[derive(Clone)]
struct Flaky {
    out: Arc<Mutex<Vec<u8>>>,
    lines: Arc<AtomicUsize>,
    flake: Flake,
}

struct FlakyWriter {
    out: Arc<Mutex<Vec<u8>>>,
    /// Bytes this line may write before it fails, once.
    budget: Option<usize>,
    flake: Flake,
}

impl io::Write for FlakyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = match self.budget {
            Some(0) => {
                self.budget = None;
                return Err(match self.flake {
                    Flake::Error => io::Error::other("no space left"),
                    Flake::WouldBlock => io::ErrorKind::WouldBlock.into(),
                });
            }
            Some(budget) => {
                let n = budget.min(buf.len());
                self.budget = Some(budget - n);
                n
            }
            None => buf.len(),
        };
        self.out.lock().unwrap().extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Flaky {
    type Writer = FlakyWriter;

    fn make_writer(&'a self) -> FlakyWriter {
        let line = self.lines.fetch_add(1, Ordering::SeqCst);
        FlakyWriter {
            out: Arc::clone(&self.out),
            budget: (line % 3 == 2).then_some(25),
            flake: self.flake,
        }
    }
}

/// 300 lines through a [`Flaky`] writer; what came out, line by line, and the counts.
fn through_flaky(flake: Flake) -> (Vec<String>, tracing_aws_ecs::LineCounts) {
    let flaky = Flaky {
        out: Arc::default(),
        lines: Arc::default(),
        flake,
    };
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(flaky.clone())
        .layer();
    let counter = layer.line_counter();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..300 {
            tracing::info!(i, "line");
        }
    });
    let text = String::from_utf8(flaky.out.lock().unwrap().clone()).unwrap();
    assert!(text.ends_with('\n'));
    (text.lines().map(str::to_owned).collect(), counter.counts())
}

fn a_write_failing_mid_line_never_glues_lines() {
    let (lines, counts) = through_flaky(Flake::Error);
    let whole: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let events = whole.iter().filter(|l| l["message"] == "line").count() as u64;
    let notices: Vec<&serde_json::Value> = whole
        .iter()
        .filter(|l| l.get("lines_lost").is_some())
        .collect();
    // Each failed line is lost and counted; its fragment is ended, so the next line is whole.
    let fragments: Vec<&String> = lines
        .iter()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect();
    assert_eq!(whole.len() + fragments.len(), lines.len());
    assert!(fragments.iter().all(|f| f.len() == 25), "{fragments:#?}");
    assert_eq!(counts.written, events);
    assert_eq!(counts.written + counts.write_error, 300, "{counts:?}");
    assert_eq!(counts.write_error, fragments.len() as u64);
    assert!(counts.write_error > 50, "{counts:?}");
    // Each loss is said on the line after it: all but the losses after the last line
    // written, and a notice that failed itself.
    let said: u64 = notices
        .iter()
        .map(|n| n["lost_write_error"].as_u64().unwrap())
        .sum();
    assert!(
        said > 0 && said <= counts.write_error,
        "{said} of {counts:?}"
    );
    for notice in notices {
        assert_eq!(notice["level"], "WARN");
        assert_eq!(notice["target"], "tracing_aws_ecs");
        assert_eq!(
            notice["ecs"], whole[0]["ecs"],
            "the identity, as on every line"
        );
    }
}

fn a_writer_that_would_block_loses_nothing() {
    let (lines, counts) = through_flaky(Flake::WouldBlock);
    assert_eq!((counts.written, counts.lost()), (300, 0));
    let numbers: Vec<u64> = lines
        .iter()
        .map(|l| {
            let line: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            line["i"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(numbers, (0..300).collect::<Vec<u64>>());
}

/// A non-blocking stdout (ECS's non-blocking mode is the driver's, but a runtime or a parent
/// may set `O_NONBLOCK` on the pipe) whose reader is slow: lines wait their patience, then are
/// lost and counted, and no line is ever glued to another, even with 4 threads.
fn a_full_non_blocking_stdout_never_glues_lines() {
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;

    let (mut reader, child_end) = UnixStream::pair().unwrap();
    child_end.set_nonblocking(true).unwrap();
    let mut child = child_command()
        .env(CASE, "glue")
        .stdout(Stdio::from(OwnedFd::from(child_end)))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A reader that stalls for 300 ms before it reads, and after each of its first 64 KiB
    // reads, 4 times; then drains the rest.
    let mut out = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    for stall in 0.. {
        if stall < 5 {
            std::thread::sleep(Duration::from_millis(300));
        }
        let mut filled = 0;
        while filled < chunk.len() {
            match reader.read(&mut chunk[filled..]).unwrap() {
                0 => break,
                n => filled += n,
            }
        }
        out.extend_from_slice(&chunk[..filled]);
        if filled < chunk.len() {
            break;
        }
    }
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    let figures: Vec<u64> = stderr
        .lines()
        .last()
        .unwrap()
        .split(' ')
        .map(|n| n.parse().unwrap())
        .collect();
    let [written, lost, would_block, slowest_us] = figures[..] else {
        panic!("{stderr}")
    };
    let text = String::from_utf8_lossy(&out);
    let (mut events, mut notices, mut said, mut fragments, mut glued) = (0, 0, 0, 0, 0);
    for line in text.lines() {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(line) if line["message"] == "wide" => events += 1,
            Ok(line) if line.get("lines_lost").is_some() => {
                notices += 1;
                said += line["lines_lost"].as_u64().unwrap();
            }
            Ok(_) => {}
            // A fragment is a line's start, ended: never two starts, never a start's tail.
            Err(_)
                if line.starts_with(r#"{"timestamp""#)
                    && line.matches(r#"{"timestamp""#).count() == 1 =>
            {
                fragments += 1
            }
            Err(_) => glued += 1,
        }
    }
    println!(
        "non-blocking stdout: {written} written, {lost} lost ({would_block} would block), \
         {fragments} fragments ended, {notices} notices, 0 glued; slowest call {slowest_us} µs"
    );
    assert_eq!(glued, 0, "{glued} glued lines");
    assert_eq!(
        events, written,
        "every line counted written is whole on the pipe"
    );
    assert_eq!(written + lost, (WIDE_THREADS * WIDE_LINES) as u64);
    assert!(lost > 0, "the reader stalled long enough to lose lines");
    assert_eq!(
        said, lost,
        "every loss said, the last ones as the guard went"
    );
}
