//! The line contract, checked against a reference: a plainly written model of the rules (a map
//! built field by field, no speed tricks) and the real layer, on random span trees and events
//! whose names clash (reserved names, `fields.` prefixes, dotted names, names needing escapes),
//! with every value type, valueless fields, `span.record`, and small line limits. Then the
//! regressions the model found.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Capture, assert_no_duplicate_keys, fargate_metadata};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value as Json, json};
use tracing::field::Value;
use tracing::metadata::Kind;
use tracing::{Metadata, info, info_span};
use tracing_aws_ecs::FieldScheme;
use tracing_subscriber::prelude::*;

// ---------------------------------------------------------------------------------------
// The model.

/// A field's value, as the test records it.
#[derive(Clone, Debug)]
enum V {
    /// No value: `Option::None`, or `Empty` not recorded.
    Absent,
    Str(String),
    I(i64),
    U(u64),
    F(f64),
    B(bool),
    /// Recorded with `?`: written as its `Debug`.
    Dbg(String),
}

impl V {
    /// What the line holds for it.
    fn json(&self) -> Option<Json> {
        Some(match self {
            V::Absent => return None,
            V::Str(s) => Json::String(s.clone()),
            V::I(i) => json!(i),
            V::U(u) => json!(u),
            // As a default parser reads its shortest text back: not exactly, for subnormals.
            V::F(f) if f.is_finite() => {
                serde_json::from_str(&json!(f).to_string()).unwrap_or_else(|_| json!(f))
            }
            // JSON has no NaN or infinity: their spellings, as strings.
            V::F(f) => Json::String(f.to_string()),
            V::B(b) => json!(b),
            V::Dbg(s) => Json::String(format!("{s:?}")),
        })
    }
}

#[derive(Clone, Debug)]
struct SpanSpec {
    fields: Vec<(&'static str, V)>,
    /// `span.record(name, value)` after creation, by field position.
    records: Vec<(usize, V)>,
}

#[derive(Clone, Debug)]
struct Case {
    /// From the root to the span the event is in.
    spans: Vec<SpanSpec>,
    event: Vec<(&'static str, V)>,
    max_line: Option<usize>,
}

/// The keys the formatter owns in the `Nested` scheme, and the renaming rule.
fn key_for(name: &str, in_span: bool) -> String {
    let reserved = ["timestamp", "level", "target", "truncated", "ecs"].contains(&name)
        || (in_span && name == "message")
        || name.starts_with("ecs.")
        || name.starts_with("fields.");
    if reserved {
        format!("fields.{name}")
    } else {
        name.to_owned()
    }
}

/// The line the contract says, without `timestamp`: a map built rule by rule.
fn reference(case: &Case) -> Map<String, Json> {
    let mut line = Map::new();
    line.insert("level".into(), json!("INFO"));
    line.insert("target".into(), json!("contract"));
    // Names already on the line, compared as given (before renaming).
    let mut taken: Vec<&str> = Vec::new();
    // The event: within it, the first field of a name with a value wins; a field without a
    // value is as if absent.
    for (name, value) in &case.event {
        let Some(value) = value.json() else { continue };
        if taken.contains(name) {
            continue;
        }
        taken.push(name);
        let key = if *name == "message" {
            "message".to_owned()
        } else {
            key_for(name, false)
        };
        line.insert(key, value);
    }
    // The spans, nearest first: nearest wins; within a span the first of a name with a value,
    // and `record` replaces it.
    for span in case.spans.iter().rev() {
        let mut own: Vec<(&str, Json)> = Vec::new();
        for (name, value) in &span.fields {
            if let Some(value) = value.json() {
                if !own.iter().any(|(n, _)| n == name) {
                    own.push((name, value));
                }
            }
        }
        for (position, value) in &span.records {
            let name = span.fields[*position].0;
            // `record` goes to the first field of that name.
            if let Some(value) = value.json() {
                own.retain(|(n, _)| *n != name);
                own.push((name, value));
            }
        }
        for (name, value) in own {
            if !taken.contains(&name) {
                taken.push(name);
                line.insert(key_for(name, true), value);
            }
        }
    }
    let identity = fargate_metadata();
    line.insert(
        "ecs".into(),
        json!({
            "cluster": identity.cluster_name(),
            "task_arn": identity.task_arn(),
            "container_name": identity.container_name(),
            "image": identity.image(),
        }),
    );
    line
}

// ---------------------------------------------------------------------------------------
// Driving the real layer with names made at run time.

/// A callsite with these names (leaked: one per case).
fn callsite(names: Vec<&'static str>, kind: Kind) -> &'static Metadata<'static> {
    common::dynamic_callsite(Box::leak(names.into_boxed_slice()), "contract", kind)
}

/// Calls `f` with the values as `dyn Value`s (`None` for absent ones).
fn with_values<R>(values: &[&V], f: impl FnOnce(&[Option<&dyn Value>]) -> R) -> R {
    let strings: Vec<&str> = values
        .iter()
        .map(|v| match v {
            V::Str(s) => s.as_str(),
            _ => "",
        })
        .collect();
    let debugs: Vec<tracing::field::DebugValue<&String>> = values
        .iter()
        .filter_map(|v| match v {
            V::Dbg(s) => Some(tracing::field::debug(s)),
            _ => None,
        })
        .collect();
    let mut debug_at = 0;
    let dyns: Vec<Option<&dyn Value>> = values
        .iter()
        .zip(&strings)
        .map(|(v, s)| -> Option<&dyn Value> {
            match v {
                V::Absent => None,
                V::Str(_) => Some(s),
                V::I(i) => Some(i),
                V::U(u) => Some(u),
                V::F(f) => Some(f),
                V::B(b) => Some(b),
                V::Dbg(_) => {
                    debug_at += 1;
                    Some(&debugs[debug_at - 1])
                }
            }
        })
        .collect();
    f(&dyns)
}

/// The line the real layer writes for the case.
fn render(case: &Case) -> String {
    let out = Capture::default();
    let mut builder = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_scheme(FieldScheme::Nested)
        .with_writer(out.clone());
    if let Some(max) = case.max_line {
        builder = builder.with_max_line_bytes(max);
    }
    let subscriber = tracing_subscriber::registry().with(builder.layer());
    tracing::subscriber::with_default(subscriber, || {
        let mut spans = Vec::new();
        for spec in &case.spans {
            let meta = callsite(spec.fields.iter().map(|(n, _)| *n).collect(), Kind::SPAN);
            let fields = meta.fields();
            let keys: Vec<_> = fields.iter().collect();
            let values: Vec<&V> = spec.fields.iter().map(|(_, v)| v).collect();
            let span = with_values(&values, |dyns| {
                // Each span a child of the one before: an explicit tree, entered below.
                let parent = spans.last().and_then(|s: &tracing::Span| s.id());
                tracing::Span::child_of(parent, meta, &fields.value_set_all(dyns))
            });
            for (position, value) in &spec.records {
                let key = &keys[*position];
                with_values(&[value], |dyns| {
                    if let Some(v) = dyns[0] {
                        span.record(key, v);
                    }
                });
            }
            spans.push(span);
        }
        let _entered = spans.last().map(|s| s.enter());
        let meta = callsite(case.event.iter().map(|(n, _)| *n).collect(), Kind::EVENT);
        let fields = meta.fields();
        let values: Vec<&V> = case.event.iter().map(|(_, v)| v).collect();
        with_values(&values, |dyns| {
            tracing::Event::dispatch(meta, &fields.value_set_all(dyns));
        });
    });
    out.text()
}

// ---------------------------------------------------------------------------------------
// Random cases.

/// Names that clash often, and the rest.
const COMMON: &[&str] = &["a", "b", "message"];
const NAMES: &[&str] = &[
    "c",
    "level",
    "truncated",
    "ecs",
    "ecs.cluster",
    "fields.a",
    "fields.fields.a",
    "x\ny",
    "q\"uote",
    "é",
    "a.b",
    // Multi-byte names, some of whose first byte also starts U+2028 or a C1 control.
    "€",
    "prix €",
    "日本",
    "x\u{85}y",
    "\u{2028}",
];

fn name() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        3 => proptest::sample::select(COMMON),
        2 => proptest::sample::select(NAMES),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]{0,12}",
        Just(String::new()),
        Just("line\nbreak \"quoted\" \u{1b}[31m \u{85}\u{9b} \u{2028}".to_owned()),
        "[ -~]{0,40}",
        any::<String>(),
    ]
}

fn value() -> impl Strategy<Value = V> {
    prop_oneof![
        2 => Just(V::Absent),
        3 => text().prop_map(V::Str),
        1 => any::<i64>().prop_map(V::I),
        1 => any::<u64>().prop_map(V::U),
        1 => prop_oneof![
            any::<f64>().prop_filter("no negative zero", |f| *f != 0.0 || f.is_sign_positive()),
            Just(f64::MAX),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(1e-300),
        ]
        .prop_map(V::F),
        1 => any::<bool>().prop_map(V::B),
        1 => text().prop_map(V::Dbg),
    ]
}

fn fields() -> impl Strategy<Value = Vec<(&'static str, V)>> {
    proptest::collection::vec((name(), value()), 0..=4)
}

/// Events wider than 64 fields: past what one bit per field index can tell apart.
fn wide_case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(span(), 0..=2),
        proptest::collection::vec((name(), value()), 60..=130),
    )
        .prop_map(|(spans, event)| Case {
            spans,
            event,
            max_line: None,
        })
}

fn span() -> impl Strategy<Value = SpanSpec> {
    fields().prop_flat_map(|fields| {
        let n = fields.len();
        let records = if n == 0 {
            Just(Vec::new()).boxed()
        } else {
            proptest::collection::vec((0..n, value()), 0..=2).boxed()
        };
        (Just(fields), records).prop_map(|(fields, records)| SpanSpec { fields, records })
    })
}

fn case() -> impl Strategy<Value = Case> {
    (
        proptest::collection::vec(span(), 0..=3),
        fields(),
        prop_oneof![3 => Just(None), 1 => (100usize..400).prop_map(Some)],
    )
        .prop_map(|(spans, event, max_line)| Case {
            spans,
            event,
            max_line,
        })
}

// ---------------------------------------------------------------------------------------
// The comparison.

/// Equal as JSON, numbers compared as the floats they are (within what `serde_json`'s default
/// float parser gets wrong in the last digit; the exact form is checked on the text).
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y || (x - y).abs() <= x.abs().max(y.abs()) * 1e-15,
            _ => false,
        },
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// What the cases met, to show the test reaches every kind of clash.
#[derive(Default)]
struct Counts(BTreeMap<&'static str, AtomicUsize>);

impl Counts {
    fn add(&mut self, kind: &'static str) {
        self.0
            .entry(kind)
            .or_default()
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// Checks one case; notes what it met.
fn check(case: &Case, counts: &mut Counts) -> Result<(), TestCaseError> {
    let text = render(case);
    prop_assert!(
        text.ends_with('\n') && text.matches('\n').count() == 1,
        "{text:?}"
    );
    let raw = &text[..text.len() - 1];
    // No control character, C1 control or line separator goes out raw.
    prop_assert!(
        !raw.chars()
            .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
        "{raw:?}"
    );
    assert_no_duplicate_keys(raw);
    let mut line: Map<String, Json> =
        serde_json::from_str(raw).map_err(|e| TestCaseError::fail(format!("{e}: {raw}")))?;
    prop_assert!(line.remove("timestamp").is_some());
    let expected = reference(case);
    let truncated = line.remove("truncated") == Some(Json::Bool(true));
    if !truncated {
        prop_assert!(
            line.len() == expected.len()
                && line
                    .iter()
                    .all(|(k, v)| expected.get(k).is_some_and(|w| same(v, w))),
            "\nline:     {line:?}\nexpected: {expected:?}\ncase: {case:?}"
        );
    } else {
        counts.add("lines cut to their limit");
        // Cut: the same keys; numbers, booleans and the identity whole; strings prefixes.
        prop_assert_eq!(
            line.keys().collect::<Vec<_>>().len(),
            expected.len(),
            "\nline:     {:?}\nexpected: {:?}",
            line,
            expected
        );
        for (key, value) in &line {
            let Some(want) = expected.get(key) else {
                return Err(TestCaseError::fail(format!("unexpected key {key}: {raw}")));
            };
            match (value, want) {
                (Json::String(got), Json::String(full)) => {
                    prop_assert!(full.starts_with(got.as_str()), "{key}: {got:?} of {full:?}")
                }
                _ => prop_assert!(same(value, want), "{key}: {value} against {want}"),
            }
        }
    }
    // A line fits its limit, unless what is never cut (keys, numbers, the identity) is longer
    // than the limit alone: then every string value that can be cut is empty.
    if let Some(max) = case.max_line {
        if raw.len() > max {
            for (key, value) in &line {
                let never_cut = ["level", "target"].contains(&key.as_str())
                    || ["NaN", "inf", "-inf"].contains(&value.as_str().unwrap_or(""));
                if let (Json::String(s), false) = (value, never_cut) {
                    prop_assert!(s.is_empty(), "{key} kept {s:?} in a line over {max}: {raw}");
                }
            }
        }
    }
    // What the case met.
    let event_names: Vec<&str> = case
        .event
        .iter()
        .filter(|(_, v)| v.json().is_some())
        .map(|(n, _)| *n)
        .collect();
    for (depth, span) in case.spans.iter().rev().enumerate() {
        for (name, value) in &span.fields {
            if value.json().is_none() {
                continue;
            }
            if event_names.contains(name) {
                counts.add("span field hidden by the event's");
            }
            let nearer = &case.spans[case.spans.len() - depth..];
            if nearer.iter().any(|s| {
                s.fields
                    .iter()
                    .any(|(n, v)| n == name && v.json().is_some())
            }) {
                counts.add("span field hidden by a nearer span's");
            }
        }
        if !span.records.is_empty() {
            counts.add("span.record");
        }
    }
    let named = case
        .event
        .iter()
        .filter(|(name, _)| *name != "message")
        .map(|(name, value)| (name, value, false))
        .chain(
            case.spans
                .iter()
                .flat_map(|s| s.fields.iter().map(|(name, value)| (name, value, true))),
        );
    for (name, value, in_span) in named {
        if value.json().is_none() {
            counts.add("valueless field");
        }
        if key_for(name, in_span) != *name {
            counts.add("renamed field");
        }
        if name.starts_with("fields.") {
            counts.add("`fields.` prefix");
        }
        if name.contains('.') && !name.starts_with("fields.") {
            counts.add("dotted name");
        }
        if name.contains(['\n', '"']) {
            counts.add("name needing escapes");
        }
        if !name.is_ascii() {
            counts.add("non-ASCII name");
        }
    }
    let mut seen = Vec::new();
    for (name, value) in &case.event {
        if value.json().is_some() {
            if seen.contains(name) {
                counts.add("repeated event field");
            }
            seen.push(name);
        }
    }
    Ok(())
}

#[test]
fn every_line_is_what_the_contract_says() {
    let cases = std::env::var("CONTRACT_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let counts = std::cell::RefCell::new(Counts::default());
    let result = runner.run(&case(), |case| check(&case, &mut counts.borrow_mut()));
    let counts = counts.into_inner();
    println!("{cases} cases:");
    for (kind, n) in &counts.0 {
        println!("  {kind}: {}", n.load(Ordering::Relaxed));
    }
    if let Err(e) = result {
        panic!("{e}");
    }
    for kind in [
        "span field hidden by the event's",
        "span field hidden by a nearer span's",
        "span.record",
        "valueless field",
        "renamed field",
        "`fields.` prefix",
        "dotted name",
        "name needing escapes",
        "non-ASCII name",
        "repeated event field",
        "lines cut to their limit",
    ] {
        let met = counts.0.get(kind).map_or(0, |n| n.load(Ordering::Relaxed));
        assert!(met >= cases as usize / 50, "{kind}: met {met} times");
    }
}

#[test]
fn wide_events_keep_the_contract() {
    let mut runner = TestRunner::new(Config {
        cases: 200,
        failure_persistence: None,
        ..Config::default()
    });
    let counts = std::cell::RefCell::new(Counts::default());
    let result = runner.run(&wide_case(), |case| check(&case, &mut counts.borrow_mut()));
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------------------
// Regressions.

fn one_line(f: impl FnOnce()) -> (Json, String) {
    let out = Capture::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
    (out.only_line(), out.text())
}

#[test]
fn a_field_without_a_value_hides_nothing() {
    let (line, _) = one_line(|| {
        let span = info_span!("req", user = "ada");
        let _e = span.enter();
        let user: Option<&str> = None;
        info!(user, "no user of its own");
    });
    assert_eq!(line["user"], "ada");

    let (line, _) = one_line(|| info!(a = None::<u64>, a = 1u64, "x"));
    assert_eq!(line["a"], 1);

    let (line, _) = one_line(|| info!(message = tracing::field::Empty, message = "m"));
    assert_eq!(line["message"], "m");
}

#[test]
fn c1_controls_are_escaped() {
    let (line, text) = one_line(|| info!(field = "a\u{85}b\u{9b}31m", "x\u{85}y"));
    assert!(
        !text.contains('\u{85}') && !text.contains('\u{9b}'),
        "{text}"
    );
    assert!(text.contains("\\u0085") && text.contains("\\u009b"));
    assert_eq!(line["field"], "a\u{85}b\u{9b}31m");
    assert_eq!(line["message"], "x\u{85}y");
}

#[test]
fn every_float_reads_back_with_a_default_parser() {
    let (line, text) = one_line(|| {
        info!(
            max = f64::MAX,
            min = f64::MIN,
            tiny = 1e-300,
            small = 1.5e-7,
            plain = 2.5,
            "floats"
        )
    });
    assert!(!text.contains("179769313486231570000"), "{text}");
    assert_eq!(line["max"].as_f64(), Some(f64::MAX));
    assert_eq!(line["min"].as_f64(), Some(f64::MIN));
    assert_eq!(line["tiny"].as_f64(), Some(1e-300));
    assert_eq!(line["small"].as_f64(), Some(1.5e-7));
    assert_eq!(line["plain"].as_f64(), Some(2.5));
}

#[test]
fn a_spans_non_finite_float_is_never_cut() {
    let out = Capture::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_max_line_bytes(260)
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = info_span!("s", ratio = f64::NAN, bound = f64::NEG_INFINITY);
        let _e = span.enter();
        info!(long = "x".repeat(500).as_str(), "cut me");
    });
    let line = out.only_line();
    assert_eq!(line["truncated"], true);
    assert_eq!(line["ratio"], "NaN");
    assert_eq!(line["bound"], "-inf");
}

/// The rules on a deep tree whose spans share their names: nearest wins at every depth,
/// the first of a name within a span, and `record` replaces a span's own value only.
#[test]
fn deep_trees_with_shared_names_keep_the_rules() {
    let (line, _) = one_line(|| {
        let mut spans: Vec<tracing::Span> = Vec::new();
        for depth in 0..20u64 {
            let parent = spans.last().and_then(tracing::Span::id);
            let span = info_span!(
                parent: parent,
                "layer",
                id = depth,
                shared = depth,
                first = depth,
                first = 1000 + depth,
                late = tracing::field::Empty,
                own_0 = depth
            );
            spans.push(span);
        }
        // Records at the root, in the middle and at the leaf.
        spans[0].record("late", "root");
        spans[10].record("late", "middle");
        spans[0].record("shared", 999u64);
        spans[19].record("id", 77u64);
        let _entered: Vec<_> = spans.iter().map(|s| s.enter()).collect();
        info!(shared = "event", "deep");
    });
    // The event's own field beats every span's.
    assert_eq!(line["shared"], "event");
    // The leaf is nearest: its recorded value.
    assert_eq!(line["id"], 77);
    // Within a span the first of a name wins; the leaf's.
    assert_eq!(line["first"], 19);
    // `late` was recorded at depth 10 and 0: the nearer one.
    assert_eq!(line["late"], "middle");
    assert_eq!(line["own_0"], 19);
    common::assert_no_duplicate_keys(&serde_json::to_string(&line).unwrap());
    let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.iter()
            .filter(|k| ["id", "shared", "first", "late", "own_0"].contains(&k.as_str()))
            .count(),
        5
    );
}

/// The line for an event inside a span, both given by field names and values.
fn line_for(span: &[(&'static str, i64)], event: &[(&'static str, i64)]) -> (Json, String) {
    let names = |fields: &[(&'static str, i64)]| -> &'static [&'static str] {
        Box::leak(fields.iter().map(|(n, _)| *n).collect::<Vec<_>>().into())
    };
    let values =
        |fields: &[(&'static str, i64)]| -> Vec<i64> { fields.iter().map(|(_, v)| *v).collect() };
    let (span_values, event_values) = (values(span), values(event));
    let (span_names, event_names) = (names(span), names(event));
    one_line(|| {
        let span_meta = common::dynamic_callsite(span_names, "contract", Kind::SPAN);
        let dyns: Vec<Option<&dyn Value>> =
            span_values.iter().map(|v| Some(v as &dyn Value)).collect();
        let span = tracing::Span::new(span_meta, &span_meta.fields().value_set_all(&dyns));
        let _e = span.enter();
        let event_meta = common::dynamic_callsite(event_names, "contract", Kind::EVENT);
        let dyns: Vec<Option<&dyn Value>> =
            event_values.iter().map(|v| Some(v as &dyn Value)).collect();
        tracing::Event::dispatch(event_meta, &event_meta.fields().value_set_all(&dyns));
    })
}

#[test]
fn non_ascii_names_shared_by_a_span_and_its_event_are_written_once() {
    // `€` and `→` start with the byte that also starts U+2028; `\u{85}` is a C1 control,
    // escaped on the line; `日本` and `é` are other multi-byte names.
    for name in ["€", "prix €", "a→b", "x\u{85}y", "日本", "é", "\u{2028}"] {
        let (line, text) = line_for(&[(name, 1), ("other", 2)], &[(name, 3)]);
        assert_eq!(line[name], 3, "the event's value wins for {name:?}: {text}");
        assert_eq!(line["other"], 2, "{text}");
    }
    // A span with such a name twice: the first wins, once.
    let (line, text) = line_for(&[("€", 1), ("€", 2)], &[("€x", 3)]);
    assert_eq!(
        (line["€"].clone(), line["€x"].clone()),
        (1.into(), 3.into()),
        "{text}"
    );
}

/// The line for one event of `fields` (names and values, `None` for no value) built at run
/// time: as wide as one likes.
fn wide_line(fields: &[(&'static str, Option<String>)]) -> Json {
    let names: &'static [&'static str] =
        Box::leak(fields.iter().map(|(n, _)| *n).collect::<Vec<_>>().into());
    one_line(|| {
        let meta = common::dynamic_callsite(names, "contract", Kind::EVENT);
        let dyns: Vec<Option<&dyn Value>> = fields
            .iter()
            .map(|(_, v)| v.as_ref().map(|v| v as &dyn Value))
            .collect();
        tracing::Event::dispatch(meta, &meta.fields().value_set_all(&dyns));
    })
    .0
}

fn leaked(name: String) -> &'static str {
    Box::leak(name.into_boxed_str())
}

#[test]
fn an_event_of_a_thousand_fields_with_its_message_last_is_right() {
    let mut fields: Vec<(&'static str, Option<String>)> = (0..999)
        .map(|i| (leaked(format!("f{i}")), Some(format!("v{i}"))))
        .collect();
    fields.push(("message", Some("the message".into())));
    let line = wide_line(&fields);
    assert_eq!(line["message"], "the message");
    assert!(line.get("fields.message").is_none(), "{line}");
    for i in [0, 63, 64, 254, 255, 998] {
        assert_eq!(line[format!("f{i}")], format!("v{i}"), "field {i}");
    }
    assert_eq!(
        line.as_object().unwrap().len(),
        999 + 4 + 1,
        "every field, and `ecs`"
    );
}

#[test]
fn past_64_fields_a_valueless_field_still_hides_nothing() {
    // Fields 70 and 80 share a name; 70 has no value, so 80's value is the one written.
    let mut fields: Vec<(&'static str, Option<String>)> = (0..100)
        .map(|i| (leaked(format!("f{i}")), Some(format!("v{i}"))))
        .collect();
    fields[70] = ("dup", None);
    fields[80] = ("dup", Some("second".into()));
    fields[90] = ("dup", Some("third".into()));
    let line = wide_line(&fields);
    assert_eq!(line["dup"], "second", "{line}");
}
