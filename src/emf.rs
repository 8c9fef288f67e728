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
//! [`write_record`] writes any record and holds it to what CloudWatch accepts, so that no line
//! it writes is dropped:
//!
//! - the namespace: 1 to 255 ASCII characters, not all blank, not starting with `:` nor with
//!   the reserved `AWS/`;
//! - at most 30 dimensions; a dimension name of 1 to 250 characters not starting with `:`, a
//!   dimension value of 1 to 1,024 ASCII characters, not all blank;
//! - a metric name of 1 to 250 characters; names unique across dimensions, properties and
//!   metrics; more than 100 metrics are split over several lines;
//! - a value that is finite and zero or between 2^-360 and 2^360 in magnitude: others are left
//!   out of the line, and [`write_record`] names them;
//! - a timestamp at most 14 days old and at most 2 hours ahead of the clock.
//!
//! Anything else is an [`EmfError`]. [`task_records`] turns [`TaskFigures`] into a record per
//! container and one for the task.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::json::write_json_str;
use crate::metadata::EcsMetadata;
use crate::stats::{TaskFigures, Usage};

/// The namespace [`task_records`] uses unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "ECS/TaskMetrics";
/// Dimensions per directive the specification allows.
pub const MAX_DIMENSIONS: usize = 30;
/// Metrics per directive the specification allows.
pub const MAX_METRICS: usize = 100;
/// The longest namespace CloudWatch accepts, in characters.
const MAX_NAMESPACE_CHARS: usize = 255;
/// The longest dimension or metric name.
const MAX_NAME_CHARS: usize = 250;
/// The longest dimension value.
const MAX_VALUE_CHARS: usize = 1024;
/// How old a timestamp may be.
const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
/// How far ahead of the clock a timestamp may be.
const MAX_AHEAD: Duration = Duration::from_secs(2 * 3600);

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
    /// The namespace is empty, blank, longer than 255 characters, not ASCII, or starts with
    /// `:` or the reserved `AWS/`.
    BadNamespace(String),
    /// More than 30 dimensions.
    TooManyDimensions(usize),
    /// A dimension name is empty, longer than 250 characters or starts with `:`, or a
    /// dimension value is blank, longer than 1,024 characters or not ASCII.
    BadDimension(String),
    /// A metric or property name is empty, or a metric name is longer than 250 characters.
    BadName(String),
    /// Two members share a key (or one is `_aws`).
    DuplicateKey(String),
    /// The timestamp is more than 14 days old or more than 2 hours ahead of the clock.
    BadTimestamp(SystemTime),
}

impl fmt::Display for EmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmfError::BadNamespace(ns) => write!(
                f,
                "EMF namespace must have 1 to 255 ASCII characters, not all blank, and not start \
                 with `:` or `AWS/`: {ns:?}"
            ),
            EmfError::TooManyDimensions(n) => write!(
                f,
                "EMF allows {MAX_DIMENSIONS} dimensions per directive, not {n}"
            ),
            EmfError::BadDimension(what) => write!(
                f,
                "EMF dimension names must have 1 to 250 characters and not start with `:`, \
                 values 1 to 1024 ASCII characters, not all blank: {what:?}"
            ),
            EmfError::BadName(name) => write!(
                f,
                "EMF metric names must have 1 to 250 characters: {name:?}"
            ),
            EmfError::DuplicateKey(key) => write!(f, "EMF record has the key {key:?} twice"),
            EmfError::BadTimestamp(at) => {
                let millis = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
                write!(
                    f,
                    "EMF timestamp {millis} ms is more than 14 days old or 2 hours ahead: \
                     CloudWatch would drop the line"
                )
            }
        }
    }
}

impl std::error::Error for EmfError {}

/// Writes one EMF record as one line (several when there are more than 100 metrics), each
/// ending with `\n`. `dimensions` are the metrics' dimensions; `properties` are written on
/// the line without becoming dimensions (for search in Logs Insights). Returns the names of
/// the metrics left out because CloudWatch would refuse their values (see the module docs).
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use tracing_aws_ecs::emf::{Metric, Unit, write_record};
///
/// let now = SystemTime::now();
/// let mut line = String::new();
/// let left_out = write_record(
///     &mut line,
///     "MyService",
///     &[("ClusterName", "prod")],
///     &[("TaskId", "abc")],
///     &[Metric { name: "QueueDepth", unit: Unit::Count, value: 7.0 }],
///     now,
/// )?;
/// assert!(left_out.is_empty());
/// let millis = now.duration_since(UNIX_EPOCH).unwrap().as_millis();
/// assert_eq!(
///     line,
///     format!(r#"{{"_aws":{{"Timestamp":{millis},"CloudWatchMetrics":[{{"Namespace":"MyService","Dimensions":[["ClusterName"]],"Metrics":[{{"Name":"QueueDepth","Unit":"Count"}}]}}]}},"ClusterName":"prod","TaskId":"abc","QueueDepth":7}}
/// "#)
/// );
/// # Ok::<(), tracing_aws_ecs::emf::EmfError>(())
/// ```
///
/// # Errors
///
/// [`EmfError`] when CloudWatch would refuse the record; nothing is written then.
pub fn write_record<'m>(
    out: &mut String,
    namespace: &str,
    dimensions: &[(&str, &str)],
    properties: &[(&str, &str)],
    metrics: &[Metric<'m>],
    timestamp: SystemTime,
) -> Result<Vec<&'m str>, EmfError> {
    check_namespace(namespace)?;
    check_dimensions(dimensions)?;
    if let Some(metric) = metrics
        .iter()
        .find(|m| m.name.is_empty() || m.name.chars().count() > MAX_NAME_CHARS)
    {
        return Err(EmfError::BadName(metric.name.to_owned()));
    }
    let (metrics, left_out): (Vec<&Metric<'m>>, Vec<&Metric<'m>>) =
        metrics.iter().partition(|m| accepted_value(m.value));
    let keys = dimensions
        .iter()
        .chain(properties)
        .map(|(k, _)| *k)
        .chain(metrics.iter().map(|m| m.name));
    let mut seen: Vec<&str> = vec!["_aws"];
    for key in keys {
        if key.is_empty() {
            return Err(EmfError::BadName(key.to_owned()));
        }
        if seen.contains(&key) {
            return Err(EmfError::DuplicateKey(key.to_owned()));
        }
        seen.push(key);
    }
    let millis = check_timestamp(timestamp)?;
    for chunk in metrics.chunks(MAX_METRICS) {
        // Writing to a String cannot fail.
        let _ = write_line(out, namespace, dimensions, properties, chunk, millis);
    }
    Ok(left_out.into_iter().map(|m| m.name).collect())
}

/// Whether CloudWatch accepts a metric value: finite, and zero or between 2^-360 and 2^360
/// in magnitude.
/// Checks that CloudWatch accepts the dimensions: at most 30, each name 1 to 250 characters
/// not starting with `:`, each value 1 to 1,024 ASCII characters, not all blank.
fn check_dimensions(dimensions: &[(&str, &str)]) -> Result<(), EmfError> {
    if dimensions.len() > MAX_DIMENSIONS {
        return Err(EmfError::TooManyDimensions(dimensions.len()));
    }
    for (name, value) in dimensions {
        let name_ok =
            !name.is_empty() && name.chars().count() <= MAX_NAME_CHARS && !name.starts_with(':');
        let value_ok = !value.trim().is_empty()
            && value.is_ascii()
            && value.chars().count() <= MAX_VALUE_CHARS;
        if !name_ok || !value_ok {
            return Err(EmfError::BadDimension(format!("{name}={value}")));
        }
    }
    Ok(())
}

/// The timestamp in milliseconds, if CloudWatch accepts it: at most 14 days old and 2 hours
/// ahead of the clock.
fn check_timestamp(timestamp: SystemTime) -> Result<u128, EmfError> {
    let now = SystemTime::now();
    let too_old = now.duration_since(timestamp).is_ok_and(|age| age > MAX_AGE);
    let too_new = timestamp
        .duration_since(now)
        .is_ok_and(|ahead| ahead > MAX_AHEAD);
    if too_old || too_new {
        return Err(EmfError::BadTimestamp(timestamp));
    }
    Ok(timestamp
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis()))
}

/// The most values EMF takes in one metric's array.
pub(crate) const MAX_VALUES: usize = 100;

/// A record of `counts` (single values) and `samples` (one value per observation), for
/// [`write_samples_record`].
pub(crate) struct SamplesRecord<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) dimensions: &'a [(&'a str, &'a str)],
    /// The dimensions of the first set: the first `rollup` of them.
    pub(crate) rollup: usize,
    pub(crate) counts: &'a [Metric<'a>],
    pub(crate) samples: (&'a str, Unit, &'a [f64]),
    /// Strings on the first line beside the counts, their values JSON-escaped already.
    pub(crate) properties: &'a [(&'a str, &'a str)],
}

/// Writes `record`, its samples as arrays of at most [`MAX_VALUES`]: several lines when
/// there are more, the counts and properties on the first only. Under two dimension sets:
/// the first `rollup` dimensions, and all of them, so that CloudWatch keeps each metric both
/// for the whole and for each value of the others. Values CloudWatch would refuse are left
/// out.
pub(crate) fn write_samples_record(
    out: &mut String,
    record: &SamplesRecord<'_>,
    timestamp: SystemTime,
) -> Result<(), EmfError> {
    check_namespace(record.namespace)?;
    check_dimensions(record.dimensions)?;
    let millis = check_timestamp(timestamp)?;
    let values: Vec<f64> = record
        .samples
        .2
        .iter()
        .copied()
        .filter(|v| accepted_value(*v))
        .collect();
    let mut chunks = values.chunks(MAX_VALUES);
    // The counts go on the first line, with the first values.
    let first = chunks.next().unwrap_or_default();
    if !record.counts.is_empty() || !first.is_empty() {
        write_samples_line(out, record, true, first, millis);
    }
    for chunk in chunks {
        write_samples_line(out, record, false, chunk, millis);
    }
    Ok(())
}

/// One line of a [`write_samples_record`] record: its counts and properties on the `first`,
/// and `values` of its samples when there are some.
fn write_samples_line(
    out: &mut String,
    record: &SamplesRecord<'_>,
    first: bool,
    values: &[f64],
    millis: u128,
) {
    let SamplesRecord {
        namespace,
        dimensions,
        rollup,
        samples: (name, unit, _),
        ..
    } = *record;
    let (counts, properties) = if first {
        (record.counts, record.properties)
    } else {
        (&[][..], &[][..])
    };
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{{\"_aws\":{{\"Timestamp\":{millis},\"CloudWatchMetrics\":[{{\"Namespace\":"
    );
    let _ = write_json_str(out, namespace);
    out.push_str(",\"Dimensions\":[");
    for (i, set) in [&dimensions[..rollup.min(dimensions.len())], dimensions]
        .iter()
        .enumerate()
    {
        out.push_str(if i > 0 { ",[" } else { "[" });
        for (j, (key, _)) in set.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write_json_str(out, key);
        }
        out.push(']');
    }
    out.push_str("],\"Metrics\":[");
    let named = counts
        .iter()
        .map(|m| (m.name, m.unit))
        .chain((!values.is_empty()).then_some((name, unit)));
    for (i, (metric, unit)) in named.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"Name\":");
        let _ = write_json_str(out, metric);
        let _ = write!(out, ",\"Unit\":\"{}\"}}", unit.as_str());
    }
    out.push_str("]}]}");
    for (key, value) in dimensions {
        out.push(',');
        let _ = write_json_str(out, key);
        out.push(':');
        let _ = write_json_str(out, value);
    }
    for metric in counts {
        out.push(',');
        let _ = write_json_str(out, metric.name);
        let _ = write!(out, ":{}", metric.value);
    }
    if !values.is_empty() {
        out.push(',');
        let _ = write_json_str(out, name);
        out.push_str(":[");
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = crate::json::write_f64(out, *value);
        }
        out.push(']');
    }
    for (key, escaped) in properties {
        out.push(',');
        let _ = write_json_str(out, key);
        let _ = write!(out, ":\"{escaped}\"");
    }
    out.push_str("}\n");
}

fn accepted_value(value: f64) -> bool {
    let magnitude = value.abs();
    value.is_finite()
        && (magnitude == 0.0 || (2f64.powi(-360)..=2f64.powi(360)).contains(&magnitude))
}

/// Whether CloudWatch accepts `namespace`.
///
/// # Errors
///
/// [`EmfError::BadNamespace`] when it is empty or blank, longer than 255 characters, not
/// ASCII, or starts with `:` or the reserved `AWS/`.
pub fn check_namespace(namespace: &str) -> Result<(), EmfError> {
    let ok = !namespace.trim().is_empty()
        && namespace.is_ascii()
        && namespace.len() <= MAX_NAMESPACE_CHARS
        && !namespace.starts_with(':')
        && !namespace.starts_with("AWS/");
    if ok {
        Ok(())
    } else {
        Err(EmfError::BadNamespace(namespace.to_owned()))
    }
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
    let mut metrics = Vec::new();
    // An unknown figure is left out, not published as 0.
    let mut add = |name, unit, value: Option<f64>| {
        if let Some(value) = value {
            metrics.push(Metric { name, unit, value });
        }
    };
    add("CpuUtilization", Unit::Percent, usage.cpu_percent);
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

/// What [`task_records`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Records {
    /// The lines, each ending with `\n`.
    pub lines: String,
    /// The metrics left out because CloudWatch would refuse their values, one name per
    /// record that left it out.
    pub left_out: Vec<&'static str>,
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
///
/// # Errors
///
/// [`EmfError`] when CloudWatch would refuse a record (the namespace, a dimension value, the
/// timestamp); nothing is written then.
pub fn task_records(
    figures: &TaskFigures,
    metadata: Option<&EcsMetadata>,
    namespace: &str,
    timestamp: SystemTime,
) -> Result<Records, EmfError> {
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

    let mut records = Records::default();
    for (name, container) in &figures.containers {
        if name.starts_with("~internal~") {
            continue;
        }
        let mut with_container = dimensions.clone();
        with_container.push(("ContainerName", name));
        let left_out = write_record(
            &mut records.lines,
            namespace,
            &with_container,
            &properties,
            &metrics_of(&container.usage),
            timestamp,
        )?;
        records.left_out.extend(left_out);
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
    let left_out = write_record(
        &mut records.lines,
        namespace,
        &dimensions,
        &properties,
        &task_metrics,
        timestamp,
    )?;
    records.left_out.extend(left_out);
    Ok(records)
}
