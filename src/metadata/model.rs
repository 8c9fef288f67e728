//! The typed payloads of `${ECS_CONTAINER_METADATA_URI_V4}` and `/task`.
//!
//! Every field is optional or defaults to empty: AWS documents fields that older agents and
//! other platforms do not send, and new fields arrive without notice. Field types follow the
//! wire (`Revision` is a string, task CPU is a float in vCPUs, container CPU is in CPU units).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::de;

/// Defines an open set of string values: the known ones as variants, anything else kept as sent.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $wire:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A value this version of the crate does not know, kept as the endpoint sent it.
            Other(String),
        }

        impl $name {
            /// The value as the endpoint spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Other(s) => s,
                }
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                match s {
                    $($wire => Self::$variant,)+
                    other => Self::Other(other.to_owned()),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Ok(Self::from(s.as_str()))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}

open_enum! {
    /// Where the task runs (`LaunchType`, v4 only).
    LaunchType {
        /// `EC2`: a container instance the customer manages.
        Ec2 => "EC2",
        /// `FARGATE`.
        Fargate => "FARGATE",
        /// `MANAGED_INSTANCES`: ECS Managed Instances.
        ManagedInstances => "MANAGED_INSTANCES",
    }
}

open_enum! {
    /// A task's or container's `KnownStatus` or `DesiredStatus`.
    Status {
        /// `NONE`.
        None => "NONE",
        /// `MANIFEST_PULLED`.
        ManifestPulled => "MANIFEST_PULLED",
        /// `PULLED`.
        Pulled => "PULLED",
        /// `CREATED`.
        Created => "CREATED",
        /// `RUNNING`.
        Running => "RUNNING",
        /// `RESOURCES_PROVISIONED` (pause containers).
        ResourcesProvisioned => "RESOURCES_PROVISIONED",
        /// `STOPPED`.
        Stopped => "STOPPED",
    }
}

open_enum! {
    /// A container's `Type`.
    ContainerType {
        /// `NORMAL`: a container of the task definition.
        Normal => "NORMAL",
        /// `CNI_PAUSE`: the awsvpc pause container.
        CniPause => "CNI_PAUSE",
        /// `NAMESPACE_PAUSE`.
        NamespacePause => "NAMESPACE_PAUSE",
        /// `EMPTY_HOST_VOLUME`.
        EmptyHostVolume => "EMPTY_HOST_VOLUME",
        /// `MANAGED_DAEMON`.
        ManagedDaemon => "MANAGED_DAEMON",
        /// `SERVICE_CONNECT_RELAY`.
        ServiceConnectRelay => "SERVICE_CONNECT_RELAY",
    }
}

/// Resource limits. Task `CPU` is in vCPUs (`0.25`); container `CPU` in CPU units (1024 = 1 vCPU).
/// `Memory` is in MiB in both.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// `CPU`.
    #[serde(rename = "CPU", default, deserialize_with = "de::f64")]
    pub cpu: Option<f64>,
    /// `Memory`, in MiB.
    #[serde(rename = "Memory", default, deserialize_with = "de::u64")]
    pub memory_mib: Option<u64>,
}

/// One entry of a container's `Networks`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Network {
    /// `NetworkMode`: `awsvpc`, `bridge`, `host`, …
    #[serde(default, deserialize_with = "de::string")]
    pub network_mode: Option<String>,
    /// `IPv4Addresses`.
    #[serde(rename = "IPv4Addresses", default, deserialize_with = "de::vec")]
    pub ipv4_addresses: Vec<String>,
    /// `IPv6Addresses`.
    #[serde(rename = "IPv6Addresses", default, deserialize_with = "de::vec")]
    pub ipv6_addresses: Vec<String>,
    /// `AttachmentIndex` (awsvpc).
    #[serde(default, deserialize_with = "de::u64")]
    pub attachment_index: Option<u64>,
    /// `MACAddress` (awsvpc).
    #[serde(rename = "MACAddress", default, deserialize_with = "de::string")]
    pub mac_address: Option<String>,
    /// `IPv4SubnetCIDRBlock` (awsvpc).
    #[serde(
        rename = "IPv4SubnetCIDRBlock",
        default,
        deserialize_with = "de::string"
    )]
    pub ipv4_subnet_cidr_block: Option<String>,
    /// `IPv6SubnetCIDRBlock` (awsvpc).
    #[serde(
        rename = "IPv6SubnetCIDRBlock",
        default,
        deserialize_with = "de::string"
    )]
    pub ipv6_subnet_cidr_block: Option<String>,
    /// `DomainNameServers` (awsvpc).
    #[serde(default, deserialize_with = "de::vec")]
    pub domain_name_servers: Vec<String>,
    /// `DomainNameSearchList` (awsvpc).
    #[serde(default, deserialize_with = "de::vec")]
    pub domain_name_search_list: Vec<String>,
    /// `PrivateDNSName` (awsvpc).
    #[serde(rename = "PrivateDNSName", default, deserialize_with = "de::string")]
    pub private_dns_name: Option<String>,
    /// `SubnetGatewayIpv4Address`, CIDR-style (`10.0.2.1/24`); can be empty.
    #[serde(default, deserialize_with = "de::string")]
    pub subnet_gateway_ipv4_address: Option<String>,
    /// `SubnetGatewayIpv6Address` (IPv6-only tasks).
    #[serde(default, deserialize_with = "de::string")]
    pub subnet_gateway_ipv6_address: Option<String>,
}

/// One entry of a container's `Ports`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Port {
    /// `ContainerPort`.
    #[serde(default, deserialize_with = "de::u64")]
    pub container_port: Option<u64>,
    /// `Protocol` (`tcp`, `udp`).
    #[serde(default, deserialize_with = "de::string")]
    pub protocol: Option<String>,
    /// `HostPort`.
    #[serde(default, deserialize_with = "de::u64")]
    pub host_port: Option<u64>,
    /// `HostIp` (v4 only).
    #[serde(default, deserialize_with = "de::string")]
    pub host_ip: Option<String>,
}

/// A container's `Health` (lowercase keys on the wire).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Health {
    /// `status`: `HEALTHY`, `UNHEALTHY` or `UNKNOWN`.
    #[serde(default, deserialize_with = "de::string")]
    pub status: Option<String>,
    /// `statusSince`.
    #[serde(rename = "statusSince", default, deserialize_with = "de::string")]
    pub status_since: Option<String>,
    /// `exitCode` of the last check.
    #[serde(rename = "exitCode", default, deserialize_with = "de::i64")]
    pub exit_code: Option<i64>,
    /// `output` of the last check.
    #[serde(default, deserialize_with = "de::string")]
    pub output: Option<String>,
}

/// One entry of a container's `Volumes`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Volume {
    /// `DockerName`.
    #[serde(default, deserialize_with = "de::string")]
    pub docker_name: Option<String>,
    /// `Source`.
    #[serde(default, deserialize_with = "de::string")]
    pub source: Option<String>,
    /// `Destination`.
    #[serde(default, deserialize_with = "de::string")]
    pub destination: Option<String>,
}

/// Container metadata: the endpoint's base path, and each entry of the task's `Containers`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Container {
    /// `DockerId`: 64 hex on EC2, `<task id>-<digits>` on Fargate; empty before creation.
    #[serde(default, deserialize_with = "de::string")]
    pub docker_id: Option<String>,
    /// `Name`, from the task definition.
    #[serde(default, deserialize_with = "de::string")]
    pub name: Option<String>,
    /// `DockerName`.
    #[serde(default, deserialize_with = "de::string")]
    pub docker_name: Option<String>,
    /// `Image`.
    #[serde(default, deserialize_with = "de::string")]
    pub image: Option<String>,
    /// `ImageID`: a `sha256:` digest; can be empty.
    #[serde(rename = "ImageID", default, deserialize_with = "de::string")]
    pub image_id: Option<String>,
    /// `Ports`.
    #[serde(default, deserialize_with = "de::vec")]
    pub ports: Vec<Port>,
    /// `Labels`, including the `com.amazonaws.ecs.*` identity labels.
    #[serde(default, deserialize_with = "de::string_map")]
    pub labels: BTreeMap<String, String>,
    /// `DesiredStatus`.
    #[serde(default, deserialize_with = "de::any")]
    pub desired_status: Option<Status>,
    /// `KnownStatus`.
    #[serde(default, deserialize_with = "de::any")]
    pub known_status: Option<Status>,
    /// `ExitCode`, once the container has exited.
    #[serde(default, deserialize_with = "de::i64")]
    pub exit_code: Option<i64>,
    /// `Limits`.
    #[serde(default, deserialize_with = "de::any")]
    pub limits: Option<Limits>,
    /// `CreatedAt` (RFC 3339).
    #[serde(default, deserialize_with = "de::string")]
    pub created_at: Option<String>,
    /// `StartedAt` (RFC 3339).
    #[serde(default, deserialize_with = "de::string")]
    pub started_at: Option<String>,
    /// `FinishedAt` (RFC 3339).
    #[serde(default, deserialize_with = "de::string")]
    pub finished_at: Option<String>,
    /// `Type`.
    #[serde(rename = "Type", default, deserialize_with = "de::any")]
    pub container_type: Option<ContainerType>,
    /// `Networks`; can be missing while the container is being created.
    #[serde(default, deserialize_with = "de::vec")]
    pub networks: Vec<Network>,
    /// `Health`, when the task definition has a health check.
    #[serde(default, deserialize_with = "de::any")]
    pub health: Option<Health>,
    /// `Volumes`.
    #[serde(default, deserialize_with = "de::vec")]
    pub volumes: Vec<Volume>,
    /// `LogDriver` (v4): `awslogs`, `awsfirelens`, …
    #[serde(default, deserialize_with = "de::string")]
    pub log_driver: Option<String>,
    /// `LogOptions` (v4).
    #[serde(default, deserialize_with = "de::string_map")]
    pub log_options: BTreeMap<String, String>,
    /// `ContainerARN` (v4); not always a valid ARN.
    #[serde(rename = "ContainerARN", default, deserialize_with = "de::string")]
    pub container_arn: Option<String>,
    /// `Snapshotter` (Fargate, Managed Instances).
    #[serde(default, deserialize_with = "de::string")]
    pub snapshotter: Option<String>,
    /// `RestartCount`, when a restart policy is enabled.
    #[serde(default, deserialize_with = "de::u64")]
    pub restart_count: Option<u64>,
}

/// `ClockDrift` (Fargate, Managed Instances).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ClockDrift {
    /// `ClockErrorBound`, in milliseconds.
    #[serde(default, deserialize_with = "de::f64")]
    pub clock_error_bound: Option<f64>,
    /// `ReferenceTimestamp` (the docs call it `ReferenceTime`; the wire does not).
    #[serde(default, deserialize_with = "de::string")]
    pub reference_timestamp: Option<String>,
    /// `ClockSynchronizationStatus`: `SYNCHRONIZED` or `NOT_SYNCHRONIZED`.
    #[serde(default, deserialize_with = "de::string")]
    pub clock_synchronization_status: Option<String>,
}

/// `EphemeralStorageMetrics` (Fargate), in MiB.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct EphemeralStorageMetrics {
    /// `Utilized`.
    #[serde(default, deserialize_with = "de::u64")]
    pub utilized: Option<u64>,
    /// `Reserved`.
    #[serde(default, deserialize_with = "de::u64")]
    pub reserved: Option<u64>,
}

/// One entry of `/taskWithTags`' `Errors`: why some tags could not be read.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct TaskError {
    /// `ErrorField`.
    #[serde(default, deserialize_with = "de::string")]
    pub error_field: Option<String>,
    /// `ErrorCode`.
    #[serde(default, deserialize_with = "de::string")]
    pub error_code: Option<String>,
    /// `ErrorMessage`.
    #[serde(default, deserialize_with = "de::string")]
    pub error_message: Option<String>,
    /// `StatusCode`.
    #[serde(default, deserialize_with = "de::u64")]
    pub status_code: Option<u64>,
    /// `RequestId`.
    #[serde(default, deserialize_with = "de::string")]
    pub request_id: Option<String>,
    /// `ResourceARN`.
    #[serde(rename = "ResourceARN", default, deserialize_with = "de::string")]
    pub resource_arn: Option<String>,
}

/// Task metadata: `/task`, and `/taskWithTags` (which adds the tags and `Errors`).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct Task {
    /// `Cluster`: an ARN on Fargate and Managed Instances, usually a short name on EC2.
    #[serde(default, deserialize_with = "de::string")]
    pub cluster: Option<String>,
    /// `TaskARN`, old (`task/<uuid>`) or new (`task/<cluster>/<id>`) format.
    #[serde(rename = "TaskARN", default, deserialize_with = "de::string")]
    pub task_arn: Option<String>,
    /// `Family`.
    #[serde(default, deserialize_with = "de::string")]
    pub family: Option<String>,
    /// `Revision`: a string on the wire.
    #[serde(default, deserialize_with = "de::string")]
    pub revision: Option<String>,
    /// `DesiredStatus`.
    #[serde(default, deserialize_with = "de::any")]
    pub desired_status: Option<Status>,
    /// `KnownStatus`.
    #[serde(default, deserialize_with = "de::any")]
    pub known_status: Option<Status>,
    /// `Limits`: task-level CPU (vCPUs) and memory (MiB), when the task defines them.
    #[serde(default, deserialize_with = "de::any")]
    pub limits: Option<Limits>,
    /// `PullStartedAt` (RFC 3339).
    #[serde(default, deserialize_with = "de::string")]
    pub pull_started_at: Option<String>,
    /// `PullStoppedAt` (RFC 3339).
    #[serde(default, deserialize_with = "de::string")]
    pub pull_stopped_at: Option<String>,
    /// `ExecutionStoppedAt` (RFC 3339).
    #[serde(default, deserialize_with = "de::string")]
    pub execution_stopped_at: Option<String>,
    /// `AvailabilityZone`.
    #[serde(default, deserialize_with = "de::string")]
    pub availability_zone: Option<String>,
    /// `AvailabilityZoneID` (newer agents).
    #[serde(
        rename = "AvailabilityZoneID",
        default,
        deserialize_with = "de::string"
    )]
    pub availability_zone_id: Option<String>,
    /// `LaunchType` (v4).
    #[serde(default, deserialize_with = "de::any")]
    pub launch_type: Option<LaunchType>,
    /// `ServiceName`, when the task belongs to a service.
    #[serde(default, deserialize_with = "de::string")]
    pub service_name: Option<String>,
    /// `VPCID` (EC2, Managed Instances).
    #[serde(rename = "VPCID", default, deserialize_with = "de::string")]
    pub vpc_id: Option<String>,
    /// `Group`, such as `service:orders`.
    #[serde(default, deserialize_with = "de::string")]
    pub group: Option<String>,
    /// `Containers`, internal ones (pause) included, in no guaranteed order.
    #[serde(default, deserialize_with = "de::vec")]
    pub containers: Vec<Container>,
    /// `ClockDrift`.
    #[serde(default, deserialize_with = "de::any")]
    pub clock_drift: Option<ClockDrift>,
    /// `EphemeralStorageMetrics`.
    #[serde(default, deserialize_with = "de::any")]
    pub ephemeral_storage_metrics: Option<EphemeralStorageMetrics>,
    /// `FaultInjectionEnabled`.
    #[serde(default, deserialize_with = "de::bool")]
    pub fault_injection_enabled: Option<bool>,
    /// `TaskTags` (`/taskWithTags` only).
    #[serde(default, deserialize_with = "de::string_map")]
    pub task_tags: BTreeMap<String, String>,
    /// `ContainerInstanceTags` (`/taskWithTags` on EC2 only).
    #[serde(default, deserialize_with = "de::string_map")]
    pub container_instance_tags: BTreeMap<String, String>,
    /// `Errors` (`/taskWithTags` when a tag lookup failed).
    #[serde(default, deserialize_with = "de::vec")]
    pub errors: Vec<TaskError>,
}
