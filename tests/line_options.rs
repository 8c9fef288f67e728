//! The line's options, each with its keys and values: file and line, thread, span names, span
//! events with their timings, static fields, and the timestamp's forms. Off by default.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Capture, fargate_metadata};
use serde_json::Value;
use tracing::{info, info_span, warn_span};
use tracing_aws_ecs::{Builder, FmtSpan, Timestamp};
use tracing_subscriber::prelude::*;

/// Runs `f` under the builder's layer (with the Fargate metadata) writing into a capture.
fn capture(builder: Builder, f: impl FnOnce()) -> Capture {
    let out = Capture::default();
    let layer = builder
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    out
}

fn by_message<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no {message:?} in {lines:#?}"))
}

#[test]
fn the_target_can_be_left_out() {
    let event = || info!(target: "orders::db", target_table = "orders", "queried");
    let with = capture(tracing_aws_ecs::builder(), event).only_line();
    assert_eq!(with["target"], "orders::db");
    let line = capture(tracing_aws_ecs::builder().with_target(false), || {
        event();
        // A field named `target` is still renamed: the key stays the formatter's.
        info!(target = "mine", "own field");
    });
    let lines = line.lines();
    assert!(lines[0].get("target").is_none(), "{}", lines[0]);
    assert_eq!(lines[0]["target_table"], "orders");
    assert_eq!(lines[1]["fields.target"], "mine");
}

/// The names of 0.1 that were renamed still work, deprecated, until 1.0.
#[test]
#[allow(deprecated)]
fn renamed_items_keep_their_old_names() {
    let builder = tracing_aws_ecs::builder().with_timeout(Duration::from_millis(10));
    let _ = capture(builder, || info!("built"));
    assert_eq!(
        tracing_aws_ecs::Path::Task,
        tracing_aws_ecs::endpoint::Document::Task
    );
    assert_eq!(
        tracing_aws_ecs::V4_VARIABLE,
        "ECS_CONTAINER_METADATA_URI_V4"
    );
    assert_eq!(tracing_aws_ecs::V3_VARIABLE, "ECS_CONTAINER_METADATA_URI");
    assert!(tracing_aws_ecs::Endpoint::parse("http://169.254.170.2/v4/x").is_ok());
    assert_eq!(
        tracing_aws_ecs::ApiVersion::V4,
        tracing_aws_ecs::endpoint::ApiVersion::V4
    );
    assert_eq!(
        fargate_metadata().version(),
        fargate_metadata().api_version()
    );
}

#[test]
fn file_and_line_number() {
    let mut line_of_event = 0;
    let out = capture(
        tracing_aws_ecs::builder()
            .with_file(true)
            .with_line_number(true),
        || {
            line_of_event = line!() + 1;
            info!(filename = "mine", "here");
        },
    );
    let line = out.only_line();
    assert_eq!(line["filename"], file!());
    assert_eq!(line["line_number"], line_of_event);
    // A field of that name is the user's, kept under another key.
    assert_eq!(line["fields.filename"], "mine");

    let plain = capture(tracing_aws_ecs::builder(), || info!(filename = "mine", "x")).only_line();
    assert_eq!(plain["filename"], "mine");
    assert!(plain.get("line_number").is_none());
}

#[test]
fn thread_names_and_ids() {
    let builder = tracing_aws_ecs::builder()
        .with_thread_names(true)
        .with_thread_ids(true);
    let out = capture(builder, || {
        let dispatch = tracing::dispatcher::get_default(Clone::clone);
        let expected_id = std::thread::Builder::new()
            .name("worker-7".into())
            .spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || info!("named"));
                format!("{:?}", std::thread::current().id())
            })
            .unwrap()
            .join()
            .unwrap();
        info!(expected_id, "main");
    });
    let lines = out.lines();
    let named = by_message(&lines, "named");
    assert_eq!(named["threadName"], "worker-7");
    assert_eq!(named["threadId"], by_message(&lines, "main")["expected_id"]);
    assert_ne!(named["threadId"], by_message(&lines, "main")["threadId"]);
    assert!(named["threadId"].as_str().unwrap().starts_with("ThreadId("));
}

#[test]
fn current_span_and_span_list() {
    let builder = tracing_aws_ecs::builder()
        .with_current_span(true)
        .with_span_list(true);
    let out = capture(builder, || {
        info!("outside");
        let outer = info_span!("request", id = 7);
        let _o = outer.enter();
        let inner = info_span!("db");
        let _i = inner.enter();
        info!("inside");
    });
    let lines = out.lines();
    let inside = by_message(&lines, "inside");
    assert_eq!(inside["span"], "db");
    assert_eq!(inside["spans"], serde_json::json!(["request", "db"]));
    assert_eq!(inside["id"], 7);
    let outside = by_message(&lines, "outside");
    assert!(outside.get("span").is_none() && outside.get("spans").is_none());
}

#[test]
fn span_events_carry_how_long_the_span_lived_and_was_busy() {
    let builder = tracing_aws_ecs::builder().with_span_events(FmtSpan::NEW | FmtSpan::CLOSE);
    let out = capture(builder, || {
        let span = warn_span!(target: "orders", "request", order_id = 42);
        // Idle for 30 ms, then busy for 50.
        std::thread::sleep(Duration::from_millis(30));
        let entered = span.enter();
        std::thread::sleep(Duration::from_millis(50));
        info!("working");
        drop(entered);
    });
    let lines = out.lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    let (new, close) = (&lines[0], &lines[2]);
    assert_eq!(new["message"], "new");
    assert_eq!(close["message"], "close");
    for line in [new, close] {
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["target"], "orders");
        assert_eq!(line["order_id"], 42);
        assert_eq!(line["ecs"]["cluster"], "MyEmptyCluster");
    }
    assert!(new.get("elapsed_ms").is_none());
    let elapsed = close["elapsed_ms"].as_f64().unwrap();
    let busy = close["busy_ms"].as_f64().unwrap();
    // What the sleeps force, whatever the machine's speed.
    assert!(busy >= 50.0, "busy {busy}");
    assert!(elapsed >= busy + 30.0, "elapsed {elapsed}, busy {busy}");

    // Enter and exit lines, when asked for.
    let out = capture(
        tracing_aws_ecs::builder().with_span_events(FmtSpan::ACTIVE),
        || {
            let span = info_span!("s");
            span.in_scope(|| {});
        },
    );
    let messages: Vec<Value> = out.lines().iter().map(|l| l["message"].clone()).collect();
    assert_eq!(messages, ["enter", "exit"]);
}

#[test]
fn static_fields_on_every_line_and_their_keys_reserved() {
    let builder = tracing_aws_ecs::builder()
        .with_static_field("service", "orders")
        .with_static_field("version", 3)
        .with_static_field("canary", true)
        .with_static_field("level", "x");
    let out = capture(builder, || {
        info!(service = "spoofed", "one");
        let span = info_span!("s", version = "span");
        let _e = span.enter();
        info!("two");
    });
    for line in out.lines() {
        assert_eq!(line["service"], "orders");
        assert_eq!(line["version"], 3);
        assert_eq!(line["canary"], true);
        assert_eq!(
            line["level"], "INFO",
            "a static field cannot take a base key"
        );
        assert_eq!(line["fields.level"], "x");
    }
    let lines = out.lines();
    assert_eq!(by_message(&lines, "one")["fields.service"], "spoofed");
    assert_eq!(by_message(&lines, "two")["fields.version"], "span");
}

#[test]
fn timestamp_forms() {
    let line_with = |timestamp| {
        capture(tracing_aws_ecs::builder().with_timestamp(timestamp), || {
            info!("t")
        })
        .text()
    };
    let now_ms = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };

    let micros = line_with(Timestamp::Rfc3339Micros);
    let value: Value = serde_json::from_str(&micros).unwrap();
    assert_eq!(value["timestamp"].as_str().unwrap().len(), 27, "{micros}");

    let millis: Value = serde_json::from_str(&line_with(Timestamp::Rfc3339Millis)).unwrap();
    let text = millis["timestamp"].as_str().unwrap();
    assert_eq!(text.len(), 24, "{text}");
    assert!(text.ends_with('Z') && text.as_bytes()[19] == b'.');

    let before = now_ms();
    let unix: Value = serde_json::from_str(&line_with(Timestamp::UnixMillis)).unwrap();
    let after = now_ms();
    let stamp = unix["timestamp"].as_u64().expect("a number");
    assert!((before..=after).contains(&stamp), "{stamp}");

    let none = line_with(Timestamp::None);
    assert!(none.starts_with(r#"{"level":"INFO""#), "{none}");
    let none: Value = serde_json::from_str(&none).unwrap();
    assert!(none.get("timestamp").is_none());
}

#[test]
fn every_option_on_still_makes_one_valid_line() {
    let builder = tracing_aws_ecs::builder()
        .with_file(true)
        .with_line_number(true)
        .with_thread_ids(true)
        .with_thread_names(true)
        .with_current_span(true)
        .with_span_list(true)
        .with_timestamp(Timestamp::UnixMillis)
        .with_static_field("env", "prod\n\u{2028}");
    let out = capture(builder, || {
        let span = info_span!("request");
        let _e = span.enter();
        info!(a = 1, "m");
    });
    let line = out.only_line();
    for key in [
        "filename",
        "line_number",
        "threadId",
        "threadName",
        "span",
        "spans",
    ] {
        assert!(line.get(key).is_some(), "{key}: {line}");
    }
    assert_eq!(line["env"], "prod\n\u{2028}");
    assert!(!out.text().contains('\u{2028}'), "escaped");
}
