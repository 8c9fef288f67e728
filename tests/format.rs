//! The line format: keys, value types, span fields, the clash rules and escaping.

mod common;

use common::{Capture, fargate_metadata};
use serde_json::{Value, json};
use tracing::{Level, debug, error, info, info_span, warn};
use tracing_aws_ecs::{EcsMetadata, FieldScheme};
use tracing_subscriber::prelude::*;

/// Runs `f` under a subscriber with the enriched layer writing into a capture. (Lines
/// without ECS fields, off ECS, are checked in `tests/init.rs`: a layer without given
/// metadata reads the process's cache, which the tests here fill.)
fn capture(metadata: EcsMetadata, scheme: FieldScheme, f: impl FnOnce()) -> Capture {
    let out = Capture::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(metadata)
        .with_scheme(scheme)
        .with_writer(out.clone())
        .layer();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(layer);
    tracing::subscriber::with_default(subscriber, f);
    out
}

fn enriched(f: impl FnOnce()) -> Capture {
    capture(fargate_metadata(), FieldScheme::Nested, f)
}

#[test]
fn base_keys_come_first_in_order() {
    let out = enriched(|| info!(target: "orders", order_id = 42, "order placed"));
    let text = out.text();
    assert!(text.starts_with(r#"{"timestamp":""#), "{text}");
    let order: Vec<usize> = [
        "\"timestamp\"",
        "\"level\"",
        "\"target\"",
        "\"message\"",
        "\"order_id\"",
        "\"ecs\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap_or_else(|| panic!("{k} in {text}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    let line = out.only_line();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "orders");
    assert_eq!(line["message"], "order placed");
    assert_eq!(line["order_id"], 42);
}

#[test]
fn timestamp_is_rfc3339_utc_microseconds() {
    let line = enriched(|| info!("x")).only_line();
    let ts = line["timestamp"].as_str().unwrap();
    assert_eq!(ts.len(), "2026-11-29T03:49:31.123456Z".len(), "{ts}");
    let b = ts.as_bytes();
    assert!(
        ts.ends_with('Z')
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[19] == b'.'
    );
    assert!(ts[..4].parse::<u32>().unwrap() >= 2024);
    assert!(ts[20..26].bytes().all(|c| c.is_ascii_digit()));
}

#[test]
fn levels() {
    let out = enriched(|| {
        tracing::trace!("t");
        debug!("d");
        info!("i");
        warn!("w");
        error!("e");
    });
    let levels: Vec<Value> = out
        .lines()
        .into_iter()
        .map(|l| l["level"].clone())
        .collect();
    assert_eq!(
        levels,
        [
            json!("TRACE"),
            json!("DEBUG"),
            json!("INFO"),
            json!("WARN"),
            json!("ERROR")
        ]
    );
}

#[derive(Debug)]
struct Inner;
impl std::fmt::Display for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset")
    }
}
impl std::error::Error for Inner {}

#[derive(Debug)]
struct Outer(Inner);
impl std::fmt::Display for Outer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("payment failed")
    }
}
impl std::error::Error for Outer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn value_types() {
    let err = Outer(Inner);
    let out = enriched(|| {
        info!(
            int = -7i64,
            uint = 7u64,
            big = u128::MAX,
            float = 1.5f64,
            nan = f64::NAN,
            flag = true,
            text = "hi",
            debug = ?vec![1, 2],
            display = %"shown",
            error = &err as &(dyn std::error::Error + 'static),
            "m"
        )
    });
    let line = out.only_line();
    assert_eq!(line["int"], -7);
    assert_eq!(line["uint"], 7);
    // serde_json reads a number this large as a float: check the text.
    assert!(out.text().contains(&format!(r#""big":{}"#, u128::MAX)));
    assert_eq!(line["float"], 1.5);
    assert_eq!(line["nan"], "NaN");
    assert_eq!(line["flag"], true);
    assert_eq!(line["text"], "hi");
    assert_eq!(line["debug"], "[1, 2]");
    assert_eq!(line["display"], "shown");
    assert_eq!(line["error"], "payment failed: connection reset");
}

#[test]
fn span_fields_are_copied_and_the_nearest_wins() {
    let out = enriched(|| {
        let outer = info_span!("request", request_id = "r-1", user = "outer", depth = 1);
        let _o = outer.enter();
        let inner = info_span!("db", user = "inner", depth = 2, table = "orders");
        let _i = inner.enter();
        info!(depth = 3, "query");
    });
    let line = out.only_line();
    assert_eq!(line["request_id"], "r-1");
    assert_eq!(line["table"], "orders");
    assert_eq!(line["user"], "inner", "an inner span beats an outer one");
    assert_eq!(line["depth"], 3, "the event beats every span");
}

#[test]
fn recorded_span_values_replace_earlier_ones() {
    let out = enriched(|| {
        let span = info_span!("job", status = "started", attempt = tracing::field::Empty);
        let _e = span.enter();
        span.record("status", "done");
        span.record("attempt", 2);
        info!("finished");
    });
    let line = out.only_line();
    assert_eq!(line["status"], "done");
    assert_eq!(line["attempt"], 2);
}

#[test]
fn explicit_parent_span_is_used() {
    let out = enriched(|| {
        let span = info_span!("conn", peer = "10.0.0.1");
        info!(parent: &span, "accepted");
        info!(parent: None, "rootless");
    });
    let lines = out.lines();
    assert_eq!(lines[0]["peer"], "10.0.0.1");
    assert!(lines[1].get("peer").is_none());
}

#[test]
fn reserved_names_are_renamed_not_lost() {
    let out = enriched(|| {
        let span = info_span!(
            "s",
            message = "span message",
            target = "span target",
            ecs = "span ecs"
        );
        let _e = span.enter();
        info!(
            level = "mine",
            timestamp = 1,
            ecs = "mine",
            "fields.level" = "pre",
            "hello"
        );
    });
    let line = out.only_line();
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "hello");
    assert!(line["ecs"].is_object());
    assert_eq!(line["fields.level"], "mine");
    assert_eq!(line["fields.timestamp"], 1);
    assert_eq!(line["fields.ecs"], "mine");
    assert_eq!(line["fields.fields.level"], "pre");
    assert_eq!(line["fields.target"], "span target");
    // Names clash before renaming: the event's `message` and `ecs` hide the span's.
    assert!(line.get("fields.message").is_none());
    assert_eq!(line.as_object().unwrap().len(), 10);

    // Without an event field of that name, the span's `message` is kept, renamed.
    let out = enriched(|| {
        let span = info_span!("s", message = "span message");
        let _e = span.enter();
        info!(n = 1);
    });
    assert_eq!(out.only_line()["fields.message"], "span message");
}

#[test]
fn hostile_strings_stay_one_line() {
    let nasty = "line1\nline2\r\n{\"level\":\"ERROR\"}\u{2028}\u{2029}\u{1b}[31m\u{0}\"\\";
    let out = enriched(|| {
        let span = info_span!("s", s = nasty);
        let _e = span.enter();
        info!(field = nasty, dbg = ?nasty, "{nasty}");
    });
    let text = out.text();
    assert_eq!(text.matches('\n').count(), 1, "{text}");
    assert!(!text.contains('\u{2028}') && !text.contains('\u{1b}'));
    let line = out.only_line();
    assert_eq!(line["message"], nasty);
    assert_eq!(line["field"], nasty);
    assert_eq!(line["s"], nasty);
    assert_eq!(line["dbg"], format!("{nasty:?}"));
}

#[test]
fn events_without_a_message_have_no_message_key() {
    let line = enriched(|| info!(only = 1)).only_line();
    assert!(line.get("message").is_none());
    assert_eq!(line["only"], 1);
}

#[test]
fn level_filters_apply() {
    let out = Capture::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::from_level(
            Level::WARN,
        ))
        .with(
            tracing_aws_ecs::builder()
                .with_metadata(fargate_metadata())
                .with_writer(out.clone())
                .layer(),
        );
    tracing::subscriber::with_default(subscriber, || {
        info!("dropped");
        warn!("kept");
    });
    assert_eq!(out.only_line()["message"], "kept");
}

#[test]
fn repeated_names_in_one_event_keep_the_first() {
    let out = enriched(|| info!(a = 1, b = 2, a = 3, "m"));
    let line = out.only_line();
    assert_eq!(line["a"], 1);
    assert_eq!(line["b"], 2);
}

#[test]
fn many_fields_and_deep_spans() {
    let out = enriched(|| {
        let s1 = info_span!("s1", shared = 1, one = 1);
        let _in1 = s1.enter();
        let s2 = info_span!("s2", shared = 2, two = 2);
        let _in2 = s2.enter();
        let s3 = info_span!("s3", shared = 3, three = 3);
        let _in3 = s3.enter();
        info!(
            f01 = 1,
            f02 = 2,
            f03 = 3,
            f04 = 4,
            f05 = 5,
            f06 = 6,
            f07 = 7,
            f08 = 8,
            f09 = 9,
            f10 = 10,
            f11 = 11,
            f12 = 12,
            f13 = 13,
            f14 = 14,
            f15 = 15,
            f16 = 16,
            f17 = 17,
            f18 = 18,
            f19 = 19,
            f20 = 20,
            f21 = 21,
            f22 = 22,
            f23 = 23,
            f24 = 24,
            f25 = 25,
            f26 = 26,
            f27 = 27,
            f28 = 28,
            f29 = 29,
            f30 = 30,
            f31 = 31,
            f32 = 32,
            one = "event",
            "many"
        );
    });
    let line = out.only_line();
    assert_eq!(line["f32"], 32);
    assert_eq!(line["one"], "event");
    assert_eq!(line["shared"], 3);
    assert_eq!(
        (line["two"].clone(), line["three"].clone()),
        (json!(2), json!(3))
    );
}

#[test]
fn composes_with_a_per_layer_filter() {
    use tracing_subscriber::Layer as _;
    let out = Capture::default();
    let other = Capture::default();
    let ours = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .layer()
        .with_filter(tracing_subscriber::filter::LevelFilter::WARN);
    let plain_out = other.clone();
    let plain = tracing_subscriber::fmt::layer()
        .json()
        .with_writer(move || plain_out.clone());
    let subscriber = tracing_subscriber::registry().with(ours).with(plain);
    tracing::subscriber::with_default(subscriber, || {
        info!("info");
        warn!("warn");
    });
    assert_eq!(out.only_line()["message"], "warn");
    assert_eq!(other.lines().len(), 2, "the other layer is unfiltered");
}
