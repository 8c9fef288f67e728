//! `examples/axum.rs` as a service, over loopback: a few thousand requests over its routes
//! (5xx, panics, health checks, 404s), then SIGTERM. Request metrics are exact per (Route,
//! Method) in the interval written at shutdown, health checks and the background task are
//! not counted, `RUST_LOG=info` is enough, and every line of a request carries its id and,
//! when the ALB gave one, its trace. A `RUST_LOG` that turns off the request spans is said
//! at start, whatever it lets through.
#![cfg(all(feature = "axum", feature = "emulator", unix))]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

mod common;

use common::example;

/// The example, running.
struct Service {
    child: Child,
    /// What it writes on stdout, read as it comes (a full pipe would stall it), line by line.
    stdout: Arc<Mutex<Vec<String>>>,
    reader: std::thread::JoinHandle<()>,
    /// Where it listens.
    base: String,
}

/// The example, off ECS (on its emulator), on a port of its choosing.
fn start(rust_log: Option<&str>) -> Service {
    let mut command = Command::new(example("axum"));
    command
        .env_remove("ECS_CONTAINER_METADATA_URI_V4")
        .env_remove("ECS_CONTAINER_METADATA_URI")
        .env_remove("RUST_BACKTRACE")
        .env("PORT", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match rust_log {
        Some(filter) => command.env("RUST_LOG", filter),
        None => command.env_remove("RUST_LOG"),
    };
    let mut child = command.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    // Whatever it prints on stderr is drained, so that it never blocks.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let out = BufReader::new(child.stdout.take().unwrap());
    let stdout = Arc::new(Mutex::new(Vec::new()));
    let lines = Arc::clone(&stdout);
    let reader = std::thread::spawn(move || {
        for line in out.lines() {
            lines.lock().unwrap().push(line.unwrap());
        }
    });
    let mut service = Service {
        child,
        stdout,
        reader,
        base: String::new(),
    };
    service.wait_for("listening", 1);
    let listening = service
        .stdout
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["message"] == "listening")
        .unwrap();
    let address = listening["address"].as_str().unwrap();
    let port = address.rsplit(':').next().unwrap();
    service.base = format!("http://127.0.0.1:{port}");
    service
}

impl Service {
    /// Waits until `count` lines say `message` (10 s bound a hang, not a timing assertion).
    fn wait_for(&self, message: &str, count: usize) {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        let quoted = format!("\"message\":\"{message}\"");
        while self
            .stdout
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&quoted))
            .count()
            < count
        {
            assert!(
                std::time::Instant::now() < until,
                "never saw {count} × {message} in {:#?}",
                self.stdout.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// SIGTERM, as ECS stops a task; the JSON lines the child wrote, once it has exited.
fn stop(service: Service) -> Vec<Value> {
    let Service {
        mut child,
        stdout,
        reader,
        ..
    } = service;
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    reader.join().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let stdout = std::mem::take(&mut *stdout.lock().unwrap());
    stdout
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

/// `(Route, Method)` → (Requests, Errors), summed over the `OrdersService` lines.
fn request_metrics(lines: &[Value]) -> BTreeMap<(String, String), (u64, u64)> {
    common::request_counts(lines, Some("OrdersService"))
}

/// The request a client sends as its `n`th: route template, method, path, and whether it
/// carries an ALB trace header.
fn nth_request(n: u32) -> (&'static str, &'static str, String) {
    match n % 10 {
        0..=3 => ("/orders/{id}", "GET", format!("/orders/{}", n / 10)),
        4 => ("/orders", "POST", "/orders".to_owned()),
        5 | 6 => ("/payments/{id}", "GET", format!("/payments/{}", n / 10)),
        7 => ("/health", "GET", "/health".to_owned()),
        8 => ("unmatched", "GET", format!("/nowhere/{n}")),
        _ if n % 100 == 9 => ("/panic", "GET", "/panic".to_owned()),
        _ => ("/orders/{id}", "GET", format!("/orders/{}", n + 1)),
    }
}

fn trace_of(n: u32) -> Option<String> {
    (n % 3 == 0).then(|| format!("1-67891233-{n:024x}"))
}

#[test]
fn a_few_thousand_requests_are_counted_exactly_and_written_at_sigterm() {
    const CLIENTS: u32 = 4;
    const EACH: u32 = 750;
    let service = start(Some("info"));
    let base = service.base.clone();
    // (Route, Method) → (responses, 5xx), as the clients saw them.
    let seen: Vec<BTreeMap<(String, String), (u64, u64)>> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let base = &base;
                scope.spawn(move || {
                    let agent = agent();
                    let mut seen: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
                    for i in 0..EACH {
                        let n = client * EACH + i;
                        let (route, method, path) = nth_request(n);
                        let url = format!("{base}{path}");
                        let mut request = match method {
                            "POST" => agent.post(&url).send_empty(),
                            _ => {
                                let mut get = agent.get(&url);
                                if let Some(trace) = trace_of(n) {
                                    get = get.header(
                                        "X-Amzn-Trace-Id",
                                        format!("Root={trace};Sampled=1"),
                                    );
                                }
                                get.call()
                            }
                        }
                        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
                        let status = request.status().as_u16();
                        let _ = request.body_mut().read_to_string();
                        let entry = seen
                            .entry((route.to_owned(), method.to_owned()))
                            .or_default();
                        entry.0 += 1;
                        entry.1 += u64::from(status >= 500);
                    }
                    seen
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let lines = stop(service);
    let mut expected: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for client in seen {
        for (pair, (responses, errors)) in client {
            let entry = expected.entry(pair).or_default();
            entry.0 += responses;
            entry.1 += errors;
        }
    }
    let health = expected
        .remove(&("/health".to_owned(), "GET".to_owned()))
        .expect("health checks sent");
    assert_eq!(health.0, u64::from(CLIENTS * EACH / 10));
    let errors: u64 = expected.values().map(|(_, e)| e).sum();
    assert!(errors > 0);
    assert_eq!(request_metrics(&lines), expected);

    // One `request finished` line a request, health checks left out at INFO.
    let requests: u64 = expected.values().map(|(r, _)| r).sum();
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request finished")
        .collect();
    assert_eq!(finished.len() as u64, requests);
    // The background task's lines are there, and it is not a request.
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "abandoned carts swept")
    );
    // Every line of a request carries its id; a trace the ALB gave is on each of its lines.
    let mut lines_per_id: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for line in lines.iter().filter(|l| l.get("http.route").is_some()) {
        let id = line["request_id"]
            .as_str()
            .expect("request_id on every request line");
        lines_per_id.entry(id).or_default().push(line);
    }
    assert_eq!(lines_per_id.len() as u64, requests, "one id per request");
    let mut traced = 0;
    for request in lines_per_id.values() {
        let trace = &request[0]["xray_trace_id"];
        assert!(request.iter().all(|l| &l["xray_trace_id"] == trace));
        traced += u64::from(trace.is_string());
    }
    assert!(traced > 0);
    // A panic is one ERROR line, in its request; a 503 is one ERROR line.
    let panics = lines.iter().filter(|l| l["target"] == "panic").count() as u64;
    assert_eq!(panics, expected[&("/panic".to_owned(), "GET".to_owned())].0);
    let error_lines = lines.iter().filter(|l| l["level"] == "ERROR").count() as u64;
    assert_eq!(error_lines, errors);
    // The shutdown is said, then the last report of the container metrics is written.
    let said = lines
        .iter()
        .position(|l| l["signal"] == "SIGTERM")
        .expect("the signal line");
    let container_reports = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ECS/TaskMetrics")
        .filter(|(at, _)| *at > said)
        .count();
    assert!(container_reports >= 1);
}

#[test]
fn requests_in_flight_at_sigterm_finish_and_are_counted_with_their_held_lines() {
    let service = start(None);
    let base = service.base.clone();
    let in_flight: Vec<_> = (0..4)
        .map(|i| {
            let url = format!("{base}/slow{}", if i % 2 == 0 { "?fail" } else { "" });
            std::thread::spawn(move || agent().get(&url).call().unwrap().status().as_u16())
        })
        .collect();
    // The requests are in (their 300 ms have begun) when the signal comes.
    service.wait_for("calling a slow dependency", 4);
    let lines = stop(service);
    let statuses: Vec<u16> = in_flight.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 502).count(), 2);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 2);
    assert_eq!(
        request_metrics(&lines),
        [(("/slow".to_owned(), "GET".to_owned()), (4, 2))]
            .into_iter()
            .collect()
    );
    // The failing requests' held DEBUG lines were written; the others' were not.
    let held: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "waiting on a slow dependency")
        .collect();
    assert_eq!(held.len(), 2);
    for line in held {
        let id = &line["request_id"];
        let finished = lines
            .iter()
            .find(|l| l["message"] == "request finished" && &l["request_id"] == id)
            .unwrap();
        assert_eq!(finished["http.response.status_code"], 502);
    }
}

/// The WARN lines that say the filter turns off the request spans.
fn filter_warnings(lines: &[Value]) -> usize {
    lines
        .iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("turns off RequestLayer's request spans"))
        })
        .count()
}

#[test]
fn a_rust_log_that_turns_off_request_spans_is_said_at_start() {
    // The service's own target only, as `RUST_LOG=my_service=info` gives: every other
    // target is off, the crate's WARNs included.
    let service = start(Some("axum=info"));
    let response = agent()
        .get(format!("{}/orders/7", service.base))
        .call()
        .unwrap();
    assert_eq!(response.status(), 200);
    let lines = stop(service);
    assert_eq!(filter_warnings(&lines), 1, "{lines:#?}");
    assert!(lines.iter().all(|l| l["message"] != "request finished"));
    // With the spans on, nothing is said: by default, or by a directive that names the
    // span's fields.
    for rust_log in [None, Some("axum=info,[request{http.route}]=info")] {
        let service = start(rust_log);
        assert_eq!(filter_warnings(&stop(service)), 0, "{rust_log:?}");
    }
}
