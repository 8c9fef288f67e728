//! Property tests: the formatter with arbitrary field names, values, messages and span
//! fields (control characters, lossily converted bytes, 1 MiB strings) always writes one
//! valid JSON line without duplicate keys, and no field can pass for the ECS identity, even
//! once CloudWatch Logs Insights flattens nested objects with dots; the identity derivation and every payload parser return
//! `Ok` or `Err` on anything, never panic.

mod common;

use common::{Capture, assert_no_duplicate_keys, fixture};
use proptest::prelude::*;
use serde_json::Value;
use tracing::Metadata;
use tracing::field::Value as TracingValue;
use tracing::metadata::Kind;
use tracing_aws_ecs::metadata::{Container, Task};
use tracing_aws_ecs::stats::{ContainerFigures, ContainerStats, TaskFigures, TaskStats};
use tracing_aws_ecs::{EcsMetadata, FieldScheme};
use tracing_subscriber::prelude::*;

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

/// A callsite with these four field names (leaked: a few hundred per run).
fn callsite(names: [String; 4], kind: Kind) -> &'static Metadata<'static> {
    let names: &'static [&'static str] = Box::leak(Box::new(names.map(leak)));
    common::dynamic_callsite(names, "properties", kind)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..48)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
        proptest::collection::vec(
            prop_oneof![
                Just('\n'),
                Just('"'),
                Just('\\'),
                Just('\u{2028}'),
                Just('\u{1b}'),
                Just('\0'),
                Just('é'),
                Just('a')
            ],
            0..24
        )
        .prop_map(|c| c.into_iter().collect()),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => text(),
        1 => prop_oneof![Just("message"), Just("level"), Just("ecs"), Just("fields.level"), Just("timestamp"), Just("truncated"), Just("a")].prop_map(String::from),
    ]
}

/// Names that could pass for a scheme's identity keys, on the line or once flattened.
fn spoofing_name() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => text(),
        4 => prop_oneof![
            Just("ecs"), Just("ecs."), Just("ecs.cluster"), Just("ecs.task_arn"), Just("ecs.image"),
            Just("ecs.cluster.x"), Just("fields.ecs.cluster"), Just("ecs_cluster"), Just("ecs_task_arn"),
            Just("ecs_anything"), Just("container_name"), Just("container_id"), Just("container_image"),
            Just("container"), Just("container.name"), Just("container.image.name"), Just("container.image.tags"),
            Just("cloud"), Just("cloud.region"), Just("cloud.provider"), Just("aws.ecs.task.arn"),
            Just("aws.ecs.cluster.arn"), Just("aws.ecs"), Just("aws.ecs.anything"), Just("aws_region"),
        ].prop_map(String::from),
    ]
}

/// Keys joined with dots down nested objects, as Logs Insights flattens them, with each
/// value; every repeat of a flattened key is kept.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, out);
            }
        }
        leaf => out.push((prefix.to_owned(), leaf.clone())),
    }
}

/// The identity keys and values one scheme writes for the EC2 fixture, flattened.
fn identity_of(scheme: FieldScheme) -> Vec<(String, Value)> {
    let text = emit(
        ["a", "b", "c", "d"].map(String::from),
        Default::default(),
        ["s1", "s2", "s3", "s4"].map(String::from),
        Default::default(),
        scheme,
        1 << 20,
    );
    let line: Value = serde_json::from_str(text.trim_end()).unwrap();
    let mut flat = Vec::new();
    flatten("", &line, &mut flat);
    flat.retain(|(key, _)| {
        ![
            "timestamp",
            "level",
            "target",
            "message",
            "a",
            "b",
            "c",
            "d",
            "s1",
            "s2",
            "s3",
            "s4",
        ]
        .contains(&key.as_str())
    });
    assert!(flat.len() >= 4, "{flat:?}");
    flat
}

/// Dispatches one event with `names`/`values` inside a span with `span_names`/`span_values`,
/// and returns what the layer wrote.
fn emit(
    names: [String; 4],
    values: [String; 4],
    span_names: [String; 4],
    span_values: [String; 4],
    scheme: FieldScheme,
    max: usize,
) -> String {
    let event_meta = callsite(names, Kind::EVENT);
    let span_meta = callsite(span_names, Kind::SPAN);
    let out = Capture::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(
            EcsMetadata::from_json(
                &fixture("ec2-v4-container.json"),
                Some(&fixture("ec2-v4-task.json")),
            )
            .unwrap(),
        )
        .with_scheme(scheme)
        .with_max_line_bytes(max)
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span_fields = span_meta.fields();
        let span_keys: Vec<_> = span_fields.iter().collect();
        let span_values: [&dyn TracingValue; 4] = [
            &span_values[0].as_str(),
            &span_values[1].as_str(),
            &span_values[2].as_str(),
            &span_values[3].as_str(),
        ];
        let span_set = [
            (&span_keys[0], Some(span_values[0])),
            (&span_keys[1], Some(span_values[1])),
            (&span_keys[2], Some(span_values[2])),
            (&span_keys[3], Some(span_values[3])),
        ];
        let span = tracing::Span::new(span_meta, &span_fields.value_set(&span_set));
        let _entered = span.enter();
        let fields = event_meta.fields();
        let keys: Vec<_> = fields.iter().collect();
        let debug = tracing::field::debug(&values[1]);
        let number = values[2].len() as u64;
        let event_values: [&dyn TracingValue; 4] = [
            &values[0].as_str(),
            &debug,
            &number,
            &tracing::field::display(&values[3]),
        ];
        let set = [
            (&keys[0], Some(event_values[0])),
            (&keys[1], Some(event_values[1])),
            (&keys[2], Some(event_values[2])),
            (&keys[3], Some(event_values[3])),
        ];
        tracing::Event::dispatch(event_meta, &fields.value_set(&set));
    });
    out.text()
}

fn check_line(text: &str, max: usize) -> Value {
    assert!(text.ends_with('\n'), "{text:?}");
    assert_eq!(text.matches('\n').count(), 1, "{text:?}");
    assert!(!text.contains('\u{2028}') && !text.contains('\u{2029}'));
    let line = &text[..text.len() - 1];
    assert_no_duplicate_keys(line);
    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert!(value.is_object());
    if line.len() > max {
        assert_eq!(
            value["truncated"], true,
            "over the limit only when cut to the bone: {line}"
        );
    }
    value
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_fields_make_one_valid_line(
        names in [name(), name(), name(), name()],
        values in [text(), text(), text(), text()],
        span_names in [name(), name(), name(), name()],
        span_values in [text(), text(), text(), text()],
        scheme in prop_oneof![Just(FieldScheme::Nested), Just(FieldScheme::FireLens), Just(FieldScheme::OpenTelemetry)],
    ) {
        let text = emit(names.clone(), values.clone(), span_names, span_values, scheme, 1 << 20);
        let line = check_line(&text, 1 << 20);
        // A string value under a unique, unreserved name comes back as it went in.
        let unique = |n: &str| names.iter().filter(|m| m.as_str() == n).count() == 1;
        if unique(&names[0]) && !["message", "level", "timestamp", "target", "ecs", "truncated"].contains(&names[0].as_str()) && !names[0].starts_with("fields.") {
            prop_assert_eq!(&line[names[0].as_str()], &Value::String(values[0].clone()));
        }
    }

    #[test]
    fn no_field_passes_for_the_identity_once_flattened(
        names in [spoofing_name(), spoofing_name(), spoofing_name(), spoofing_name()],
        values in [text(), text(), text(), text()],
        span_names in [spoofing_name(), spoofing_name(), spoofing_name(), spoofing_name()],
        span_values in [text(), text(), text(), text()],
        scheme in prop_oneof![Just(FieldScheme::Nested), Just(FieldScheme::FireLens), Just(FieldScheme::OpenTelemetry)],
    ) {
        let text = emit(names, values, span_names, span_values, scheme, 1 << 20);
        let line = check_line(&text, 1 << 20);
        let mut flat = Vec::new();
        flatten("", &line, &mut flat);
        let mut keys: Vec<&str> = flat.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        let before = keys.len();
        keys.dedup();
        prop_assert_eq!(keys.len(), before, "a flattened key repeats: {}", text);
        // Every identity key holds the identity's value, not a field's.
        for (key, value) in identity_of(scheme) {
            let on_line = flat.iter().find(|(k, _)| *k == key).map(|(_, v)| v);
            prop_assert_eq!(on_line, Some(&value), "{}: {}", key, text);
        }
    }

    #[test]
    fn small_limits_still_make_one_valid_line(
        names in [name(), name(), name(), name()],
        values in [text(), text(), text(), text()],
        span_values in [text(), text(), text(), text()],
        max in 0usize..2048,
    ) {
        let span_names = ["s1", "s2", "s3", "s4"].map(String::from);
        let text = emit(names, values, span_names, span_values, FieldScheme::Nested, max);
        check_line(&text, max);
    }

    #[test]
    fn identity_derivation_never_panics(input in any::<String>()) {
        let payload = serde_json::json!({"TaskARN": input, "Cluster": input, "ContainerARN": input});
        let _ = EcsMetadata::from_values(payload.clone(), Some(payload)).map(|m| (m.cluster_arn().map(str::len), m.task_id().map(str::len)));
    }

    #[test]
    fn well_formed_arns_give_the_identity(
        partition in "aws(-cn|-us-gov)?", region in "[a-z]{2}-[a-z]{4,9}-[1-9]", account in "[0-9]{12}",
        cluster in "[A-Za-z0-9_-]{1,40}", id in "[0-9a-f]{32}",
    ) {
        let task_arn = format!("arn:{partition}:ecs:{region}:{account}:task/{cluster}/{id}");
        let meta = EcsMetadata::from_json(&serde_json::json!({"Labels": {"com.amazonaws.ecs.task-arn": task_arn, "com.amazonaws.ecs.cluster": cluster}}).to_string(), None).unwrap();
        let expected = format!("arn:{partition}:ecs:{region}:{account}:cluster/{cluster}");
        prop_assert_eq!(meta.cluster_arn(), Some(expected.as_str()));
        prop_assert_eq!(meta.task_id(), Some(id.as_str()));
        prop_assert_eq!((meta.partition(), meta.region(), meta.account_id()), (Some(partition.as_str()), Some(region.as_str()), Some(account.as_str())));
    }

    #[test]
    fn payload_parsers_never_panic(value in json_value()) {
        let text = value.to_string();
        let _ = serde_json::from_str::<Container>(&text);
        let _ = serde_json::from_str::<Task>(&text);
        let _ = EcsMetadata::from_values(value.clone(), Some(value.clone()));
        if let Ok(stats) = serde_json::from_str::<ContainerStats>(&text) {
            let _ = ContainerFigures::new(&stats, None, None, Some(&stats));
        }
        if let Ok(stats) = serde_json::from_str::<TaskStats>(&text) {
            let _ = TaskFigures::new(&stats, None, Some(&stats));
        }
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in 0usize..10,
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let names = ["ec2-v4-container.json", "ec2-v4-task.json", "ec2-v4-task-with-tags.json", "ec2-v4-container-stats-bridge.json",
                     "ec2-v4-task-stats.json", "fargate-v4-container.json", "fargate-v4-task.json", "fargate-v4-task-stats.json",
                     "v3-container.json", "v3-task.json"];
        let mut bytes = fixture(names[which]).into_bytes();
        for (at, byte, op) in edits {
            let i = at.index(bytes.len().max(1));
            match op {
                0 if !bytes.is_empty() => bytes[i] = byte,
                1 => bytes.insert(i.min(bytes.len()), byte),
                _ if !bytes.is_empty() => { bytes.remove(i); }
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = EcsMetadata::from_json(&text, Some(&text));
        if let Ok(stats) = serde_json::from_str::<TaskStats>(&text) {
            let task = serde_json::from_str::<Task>(&fixture("ec2-v4-task.json")).ok();
            let _ = TaskFigures::new(&stats, task.as_ref(), None);
        }
        if let Ok(stats) = serde_json::from_str::<ContainerStats>(&text) {
            let _ = ContainerFigures::new(&stats, None, None, None);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn one_mib_strings_are_cut_to_one_line(c in any::<char>(), n in (1usize << 19)..=(1 << 20)) {
        let big: String = std::iter::repeat_n(c, n / c.len_utf8()).collect();
        let names = ["message", "a", "b", "c"].map(String::from);
        let text = emit(names, [big.clone(), big.clone(), String::new(), big.clone()], ["s1", "s2", "s3", "s4"].map(String::from), [big.clone(), String::new(), String::new(), String::new()], FieldScheme::Nested, tracing_aws_ecs::format::DEFAULT_MAX_LINE_BYTES);
        let line = check_line(&text, tracing_aws_ecs::format::DEFAULT_MAX_LINE_BYTES);
        prop_assert!(text.len() - 1 <= tracing_aws_ecs::format::DEFAULT_MAX_LINE_BYTES);
        prop_assert_eq!(&line["truncated"], &Value::Bool(true));
    }
}

/// Arbitrary JSON, biased towards the shapes of metadata and stats payloads.
fn json_value() -> impl Strategy<Value = Value> {
    let keys = prop_oneof![
        Just("Cluster"),
        Just("TaskARN"),
        Just("Containers"),
        Just("Labels"),
        Just("Limits"),
        Just("CPU"),
        Just("Memory"),
        Just("DockerId"),
        Just("Name"),
        Just("Networks"),
        Just("cpu_stats"),
        Just("precpu_stats"),
        Just("cpu_usage"),
        Just("total_usage"),
        Just("system_cpu_usage"),
        Just("online_cpus"),
        Just("memory_stats"),
        Just("usage"),
        Just("limit"),
        Just("stats"),
        Just("networks"),
        Just("rx_bytes"),
        Just("read"),
        Just("preread"),
        Just("blkio_stats"),
        Just("io_service_bytes_recursive"),
        Just("op"),
        Just("value"),
        Just("LaunchType"),
        Just("Revision"),
    ]
    .prop_map(String::from);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        any::<String>().prop_map(Value::String),
        Just(Value::String("2020-10-02T00:51:13.410254284Z".into())),
        Just(Value::String("0001-01-01T00:00:00Z".into())),
        Just(Value::from(u64::MAX)),
    ];
    leaf.prop_recursive(4, 64, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(keys.clone(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
