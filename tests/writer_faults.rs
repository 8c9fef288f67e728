//! A writer that fails never takes the service down: stdout closed, stdout full (`/dev/full`),
//! a writer that errors, a pipe nobody reads for a while. Failing writes lose their own line
//! and nothing else; a blocked pipe delays the logging thread until it drains and loses
//! nothing. Cases that need a real stdout run in a child process: this file re-run, which is
//! why it has no test harness (libtest would itself fail to print on a broken stdout).

mod common;

use std::io::{self, BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    let cases: [(&str, fn()); 4] = [
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
    tracing_aws_ecs::init();
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
