//! Lines over the maximum size have their longest string values cut at a character
//! boundary, carry `"truncated":true`, and stay one valid JSON line within the limit.

mod common;

use common::{Capture, fargate_metadata};
use serde_json::Value;
use tracing::{info, info_span};
use tracing_subscriber::prelude::*;

fn capture(max: Option<usize>, f: impl FnOnce()) -> (Capture, Vec<Value>) {
    let out = Capture::default();
    let mut builder = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone());
    if let Some(max) = max {
        builder = builder.with_max_line_bytes(max);
    }
    tracing::subscriber::with_default(tracing_subscriber::registry().with(builder.layer()), f);
    let lines = out.lines();
    (out, lines)
}

fn line_lengths(out: &Capture) -> Vec<usize> {
    out.text().lines().map(str::len).collect()
}

#[test]
fn a_1_mib_message_is_cut_to_the_default_limit() {
    let huge = "é".repeat(512 * 1024); // 1 MiB of two-byte characters
    let (out, lines) = capture(None, || info!(small = "kept", "{huge}"));
    let length = line_lengths(&out)[0];
    assert!(
        length <= tracing_aws_ecs::format::DEFAULT_MAX_LINE_BYTES,
        "{length}"
    );
    assert!(
        length > tracing_aws_ecs::format::DEFAULT_MAX_LINE_BYTES - 1024,
        "fills the room: {length}"
    );
    let line = &lines[0];
    assert_eq!(line["truncated"], true);
    assert_eq!(line["small"], "kept");
    let message = line["message"].as_str().unwrap();
    assert!(
        huge.starts_with(message),
        "a prefix, cut between characters"
    );
    assert_eq!(
        line["ecs"]["cluster"], "MyEmptyCluster",
        "the ECS fields are never cut"
    );
}

#[test]
fn short_values_survive_and_long_ones_share_the_room() {
    let (out, lines) = capture(Some(2000), || {
        let span = info_span!("s", from_span = "x".repeat(3000).as_str(), tiny = "t");
        let _e = span.enter();
        info!(
            a = "a".repeat(5000).as_str(),
            b = "b".repeat(100).as_str(),
            n = 7,
            "m"
        );
    });
    assert!(line_lengths(&out)[0] <= 2000);
    let line = &lines[0];
    assert_eq!(line["truncated"], true);
    assert_eq!(
        line["b"].as_str().unwrap().len(),
        100,
        "short enough to keep whole"
    );
    assert_eq!(line["tiny"], "t");
    assert_eq!(line["n"], 7);
    let a = line["a"].as_str().unwrap().len();
    let from_span = line["from_span"].as_str().unwrap().len();
    assert!(
        a > 100 && from_span > 100 && a.abs_diff(from_span) <= 1,
        "{a} {from_span}"
    );
}

#[test]
fn escapes_are_never_split() {
    // Every character escapes to six bytes: a cut must fall between escapes.
    let controls = "\u{1}".repeat(1000);
    let (out, lines) = capture(Some(700), || info!(c = controls.as_str(), "m"));
    assert!(line_lengths(&out)[0] <= 700);
    let kept = lines[0]["c"].as_str().unwrap();
    assert!(!kept.is_empty() && kept.chars().all(|c| c == '\u{1}'));
    assert!(out.text().matches("\\u0001").count() == kept.len());
}

#[test]
fn debug_and_error_values_are_cut_too() {
    let long: Vec<u32> = (0..2000).collect();
    let error = std::io::Error::other("e".repeat(5000));
    let (out, lines) = capture(
        Some(1500),
        || info!(list = ?long, error = &error as &dyn std::error::Error, "m"),
    );
    assert!(line_lengths(&out)[0] <= 1500);
    assert!(lines[0]["list"].as_str().unwrap().starts_with("[0, 1, 2"));
    assert!(lines[0]["error"].as_str().unwrap().starts_with("eee"));
}

#[test]
fn lines_within_the_limit_are_untouched() {
    let (_, lines) = capture(Some(10_000), || info!(a = "x".repeat(1000).as_str(), "m"));
    assert!(lines[0].get("truncated").is_none());
    assert_eq!(lines[0]["a"].as_str().unwrap().len(), 1000);
}

#[test]
fn a_field_named_truncated_is_renamed() {
    let (_, lines) = capture(Some(400), || {
        info!(truncated = "mine", big = "z".repeat(1000).as_str(), "m")
    });
    assert_eq!(lines[0]["truncated"], true);
    assert_eq!(lines[0]["fields.truncated"], "mine");
}

#[test]
fn a_limit_too_small_for_the_keys_still_gives_valid_json() {
    let (_, lines) = capture(Some(10), || info!(a = "value", "message"));
    assert_eq!(lines[0]["truncated"], true);
    assert_eq!(lines[0]["a"], "");
    assert_eq!(lines[0]["message"], "");
}
