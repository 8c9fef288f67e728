//! What a line costs on a real pipe, the write included: each configuration runs in a child
//! process whose stdout is a pipe this process drains, as a container runtime does.
//!
//! Per configuration: 300,000 events (the compare benchmark's event, in one span) as fast as
//! the thread can log them; the calling thread's ns per event, the process's own CPU (user +
//! system, all its threads, from `/proc/self/stat`, the reader excluded) per line with what a
//! background writer still holds written, and `write(2)` calls (`/proc/self/io`'s `syscw`)
//! per line. Then, for ours with the background writer, the same event at 100,000 lines a
//! second for 2 s (lines per write), and a reader that stops for 10 s and resumes, logging at
//! 20,000 lines a second: the slowest calls, and lines written + dropped against logged.
//!
//! `cargo bench --features emulator --bench write_path` prints the tables for BENCHMARKS.md.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Config, Shape, event, metadata, our_line};
use tracing::Dispatch;
use tracing_aws_ecs::{BackgroundWriter, FlushGuard, LineCounter};
use tracing_subscriber::prelude::*;

const CONFIG: &str = "WRITE_PATH_CONFIG";
const EVENTS: u64 = 300_000;
const WARM_UP: u64 = 20_000;

/// The configurations, in the table's order.
const CONFIGS: [&str; 7] = [
    "floor: a preformatted line, one write per line",
    "ours, io::sink (the formatter alone)",
    "ours, direct to stdout",
    "ours, background writer",
    "ours through tracing-appender's non_blocking",
    "stock fmt().json()",
    "stock through non_blocking",
];

fn main() {
    if let Ok(config) = std::env::var(CONFIG) {
        return child(&config);
    }
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    println!("| per event | calling thread ns | CPU ns a line (process) | lines a write |");
    println!("|---|---:|---:|---:|");
    for config in CONFIGS {
        let figures = run(config, false);
        let [ns, cpu, writes] = figures[..] else {
            panic!("{config}: {figures:?}")
        };
        // No write at all (io::sink): no figure.
        let writes = if writes > 0.0 {
            format!("{writes:.1}")
        } else {
            "–".to_owned()
        };
        println!("| {config} | {ns:.0} | {cpu:.0} | {writes} |");
    }
    let paced = run("paced", false);
    println!(
        "\nours, background writer, at 100,000 lines a second for 2 s: {:.0} lines a write",
        paced[0]
    );
    let stalled = run("stalled", true);
    println!(
        "\nours, background writer, 20,000 lines a second, the reader stopped for 10 s: \
         slowest calls p99.9 {:.1} µs, max {:.1} µs; {:.0} logged, {:.0} written, {:.0} \
         dropped (counted), {:.0} lines on the pipe",
        stalled[0], stalled[1], stalled[2], stalled[3], stalled[4], stalled[5]
    );
}

/// Runs `config` in a child, draining its stdout (stopping for 10 s when `stall`); the
/// figures it reports on stderr, and for `stalled` the lines the pipe carried.
fn run(config: &str, stall: bool) -> Vec<f64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env(CONFIG, config)
        .env_remove("RUST_LOG")
        .env_remove("ECS_CONTAINER_METADATA_URI_V4")
        .env_remove("ECS_CONTAINER_METADATA_URI")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        let mut lines = 0u64;
        let start = Instant::now();
        let mut stalled = false;
        loop {
            if stall && !stalled && start.elapsed() > Duration::from_secs(2) {
                std::thread::sleep(Duration::from_secs(10));
                stalled = true;
            }
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => return lines,
                Ok(n) => lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64,
            }
        }
    });
    let mut report = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut report)
        .unwrap();
    assert!(child.wait().unwrap().success(), "{config}: {report}");
    let on_pipe = reader.join().unwrap();
    let mut figures: Vec<f64> = report
        .split_whitespace()
        .map(|f| f.parse().unwrap_or_else(|_| panic!("{config}: {report}")))
        .collect();
    if config == "stalled" {
        figures.push(on_pipe as f64);
    }
    figures
}

/// The process's CPU time so far (user + system, every thread), in ns.
fn process_cpu_ns() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // USER_HZ is 100 on Linux.
    ticks * 1e7
}

/// The `write(2)` calls the process made so far.
fn write_calls() -> f64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .unwrap()
        .parse()
        .unwrap()
}

/// What keeps a configuration's writer alive until its lines are out.
enum Keep {
    Nothing,
    /// A background writer: the guard waits for it; the counts are its layer's.
    Background(FlushGuard, LineCounter),
    /// tracing-appender's worker: flushed as it is dropped.
    Worker(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard),
}

fn ours() -> tracing_aws_ecs::Builder {
    tracing_aws_ecs::builder().with_metadata(metadata())
}

/// The subscriber of `config` (none for the floor), and what keeps its writer going.
fn subscriber(config: &str) -> (Option<Dispatch>, Keep) {
    let registry = tracing_subscriber::registry();
    match config {
        "ours, io::sink (the formatter alone)" => (
            Some(Dispatch::new(
                registry.with(ours().with_writer(std::io::sink).layer()),
            )),
            Keep::Nothing,
        ),
        "ours, direct to stdout" => (
            Some(Dispatch::new(registry.with(ours().layer()))),
            Keep::Nothing,
        ),
        "ours, background writer" | "paced" | "stalled" => {
            let layer = ours()
                .with_background_writer(BackgroundWriter::default())
                .layer();
            let counter = layer.line_counter();
            let keep = Keep::Background(FlushGuard::new(), counter);
            (Some(Dispatch::new(registry.with(layer))), keep)
        }
        "ours through tracing-appender's non_blocking" => {
            let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
            let layer = ours().with_writer(writer).layer();
            (
                Some(Dispatch::new(registry.with(layer))),
                Keep::Worker(guard),
            )
        }
        "stock fmt().json()" => (
            Some(Dispatch::new(
                registry.with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(std::io::stdout),
                ),
            )),
            Keep::Nothing,
        ),
        "stock through non_blocking" => {
            let (writer, guard) = tracing_appender::non_blocking(std::io::stdout());
            let layer = tracing_subscriber::fmt::layer().json().with_writer(writer);
            (
                Some(Dispatch::new(registry.with(layer))),
                Keep::Worker(guard),
            )
        }
        _ => (None, Keep::Nothing),
    }
}

/// The child: logs as `config` says and reports its figures on stderr, one line.
fn child(config: &str) {
    let (dispatch, keep) = subscriber(config);
    let figures = match (config, dispatch) {
        ("paced", Some(dispatch)) => vec![paced(&dispatch, keep)],
        ("stalled", Some(dispatch)) => stalled(&dispatch, keep),
        (_, Some(dispatch)) => flat_out(&dispatch, keep),
        (_, None) => floor(),
    };
    let line: Vec<String> = figures.iter().map(|f| format!("{f}")).collect();
    eprintln!("{}", line.join(" "));
}

/// ns per event on the calling thread, CPU ns per line, lines per write.
fn flat_out(dispatch: &Dispatch, keep: Keep) -> Vec<f64> {
    tracing::dispatcher::with_default(dispatch, || {
        Shape::OneSpan.within(Config::Ours(None), || {
            for _ in 0..WARM_UP {
                event();
            }
            // What the warm-up left in a background writer is out before the count starts.
            tracing_aws_ecs::flush();
            let (cpu, writes) = (process_cpu_ns(), write_calls());
            let start = Instant::now();
            for _ in 0..EVENTS {
                event();
            }
            let elapsed = start.elapsed();
            // Everything logged written: its CPU and its writes are the line's.
            drop(keep);
            let lines = EVENTS as f64;
            vec![
                elapsed.as_nanos() as f64 / lines,
                (process_cpu_ns() - cpu) / lines,
                lines_a_write(lines, write_calls() - writes),
            ]
        })
    })
}

/// Lines per `write(2)`; 0 when there was none.
fn lines_a_write(lines: f64, writes: f64) -> f64 {
    if writes > 0.0 { lines / writes } else { 0.0 }
}

/// The floor: our line, preformatted, written with one write each.
fn floor() -> Vec<f64> {
    let line = our_line(Shape::OneSpan);
    let (cpu, writes) = (process_cpu_ns(), write_calls());
    let start = Instant::now();
    for _ in 0..EVENTS {
        let _ = std::io::stdout()
            .lock()
            .write_all(std::hint::black_box(&line));
    }
    let elapsed = start.elapsed();
    let lines = EVENTS as f64;
    vec![
        elapsed.as_nanos() as f64 / lines,
        (process_cpu_ns() - cpu) / lines,
        lines_a_write(lines, write_calls() - writes),
    ]
}

/// Lines per write at 100,000 lines a second: 100 lines each millisecond, for 2 s.
fn paced(dispatch: &Dispatch, keep: Keep) -> f64 {
    tracing::dispatcher::with_default(dispatch, || {
        Shape::OneSpan.within(Config::Ours(None), || {
            let writes = write_calls();
            let start = Instant::now();
            for ms in 0..2_000u32 {
                for _ in 0..100 {
                    event();
                }
                let next = start + Duration::from_millis(u64::from(ms) + 1);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            drop(keep);
            200_000.0 / (write_calls() - writes).max(1.0)
        })
    })
}

/// 20,000 lines a second for 14 s, the parent's reader stopped from the 2nd second to the
/// 12th: p99.9 and max µs of a call; logged, written, dropped.
fn stalled(dispatch: &Dispatch, keep: Keep) -> Vec<f64> {
    let Keep::Background(guard, counter) = keep else {
        unreachable!()
    };
    let mut calls = Vec::with_capacity(280_000);
    tracing::dispatcher::with_default(dispatch, || {
        Shape::OneSpan.within(Config::Ours(None), || {
            let start = Instant::now();
            for ms in 0..14_000u32 {
                for _ in 0..20 {
                    let call = Instant::now();
                    event();
                    calls.push(call.elapsed().as_nanos() as f64 / 1e3);
                }
                let next = start + Duration::from_millis(u64::from(ms) + 1);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
        })
    });
    drop(guard);
    let counts = counter.counts();
    let logged = calls.len() as f64;
    calls.sort_by(f64::total_cmp);
    let p999 = calls[(calls.len() * 999 / 1000).min(calls.len() - 1)];
    let max = *calls.last().unwrap();
    vec![
        p999,
        max,
        logged,
        counts.written as f64,
        counts.lost() as f64,
    ]
}
