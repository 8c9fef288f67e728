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
    if std::env::var_os(CASE).is_some() {
        return child();
    }
    let cases: [(&str, fn()); 6] = [
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
    assert_eq!(
        failing.0.load(Ordering::SeqCst),
        100,
        "one attempt per line, no retry storm"
    );
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

/// 300 lines through a [`Flaky`] writer; what came out, line by line.
fn through_flaky(flake: Flake) -> Vec<String> {
    let flaky = Flaky {
        out: Arc::default(),
        lines: Arc::default(),
        flake,
    };
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(flaky.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..300 {
            tracing::info!(i, "line");
        }
    });
    let text = String::from_utf8(flaky.out.lock().unwrap().clone()).unwrap();
    assert!(text.ends_with('\n'));
    text.lines().map(str::to_owned).collect()
}

fn a_write_failing_mid_line_never_glues_lines() {
    let lines = through_flaky(Flake::Error);
    let whole: Vec<serde_json::Value> = lines
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // Each failed line is lost; its fragment is ended, so the next line is whole.
    assert_eq!(whole.len(), 200, "{lines:#?}");
    let fragments: Vec<&String> = lines
        .iter()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
        .collect();
    assert_eq!(fragments.len(), 100);
    assert!(fragments.iter().all(|f| f.len() == 25), "{fragments:#?}");
}

fn a_writer_that_would_block_loses_nothing() {
    let lines = through_flaky(Flake::WouldBlock);
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
