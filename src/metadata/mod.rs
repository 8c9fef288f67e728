//! ECS metadata: the typed model, ARN parsing, and [`EcsMetadata`] with its derived identity.

mod arn;
pub(crate) mod de;
mod model;

pub use model::{
    ClockDrift, Container, ContainerType, EphemeralStorageMetrics, Health, LaunchType, Limits,
    Network, Port, Status, Task, TaskError, Volume,
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::endpoint::ApiVersion;
use crate::error::Error;
pub(crate) use arn::Arn;
use arn::{ContainerArn, TaskArn, cluster_short_name};

/// The standard Docker labels ECS puts on every container.
mod label {
    pub const CLUSTER: &str = "com.amazonaws.ecs.cluster";
    pub const CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
    pub const TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
    pub const FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
    pub const REVISION: &str = "com.amazonaws.ecs.task-definition-version";
}

/// Metadata of this container and, when it could be read, of its task: raw and typed, with
/// the identity (cluster, task, region, …) derived once when it is built.
///
/// Derived values come from the task payload first and fall back on what the container
/// payload carries (its labels and `ContainerARN`), so a failed `/task` still yields the
/// cluster, task ARN, family and revision.
///
/// ```
/// use tracing_aws_ecs::EcsMetadata;
///
/// let container = r#"{
///     "DockerId": "ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66",
///     "Name": "curl",
///     "Image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest",
///     "Labels": {
///         "com.amazonaws.ecs.cluster": "default",
///         "com.amazonaws.ecs.task-arn": "arn:aws:ecs:us-west-2:111122223333:task/default/8f03e41243824aea923aca126495f665",
///         "com.amazonaws.ecs.task-definition-family": "curltest",
///         "com.amazonaws.ecs.task-definition-version": "24"
///     }
/// }"#;
/// let meta = EcsMetadata::from_json(container, None)?;
/// assert_eq!(meta.cluster_name(), Some("default"));
/// assert_eq!(meta.cluster_arn(), Some("arn:aws:ecs:us-west-2:111122223333:cluster/default"));
/// assert_eq!(meta.task_id(), Some("8f03e41243824aea923aca126495f665"));
/// assert_eq!(meta.region(), Some("us-west-2"));
/// # Ok::<(), tracing_aws_ecs::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct EcsMetadata {
    version: Option<ApiVersion>,
    container: Container,
    container_raw: Value,
    task: Option<Task>,
    task_raw: Option<Value>,
    task_error: Option<Error>,
    identity: Identity,
}

/// Who this container is: values derived once from the payloads, from the task payload first
/// and what the container payload carries (labels, `ContainerARN`) after. `None` where
/// unknown. It serialises to one JSON object with these keys (what `ecs-metadata summary`
/// prints); [`EcsMetadata`] has an accessor for each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Identity {
    /// The cluster's short name, from a cluster ARN or as given (EC2 gives the short name).
    pub cluster_name: Option<String>,
    /// The cluster ARN: as given, or built from the short name with the partition, region and
    /// account of the task ARN.
    pub cluster_arn: Option<String>,
    /// The task ARN (old or new format).
    pub task_arn: Option<String>,
    /// The task id: the last segment of the task ARN.
    pub task_id: Option<String>,
    /// The task definition family.
    pub family: Option<String>,
    /// The task definition revision (a string, as on the wire).
    pub revision: Option<String>,
    /// This container's name in the task definition.
    pub container_name: Option<String>,
    /// This container's image.
    pub image: Option<String>,
    /// This container's runtime id (`DockerId`).
    pub container_id: Option<String>,
    /// The region, from the task ARN (or the container or cluster ARN, or the availability
    /// zone when it has the standard `<region><letter>` form).
    pub region: Option<String>,
    /// The AWS account id, from the task ARN.
    pub account_id: Option<String>,
    /// The partition (`aws`, `aws-cn`, `aws-us-gov`, …), from the task ARN.
    pub partition: Option<String>,
    /// The launch type (v4 task metadata only).
    pub launch_type: Option<LaunchType>,
    /// The availability zone (task metadata).
    pub availability_zone: Option<String>,
    /// The service the task belongs to, from `ServiceName` or a `service:` `Group`.
    pub service_name: Option<String>,
    /// The CloudWatch Logs group of this container's `awslogs` driver.
    pub log_group: Option<String>,
    /// The CloudWatch Logs stream of this container's `awslogs` driver.
    pub log_stream: Option<String>,
}

/// Parses a JSON object payload into its raw value and typed model.
pub(crate) fn parse_object<T: for<'de> Deserialize<'de>>(
    value: Value,
    what: &str,
    url: Option<&str>,
) -> Result<(T, Value), Error> {
    if !value.is_object() {
        return Err(Error::payload(
            url,
            format_args!("{what} is not a JSON object"),
        ));
    }
    let typed = T::deserialize(&value).map_err(|e| Error::payload(url, e))?;
    Ok((typed, value))
}

pub(crate) fn parse_json(body: &[u8], url: Option<&str>) -> Result<Value, Error> {
    serde_json::from_slice(body).map_err(|e| Error::payload(url, format_args!("not JSON: {e}")))
}

impl EcsMetadata {
    /// Builds metadata from payloads already in hand: the container payload (the endpoint's
    /// base path) and, optionally, the `/task` payload. No HTTP.
    pub fn from_json(container: &str, task: Option<&str>) -> Result<Self, Error> {
        let container = parse_json(container.as_bytes(), None)?;
        let task = task.map(|t| parse_json(t.as_bytes(), None)).transpose()?;
        Self::from_values(container, task)
    }

    /// As [`from_json`](Self::from_json), from parsed JSON values.
    pub fn from_values(container: Value, task: Option<Value>) -> Result<Self, Error> {
        let task = match task {
            Some(task) => Some(parse_object(task, "task metadata", None)?),
            None => None,
        };
        Self::assemble(None, container, task, None, None)
    }

    /// Builds from a container payload and either a task payload or the reason it is missing.
    pub(crate) fn assemble(
        version: Option<ApiVersion>,
        container_raw: Value,
        task: Option<(Task, Value)>,
        task_error: Option<Error>,
        url: Option<&str>,
    ) -> Result<Self, Error> {
        let (container, container_raw): (Container, Value) =
            parse_object(container_raw, "container metadata", url)?;
        let (task, task_raw) = task.unzip();
        let identity = Identity::derive(&container, task.as_ref());
        Ok(EcsMetadata {
            version,
            container,
            container_raw,
            task,
            task_raw,
            task_error,
            identity,
        })
    }

    /// The version of the endpoint it was read from; `None` when built from JSON.
    pub fn api_version(&self) -> Option<ApiVersion> {
        self.version
    }

    /// Renamed [`api_version`](Self::api_version); kept until 1.0.
    #[deprecated(since = "0.1.0", note = "renamed `api_version`")]
    pub fn version(&self) -> Option<ApiVersion> {
        self.api_version()
    }

    /// This container's metadata, typed.
    pub fn container(&self) -> &Container {
        &self.container
    }

    /// This container's metadata as the endpoint sent it.
    pub fn container_raw(&self) -> &Value {
        &self.container_raw
    }

    /// The task's metadata, typed; `None` when `/task` could not be read.
    pub fn task(&self) -> Option<&Task> {
        self.task.as_ref()
    }

    /// The task's metadata as the endpoint sent it.
    pub fn task_raw(&self) -> Option<&Value> {
        self.task_raw.as_ref()
    }

    /// Why the task metadata is missing, when it was asked for and could not be read.
    pub fn task_error(&self) -> Option<&Error> {
        self.task_error.as_ref()
    }

    /// The identity, derived once: every value below, in one struct.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The cluster's short name ([`Identity::cluster_name`]).
    pub fn cluster_name(&self) -> Option<&str> {
        self.identity.cluster_name.as_deref()
    }

    /// The cluster ARN ([`Identity::cluster_arn`]).
    pub fn cluster_arn(&self) -> Option<&str> {
        self.identity.cluster_arn.as_deref()
    }

    /// The task ARN, old or new format ([`Identity::task_arn`]).
    pub fn task_arn(&self) -> Option<&str> {
        self.identity.task_arn.as_deref()
    }

    /// The task id ([`Identity::task_id`]).
    pub fn task_id(&self) -> Option<&str> {
        self.identity.task_id.as_deref()
    }

    /// The task definition family ([`Identity::family`]).
    pub fn family(&self) -> Option<&str> {
        self.identity.family.as_deref()
    }

    /// The task definition revision ([`Identity::revision`]).
    pub fn revision(&self) -> Option<&str> {
        self.identity.revision.as_deref()
    }

    /// This container's name ([`Identity::container_name`]).
    pub fn container_name(&self) -> Option<&str> {
        self.identity.container_name.as_deref()
    }

    /// This container's image ([`Identity::image`]).
    pub fn image(&self) -> Option<&str> {
        self.identity.image.as_deref()
    }

    /// This container's runtime id ([`Identity::container_id`]).
    pub fn container_id(&self) -> Option<&str> {
        self.identity.container_id.as_deref()
    }

    /// The region ([`Identity::region`]).
    pub fn region(&self) -> Option<&str> {
        self.identity.region.as_deref()
    }

    /// The AWS account id ([`Identity::account_id`]).
    pub fn account_id(&self) -> Option<&str> {
        self.identity.account_id.as_deref()
    }

    /// The partition ([`Identity::partition`]).
    pub fn partition(&self) -> Option<&str> {
        self.identity.partition.as_deref()
    }

    /// The launch type ([`Identity::launch_type`]).
    pub fn launch_type(&self) -> Option<&LaunchType> {
        self.identity.launch_type.as_ref()
    }

    /// The availability zone ([`Identity::availability_zone`]).
    pub fn availability_zone(&self) -> Option<&str> {
        self.identity.availability_zone.as_deref()
    }

    /// The service the task belongs to ([`Identity::service_name`]).
    pub fn service_name(&self) -> Option<&str> {
        self.identity.service_name.as_deref()
    }

    /// The awslogs group ([`Identity::log_group`]).
    pub fn log_group(&self) -> Option<&str> {
        self.identity.log_group.as_deref()
    }

    /// The awslogs stream ([`Identity::log_stream`]).
    pub fn log_stream(&self) -> Option<&str> {
        self.identity.log_stream.as_deref()
    }
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `us-east-1d` → `us-east-1`; `None` for Local and Wavelength Zones (`us-west-2-lax-1a`).
fn region_from_zone(zone: &str) -> Option<String> {
    let parts: Vec<&str> = zone.split('-').collect();
    let [geo, area, last] = parts.as_slice() else {
        return None;
    };
    let digits = last.trim_end_matches(|c: char| c.is_ascii_lowercase());
    let letters = last.len() - digits.len();
    let plain = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    (plain(geo)
        && plain(area)
        && letters == 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit()))
    .then(|| format!("{geo}-{area}-{digits}"))
}

impl Identity {
    fn derive(container: &Container, task: Option<&Task>) -> Self {
        let label = |key: &str| {
            container
                .labels
                .get(key)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
        };
        let from_task =
            |field: fn(&Task) -> &Option<String>| task.and_then(|t| non_empty(field(t)));
        let owned = |s: Option<&str>| s.map(str::to_owned);

        let container_arn = non_empty(&container.container_arn).and_then(ContainerArn::parse);
        let task_arn_text = from_task(|t| &t.task_arn).or_else(|| label(label::TASK_ARN));
        let task_arn = task_arn_text.and_then(TaskArn::parse);
        // The container ARN's new format names cluster and task: enough to rebuild the task ARN.
        let rebuilt_task_arn = match (task_arn_text, container_arn) {
            (
                None,
                Some(ContainerArn {
                    arn,
                    cluster: Some(cluster),
                    task_id: Some(id),
                }),
            ) => Some(format!(
                "arn:{}:ecs:{}:{}:task/{cluster}/{id}",
                arn.partition, arn.region, arn.account_id
            )),
            _ => None,
        };

        let cluster_text = from_task(|t| &t.cluster).or_else(|| label(label::CLUSTER));
        let cluster_as_arn = cluster_text
            .and_then(|c| Arn::parse(c).ok())
            .filter(|a| a.resource_type() == "cluster");
        let cluster_name = cluster_text
            .and_then(cluster_short_name)
            .or_else(|| task_arn.and_then(|t| t.cluster))
            .or_else(|| container_arn.and_then(|c| c.cluster));

        // Partition, region and account: the task ARN, else any other ECS ARN we were given.
        let source_arn = task_arn
            .map(|t| t.arn)
            .or(container_arn.map(|c| c.arn))
            .or(cluster_as_arn);
        let arn_part = |part: for<'x> fn(&Arn<'x>) -> &'x str| {
            source_arn
                .map(|a| part(&a))
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let availability_zone = from_task(|t| &t.availability_zone);

        let cluster_arn = match (cluster_as_arn, cluster_name, source_arn) {
            (Some(arn), _, _) => Some(arn.to_string()),
            (None, Some(name), Some(src)) if !src.region.is_empty() => Some(format!(
                "arn:{}:ecs:{}:{}:cluster/{name}",
                src.partition, src.region, src.account_id
            )),
            _ => None,
        };

        Identity {
            cluster_name: owned(cluster_name),
            cluster_arn,
            task_arn: owned(task_arn_text).or(rebuilt_task_arn),
            task_id: owned(
                task_arn
                    .map(|t| t.task_id)
                    // A `TaskARN` that is not an ARN (`default/158d…`): its last segment.
                    .or_else(|| {
                        task_arn_text
                            .filter(|text| !text.starts_with("arn:"))
                            .and_then(|text| text.rsplit('/').next())
                            .filter(|id| !id.is_empty())
                    })
                    .or_else(|| container_arn.and_then(|c| c.task_id)),
            ),
            family: owned(from_task(|t| &t.family).or_else(|| label(label::FAMILY))),
            revision: owned(from_task(|t| &t.revision).or_else(|| label(label::REVISION))),
            container_name: owned(
                non_empty(&container.name).or_else(|| label(label::CONTAINER_NAME)),
            ),
            image: owned(non_empty(&container.image)),
            container_id: owned(non_empty(&container.docker_id)),
            region: arn_part(|a| a.region).or_else(|| availability_zone.and_then(region_from_zone)),
            account_id: arn_part(|a| a.account_id),
            partition: arn_part(|a| a.partition),
            launch_type: task.and_then(|t| t.launch_type.clone()),
            availability_zone: owned(availability_zone),
            service_name: owned(from_task(|t| &t.service_name).or_else(|| {
                from_task(|t| &t.group)
                    .and_then(|g| g.strip_prefix("service:"))
                    .filter(|s| !s.is_empty())
            })),
            log_group: owned(
                container
                    .log_options
                    .get("awslogs-group")
                    .map(String::as_str),
            ),
            log_stream: owned(
                container
                    .log_options
                    .get("awslogs-stream")
                    .map(String::as_str),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_to_region() {
        assert_eq!(region_from_zone("us-east-1d").as_deref(), Some("us-east-1"));
        assert_eq!(
            region_from_zone("ap-southeast-2a").as_deref(),
            Some("ap-southeast-2")
        );
        assert_eq!(region_from_zone("us-west-2-lax-1a"), None);
        assert_eq!(region_from_zone("us-east-1"), None);
        assert_eq!(region_from_zone(""), None);
    }

    #[test]
    fn group_gives_service_name() {
        let meta = EcsMetadata::from_json(
            "{}",
            Some(r#"{"Group":"service:orders","TaskARN":"arn:aws:ecs:eu-west-1:1:task/c/x"}"#),
        )
        .unwrap();
        assert_eq!(meta.service_name(), Some("orders"));
        assert_eq!(meta.cluster_name(), Some("c"));
    }

    #[test]
    fn a_task_arn_that_is_not_an_arn_still_gives_the_task_id() {
        let meta = EcsMetadata::from_json(
            "{}",
            Some(
                r#"{"TaskARN": "default/158d1c8083dd49d6b527399fd6414f5c", "Cluster": "default"}"#,
            ),
        )
        .unwrap();
        assert_eq!(meta.task_id(), Some("158d1c8083dd49d6b527399fd6414f5c"));
        assert_eq!(
            meta.task_arn(),
            Some("default/158d1c8083dd49d6b527399fd6414f5c")
        );
        assert_eq!(meta.cluster_name(), Some("default"));
        // No ARN anywhere: no region or account to make up.
        assert_eq!((meta.region(), meta.account_id()), (None, None));
        for odd in ["158d1c80", "a/"] {
            let task = format!(r#"{{"TaskARN": "{odd}"}}"#);
            let meta = EcsMetadata::from_json("{}", Some(&task)).unwrap();
            assert_eq!(
                meta.task_id(),
                odd.rsplit('/').next().filter(|s| !s.is_empty())
            );
        }
        // An `arn:` value that does not parse gives no id.
        let meta = EcsMetadata::from_json("{}", Some(r#"{"TaskARN": "arn:aws:ecs:x/y"}"#)).unwrap();
        assert_eq!(meta.task_id(), None);
    }

    #[test]
    fn container_arn_rebuilds_task_arn() {
        let meta = EcsMetadata::from_json(
            r#"{"ContainerARN":"arn:aws:ecs:us-east-1:123456789012:container/prod/abc123/da6cccf7"}"#,
            None,
        )
        .unwrap();
        assert_eq!(
            meta.task_arn(),
            Some("arn:aws:ecs:us-east-1:123456789012:task/prod/abc123")
        );
        assert_eq!(meta.task_id(), Some("abc123"));
        assert_eq!(
            meta.cluster_arn(),
            Some("arn:aws:ecs:us-east-1:123456789012:cluster/prod")
        );
    }

    #[test]
    fn non_object_payload_is_an_error() {
        for bad in ["[]", "\"x\"", "null", "3"] {
            assert!(matches!(
                EcsMetadata::from_json(bad, None),
                Err(Error::Payload { .. })
            ));
        }
        assert!(EcsMetadata::from_json("{}", Some("[1]")).is_err());
        assert!(EcsMetadata::from_json("{", None).is_err());
    }
}
