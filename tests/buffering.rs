//! Request-scoped buffering: a healthy request's DEBUG lines never appear; a failing one's
//! appear before its error, in order, from every thread it touched; requests never mix; the
//! caps drop the oldest lines and say how many; sampling, the explicit flush, and what
//! happens outside any span.

mod common;

use std::sync::Mutex;

use common::{Capture, fargate_metadata};
use serde_json::Value;
use tracing::{Dispatch, debug, error, info, info_span, trace, warn};
use tracing_aws_ecs::Buffering;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// The buffers' process-wide room is shared: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn dispatch(buffering: Buffering, out: &Capture) -> Dispatch {
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_buffering(buffering)
        .with_writer(out.clone())
        .layer();
    Dispatch::new(
        tracing_subscriber::registry()
            .with(LevelFilter::TRACE)
            .with(layer),
    )
}

fn messages(out: &Capture) -> Vec<String> {
    out.lines()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_healthy_request_writes_none_of_its_debug_lines() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Capture::default();
    tracing::dispatcher::with_default(&dispatch(Buffering::default(), &out), || {
        let request = info_span!("request", id = 1);
        let _e = request.enter();
        debug!("parsed");
        trace!("details");
        info!("served");
        warn!("slow");
    });
    assert_eq!(messages(&out), ["served", "slow"]);
}

#[test]
fn a_failing_request_writes_its_lines_first_in_order_from_every_thread() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Capture::default();
    let dispatch = dispatch(Buffering::default(), &out);
    tracing::dispatcher::with_default(&dispatch, || {
        let request = info_span!("request", id = 2);
        let _e = request.enter();
        debug!(step = 1, "first");
        std::thread::scope(|s| {
            s.spawn(|| {
                tracing::dispatcher::with_default(&dispatch, || {
                    // A child span entered on another thread: the same request.
                    let child = info_span!(parent: &request, "db");
                    child.in_scope(|| debug!(step = 2, "on another thread"));
                });
            });
        });
        info!("written at once");
        debug!(step = 3, "third");
        std::thread::sleep(std::time::Duration::from_millis(2));
        error!("failed");
        debug!(step = 4, "after the error");
    });
    let lines = out.lines();
    let messages: Vec<&str> = lines
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "written at once",
            "first",
            "on another thread",
            "third",
            "failed",
            "after the error"
        ]
    );
    // Each held line keeps its own timestamp, from before the error.
    let stamp = |i: usize| lines[i]["timestamp"].as_str().unwrap().to_owned();
    assert!(stamp(1) <= stamp(2) && stamp(2) <= stamp(3) && stamp(3) < stamp(4));
    assert_eq!(lines[2]["id"], 2, "the request's fields are on its lines");
    assert!(lines.iter().all(|l| l.get("buffer_dropped").is_none()));
}

#[test]
fn concurrent_requests_never_mix() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Capture::default();
    let dispatch = dispatch(Buffering::default(), &out);
    std::thread::scope(|s| {
        for request in 0..8u32 {
            let dispatch = &dispatch;
            s.spawn(move || {
                tracing::dispatcher::with_default(dispatch, || {
                    let span = info_span!("request", request);
                    let _e = span.enter();
                    for step in 0..20u32 {
                        debug!(request, step, "step");
                    }
                    if request % 2 == 0 {
                        error!(request, "failed");
                    }
                });
            });
        }
    });
    let lines = out.lines();
    for request in 0..8u32 {
        let steps: Vec<u64> = lines
            .iter()
            .filter(|l| l["request"] == request && l["message"] == "step")
            .map(|l| l["step"].as_u64().unwrap())
            .collect();
        if request % 2 == 0 {
            assert_eq!(steps, (0..20).collect::<Vec<u64>>(), "request {request}");
        } else {
            assert!(steps.is_empty(), "request {request}: {steps:?}");
        }
    }
    assert_eq!(lines.len(), 4 * 21);
}

#[test]
fn the_request_cap_drops_the_oldest_lines_and_says_how_many() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Capture::default();
    let buffering = Buffering::default().with_max_request_bytes(4 * 1024);
    tracing::dispatcher::with_default(&dispatch(buffering, &out), || {
        let request = info_span!("request");
        let _e = request.enter();
        for step in 0..100u64 {
            debug!(step, padding = "x".repeat(100).as_str(), "step");
        }
        error!("failed");
    });
    let lines = out.lines();
    let steps: Vec<u64> = lines
        .iter()
        .filter(|l| l["message"] == "step")
        .map(|l| l["step"].as_u64().unwrap())
        .collect();
    assert!(!steps.is_empty() && steps.len() < 100);
    // The newest were kept, in order.
    assert_eq!(*steps.last().unwrap(), 99);
    assert!(steps.windows(2).all(|w| w[1] == w[0] + 1));
    // One notice says the loss, then the first flushed line says how many went.
    let dropped = 100 - steps.len() as u64;
    assert_eq!(
        (&lines[0]["level"], &lines[0]["lost_buffer_full"]),
        (&"WARN".into(), &dropped.into()),
        "{:#}",
        lines[0]
    );
    assert_eq!(lines[1]["buffer_dropped"], dropped);
    assert!(lines[2..].iter().all(|l| l.get("buffer_dropped").is_none()));
    let held_bytes: usize = out
        .text()
        .lines()
        .filter(|l| l.contains("\"step\""))
        .map(|l| l.len() + 1)
        .sum();
    assert!(held_bytes <= 4 * 1024 + 40, "{held_bytes}");
}

#[test]
fn the_process_cap_holds_across_requests() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Capture::default();
    let buffering = Buffering::default().with_max_total_bytes(6 * 1024);
    tracing::dispatcher::with_default(&dispatch(buffering, &out), || {
        let first = info_span!("request", n = 1);
        let second = info_span!("request", n = 2);
        for step in 0..40u64 {
            first.in_scope(|| debug!(step, padding = "y".repeat(100).as_str(), "one"));
            second.in_scope(|| debug!(step, padding = "z".repeat(100).as_str(), "two"));
        }
        first.in_scope(|| error!("first failed"));
        second.in_scope(|| error!("second failed"));
    });
    let text = out.text();
    let held: usize = text
        .lines()
        .filter(|l| l.contains("\"one\"") || l.contains("\"two\""))
        .map(|l| l.len() + 1)
        .sum();
    assert!(held <= 6 * 1024, "{held} bytes held across both requests");
    let lines = out.lines();
    let dropped: u64 = lines
        .iter()
        .filter_map(|l| l["buffer_dropped"].as_u64())
        .sum();
    let kept = lines
        .iter()
        .filter(|l| l["message"] == "one" || l["message"] == "two")
        .count() as u64;
    assert_eq!(dropped + kept, 80, "every line is kept or counted");
}

#[test]
fn outside_any_span_the_filter_decides_on_the_layer_path() {
    // `init` with `RUST_LOG` unset drops them (`tests/init.rs`): it raised the level itself.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Capture::default();
    tracing::dispatcher::with_default(&dispatch(Buffering::default(), &out), || {
        debug!("background noise");
        info!("started");
        error!("no request failed, but this did");
    });
    assert_eq!(
        messages(&out),
        [
            "background noise",
            "started",
            "no request failed, but this did"
        ]
    );
}

#[test]
fn a_sampled_request_writes_everything() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Capture::default();
    let all = Buffering::default().with_sample_rate(1.0);
    tracing::dispatcher::with_default(&dispatch(all, &out), || {
        let request = info_span!("request");
        let _e = request.enter();
        debug!("sampled detail");
        info!("served");
    });
    assert_eq!(messages(&out), ["sampled detail", "served"]);
}

#[test]
fn flush_buffered_writes_what_requests_in_flight_hold_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Capture::default();
    tracing::dispatcher::with_default(&dispatch(Buffering::default(), &out), || {
        let request = info_span!("request");
        let entered = request.enter();
        debug!("in flight");
        tracing_aws_ecs::flush_buffered();
        assert_eq!(messages(&out), ["in flight"]);
        error!("then failed");
        drop(entered);
    });
    assert_eq!(messages(&out), ["in flight", "then failed"]);
}

#[test]
fn a_field_named_like_the_drop_count_is_renamed() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = Capture::default();
    tracing::dispatcher::with_default(&dispatch(Buffering::default(), &out), || {
        info!(buffer_dropped = 3, "mine");
    });
    let line: Value = out.only_line();
    assert_eq!(line["fields.buffer_dropped"], 3);
}

/// Held lines go through the writer as their events would: a writer that routes lines by
/// level (`with_max_level`, `with_filter`) treats a flushed DEBUG line as a DEBUG line.
#[test]
fn held_lines_are_routed_by_their_level_through_a_level_filtered_writer() {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (debug_and_up, trace_only) = (Capture::default(), Capture::default());
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_buffering(Buffering::default())
        .with_writer(
            debug_and_up
                .clone()
                .with_max_level(tracing::Level::DEBUG)
                .or_else(trace_only.clone()),
        )
        .layer();
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::TRACE)
        .with(layer);
    tracing::subscriber::with_default(subscriber, || {
        info_span!("request", id = 1).in_scope(|| {
            debug!("one");
            trace!("two");
            debug!("three");
            error!("failed");
        });
    });
    assert_eq!(messages(&debug_and_up), ["one", "three", "failed"]);
    assert_eq!(messages(&trace_only), ["two"]);
}
