//! The emulator's scenarios over loopback: consistent identities, both versions, advancing
//! stats, request counts.

use tracing_aws_ecs::MetadataClient;
use tracing_aws_ecs::emulator::{Emulator, Route, Scenario};
use tracing_aws_ecs::endpoint::ApiVersion;
use tracing_aws_ecs::endpoint::Document;
use tracing_aws_ecs::metadata::LaunchType;
use tracing_aws_ecs::stats::StatsEntry;

#[test]
fn every_scenario_is_consistent_across_paths() {
    for scenario in Scenario::ALL {
        let emulator = Emulator::start(scenario).unwrap();
        let client = emulator.client();
        let meta = client.fetch_metadata().unwrap();
        assert_eq!(meta.api_version(), Some(ApiVersion::V4));
        assert!(meta.task_error().is_none(), "{scenario}");
        let task = meta.task().unwrap();
        // The container payload is one of the task's containers, and the labels agree.
        let own = task
            .containers
            .iter()
            .find(|c| c.docker_id == meta.container().docker_id)
            .unwrap_or_else(|| panic!("{scenario}: own container not in /task"));
        assert_eq!(own.name.as_deref(), meta.container_name());
        let labels = &meta.container().labels;
        assert_eq!(
            labels["com.amazonaws.ecs.task-arn"],
            task.task_arn.clone().unwrap()
        );
        assert_eq!(
            labels["com.amazonaws.ecs.task-definition-version"],
            task.revision.clone().unwrap()
        );
        // The task ARN names the cluster; the stats are keyed by the task's DockerIds.
        let task_arn = meta.task_arn().unwrap();
        assert!(
            task_arn.contains(&format!("/{}/", meta.cluster_name().unwrap())),
            "{task_arn}"
        );
        assert!(task_arn.ends_with(meta.task_id().unwrap()));
        let stats = client.task_stats().unwrap();
        let ids: Vec<_> = task
            .containers
            .iter()
            .filter_map(|c| c.docker_id.clone())
            .collect();
        assert_eq!(
            stats
                .containers
                .keys()
                .cloned()
                .collect::<std::collections::BTreeSet<_>>(),
            ids.into_iter().collect()
        );
        assert!(
            meta.region().is_some() && meta.account_id().is_some() && meta.cluster_arn().is_some()
        );
        assert_eq!(emulator.requests(Document::Container), 1);
        assert_eq!(emulator.requests(Document::Task), 1);
        assert_eq!(emulator.requests(Document::TaskStats), 1);
        assert_eq!(emulator.requests(Route::Any), 3);
    }
}

#[test]
fn fargate_identity() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let meta = emulator.client().fetch_metadata().unwrap();
    assert_eq!(meta.cluster_name(), Some("prod-web"));
    assert_eq!(
        meta.cluster_arn(),
        Some("arn:aws:ecs:us-east-1:123456789012:cluster/prod-web")
    );
    assert_eq!(meta.family(), Some("orders-api"));
    assert_eq!(meta.container_name(), Some("app"));
    assert_eq!(meta.launch_type(), Some(&LaunchType::Fargate));
    assert_eq!(meta.service_name(), Some("orders-api"));
    assert_eq!(meta.log_group(), Some("/ecs/orders-api"));
    // Fargate has no /taskWithTags.
    assert_eq!(
        emulator.client().task_with_tags().unwrap_err().status(),
        Some(404)
    );
}

#[test]
fn ec2_short_cluster_pause_container_and_tags() {
    let emulator = Emulator::start(Scenario::Ec2).unwrap();
    let client = emulator.client();
    let meta = client.fetch_metadata().unwrap();
    assert_eq!(meta.cluster_name(), Some("default"));
    assert_eq!(meta.task().unwrap().cluster.as_deref(), Some("default"));
    assert_eq!(
        meta.cluster_arn(),
        Some("arn:aws:ecs:eu-west-1:210987654321:cluster/default")
    );
    assert_eq!(meta.launch_type(), Some(&LaunchType::Ec2));
    assert!(
        meta.task()
            .unwrap()
            .containers
            .iter()
            .any(|c| c.name.as_deref() == Some("~internal~ecs~pause"))
    );
    let tagged = client.task_with_tags().unwrap();
    assert_eq!(tagged.task_tags["team"], "billing");
    assert_eq!(tagged.container_instance_tags["env"], "prod");
    // The stopped container has `{}` on v4.
    let stats = client.task_stats().unwrap();
    assert_eq!(
        stats
            .containers
            .values()
            .filter(|e| **e == StatsEntry::Empty)
            .count(),
        1
    );
    assert_eq!(stats.sampled().count(), 2);
    let own = client.stats().unwrap();
    assert!(
        own.name
            .unwrap()
            .starts_with("/ecs-billing-worker-3-worker-")
    );
}

#[test]
fn managed_instances_cgroup_v2() {
    let emulator = Emulator::start(Scenario::ManagedInstances).unwrap();
    let client = emulator.client();
    assert_eq!(
        client.fetch_metadata().unwrap().launch_type(),
        Some(&LaunchType::ManagedInstances)
    );
    let stats = client.stats().unwrap();
    let memory = stats.memory_stats.unwrap();
    assert_eq!(memory.limit, Some(u64::MAX));
    assert!(memory.max_usage.is_none());
    assert!(memory.stats.contains_key("inactive_file"));
    let blkio = stats.blkio_stats.unwrap();
    assert!(blkio.io_serviced_recursive.is_none());
    assert_eq!(
        blkio.io_service_bytes_recursive.unwrap()[0].op.as_deref(),
        Some("read")
    );
    assert!(stats.networks.is_empty());
    assert!(
        stats
            .cpu_stats
            .unwrap()
            .cpu_usage
            .unwrap()
            .percpu_usage
            .is_empty()
    );
}

#[test]
fn v3_serves_the_older_schema() {
    let emulator = Emulator::start(Scenario::Ec2).unwrap();
    let client = MetadataClient::new(&emulator.url(ApiVersion::V3)).unwrap();
    assert_eq!(client.endpoint().version(), ApiVersion::V3);
    let meta = client.fetch_metadata().unwrap();
    assert_eq!(meta.api_version(), Some(ApiVersion::V3));
    assert_eq!(meta.launch_type(), None);
    assert_eq!(meta.container().container_arn, None);
    assert_eq!(meta.log_group(), None);
    // The identity still comes through.
    assert_eq!(meta.task_id(), Some("4e8a1f0c9b7d4c2e8f6a3b5d7c9e1f20"));
    assert_eq!(
        meta.cluster_arn(),
        Some("arn:aws:ecs:eu-west-1:210987654321:cluster/default")
    );
    // v3 sends `null` where v4 sends `{}`, and no rate stats.
    let stats = client.task_stats().unwrap();
    assert_eq!(
        stats
            .containers
            .values()
            .filter(|e| **e == StatsEntry::Null)
            .count(),
        1
    );
    assert!(stats.sampled().all(|(_, s)| s.network_rate_stats.is_none()));
}

#[test]
fn stats_counters_advance_between_calls() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let client = emulator.client();
    let first = client.stats().unwrap();
    let second = client.stats().unwrap();
    let usage = |cpu: &Option<tracing_aws_ecs::stats::CpuStats>| {
        cpu.as_ref()
            .unwrap()
            .cpu_usage
            .as_ref()
            .unwrap()
            .total_usage
            .unwrap()
    };
    let total = |s: &tracing_aws_ecs::stats::ContainerStats| usage(&s.cpu_stats);
    let pre_total = |s: &tracing_aws_ecs::stats::ContainerStats| usage(&s.precpu_stats);
    assert!(total(&second) > total(&first));
    // Each sample's previous sample is the one before it.
    assert_eq!(pre_total(&second), total(&first));
    assert!(total(&first) > pre_total(&first));
    assert!(second.networks["eth1"].rx_bytes > first.networks["eth1"].rx_bytes);
    assert_ne!(first.read, second.read);
}

#[test]
fn supplied_payloads_are_served() {
    let container = serde_json::json!({"Name": "mine", "DockerId": "abc-1", "Labels": {"com.amazonaws.ecs.cluster": "c1"}});
    let task = serde_json::json!({"Cluster": "c1", "TaskARN": "arn:aws:ecs:ap-south-1:999988887777:task/c1/t1",
                                  "Family": "f", "Revision": "1", "Containers": [container.clone()]});
    let emulator = Emulator::builder()
        .container(container)
        .task(task)
        .start()
        .unwrap();
    let client = emulator.client();
    let meta = client.fetch_metadata().unwrap();
    assert_eq!(meta.container_name(), Some("mine"));
    assert_eq!(
        meta.cluster_arn(),
        Some("arn:aws:ecs:ap-south-1:999988887777:cluster/c1")
    );
    // Generated stats follow the supplied containers.
    assert_eq!(
        client
            .task_stats()
            .unwrap()
            .containers
            .keys()
            .collect::<Vec<_>>(),
        ["abc-1"]
    );
    let fixed = serde_json::json!({"x": {}});
    let emulator = Emulator::builder()
        .task_stats(fixed.clone())
        .start()
        .unwrap();
    assert_eq!(emulator.client().raw(Document::TaskStats).unwrap(), fixed);
}

#[test]
fn unknown_paths_and_ids_are_404() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let wrong_id =
        MetadataClient::new(&format!("http://{}/v4/not-the-id", emulator.addr())).unwrap();
    let err = wrong_id.container().unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(err.to_string().contains("/v4/not-the-id"), "{err}");
    assert_eq!(emulator.requests(Route::Any), 1);
    assert_eq!(emulator.requests(Document::Container), 0);
}

#[test]
fn env_var_and_export_line() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let (variable, url) = emulator.env_var();
    assert_eq!(variable, "ECS_CONTAINER_METADATA_URI_V4");
    assert!(url.starts_with(&format!("http://{}/v4/", emulator.addr())));
    assert_eq!(emulator.export_line(), format!("export {variable}={url}"));
    let addr = emulator.addr();
    emulator.stop();
    assert!(
        std::net::TcpStream::connect(addr).is_err()
            || MetadataClient::new(&url).unwrap().container().is_err()
    );
}
