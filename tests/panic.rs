//! A panic is one JSON ERROR line with the identity, the message, the location, the thread
//! and, when asked for, the backtrace; the previous hook still runs and the exit status stays
//! 101. The panicking service is this file re-run as a child process, which is why it has no
//! test harness (libtest would catch the panic and exit on its own terms).

use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tracing_aws_ecs::emulator::{Emulator, Scenario};
use tracing_subscriber::prelude::*;

const CASE: &str = "TRACING_AWS_ECS_PANIC_CASE";

fn main() {
    if let Ok(case) = std::env::var(CASE) {
        return child(&case);
    }
    let cases: [(&str, fn()); 13] = [
        (
            "a_writer_that_panics_holding_its_lock_does_not_hang_the_hook",
            a_writer_that_panics_holding_its_lock_does_not_hang_the_hook,
        ),
        (
            "init_writes_the_panic_as_one_line",
            init_writes_the_panic_as_one_line,
        ),
        ("the_backtrace_when_asked_for", the_backtrace_when_asked_for),
        (
            "the_backtrace_of_an_unwrap_starts_at_its_caller",
            the_backtrace_of_an_unwrap_starts_at_its_caller,
        ),
        ("the_hook_can_be_left_out", the_hook_can_be_left_out),
        (
            "the_layer_path_installs_it_itself",
            the_layer_path_installs_it_itself,
        ),
        (
            "a_panic_writes_what_requests_held",
            a_panic_writes_what_requests_held,
        ),
        (
            "a_panic_in_debug_during_span_record_is_written",
            a_panic_in_debug_during_span_record_is_written,
        ),
        (
            "a_panic_while_a_held_line_is_formatted_is_written",
            a_panic_while_a_held_line_is_formatted_is_written,
        ),
        (
            "a_caught_panic_flushes_only_its_own_request",
            a_caught_panic_flushes_only_its_own_request,
        ),
        (
            "rusts_message_too_when_asked_for",
            rusts_message_too_when_asked_for,
        ),
        (
            "rusts_message_when_the_line_is_not_written",
            rusts_message_when_the_line_is_not_written,
        ),
        (
            "no_thread_key_beside_thread_names",
            no_thread_key_beside_thread_names,
        ),
    ];
    let mut failed = 0;
    for (name, case) in cases {
        let ok = std::panic::catch_unwind(case).is_ok();
        println!("test {name} ... {}", if ok { "ok" } else { "FAILED" });
        failed += usize::from(!ok);
    }
    println!("panic: {} passed, {failed} failed", cases.len() - failed);
    if failed > 0 {
        std::process::exit(1);
    }
}

/// The child: a service that panics in `main`, on a named thread's behalf or not.
fn child(case: &str) {
    let _guard = match case {
        "no-hook" => tracing_aws_ecs::builder().with_panic_hook(false).init(),
        "thread-names" => tracing_aws_ecs::builder().with_thread_names(true).init(),
        "rust-message" => tracing_aws_ecs::builder()
            .with_rust_panic_message(true)
            .init(),
        "layer" => {
            tracing_subscriber::registry()
                .with(tracing_aws_ecs::layer())
                .init();
            tracing_aws_ecs::install_panic_hook();
            tracing_aws_ecs::FlushGuard::new()
        }
        "buffered" => {
            let _guard = tracing_aws_ecs::builder()
                .with_buffering(tracing_aws_ecs::Buffering::default())
                .init();
            let request = tracing::info_span!("request", id = 9);
            let _entered = request.enter();
            // RUST_LOG is unset: buffering lets DEBUG reach the layer, and holds it.
            tracing::debug!("held until the crash");
            tracing::info!("about to fail");
            panic!("crashed mid-request");
        }
        "record" => {
            let _guard = tracing_aws_ecs::init();
            let span = tracing::info_span!("request", detail = tracing::field::Empty);
            let _entered = span.enter();
            span.record("detail", tracing::field::debug(PanicsInDebug));
            unreachable!("the record panicked");
        }
        "held" => {
            let _guard = tracing_aws_ecs::builder()
                .with_buffering(tracing_aws_ecs::Buffering::default())
                .init();
            let request = tracing::info_span!("request", id = 9);
            let _entered = request.enter();
            tracing::debug!("held before");
            tracing::debug!(value = ?PanicsInDebug, "never finished");
            unreachable!("the held line panicked");
        }
        "writer-panics" => {
            let _guard = tracing_aws_ecs::builder()
                .with_writer(LockedStdout::default())
                .init();
            // As tokio catches a task's panic: the writer panics holding its own lock.
            let caught = std::panic::catch_unwind(|| tracing::info!("explode"));
            assert!(caught.is_err());
            tracing::info!("the service goes on");
            return;
        }
        "unwrap" => {
            let _guard = tracing_aws_ecs::init();
            let missing: Option<u32> = None;
            unwrap_the_order(missing);
            return;
        }
        "caught" => {
            let _guard = tracing_aws_ecs::builder()
                .with_buffering(tracing_aws_ecs::Buffering::default())
                .init();
            let other = tracing::info_span!("request", id = 1);
            other.in_scope(|| tracing::debug!("another request's detail"));
            let failing = tracing::info_span!("request", id = 2);
            failing.in_scope(|| {
                tracing::debug!("the failing request's detail");
                // As tokio or axum catch a task's or a handler's panic.
                let caught = std::panic::catch_unwind(|| panic!("handler failed"));
                assert!(caught.is_err());
            });
            drop(failing);
            tracing::info!("the service goes on");
            return;
        }
        _ => tracing_aws_ecs::init(),
    };
    tracing::info!("about to fail");
    let order = 42;
    panic!("order {order} vanished\nsecond line");
}

/// A value whose `Debug` panics.
struct PanicsInDebug;

impl std::fmt::Debug for PanicsInDebug {
    fn fmt(&self, _: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("a Debug impl panicked")
    }
}

/// Stdout behind a lock of its own, as services share it; a write of a line that says
/// `explode` fails, and the writer panics on it, holding the lock.
#[derive(Clone, Default)]
struct LockedStdout(std::sync::Arc<std::sync::Mutex<()>>);

struct LockedWriter<'a>(#[allow(dead_code)] std::sync::MutexGuard<'a, ()>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LockedStdout {
    type Writer = LockedWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LockedWriter(self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl std::io::Write for LockedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = match String::from_utf8_lossy(buf).contains("explode") {
            true => Err(std::io::Error::other("disk full")),
            false => std::io::stdout().write(buf),
        };
        Ok(written.expect("the writer failed"))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn a_writer_that_panics_holding_its_lock_does_not_hang_the_hook() {
    let (out, lines) = run("writer-panics", &[]);
    assert_eq!(out.status.code(), Some(0), "the hook returned");
    // The line whose writer panicked is lost, counted and said before the next.
    assert_eq!(
        messages(&lines),
        ["1 line lost (1 the writer failed)", "the service goes on"]
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the writer failed"), "{stderr}");
}

/// Runs the child with `case`; fails if it has not ended within a minute (it hung).
fn run(case: &str, env: &[(&str, &str)]) -> (Output, Vec<Value>) {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let (var, url) = emulator.env_var();
    let child = Command::new(std::env::current_exe().unwrap())
        .env(CASE, case)
        .env(var, url)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("RUST_LOG")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(child.wait_with_output()));
    let out = match waited.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(out) => out.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("case {case}: the child hung");
        }
    };
    let lines = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (out, lines)
}

/// The panic's line (this test binary's own target is `panic` too: its ERROR line is the one).
fn the_panic(lines: &[Value]) -> &Value {
    let panics: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "panic" && l["level"] == "ERROR")
        .collect();
    assert_eq!(panics.len(), 1, "{lines:#?}");
    panics[0]
}

fn init_writes_the_panic_as_one_line() {
    let (out, lines) = run("init", &[]);
    assert_eq!(out.status.code(), Some(101), "Rust's exit status");
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let line = the_panic(&lines);
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["message"], "order 42 vanished\nsecond line");
    let location = line["location"].as_str().unwrap();
    assert!(location.starts_with("tests/panic.rs:"), "{location}");
    assert_eq!(location.split(':').count(), 3, "file:line:column");
    assert_eq!(line["thread"], "main");
    assert_eq!(line["ecs"]["cluster"], "prod-web");
    assert!(line.get("backtrace").is_none(), "not asked for");
    // The line was written: Rust's own message is not printed too.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked at"), "{stderr}");
}

fn the_backtrace_when_asked_for() {
    let (out, lines) = run("init", &[("RUST_BACKTRACE", "1")]);
    assert_eq!(out.status.code(), Some(101));
    let backtrace = the_panic(&lines)["backtrace"].as_str().unwrap().to_owned();
    // From the frame that panicked: not the hook's, nor std's panic machinery.
    // With full debug info the symbol is `panic::child`; with `debug = "line-tables-only"`,
    // `child`.
    let mut lines = backtrace.lines();
    let first = lines.next().unwrap();
    assert!(first.ends_with("child"), "{backtrace}");
    assert!(
        lines.next().unwrap().contains("tests/panic.rs:"),
        "{backtrace}"
    );
    for hook in [
        "tracing_aws_ecs::panic",
        "log_panic",
        "rust_begin_unwind",
        "panic_fmt",
    ] {
        assert!(!backtrace.contains(hook), "{backtrace}");
    }
    assert!(backtrace.lines().count() > 3);
}

/// `Option::unwrap` is generic: built into this crate, its symbol has no path with line
/// tables only (`unwrap<u32>`), and its source tells it from the caller's.
fn the_backtrace_of_an_unwrap_starts_at_its_caller() {
    let (out, lines) = run("unwrap", &[("RUST_BACKTRACE", "1")]);
    assert_eq!(out.status.code(), Some(101));
    let backtrace = the_panic(&lines)["backtrace"].as_str().unwrap().to_owned();
    let mut lines = backtrace.lines();
    assert!(
        lines.next().unwrap().ends_with("unwrap_the_order"),
        "{backtrace}"
    );
    assert!(
        lines.next().unwrap().contains("tests/panic.rs:"),
        "{backtrace}"
    );
}

#[inline(never)]
fn unwrap_the_order(order: Option<u32>) -> u32 {
    order.unwrap()
}

fn the_hook_can_be_left_out() {
    let (out, lines) = run("no-hook", &[]);
    assert_eq!(out.status.code(), Some(101));
    assert!(lines.iter().all(|l| l["level"] != "ERROR"), "{lines:#?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("order 42 vanished"));
}

fn the_layer_path_installs_it_itself() {
    let (out, lines) = run("layer", &[]);
    assert_eq!(out.status.code(), Some(101));
    assert_eq!(the_panic(&lines)["ecs"]["cluster"], "prod-web");
}

fn a_panic_writes_what_requests_held() {
    let (out, lines) = run("buffered", &[]);
    assert_eq!(out.status.code(), Some(101));
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "about to fail",
            "held until the crash",
            "crashed mid-request"
        ]
    );
    assert_eq!(lines[1]["level"], "DEBUG");
    assert_eq!(lines[1]["id"], 9);
}

fn messages(lines: &[Value]) -> Vec<&str> {
    lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect()
}

fn a_panic_in_debug_during_span_record_is_written() {
    let (out, lines) = run("record", &[]);
    assert_eq!(out.status.code(), Some(101));
    assert_eq!(the_panic(&lines)["message"], "a Debug impl panicked");
}

fn a_panic_while_a_held_line_is_formatted_is_written() {
    let (out, lines) = run("held", &[]);
    assert_eq!(out.status.code(), Some(101));
    assert_eq!(messages(&lines), ["held before", "a Debug impl panicked"]);
    assert_eq!(the_panic(&lines)["id"], 9, "in its request");
}

fn a_caught_panic_flushes_only_its_own_request() {
    let (out, lines) = run("caught", &[]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        messages(&lines),
        [
            "the failing request's detail",
            "handler failed",
            "the service goes on"
        ]
    );
}

fn rusts_message_too_when_asked_for() {
    let (out, lines) = run("rust-message", &[]);
    assert_eq!(out.status.code(), Some(101));
    assert_eq!(
        the_panic(&lines)["message"],
        "order 42 vanished\nsecond line"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("panicked at"), "{stderr}");
}

fn rusts_message_when_the_line_is_not_written() {
    // A filter that leaves the panic's line out: Rust's hook says it instead.
    let (out, lines) = run("init", &[("RUST_LOG", "off")]);
    assert_eq!(out.status.code(), Some(101));
    assert!(lines.is_empty(), "{lines:#?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("order 42 vanished"), "{stderr}");
}

fn no_thread_key_beside_thread_names() {
    let (out, lines) = run("thread-names", &[]);
    assert_eq!(out.status.code(), Some(101));
    let line = the_panic(&lines);
    assert_eq!(line["threadName"], "main");
    assert!(line.get("thread").is_none(), "{line}");
}
