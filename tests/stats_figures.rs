//! Figures from every stats fixture and from shapes the fixtures lack (first samples, early
//! Fargate without system counters, cgroup v2, unlimited limits, missing counters), each
//! checked against values worked out by hand from the payload.

mod common;

use common::fixture;
use serde_json::json;
use tracing_aws_ecs::metadata::Task;
use tracing_aws_ecs::stats::{ContainerFigures, ContainerStats, Skipped, TaskFigures, TaskStats};

fn close(actual: f64, expected: f64) -> bool {
    (actual - expected).abs() <= expected.abs() * 1e-9 + 1e-12
}

macro_rules! assert_close {
    ($actual:expr, $expected:expr) => {{
        let (a, e): (f64, f64) = ($actual, $expected);
        assert!(close(a, e), "{} = {a}, expected {e}", stringify!($actual));
    }};
}

fn stats(json: serde_json::Value) -> ContainerStats {
    serde_json::from_value(json).unwrap()
}

#[test]
fn ec2_task_stats() {
    let stats: TaskStats = serde_json::from_str(&fixture("ec2-v4-task-stats.json")).unwrap();
    let task: Task = serde_json::from_str(&fixture("ec2-v4-task.json")).unwrap();
    let figures = TaskFigures::new(&stats, Some(&task), None);
    // The example's ids are not those of the task example: names come from the stats.
    let curl = &figures.containers["ecs-curltest-26-curl-c2e5f6e0cf91b0bead01"];
    // cpu: (379075681 - 378825197) / (13977800000000 - 13975800000000) * 2 * 100
    assert_close!(
        curl.usage.cpu_percent.unwrap(),
        250_484.0 / 2_000_000_000.0 * 2.0 * 100.0
    );
    // over 00:51:32.512771349 - 00:51:31.510597736 = 1.002173613 s
    assert_close!(
        curl.usage.cpu_vcpus_used.unwrap(),
        250_484.0 / 1_002_173_613.0
    );
    assert_eq!(curl.usage.memory_used_bytes, Some(1_814_528));
    assert_eq!(curl.usage.memory_limit_bytes, Some(134_217_728));
    assert_close!(
        curl.usage.memory_percent.unwrap(),
        1_814_528.0 / 134_217_728.0 * 100.0
    );
    assert_eq!(
        (curl.usage.network_rx_bytes, curl.usage.network_tx_bytes),
        (Some(84), Some(84))
    );
    assert_eq!(curl.usage.network_rx_bytes_per_second, Some(0.0));
    assert_eq!(
        (curl.usage.block_read_bytes, curl.usage.block_write_bytes),
        (Some(0), Some(0))
    );
    assert_eq!(curl.usage.pids, Some(3));

    let pause = &figures.containers["ecs-curltest-26-internalecspause-a6bcc3dbadfacfe85300"];
    assert_eq!(
        pause.usage.cpu_percent,
        Some(0.0),
        "no CPU used between samples"
    );
    assert_eq!(pause.usage.memory_limit_bytes, Some(4_073_377_792));

    // awsvpc: both containers see the task's one interface; it counts once.
    assert_eq!(figures.task.usage.network_rx_bytes, Some(84));
    assert_eq!(
        figures.task.usage.memory_used_bytes,
        Some(1_814_528 + 532_480)
    );
    assert_eq!(figures.task.usage.pids, Some(4));
    assert_eq!(
        figures.task.usage.memory_limit_bytes, None,
        "the EC2 task has no task-level limits"
    );
    assert_close!(
        figures.task.usage.cpu_percent.unwrap(),
        curl.usage.cpu_percent.unwrap()
    );
}

#[test]
fn fargate_task_stats() {
    let stats: TaskStats = serde_json::from_str(&fixture("fargate-v4-task-stats.json")).unwrap();
    let figures = TaskFigures::new(&stats, None, None);
    let c = &figures.containers["curltest"];
    assert_eq!(c.docker_id, "3d1f891cded94dc795608466cce8ddcf-464223573");
    // (1137691504 - 1136624601) / (9393210000000 - 9373330000000) * 2 * 100
    assert_close!(
        c.usage.cpu_percent.unwrap(),
        1_066_903.0 / 19_880_000_000.0 * 2.0 * 100.0
    );
    // over 21:24:44.938937019 - 21:24:34.938633969 = 10.00030305 s
    assert_close!(
        c.usage.cpu_vcpus_used.unwrap(),
        1_066_903.0 / 10_000_303_050.0
    );
    // usage 6504448 less total_inactive_file 3088384
    assert_eq!(c.usage.memory_used_bytes, Some(3_416_064));
    // limit 9223372036854772000 is "unlimited": the hierarchical limit applies.
    assert_eq!(c.usage.memory_limit_bytes, Some(536_870_912));
    assert_close!(
        c.usage.memory_percent.unwrap(),
        3_416_064.0 / 536_870_912.0 * 100.0
    );
    assert_eq!(c.usage.network_rx_bytes, Some(2_398_415_937));
    assert_eq!(c.usage.network_tx_bytes, Some(1_259_037_719));
    assert_eq!(
        c.usage.network_rx_bytes_per_second,
        Some(43.298687872232854)
    );
    assert_eq!(
        c.usage.network_tx_bytes_per_second,
        Some(215.39347269466413)
    );
    assert_eq!(
        (c.usage.block_read_bytes, c.usage.block_write_bytes),
        (Some(638_976), Some(0))
    );
    assert_eq!(c.usage.pids, None, "pids_stats is {{}} on Fargate");
}

#[test]
fn container_stats_bridge() {
    let s: ContainerStats =
        serde_json::from_str(&fixture("ec2-v4-container-stats-bridge.json")).unwrap();
    let c = ContainerFigures::new(&s, None, None, None);
    assert_eq!(c.usage.cpu_percent, Some(0.0));
    assert_close!(c.usage.cpu_vcpus_used.unwrap(), 0.0);
    assert_eq!(c.usage.memory_used_bytes, Some(1_806_336));
    assert_close!(
        c.usage.memory_percent.unwrap(),
        1_806_336.0 / 134_217_728.0 * 100.0
    );
}

#[test]
fn first_sample_is_unknown_not_zero() {
    let s = stats(json!({
        "read": "2026-11-29T10:00:00Z", "preread": "0001-01-01T00:00:00Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 5_000_000_000u64}, "system_cpu_usage": 9_000_000_000_000u64, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0},
    }));
    let c = ContainerFigures::new(&s, None, None, None);
    assert_eq!(c.usage.cpu_percent, None);
    assert_eq!(c.usage.cpu_vcpus_used, None);
    // An empty `precpu_stats` (early Fargate) says the same.
    let s = stats(json!({
        "read": "2026-11-29T10:00:00Z", "preread": "0001-01-01T00:00:00Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 5_000_000_000u64}},
        "precpu_stats": {},
    }));
    assert_eq!(
        ContainerFigures::new(&s, None, None, None)
            .usage
            .cpu_percent,
        None
    );
}

#[test]
fn early_fargate_without_system_counters() {
    // 0.5 s of CPU over 10 s of wall time: 0.05 vCPU, 5 %.
    let s = stats(json!({
        "read": "2026-11-29T10:00:10Z", "preread": "2026-11-29T10:00:00Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 1_500_000_000u64, "percpu_usage": [1_500_000_000u64, 0, 0]}},
        "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000u64}},
    }));
    let c = ContainerFigures::new(&s, None, None, None);
    assert_close!(c.usage.cpu_vcpus_used.unwrap(), 0.05);
    assert_close!(c.usage.cpu_percent.unwrap(), 5.0);
}

#[test]
fn missing_online_cpus_counts_used_cpus() {
    // Fargate pads percpu_usage with zeros: 2 CPUs in use, not 4.
    let s = stats(json!({
        "cpu_stats": {"cpu_usage": {"total_usage": 300, "percpu_usage": [200, 100, 0, 0]}, "system_cpu_usage": 2000},
        "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
    }));
    // 200 / 1000 * 2 * 100
    assert_close!(
        ContainerFigures::new(&s, None, None, None)
            .usage
            .cpu_percent
            .unwrap(),
        40.0
    );
}

#[test]
fn cgroup_v2_unlimited_falls_back_to_the_limits() {
    let s = stats(json!({
        "memory_stats": {"usage": 100 * 1024 * 1024, "stats": {"inactive_file": 20 * 1024 * 1024, "anon": 1}, "limit": u64::MAX},
        "blkio_stats": {"io_service_bytes_recursive": [
            {"major": 259, "minor": 0, "op": "read", "value": 10}, {"major": 259, "minor": 1, "op": "read", "value": 5},
            {"major": 259, "minor": 0, "op": "write", "value": 7}],
            "io_serviced_recursive": null},
    }));
    let container: tracing_aws_ecs::metadata::Container =
        serde_json::from_value(json!({"Limits": {"CPU": 1024, "Memory": 200}})).unwrap();
    let task: Task = serde_json::from_value(json!({"Limits": {"CPU": 1, "Memory": 400}})).unwrap();
    let with_container = ContainerFigures::new(&s, Some(&container), Some(&task), None);
    assert_eq!(
        with_container.usage.memory_used_bytes,
        Some(80 * 1024 * 1024)
    );
    assert_eq!(
        with_container.usage.memory_limit_bytes,
        Some(200 * 1024 * 1024)
    );
    assert_close!(with_container.usage.memory_percent.unwrap(), 40.0);
    assert_eq!(
        (
            with_container.usage.block_read_bytes,
            with_container.usage.block_write_bytes
        ),
        (Some(15), Some(7))
    );
    let task_only = ContainerFigures::new(&s, None, Some(&task), None);
    assert_eq!(task_only.usage.memory_limit_bytes, Some(400 * 1024 * 1024));
    assert_eq!(
        ContainerFigures::new(&s, None, None, None)
            .usage
            .memory_limit_bytes,
        None
    );
}

#[test]
fn missing_counters_give_nones_not_panics() {
    for payload in [
        json!({}),
        json!({"read": "garbage", "preread": 7}),
        json!({"cpu_stats": {}, "precpu_stats": null, "memory_stats": {"stats": {}}, "networks": {}}),
    ] {
        let c = ContainerFigures::new(&stats(payload.clone()), None, None, None);
        assert_eq!(c.usage.cpu_percent, None, "{payload}");
        assert_eq!(
            (
                c.usage.memory_used_bytes,
                c.usage.memory_percent,
                c.usage.network_rx_bytes,
                c.usage.pids
            ),
            (None, None, None, None)
        );
    }
}

#[test]
fn counters_going_backwards_or_saturating_do_not_panic() {
    let s = stats(json!({
        "read": "2026-11-29T10:00:10Z", "preread": "2026-11-29T10:00:00Z",
        "cpu_stats": {"cpu_usage": {"total_usage": 5}, "system_cpu_usage": 5, "online_cpus": 2},
        "precpu_stats": {"cpu_usage": {"total_usage": 10}, "system_cpu_usage": 10},
        "memory_stats": {"usage": 10, "stats": {"total_inactive_file": 50}},
        "networks": {"eth0": {"rx_bytes": u64::MAX, "tx_bytes": 1}, "eth1": {"rx_bytes": u64::MAX, "tx_bytes": 1}},
    }));
    let c = ContainerFigures::new(&s, None, None, None);
    // The system counter went back: nothing to divide by.
    assert_eq!(c.usage.cpu_percent, None);
    assert_eq!(
        c.usage.memory_used_bytes,
        Some(10),
        "inactive larger than usage is ignored"
    );
    assert_eq!(c.usage.network_rx_bytes, Some(u64::MAX));
    assert_eq!(c.usage.network_tx_bytes, Some(2));
}

#[test]
fn rates_from_a_previous_sample() {
    let sample = |read: &str, rx: u64, tx: u64| {
        stats(json!({"read": read, "networks": {"eth0": {"rx_bytes": rx, "tx_bytes": tx}}}))
    };
    let before = sample("2026-11-29T10:00:00Z", 1_000, 100);
    let after = sample("2026-11-29T10:00:10Z", 6_000, 600);
    let c = ContainerFigures::new(&after, None, None, Some(&before));
    assert_eq!(c.usage.network_rx_bytes_per_second, Some(500.0));
    assert_eq!(c.usage.network_tx_bytes_per_second, Some(50.0));
    assert_eq!(
        ContainerFigures::new(&after, None, None, None)
            .usage
            .network_rx_bytes_per_second,
        None
    );
}

#[test]
fn null_and_empty_entries_are_skipped_and_named() {
    let task: Task = serde_json::from_value(json!({
        "Limits": {"CPU": 0.5, "Memory": 1024},
        "Containers": [{"Name": "gone", "DockerId": "a"}, {"Name": "new", "DockerId": "b"}, {"Name": "app", "DockerId": "c", "Networks": [{"NetworkMode": "bridge"}]}],
    }))
    .unwrap();
    let stats: TaskStats = serde_json::from_value(json!({
        "a": null, "b": {},
        "c": {"read": "2026-11-29T10:00:10Z", "preread": "2026-11-29T10:00:00Z",
              "cpu_stats": {"cpu_usage": {"total_usage": 3_000_000_000u64}},
              "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000u64}},
              "memory_stats": {"usage": 256 * 1024 * 1024}},
    }))
    .unwrap();
    let figures = TaskFigures::new(&stats, Some(&task), None);
    assert_eq!(figures.skipped["gone"], Skipped::Null);
    assert_eq!(figures.skipped["new"], Skipped::Empty);
    assert_eq!(figures.containers.keys().collect::<Vec<_>>(), ["app"]);
    // 2 s of CPU over 10 s: 0.2 vCPU of a 0.5 vCPU reservation.
    assert_close!(figures.task.usage.cpu_vcpus_used.unwrap(), 0.2);
    assert_close!(figures.task.cpu_reservation_percent.unwrap(), 40.0);
    assert_close!(figures.task.usage.memory_percent.unwrap(), 25.0);
}

#[test]
fn bridge_mode_sums_network_across_containers() {
    let task: Task = serde_json::from_value(json!({"Containers": [
        {"Name": "a", "DockerId": "a", "Networks": [{"NetworkMode": "bridge"}]},
        {"Name": "b", "DockerId": "b", "Networks": [{"NetworkMode": "bridge"}]}]}))
    .unwrap();
    let stats: TaskStats = serde_json::from_value(json!({
        "a": {"networks": {"eth0": {"rx_bytes": 100, "tx_bytes": 10}}},
        "b": {"networks": {"eth0": {"rx_bytes": 200, "tx_bytes": 20}}}}))
    .unwrap();
    let figures = TaskFigures::new(&stats, Some(&task), None);
    assert_eq!(
        (
            figures.task.usage.network_rx_bytes,
            figures.task.usage.network_tx_bytes
        ),
        (Some(300), Some(30))
    );
    // Without task metadata, identical interfaces are taken as one shared namespace.
    let shared = TaskFigures::new(&stats, None, None);
    assert_eq!(shared.task.usage.network_rx_bytes, Some(200));
}

#[test]
fn windows_formula() {
    // 2·10^7 units of 100 ns (2 s of CPU) over 10 s of wall time on 4 processors:
    // 0.2 vCPU, 5 % of the machine.
    let s = stats(json!({
        "read": "2026-11-29T10:00:10Z", "preread": "2026-11-29T10:00:00Z", "num_procs": 4,
        "cpu_stats": {"cpu_usage": {"total_usage": 30_000_000u64}},
        "precpu_stats": {"cpu_usage": {"total_usage": 10_000_000u64}},
    }));
    let c = ContainerFigures::new(&s, None, None, None);
    assert_close!(c.usage.cpu_vcpus_used.unwrap(), 0.2);
    assert_close!(c.usage.cpu_percent.unwrap(), 5.0);
}

#[test]
fn windows_container_stats() {
    let s: ContainerStats =
        serde_json::from_str(&fixture("windows-v4-container-stats.json")).unwrap();
    let container: tracing_aws_ecs::metadata::Container =
        serde_json::from_value(json!({"Limits": {"CPU": 1024, "Memory": 512}})).unwrap();
    let c = ContainerFigures::new(&s, Some(&container), None, None);
    // 5,000,000 units of 100 ns = 0.5 s of CPU over 1 s: 0.5 vCPU, 25 % of 2 processors.
    assert_close!(c.usage.cpu_vcpus_used.unwrap(), 0.5);
    assert_close!(c.usage.cpu_percent.unwrap(), 25.0);
    // No `usage` on Windows: the private working set, as Docker and the agent count it.
    assert_eq!(c.usage.memory_used_bytes, Some(77_549_568));
    assert_eq!(c.usage.memory_limit_bytes, Some(512 * 1024 * 1024));
    assert_close!(
        c.usage.memory_percent.unwrap(),
        77_549_568.0 / 536_870_912.0 * 100.0
    );
    // `blkio_stats` lists are null: `storage_stats` gives block I/O.
    assert_eq!(
        (c.usage.block_read_bytes, c.usage.block_write_bytes),
        (Some(10_485_760), Some(2_097_152))
    );
    assert_eq!(
        (c.usage.network_rx_bytes, c.usage.network_tx_bytes),
        (Some(1_048_576), Some(524_288))
    );
    assert_eq!(c.usage.pids, None);

    // The first sample after the container started: CPU unknown, memory still known.
    let mut first: serde_json::Value =
        serde_json::from_str(&fixture("windows-v4-container-stats.json")).unwrap();
    first["precpu_stats"] = json!({"cpu_usage": {"total_usage": 0}});
    let c = ContainerFigures::new(&stats(first), None, None, None);
    assert_eq!(c.usage.cpu_percent, None);
    assert_eq!(c.usage.memory_used_bytes, Some(77_549_568));
}

#[test]
fn linux_storage_stats_are_empty_and_leave_blkio_alone() {
    let s = stats(json!({
        "storage_stats": {},
        "blkio_stats": {"io_service_bytes_recursive": [{"op": "Read", "value": 3}, {"op": "Write", "value": 4}]},
    }));
    let c = ContainerFigures::new(&s, None, None, None);
    assert_eq!(
        (c.usage.block_read_bytes, c.usage.block_write_bytes),
        (Some(3), Some(4))
    );
    let neither = ContainerFigures::new(&stats(json!({"storage_stats": {}})), None, None, None);
    assert_eq!(neither.usage.block_read_bytes, None);
}

#[test]
fn a_first_sample_leaves_the_task_cpu_unknown() {
    let stats: TaskStats = serde_json::from_value(json!({
        "a": {"cpu_stats": {"cpu_usage": {"total_usage": 10}, "system_cpu_usage": 100, "online_cpus": 1},
              "precpu_stats": {"cpu_usage": {"total_usage": 5}, "system_cpu_usage": 50}},
        "b": {"cpu_stats": {"cpu_usage": {"total_usage": 10}}, "precpu_stats": {}},
    }))
    .unwrap();
    let figures = TaskFigures::new(&stats, None, None);
    assert_close!(figures.containers["a"].usage.cpu_percent.unwrap(), 10.0);
    assert_eq!(figures.containers["b"].usage.cpu_percent, None);
    // A sum without `b` would read low: unknown, and `null` where it is printed.
    assert_eq!(figures.task.usage.cpu_percent, None);
    let printed = serde_json::to_value(&figures).unwrap();
    assert_eq!(printed["task"]["cpu_percent"], serde_json::Value::Null);
    assert_eq!(
        printed["containers"]["b"]["cpu_percent"],
        serde_json::Value::Null
    );
}
