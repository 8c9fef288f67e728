//! Stats that advance: sample `n` of every container, so CPU % and rates are never zero.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::Scenario;
use crate::time::rfc3339_nanos;

/// The cgroup v1 "unlimited" limit, as Fargate reports a container's memory limit.
const CGROUP_V1_UNLIMITED: u64 = 9_223_372_036_854_771_712;
const ONLINE_CPUS: u64 = 2;
const MIB: u64 = 1024 * 1024;

/// How a platform shapes its stats.
struct Profile {
    cgroup_v2: bool,
    interval: Duration,
    interface: Option<&'static str>,
    slash_name: bool,
}

fn profile(scenario: Scenario) -> Profile {
    match scenario {
        Scenario::Fargate => Profile {
            cgroup_v2: false,
            interval: Duration::from_secs(10),
            interface: Some("eth1"),
            slash_name: false,
        },
        Scenario::Ec2 => Profile {
            cgroup_v2: false,
            interval: Duration::from_secs(1),
            interface: Some("eth0"),
            slash_name: true,
        },
        Scenario::ManagedInstances => Profile {
            cgroup_v2: true,
            interval: Duration::from_secs(10),
            interface: None,
            slash_name: false,
        },
    }
}

/// `/task/stats` for sample `n` (from 1): one entry per container with a `DockerId`, `{}` for
/// stopped ones, as the v4 agent does.
pub(super) fn task_stats(scenario: Scenario, task: &Value, container: &Value, n: u64) -> Value {
    let containers: Vec<&Value> = match task["Containers"].as_array() {
        Some(list) if !list.is_empty() => list.iter().collect(),
        _ => vec![container],
    };
    let now = SystemTime::now();
    let mut out = Map::new();
    for (index, c) in containers.into_iter().enumerate() {
        let Some(id) = c["DockerId"].as_str().filter(|id| !id.is_empty()) else {
            continue;
        };
        let entry = if c["KnownStatus"] == "STOPPED" {
            json!({})
        } else {
            sample(scenario, task, c, index as u64, n, now)
        };
        out.insert(id.to_owned(), entry);
    }
    Value::Object(out)
}

/// One container's sample `n`; `index` gives each container its own load.
fn sample(
    scenario: Scenario,
    task: &Value,
    c: &Value,
    index: u64,
    n: u64,
    now: SystemTime,
) -> Value {
    let p = profile(scenario);
    let interval_ns = p.interval.as_nanos() as u64;
    // Container k uses (23 - 7k mod 20)% of one CPU: 23 %, 16 %, 9 %, …; a pause container 0.1 %.
    let cpu_delta = if c["Type"] == "CNI_PAUSE" {
        interval_ns / 1000
    } else {
        interval_ns * (23 - (index * 7) % 20) / 100
    };
    let system_delta = interval_ns * ONLINE_CPUS;
    let cpu = |m: u64| 4_000_000_000 + index * 1_000_000_000 + m * cpu_delta;
    let system = |m: u64| 9_000_000_000_000 + m * system_delta;
    let cpu_stats = |m: u64| {
        let total = cpu(m);
        let mut usage = json!({
            "total_usage": total,
            "usage_in_kernelmode": total / 10,
            "usage_in_usermode": total / 10 * 8,
        });
        if !p.cgroup_v2 {
            usage["percpu_usage"] = json!([total / 2, total - total / 2]);
        }
        json!({
            "cpu_usage": usage,
            "system_cpu_usage": system(m),
            "online_cpus": ONLINE_CPUS,
            "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 },
        })
    };

    let container_mib = c["Limits"]["Memory"].as_u64().filter(|m| *m > 0);
    let task_mib = task["Limits"]["Memory"].as_u64();
    let inactive_file = (8 + index) * MIB;
    let usage = (96 + 32 * index) * MIB + (n % 7) * 4096;
    let memory = if p.cgroup_v2 {
        json!({
            "usage": usage,
            "stats": {
                "anon": usage - inactive_file - 4 * MIB,
                "file": inactive_file + 4 * MIB,
                "active_file": 4 * MIB,
                "inactive_file": inactive_file,
                "slab": MIB,
            },
            "limit": u64::MAX,
        })
    } else {
        let hierarchical = container_mib
            .or(task_mib)
            .map_or(CGROUP_V1_UNLIMITED, |m| m * MIB);
        let limit = match scenario {
            Scenario::Fargate => CGROUP_V1_UNLIMITED,
            _ => container_mib.map_or(CGROUP_V1_UNLIMITED, |m| m * MIB),
        };
        json!({
            "usage": usage,
            "max_usage": usage + 16 * MIB,
            "stats": {
                "cache": inactive_file + 2 * MIB,
                "rss": usage - inactive_file - 2 * MIB,
                "total_cache": inactive_file + 2 * MIB,
                "total_rss": usage - inactive_file - 2 * MIB,
                "inactive_file": inactive_file,
                "total_inactive_file": inactive_file,
                "hierarchical_memory_limit": hierarchical,
            },
            "limit": limit,
        })
    };

    let read_bytes = (2 + index) * MIB + n * 8192;
    let write_bytes = (1 + index) * MIB + n * 4096;
    let blkio = if p.cgroup_v2 {
        json!({
            "io_service_bytes_recursive": [
                { "major": 259, "minor": 0, "op": "read", "value": read_bytes },
                { "major": 259, "minor": 0, "op": "write", "value": write_bytes },
            ],
            "io_serviced_recursive": null, "io_queue_recursive": null,
            "io_service_time_recursive": null, "io_wait_time_recursive": null,
            "io_merged_recursive": null, "io_time_recursive": null, "sectors_recursive": null,
        })
    } else {
        let entry = |op: &str, value: u64| json!({ "major": 202, "minor": 26368, "op": op, "value": value });
        json!({
            "io_service_bytes_recursive": [
                entry("Read", read_bytes), entry("Write", write_bytes),
                entry("Sync", read_bytes + write_bytes), entry("Async", 0),
                entry("Total", read_bytes + write_bytes),
            ],
            "io_serviced_recursive": [], "io_queue_recursive": [], "io_service_time_recursive": [],
            "io_wait_time_recursive": [], "io_merged_recursive": [], "io_time_recursive": [],
            "sectors_recursive": [],
        })
    };

    let name = c["DockerName"]
        .as_str()
        .or(c["Name"].as_str())
        .unwrap_or("");
    let mut stats = json!({
        "read": rfc3339_nanos(now),
        "preread": rfc3339_nanos(now - p.interval),
        "pids_stats": match scenario {
            Scenario::Fargate => json!({}),
            _ => json!({ "current": 3 + index, "limit": 4915 }),
        },
        "blkio_stats": blkio,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(n),
        "precpu_stats": cpu_stats(n - 1),
        "memory_stats": memory,
        "name": if p.slash_name { format!("/{name}") } else { name.to_owned() },
        "id": c["DockerId"],
    });
    if let Some(interface) = p.interface {
        // Container k receives 2000·(k+1) B/s and sends 500·(k+1) B/s; containers sharing the
        // task's namespace (awsvpc, host) all see the one interface, as container 0 does.
        let shared = matches!(
            c["Networks"][0]["NetworkMode"].as_str(),
            Some("awsvpc" | "host")
        );
        let k = if shared { 0 } else { index };
        let rx_rate = 2000 * (k + 1);
        let tx_rate = 500 * (k + 1);
        let secs = p.interval.as_secs();
        stats["networks"] = json!({ interface: {
            "rx_bytes": 50_000_000 + n * rx_rate * secs, "rx_packets": 40_000 + n * 20,
            "rx_errors": 0, "rx_dropped": 0,
            "tx_bytes": 12_000_000 + n * tx_rate * secs, "tx_packets": 30_000 + n * 10,
            "tx_errors": 0, "tx_dropped": 0,
        }});
        stats["network_rate_stats"] = json!({
            "rx_bytes_per_sec": rx_rate as f64,
            "tx_bytes_per_sec": tx_rate as f64,
        });
    }
    stats
}

/// v3 (the v2 schema) sends `null` for containers without stats and has no rate stats.
pub(super) fn to_v3(mut value: Value) -> Value {
    let strip = |entry: &mut Value| {
        if entry.as_object().is_some_and(Map::is_empty) {
            *entry = Value::Null;
        } else if let Some(map) = entry.as_object_mut() {
            map.remove("network_rate_stats");
        }
    };
    match value.as_object_mut() {
        // A container's stats carry `read`; a task's map carries container ids.
        Some(map) if !map.contains_key("read") => map.values_mut().for_each(strip),
        Some(_) => strip(&mut value),
        None => {}
    }
    value
}
