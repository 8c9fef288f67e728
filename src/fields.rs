//! Field schemes: which keys carry the ECS identity on every line.

use std::borrow::Cow;
use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use crate::json::write_json_str;
use crate::metadata::EcsMetadata;

/// How the ECS identity is written on each line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FieldScheme {
    /// `"ecs":{"cluster":…,"task_arn":…,"container_name":…,"image":…}`; Logs Insights shows
    /// `ecs.cluster`. Reserved: `ecs` and every key starting with `ecs.` (which Logs Insights
    /// would flatten onto the same name).
    #[default]
    Nested,
    /// The flat keys FireLens adds: `ecs_cluster`, `ecs_task_arn`, `ecs_task_definition`
    /// (`family:revision`), `container_name`, `container_id`, and `container_image` (the
    /// image reference, which FireLens itself does not add). Reserved: these keys, the extra
    /// fields' keys, and every key starting with `ecs_`.
    FireLens,
    /// OpenTelemetry semantic-convention keys: `aws.ecs.cluster.arn`, `aws.ecs.task.arn`,
    /// `aws.ecs.task.family`, `aws.ecs.task.revision`, `aws.ecs.task.id`,
    /// `aws.ecs.launchtype` (lowercase), `container.name`, `container.id`,
    /// `container.image.name`, `container.image.tags` (an array),
    /// `container.image.repo_digests` (an array, for an image pinned by digest),
    /// `cloud.provider`, `cloud.platform`, `cloud.region`, `cloud.account.id`,
    /// `cloud.availability_zone`. Reserved: every key starting with `aws.ecs.`, `container.`
    /// or `cloud.`.
    OpenTelemetry,
}

/// Fields written in addition to a scheme's own, in any scheme. Combine with `|`.
///
/// | flag | `Nested` key (inside `ecs`) | `FireLens` key | `OpenTelemetry` key |
/// |---|---|---|---|
/// | `TASK_ID` | `task_id` | `ecs_task_id` | (always written) |
/// | `FAMILY` | `family` | `ecs_task_family` | (always written) |
/// | `REVISION` | `revision` | `ecs_task_revision` | (always written) |
/// | `CONTAINER_ID` | `container_id` | (always written) | (always written) |
/// | `CLUSTER_ARN` | `cluster_arn` | `ecs_cluster_arn` | (always written) |
/// | `REGION` | `region` | `aws_region` | (always written) |
/// | `ACCOUNT_ID` | `account_id` | `aws_account_id` | (always written) |
/// | `AVAILABILITY_ZONE` | `availability_zone` | `ecs_availability_zone` | (always written) |
/// | `LAUNCH_TYPE` | `launch_type` | `ecs_launch_type` | (always written) |
/// | `SERVICE_NAME` | `service_name` | `ecs_service_name` | `aws.ecs.service.name` (not in the semantic conventions) |
///
/// ```
/// use tracing_aws_ecs::ExtraFields;
///
/// let extra = ExtraFields::TASK_ID | ExtraFields::REGION;
/// assert!(extra.contains(ExtraFields::REGION));
/// assert!(!extra.contains(ExtraFields::FAMILY));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ExtraFields(u16);

impl ExtraFields {
    /// No extra fields (the default).
    pub const NONE: Self = Self(0);
    /// The task id (last segment of the task ARN).
    pub const TASK_ID: Self = Self(1);
    /// The task definition family.
    pub const FAMILY: Self = Self(1 << 1);
    /// The task definition revision.
    pub const REVISION: Self = Self(1 << 2);
    /// The container's runtime id.
    pub const CONTAINER_ID: Self = Self(1 << 3);
    /// The cluster ARN.
    pub const CLUSTER_ARN: Self = Self(1 << 4);
    /// The region.
    pub const REGION: Self = Self(1 << 5);
    /// The AWS account id.
    pub const ACCOUNT_ID: Self = Self(1 << 6);
    /// The availability zone.
    pub const AVAILABILITY_ZONE: Self = Self(1 << 7);
    /// The launch type.
    pub const LAUNCH_TYPE: Self = Self(1 << 8);
    /// The ECS service name.
    pub const SERVICE_NAME: Self = Self(1 << 9);
    /// Every extra field.
    pub const ALL: Self = Self((1 << 10) - 1);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for ExtraFields {
    type Output = Self;

    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for ExtraFields {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

/// One value of the identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Datum {
    ClusterName,
    ClusterArn,
    TaskArn,
    TaskId,
    Family,
    Revision,
    TaskDefinition,
    ContainerName,
    ContainerId,
    Image,
    ImageName,
    ImageTags,
    ImageRepoDigests,
    Region,
    AccountId,
    AvailabilityZone,
    LaunchType,
    LaunchTypeLowercase,
    ServiceName,
    CloudProvider,
    CloudPlatform,
}

/// Each extra flag's datum and its key in `Nested`, `FireLens` and `OpenTelemetry`.
const EXTRAS: [(ExtraFields, Datum, [&str; 3]); 10] = [
    (
        ExtraFields::TASK_ID,
        Datum::TaskId,
        ["task_id", "ecs_task_id", "aws.ecs.task.id"],
    ),
    (
        ExtraFields::FAMILY,
        Datum::Family,
        ["family", "ecs_task_family", "aws.ecs.task.family"],
    ),
    (
        ExtraFields::REVISION,
        Datum::Revision,
        ["revision", "ecs_task_revision", "aws.ecs.task.revision"],
    ),
    (
        ExtraFields::CONTAINER_ID,
        Datum::ContainerId,
        ["container_id", "container_id", "container.id"],
    ),
    (
        ExtraFields::CLUSTER_ARN,
        Datum::ClusterArn,
        ["cluster_arn", "ecs_cluster_arn", "aws.ecs.cluster.arn"],
    ),
    (
        ExtraFields::REGION,
        Datum::Region,
        ["region", "aws_region", "cloud.region"],
    ),
    (
        ExtraFields::ACCOUNT_ID,
        Datum::AccountId,
        ["account_id", "aws_account_id", "cloud.account.id"],
    ),
    (
        ExtraFields::AVAILABILITY_ZONE,
        Datum::AvailabilityZone,
        [
            "availability_zone",
            "ecs_availability_zone",
            "cloud.availability_zone",
        ],
    ),
    (
        ExtraFields::LAUNCH_TYPE,
        Datum::LaunchType,
        ["launch_type", "ecs_launch_type", "aws.ecs.launchtype"],
    ),
    (
        ExtraFields::SERVICE_NAME,
        Datum::ServiceName,
        ["service_name", "ecs_service_name", "aws.ecs.service.name"],
    ),
];

impl FieldScheme {
    fn column(self) -> usize {
        match self {
            FieldScheme::Nested => 0,
            FieldScheme::FireLens => 1,
            FieldScheme::OpenTelemetry => 2,
        }
    }

    /// Every scheme.
    pub(crate) const ALL: [FieldScheme; 3] = [
        FieldScheme::Nested,
        FieldScheme::FireLens,
        FieldScheme::OpenTelemetry,
    ];

    /// The key families this scheme owns: a field whose name starts with one could pass for
    /// part of the identity, on the line or once Logs Insights flattens nested objects with
    /// dots.
    pub(crate) fn reserved_prefixes(self) -> &'static [&'static str] {
        match self {
            FieldScheme::Nested => &["ecs."],
            FieldScheme::FireLens => &["ecs_"],
            FieldScheme::OpenTelemetry => &["aws.ecs.", "container.", "cloud."],
        }
    }

    fn base(self) -> &'static [(&'static str, Datum)] {
        match self {
            FieldScheme::Nested => &[
                ("cluster", Datum::ClusterName),
                ("task_arn", Datum::TaskArn),
                ("container_name", Datum::ContainerName),
                ("image", Datum::Image),
            ],
            FieldScheme::FireLens => &[
                ("ecs_cluster", Datum::ClusterName),
                ("ecs_task_arn", Datum::TaskArn),
                ("ecs_task_definition", Datum::TaskDefinition),
                ("container_name", Datum::ContainerName),
                ("container_id", Datum::ContainerId),
                ("container_image", Datum::Image),
            ],
            FieldScheme::OpenTelemetry => &[
                ("aws.ecs.cluster.arn", Datum::ClusterArn),
                ("aws.ecs.task.arn", Datum::TaskArn),
                ("aws.ecs.task.family", Datum::Family),
                ("aws.ecs.task.revision", Datum::Revision),
                ("aws.ecs.task.id", Datum::TaskId),
                ("aws.ecs.launchtype", Datum::LaunchTypeLowercase),
                ("container.name", Datum::ContainerName),
                ("container.id", Datum::ContainerId),
                ("container.image.name", Datum::ImageName),
                ("container.image.tags", Datum::ImageTags),
                ("container.image.repo_digests", Datum::ImageRepoDigests),
                ("cloud.provider", Datum::CloudProvider),
                ("cloud.platform", Datum::CloudPlatform),
                ("cloud.region", Datum::Region),
                ("cloud.account.id", Datum::AccountId),
                ("cloud.availability_zone", Datum::AvailabilityZone),
            ],
        }
    }

    /// The keys and data this scheme writes with `extra`, without repeats, in order.
    fn entries(self, extra: ExtraFields) -> Vec<(&'static str, Datum)> {
        let mut entries = self.base().to_vec();
        for (flag, datum, keys) in EXTRAS {
            let key = keys[self.column()];
            if extra.contains(flag) && entries.iter().all(|(k, _)| *k != key) {
                entries.push((key, datum));
            }
        }
        entries
    }

    /// The top-level keys this scheme writes with `extra`: event and span fields of these
    /// names are renamed so that they cannot clash (see [`crate::format`]).
    pub(crate) fn top_level_keys(self, extra: ExtraFields) -> Vec<&'static str> {
        match self {
            FieldScheme::Nested => vec!["ecs"],
            _ => self
                .entries(extra)
                .into_iter()
                .map(|(key, _)| key)
                .collect(),
        }
    }

    /// The known values this scheme writes with `extra`, by key.
    pub(crate) fn values(
        self,
        meta: &EcsMetadata,
        extra: ExtraFields,
    ) -> Vec<(&'static str, DatumValue<'_>)> {
        self.entries(extra)
            .into_iter()
            .filter_map(|(key, datum)| Some((key, datum_value(meta, datum)?)))
            .collect()
    }

    /// The identity as a JSON fragment to append to each line: `,"ecs":{…}` or `,"k":v,…`,
    /// or nothing when no value is known. Unknown values are omitted, never written empty.
    pub(crate) fn render(self, meta: &EcsMetadata, extra: ExtraFields) -> String {
        let mut body = String::new();
        for (key, value) in self.values(meta, extra) {
            body.push(',');
            // Writing to a String cannot fail.
            let _ = write_json_str(&mut body, key);
            body.push(':');
            let _ = match value {
                DatumValue::Text(text) => write_json_str(&mut body, &text),
                DatumValue::List(items) => {
                    body.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            body.push(',');
                        }
                        let _ = write_json_str(&mut body, item);
                    }
                    body.push(']');
                    Ok(())
                }
            };
        }
        match self {
            _ if body.is_empty() => body,
            FieldScheme::Nested => format!(",\"ecs\":{{{}}}", &body[1..]),
            _ => body,
        }
    }
}

/// A datum's value: text, or a list of texts (`container.image.tags`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DatumValue<'a> {
    Text(Cow<'a, str>),
    List(Vec<Cow<'a, str>>),
}

/// A datum's value; `None` when it is unknown.
fn datum_value(meta: &EcsMetadata, datum: Datum) -> Option<DatumValue<'_>> {
    fn known(s: Option<&str>) -> Option<&str> {
        s.filter(|s| !s.is_empty())
    }
    fn text(s: Option<&str>) -> Option<DatumValue<'_>> {
        known(s).map(|s| DatumValue::Text(s.into()))
    }
    match datum {
        Datum::ClusterName => text(meta.cluster_name()),
        Datum::ClusterArn => text(meta.cluster_arn()),
        Datum::TaskArn => text(meta.task_arn()),
        Datum::TaskId => text(meta.task_id()),
        Datum::Family => text(meta.family()),
        Datum::Revision => text(meta.revision()),
        Datum::TaskDefinition => Some(DatumValue::Text(
            format!("{}:{}", known(meta.family())?, known(meta.revision())?).into(),
        )),
        Datum::ContainerName => text(meta.container_name()),
        Datum::ContainerId => text(meta.container_id()),
        Datum::Image => text(meta.image()),
        Datum::ImageName => text(split_image(known(meta.image())?).0),
        Datum::ImageTags => Some(DatumValue::List(vec![
            known(split_image(known(meta.image())?).1)?.into(),
        ])),
        Datum::ImageRepoDigests => {
            let image = known(meta.image())?;
            let (_, digest) = image.split_once('@')?;
            let repository = known(split_image(image).0)?;
            Some(DatumValue::List(vec![
                format!("{repository}@{digest}").into(),
            ]))
        }
        Datum::Region => text(meta.region()),
        Datum::AccountId => text(meta.account_id()),
        Datum::AvailabilityZone => text(meta.availability_zone()),
        Datum::LaunchType => text(meta.launch_type().map(|l| l.as_str())),
        Datum::LaunchTypeLowercase => known(meta.launch_type().map(|l| l.as_str()))
            .map(|l| DatumValue::Text(l.to_ascii_lowercase().into())),
        Datum::ServiceName => text(meta.service_name()),
        Datum::CloudProvider => Some(DatumValue::Text("aws".into())),
        Datum::CloudPlatform => Some(DatumValue::Text("aws_ecs".into())),
    }
}

/// `registry:5000/team/app:1.2@sha256:…` → (`registry:5000/team/app`, `Some("1.2")`).
fn split_image(image: &str) -> (Option<&str>, Option<&str>) {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last_slash = without_digest.rfind('/').map_or(0, |i| i + 1);
    match without_digest[last_slash..].rfind(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (
                Some(&without_digest[..colon]),
                Some(&without_digest[colon + 1..]),
            )
        }
        None => (Some(without_digest), None),
    }
}

impl fmt::Display for FieldScheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldScheme::Nested => "nested",
            FieldScheme::FireLens => "firelens",
            FieldScheme::OpenTelemetry => "opentelemetry",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references() {
        assert_eq!(split_image("nginx"), (Some("nginx"), None));
        assert_eq!(split_image("nginx:1.25"), (Some("nginx"), Some("1.25")));
        assert_eq!(
            split_image("host:5000/team/app"),
            (Some("host:5000/team/app"), None)
        );
        assert_eq!(
            split_image("host:5000/team/app:v2@sha256:abc"),
            (Some("host:5000/team/app"), Some("v2"))
        );
        assert_eq!(split_image("app@sha256:abc"), (Some("app"), None));
    }

    #[test]
    fn extras_do_not_repeat_scheme_keys() {
        let keys = FieldScheme::OpenTelemetry.top_level_keys(ExtraFields::ALL);
        assert_eq!(keys.len(), 17);
        let keys = FieldScheme::FireLens.top_level_keys(ExtraFields::ALL);
        assert_eq!(keys.len(), 15);
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), keys.len());
    }

    #[test]
    fn unknown_values_are_omitted() {
        let meta = EcsMetadata::from_json(r#"{"Name":"app"}"#, None).unwrap();
        assert_eq!(
            FieldScheme::Nested.render(&meta, ExtraFields::ALL),
            r#","ecs":{"container_name":"app"}"#
        );
        let empty = EcsMetadata::from_json("{}", None).unwrap();
        assert_eq!(FieldScheme::Nested.render(&empty, ExtraFields::ALL), "");
        assert_eq!(FieldScheme::FireLens.render(&empty, ExtraFields::ALL), "");
        // The constants hold for any task, whatever else is known of it.
        assert_eq!(
            FieldScheme::OpenTelemetry.render(&empty, ExtraFields::NONE),
            r#","cloud.provider":"aws","cloud.platform":"aws_ecs""#
        );
    }
}
