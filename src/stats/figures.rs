//! Figures from raw stats: CPU %, memory, network, block I/O, pids, per container and for the
//! task, following Docker's formulas with the guards ECS needs.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ContainerStats, CpuStats, StatsEntry, TaskStats};
use crate::metadata::{Container, Task};
use crate::time::parse_rfc3339;

const MIB: u64 = 1024 * 1024;

/// Memory limits at or above 2^62 bytes mean "unlimited": cgroup v2 reports `u64::MAX`,
/// cgroup v1 9223372036854771712 (printed 9223372036854772000 by the docs).
const UNLIMITED: u64 = 1 << 62;

/// What a container, or a whole task, uses: the figures container and task have in common.
/// `None` where the sample does not say.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Usage {
    /// CPU use, 100 = one CPU fully used (Docker's scale). Docker's formula when the sample has
    /// `system_cpu_usage` and a CPU count, else CPU time over wall time between samples. On
    /// Windows (`num_procs` > 0), Docker's Windows formula: 100 = every processor fully used.
    /// `None` when the sample cannot say: a first sample (its previous counters are empty or
    /// zero), or no interval to divide by. For a task, the containers' sum, `None` when one of
    /// them is unknown.
    pub cpu_percent: Option<f64>,
    /// CPUs in use: CPU time over wall time between `preread` and `read`.
    pub cpu_vcpus_used: Option<f64>,
    /// Memory in use without the page cache that can be reclaimed (`inactive_file`); on
    /// Windows, the private working set (`privateworkingset`), as Docker and the ECS agent
    /// count it.
    pub memory_used_bytes: Option<u64>,
    /// The memory limit. A container's: its own, or when that is "unlimited" the cgroup's
    /// hierarchical limit, the container's `Limits.Memory`, or the task's. A task's: its
    /// `Limits.Memory`.
    pub memory_limit_bytes: Option<u64>,
    /// `memory_used_bytes` over `memory_limit_bytes`, in %.
    pub memory_percent: Option<f64>,
    /// Bytes received, over every interface, since the container started. For a task whose
    /// containers share a network namespace (awsvpc, host), counted once.
    pub network_rx_bytes: Option<u64>,
    /// Bytes sent, counted as `network_rx_bytes` is.
    pub network_tx_bytes: Option<u64>,
    /// Bytes received per second: `network_rate_stats`, or the change since a previous sample.
    pub network_rx_bytes_per_second: Option<f64>,
    /// Bytes sent per second: `network_rate_stats`, or the change since a previous sample.
    pub network_tx_bytes_per_second: Option<f64>,
    /// Bytes read from block devices (`blkio_stats`; on Windows, `storage_stats`).
    pub block_read_bytes: Option<u64>,
    /// Bytes written to block devices (`blkio_stats`; on Windows, `storage_stats`).
    pub block_write_bytes: Option<u64>,
    /// Processes and threads.
    pub pids: Option<u64>,
}

/// One container's figures from one stats sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ContainerFigures {
    /// The container's `DockerId`.
    pub docker_id: String,
    /// What it uses.
    #[serde(flatten)]
    pub usage: Usage,
}

/// Task-wide figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TaskTotals {
    /// What the task's containers use together.
    #[serde(flatten)]
    pub usage: Usage,
    /// The task's CPU reservation (`Limits.CPU`), in vCPUs.
    pub cpu_limit_vcpus: Option<f64>,
    /// CPUs in use over the reservation, in %.
    pub cpu_reservation_percent: Option<f64>,
}

/// Why a container of `/task/stats` has no figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Skipped {
    /// Its entry was `null` (v3, stopped containers).
    Null,
    /// Its entry was `{}` (v4 on EC2, not sampled yet or stopped).
    Empty,
}

/// Figures for a whole task, from one `/task/stats` sample.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TaskFigures {
    /// Task-wide figures.
    pub task: TaskTotals,
    /// Each sampled container's figures, keyed by container name (the `DockerId` when the
    /// task metadata does not name it).
    pub containers: BTreeMap<String, ContainerFigures>,
    /// Containers without a sample, and why.
    pub skipped: BTreeMap<String, Skipped>,
}

impl TaskFigures {
    /// Figures from `stats`. `task` names the containers and gives limits; `previous`, an
    /// earlier sample, gives network rates where the sample has no `network_rate_stats`.
    ///
    /// ```
    /// use tracing_aws_ecs::stats::{TaskFigures, TaskStats};
    ///
    /// let stats: TaskStats = serde_json::from_str(r#"{"abc": {}, "def": null}"#)?;
    /// let figures = TaskFigures::new(&stats, None, None);
    /// assert!(figures.containers.is_empty());
    /// assert_eq!(figures.skipped.len(), 2);
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn new(stats: &TaskStats, task: Option<&Task>, previous: Option<&TaskStats>) -> Self {
        let container_of = |id: &str| {
            task.and_then(|t| {
                t.containers
                    .iter()
                    .find(|c| c.docker_id.as_deref() == Some(id))
            })
        };
        let mut figures = TaskFigures::default();
        for (id, entry) in &stats.containers {
            let container = container_of(id);
            let name = container
                .and_then(|c| c.name.clone())
                .or_else(|| {
                    entry
                        .sample()
                        .and_then(|s| s.name.as_deref())
                        .map(|n| n.trim_start_matches('/').to_owned())
                })
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| id.clone());
            match entry {
                StatsEntry::Null => {
                    figures.skipped.insert(name, Skipped::Null);
                }
                StatsEntry::Empty => {
                    figures.skipped.insert(name, Skipped::Empty);
                }
                StatsEntry::Sampled(sample) => {
                    let earlier = previous
                        .and_then(|p| p.containers.get(id))
                        .and_then(StatsEntry::sample);
                    let mut container_figures =
                        ContainerFigures::new(sample, container, task, earlier);
                    container_figures.docker_id.clone_from(id);
                    figures.containers.insert(name, container_figures);
                }
            }
        }
        figures.task = TaskTotals::new(&figures.containers, stats, task);
        figures
    }
}

impl ContainerFigures {
    /// Figures from one container's sample. `container` and `task` give memory limits when
    /// the sample's own is "unlimited"; `previous` gives network rates where the sample has
    /// no `network_rate_stats`.
    pub fn new(
        stats: &ContainerStats,
        container: Option<&Container>,
        task: Option<&Task>,
        previous: Option<&ContainerStats>,
    ) -> Self {
        let interval_ns = interval_ns(stats);
        let (cpu_percent, cpu_vcpus_used) = cpu(stats, interval_ns);
        let memory_used_bytes = memory_used(stats);
        let memory_limit_bytes = memory_limit(stats, container, task);
        let (network_rx_bytes, network_tx_bytes) = network_totals(stats);
        let rates = stats.network_rate_stats.as_ref();
        let rate_since = |now: Option<u64>, then: Option<u64>| {
            let elapsed = elapsed_between(previous?, stats)?;
            Some(now?.checked_sub(then?)? as f64 / elapsed)
        };
        let (prev_rx, prev_tx) = previous.map_or((None, None), network_totals);
        let (block_read_bytes, block_write_bytes) = block_io(stats);
        ContainerFigures {
            docker_id: stats.id.clone().unwrap_or_default(),
            usage: Usage {
                cpu_percent,
                cpu_vcpus_used,
                memory_used_bytes,
                memory_limit_bytes,
                memory_percent: percent(memory_used_bytes, memory_limit_bytes),
                network_rx_bytes,
                network_tx_bytes,
                network_rx_bytes_per_second: rates
                    .and_then(|r| r.rx_bytes_per_sec)
                    .or_else(|| rate_since(network_rx_bytes, prev_rx)),
                network_tx_bytes_per_second: rates
                    .and_then(|r| r.tx_bytes_per_sec)
                    .or_else(|| rate_since(network_tx_bytes, prev_tx)),
                block_read_bytes,
                block_write_bytes,
                pids: stats.pids_stats.as_ref().and_then(|p| p.current),
            },
        }
    }
}

fn percent(part: Option<u64>, whole: Option<u64>) -> Option<f64> {
    let whole = whole.filter(|w| *w > 0)?;
    Some(part? as f64 / whole as f64 * 100.0)
}

/// `read - preread` in ns, when both are real instants (not the Go zero time of a first sample).
fn interval_ns(stats: &ContainerStats) -> Option<f64> {
    let read = parse_rfc3339(stats.read.as_deref()?)?;
    let preread = parse_rfc3339(stats.preread.as_deref()?)?;
    (preread > 0 && read > preread).then(|| (read - preread) as f64)
}

/// Seconds between two samples' `read`.
fn elapsed_between(earlier: &ContainerStats, later: &ContainerStats) -> Option<f64> {
    let then = parse_rfc3339(earlier.read.as_deref()?)?;
    let now = parse_rfc3339(later.read.as_deref()?)?;
    (now > then).then(|| (now - then) as f64 / 1e9)
}

fn total_usage(cpu: Option<&CpuStats>) -> Option<u64> {
    cpu?.cpu_usage.as_ref()?.total_usage
}

/// (CPU %, vCPUs used); `None` where the sample cannot say.
fn cpu(stats: &ContainerStats, interval_ns: Option<f64>) -> (Option<f64>, Option<f64>) {
    let (current, previous) = (stats.cpu_stats.as_ref(), stats.precpu_stats.as_ref());
    let (Some(now), Some(then)) = (total_usage(current), total_usage(previous)) else {
        return (None, None);
    };
    // A first sample: zeroed previous counters.
    if then == 0 {
        return (None, None);
    }
    let cpu_delta = now.saturating_sub(then) as f64;
    // Windows counts CPU time in 100 ns units and reports its processors in `num_procs`
    // (docker's `calculateCPUPercentWindows`).
    if let Some(procs) = stats.num_procs.filter(|n| *n > 0) {
        let vcpus = interval_ns.map(|ns| cpu_delta * 100.0 / ns);
        return (vcpus.map(|v| v / procs as f64 * 100.0), vcpus);
    }
    let vcpus = interval_ns.map(|ns| cpu_delta / ns);
    let system = current
        .and_then(|c| c.system_cpu_usage)
        .zip(previous.and_then(|p| p.system_cpu_usage));
    let online = current.and_then(|c| {
        c.online_cpus.filter(|n| *n > 0).or_else(|| {
            // Fargate pads `percpu_usage` with zeros for CPUs it does not have.
            let used = c
                .cpu_usage
                .as_ref()?
                .percpu_usage
                .iter()
                .filter(|u| **u > 0)
                .count();
            (used > 0).then_some(used as u64)
        })
    });
    let percent = match (system, online) {
        (Some((now_sys, then_sys)), Some(online)) => {
            let system_delta = now_sys.saturating_sub(then_sys) as f64;
            (system_delta > 0.0).then(|| cpu_delta / system_delta * online as f64 * 100.0)
        }
        // Early Fargate platform 1.4 sent neither: CPU time over wall time.
        _ => vcpus.map(|v| v * 100.0),
    };
    (percent, vcpus)
}

/// `usage` less the reclaimable page cache: cgroup v1 `total_inactive_file`, v2 `inactive_file`;
/// on Windows, which has no `usage`, the private working set.
fn memory_used(stats: &ContainerStats) -> Option<u64> {
    let memory = stats.memory_stats.as_ref()?;
    let Some(usage) = memory.usage else {
        return memory.privateworkingset;
    };
    let inactive = ["total_inactive_file", "inactive_file"]
        .iter()
        .filter_map(|key| memory.stats.get(*key))
        .find(|inactive| **inactive < usage);
    Some(inactive.map_or(usage, |inactive| usage - inactive))
}

fn memory_limit(
    stats: &ContainerStats,
    container: Option<&Container>,
    task: Option<&Task>,
) -> Option<u64> {
    let limited = |bytes: Option<u64>| bytes.filter(|b| *b > 0 && *b < UNLIMITED);
    let mib = |limits: Option<&crate::metadata::Limits>| {
        limits?.memory_mib.filter(|m| *m > 0)?.checked_mul(MIB)
    };
    let memory = stats.memory_stats.as_ref();
    limited(memory.and_then(|m| m.limit))
        .or_else(|| limited(memory.and_then(|m| m.stats.get("hierarchical_memory_limit").copied())))
        .or_else(|| limited(mib(container.and_then(|c| c.limits.as_ref()))))
        .or_else(|| limited(mib(task.and_then(|t| t.limits.as_ref()))))
}

/// (received, sent) over every interface.
fn network_totals(stats: &ContainerStats) -> (Option<u64>, Option<u64>) {
    if stats.networks.is_empty() {
        return (None, None);
    }
    let sum = |f: fn(&super::NetworkStats) -> Option<u64>| {
        stats
            .networks
            .values()
            .filter_map(f)
            .fold(0u64, u64::saturating_add)
    };
    (Some(sum(|n| n.rx_bytes)), Some(sum(|n| n.tx_bytes)))
}

/// (read, written): `io_service_bytes_recursive` entries whose `op` starts with r or w, in
/// either case (`Read` on cgroup v1, `read` on v2); on Windows, which has no such list,
/// `storage_stats` (`{}` on Linux).
fn block_io(stats: &ContainerStats) -> (Option<u64>, Option<u64>) {
    let Some(entries) = stats
        .blkio_stats
        .as_ref()
        .and_then(|b| b.io_service_bytes_recursive.as_ref())
    else {
        let storage = stats.storage_stats.as_ref();
        return (
            storage.and_then(|s| s.read_size_bytes),
            storage.and_then(|s| s.write_size_bytes),
        );
    };
    let sum = |initial: u8| {
        entries
            .iter()
            .filter(|e| {
                e.op.as_deref()
                    .and_then(|op| op.bytes().next())
                    .is_some_and(|c| c.eq_ignore_ascii_case(&initial))
            })
            .filter_map(|e| e.value)
            .fold(0u64, u64::saturating_add)
    };
    (Some(sum(b'r')), Some(sum(b'w')))
}

impl TaskTotals {
    fn new(
        containers: &BTreeMap<String, ContainerFigures>,
        stats: &TaskStats,
        task: Option<&Task>,
    ) -> Self {
        let figures: Vec<&Usage> = containers.values().map(|c| &c.usage).collect();
        let sum_u64 = |f: fn(&Usage) -> Option<u64>| {
            figures
                .iter()
                .filter_map(|c| f(c))
                .reduce(u64::saturating_add)
        };
        let sum_f64 =
            |f: fn(&Usage) -> Option<f64>| figures.iter().filter_map(|c| f(c)).reduce(|a, b| a + b);
        // One namespace shared by every container: count it once (the largest, in case a
        // container sampled a moment later).
        let shared = shares_network(stats, task);
        let network_u64 = |f: fn(&Usage) -> Option<u64>| {
            if shared {
                figures.iter().filter_map(|c| f(c)).max()
            } else {
                sum_u64(f)
            }
        };
        let network_f64 = |f: fn(&Usage) -> Option<f64>| {
            if shared {
                figures.iter().filter_map(|c| f(c)).reduce(f64::max)
            } else {
                sum_f64(f)
            }
        };
        let limits = task.and_then(|t| t.limits.as_ref());
        let cpu_limit_vcpus = limits.and_then(|l| l.cpu).filter(|c| *c > 0.0);
        let cpu_vcpus_used = sum_f64(|c| c.cpu_vcpus_used);
        let memory_used_bytes = sum_u64(|c| c.memory_used_bytes);
        let memory_limit_bytes = limits
            .and_then(|l| l.memory_mib)
            .filter(|m| *m > 0)
            .and_then(|m| m.checked_mul(MIB));
        TaskTotals {
            cpu_limit_vcpus,
            cpu_reservation_percent: cpu_vcpus_used
                .zip(cpu_limit_vcpus)
                .map(|(used, limit)| used / limit * 100.0),
            usage: Usage {
                // Unknown for one container, unknown for the task: a partial sum would read low.
                cpu_percent: (!figures.is_empty())
                    .then(|| figures.iter().map(|c| c.cpu_percent).sum())
                    .flatten(),
                cpu_vcpus_used,
                memory_used_bytes,
                memory_limit_bytes,
                memory_percent: percent(memory_used_bytes, memory_limit_bytes),
                network_rx_bytes: network_u64(|c| c.network_rx_bytes),
                network_tx_bytes: network_u64(|c| c.network_tx_bytes),
                network_rx_bytes_per_second: network_f64(|c| c.network_rx_bytes_per_second),
                network_tx_bytes_per_second: network_f64(|c| c.network_tx_bytes_per_second),
                block_read_bytes: sum_u64(|c| c.block_read_bytes),
                block_write_bytes: sum_u64(|c| c.block_write_bytes),
                pids: sum_u64(|c| c.pids),
            },
        }
    }
}

/// Whether the task's containers share one network namespace: the task metadata says awsvpc
/// or host, or, without it, every sampled container reports the same interfaces.
fn shares_network(stats: &TaskStats, task: Option<&Task>) -> bool {
    let mode = task.and_then(|t| {
        t.containers
            .iter()
            .flat_map(|c| c.networks.iter())
            .find_map(|n| n.network_mode.as_deref())
    });
    match mode {
        Some(mode) => mode == "awsvpc" || mode == "host",
        None => {
            let mut samples = stats
                .sampled()
                .map(|(_, s)| &s.networks)
                .filter(|n| !n.is_empty());
            let Some(first) = samples.next() else {
                return false;
            };
            samples.all(|n| n.keys().eq(first.keys()))
        }
    }
}
