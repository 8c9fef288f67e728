//! Amazon Resource Names, and the ECS resource shapes inside them.
//!
//! ECS has two ARN formats: the old `task/<uuid>` and the new `task/<cluster>/<id>` (mandatory
//! since 2021, but old ones live on). Container ARNs likewise: `container/<uuid>` or
//! `container/<cluster>/<task id>/<uuid>`.

use std::fmt;

/// A parsed ARN, borrowing from the string it was parsed from:
/// `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Arn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`, …
    pub(crate) partition: &'a str,
    /// The service, `ecs` here.
    pub(crate) service: &'a str,
    /// The region; empty for global services.
    pub(crate) region: &'a str,
    /// The account id.
    pub(crate) account_id: &'a str,
    /// Everything after the fifth colon, e.g. `task/default/8f03…`.
    pub(crate) resource: &'a str,
}

/// Why a string is not an ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ArnError {
    /// What was wrong with it.
    reason: &'static str,
}

impl fmt::Display for ArnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an ARN: {}", self.reason)
    }
}

impl std::error::Error for ArnError {}

impl<'a> Arn<'a> {
    /// Parses `s`; surrounding whitespace is not accepted.
    pub(crate) fn parse(s: &'a str) -> Result<Self, ArnError> {
        let err = |reason| Err(ArnError { reason });
        let mut parts = s.splitn(6, ':');
        if parts.next() != Some("arn") {
            return err("does not start with `arn:`");
        }
        let (Some(partition), Some(service), Some(region), Some(account_id), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return err("fewer than six `:`-separated parts");
        };
        let plain = |p: &str| {
            p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if partition.is_empty() || !plain(partition) {
            return err("bad partition");
        }
        if service.is_empty() || !plain(service) {
            return err("bad service");
        }
        if !plain(region) {
            return err("bad region");
        }
        if !plain(account_id) {
            return err("bad account id");
        }
        if resource.is_empty() || resource.chars().any(char::is_whitespace) {
            return err("empty resource or whitespace in it");
        }
        Ok(Arn {
            partition,
            service,
            region,
            account_id,
            resource,
        })
    }

    /// The resource type: what precedes the first `/` or `:` (`task`, `cluster`, `container`).
    pub(crate) fn resource_type(&self) -> &'a str {
        self.resource
            .split(['/', ':'])
            .next()
            .unwrap_or(self.resource)
    }

    /// The last `/`-separated segment of the resource: a task id, a cluster name.
    pub(crate) fn resource_id(&self) -> &'a str {
        self.resource.rsplit('/').next().unwrap_or(self.resource)
    }

    /// The `/`-separated segments of the resource after its type.
    pub(crate) fn resource_path(&self) -> impl Iterator<Item = &'a str> {
        self.resource.split('/').skip(1)
    }
}

impl fmt::Display for Arn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account_id, self.resource
        )
    }
}

/// What an ECS task ARN carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TaskArn<'a> {
    pub(crate) arn: Arn<'a>,
    /// Only in the new format.
    pub(crate) cluster: Option<&'a str>,
    pub(crate) task_id: &'a str,
}

/// An ARN of the given resource type, with the `/`-separated segments after the type, each
/// one non-empty.
fn ecs_resource<'a>(s: &'a str, resource_type: &str) -> Option<(Arn<'a>, Vec<&'a str>)> {
    let arn = Arn::parse(s).ok()?;
    let segments: Vec<&str> = arn.resource_path().collect();
    (arn.resource_type() == resource_type && segments.iter().all(|s| !s.is_empty()))
        .then_some((arn, segments))
}

impl<'a> TaskArn<'a> {
    pub(crate) fn parse(s: &'a str) -> Option<Self> {
        let (arn, segments) = ecs_resource(s, "task")?;
        match segments.as_slice() {
            [id] => Some(TaskArn {
                arn,
                cluster: None,
                task_id: id,
            }),
            [cluster, id] => Some(TaskArn {
                arn,
                cluster: Some(cluster),
                task_id: id,
            }),
            _ => None,
        }
    }
}

/// What an ECS container ARN carries (new format only has cluster and task id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContainerArn<'a> {
    pub(crate) arn: Arn<'a>,
    pub(crate) cluster: Option<&'a str>,
    pub(crate) task_id: Option<&'a str>,
}

impl<'a> ContainerArn<'a> {
    pub(crate) fn parse(s: &'a str) -> Option<Self> {
        let (arn, segments) = ecs_resource(s, "container")?;
        match segments.as_slice() {
            [_] => Some(ContainerArn {
                arn,
                cluster: None,
                task_id: None,
            }),
            [cluster, task, _] => Some(ContainerArn {
                arn,
                cluster: Some(cluster),
                task_id: Some(task),
            }),
            _ => None,
        }
    }
}

/// The short name in a `Cluster` value: the name itself, or the last segment of a cluster ARN.
pub(crate) fn cluster_short_name(value: &str) -> Option<&str> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    match Arn::parse(value) {
        Ok(arn) if arn.resource_type() == "cluster" => {
            Some(arn.resource_id()).filter(|name| !name.is_empty() && *name != "cluster")
        }
        Ok(_) => None,
        // An unparsable `arn:…` value is not a name either.
        Err(_) if value.starts_with("arn:") => None,
        Err(_) => Some(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_old_and_new_task_arns() {
        let old = TaskArn::parse(
            "arn:aws:ecs:us-east-2:012345678910:task/9781c248-0edd-4cdb-9a93-f63cb662a5d3",
        )
        .unwrap();
        assert_eq!(old.cluster, None);
        assert_eq!(old.task_id, "9781c248-0edd-4cdb-9a93-f63cb662a5d3");
        assert_eq!(old.arn.account_id, "012345678910");
        let new = TaskArn::parse("arn:aws-cn:ecs:cn-north-1:111122223333:task/prod/abc").unwrap();
        assert_eq!(new.cluster, Some("prod"));
        assert_eq!(new.task_id, "abc");
        assert_eq!(new.arn.partition, "aws-cn");
        assert!(TaskArn::parse("arn:aws:ecs:us-east-1:1:cluster/x").is_none());
        assert!(TaskArn::parse("arn:aws:ecs:us-east-1:1:task/").is_none());
        assert!(TaskArn::parse("arn:aws:ecs:us-east-1:1:task/a/b/c").is_none());
    }

    #[test]
    fn rejects_non_arns() {
        for s in [
            "",
            "arn",
            "arn:aws",
            "arn:aws:ecs:r:a:",
            "aws:ecs:r:a:task/x",
            "arn::ecs:r:a:x",
            "arn:aws:ecs:r:a:task/x y",
        ] {
            assert!(Arn::parse(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn container_arns() {
        let new = ContainerArn::parse("arn:aws:ecs:us-east-1:123456789012:container/MyEmptyCluster/bfa2636268144d039771334145e490c5/da6cccf7-1178-400c-afdf-7536173ee209").unwrap();
        assert_eq!(new.cluster, Some("MyEmptyCluster"));
        assert_eq!(new.task_id, Some("bfa2636268144d039771334145e490c5"));
        let old = ContainerArn::parse(
            "arn:aws:ecs:us-west-2:111122223333:container/0206b271-b33f-47ab-86c6-a0ba208a70a9",
        )
        .unwrap();
        assert_eq!((old.cluster, old.task_id), (None, None));
        assert!(ContainerArn::parse("not-an-arn").is_none());
    }

    #[test]
    fn cluster_names() {
        assert_eq!(cluster_short_name("default"), Some("default"));
        assert_eq!(
            cluster_short_name(" arn:aws:ecs:us-east-1:1:cluster/prod "),
            Some("prod")
        );
        assert_eq!(
            cluster_short_name("arn:aws:ecs:us-east-1:1:task/prod/x"),
            None
        );
        assert_eq!(cluster_short_name("arn:garbage"), None);
        assert_eq!(cluster_short_name(""), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]

        #[test]
        fn whatever_parses_prints_back(input in proptest::prelude::any::<String>()) {
            if let Ok(arn) = Arn::parse(&input) {
                proptest::prop_assert_eq!(arn.to_string(), input.clone());
                proptest::prop_assert!(arn.resource.starts_with(arn.resource_type()));
                proptest::prop_assert!(arn.resource.ends_with(arn.resource_id()));
            }
        }

        #[test]
        fn well_formed_task_arns_round_trip(
            partition in "aws(-cn|-us-gov)?", region in "[a-z]{2}-[a-z]{4,9}-[1-9]", account in "[0-9]{12}",
            cluster in "[A-Za-z0-9_-]{1,40}", id in "[0-9a-f]{32}",
        ) {
            let text = format!("arn:{partition}:ecs:{region}:{account}:task/{cluster}/{id}");
            let task = TaskArn::parse(&text).unwrap();
            proptest::prop_assert_eq!(
                (task.arn.partition, task.arn.region, task.arn.account_id, task.cluster, task.task_id),
                (partition.as_str(), region.as_str(), account.as_str(), Some(cluster.as_str()), id.as_str())
            );
        }
    }
}
