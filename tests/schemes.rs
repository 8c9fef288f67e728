//! Each field scheme's keys and values, on documentation payloads from every platform,
//! with and without extra fields, and with partial metadata.

mod common;

use common::{Capture, ec2_metadata, fargate_metadata, fixture};
use serde_json::{Value, json};
use tracing_aws_ecs::{EcsMetadata, ExtraFields, FieldScheme};
use tracing_subscriber::prelude::*;

fn line(metadata: EcsMetadata, scheme: FieldScheme, extra: ExtraFields) -> Value {
    let out = Capture::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(metadata)
        .with_scheme(scheme)
        .with_fields(extra)
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(user = "ada", "hello");
    });
    let mut line = out.only_line();
    let object = line.as_object_mut().unwrap();
    for key in ["timestamp", "level", "target", "message", "user"] {
        object
            .remove(key)
            .unwrap_or_else(|| panic!("{key} missing"));
    }
    line
}

#[test]
fn nested_default() {
    let ecs = line(fargate_metadata(), FieldScheme::Nested, ExtraFields::NONE);
    assert_eq!(
        ecs,
        json!({"ecs": {
            "cluster": "MyEmptyCluster",
            "task_arn": "arn:aws:ecs:us-east-1:123456789012:task/MyEmptyCluster/bfa2636268144d039771334145e490c5",
            "container_name": "fargate-app",
            "image": "public.ecr.aws/docker/library/httpd:latest",
        }})
    );
}

#[test]
fn nested_with_every_extra_on_ec2() {
    let ecs = line(ec2_metadata(), FieldScheme::Nested, ExtraFields::ALL);
    assert_eq!(
        ecs,
        json!({"ecs": {
            "cluster": "default",
            "task_arn": "arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c",
            "container_name": "curl",
            "image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest",
            "task_id": "158d1c8083dd49d6b527399fd6414f5c",
            "family": "curltest",
            "revision": "26",
            "container_id": "ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66",
            "cluster_arn": "arn:aws:ecs:us-west-2:111122223333:cluster/default",
            "region": "us-west-2",
            "account_id": "111122223333",
            "availability_zone": "us-west-2d",
            "launch_type": "EC2",
            "service_name": "MyService",
        }})
    );
}

#[test]
fn firelens() {
    let flat = line(ec2_metadata(), FieldScheme::FireLens, ExtraFields::NONE);
    assert_eq!(
        flat,
        json!({
            "ecs_cluster": "default",
            "ecs_task_arn": "arn:aws:ecs:us-west-2:111122223333:task/default/158d1c8083dd49d6b527399fd6414f5c",
            "ecs_task_definition": "curltest:26",
            "container_name": "curl",
            "container_id": "ea32192c8553fbff06c9340478a2ff089b2bb5646fb718b4ee206641c9086d66",
            "container_image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest:latest",
        })
    );
    let with_extra = line(
        ec2_metadata(),
        FieldScheme::FireLens,
        ExtraFields::REGION | ExtraFields::SERVICE_NAME,
    );
    assert_eq!(with_extra["aws_region"], "us-west-2");
    assert_eq!(with_extra["ecs_service_name"], "MyService");
    assert_eq!(with_extra.as_object().unwrap().len(), 8);
}

#[test]
fn opentelemetry() {
    let flat = line(
        fargate_metadata(),
        FieldScheme::OpenTelemetry,
        ExtraFields::NONE,
    );
    assert_eq!(
        flat,
        json!({
            "aws.ecs.cluster.arn": "arn:aws:ecs:us-east-1:123456789012:cluster/MyEmptyCluster",
            "aws.ecs.task.arn": "arn:aws:ecs:us-east-1:123456789012:task/MyEmptyCluster/bfa2636268144d039771334145e490c5",
            "aws.ecs.task.family": "sample-fargate",
            "aws.ecs.task.revision": "5",
            "aws.ecs.task.id": "bfa2636268144d039771334145e490c5",
            "aws.ecs.launchtype": "fargate",
            "container.name": "fargate-app",
            "container.id": "bfa2636268144d039771334145e490c5-3681984407",
            "container.image.name": "public.ecr.aws/docker/library/httpd",
            "container.image.tags": ["latest"],
            "cloud.provider": "aws",
            "cloud.platform": "aws_ecs",
            "cloud.region": "us-east-1",
            "cloud.account.id": "123456789012",
            "cloud.availability_zone": "us-east-1d",
        })
    );
}

#[test]
fn partial_metadata_omits_unknown_values() {
    // v3 container payload only (as when /task failed): no launch type, no zone, no image tag.
    let meta = EcsMetadata::from_json(&fixture("v3-container.json"), None).unwrap();
    let otel = line(meta.clone(), FieldScheme::OpenTelemetry, ExtraFields::ALL);
    for absent in [
        "aws.ecs.launchtype",
        "cloud.availability_zone",
        "container.image.tags",
        "aws.ecs.service.name",
    ] {
        assert!(otel.get(absent).is_none(), "{absent}");
    }
    assert_eq!(
        otel["aws.ecs.task.id"],
        "9781c248-0edd-4cdb-9a93-f63cb662a5d3"
    );
    assert_eq!(otel["cloud.region"], "us-east-2");
    assert!(otel.as_object().unwrap().values().all(|v| v != ""));

    let nested = line(meta, FieldScheme::Nested, ExtraFields::ALL);
    let ecs = nested["ecs"].as_object().unwrap();
    assert_eq!(ecs["cluster"], "default");
    assert!(!ecs.contains_key("launch_type") && !ecs.contains_key("service_name"));
}

#[test]
fn firelens_keys_in_events_are_renamed() {
    let out = Capture::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(ec2_metadata())
        .with_scheme(FieldScheme::FireLens)
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        tracing::info!(container_name = "mine", "x");
    });
    let line = out.only_line();
    assert_eq!(line["container_name"], "curl");
    assert_eq!(line["fields.container_name"], "mine");
}

/// "Which build is running" is on the line in every scheme: a digest-pinned image keeps its
/// digest (FireLens and Nested as given; OpenTelemetry as `container.image.repo_digests`).
#[test]
fn a_digest_pinned_image_is_on_the_line_in_every_scheme() {
    const DIGEST: &str = "sha256:4f0a1c2b3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";
    let image = format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/orders:1.8.0@{DIGEST}");
    let meta =
        EcsMetadata::from_json(&json!({"Name": "app", "Image": image}).to_string(), None).unwrap();
    let nested = line(meta.clone(), FieldScheme::Nested, ExtraFields::NONE);
    assert_eq!(nested["ecs"]["image"], image.as_str());
    let firelens = line(meta.clone(), FieldScheme::FireLens, ExtraFields::NONE);
    assert_eq!(firelens["container_image"], image.as_str());
    let otel = line(meta, FieldScheme::OpenTelemetry, ExtraFields::NONE);
    assert_eq!(
        otel["container.image.name"],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders"
    );
    assert_eq!(otel["container.image.tags"], json!(["1.8.0"]));
    assert_eq!(
        otel["container.image.repo_digests"],
        json!([format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/orders@{DIGEST}"
        )])
    );

    // An image by tag alone has no repo digest to give.
    let tagged = EcsMetadata::from_json(r#"{"Image": "nginx:1.25"}"#, None).unwrap();
    let otel = line(tagged, FieldScheme::OpenTelemetry, ExtraFields::NONE);
    assert!(otel.get("container.image.repo_digests").is_none());
    assert_eq!(otel["container.image.name"], "nginx");
}
