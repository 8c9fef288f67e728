//! Request metrics from spans: exact counts, errors of both kinds, latency values and
//! dimensions per (Route, Method), the cap on pairs, and the interval timer. Every line is
//! checked against the EMF rules.
//!
//! The subscriber is global, as `init()` installs it (the WARN about too many routes is
//! logged while a span closes, which `tracing` drops under a scoped subscriber); the tests
//! take turns.

mod common;

use std::collections::BTreeMap;
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use common::{Capture, assert_emf, fargate_metadata};
use serde_json::Value;
use tracing::{error, info, info_span};
use tracing_aws_ecs::RequestMetrics;
use tracing_subscriber::prelude::*;

/// A layer's builder for the Fargate task, writing into `out`.
fn writing_to(out: &Capture) -> tracing_aws_ecs::Builder<Capture> {
    tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
}

/// Request metrics in `namespace`, over an interval of an hour: lines are written by
/// `flush()`, or when the layer goes.
fn hourly(namespace: &str) -> RequestMetrics {
    RequestMetrics::new(namespace).with_interval(Duration::from_secs(3600))
}

/// The global subscriber with request metrics, writing into the returned capture, empty.
fn output() -> (MutexGuard<'static, ()>, &'static Capture) {
    let (serial, output) = common::global_capture(|output| {
        let layer = writing_to(output)
            .with_request_metrics(hourly("Test/Requests"))
            .layer();
        tracing_subscriber::registry().with(layer).init();
    });
    // Whatever an earlier test left in the interval goes first.
    tracing_aws_ecs::flush();
    output.clear();
    (serial, output)
}

/// The EMF lines of the requests written (the line counts' lines left out), each EMF line
/// checked against the EMF rules.
fn emf_lines(out: &Capture) -> Vec<Value> {
    let lines: Vec<Value> = out
        .lines()
        .into_iter()
        .filter(|l| l.get("_aws").is_some())
        .collect();
    for line in &lines {
        assert_emf(line);
    }
    lines
        .into_iter()
        .filter(|l| l.get("Route").is_some())
        .collect()
}

/// Per (Route, Method): requests, errors, latency values, summed over the lines.
fn totals(lines: &[Value]) -> BTreeMap<(String, String), (u64, u64, Vec<f64>)> {
    let mut totals: BTreeMap<(String, String), (u64, u64, Vec<f64>)> = BTreeMap::new();
    for line in lines {
        let key = (
            line["Route"].as_str().unwrap().to_owned(),
            line["Method"].as_str().unwrap().to_owned(),
        );
        let entry = totals.entry(key).or_default();
        entry.0 += line["Requests"].as_u64().unwrap_or(0);
        entry.1 += line["Errors"].as_u64().unwrap_or(0);
        if let Some(values) = line["Latency"].as_array() {
            entry.2.extend(values.iter().map(|v| v.as_f64().unwrap()));
        }
    }
    totals
}

#[test]
fn a_thousand_requests_over_three_routes() {
    let (_serial, out) = output();
    let routes = [
        ("/orders", "GET"),
        ("/orders/{id}", "POST"),
        ("/slow", "GET"),
    ];
    for i in 0..1_000u32 {
        let (route, method) = routes[i as usize % 3];
        // 1 % fail: half by a 5xx status, half by an ERROR event with a 200.
        let status = if i % 200 == 0 { 500 } else { 200 };
        let request = info_span!("request", route, method, status = tracing::field::Empty);
        request.in_scope(|| {
            info!(i, "handled");
            if i % 200 == 100 {
                error!("failed after all");
            }
            if route == "/slow" && i < 30 {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        request.record("status", status);
    }
    tracing_aws_ecs::flush();
    let lines = emf_lines(out);
    let totals = totals(&lines);
    let expected: BTreeMap<(String, String), (u64, u64)> = [
        (("/orders", "GET"), (334, 4)),
        (("/orders/{id}", "POST"), (333, 3)),
        (("/slow", "GET"), (333, 3)),
    ]
    .into_iter()
    .map(|((r, m), c)| ((r.to_owned(), m.to_owned()), c))
    .collect();
    let got: BTreeMap<(String, String), (u64, u64)> = totals
        .iter()
        .map(|(k, (requests, errors, _))| (k.clone(), (*requests, *errors)))
        .collect();
    assert_eq!(got, expected);
    let errors: u64 = got.values().map(|(_, e)| e).sum();
    assert_eq!(errors, 10, "1 % of 1,000, both kinds");
    // One latency value per request; the slow ones at least as slow as their sleep.
    for ((route, _), (requests, _, latencies)) in &totals {
        assert_eq!(latencies.len() as u64, *requests, "{route}");
        assert!(latencies.iter().all(|v| v.is_finite() && *v >= 0.0));
    }
    let slow = &totals[&("/slow".to_owned(), "GET".to_owned())].2;
    assert!(slow.iter().filter(|v| **v >= 5.0).count() >= 10, "{slow:?}");
    // At most 100 values a line: 334 requests take four lines, the counts on the first.
    let orders: Vec<&Value> = lines.iter().filter(|l| l["Route"] == "/orders").collect();
    assert_eq!(orders.len(), 4);
    assert_eq!(
        orders
            .iter()
            .filter(|l| l.get("Requests").is_some())
            .count(),
        1
    );
    // The dimensions, in the two sets Container Insights uses.
    let meta = fargate_metadata();
    let service = meta.service_name().or_else(|| meta.family()).unwrap();
    for line in &lines {
        assert_eq!(line["ClusterName"], meta.cluster_name().unwrap());
        assert_eq!(line["ServiceName"], service);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "Test/Requests"
        );
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([
                ["ClusterName", "ServiceName"],
                ["ClusterName", "ServiceName", "Route", "Method"]
            ])
        );
    }
}

#[test]
fn three_hundred_raw_paths_are_held_to_the_cap() {
    let (_serial, out) = output();
    for i in 0..300u32 {
        let path = format!("/orders/{i}");
        let request = info_span!(
            "request",
            route = path.as_str(),
            method = "GET",
            status = 200
        );
        request.in_scope(|| info!("served"));
    }
    tracing_aws_ecs::flush();
    let lines = emf_lines(out);
    let totals = totals(&lines);
    assert_eq!(totals.len(), 101, "100 pairs and `other`");
    assert_eq!(totals[&("other".to_owned(), "other".to_owned())].0, 200);
    let all: u64 = totals.values().map(|(r, _, _)| r).sum();
    assert_eq!(all, 300, "every request counted");
    let warnings: Vec<Value> = out
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN" && l["message"].as_str().unwrap().contains("other"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
}

#[test]
fn the_interval_ends_by_itself() {
    // Under the lock all the same: a scoped subscriber while another test's request closes
    // would make `tracing` drop that test's WARN.
    let (_serial, _) = output();
    let out = Capture::default();
    let layer = writing_to(&out)
        .with_request_metrics(
            RequestMetrics::new("Test/Timer").with_interval(Duration::from_millis(100)),
        )
        .layer();
    let subscriber = tracing_subscriber::registry().with(layer);
    let _guard = tracing::subscriber::set_default(subscriber);
    info_span!("request", route = "/tick", method = "GET").in_scope(|| info!("tick"));
    // No request comes in after it, and no flush: the timer writes the interval (10 s bound
    // a hang, not a timing assertion).
    let until = Instant::now() + Duration::from_secs(10);
    while out.text().lines().all(|l| !l.contains("Test/Timer")) {
        assert!(Instant::now() < until, "the interval was never written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = emf_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["Route"], "/tick");
    assert_eq!(lines[0]["Requests"], 1);
}

#[test]
fn a_second_layer_with_metrics_counts_behind_one_without() {
    // Under the lock: a scoped subscriber must not overlap another test's requests.
    let (_serial, _) = output();
    let (plain, counted) = (Capture::default(), Capture::default());
    let subscriber = tracing_subscriber::registry()
        .with(writing_to(&plain).layer())
        .with(
            writing_to(&counted)
                .with_request_metrics(hourly("Test/Second"))
                .layer(),
        );
    tracing::subscriber::with_default(subscriber, || {
        info_span!("request", route = "/second", method = "GET").in_scope(|| info!("served"));
    });
    // The layers are gone with the subscriber: what they counted was written then.
    let lines = emf_lines(&counted);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["Route"], "/second");
    assert!(emf_lines(&plain).is_empty());
}

#[test]
fn the_pairs_of_the_last_interval_give_their_places_up() {
    let (_serial, out) = output();
    let request = |route: &str| {
        info_span!("request", route, method = "GET").in_scope(|| info!("served"));
    };
    // An interval of 100 pairs, then one of 100 other pairs: none of them is `other`.
    for i in 0..100 {
        request(&format!("/first/{i}"));
    }
    tracing_aws_ecs::flush();
    for i in 0..100 {
        request(&format!("/second/{i}"));
    }
    tracing_aws_ecs::flush();
    let totals = totals(&emf_lines(out));
    assert_eq!(totals.len(), 200, "{:?}", totals.keys().collect::<Vec<_>>());
    assert!(totals.keys().all(|(route, _)| route != "other"));
}

#[test]
fn routes_are_read_as_written_whatever_their_characters() {
    let (_serial, out) = output();
    for _ in 0..2 {
        // OpenTelemetry's names, recorded after the span was made.
        let request = info_span!(
            "request",
            http.route = tracing::field::Empty,
            http.request.method = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        );
        request.record("http.route", r#"/a"b\c"#);
        request.record("http.request.method", "PUT");
        request.record("http.response.status_code", 503u16);
        request.in_scope(|| info!("served"));
        info_span!("request", route = "/prix €", method = "GET").in_scope(|| info!("served"));
        // axum's name for the route template.
        info_span!("http_request", matched_path = "ping \"x\"", method = "GET")
            .in_scope(|| info!("served"));
        info_span!("request", route = "/prix \u{2028}", method = "GET")
            .in_scope(|| info!("served"));
    }
    tracing_aws_ecs::flush();
    let totals = totals(&emf_lines(out));
    let pair = |route: &str, method: &str| (route.to_owned(), method.to_owned());
    assert_eq!(
        totals.keys().cloned().collect::<Vec<_>>(),
        [
            pair(r#"/a"b\c"#, "PUT"),
            pair("/prix ?", "GET"),
            pair("ping \"x\"", "GET"),
        ],
        "each route is one pair, its text with other characters than ASCII as `?`"
    );
    assert_eq!(totals[&pair(r#"/a"b\c"#, "PUT")].0, 2);
    assert_eq!(totals[&pair(r#"/a"b\c"#, "PUT")].1, 2, "a 503 is an error");
    assert_eq!(totals[&pair("ping \"x\"", "GET")].0, 2);
    // `€` and U+2028 both become `?`: two routes, one dimension value, one line each.
    assert_eq!(totals[&pair("/prix ?", "GET")].0, 4);
}

#[test]
fn requests_on_many_threads_are_each_counted_once_while_intervals_end() {
    let (_serial, out) = output();
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Intervals end again and again while requests close.
        scope.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                tracing_aws_ecs::flush();
                std::thread::yield_now();
            }
        });
        let workers: Vec<_> = (0..8)
            .map(|t| {
                scope.spawn(move || {
                    for i in 0..250u32 {
                        let route = ["/a", "/b", "/c"][(i % 3) as usize];
                        let status = if (t + i) % 50 == 0 { 503 } else { 200 };
                        info_span!("request", route, method = "GET", status)
                            .in_scope(|| info!(i, "handled"));
                    }
                })
            })
            .collect();
        // A request spread over threads: made here, its ERROR logged on a second thread
        // under a child span, closed on a third.
        for i in 0..50u32 {
            let request = info_span!("request", route = "/spread", method = "POST", status = 200);
            let parent = request.clone();
            std::thread::spawn(move || {
                info_span!(parent: &parent, "work").in_scope(|| {
                    if i % 10 == 0 {
                        error!("the upstream failed");
                    }
                });
            })
            .join()
            .unwrap();
            std::thread::spawn(move || drop(request)).join().unwrap();
        }
        for worker in workers {
            worker.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    tracing_aws_ecs::flush();
    let totals = totals(&emf_lines(out));
    let counts: BTreeMap<&str, (u64, u64, usize)> = totals
        .iter()
        .map(|((route, _), (requests, errors, latencies))| {
            (route.as_str(), (*requests, *errors, latencies.len()))
        })
        .collect();
    // What the workers sent: 2,000 requests over three routes, a 503 where (t + i) % 50 == 0.
    let mut expected: BTreeMap<&str, (u64, u64, usize)> = BTreeMap::new();
    for t in 0..8u32 {
        for i in 0..250u32 {
            let entry = expected
                .entry(["/a", "/b", "/c"][(i % 3) as usize])
                .or_default();
            entry.0 += 1;
            entry.1 += u64::from((t + i) % 50 == 0);
            entry.2 += 1;
        }
    }
    expected.insert("/spread", (50, 5, 50));
    assert_eq!(counts, expected);
}

#[test]
fn two_layers_with_metrics_each_count_the_request() {
    // Under the lock: a scoped subscriber must not overlap another test's requests.
    let (_serial, _) = output();
    let (first, second) = (Capture::default(), Capture::default());
    let subscriber = tracing_subscriber::registry()
        .with(
            writing_to(&first)
                .with_request_metrics(hourly("Test/First"))
                .layer(),
        )
        .with(
            writing_to(&second)
                .with_request_metrics(hourly("Test/Second"))
                .layer(),
        );
    tracing::subscriber::with_default(subscriber, || {
        info_span!("request", route = "/both", method = "GET").in_scope(|| info!("served"));
    });
    for out in [&first, &second] {
        let lines = emf_lines(out);
        assert_eq!(lines.len(), 1, "{lines:#?}");
        assert_eq!(lines[0]["Route"], "/both");
        assert_eq!(lines[0]["Requests"], 1);
    }
}

#[test]
fn a_request_still_open_when_the_subscriber_goes_is_not_counted() {
    // Under the lock: a scoped subscriber must not overlap another test's requests.
    let (_serial, _) = output();
    let out = Capture::default();
    let layer = writing_to(&out)
        .with_request_metrics(hourly("Test/Cut"))
        .layer();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    tracing::dispatcher::with_default(&dispatch, || {
        info_span!("request", route = "/done", method = "GET").in_scope(|| info!("served"));
        let cut = info_span!("request", route = "/cut", method = "GET");
        // A reference never given back: the span never closes, and goes with the registry.
        dispatch.clone_span(&cut.id().expect("enabled"));
    });
    drop(dispatch);
    let lines = emf_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["Route"], "/done");
}

#[test]
fn root_spans_without_a_route_are_not_requests_and_a_look_alike_warns_once() {
    let (_serial, out) = output();
    for _ in 0..3 {
        // A background job.
        info_span!("cart_sweep", swept = 3).in_scope(|| info!("swept"));
        // tower-http's default span: a method and a uri, no route.
        info_span!(
            "request",
            method = "GET",
            uri = "/orders/7",
            version = "HTTP/1.1"
        )
        .in_scope(|| info!("served"));
    }
    info_span!("request", http.route = "/orders/{id}", method = "GET").in_scope(|| {});
    tracing_aws_ecs::flush();
    let totals = totals(&emf_lines(out));
    assert_eq!(
        totals.keys().cloned().collect::<Vec<_>>(),
        [("/orders/{id}".to_owned(), "GET".to_owned())]
    );
    let warnings: Vec<Value> = out
        .lines()
        .into_iter()
        .filter(|l| l["level"] == "WARN")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("`http.route`"),
        "{warnings:#?}"
    );
}

#[test]
fn statuses_written_as_text_count_as_their_code() {
    let (_serial, out) = output();
    for status in ["503 Service Unavailable", "200 OK", "404 Not Found", "500"] {
        let request = info_span!(
            "request",
            route = "/text",
            method = "GET",
            status = tracing::field::Empty
        );
        request.record("status", tracing::field::display(status));
        drop(request);
    }
    // `Debug` of a status code, as `?response.status()` records it.
    info_span!("request", route = "/text", method = "GET", status = ?502u16).in_scope(|| {});
    tracing_aws_ecs::flush();
    let totals = totals(&emf_lines(out));
    let (requests, errors, _) = &totals[&("/text".to_owned(), "GET".to_owned())];
    assert_eq!((*requests, *errors), (5, 3));
}

#[test]
fn each_pair_names_its_slowest_request() {
    let (_serial, out) = output();
    for i in 0..20u32 {
        let request_id = format!("req-{i}");
        let trace = format!("1-5e1b4151-{i:024x}");
        info_span!(
            "request",
            route = "/slow",
            method = "GET",
            request_id = request_id.as_str(),
            xray_trace_id = trace.as_str()
        )
        .in_scope(|| {
            if i == 13 {
                std::thread::sleep(Duration::from_millis(30));
            }
        });
    }
    // A request with no ids is the slowest of its own pair: none is written.
    info_span!("request", route = "/anonymous", method = "GET").in_scope(|| {});
    tracing_aws_ecs::flush();
    let lines = emf_lines(out);
    let slow: Vec<&Value> = lines.iter().filter(|l| l["Route"] == "/slow").collect();
    assert_eq!(slow.len(), 1);
    assert_eq!(slow[0]["request_id"], "req-13");
    assert_eq!(slow[0]["xray_trace_id"], format!("1-5e1b4151-{:024x}", 13));
    // Latencies to the microsecond: three decimals at most.
    for value in slow[0]["Latency"].as_array().unwrap() {
        let micros = value.as_f64().unwrap() * 1e3;
        assert!((micros - micros.round()).abs() < 1e-6, "{value}");
    }
    let anonymous: Vec<&Value> = lines
        .iter()
        .filter(|l| l["Route"] == "/anonymous")
        .collect();
    assert_eq!(anonymous.len(), 1);
    assert!(anonymous[0].get("request_id").is_none());
    assert!(anonymous[0].get("xray_trace_id").is_none());
}

#[test]
fn the_first_name_of_each_list_wins_whatever_the_order_and_a_status_must_be_one() {
    let (_serial, out) = output();
    // `route` declared first, `http.route` wins; a `status` that is no status gives way to
    // OpenTelemetry's.
    info_span!(
        "request",
        route = "/legacy",
        http.route = "/orders/{id}",
        method = "GET",
        status = "pending",
        http.response.status_code = 503
    )
    .in_scope(|| {});
    // An id past 128 bytes is left out of the line, not cut.
    let long = "r".repeat(129);
    info_span!("request", route = "/long", request_id = long.as_str()).in_scope(|| {});
    tracing_aws_ecs::flush();
    let lines = emf_lines(out);
    let totals = totals(&lines);
    assert_eq!(
        totals.keys().cloned().collect::<Vec<_>>(),
        [
            ("/long".to_owned(), "ANY".to_owned()),
            ("/orders/{id}".to_owned(), "GET".to_owned())
        ]
    );
    assert_eq!(totals[&("/orders/{id}".to_owned(), "GET".to_owned())].1, 1);
    let long_line = lines.iter().find(|l| l["Route"] == "/long").unwrap();
    assert!(long_line.get("request_id").is_none());
}

/// Metrics lines go through the writer as an INFO line of the crate: a writer that routes
/// lines by level writes them where it writes INFO lines.
#[test]
fn metrics_lines_reach_a_level_filtered_writer() {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    // Under the lock: a scoped subscriber must not overlap another test's requests.
    let (_serial, _) = output();
    let out = Capture::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone().with_max_level(tracing::Level::DEBUG))
        .with_request_metrics(hourly("Test/Filtered"))
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        info_span!("request", route = "/filtered", method = "GET").in_scope(|| info!("served"));
    });
    let lines = emf_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["Route"], "/filtered");
}

/// The threads named for request metrics' timers, as `/proc` shows them (names cut to 15).
fn timer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .filter(|name| name.trim() == "ecs-request-met")
                .count()
        })
        .unwrap_or(0)
}

/// A layer's timer thread ends with the layer: a test suite of many scoped subscribers
/// does not pile threads up.
#[test]
#[cfg(target_os = "linux")]
fn the_timer_ends_with_its_layer() {
    // Under the lock: a scoped subscriber must not overlap another test's requests.
    let (_serial, _) = output();
    let before = timer_threads();
    assert!(before >= 1, "the global layer's timer");
    for _ in 0..200 {
        let out = Capture::default();
        let layer = writing_to(&out)
            .with_request_metrics(hourly("Test/Timers"))
            .layer();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            info_span!("request", route = "/t", method = "GET").in_scope(|| {});
        });
        assert_eq!(emf_lines(&out).len(), 1);
    }
    // A joined thread may linger in `/proc` for a moment after `join` returns (the
    // kernel wakes the joiner before it reaps the thread): wait for it to go, up to 5 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while timer_threads() > before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        timer_threads(),
        before,
        "every scoped layer's timer ended with it"
    );
}
