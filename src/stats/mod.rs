//! Container and task stats: the Docker stats payloads of `/stats` and `/task/stats`.
//!
//! Counters are `u64` (limits reach `u64::MAX` on cgroup v2 and 9223372036854771712 on
//! cgroup v1); members absent on one platform or cgroup version are `None` or empty.
//! [`TaskFigures`] and [`ContainerFigures`] turn samples into CPU %, memory, network, block
//! I/O and pids.

mod figures;

pub use figures::{ContainerFigures, Skipped, TaskFigures, TaskTotals, Usage};

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::metadata::de;

/// One container's stats (`/stats`, and each entry of `/task/stats`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ContainerStats {
    /// `read`: when this sample was taken (RFC 3339).
    #[serde(default, deserialize_with = "de::string")]
    pub read: Option<String>,
    /// `preread`: when the previous sample was taken; `0001-01-01T00:00:00Z` on the first.
    #[serde(default, deserialize_with = "de::string")]
    pub preread: Option<String>,
    /// `pids_stats`; often `{}` on Fargate.
    #[serde(default, deserialize_with = "de::any")]
    pub pids_stats: Option<PidsStats>,
    /// `blkio_stats`.
    #[serde(default, deserialize_with = "de::any")]
    pub blkio_stats: Option<BlkioStats>,
    /// `num_procs` (Windows).
    #[serde(default, deserialize_with = "de::u64")]
    pub num_procs: Option<u64>,
    /// `storage_stats` (Windows; `{}` on Linux).
    #[serde(default, deserialize_with = "de::any")]
    pub storage_stats: Option<StorageStats>,
    /// `cpu_stats`: this sample.
    #[serde(default, deserialize_with = "de::any")]
    pub cpu_stats: Option<CpuStats>,
    /// `precpu_stats`: the previous sample; all zeros on the first.
    #[serde(default, deserialize_with = "de::any")]
    pub precpu_stats: Option<CpuStats>,
    /// `memory_stats`.
    #[serde(default, deserialize_with = "de::any")]
    pub memory_stats: Option<MemoryStats>,
    /// `name`: with a leading `/` on EC2.
    #[serde(default, deserialize_with = "de::string")]
    pub name: Option<String>,
    /// `id`: the container's `DockerId`.
    #[serde(default, deserialize_with = "de::string")]
    pub id: Option<String>,
    /// `networks`: interface name → counters; absent in host mode and on cgroup v2 examples.
    #[serde(default, deserialize_with = "de::object_map")]
    pub networks: BTreeMap<String, NetworkStats>,
    /// `network_rate_stats` (v4, awsvpc and bridge modes).
    #[serde(default, deserialize_with = "de::any")]
    pub network_rate_stats: Option<NetworkRateStats>,
}

/// `pids_stats`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct PidsStats {
    /// `current`.
    #[serde(default, deserialize_with = "de::u64")]
    pub current: Option<u64>,
    /// `limit`.
    #[serde(default, deserialize_with = "de::u64")]
    pub limit: Option<u64>,
}

/// One entry of a `blkio_stats` list.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BlkioEntry {
    /// `major` device number.
    #[serde(default, deserialize_with = "de::u64")]
    pub major: Option<u64>,
    /// `minor` device number.
    #[serde(default, deserialize_with = "de::u64")]
    pub minor: Option<u64>,
    /// `op`: `Read`, `Write`, … on cgroup v1; `read`, `write` on cgroup v2.
    #[serde(default, deserialize_with = "de::string")]
    pub op: Option<String>,
    /// `value`.
    #[serde(default, deserialize_with = "de::u64")]
    pub value: Option<u64>,
}

/// `blkio_stats`: each list may be `null` (cgroup v2), which is `None` here.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct BlkioStats {
    /// `io_service_bytes_recursive`: bytes read and written.
    #[serde(default, deserialize_with = "de::opt_vec")]
    pub io_service_bytes_recursive: Option<Vec<BlkioEntry>>,
    /// `io_serviced_recursive`: operations.
    #[serde(default, deserialize_with = "de::opt_vec")]
    pub io_serviced_recursive: Option<Vec<BlkioEntry>>,
    /// `io_queue_recursive`.
    #[serde(default, deserialize_with = "de::opt_vec")]
    pub io_queue_recursive: Option<Vec<BlkioEntry>>,
    /// `io_service_time_recursive`.
    #[serde(default, deserialize_with = "de::opt_vec")]
    pub io_service_time_recursive: Option<Vec<BlkioEntry>>,
    /// `io_wait_time_recursive`.
    #[serde(default, deserialize_with = "de::opt_vec")]
    pub io_wait_time_recursive: Option<Vec<BlkioEntry>>,
    /// `io_merged_recursive`.
    #[serde(default, deserialize_with = "de::opt_vec")]
    pub io_merged_recursive: Option<Vec<BlkioEntry>>,
    /// `io_time_recursive`.
    #[serde(default, deserialize_with = "de::opt_vec")]
    pub io_time_recursive: Option<Vec<BlkioEntry>>,
    /// `sectors_recursive`.
    #[serde(default, deserialize_with = "de::opt_vec")]
    pub sectors_recursive: Option<Vec<BlkioEntry>>,
}

/// `storage_stats` (Windows).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct StorageStats {
    /// `read_count_normalized`.
    #[serde(default, deserialize_with = "de::u64")]
    pub read_count_normalized: Option<u64>,
    /// `read_size_bytes`.
    #[serde(default, deserialize_with = "de::u64")]
    pub read_size_bytes: Option<u64>,
    /// `write_count_normalized`.
    #[serde(default, deserialize_with = "de::u64")]
    pub write_count_normalized: Option<u64>,
    /// `write_size_bytes`.
    #[serde(default, deserialize_with = "de::u64")]
    pub write_size_bytes: Option<u64>,
}

/// `cpu_stats` and `precpu_stats`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct CpuStats {
    /// `cpu_usage`.
    #[serde(default, deserialize_with = "de::any")]
    pub cpu_usage: Option<CpuUsage>,
    /// `system_cpu_usage`, in ns; missing on early Fargate platform version 1.4.
    #[serde(default, deserialize_with = "de::u64")]
    pub system_cpu_usage: Option<u64>,
    /// `online_cpus`; missing on early Fargate platform version 1.4.
    #[serde(default, deserialize_with = "de::u64")]
    pub online_cpus: Option<u64>,
    /// `throttling_data`.
    #[serde(default, deserialize_with = "de::any")]
    pub throttling_data: Option<ThrottlingData>,
}

/// `cpu_usage`, in ns.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct CpuUsage {
    /// `total_usage`.
    #[serde(default, deserialize_with = "de::u64")]
    pub total_usage: Option<u64>,
    /// `percpu_usage` (cgroup v1; Fargate pads it with zeros).
    #[serde(default, deserialize_with = "de::vec")]
    pub percpu_usage: Vec<u64>,
    /// `usage_in_kernelmode`.
    #[serde(default, deserialize_with = "de::u64")]
    pub usage_in_kernelmode: Option<u64>,
    /// `usage_in_usermode`.
    #[serde(default, deserialize_with = "de::u64")]
    pub usage_in_usermode: Option<u64>,
}

/// `throttling_data`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ThrottlingData {
    /// `periods`.
    #[serde(default, deserialize_with = "de::u64")]
    pub periods: Option<u64>,
    /// `throttled_periods`.
    #[serde(default, deserialize_with = "de::u64")]
    pub throttled_periods: Option<u64>,
    /// `throttled_time`, in ns.
    #[serde(default, deserialize_with = "de::u64")]
    pub throttled_time: Option<u64>,
}

/// `memory_stats`, in bytes.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct MemoryStats {
    /// `usage`.
    #[serde(default, deserialize_with = "de::u64")]
    pub usage: Option<u64>,
    /// `max_usage` (cgroup v1).
    #[serde(default, deserialize_with = "de::u64")]
    pub max_usage: Option<u64>,
    /// `stats`: `total_inactive_file`, `hierarchical_memory_limit` (v1), `inactive_file` (v2), …
    #[serde(default, deserialize_with = "de::u64_map")]
    pub stats: BTreeMap<String, u64>,
    /// `failcnt`.
    #[serde(default, deserialize_with = "de::u64")]
    pub failcnt: Option<u64>,
    /// `limit`: `u64::MAX` or 9223372036854771712 when unlimited.
    #[serde(default, deserialize_with = "de::u64")]
    pub limit: Option<u64>,
    /// `commitbytes` (Windows).
    #[serde(default, deserialize_with = "de::u64")]
    pub commitbytes: Option<u64>,
    /// `commitpeakbytes` (Windows).
    #[serde(default, deserialize_with = "de::u64")]
    pub commitpeakbytes: Option<u64>,
    /// `privateworkingset` (Windows).
    #[serde(default, deserialize_with = "de::u64")]
    pub privateworkingset: Option<u64>,
}

/// One interface's counters in `networks`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct NetworkStats {
    /// `rx_bytes`.
    #[serde(default, deserialize_with = "de::u64")]
    pub rx_bytes: Option<u64>,
    /// `rx_packets`.
    #[serde(default, deserialize_with = "de::u64")]
    pub rx_packets: Option<u64>,
    /// `rx_errors`.
    #[serde(default, deserialize_with = "de::u64")]
    pub rx_errors: Option<u64>,
    /// `rx_dropped`.
    #[serde(default, deserialize_with = "de::u64")]
    pub rx_dropped: Option<u64>,
    /// `tx_bytes`.
    #[serde(default, deserialize_with = "de::u64")]
    pub tx_bytes: Option<u64>,
    /// `tx_packets`.
    #[serde(default, deserialize_with = "de::u64")]
    pub tx_packets: Option<u64>,
    /// `tx_errors`.
    #[serde(default, deserialize_with = "de::u64")]
    pub tx_errors: Option<u64>,
    /// `tx_dropped`.
    #[serde(default, deserialize_with = "de::u64")]
    pub tx_dropped: Option<u64>,
}

/// `network_rate_stats` (v4).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct NetworkRateStats {
    /// `rx_bytes_per_sec`.
    #[serde(default, deserialize_with = "de::f64")]
    pub rx_bytes_per_sec: Option<f64>,
    /// `tx_bytes_per_sec`.
    #[serde(default, deserialize_with = "de::f64")]
    pub tx_bytes_per_sec: Option<f64>,
}

/// One entry of `/task/stats`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum StatsEntry {
    /// `null`: the container's stats cannot be read (v3 on EC2, stopped containers).
    Null,
    /// `{}`: the container has no stats yet or has stopped (v4 on EC2).
    Empty,
    /// A sample.
    Sampled(Box<ContainerStats>),
}

impl StatsEntry {
    /// The sample, if this entry has one.
    pub fn sample(&self) -> Option<&ContainerStats> {
        match self {
            StatsEntry::Sampled(stats) => Some(stats),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for StatsEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Object(map) if map.is_empty() => StatsEntry::Empty,
            value @ Value::Object(_) => match ContainerStats::deserialize(value) {
                Ok(stats) => StatsEntry::Sampled(Box::new(stats)),
                Err(_) => StatsEntry::Null,
            },
            // `null`, and anything else that is no sample.
            _ => StatsEntry::Null,
        })
    }
}

/// `/task/stats`: `DockerId` → stats, for every container in the task (pause included on EC2).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(transparent)]
#[non_exhaustive]
pub struct TaskStats {
    /// The entries, keyed by `DockerId`.
    pub containers: BTreeMap<String, StatsEntry>,
}

impl TaskStats {
    /// The entries that hold a sample.
    pub fn sampled(&self) -> impl Iterator<Item = (&str, &ContainerStats)> {
        self.containers
            .iter()
            .filter_map(|(id, entry)| Some((id.as_str(), entry.sample()?)))
    }
}
