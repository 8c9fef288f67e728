//! The metrics reporter against the emulator: EMF lines at the interval, line-atomic with the
//! logs on one writer, one WARN per outage, recovery, and a clean stop.

mod common;

use once_cell::sync::OnceCell;
use std::time::{Duration, Instant};

use common::{Capture, assert_emf};
use serde_json::Value;
use tracing_aws_ecs::emulator::{ALWAYS, Emulator, Fault, Scenario};
use tracing_aws_ecs::endpoint::Document;
use tracing_aws_ecs::{MetricsError, MetricsReporter};
use tracing_subscriber::prelude::*;

/// The reporter logs from its own thread, through the global subscriber: capture it.
fn logs() -> &'static Capture {
    static LOGS: OnceCell<Capture> = OnceCell::new();
    LOGS.get_or_init(|| {
        let capture = Capture::default();
        let layer = tracing_aws_ecs::builder()
            .with_writer(capture.clone())
            .layer();
        tracing_subscriber::registry().with(layer).init();
        capture
    })
}

fn emf_lines(out: &Capture) -> Vec<Value> {
    out.lines()
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .collect()
}

/// Waits until `done` holds, up to 10 s (a bound on a hang, not a timing assertion).
fn wait_for(mut done: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < until, "condition not reached");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A reporter on `emulator` (its scenario's metadata read first) writing into `out` every
/// `interval`, in namespace `Test/NS`.
fn start_reporter(emulator: &Emulator, out: &Capture, interval: Duration) -> MetricsReporter {
    let meta = emulator.client().fetch_metadata().unwrap();
    MetricsReporter::builder()
        .with_client(emulator.client())
        .with_metadata(meta)
        .with_writer(out.clone())
        .with_interval(interval)
        .with_namespace("Test/NS")
        .start()
        .unwrap()
}

#[test]
fn reports_at_the_interval_and_stops() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let out = Capture::default();
    let reporter = start_reporter(&emulator, &out, Duration::from_millis(20));
    // Fargate: app + envoy + the task's record per sample.
    wait_for(|| emf_lines(&out).len() >= 9);
    reporter.stop();
    let after_stop = emulator.requests(Document::TaskStats);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        emulator.requests(Document::TaskStats),
        after_stop,
        "no request after stop"
    );

    let lines = emf_lines(&out);
    assert_eq!(lines.len() % 3, 0, "whole samples only");
    for line in &lines {
        assert_emf(line);
        assert_eq!(line["_aws"]["CloudWatchMetrics"][0]["Namespace"], "Test/NS");
        assert_eq!(line["ClusterName"], "prod-web");
        assert_eq!(line["ServiceName"], "orders-api");
    }
    let app: Vec<&Value> = lines
        .iter()
        .filter(|l| l["ContainerName"] == "app")
        .collect();
    assert!((app[0]["CpuUtilization"].as_f64().unwrap() - 23.0).abs() < 1e-6);
}

#[test]
fn one_warning_per_outage_then_recovery() {
    let logs = logs();
    let emulator = Emulator::start(Scenario::Ec2).unwrap();
    let meta = emulator.client().fetch_metadata().unwrap();
    let client = emulator.client().with_max_attempts(1);
    let out = Capture::default();
    let reporter = MetricsReporter::builder()
        .with_client(client)
        .with_metadata(meta)
        .with_writer(out.clone())
        .with_interval(Duration::from_millis(10))
        .with_namespace("Test/NS")
        .start()
        .unwrap();
    wait_for(|| !emf_lines(&out).is_empty());

    emulator.inject(Document::TaskStats, Fault::Status(500), ALWAYS);
    let failed_from = emulator.requests(Document::TaskStats);
    wait_for(|| emulator.requests(Document::TaskStats) >= failed_from + 4);
    let during = emf_lines(&out).len();
    emulator.clear_faults();
    wait_for(|| emf_lines(&out).len() > during);
    reporter.stop();

    // Other tests log through the same subscriber: this outage's notes only.
    let notes: Vec<Value> = logs
        .lines()
        .into_iter()
        .filter(|l| {
            l["target"] == "tracing_aws_ecs"
                && l["message"].as_str().unwrap().contains("task stats")
        })
        .collect();
    let warnings: Vec<&Value> = notes.iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(warnings.len(), 1, "{notes:#?}");
    assert!(warnings[0]["message"].as_str().unwrap().contains("500"));
    assert!(
        notes
            .iter()
            .any(|l| l["level"] == "INFO" && l["message"].as_str().unwrap().contains("again"))
    );
    // EC2: the stopped `migrate` and the pause container have no record.
    let lines = emf_lines(&out);
    let names: Vec<&str> = lines
        .iter()
        .filter_map(|l| l["ContainerName"].as_str())
        .collect();
    assert!(names.iter().all(|n| *n == "worker"), "{names:?}");
}

#[test]
fn lines_never_interleave_with_logs() {
    let emulator = Emulator::start(Scenario::ManagedInstances).unwrap();
    let meta = emulator.client().fetch_metadata().unwrap();
    let out = Capture::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(meta.clone())
        .with_writer(out.clone())
        .layer();
    let reporter = MetricsReporter::builder()
        .with_client(emulator.client())
        .with_metadata(meta)
        .with_writer(out.clone())
        .with_interval(Duration::from_millis(1))
        .with_namespace("Test/NS")
        .start()
        .unwrap();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        for i in 0..2000 {
            tracing::info!(i, "busy");
        }
    });
    wait_for(|| emf_lines(&out).len() >= 4);
    reporter.stop();
    // Every line parses: none was cut by another.
    let lines = out.lines();
    assert_eq!(
        lines.iter().filter(|l| l["message"] == "busy").count(),
        2000
    );
    for line in lines.iter().filter(|l| l.get("_aws").is_some()) {
        assert_emf(line);
    }
}

#[test]
fn dropping_stops_it() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let out = Capture::default();
    {
        let _reporter = MetricsReporter::builder()
            .with_client(emulator.client())
            .with_writer(out.clone())
            .with_interval(Duration::from_millis(5))
            .start()
            .unwrap();
        wait_for(|| emulator.requests(Document::TaskStats) >= 2);
    }
    let after = emulator.requests(Document::TaskStats);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(emulator.requests(Document::TaskStats), after);
}

#[test]
fn a_bad_namespace_or_no_endpoint_is_an_error_at_start() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    for namespace in ["", "   ", &"x".repeat(1025)] {
        let err = MetricsReporter::builder()
            .with_client(emulator.client())
            .with_namespace(namespace)
            .start()
            .unwrap_err();
        assert!(matches!(err, MetricsError::Namespace(_)), "{err}");
    }
    assert_eq!(
        emulator.requests(Document::TaskStats),
        0,
        "nothing was started"
    );
    // The test process is not on ECS: without a client there is no endpoint.
    if !tracing_aws_ecs::on_ecs() {
        let err = MetricsReporter::builder().start().unwrap_err();
        assert!(
            matches!(&err, MetricsError::Endpoint(e) if e.is_not_on_ecs()),
            "{err}"
        );
    }
}

#[test]
fn a_payload_it_cannot_use_costs_one_warning_and_reporting_goes_on() {
    let logs = logs();
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    // A container the task does not list, named as CloudWatch refuses a dimension: not
    // ASCII, then blank.
    let mut unusable = Vec::new();
    for name in ["café ☕", "   "] {
        let mut stats = emulator.client().raw(Document::TaskStats).unwrap();
        let containers = stats.as_object_mut().unwrap();
        let mut stranger = containers.values().next().unwrap().clone();
        stranger["name"] = Value::from(name);
        stranger["id"] = Value::from("f".repeat(64));
        containers.insert("f".repeat(64), stranger);
        unusable.push(stats.to_string());
    }
    for body in &unusable {
        emulator.inject(Document::TaskStats, Fault::Body(body.clone()), 1);
    }
    let out = Capture::default();
    let reporter = start_reporter(&emulator, &out, Duration::from_millis(10));
    // Fargate: app + envoy + the task's record per sample, from the samples after.
    wait_for(|| emf_lines(&out).len() >= 6);
    reporter.stop();
    for line in emf_lines(&out) {
        assert_emf(&line);
    }
    let warnings: Vec<Value> = logs
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN" && l["message"].as_str().unwrap().contains("not written"))
        .collect();
    assert_eq!(warnings.len(), 2, "one per unusable sample: {warnings:#?}");
}

#[test]
fn dropping_while_the_endpoint_stalls_returns_at_once() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let meta = emulator.client().fetch_metadata().unwrap();
    emulator.inject(
        Document::TaskStats,
        Fault::StallBeforeHeaders(Duration::from_secs(40)),
        ALWAYS,
    );
    let reporter = MetricsReporter::builder()
        .with_client(emulator.client().with_deadline(Duration::from_secs(30)))
        .with_metadata(meta)
        .with_writer(std::io::sink)
        .with_interval(Duration::from_millis(1))
        .start()
        .unwrap();
    wait_for(|| emulator.requests(Document::TaskStats) >= 1);
    let counter = reporter.line_counter();
    // The request is stalled for 40 s: dropping must not wait for it (10 s bounds a hang).
    let (dropped, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        drop(reporter);
        dropped.send(started.elapsed()).unwrap();
    });
    let took = done
        .recv_timeout(Duration::from_secs(10))
        .expect("the reporter's drop waited on the stalled request");
    println!("dropped in {took:?} with a request stalled");
    // The last report, given up, is counted lost; nothing was written.
    let counts = counter.counts();
    assert_eq!((counts.written, counts.shutdown, counts.lost()), (0, 1, 1));
}

#[test]
fn the_first_sample_is_written_at_start() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let out = Capture::default();
    let reporter = start_reporter(&emulator, &out, Duration::from_secs(60));
    // An interval of a minute: lines within the 10 s bound are the sample taken at start.
    // Fargate: app, envoy and the task.
    wait_for(|| emf_lines(&out).len() >= 3);
    assert_eq!(emulator.requests(Document::TaskStats), 1);
    reporter.stop();
    let lines = emf_lines(&out);
    for line in &lines {
        assert_emf(line);
    }
    // And the last report, read as the reporter stopped.
    assert_eq!(lines.len(), 6);
    assert_eq!(emulator.requests(Document::TaskStats), 2);
}

#[test]
fn stopping_writes_a_last_report_and_nothing_after() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let out = Capture::default();
    let counter = {
        let reporter = start_reporter(&emulator, &out, Duration::from_secs(60));
        wait_for(|| emf_lines(&out).len() >= 3);
        reporter.line_counter()
    };
    let lines = emf_lines(&out);
    assert_eq!(lines.len(), 6, "the first sample, and the last at the drop");
    assert_eq!((counter.counts().written, counter.counts().lost()), (6, 0));
    // The last report has the first sample as its previous: a CPU figure for the task.
    let task_lines: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("ContainerName").is_none())
        .collect();
    assert_eq!(task_lines.len(), 2);
    assert!(
        task_lines[1].get("CpuUtilization").is_some(),
        "{:#}",
        task_lines[1]
    );
    let requests = emulator.requests(Document::TaskStats);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(emulator.requests(Document::TaskStats), requests);
    assert_eq!(emf_lines(&out).len(), 6);
}
