//! Figures from the emulator's advancing counters, over loopback, against the load each
//! scenario's containers are given (container k uses (23 - 7k) % of one CPU).

use tracing_aws_ecs::emulator::{Emulator, Scenario};
use tracing_aws_ecs::stats::{Skipped, TaskFigures};

const MIB: u64 = 1024 * 1024;

fn figures(scenario: Scenario) -> TaskFigures {
    let emulator = Emulator::start(scenario).unwrap();
    let client = emulator.client();
    let task = client.task().unwrap();
    let first = client.task_stats().unwrap();
    let second = client.task_stats().unwrap();
    TaskFigures::new(&second, Some(&task), Some(&first))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6
}

#[test]
fn fargate() {
    let f = figures(Scenario::Fargate);
    let app = &f.containers["app"];
    // 23 % of one CPU: cpu delta 0.23·10 s against a system delta of 2 CPUs·10 s.
    assert!(
        close(app.usage.cpu_percent.unwrap(), 23.0),
        "{:?}",
        app.usage.cpu_percent
    );
    assert!(close(app.usage.cpu_vcpus_used.unwrap(), 0.23));
    assert!(close(
        f.containers["envoy"].usage.cpu_percent.unwrap(),
        16.0
    ));
    // Sample 2: usage 96 MiB + 2·4096 less 8 MiB inactive; the container limit is "unlimited",
    // the hierarchical limit is the container's 768 MiB.
    assert_eq!(app.usage.memory_used_bytes, Some(88 * MIB + 2 * 4096));
    assert_eq!(app.usage.memory_limit_bytes, Some(768 * MIB));
    assert_eq!(app.usage.network_rx_bytes_per_second, Some(2000.0));
    // 0.23 + 0.16 vCPU of a 0.5 vCPU reservation.
    assert!(close(f.task.cpu_reservation_percent.unwrap(), 78.0));
    assert_eq!(f.task.usage.memory_limit_bytes, Some(1024 * MIB));
    // awsvpc: both containers see the one interface; the task counts it once.
    assert_eq!(
        f.containers["envoy"].usage.network_rx_bytes_per_second,
        Some(2000.0)
    );
    assert_eq!(f.task.usage.network_rx_bytes_per_second, Some(2000.0));
    assert_eq!(f.task.usage.network_rx_bytes, app.usage.network_rx_bytes);
}

#[test]
fn ec2_skips_the_stopped_container() {
    let f = figures(Scenario::Ec2);
    assert_eq!(f.skipped["migrate"], Skipped::Empty);
    assert!(close(
        f.containers["worker"].usage.cpu_percent.unwrap(),
        16.0
    ));
    assert_eq!(
        f.containers["worker"].usage.memory_limit_bytes,
        Some(1024 * MIB)
    );
    assert_eq!(f.containers.len(), 2, "the pause container is sampled too");
    assert!(close(
        f.containers["~internal~ecs~pause"]
            .usage
            .cpu_percent
            .unwrap(),
        0.1
    ));
}

#[test]
fn managed_instances_cgroup_v2() {
    let f = figures(Scenario::ManagedInstances);
    let model = &f.containers["model-server"];
    assert!(close(model.usage.cpu_percent.unwrap(), 23.0));
    // limit u64::MAX, no hierarchical limit on cgroup v2: the container's 2048 MiB.
    assert_eq!(model.usage.memory_limit_bytes, Some(2048 * MIB));
    assert_eq!(model.usage.memory_used_bytes, Some(88 * MIB + 2 * 4096));
    assert_eq!(model.usage.network_rx_bytes, None);
    // 2 MiB + 2·8192 read, lowercase `op`.
    assert_eq!(model.usage.block_read_bytes, Some(2 * MIB + 2 * 8192));
}
