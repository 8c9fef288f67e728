//! EMF lines follow the specification and what CloudWatch accepts: structure, limits, units,
//! one line per record; every rule CloudWatch enforces is an error or a value left out, never
//! a line CloudWatch would drop.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{assert_emf, fixture};
use proptest::prelude::*;
use serde_json::Value;
use tracing_aws_ecs::EcsMetadata;
use tracing_aws_ecs::emf::{EmfError, Metric, Unit, check_namespace, task_records, write_record};
use tracing_aws_ecs::stats::{TaskFigures, TaskStats};

fn lines(text: &str) -> Vec<Value> {
    assert!(text.ends_with('\n'));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn task_records_from_the_fargate_fixtures() {
    let task = fixture("fargate-v4-task.json");
    let meta = EcsMetadata::from_values(
        serde_json::from_str::<Value>(&task).unwrap()["Containers"][0].clone(),
        Some(serde_json::from_str(&task).unwrap()),
    )
    .unwrap();
    let stats: TaskStats = serde_json::from_str(&fixture("fargate-v4-task-stats.json")).unwrap();
    let figures = TaskFigures::new(&stats, meta.task(), None);
    let at = SystemTime::now();
    let millis = at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let written = task_records(&figures, Some(&meta), "ECS/TaskMetrics", at).unwrap();
    assert!(written.left_out.is_empty());
    let records = lines(&written.lines);
    assert_eq!(records.len(), 2, "one container, then the task");
    for record in &records {
        assert_emf(record);
        assert_eq!(record["_aws"]["Timestamp"], millis);
        assert_eq!(record["ClusterName"], "MyEmptyCluster");
        // No service: the family stands in.
        assert_eq!(record["TaskDefinitionFamily"], "sample-fargate");
        assert_eq!(record["TaskId"], "bfa2636268144d039771334145e490c5");
    }
    let container = &records[0];
    assert_eq!(container["ContainerName"], "curltest");
    assert_eq!(
        container["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
        serde_json::json!(["ClusterName", "TaskDefinitionFamily", "ContainerName"])
    );
    assert_eq!(container["NetworkRxBytesPerSecond"], 43.298687872232854);
    assert_eq!(container["MemoryUsed"], 3_416_064);
    assert!(records[1].get("ContainerName").is_none());
}

#[test]
fn names_and_units() {
    let mut out = String::new();
    let metrics = [
        Metric {
            name: "a",
            unit: Unit::Percent,
            value: 1.5,
        },
        Metric {
            name: "b",
            unit: Unit::BytesPerSecond,
            value: 2.0,
        },
        Metric {
            name: "nan",
            unit: Unit::Count,
            value: f64::NAN,
        },
    ];
    let left_out = write_record(
        &mut out,
        "ns \"quoted\"",
        &[("d", "v\n")],
        &[("p", "q")],
        &metrics,
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(left_out, ["nan"]);
    let line = &lines(&out)[0];
    assert_eq!(
        assert_emf(line),
        ["a", "b"],
        "non-finite values are left out"
    );
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "ns \"quoted\""
    );
    assert_eq!(
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Unit"],
        "Bytes/Second"
    );
    assert_eq!(line["d"], "v\n");
    assert_eq!(out.matches('\n').count(), 1);
}

#[test]
fn more_than_100_metrics_split_over_lines() {
    let names: Vec<String> = (0..250).map(|i| format!("m{i}")).collect();
    let metrics: Vec<Metric> = names
        .iter()
        .map(|n| Metric {
            name: n,
            unit: Unit::Count,
            value: 1.0,
        })
        .collect();
    let mut out = String::new();
    write_record(
        &mut out,
        "ns",
        &[("d", "v")],
        &[],
        &metrics,
        SystemTime::now(),
    )
    .unwrap();
    let lines = lines(&out);
    let counts: Vec<usize> = lines.iter().map(|l| assert_emf(l).len()).collect();
    assert_eq!(counts, [100, 100, 50]);
}

#[test]
fn limits_are_enforced() {
    let at = SystemTime::now();
    let one = [Metric {
        name: "m",
        unit: Unit::Count,
        value: 1.0,
    }];
    let mut out = String::new();
    assert!(matches!(
        write_record(&mut out, " ", &[], &[], &one, at),
        Err(EmfError::BadNamespace(_))
    ));
    assert!(matches!(
        write_record(&mut out, &"n".repeat(256), &[], &[], &one, at),
        Err(EmfError::BadNamespace(_))
    ));
    let keys: Vec<String> = (0..31).map(|i| format!("d{i}")).collect();
    let dims: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
    assert_eq!(
        write_record(&mut out, "ns", &dims, &[], &one, at),
        Err(EmfError::TooManyDimensions(31))
    );
    assert!(write_record(&mut out, "ns", &dims[..30], &[], &one, at).is_ok());
    assert_eq!(
        write_record(&mut out, "ns", &[("m", "v")], &[], &one, at),
        Err(EmfError::DuplicateKey("m".into()))
    );
    assert_eq!(
        write_record(&mut out, "ns", &[("_aws", "v")], &[], &one, at),
        Err(EmfError::DuplicateKey("_aws".into()))
    );
    assert!(matches!(
        write_record(&mut out, "ns", &[("d", "")], &[], &one, at),
        Err(EmfError::BadDimension(_))
    ));
    assert_eq!(lines(&out).len(), 1, "only the valid record was written");
}

fn one() -> [Metric<'static>; 1] {
    [Metric {
        name: "m",
        unit: Unit::Count,
        value: 1.0,
    }]
}

#[test]
fn namespaces_cloudwatch_refuses() {
    for bad in [
        "".to_owned(),
        "  ".to_owned(),
        "n".repeat(256),
        "Métriques".to_owned(),
        ":leading-colon".to_owned(),
        "AWS/ECS".to_owned(),
    ] {
        assert!(
            matches!(check_namespace(&bad), Err(EmfError::BadNamespace(_))),
            "{bad:?}"
        );
        let mut out = String::new();
        assert!(write_record(&mut out, &bad, &[], &[], &one(), SystemTime::now()).is_err());
        assert!(out.is_empty());
    }
    for good in [
        "ECS/TaskMetrics",
        "n".repeat(255).as_str(),
        "a:b",
        "aws/lowercase",
    ] {
        assert!(check_namespace(good).is_ok(), "{good:?}");
    }
}

#[test]
fn dimensions_cloudwatch_refuses() {
    let long_name = "d".repeat(251);
    let long_value = "v".repeat(1025);
    for (name, value) in [
        (long_name.as_str(), "v"),
        (":d", "v"),
        ("", "v"),
        ("d", "café"),
        ("d", "   "),
        ("d", long_value.as_str()),
    ] {
        let mut out = String::new();
        assert!(
            matches!(
                write_record(
                    &mut out,
                    "ns",
                    &[(name, value)],
                    &[],
                    &one(),
                    SystemTime::now()
                ),
                Err(EmfError::BadDimension(_))
            ),
            "{name:?}={value:?}"
        );
        assert!(out.is_empty());
    }
    let ok_name = "d".repeat(250);
    let mut out = String::new();
    write_record(
        &mut out,
        "ns",
        &[(&ok_name, "v")],
        &[],
        &one(),
        SystemTime::now(),
    )
    .unwrap();
}

#[test]
fn metric_names_cloudwatch_refuses() {
    let long = "m".repeat(251);
    let mut out = String::new();
    let metrics = [Metric {
        name: &long,
        unit: Unit::Count,
        value: 1.0,
    }];
    assert!(matches!(
        write_record(&mut out, "ns", &[], &[], &metrics, SystemTime::now()),
        Err(EmfError::BadName(_))
    ));
    assert!(out.is_empty());
}

#[test]
fn values_cloudwatch_refuses_are_left_out_and_named() {
    let values = [
        ("huge", 2f64.powi(361)),
        ("tiny", 2f64.powi(-361)),
        ("negative_huge", -(2f64.powi(361))),
        ("infinite", f64::INFINITY),
        ("zero", 0.0),
        ("edge", 2f64.powi(360)),
        ("small_edge", 2f64.powi(-360)),
        ("ordinary", -12.5),
    ];
    let metrics: Vec<Metric> = values
        .iter()
        .map(|(name, value)| Metric {
            name,
            unit: Unit::None,
            value: *value,
        })
        .collect();
    let mut out = String::new();
    let left_out = write_record(&mut out, "ns", &[], &[], &metrics, SystemTime::now()).unwrap();
    assert_eq!(left_out, ["huge", "tiny", "negative_huge", "infinite"]);
    let line = &lines(&out)[0];
    assert_eq!(assert_emf(line), ["zero", "edge", "small_edge", "ordinary"]);
}

#[test]
fn timestamps_cloudwatch_refuses() {
    let now = SystemTime::now();
    let day = Duration::from_secs(24 * 3600);
    let hour = Duration::from_secs(3600);
    for bad in [now - 15 * day, now + 3 * hour, UNIX_EPOCH] {
        let mut out = String::new();
        assert!(
            matches!(
                write_record(&mut out, "ns", &[], &[], &one(), bad),
                Err(EmfError::BadTimestamp(_))
            ),
            "{bad:?}"
        );
        assert!(out.is_empty());
    }
    for good in [now - 13 * day, now + hour] {
        let mut out = String::new();
        write_record(&mut out, "ns", &[], &[], &one(), good).unwrap();
    }
}

#[test]
fn a_first_sample_has_no_cpu_utilization() {
    let stats: TaskStats = serde_json::from_value(serde_json::json!({
        "a": {"name": "/app", "cpu_stats": {"cpu_usage": {"total_usage": 10}}, "precpu_stats": {},
              "memory_stats": {"usage": 1000}},
    }))
    .unwrap();
    let figures = TaskFigures::new(&stats, None, None);
    let records = task_records(&figures, None, "ns", SystemTime::now()).unwrap();
    for line in lines(&records.lines) {
        let names = assert_emf(&line);
        assert!(!names.contains(&"CpuUtilization".to_owned()), "{line}");
        assert!(names.contains(&"MemoryUsed".to_owned()), "{line}");
    }
}

/// What CloudWatch accepts of one EMF line, rule by rule.
fn assert_cloudwatch_accepts(line: &Value, written_at: SystemTime) {
    let names = assert_emf(line);
    let aws = &line["_aws"];
    let namespace = aws["CloudWatchMetrics"][0]["Namespace"].as_str().unwrap();
    assert!(check_namespace(namespace).is_ok(), "{namespace:?}");
    assert!(namespace.len() <= 255 && namespace.is_ascii() && !namespace.starts_with(':'));
    for key in aws["CloudWatchMetrics"][0]["Dimensions"][0]
        .as_array()
        .unwrap()
    {
        let key = key.as_str().unwrap();
        assert!(!key.is_empty() && key.chars().count() <= 250 && !key.starts_with(':'));
        let value = line[key].as_str().unwrap();
        assert!(value.is_ascii() && !value.trim().is_empty() && value.len() <= 1024);
    }
    for name in names {
        assert!(name.chars().count() <= 250);
        let value = line[name.as_str()].as_f64().unwrap();
        let magnitude = value.abs();
        assert!(magnitude == 0.0 || (2f64.powi(-360)..=2f64.powi(360)).contains(&magnitude));
    }
    let millis = aws["Timestamp"].as_u64().unwrap() as i128;
    let at = written_at.duration_since(UNIX_EPOCH).unwrap().as_millis() as i128;
    assert_eq!(millis, at);
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("ok".to_owned()),
        1 => any::<String>(),
        1 => "[ -~]{0,8}",
        1 => Just("AWS/x".to_owned()),
        1 => Just(":x".to_owned()),
        1 => "[a-z]{250,260}",
        1 => Just(" ".to_owned()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever goes in, a line comes out only when CloudWatch accepts all of it.
    #[test]
    fn every_line_written_passes_every_rule(
        namespace in text(),
        dimension in (text(), text()),
        name in text(),
        value in prop_oneof![any::<f64>(), Just(2f64.powi(400)), Just(1e-200 * 1e-200), Just(0.0)],
        offset_hours in -400i64..10,
    ) {
        let now = SystemTime::now();
        let at = if offset_hours < 0 {
            now - Duration::from_secs(offset_hours.unsigned_abs() * 3600)
        } else {
            now + Duration::from_secs(offset_hours as u64 * 3600)
        };
        let metrics = [Metric { name: &name, unit: Unit::Count, value }];
        let mut out = String::new();
        let dimensions = [(dimension.0.as_str(), dimension.1.as_str())];
        match write_record(&mut out, &namespace, &dimensions, &[], &metrics, at) {
            Ok(left_out) => {
                // A record whose every value was left out has no line to write.
                if !out.is_empty() {
                    for line in lines(&out) {
                        assert_cloudwatch_accepts(&line, at);
                    }
                }
                prop_assert_eq!(left_out.is_empty(), !out.is_empty());
            }
            Err(_) => prop_assert!(out.is_empty()),
        }
    }
}
