//! EMF lines follow the specification: structure, limits, units, one line per record.

mod common;

use std::time::{Duration, UNIX_EPOCH};

use common::{assert_emf, fixture};
use serde_json::Value;
use tracing_aws_ecs::EcsMetadata;
use tracing_aws_ecs::emf::{EmfError, Metric, Unit, task_records, write_record};
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
    let at = UNIX_EPOCH + Duration::from_millis(1_764_403_200_123);
    let records = lines(&task_records(&figures, Some(&meta), "ECS/TaskMetrics", at).unwrap());
    assert_eq!(records.len(), 2, "one container, then the task");
    for record in &records {
        assert_emf(record);
        assert_eq!(record["_aws"]["Timestamp"], 1_764_403_200_123u64);
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
    write_record(
        &mut out,
        "ns \"quoted\"",
        &[("d", "v\n")],
        &[("p", "q")],
        &metrics,
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    )
    .unwrap();
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
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    )
    .unwrap();
    let lines = lines(&out);
    let counts: Vec<usize> = lines.iter().map(|l| assert_emf(l).len()).collect();
    assert_eq!(counts, [100, 100, 50]);
}

#[test]
fn limits_are_enforced() {
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
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
        write_record(&mut out, &"n".repeat(1025), &[], &[], &one, at),
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
        Err(EmfError::BadName(_))
    ));
    assert_eq!(lines(&out).len(), 1, "only the valid record was written");
}
