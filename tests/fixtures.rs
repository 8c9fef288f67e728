//! Every AWS documentation payload in `tests/fixtures` parses, typed and raw, and the derived
//! identity matches values read off the payloads by hand.

use serde_json::Value;
use tracing_aws_ecs::EcsMetadata;
use tracing_aws_ecs::metadata::{Container, ContainerType, LaunchType, Status, Task};
use tracing_aws_ecs::stats::{ContainerStats, StatsEntry, TaskStats};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn typed<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_fixture_is_an_object_of_json() {
    let dir = format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let value: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert!(value.is_object(), "{}", path.display());
            count += 1;
        }
    }
    assert_eq!(count, 11);
}

#[test]
fn fargate_v4() {
    let meta = EcsMetadata::from_json(&fixture("fargate-v4-container.json"), None).unwrap();
    // Container payload alone: labels carry the identity.
    assert_eq!(meta.cluster_name(), Some("default"));
    assert_eq!(
        meta.cluster_arn(),
        Some("arn:aws:ecs:us-west-2:111122223333:cluster/default")
    );
    assert_eq!(
        meta.task_arn(),
        Some("arn:aws:ecs:us-west-2:111122223333:task/default/cd189a933e5849daa93386466019ab50")
    );
    assert_eq!(meta.task_id(), Some("cd189a933e5849daa93386466019ab50"));
    assert_eq!(meta.family(), Some("curltest"));
    assert_eq!(meta.revision(), Some("2"));
    assert_eq!(meta.container_name(), Some("curl"));
    assert_eq!(
        meta.image(),
        Some("111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest")
    );
    assert_eq!(
        meta.container_id(),
        Some("cd189a933e5849daa93386466019ab50-2495160603")
    );
    assert_eq!(
        (meta.region(), meta.account_id(), meta.partition()),
        (Some("us-west-2"), Some("111122223333"), Some("aws"))
    );
    assert_eq!(meta.launch_type(), None);
    assert_eq!(meta.log_group(), Some("/ecs/containerlogs"));
    assert_eq!(
        meta.log_stream(),
        Some("ecs/curl/cd189a933e5849daa93386466019ab50")
    );
    assert_eq!(meta.container().snapshotter.as_deref(), Some("overlayfs"));
    assert_eq!(meta.container_raw()["DockerName"], "curl");

    let task: Task = typed("fargate-v4-task.json");
    assert_eq!(task.launch_type, Some(LaunchType::Fargate));
    assert_eq!(task.limits.as_ref().unwrap().cpu, Some(0.25));
    assert_eq!(task.limits.as_ref().unwrap().memory_mib, Some(512));
    assert_eq!(task.containers.len(), 2);
    assert_eq!(task.containers[1].limits.as_ref().unwrap().memory_mib, None);
    assert_eq!(
        task.clock_drift.as_ref().unwrap().clock_error_bound,
        Some(0.446931)
    );
    assert_eq!(
        task.clock_drift
            .as_ref()
            .unwrap()
            .reference_timestamp
            .as_deref(),
        Some("2023-07-21T16:09:17Z")
    );
    assert_eq!(
        task.ephemeral_storage_metrics.as_ref().unwrap().reserved,
        Some(20496)
    );
    assert_eq!(
        task.containers[0].networks[0].domain_name_servers,
        ["172.31.0.2"]
    );
}

#[test]
fn fargate_task_identity() {
    let task = fixture("fargate-v4-task.json");
    let container =
        serde_json::to_string(&serde_json::from_str::<Value>(&task).unwrap()["Containers"][1])
            .unwrap();
    let meta = EcsMetadata::from_json(&container, Some(&task)).unwrap();
    assert_eq!(meta.cluster_name(), Some("MyEmptyCluster"));
    assert_eq!(
        meta.cluster_arn(),
        Some("arn:aws:ecs:us-east-1:123456789012:cluster/MyEmptyCluster")
    );
    assert_eq!(meta.task_id(), Some("bfa2636268144d039771334145e490c5"));
    assert_eq!(meta.family(), Some("sample-fargate"));
    assert_eq!(meta.revision(), Some("5"));
    assert_eq!(meta.container_name(), Some("fargate-app"));
    assert_eq!(
        meta.image(),
        Some("public.ecr.aws/docker/library/httpd:latest")
    );
    assert_eq!(meta.region(), Some("us-east-1"));
    assert_eq!(meta.account_id(), Some("123456789012"));
    assert_eq!(meta.launch_type(), Some(&LaunchType::Fargate));
    assert_eq!(meta.availability_zone(), Some("us-east-1d"));
    assert_eq!(meta.service_name(), None);
    assert_eq!(meta.task().unwrap().containers.len(), 2);
    assert_eq!(
        meta.task_raw().unwrap()["EphemeralStorageMetrics"]["Utilized"],
        261
    );
}

#[test]
fn ec2_v4() {
    let meta = EcsMetadata::from_json(
        &fixture("ec2-v4-container.json"),
        Some(&fixture("ec2-v4-task.json")),
    )
    .unwrap();
    // EC2 gives the short cluster name; the ARN is built from the task ARN's parts.
    assert_eq!(meta.cluster_name(), Some("default"));
    assert_eq!(
        meta.cluster_arn(),
        Some("arn:aws:ecs:us-west-2:111122223333:cluster/default")
    );
    // The task payload wins over the container's labels (revision 26 against 24 here).
    assert_eq!(
        meta.task_arn(),
        Some("arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c")
    );
    assert_eq!(meta.task_id(), Some("158d1c8083dd49d6b527399fd6414f5c"));
    assert_eq!(meta.revision(), Some("26"));
    assert_eq!(meta.family(), Some("curltest"));
    assert_eq!(meta.service_name(), Some("MyService"));
    assert_eq!(meta.launch_type(), Some(&LaunchType::Ec2));
    assert_eq!(meta.availability_zone(), Some("us-west-2d"));
    assert_eq!(
        meta.container_id(),
        Some("ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66")
    );
    assert_eq!(meta.log_group(), Some("/ecs/metadata"));

    let task = meta.task().unwrap();
    assert_eq!(task.vpc_id.as_deref(), Some("vpc-1234567890abcdef0"));
    assert!(task.limits.is_none());
    let pause = &task.containers[0];
    assert_eq!(pause.container_type, Some(ContainerType::CniPause));
    assert_eq!(pause.known_status, Some(Status::ResourcesProvisioned));
    assert_eq!(pause.image_id.as_deref(), Some(""));
    let container: Container = typed("ec2-v4-container.json");
    assert_eq!(container.limits.unwrap().cpu, Some(10.0));
    assert_eq!(
        container.networks[0].subnet_gateway_ipv4_address.as_deref(),
        Some("10.0.2.1/24")
    );
}

#[test]
fn ec2_task_with_tags() {
    let task: Task = typed("ec2-v4-task-with-tags.json");
    assert_eq!(
        task.task_tags.get("tag-use").map(String::as_str),
        Some("task-metadata-endpoint-test")
    );
    assert_eq!(
        task.container_instance_tags
            .get("tag_key")
            .map(String::as_str),
        Some("tag_value")
    );
    assert!(task.errors.is_empty());
}

#[test]
fn v3_old_arn_format() {
    let meta = EcsMetadata::from_json(
        &fixture("v3-container.json"),
        Some(&fixture("v3-task.json")),
    )
    .unwrap();
    assert_eq!(
        meta.task_arn(),
        Some("arn:aws:ecs:us-east-2:012345678910:task/9781c248-0edd-4cdb-9a93-f63cb662a5d3")
    );
    assert_eq!(meta.task_id(), Some("9781c248-0edd-4cdb-9a93-f63cb662a5d3"));
    assert_eq!(meta.cluster_name(), Some("default"));
    assert_eq!(
        meta.cluster_arn(),
        Some("arn:aws:ecs:us-east-2:012345678910:cluster/default")
    );
    assert_eq!(meta.region(), Some("us-east-2"));
    assert_eq!(meta.account_id(), Some("012345678910"));
    assert_eq!(meta.family(), Some("nginx"));
    assert_eq!(meta.revision(), Some("5"));
    assert_eq!(meta.container_name(), Some("nginx-curl"));
    assert_eq!(meta.launch_type(), None);
    assert_eq!(meta.log_group(), None);
    assert_eq!(meta.availability_zone(), Some("us-east-2b"));
    assert_eq!(
        meta.task().unwrap().containers[0].name.as_deref(),
        Some("~internal~ecs~pause")
    );
}

#[test]
fn container_stats_bridge() {
    let stats: ContainerStats = typed("ec2-v4-container-stats-bridge.json");
    assert_eq!(
        stats.name.as_deref(),
        Some("/ecs-curltest-26-curl-c2e5f6e0cf91b0bead01")
    );
    let cpu = stats.cpu_stats.as_ref().unwrap();
    assert_eq!(cpu.cpu_usage.as_ref().unwrap().total_usage, Some(360968065));
    assert_eq!(cpu.system_cpu_usage, Some(13939680000000));
    assert_eq!(cpu.online_cpus, Some(2));
    let memory = stats.memory_stats.as_ref().unwrap();
    assert_eq!(
        (memory.usage, memory.limit),
        (Some(1806336), Some(134217728))
    );
    assert_eq!(memory.stats["hierarchical_memory_limit"], 134217728);
    assert_eq!(stats.networks["eth0"].rx_bytes, Some(84));
    assert_eq!(
        stats.network_rate_stats.as_ref().unwrap().rx_bytes_per_sec,
        Some(0.0)
    );
    assert_eq!(stats.pids_stats.as_ref().unwrap().current, Some(3));
    assert_eq!(
        stats
            .blkio_stats
            .as_ref()
            .unwrap()
            .io_service_bytes_recursive,
        Some(vec![])
    );
}

#[test]
fn task_stats() {
    let ec2: TaskStats = typed("ec2-v4-task-stats.json");
    assert_eq!(ec2.containers.len(), 2);
    assert_eq!(ec2.sampled().count(), 2);
    let pause = ec2.containers["01999f2e5c6cf4df3873f28950e6278813408f281c54778efec860d0caad4854"]
        .sample()
        .unwrap();
    assert_eq!(
        pause.memory_stats.as_ref().unwrap().stats["hierarchical_memory_limit"],
        9223372036854771712
    );

    let fargate: TaskStats = typed("fargate-v4-task-stats.json");
    let (id, stats) = fargate.sampled().next().unwrap();
    assert_eq!(id, "3d1f891cded94dc795608466cce8ddcf-464223573");
    // The docs print the cgroup v1 "unlimited" limit rounded: 9223372036854772000 still fits.
    assert_eq!(
        stats.memory_stats.as_ref().unwrap().limit,
        Some(9223372036854772000)
    );
    assert_eq!(
        stats
            .cpu_stats
            .as_ref()
            .unwrap()
            .cpu_usage
            .as_ref()
            .unwrap()
            .percpu_usage
            .len(),
        15
    );
    assert_eq!(stats.networks["eth1"].tx_bytes, Some(1259037719));
    assert_eq!(
        stats.network_rate_stats.as_ref().unwrap().tx_bytes_per_sec,
        Some(215.39347269466413)
    );
    let blkio = stats
        .blkio_stats
        .as_ref()
        .unwrap()
        .io_service_bytes_recursive
        .as_ref()
        .unwrap();
    assert_eq!(blkio[0].op.as_deref(), Some("Read"));
    assert_eq!(blkio[0].value, Some(638976));
    assert_eq!(stats.pids_stats.as_ref().unwrap().current, None);
}

#[test]
fn null_and_empty_task_stats_entries() {
    let stats: TaskStats = serde_json::from_str(
        r#"{"a": null, "b": {}, "c": {"read": "2020-10-02T00:51:32Z"}, "d": "junk"}"#,
    )
    .unwrap();
    assert_eq!(stats.containers["a"], StatsEntry::Null);
    assert_eq!(stats.containers["b"], StatsEntry::Empty);
    assert!(stats.containers["c"].sample().is_some());
    assert_eq!(stats.containers["d"], StatsEntry::Null);
    assert_eq!(stats.sampled().map(|(id, _)| id).collect::<Vec<_>>(), ["c"]);
}

#[test]
fn unknown_fields_values_and_odd_types_are_tolerated() {
    let task: Task = serde_json::from_str(
        r#"{
            "Cluster": "arn:aws:ecs:us-east-1:1:cluster/c", "TaskARN": "arn:aws:ecs:us-east-1:1:task/c/t",
            "Revision": 26, "LaunchType": "ORBITAL", "KnownStatus": "DEACTIVATING",
            "Limits": {"CPU": "0.5", "Memory": 512.0}, "FaultInjectionEnabled": "true",
            "SomethingNew": {"deep": [1, 2]}, "Group": "service:x", "AvailabilityZoneID": "use1-az4",
            "Containers": [{"Name": "a", "Type": "FUTURE_KIND", "ExitCode": "137", "Labels": {"n": 1, "o": {}}},
                           "not a container",
                           {"Name": "b", "Networks": "oops", "Limits": null}],
            "AvailabilityZone": 7
        }"#,
    )
    .unwrap();
    assert_eq!(task.revision.as_deref(), Some("26"));
    assert_eq!(task.launch_type, Some(LaunchType::Other("ORBITAL".into())));
    assert_eq!(task.launch_type.as_ref().unwrap().as_str(), "ORBITAL");
    assert_eq!(
        task.known_status,
        Some(Status::Other("DEACTIVATING".into()))
    );
    assert_eq!(task.limits.as_ref().unwrap().cpu, Some(0.5));
    assert_eq!(task.limits.as_ref().unwrap().memory_mib, Some(512));
    assert_eq!(task.fault_injection_enabled, Some(true));
    assert_eq!(task.availability_zone_id.as_deref(), Some("use1-az4"));
    assert_eq!(task.availability_zone.as_deref(), Some("7"));
    assert_eq!(task.containers.len(), 2);
    assert_eq!(
        task.containers[0].container_type,
        Some(ContainerType::Other("FUTURE_KIND".into()))
    );
    assert_eq!(task.containers[0].exit_code, Some(137));
    assert_eq!(
        task.containers[0].labels.get("n").map(String::as_str),
        Some("1")
    );
    assert!(!task.containers[0].labels.contains_key("o"));
    assert!(task.containers[1].networks.is_empty());
    assert!(task.containers[1].limits.is_none());
}

#[test]
fn saturating_counters() {
    let stats: ContainerStats = serde_json::from_str(
        r#"{"memory_stats": {"limit": 18446744073709551615, "usage": 1.8446744073709552e19, "stats": {"x": -1, "y": "12"}},
            "cpu_stats": {"online_cpus": null, "system_cpu_usage": "n/a"}}"#,
    )
    .unwrap();
    let memory = stats.memory_stats.unwrap();
    assert_eq!(memory.limit, Some(u64::MAX));
    assert_eq!(memory.usage, Some(u64::MAX));
    assert_eq!(memory.stats.get("x"), None);
    assert_eq!(memory.stats.get("y"), Some(&12));
    let cpu = stats.cpu_stats.unwrap();
    assert_eq!((cpu.online_cpus, cpu.system_cpu_usage), (None, None));
}
