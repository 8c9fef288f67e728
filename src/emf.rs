//! CloudWatch Embedded Metric Format: log lines that CloudWatch Logs turns into metrics.
//!
//! Each record is one line of JSON:
//!
//! ```text
//! {"_aws":{"Timestamp":1764403200000,"CloudWatchMetrics":[{"Namespace":"ECS/TaskMetrics",
//!  "Dimensions":[["ClusterName","ServiceName","ContainerName"]],
//!  "Metrics":[{"Name":"CpuUtilization","Unit":"Percent"},…]}]},
//!  "ClusterName":"prod-web","ServiceName":"orders-api","ContainerName":"app","TaskId":"9c2b…",
//!  "CpuUtilization":23,…}
//! ```
//!
//! [`write_record`] writes any record and enforces the specification's limits (a namespace of
//! 1 to 1,024 characters, at most 30 dimensions, names unique across dimensions, properties and
//! metrics; more than 100 metrics are split over several lines). [`task_records`] turns
//! [`TaskFigures`] into a record per container and one for the task.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::json::write_json_str;
use crate::metadata::EcsMetadata;
use crate::stats::{TaskFigures, Usage};

/// The namespace [`task_records`] uses unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "ECS/TaskMetrics";
/// Dimensions per directive the specification allows.
pub const MAX_DIMENSIONS: usize = 30;
/// Metrics per directive the specification allows.
pub const MAX_METRICS: usize = 100;
const MAX_NAME_CHARS: usize = 1024;

/// A CloudWatch unit (the ones these metrics use, and a few more).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unit {
    /// `Percent`.
    Percent,
    /// `Bytes`.
    Bytes,
    /// `Bytes/Second`.
    BytesPerSecond,
    /// `Count`.
    Count,
    /// `Count/Second`.
    CountPerSecond,
    /// `Seconds`.
    Seconds,
    /// `Milliseconds`.
    Milliseconds,
    /// `None`: a plain number.
    None,
}

impl Unit {
    /// The unit as CloudWatch spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Percent => "Percent",
            Unit::Bytes => "Bytes",
            Unit::BytesPerSecond => "Bytes/Second",
            Unit::Count => "Count",
            Unit::CountPerSecond => "Count/Second",
            Unit::Seconds => "Seconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One metric value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metric<'a> {
    /// Its name, also its key on the line.
    pub name: &'a str,
    /// Its unit.
    pub unit: Unit,
    /// Its value; non-finite values are left out (CloudWatch would reject the line).
    pub value: f64,
}

/// Why a record was not written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmfError {
    /// The namespace is empty, blank or longer than 1,024 characters.
    BadNamespace(String),
    /// More than 30 dimensions.
    TooManyDimensions(usize),
    /// A name or a dimension value is empty or longer than 1,024 characters.
    BadName(String),
    /// Two members share a key (or one is `_aws`).
    DuplicateKey(String),
}

impl fmt::Display for EmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmfError::BadNamespace(ns) => write!(
                f,
                "EMF namespace must have 1 to 1024 characters, not all blank: {ns:?}"
            ),
            EmfError::TooManyDimensions(n) => write!(
                f,
                "EMF allows {MAX_DIMENSIONS} dimensions per directive, not {n}"
            ),
            EmfError::BadName(name) => write!(
                f,
                "EMF names and dimension values must have 1 to 1024 characters: {name:?}"
            ),
            EmfError::DuplicateKey(key) => write!(f, "EMF record has the key {key:?} twice"),
        }
    }
}

impl std::error::Error for EmfError {}

/// Writes one EMF record as one line (several when there are more than 100 metrics), each
/// ending with `\n`. `dimensions` are the metrics' dimensions; `properties` are written on
/// the line without becoming dimensions (for search in Logs Insights).
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tracing_aws_ecs::emf::{Metric, Unit, write_record};
///
/// let mut line = String::new();
/// write_record(
///     &mut line,
///     "MyService",
///     &[("ClusterName", "prod")],
///     &[("TaskId", "abc")],
///     &[Metric { name: "QueueDepth", unit: Unit::Count, value: 7.0 }],
///     UNIX_EPOCH + Duration::from_millis(1_764_403_200_000),
/// )?;
/// assert_eq!(
///     line,
///     r#"{"_aws":{"Timestamp":1764403200000,"CloudWatchMetrics":[{"Namespace":"MyService","Dimensions":[["ClusterName"]],"Metrics":[{"Name":"QueueDepth","Unit":"Count"}]}]},"ClusterName":"prod","TaskId":"abc","QueueDepth":7}
/// "#
/// );
/// # Ok::<(), tracing_aws_ecs::emf::EmfError>(())
/// ```
pub fn write_record(
    out: &mut String,
    namespace: &str,
    dimensions: &[(&str, &str)],
    properties: &[(&str, &str)],
    metrics: &[Metric<'_>],
    timestamp: SystemTime,
) -> Result<(), EmfError> {
    check_namespace(namespace)?;
    if dimensions.len() > MAX_DIMENSIONS {
        return Err(EmfError::TooManyDimensions(dimensions.len()));
    }
    let metrics: Vec<&Metric<'_>> = metrics.iter().filter(|m| m.value.is_finite()).collect();
    let keys = dimensions
        .iter()
        .chain(properties)
        .map(|(k, _)| *k)
        .chain(metrics.iter().map(|m| m.name));
    let mut seen: Vec<&str> = vec!["_aws"];
    for key in keys {
        if key.is_empty() || key.chars().count() > MAX_NAME_CHARS {
            return Err(EmfError::BadName(key.to_owned()));
        }
        if seen.contains(&key) {
            return Err(EmfError::DuplicateKey(key.to_owned()));
        }
        seen.push(key);
    }
    if let Some((_, value)) = dimensions
        .iter()
        .find(|(_, v)| v.is_empty() || v.chars().count() > MAX_NAME_CHARS)
    {
        return Err(EmfError::BadName((*value).to_owned()));
    }
    let millis = timestamp
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    for chunk in metrics.chunks(MAX_METRICS) {
        // Writing to a String cannot fail.
        let _ = write_line(out, namespace, dimensions, properties, chunk, millis);
    }
    Ok(())
}

/// Whether CloudWatch accepts `namespace`: [`EmfError::BadNamespace`] when it does not.
pub fn check_namespace(namespace: &str) -> Result<(), EmfError> {
    if namespace.trim().is_empty() || namespace.chars().count() > MAX_NAME_CHARS {
        return Err(EmfError::BadNamespace(namespace.to_owned()));
    }
    Ok(())
}

fn write_line(
    out: &mut String,
    namespace: &str,
    dimensions: &[(&str, &str)],
    properties: &[(&str, &str)],
    metrics: &[&Metric<'_>],
    millis: u128,
) -> fmt::Result {
    write!(
        out,
        "{{\"_aws\":{{\"Timestamp\":{millis},\"CloudWatchMetrics\":[{{\"Namespace\":"
    )?;
    write_json_str(out, namespace)?;
    out.push_str(",\"Dimensions\":[[");
    for (i, (key, _)) in dimensions.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_json_str(out, key)?;
    }
    out.push_str("]],\"Metrics\":[");
    for (i, metric) in metrics.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"Name\":");
        write_json_str(out, metric.name)?;
        write!(out, ",\"Unit\":\"{}\"}}", metric.unit.as_str())?;
    }
    out.push_str("]}]}");
    for (key, value) in dimensions.iter().chain(properties) {
        out.push(',');
        write_json_str(out, key)?;
        out.push(':');
        write_json_str(out, value)?;
    }
    for metric in metrics {
        out.push(',');
        write_json_str(out, metric.name)?;
        write!(out, ":{}", metric.value)?;
    }
    out.push_str("}\n");
    Ok(())
}

/// The metrics of one container's or task's usage.
fn metrics_of(usage: &Usage) -> Vec<Metric<'static>> {
    let mut metrics = vec![Metric {
        name: "CpuUtilization",
        unit: Unit::Percent,
        value: usage.cpu_percent,
    }];
    let mut add = |name, unit, value: Option<f64>| {
        if let Some(value) = value {
            metrics.push(Metric { name, unit, value });
        }
    };
    let bytes = |b: Option<u64>| b.map(|b| b as f64);
    add("MemoryUsed", Unit::Bytes, bytes(usage.memory_used_bytes));
    add("MemoryUtilization", Unit::Percent, usage.memory_percent);
    add(
        "NetworkRxBytesPerSecond",
        Unit::BytesPerSecond,
        usage.network_rx_bytes_per_second,
    );
    add(
        "NetworkTxBytesPerSecond",
        Unit::BytesPerSecond,
        usage.network_tx_bytes_per_second,
    );
    add(
        "StorageReadBytes",
        Unit::Bytes,
        bytes(usage.block_read_bytes),
    );
    add(
        "StorageWriteBytes",
        Unit::Bytes,
        bytes(usage.block_write_bytes),
    );
    add("Pids", Unit::Count, bytes(usage.pids));
    metrics
}

/// EMF lines for a task's figures: one record per container (internal ones, such as the
/// awsvpc pause container, left out) with the dimensions `ClusterName`, `ServiceName` (or
/// `TaskDefinitionFamily` when the task has no service) and `ContainerName`, and one for the
/// task without `ContainerName`. `TaskId` goes on every line as a property.
///
/// Metrics: `CpuUtilization` (Percent, 100 = one CPU), `MemoryUsed` (Bytes),
/// `MemoryUtilization` (Percent), `NetworkRxBytesPerSecond` and `NetworkTxBytesPerSecond`
/// (Bytes/Second), `StorageReadBytes` and `StorageWriteBytes` (Bytes), `Pids` (Count); the
/// task's record adds `CpuReservationUtilization` (Percent of the task's CPU reservation).
pub fn task_records(
    figures: &TaskFigures,
    metadata: Option<&EcsMetadata>,
    namespace: &str,
    timestamp: SystemTime,
) -> Result<String, EmfError> {
    let mut dimensions: Vec<(&str, &str)> = Vec::new();
    if let Some(cluster) = metadata.and_then(EcsMetadata::cluster_name) {
        dimensions.push(("ClusterName", cluster));
    }
    match (
        metadata.and_then(EcsMetadata::service_name),
        metadata.and_then(EcsMetadata::family),
    ) {
        (Some(service), _) => dimensions.push(("ServiceName", service)),
        (None, Some(family)) => dimensions.push(("TaskDefinitionFamily", family)),
        (None, None) => {}
    }
    let properties: Vec<(&str, &str)> = metadata
        .and_then(EcsMetadata::task_id)
        .map(|id| ("TaskId", id))
        .into_iter()
        .collect();

    let mut out = String::new();
    for (name, container) in &figures.containers {
        if name.starts_with("~internal~") {
            continue;
        }
        let mut with_container = dimensions.clone();
        with_container.push(("ContainerName", name));
        write_record(
            &mut out,
            namespace,
            &with_container,
            &properties,
            &metrics_of(&container.usage),
            timestamp,
        )?;
    }
    let t = &figures.task;
    let mut task_metrics = metrics_of(&t.usage);
    if let Some(reservation) = t.cpu_reservation_percent {
        task_metrics.push(Metric {
            name: "CpuReservationUtilization",
            unit: Unit::Percent,
            value: reservation,
        });
    }
    write_record(
        &mut out,
        namespace,
        &dimensions,
        &properties,
        &task_metrics,
        timestamp,
    )?;
    Ok(out)
}
