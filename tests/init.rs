//! `init` and `try_init` install a global subscriber, so each case runs in a child process:
//! this file re-runs its own `child` test with a case name and an endpoint, and reads the
//! JSON lines the child wrote on stdout.

mod common;

use common::by_message;
use serde_json::Value;
use tracing_aws_ecs::emulator::{ALWAYS, Emulator, Fault, Route, Scenario};
use tracing_aws_ecs::endpoint::Document;

const CASE: &str = "TRACING_AWS_ECS_INIT_CASE";

/// Runs the child with `case`, the endpoint variable (if any) and extra variables; returns its
/// JSON lines.
fn run_child(case: &str, endpoint: Option<(&str, String)>, env: &[(&str, &str)]) -> Vec<Value> {
    let mut all: Vec<(&str, &str)> = env.to_vec();
    if let Some((var, url)) = &endpoint {
        all.push((var, url));
    }
    common::run_child(CASE, case, &all).0
}

/// The child half: what a service's `main` does.
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE) else {
        return; // Only meaningful when started by the tests below.
    };
    match case.as_str() {
        "tokio" => tokio::runtime::Runtime::new().unwrap().block_on(async {
            let _guard = tracing_aws_ecs::init();
            tokio::spawn(async { tracing::info!(task = 1, "from a task") })
                .await
                .unwrap();
            tracing::info!("from main");
        }),
        "metrics" => {
            let _guard = tracing_aws_ecs::init();
            let metrics = tracing_aws_ecs::MetricsReporter::builder()
                .with_interval(std::time::Duration::from_millis(20))
                .with_namespace("Init/Test")
                .start()
                .unwrap();
            for i in 0..200 {
                tracing::info!(i, "working");
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            drop(metrics);
            tracing::info!("stopped");
        }
        "logger" => {
            // A `log` logger installed before: `try_init` keeps its word.
            struct Quiet;
            impl log::Log for Quiet {
                fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                    true
                }
                fn log(&self, _: &log::Record<'_>) {}
                fn flush(&self) {}
            }
            log::set_logger(&Quiet).unwrap();
            let installed = tracing_aws_ecs::try_init();
            tracing::info!(ok = installed.is_ok(), "try_init");
            log::info!("to the other logger");
        }
        "buffered" => {
            let _guard = tracing_aws_ecs::builder()
                .with_buffering(tracing_aws_ecs::Buffering::default())
                .init();
            tracing::info!("started");
            tracing::debug!("outside any request");
            // Held, then written as `main` returns: the guard flushes the request in flight.
            let request = tracing::info_span!("request", id = 1);
            request.in_scope(|| tracing::debug!("held in a request"));
            std::mem::forget(request);
        }
        "own-requests" => {
            // RUST_LOG=trace: ureq logs every request it makes, through `log`.
            let _guard = tracing_aws_ecs::builder()
                .with_container_metrics(
                    tracing_aws_ecs::MetricsReporter::builder()
                        .with_interval(std::time::Duration::from_millis(20)),
                )
                .init();
            std::thread::sleep(std::time::Duration::from_millis(200));
            log::debug!(target: "ureq", "the service's own ureq line");
            tracing::info!("done");
        }
        "twice" => {
            let _guard = tracing_aws_ecs::try_init().unwrap();
            let second = tracing_aws_ecs::try_init().unwrap_err();
            tracing::info!(error = %second, "second try_init");
            let panicked = std::panic::catch_unwind(|| tracing_aws_ecs::init()).is_err();
            tracing::info!(panicked, "second init");
        }
        _ => {
            let _guard = tracing_aws_ecs::init();
            let span = tracing::info_span!("request", request_id = "r-9");
            let _entered = span.enter();
            tracing::info!(order_id = 42, "in a span");
            std::thread::spawn(|| tracing::info!("from a thread"))
                .join()
                .unwrap();
            log::info!(target: "legacy", "from the log crate");
            tracing::debug!("at debug");
        }
    }
}

/// The awslogs delivery mode, as the task definition sets it, is said at DEBUG at start-up.
#[test]
fn the_awslogs_delivery_mode_is_said_at_debug() {
    let note = |emulator: &Emulator| -> String {
        let lines = run_child(
            "service",
            Some(emulator.env_var()),
            &[("RUST_LOG", "debug")],
        );
        lines
            .iter()
            .filter(|l| l["level"] == "DEBUG" && l["target"] == "tracing_aws_ecs")
            .filter_map(|l| l["message"].as_str())
            .find(|m| m.contains("awslogs"))
            .unwrap_or_else(|| panic!("no awslogs note in {lines:#?}"))
            .to_owned()
    };
    // The scenario's task definition sets no mode.
    let default = Emulator::start(Scenario::Fargate).unwrap();
    assert!(note(&default).contains("not set in the task definition"));
    let mut container = default.client().raw(Document::Container).unwrap();
    container["LogOptions"]["mode"] = "non-blocking".into();
    container["LogOptions"]["max-buffer-size"] = "25m".into();
    let non_blocking = Emulator::builder()
        .scenario(Scenario::Fargate)
        .container(container)
        .start()
        .unwrap();
    let text = note(&non_blocking);
    assert!(
        text.contains("non-blocking mode (max-buffer-size 25m)") && text.contains("drops lines"),
        "{text}"
    );
}

/// Buffering needs DEBUG lines; a filter that lets none through is said once, at start-up.
#[test]
fn buffering_under_a_filter_that_lets_no_debug_through_warns_once() {
    let lines = run_child("buffered", None, &[("RUST_LOG", "info")]);
    let warnings: Vec<&Value> = lines
        .iter()
        .filter(|l| l["level"] == "WARN" && l["target"] == "tracing_aws_ecs")
        .collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    let text = warnings[0]["message"].as_str().unwrap();
    assert!(
        text.contains("RUST_LOG") && text.contains("debug"),
        "{text}"
    );
    // With the level buffering needs, or RUST_LOG unset, nothing to say.
    for env in [&[("RUST_LOG", "info,tracing_aws_ecs=debug")][..], &[]] {
        let lines = run_child("buffered", None, env);
        assert!(
            lines.iter().all(|l| l["level"] != "WARN"),
            "{env:?}: {lines:#?}"
        );
    }
}

/// With buffering, `RUST_LOG` set by hand decides the DEBUG lines outside requests; unset,
/// the level buffering raises writes none of them. Either way, a request still open as
/// `main` returns has its held lines written by the guard.
#[test]
fn rust_log_set_by_hand_decides_the_lines_outside_requests() {
    let messages = |env: &[(&str, &str)]| -> Vec<String> {
        run_child("buffered", None, env)
            .iter()
            .filter(|l| l["target"] == "init")
            .map(|l| l["message"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        messages(&[("RUST_LOG", "debug")]),
        ["started", "outside any request", "held in a request"]
    );
    assert_eq!(messages(&[]), ["started", "held in a request"]);
    assert_eq!(messages(&[("RUST_LOG", "info")]), ["started"]);
}

/// The crate's own requests (start-up, container metrics) write none of their HTTP
/// client's lines, even at TRACE; the service's own lines of that target are kept.
#[test]
fn the_crates_own_requests_leave_no_lines_of_their_client() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let lines = run_child(
        "own-requests",
        Some(emulator.env_var()),
        &[("RUST_LOG", "trace")],
    );
    assert!(emulator.requests(Document::TaskStats) >= 3);
    let foreign: Vec<&Value> = lines
        .iter()
        .filter(|l| l.get("_aws").is_none())
        .filter(|l| {
            let target = l["target"].as_str().unwrap();
            !target.starts_with("tracing_aws_ecs") && target != "init"
        })
        .collect();
    assert_eq!(foreign.len(), 1, "{foreign:#?}");
    assert_eq!(foreign[0]["message"], "the service's own ureq line");
    assert!(lines.iter().any(|l| l["message"] == "done"));
}

#[test]
fn on_ecs_every_line_is_enriched() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let lines = run_child("service", Some(emulator.env_var()), &[]);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    for line in &lines {
        assert_eq!(line["ecs"]["cluster"], "prod-web", "{line}");
        assert_eq!(line["ecs"]["container_name"], "app");
    }
    assert_eq!(by_message(&lines, "in a span")["request_id"], "r-9");
    // A spawned thread does not inherit the span, but keeps the identity.
    assert!(
        by_message(&lines, "from a thread")
            .get("request_id")
            .is_none()
    );
    assert_eq!(by_message(&lines, "from the log crate")["target"], "legacy");
    assert_eq!(emulator.requests(Document::Container), 1);
    assert_eq!(emulator.requests(Document::Task), 1);
}

#[test]
fn rust_log_is_honoured() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let lines = run_child(
        "service",
        Some(emulator.env_var()),
        &[("RUST_LOG", "debug")],
    );
    assert_eq!(by_message(&lines, "at debug")["level"], "DEBUG");
}

#[test]
fn off_ecs_lines_are_plain_and_the_reason_is_at_debug() {
    let lines = run_child("service", None, &[]);
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l.get("ecs").is_none()));

    let lines = run_child("service", None, &[("RUST_LOG", "debug")]);
    let notes: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "tracing_aws_ecs")
        .collect();
    assert_eq!(notes.len(), 1, "{lines:#?}");
    assert_eq!(notes[0]["level"], "DEBUG");
    assert!(
        notes[0]["message"]
            .as_str()
            .unwrap()
            .contains("not running on ECS")
    );
}

#[test]
fn failed_fetch_warns_once_and_logging_goes_on() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(Document::Container, Fault::Status(500), ALWAYS);
    let lines = run_child("service", Some(emulator.env_var()), &[]);
    let warning = &lines[0];
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["target"], "tracing_aws_ecs");
    let message = warning["message"].as_str().unwrap();
    assert!(
        message.contains("500") && message.contains("emulated fault"),
        "{message}"
    );
    assert_eq!(lines.len(), 4);
    assert!(lines.iter().all(|l| l.get("ecs").is_none()));
}

#[test]
fn stalled_endpoint_is_bounded_by_the_deadline() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(
        Route::Any,
        Fault::StallBeforeHeaders(std::time::Duration::from_secs(60)),
        ALWAYS,
    );
    let lines = run_child("service", Some(emulator.env_var()), &[]);
    assert!(
        lines[0]["message"].as_str().unwrap().contains("timed out"),
        "{}",
        lines[0]
    );
    assert_eq!(lines.len(), 4);
}

#[test]
fn failed_task_warns_and_lines_carry_the_container_identity() {
    let emulator = Emulator::start(Scenario::Ec2).unwrap();
    emulator.inject(Document::Task, Fault::Status(404), ALWAYS);
    let lines = run_child("service", Some(emulator.env_var()), &[]);
    assert_eq!(lines[0]["level"], "WARN");
    assert!(lines[0]["message"].as_str().unwrap().contains("/task"));
    let line = by_message(&lines, "in a span");
    assert_eq!(line["ecs"]["cluster"], "default");
    assert_eq!(line["ecs"]["container_name"], "worker");
}

#[test]
fn an_existing_log_logger_costs_one_warning_not_a_failure() {
    let lines = run_child("logger", None, &[]);
    assert_eq!(by_message(&lines, "try_init")["ok"], true);
    let warnings: Vec<&Value> = lines.iter().filter(|l| l["level"] == "WARN").collect();
    assert_eq!(warnings.len(), 1, "{lines:#?}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("`log` records go to the logger already installed")
    );
    // The status line still comes (DEBUG, filtered at INFO) and nothing else: the `log`
    // record went to the other logger.
    assert_eq!(lines.len(), 2, "{lines:#?}");
}

#[test]
fn second_init_is_an_error_and_init_panics() {
    let lines = run_child("twice", None, &[]);
    assert!(
        by_message(&lines, "second try_init")["error"]
            .as_str()
            .unwrap()
            .contains("cannot install")
    );
    assert_eq!(by_message(&lines, "second init")["panicked"], true);
    // The panic points at the caller's line, not the crate's.
    let panic = lines
        .iter()
        .find(|l| l["target"] == "panic")
        .expect("the panic's line");
    let location = panic["location"].as_str().unwrap();
    assert!(location.starts_with("tests/init.rs:"), "{location}");
}

#[test]
fn works_inside_a_tokio_runtime() {
    let emulator = Emulator::start(Scenario::ManagedInstances).unwrap();
    let lines = run_child("tokio", Some(emulator.env_var()), &[]);
    assert_eq!(lines.len(), 2);
    assert_eq!(
        by_message(&lines, "from a task")["ecs"]["cluster"],
        "ml-serving"
    );
}

#[test]
fn malformed_v4_next_to_v3_warns_and_uses_v3() {
    let emulator = Emulator::start(Scenario::Ec2).unwrap();
    let v3 = emulator.url(tracing_aws_ecs::endpoint::ApiVersion::V3);
    let lines = run_child(
        "service",
        Some(("ECS_CONTAINER_METADATA_URI", v3)),
        &[(
            "ECS_CONTAINER_METADATA_URI_V4",
            "169.254.170.2/v4/no-scheme",
        )],
    );
    assert_eq!(lines[0]["level"], "WARN");
    let message = lines[0]["message"].as_str().unwrap();
    assert!(
        message.contains("ECS_CONTAINER_METADATA_URI_V4 is malformed")
            && message.contains("using ECS_CONTAINER_METADATA_URI"),
        "{message}"
    );
    assert_eq!(by_message(&lines, "in a span")["ecs"]["cluster"], "default");
}

#[test]
fn builder_reports_metrics_on_the_same_writer() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let lines = run_child("metrics", Some(emulator.env_var()), &[]);
    let logs = lines.iter().filter(|l| l["message"] == "working").count();
    assert_eq!(logs, 200);
    let metrics: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_some()).collect();
    assert!(
        !metrics.is_empty(),
        "some EMF lines in {} lines",
        lines.len()
    );
    assert!(
        metrics
            .iter()
            .all(|l| l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Init/Test")
    );
    assert!(metrics.iter().any(|l| l["ContainerName"] == "app"));
    // Nothing after the stop.
    let stopped = lines
        .iter()
        .position(|l| l["message"] == "stopped")
        .unwrap();
    assert!(lines[stopped..].iter().all(|l| l.get("_aws").is_none()));
}

/// How a row's lines must look.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Lines {
    /// Every line has the ECS fields, from container and task.
    Enriched,
    /// Every line has the ECS fields the container payload gives (no task).
    Partial,
    /// No line has ECS fields.
    Plain,
}

/// The fault matrix of TESTING.md: every endpoint fault × what `init` does. Each row runs
/// the service child against the emulator with the fault, with the default 2 s deadline, and
/// checks the lines, the one note, and that `init` returned within the deadline plus a wide
/// margin (process start-up included).
/// One row of the matrix: a fault on a route for some requests (or an environment of its
/// own), and what must follow.
struct Row {
    name: &'static str,
    fault: Option<(Route, Fault, usize)>,
    env: fn(&Emulator) -> Vec<(&'static str, String)>,
    lines: Lines,
    note: Option<&'static str>,
}

fn v4(e: &Emulator) -> Vec<(&'static str, String)> {
    vec![("ECS_CONTAINER_METADATA_URI_V4", e.base_url())]
}

fn row(
    name: &'static str,
    fault: Option<(Route, Fault, usize)>,
    lines: Lines,
    note: Option<&'static str>,
) -> Row {
    Row {
        name,
        fault,
        env: v4,
        lines,
        note,
    }
}

/// The fault matrix of TESTING.md: every endpoint fault × what `init` does. Each row runs
/// the service child against the emulator with the fault, with the default 2 s deadline, and
/// checks the lines, the one note, and that `init` returned within the deadline plus a wide
/// margin (process start-up included).
#[test]
fn fault_matrix() {
    let stall = std::time::Duration::from_secs(60);
    let rows = [
        Row {
            name: "refused",
            fault: None,
            env: |_| {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                vec![(
                    "ECS_CONTAINER_METADATA_URI_V4",
                    format!("http://127.0.0.1:{port}/v4/x"),
                )]
            },
            lines: Lines::Plain,
            note: Some("Connection refused"),
        },
        row(
            "stall before headers",
            Some((Route::Any, Fault::StallBeforeHeaders(stall), ALWAYS)),
            Lines::Plain,
            Some("timed out"),
        ),
        row(
            "stall mid-body",
            Some((Route::Any, Fault::StallMidBody(stall), ALWAYS)),
            Lines::Plain,
            Some("timed out"),
        ),
        row(
            "truncated body",
            Some((Route::Any, Fault::TruncatedBody, ALWAYS)),
            Lines::Plain,
            Some("GET http://"),
        ),
        row(
            "non-JSON body",
            Some((Route::Document(Document::Container), Fault::NotJson, ALWAYS)),
            Lines::Plain,
            Some("not JSON"),
        ),
        row(
            "wrong types",
            Some((
                Route::Document(Document::Container),
                Fault::Body(r#"{"Name": 7, "Image": ["x"], "Labels": "y"}"#.into()),
                ALWAYS,
            )),
            Lines::Enriched,
            None,
        ),
        row(
            "32 MiB body",
            Some((
                Route::Document(Document::Container),
                Fault::Oversized(32 << 20),
                ALWAYS,
            )),
            Lines::Plain,
            Some("1048576-byte limit"),
        ),
        row(
            "404",
            Some((
                Route::Document(Document::Container),
                Fault::Status(404),
                ALWAYS,
            )),
            Lines::Plain,
            Some("404"),
        ),
        row(
            "500 then success",
            Some((Route::Any, Fault::Status(500), 2)),
            Lines::Enriched,
            None,
        ),
        row(
            "1.5 s per answer (under the 2 s deadline)",
            Some((
                Route::Any,
                Fault::Delay(std::time::Duration::from_millis(1500)),
                ALWAYS,
            )),
            Lines::Enriched,
            None,
        ),
        row(
            "429 then success",
            Some((Route::Any, Fault::Status(429), 1)),
            Lines::Enriched,
            None,
        ),
        row(
            "/task failing, container answering",
            Some((Route::Document(Document::Task), Fault::Status(500), ALWAYS)),
            Lines::Partial,
            Some("task metadata unavailable"),
        ),
        Row {
            name: "v4 malformed, v3 valid",
            fault: None,
            env: |e| {
                vec![
                    ("ECS_CONTAINER_METADATA_URI_V4", "169.254.170.2/v4/x".into()),
                    (
                        "ECS_CONTAINER_METADATA_URI",
                        e.url(tracing_aws_ecs::endpoint::ApiVersion::V3),
                    ),
                ]
            },
            lines: Lines::Enriched,
            note: Some("is malformed"),
        },
        Row {
            name: "HTTP_PROXY at a dead port",
            fault: None,
            env: |e| {
                let dead = std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap();
                vec![
                    ("ECS_CONTAINER_METADATA_URI_V4", e.base_url()),
                    ("HTTP_PROXY", format!("http://{dead}")),
                    ("http_proxy", format!("http://{dead}")),
                ]
            },
            lines: Lines::Enriched,
            note: None,
        },
    ];

    println!("| fault | lines | note | child run |");
    for row in rows {
        let name = row.name;
        let emulator = Emulator::start(Scenario::Fargate).unwrap();
        if let Some((route, fault, times)) = row.fault {
            emulator.inject(route, fault, times);
        }
        let env = (row.env)(&emulator);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let started = std::time::Instant::now();
        let lines = run_child("service", None, &env);
        let took = started.elapsed();
        // The deadline is 2 s; a child process starting and a loaded machine get 8 s more.
        assert!(
            took < std::time::Duration::from_secs(10),
            "{name}: {took:?}"
        );

        let service: Vec<&Value> = lines
            .iter()
            .filter(|l| l["target"] != "tracing_aws_ecs")
            .collect();
        assert_eq!(service.len(), 3, "{name}: {lines:#?}");
        for line in &service {
            match row.lines {
                Lines::Plain => assert!(line.get("ecs").is_none(), "{name}: {line}"),
                Lines::Enriched | Lines::Partial => {
                    assert!(line["ecs"]["cluster"].is_string(), "{name}: {line}")
                }
            }
        }
        let notes: Vec<&Value> = lines
            .iter()
            .filter(|l| l["target"] == "tracing_aws_ecs")
            .collect();
        match row.note {
            Some(text) => {
                assert_eq!(notes.len(), 1, "{name}: one note, not {notes:#?}");
                assert_eq!(notes[0]["level"], "WARN", "{name}");
                assert!(
                    notes[0]["message"].as_str().unwrap().contains(text),
                    "{name}: {}",
                    notes[0]["message"]
                );
            }
            None => assert!(notes.is_empty(), "{name}: {notes:#?}"),
        }
        let note = notes.first().map_or("none".into(), |n| {
            format!("WARN: {}", n["message"].as_str().unwrap())
        });
        println!(
            "| {name} | {:?} | {note} | {} ms |",
            row.lines,
            took.as_millis()
        );
    }
}
