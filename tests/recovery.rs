//! When the start-up fetch fails for a reason that can pass, one background thread reads the
//! metadata later and every line from then on carries the identity; deadlines bound the whole
//! start-up fetch. Each case runs in a child process (the cache and the subscriber are
//! process-wide): this file re-runs its own `child` test with a case name.

mod common;

use std::time::{Duration, Instant};

use common::by_message;
use serde_json::Value;
use tracing_aws_ecs::ExtraFields;
use tracing_aws_ecs::emulator::{ALWAYS, Emulator, Fault, Route, Scenario};
use tracing_aws_ecs::endpoint::Document;
use tracing_subscriber::prelude::*;

const CASE: &str = "TRACING_AWS_ECS_RECOVERY_CASE";
const THREADS: usize = 4;

fn run_child(case: &str, emulator: &Emulator, env: &[(&str, &str)]) -> Vec<Value> {
    let (var, url) = emulator.env_var();
    let mut all = vec![(var, url.as_str())];
    all.extend_from_slice(env);
    common::run_child(CASE, case, &all).0
}

/// Whether this process has a thread named like the recovery thread.
fn has_recovery_thread() -> bool {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .any(|name| name.trim() == "ecs-recovery")
}

/// Logs from several threads until the metadata is read and a little longer (20 s at most).
fn log_from_threads_until_recovered() {
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let stop = &stop;
            scope.spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    tracing::info!(thread, n, "tick");
                    n += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
        }
        let limit = Instant::now() + Duration::from_secs(20);
        while tracing_aws_ecs::metadata().is_none_or(|m| m.task().is_none())
            && Instant::now() < limit
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
}

/// The child half: what a service's `main` does.
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE) else {
        return; // Only meaningful when started by the tests below.
    };
    match case.as_str() {
        "init" => {
            let _guard = tracing_aws_ecs::builder()
                .with_fields(ExtraFields::AVAILABILITY_ZONE)
                .init();
            log_from_threads_until_recovered();
        }
        "layer" => {
            tracing_subscriber::registry()
                .with(
                    tracing_aws_ecs::builder()
                        .with_fields(ExtraFields::AVAILABILITY_ZONE)
                        .layer(),
                )
                .init();
            tracing_aws_ecs::log_metadata_status();
            log_from_threads_until_recovered();
        }
        "metrics" => {
            let _guard = tracing_aws_ecs::builder()
                .with_fields(ExtraFields::AVAILABILITY_ZONE)
                .with_request_metrics(
                    tracing_aws_ecs::RequestMetrics::new("Test/Recovery")
                        .with_interval(Duration::from_secs(3600)),
                )
                .with_container_metrics(
                    tracing_aws_ecs::MetricsReporter::builder()
                        .with_interval(Duration::from_millis(100)),
                )
                .init();
            tracing::info_span!("request", http.route = "/during").in_scope(|| {});
            log_from_threads_until_recovered();
            tracing::info_span!("request", http.route = "/after").in_scope(|| {});
            // Two more container reports after the recovery.
            std::thread::sleep(Duration::from_millis(250));
        }
        "zero" => {
            let _guard = tracing_aws_ecs::builder()
                .with_deadline(Duration::ZERO)
                .with_fields(ExtraFields::AVAILABILITY_ZONE)
                .init();
            log_from_threads_until_recovered();
        }
        "slow" => {
            let _guard = tracing_aws_ecs::builder()
                .with_deadline(Duration::from_secs(10))
                .init();
            tracing::info!("first line");
        }
        "threads" => {
            let _guard = tracing_aws_ecs::init();
            // Longer than the recovery thread's first pause, so that a thread started by
            // mistake would have asked the endpoint again by now.
            std::thread::sleep(Duration::from_millis(1500));
            tracing::info!(recovery_thread = has_recovery_thread(), "threads");
        }
        "off" => {
            let _guard = tracing_aws_ecs::builder().with_recovery(false).init();
            std::thread::sleep(Duration::from_millis(1500));
            tracing::info!(recovery_thread = has_recovery_thread(), "threads");
        }
        other => panic!("unknown case {other}"),
    }
}

/// Checks the lines of a child that logged from several threads through an outage: plain
/// (or partial) lines before the recovery, one INFO line saying when, and from then on every
/// line from every thread with the complete identity. Returns the recovery time the line
/// gives, in ms.
fn assert_recovered(lines: &[Value], before: fn(&Value) -> bool) -> u64 {
    let recovered: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            l["target"] == "tracing_aws_ecs" && l["message"].as_str().unwrap().contains("recovered")
        })
        .map(|(i, _)| i)
        .collect();
    assert_eq!(recovered.len(), 1, "one recovery line in {lines:#?}");
    let at = recovered[0];
    assert_eq!(lines[at]["level"], "INFO");
    let complete = |line: &Value| {
        line["ecs"]["cluster"] == "prod-web" && line["ecs"]["availability_zone"] == "us-east-1b"
    };
    let ticks_before: Vec<&Value> = lines[..at]
        .iter()
        .filter(|l| l["message"] == "tick")
        .collect();
    assert!(
        !ticks_before.is_empty(),
        "lines were written during the outage"
    );
    assert!(
        ticks_before.iter().any(|l| before(l)),
        "the outage shows on the lines"
    );
    let ticks_after: Vec<&Value> = lines[at..]
        .iter()
        .filter(|l| l["message"] == "tick")
        .collect();
    // A line rendered before the identity changed may be written after the recovery line
    // (its thread was preempted in between): its timestamp, read before the identity, says
    // so. Every line rendered after the recovery line carries the identity.
    let recovered_at = lines[at]["timestamp"].as_str().unwrap();
    for line in &ticks_after {
        let rendered_after = line["timestamp"].as_str().unwrap() > recovered_at;
        assert!(
            !rendered_after || complete(line),
            "after the recovery: {line}"
        );
    }
    for thread in 0..THREADS {
        assert!(
            ticks_after.iter().any(|l| l["thread"] == thread),
            "thread {thread} logged after the recovery"
        );
    }
    lines[at]["after_ms"].as_u64().unwrap()
}

const OUTAGE: Duration = Duration::from_secs(3);

#[test]
fn an_endpoint_slower_than_the_deadline_is_recovered() {
    // Every answer takes 2.5 s, the start-up deadline is the default 2 s: the start-up
    // fetch fails, and recovery waits longer at each attempt.
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(
        Route::Any,
        Fault::Delay(Duration::from_millis(2_500)),
        ALWAYS,
    );
    let lines = run_child("init", &emulator, &[]);
    let after = assert_recovered(&lines, |l| l.get("ecs").is_none());
    // A bound on a hang, and the figure the documentation gives.
    assert!(after < 15_000, "{after} ms");
    println!("an endpoint answering in 2.5 s: recovered {after} ms after start-up");
}

#[test]
fn an_outage_at_start_up_ends_with_enriched_lines_from_every_thread() {
    for case in ["init", "layer"] {
        let emulator = Emulator::start(Scenario::Fargate).unwrap();
        emulator.inject_for(Route::Any, Fault::Status(500), OUTAGE);
        let lines = run_child(case, &emulator, &[]);
        let warning = lines
            .iter()
            .find(|l| l["level"] == "WARN")
            .expect("a WARN line");
        assert!(
            warning["message"]
                .as_str()
                .unwrap()
                .contains("retrying in the background"),
            "{warning}"
        );
        let after = assert_recovered(&lines, |l| l.get("ecs").is_none());
        // Not before the endpoint recovered; well within the first backoff steps after it
        // (a bound on a hang, with a wide margin for a loaded machine).
        assert!(after >= OUTAGE.as_millis() as u64, "{after} ms");
        assert!(after < 15_000, "{after} ms");
        println!("{case}: recovered {after} ms after start-up, outage {OUTAGE:?}");
    }
}

#[test]
fn metrics_follow_the_recovered_identity() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject_for(Route::Any, Fault::Status(500), OUTAGE);
    let lines = run_child("metrics", &emulator, &[]);
    assert_recovered(&lines, |l| l.get("ecs").is_none());
    // The interval, written as `main` returns, under the task's cluster and service.
    let metrics: Vec<&Value> = lines
        .iter()
        .filter(|l| l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Test/Recovery")
        .collect();
    // Two (Route, Method) lines and the line counts' line.
    let requests = metrics.iter().filter(|l| l.get("Route").is_some()).count();
    assert_eq!((requests, metrics.len()), (2, 3), "{metrics:#?}");
    for line in metrics {
        assert_eq!(line["ClusterName"], "prod-web", "{line}");
        assert_ne!(line["ServiceName"], "local", "{line}");
    }
    // The container reporter, started during the outage, reports under them too.
    let last_report = lines
        .iter()
        .rev()
        .find(|l| l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ECS/TaskMetrics")
        .expect("a container report after the recovery");
    assert_eq!(last_report["ClusterName"], "prod-web", "{last_report}");
}

#[test]
fn a_deadline_of_zero_is_recovered_all_the_same() {
    // A healthy endpoint: the start-up fetch, given no time, fails; the recovery's requests
    // each wait at least a second, and read it.
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let lines = run_child("zero", &emulator, &[]);
    assert_recovered(&lines, |line| line.get("ecs").is_none());
    assert!(emulator.requests(Document::Task) >= 1);
}

#[test]
fn a_partial_start_is_completed() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject_for(Document::Task, Fault::Status(503), OUTAGE);
    let lines = run_child("init", &emulator, &[]);
    // Before: what the container's labels give (the cluster), not the zone `/task` gives.
    let after = assert_recovered(&lines, |l| {
        l["ecs"]["cluster"] == "prod-web" && l["ecs"].get("availability_zone").is_none()
    });
    // Only `/task` was asked for again: the container document is kept.
    assert_eq!(emulator.requests(Document::Container), 1);
    println!("partial: completed {after} ms after start-up");
}

#[test]
fn a_slow_endpoint_that_answers_within_the_deadline_enriches_the_first_line() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(
        Route::Any,
        Fault::Delay(Duration::from_millis(1500)),
        ALWAYS,
    );
    let started = Instant::now();
    let lines = run_child("slow", &emulator, &[]);
    let took = started.elapsed();
    assert_eq!(lines.len(), 1, "no warning: {lines:#?}");
    assert_eq!(
        by_message(&lines, "first line")["ecs"]["cluster"],
        "prod-web"
    );
    // One request each, sent together.
    assert_eq!(emulator.requests(Document::Container), 1);
    assert_eq!(emulator.requests(Document::Task), 1);
    println!("1.5 s per answer, 10 s deadline: the child ran {took:?}");
}

#[test]
fn the_default_deadline_waits_for_a_slow_answer() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(
        Route::Any,
        Fault::Delay(Duration::from_millis(1500)),
        ALWAYS,
    );
    let lines = run_child("threads", &emulator, &[]);
    let line = by_message(&lines, "threads");
    assert_eq!(line["ecs"]["cluster"], "prod-web");
    assert_eq!(line["recovery_thread"], false);
}

#[test]
fn no_background_thread_for_a_final_answer_or_off_ecs() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(Document::Container, Fault::Status(404), ALWAYS);
    let lines = run_child("threads", &emulator, &[]);
    assert_eq!(by_message(&lines, "threads")["recovery_thread"], false);
    assert_eq!(emulator.requests(Document::Container), 1);

    let (lines, _) = common::run_child(CASE, "threads", &[]);
    assert_eq!(by_message(&lines, "threads")["recovery_thread"], false);

    // The same check sees the thread where there is one.
    let failing = Emulator::start(Scenario::Fargate).unwrap();
    failing.inject(Route::Any, Fault::Status(500), ALWAYS);
    let lines = run_child("threads", &failing, &[]);
    assert_eq!(by_message(&lines, "threads")["recovery_thread"], true);
}

#[test]
fn recovery_can_be_switched_off() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(Route::Any, Fault::Status(500), ALWAYS);
    let lines = run_child("off", &emulator, &[]);
    assert_eq!(by_message(&lines, "threads")["recovery_thread"], false);
    let warning = &lines[0];
    assert_eq!(warning["level"], "WARN");
    assert!(
        !warning["message"]
            .as_str()
            .unwrap()
            .contains("in the background")
    );
}
