//! The background writer: lines copied into a bounded buffer and written by a thread of
//! their own, many to a write, in order, never split or glued; a full buffer drops lines
//! and counts them (or waits, when told to); nothing is lost at exit or at a panic.

mod common;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use common::fargate_metadata;
use serde_json::Value;
use tracing_aws_ecs::{BackgroundWriter, WhenFull};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

const CASE: &str = "TRACING_AWS_ECS_BACKGROUND_CASE";

/// A writer into memory that counts its writes, and blocks every write while its gate is
/// closed (a stdout whose reader stalled).
#[derive(Clone, Default)]
struct Gated {
    out: Arc<Mutex<Vec<u8>>>,
    writes: Arc<AtomicUsize>,
    closed: Arc<(Mutex<bool>, Condvar)>,
}

impl Gated {
    fn set_closed(&self, closed: bool) {
        *self.closed.0.lock().unwrap() = closed;
        self.closed.1.notify_all();
    }

    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.out.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

impl io::Write for Gated {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (closed, opened) = &*self.closed;
        let _open = opened
            .wait_while(closed.lock().unwrap(), |closed| *closed)
            .unwrap();
        self.writes.fetch_add(1, Ordering::SeqCst);
        self.out.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Gated {
    type Writer = Gated;

    fn make_writer(&'a self) -> Gated {
        self.clone()
    }
}

fn layer<S>(out: &Gated, config: BackgroundWriter) -> tracing_aws_ecs::EcsLayer<S, Gated>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .with_background_writer(config)
        .layer()
}

#[test]
fn lines_from_many_threads_arrive_whole_in_order_many_to_a_write() {
    const THREADS: u64 = 4;
    const LINES: u64 = 2_000;
    let out = Gated::default();
    // Waiting when full: four threads may outrun one writer on a busy machine, and what is
    // tested here is order and wholeness (drops are `a_full_buffer_drops_…`'s).
    let layer = layer(&out, BackgroundWriter::default().when_full(WhenFull::Wait));
    let counter = layer.line_counter();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let dispatch = dispatch.clone();
            scope.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for n in 0..LINES {
                        tracing::info!(thread, n, padding = "p".repeat(100).as_str(), "line");
                    }
                });
            });
        }
    });
    // The layer goes: what it queued is written first.
    drop(dispatch);
    let lines = out.lines();
    assert_eq!(lines.len() as u64, THREADS * LINES);
    for thread in 0..THREADS {
        let ns: Vec<u64> = lines
            .iter()
            .filter(|l| l["thread"] == thread)
            .map(|l| l["n"].as_u64().unwrap())
            .collect();
        assert_eq!(
            ns,
            (0..LINES).collect::<Vec<_>>(),
            "thread {thread} in order"
        );
    }
    let counts = counter.counts();
    assert_eq!((counts.written, counts.lost()), (THREADS * LINES, 0));
}

#[test]
fn on_stdout_many_lines_go_in_one_write() {
    let (lines, stdout) = common::run_child(CASE, "batched", &[]);
    let events = lines.iter().filter(|l| l["message"] == "line").count();
    assert_eq!(events, 8_000);
    let writes = common::by_message(&lines, "batched")["writes"]
        .as_u64()
        .unwrap();
    println!(
        "8,000 lines in {writes} writes: {} lines a write",
        8_000 / writes.max(1)
    );
    assert!(writes * 4 <= 8_000, "{writes} writes\n{stdout}");
}

#[test]
fn a_full_buffer_drops_lines_counts_them_and_says_so() {
    let out = Gated::default();
    out.set_closed(true);
    let layer = layer(&out, BackgroundWriter::default().with_capacity(64 * 1024));
    let counter = layer.line_counter();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        // ~1 MB against 64 KiB, the reader stalled: no call waits, most lines are dropped.
        for i in 0..1_000u64 {
            tracing::info!(i, padding = "x".repeat(1_000).as_str(), "stalled");
        }
        out.set_closed(false);
        let before = counter.counts();
        assert!(before.queue_full > 0, "{before:?}");
        // Writing resumed: the next lines come after one WARN with the count.
        tracing::info!(i = 1_000u64, "resumed");
    });
    drop(dispatch);
    let counts = counter.counts();
    let lines = out.lines();
    let events = lines.iter().filter(|l| l.get("i").is_some()).count() as u64;
    let notices: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("lines_lost").is_some())
        .collect();
    println!("1,001 logged: {counts:?}");
    assert_eq!(counts.written, events);
    assert_eq!(counts.written + counts.queue_full, 1_001, "{counts:?}");
    assert_eq!(counts.lost(), counts.queue_full);
    let said: u64 = notices
        .iter()
        .map(|n| n["lost_queue_full"].as_u64().unwrap())
        .sum();
    assert_eq!(said, counts.queue_full);
    assert_eq!(lines.last().unwrap()["message"], "resumed");
}

#[test]
fn waiting_when_full_loses_nothing() {
    let out = Gated::default();
    out.set_closed(true);
    let config = BackgroundWriter::default()
        .with_capacity(64 * 1024)
        .when_full(WhenFull::Wait);
    let layer = layer(&out, config);
    let counter = layer.line_counter();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let opener = {
        let out = out.clone();
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            out.set_closed(false);
        })
    };
    tracing::dispatcher::with_default(&dispatch, || {
        for i in 0..1_000u64 {
            tracing::info!(i, padding = "x".repeat(1_000).as_str(), "waited");
        }
    });
    opener.join().unwrap();
    drop(dispatch);
    assert_eq!(out.lines().len(), 1_000);
    assert_eq!(
        (counter.counts().written, counter.counts().lost()),
        (1_000, 0)
    );
}

#[test]
fn a_writer_that_panics_loses_its_run_of_lines_and_no_more() {
    let out = common::Refusing::panicking("boom");
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .with_background_writer(BackgroundWriter::default())
        .layer();
    let counter = layer.line_counter();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        tracing::info!("before");
        tracing::error!("boom");
        // The run with `boom` is written (and lost) before the next lines are logged.
        tracing_aws_ecs::flush();
        for i in 0..100 {
            tracing::info!(i, "after");
        }
    });
    drop(dispatch);
    let counts = counter.counts();
    let text = out.out.text();
    let after = text
        .lines()
        .filter(|l| l.contains(r#""message":"after""#))
        .count();
    // Through a writer of one's own, lines are written one by one: `boom` alone is lost;
    // the next line starts clean (after a newline, as the writer may have left part of it).
    assert_eq!(after, 100, "the thread goes on after the panic");
    assert_eq!((counts.written, counts.write_error), (101, 1), "{counts:?}");
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(
        lines.len() as u64,
        counts.written + 1,
        "and one notice: {text}"
    );
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_ok())
    );
}

/// Runs the `child` test in a process whose stdout this test reads only after 300 ms: the
/// 64 KiB pipe fills, and the lines wait in the background writer. Its JSON lines.
fn run_slowly_read_child(case: &str) -> (Vec<Value>, String) {
    use std::io::Read;
    let mut child = common::child_command(CASE, case)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{stdout}");
    (common::json_lines(&stdout), stdout)
}

#[test]
fn exit_and_panic_lose_nothing() {
    for case in ["return", "panic_then_exit"] {
        let (lines, stdout) = run_slowly_read_child(case);
        let n = lines.iter().filter(|l| l["message"] == "before").count();
        assert_eq!(n, 5_000, "{case}: every line before the end");
        if case == "panic_then_exit" {
            let panic = lines.last().unwrap();
            assert_eq!(
                panic["target"], "panic",
                "{case}: the panic line last\n{stdout}"
            );
            assert_eq!(panic["message"], "worker failed");
        }
    }
}

#[test]
fn sigterm_with_graceful_shutdown_loses_nothing() {
    use std::io::Read;
    let mut child = common::child_command(CASE, "sigterm")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Read up to the child's "ready" line, then stop reading: the pipe fills, lines wait in
    // the background writer, and SIGTERM comes.
    let mut seen = Vec::new();
    let mut byte = [0; 1];
    while !String::from_utf8_lossy(&seen).contains("\"ready\"") {
        assert_eq!(stdout.read(&mut byte).unwrap(), 1, "the child ended early");
        seen.push(byte[0]);
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    seen.extend(rest);
    let text = String::from_utf8(seen).unwrap();
    let lines = common::json_lines(&text);
    let before = lines.iter().filter(|l| l["message"] == "before").count();
    assert_eq!(before, 2_000, "every line logged before SIGTERM");
    assert_eq!(
        lines.last().unwrap()["message"],
        "stopping",
        "and the shutdown's own"
    );
}

#[test]
fn child() {
    let Ok(case) = std::env::var(CASE) else {
        return; // Only meaningful when started by the tests above.
    };
    if case == "sigterm" {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let _guard = tracing_aws_ecs::builder()
                .with_background_writer(BackgroundWriter::default())
                .init();
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            tracing::info!("ready");
            tracing_aws_ecs::flush();
            // About 600 KB: within the buffer, while the pipe is not read.
            for i in 0..2_000 {
                tracing::info!(i, "before");
            }
            // A graceful shutdown: the signal ends the serving, `main` returns, the guard
            // goes.
            term.recv().await;
            tracing::info!("stopping");
        });
        return;
    }
    // Waiting when full in these cases: what they test (batching, nothing lost on the way
    // out) must not hang on four threads outrunning the writer on a busy machine.
    if case == "batched" {
        let _guard = tracing_aws_ecs::builder()
            .with_background_writer(BackgroundWriter::default().when_full(WhenFull::Wait))
            .init();
        let writes = || -> u64 {
            let io = std::fs::read_to_string("/proc/self/io").unwrap();
            let calls = io.lines().find_map(|l| l.strip_prefix("syscw: "));
            calls.unwrap().parse().unwrap()
        };
        let before = writes();
        std::thread::scope(|scope| {
            for thread in 0..4 {
                scope.spawn(move || {
                    for n in 0..2_000 {
                        tracing::info!(thread, n, "line");
                    }
                });
            }
        });
        tracing_aws_ecs::flush();
        tracing::info!(writes = writes() - before, "batched");
        return;
    }
    let guard = tracing_aws_ecs::builder()
        .with_background_writer(
            BackgroundWriter::default()
                .with_linger(std::time::Duration::from_millis(500))
                .when_full(WhenFull::Wait),
        )
        .init();
    for i in 0..5_000 {
        tracing::info!(i, "before");
    }
    match case.as_str() {
        "return" => drop(guard),
        "panic_then_exit" => {
            let _ = std::thread::spawn(|| panic!("worker failed")).join();
            // No destructor runs: only the panic hook can have written the lines out.
            std::process::exit(0);
        }
        _ => unreachable!(),
    }
}
