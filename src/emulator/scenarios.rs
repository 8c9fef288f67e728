//! Built-in payloads: one task per launch type, with identities consistent across the
//! container payload, `/task`, the labels, the ARNs and the stats keys.

use serde_json::{Value, json};

use super::Scenario;

/// What a scenario serves.
pub(super) struct Payloads {
    pub(super) container: Value,
    pub(super) task: Value,
    /// `None` where the platform has no `/taskWithTags`.
    pub(super) task_with_tags: Option<Value>,
}

struct Identity {
    partition: &'static str,
    region: &'static str,
    account: &'static str,
    cluster: &'static str,
    task_id: &'static str,
    family: &'static str,
    revision: &'static str,
}

impl Identity {
    fn arn(&self, resource: &str) -> String {
        format!(
            "arn:{}:ecs:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    fn task_arn(&self) -> String {
        self.arn(&format!("task/{}/{}", self.cluster, self.task_id))
    }

    fn cluster_arn(&self) -> String {
        self.arn(&format!("cluster/{}", self.cluster))
    }

    /// The labels ECS puts on every container; `cluster` is an ARN or a short name.
    fn labels(&self, cluster: &str, container: &str) -> Value {
        json!({
            "com.amazonaws.ecs.cluster": cluster,
            "com.amazonaws.ecs.container-name": container,
            "com.amazonaws.ecs.task-arn": self.task_arn(),
            "com.amazonaws.ecs.task-definition-family": self.family,
            "com.amazonaws.ecs.task-definition-version": self.revision,
        })
    }

    fn awslogs(&self, group: &str, container: &str) -> Value {
        json!({
            "awslogs-create-group": "true",
            "awslogs-group": group,
            "awslogs-region": self.region,
            "awslogs-stream": format!("ecs/{container}/{}", self.task_id),
        })
    }
}

fn awsvpc(ip: &str, cidr: &str, gateway: &str, dns_name: &str) -> Value {
    json!([{
        "NetworkMode": "awsvpc",
        "IPv4Addresses": [ip],
        "AttachmentIndex": 0,
        "MACAddress": "0a:1b:2c:3d:4e:5f",
        "IPv4SubnetCIDRBlock": cidr,
        "PrivateDNSName": dns_name,
        "SubnetGatewayIpv4Address": gateway,
    }])
}

pub(super) fn payloads(scenario: Scenario) -> Payloads {
    match scenario {
        Scenario::Fargate => fargate(),
        Scenario::Ec2 => ec2(),
        Scenario::ManagedInstances => managed_instances(),
    }
}

fn fargate() -> Payloads {
    let id = Identity {
        partition: "aws",
        region: "us-east-1",
        account: "123456789012",
        cluster: "prod-web",
        task_id: "9c2b1d7e4f6a48b3a1c0d2e3f4a5b6c7",
        family: "orders-api",
        revision: "12",
    };
    let cluster = id.cluster_arn();
    let networks = awsvpc(
        "10.20.3.117",
        "10.20.0.0/20",
        "10.20.0.1/20",
        "ip-10-20-3-117.ec2.internal",
    );
    let app = json!({
        "DockerId": format!("{}-1578323117", id.task_id),
        "Name": "app",
        "DockerName": "app",
        "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders-api:1.8.0",
        "ImageID": "sha256:3f1b9c0e6a7d4b2c8e5f1a0d9c7b6e4f2a1d0c9b8e7f6a5d4c3b2a1f0e9d8c7b",
        "Labels": id.labels(&cluster, "app"),
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": { "CPU": 256, "Memory": 768 },
        "CreatedAt": "2026-11-28T09:14:02.118240183Z",
        "StartedAt": "2026-11-28T09:14:02.118240183Z",
        "Type": "NORMAL",
        "Networks": networks,
        "ContainerARN": id.arn(&format!("container/{}/{}/5d0c6a3e-8b1f-4e2a-9c7d-1f3b5a7c9e2d", id.cluster, id.task_id)),
        "LogOptions": id.awslogs("/ecs/orders-api", "app"),
        "LogDriver": "awslogs",
        "Snapshotter": "overlayfs",
    });
    let envoy = json!({
        "DockerId": format!("{}-2916283545", id.task_id),
        "Name": "envoy",
        "DockerName": "envoy",
        "Image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.6.0-prod",
        "ImageID": "sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
        "Labels": id.labels(&cluster, "envoy"),
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": { "CPU": 0 },
        "CreatedAt": "2026-11-28T09:14:01.902113470Z",
        "StartedAt": "2026-11-28T09:14:01.902113470Z",
        "Type": "NORMAL",
        "Health": { "status": "HEALTHY", "statusSince": "2026-11-28T09:14:12.553102845Z" },
        "Networks": networks,
        "ContainerARN": id.arn(&format!("container/{}/{}/a3c5e7f9-1b2d-4f6a-8c0e-2d4f6a8c0e1b", id.cluster, id.task_id)),
        "LogOptions": id.awslogs("/ecs/orders-api", "envoy"),
        "LogDriver": "awslogs",
        "Snapshotter": "overlayfs",
    });
    let task = json!({
        "Cluster": cluster,
        "TaskARN": id.task_arn(),
        "Family": id.family,
        "Revision": id.revision,
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": { "CPU": 0.5, "Memory": 1024 },
        "PullStartedAt": "2026-11-28T09:13:51.204937219Z",
        "PullStoppedAt": "2026-11-28T09:14:00.881290365Z",
        "AvailabilityZone": "us-east-1b",
        "ServiceName": "orders-api",
        "LaunchType": "FARGATE",
        "Containers": [app, envoy],
        "ClockDrift": {
            "ClockErrorBound": 0.3184,
            "ReferenceTimestamp": "2026-11-28T09:20:00Z",
            "ClockSynchronizationStatus": "SYNCHRONIZED",
        },
        "EphemeralStorageMetrics": { "Utilized": 312, "Reserved": 20496 },
        "FaultInjectionEnabled": false,
    });
    Payloads {
        container: task["Containers"][0].clone(),
        task,
        task_with_tags: None,
    }
}

fn ec2() -> Payloads {
    let id = Identity {
        partition: "aws",
        region: "eu-west-1",
        account: "210987654321",
        cluster: "default",
        task_id: "4e8a1f0c9b7d4c2e8f6a3b5d7c9e1f20",
        family: "billing-worker",
        revision: "3",
    };
    // EC2 echoes ECS_CLUSTER from the agent config: the short name, in labels too.
    let cluster = id.cluster;
    let networks = awsvpc(
        "172.31.9.44",
        "172.31.0.0/20",
        "172.31.0.1/20",
        "ip-172-31-9-44.eu-west-1.compute.internal",
    );
    let pause = json!({
        "DockerId": "7f3e1d9c5b2a48e6f0c4a2b8d6e9f1a3c5b7d9e2f4a6c8b0d1e3f5a7c9b2d4e6",
        "Name": "~internal~ecs~pause",
        "DockerName": "ecs-billing-worker-3-internalecspause-c0e2f4a6b8d0e2f4a600",
        "Image": "amazon/amazon-ecs-pause:0.1.0",
        "ImageID": "",
        "Labels": id.labels(cluster, "~internal~ecs~pause"),
        "DesiredStatus": "RESOURCES_PROVISIONED",
        "KnownStatus": "RESOURCES_PROVISIONED",
        "Limits": { "CPU": 0, "Memory": 0 },
        "CreatedAt": "2026-11-27T22:41:07.331902118Z",
        "StartedAt": "2026-11-27T22:41:07.802113004Z",
        "Type": "CNI_PAUSE",
        "Networks": networks,
    });
    let worker = json!({
        "DockerId": "b41c8e2f6a9d3c7e5f1a8b2d4c6e9f0a3b5d7c1e8f2a4b6d9c0e3f5a7b1d2c4e",
        "Name": "worker",
        "DockerName": "ecs-billing-worker-3-worker-e8c4a2b1d3f5a7c90100",
        "Image": "210987654321.dkr.ecr.eu-west-1.amazonaws.com/billing-worker:2026.11.2",
        "ImageID": "sha256:c7d9e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9",
        "Labels": id.labels(cluster, "worker"),
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": { "CPU": 512, "Memory": 1024 },
        "CreatedAt": "2026-11-27T22:41:08.114209367Z",
        "StartedAt": "2026-11-27T22:41:08.607731920Z",
        "Type": "NORMAL",
        "LogDriver": "awslogs",
        "LogOptions": id.awslogs("/ecs/billing-worker", "worker"),
        "ContainerARN": id.arn("container/0b6f2c8e-4a1d-4e9b-b3c7-5d2f8a6e1c90"),
        "Networks": networks,
    });
    let migrate = json!({
        "DockerId": "e0a2c4e6f8a0b2c4d6e8f0a2b4c6d8e0f2a4b6c8d0e2f4a6b8c0d2e4f6a8b0c2",
        "Name": "migrate",
        "DockerName": "ecs-billing-worker-3-migrate-a2c4e6f8b0d2e4f6a800",
        "Image": "210987654321.dkr.ecr.eu-west-1.amazonaws.com/billing-migrate:2026.11.2",
        "ImageID": "sha256:e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5e7f9a1b3c5d7e9f1a3b5c7d9e1f3",
        "Labels": id.labels(cluster, "migrate"),
        "DesiredStatus": "STOPPED",
        "KnownStatus": "STOPPED",
        "ExitCode": 0,
        "Limits": { "CPU": 128, "Memory": 256 },
        "CreatedAt": "2026-11-27T22:41:08.002118456Z",
        "StartedAt": "2026-11-27T22:41:08.398420013Z",
        "FinishedAt": "2026-11-27T22:41:21.640021587Z",
        "Type": "NORMAL",
        "LogDriver": "awslogs",
        "LogOptions": id.awslogs("/ecs/billing-worker", "migrate"),
        "ContainerARN": id.arn("container/6e1a9c3f-2b7d-4f0e-8a5c-d3b9f1e7a2c4"),
        "Networks": networks,
    });
    let task = json!({
        "Cluster": cluster,
        "TaskARN": id.task_arn(),
        "Family": id.family,
        "ServiceName": "billing",
        "Revision": id.revision,
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "PullStartedAt": "2026-11-27T22:41:07.902118263Z",
        "PullStoppedAt": "2026-11-27T22:41:08.001204337Z",
        "AvailabilityZone": "eu-west-1c",
        "VPCID": "vpc-0a1b2c3d4e5f60718",
        "LaunchType": "EC2",
        "Containers": [pause, worker, migrate],
        "FaultInjectionEnabled": false,
    });
    let mut with_tags = task.clone();
    with_tags["TaskTags"] = json!({ "team": "billing", "cost-center": "cc-204" });
    with_tags["ContainerInstanceTags"] = json!({ "env": "prod", "ami": "al2023" });
    Payloads {
        container: task["Containers"][1].clone(),
        task,
        task_with_tags: Some(with_tags),
    }
}

fn managed_instances() -> Payloads {
    let id = Identity {
        partition: "aws",
        region: "us-west-2",
        account: "444455556666",
        cluster: "ml-serving",
        task_id: "2d4f6a8c0e1b3d5f7a9c1e3b5d7f9a1c",
        family: "inference",
        revision: "4",
    };
    let cluster = id.cluster_arn();
    let model = json!({
        "DockerId": format!("{}-3904871126", id.task_id),
        "Name": "model-server",
        "DockerName": "model-server",
        "Image": "444455556666.dkr.ecr.us-west-2.amazonaws.com/model-server:v7",
        "ImageID": "sha256:a9c1e3f5b7d9a1c3e5f7b9d1a3c5e7f9b1d3a5c7e9f1b3d5a7c9e1f3b5d7a9c1",
        "Labels": id.labels(&cluster, "model-server"),
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": { "CPU": 1024, "Memory": 2048 },
        "CreatedAt": "2026-11-28T17:02:44.503118274Z",
        "StartedAt": "2026-11-28T17:02:45.011927305Z",
        "Type": "NORMAL",
        "Networks": awsvpc("10.8.14.201", "10.8.0.0/18", "10.8.0.1/18", "ip-10-8-14-201.us-west-2.compute.internal"),
        "ContainerARN": id.arn(&format!("container/{}/{}/c8e0a2b4-6d8f-4a1c-9e3b-5f7d9b1a3c5e", id.cluster, id.task_id)),
        "LogOptions": id.awslogs("/ecs/inference", "model-server"),
        "LogDriver": "awslogs",
        "Snapshotter": "overlayfs",
        "RestartCount": 0,
    });
    let task = json!({
        "Cluster": cluster,
        "TaskARN": id.task_arn(),
        "Family": id.family,
        "Revision": id.revision,
        "DesiredStatus": "RUNNING",
        "KnownStatus": "RUNNING",
        "Limits": { "CPU": 1, "Memory": 2048 },
        "PullStartedAt": "2026-11-28T17:02:31.773019452Z",
        "PullStoppedAt": "2026-11-28T17:02:44.127330901Z",
        "AvailabilityZone": "us-west-2a",
        "AvailabilityZoneID": "usw2-az1",
        "VPCID": "vpc-0f1e2d3c4b5a69788",
        "LaunchType": "MANAGED_INSTANCES",
        "Containers": [model],
        "ClockDrift": {
            "ClockErrorBound": 0.2071,
            "ReferenceTimestamp": "2026-11-28T17:10:00Z",
            "ClockSynchronizationStatus": "SYNCHRONIZED",
        },
        "FaultInjectionEnabled": false,
    });
    Payloads {
        container: task["Containers"][0].clone(),
        task,
        task_with_tags: None,
    }
}

/// Strips what v3 (the v2 schema) does not have.
pub(super) fn to_v3(mut value: Value) -> Value {
    const TASK_ONLY_V4: &[&str] = &[
        "LaunchType",
        "ServiceName",
        "VPCID",
        "ClockDrift",
        "EphemeralStorageMetrics",
        "FaultInjectionEnabled",
        "AvailabilityZoneID",
        "Group",
        "Errors",
    ];
    if let Some(task) = value.as_object_mut() {
        for key in TASK_ONLY_V4 {
            task.remove(*key);
        }
        if let Some(containers) = task.get_mut("Containers").and_then(Value::as_array_mut) {
            for container in containers {
                container_to_v3(container);
            }
        }
    }
    container_to_v3(&mut value);
    value
}

fn container_to_v3(container: &mut Value) {
    let Some(container) = container.as_object_mut() else {
        return;
    };
    for key in [
        "LogDriver",
        "LogOptions",
        "ContainerARN",
        "Snapshotter",
        "RestartCount",
    ] {
        container.remove(key);
    }
    if let Some(networks) = container.get_mut("Networks").and_then(Value::as_array_mut) {
        for network in networks.iter_mut().filter_map(Value::as_object_mut) {
            network.retain(|k, _| {
                matches!(
                    k.as_str(),
                    "NetworkMode" | "IPv4Addresses" | "IPv6Addresses"
                )
            });
        }
    }
}
