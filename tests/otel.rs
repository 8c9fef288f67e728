//! Feature `opentelemetry`: the resource's attributes for the documentation payloads, and
//! trace correlation: ids on lines equal the exported spans' ids, and are absent outside a
//! trace.

mod common;

use common::{Capture, ec2_metadata, fargate_metadata, fixture};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Key, Value};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde_json::Value as Json;
use tracing::{info, info_span};
use tracing_aws_ecs::EcsMetadata;
use tracing_subscriber::prelude::*;

fn attribute(meta: &EcsMetadata, key: &str) -> Option<Value> {
    meta.to_resource().get(&Key::new(key.to_owned()))
}

fn text(meta: &EcsMetadata, key: &str) -> Option<String> {
    attribute(meta, key).map(|v| v.as_str().into_owned())
}

#[test]
fn fargate_task_resource() {
    let meta = fargate_metadata();
    let expect = [
        ("cloud.provider", "aws"),
        ("cloud.platform", "aws_ecs"),
        ("cloud.region", "us-east-1"),
        ("cloud.account.id", "123456789012"),
        ("cloud.availability_zone", "us-east-1d"),
        (
            "aws.ecs.cluster.arn",
            "arn:aws:ecs:us-east-1:123456789012:cluster/MyEmptyCluster",
        ),
        (
            "aws.ecs.task.arn",
            "arn:aws:ecs:us-east-1:123456789012:task/MyEmptyCluster/bfa2636268144d039771334145e490c5",
        ),
        ("aws.ecs.task.family", "sample-fargate"),
        ("aws.ecs.task.revision", "5"),
        ("aws.ecs.task.id", "bfa2636268144d039771334145e490c5"),
        ("aws.ecs.launchtype", "fargate"),
        ("container.name", "fargate-app"),
        (
            "container.id",
            "bfa2636268144d039771334145e490c5-3681984407",
        ),
        (
            "container.image.name",
            "public.ecr.aws/docker/library/httpd",
        ),
        (
            "aws.ecs.container.arn",
            "arn:aws:ecs:us-east-1:123456789012:container/MyEmptyCluster/bfa2636268144d039771334145e490c5/f65b461d-aa09-4acb-a579-9785c0530cbc",
        ),
    ];
    for (key, value) in expect {
        assert_eq!(text(&meta, key).as_deref(), Some(value), "{key}");
    }
    assert_eq!(
        attribute(&meta, "container.image.tags")
            .unwrap()
            .to_string(),
        "[\"latest\"]"
    );
    assert_eq!(
        text(&meta, "cloud.resource_id"),
        text(&meta, "aws.ecs.container.arn"),
        "the container is the resource"
    );
    assert_eq!(
        text(&meta, "container.image.id").as_deref(),
        Some("sha256:8059bdd0058510c03ae4c808de8c4fd2c1f3c1b6d9ea75487f1e5caa5ececa02")
    );
    // Pinned by tag, not digest: no repo digests.
    assert!(attribute(&meta, "container.image.repo_digests").is_none());
    // The task's containers log nowhere in this example: no log attributes.
    assert!(attribute(&meta, "aws.log.group.names").is_none());
    assert!(attribute(&meta, "aws.log.stream.arns").is_none());
    assert!(attribute(&meta, "aws.ecs.service.name").is_none());
}

#[test]
fn fargate_container_with_awslogs() {
    let meta = EcsMetadata::from_json(&fixture("fargate-v4-container.json"), None).unwrap();
    assert_eq!(
        attribute(&meta, "aws.log.group.names").unwrap().to_string(),
        "[\"/ecs/containerlogs\"]"
    );
    assert_eq!(
        attribute(&meta, "aws.log.stream.names")
            .unwrap()
            .to_string(),
        "[\"ecs/curl/cd189a933e5849daa93386466019ab50\"]"
    );
    assert_eq!(
        attribute(&meta, "aws.log.group.arns").unwrap().to_string(),
        "[\"arn:aws:logs:us-west-2:111122223333:log-group:/ecs/containerlogs:*\"]"
    );
    assert_eq!(
        attribute(&meta, "aws.log.stream.arns").unwrap().to_string(),
        "[\"arn:aws:logs:us-west-2:111122223333:log-group:/ecs/containerlogs:log-stream:ecs/curl/cd189a933e5849daa93386466019ab50\"]"
    );
    assert!(
        attribute(&meta, "aws.ecs.launchtype").is_none(),
        "the container payload has no launch type"
    );
}

#[test]
fn ec2_and_v3_resources() {
    let ec2 = ec2_metadata();
    assert_eq!(
        text(&ec2, "aws.ecs.cluster.arn").as_deref(),
        Some("arn:aws:ecs:us-west-2:111122223333:cluster/default")
    );
    assert_eq!(text(&ec2, "aws.ecs.launchtype").as_deref(), Some("ec2"));
    assert_eq!(
        text(&ec2, "aws.ecs.service.name").as_deref(),
        Some("MyService")
    );
    assert_eq!(
        text(&ec2, "container.image.name").as_deref(),
        Some("111122223333.dkr.ecr.us-west-2.amazonaws.com/curltest")
    );
    assert_eq!(
        text(&ec2, "cloud.resource_id").as_deref(),
        Some("arn:aws:ecs:us-west-2:111122223333:container/0206b271-b33f-47ab-86c6-a0ba208a70a9")
    );
    assert_eq!(
        text(&ec2, "container.image.id").as_deref(),
        Some("sha256:d691691e9652791a60114e67b365688d20d19940dde7c4736ea30e660d8d3553")
    );
    assert_eq!(
        attribute(&ec2, "aws.log.stream.arns").unwrap().to_string(),
        "[\"arn:aws:logs:us-west-2:111122223333:log-group:/ecs/metadata:log-stream:ecs/curl/8f03e41243824aea923aca126495f665\"]"
    );

    let v3 = EcsMetadata::from_json(
        &fixture("v3-container.json"),
        Some(&fixture("v3-task.json")),
    )
    .unwrap();
    assert_eq!(
        text(&v3, "aws.ecs.task.id").as_deref(),
        Some("9781c248-0edd-4cdb-9a93-f63cb662a5d3")
    );
    assert_eq!(text(&v3, "cloud.region").as_deref(), Some("us-east-2"));
    assert!(attribute(&v3, "aws.ecs.launchtype").is_none());
    // v3 has no ContainerARN and no log options: no resource id, no log attributes.
    assert!(attribute(&v3, "cloud.resource_id").is_none());
    assert!(attribute(&v3, "aws.log.stream.arns").is_none());
    assert_eq!(
        text(&v3, "container.image.id").as_deref(),
        Some("sha256:2e00ae64383cfc865ba0a2ba37f61b50a120d2d9378559dcd458dc0de47bc165")
    );
    assert!(
        v3.resource_attributes()
            .iter()
            .all(|kv| !kv.value.as_str().is_empty())
    );
}

#[test]
fn log_lines_carry_the_ids_of_their_spans() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_resource(fargate_metadata().to_resource())
        .build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let out = Capture::default();
    let ours = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(otel).with(ours), || {
        info!("before");
        {
            let request = info_span!("request");
            let _r = request.enter();
            info!("in request");
            let db = info_span!("db", table = "orders");
            let _d = db.enter();
            info!("in db");
            info!(rows = 3, "rows read");
            info!(rows = 3, message = "fields first");
        }
        info!("after");
    });
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let span = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("span {name}"))
    };
    let (request, db) = (span("request"), span("db"));
    let lines = out.lines();
    let line = |message: &str| lines.iter().find(|l| l["message"] == message).unwrap();

    for outside in ["before", "after"] {
        for key in ["trace_id", "span_id", "trace_flags", "xray_trace_id"] {
            assert!(line(outside).get(key).is_none(), "{outside}: {key}");
        }
    }
    let trace = request.span_context.trace_id().to_string();
    assert_eq!(db.span_context.trace_id().to_string(), trace);
    assert_eq!(line("in request")["trace_id"], Json::String(trace.clone()));
    assert_eq!(
        line("in request")["span_id"],
        Json::String(request.span_context.span_id().to_string())
    );
    assert_eq!(line("in db")["trace_id"], Json::String(trace.clone()));
    assert_eq!(
        line("in db")["span_id"],
        Json::String(db.span_context.span_id().to_string())
    );
    // Sampled, so exported: the W3C flags say so.
    assert_eq!(line("in db")["trace_flags"], "01");
    let xray = line("in db")["xray_trace_id"].as_str().unwrap().to_owned();
    assert_eq!(xray, format!("1-{}-{}", &trace[..8], &trace[8..]));
    assert!(xray.len() == 35 && trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit()));
    // The ids come right after the message, before the event's and the spans' fields,
    // wherever the message is among the event's fields.
    for message in ["rows read", "fields first"] {
        let text = out
            .text()
            .lines()
            .find(|l| l.contains(message))
            .unwrap()
            .to_owned();
        let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
        assert!(at("message") < at("trace_id"), "{text}");
        assert!(at("xray_trace_id") < at("rows"), "{text}");
        assert!(at("rows") < at("table"), "{text}");
    }
}

#[test]
fn without_an_opentelemetry_layer_there_are_no_ids() {
    let out = Capture::default();
    let ours = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(ours), || {
        let span = info_span!("request");
        let _e = span.enter();
        info!(trace_id = "mine", "m");
    });
    let line = out.only_line();
    assert!(line.get("span_id").is_none());
    // A line without trace ids keeps a field of that name as it is, feature or not.
    assert_eq!(line["trace_id"], "mine");
}

#[test]
fn on_a_traced_line_a_field_named_like_a_trace_key_is_renamed() {
    let provider = SdkTracerProvider::builder().build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let out = Capture::default();
    let ours = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(otel).with(ours), || {
        let span = info_span!("request", span_id = "span field");
        let _e = span.enter();
        info!(trace_id = "mine", "traced");
    });
    let line = out.only_line();
    assert_eq!(line["fields.trace_id"], "mine");
    assert_eq!(line["fields.span_id"], "span field");
    assert!(line["trace_id"].as_str().unwrap().len() == 32, "{line}");
}

#[test]
fn threads_sharing_a_traced_span_agree_on_its_ids() {
    let provider = SdkTracerProvider::builder().build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let out = Capture::default();
    let ours = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .layer();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(otel).with(ours));
    let span = tracing::dispatcher::with_default(&dispatch, || info_span!("shared"));
    std::thread::scope(|s| {
        for _ in 0..4 {
            let (dispatch, span) = (dispatch.clone(), span.clone());
            s.spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    for _ in 0..50 {
                        info!(parent: &span, "from a thread");
                    }
                })
            });
        }
    });
    let lines = out.lines();
    assert_eq!(lines.len(), 200);
    let first = &lines[0]["trace_id"];
    assert!(first.is_string());
    assert!(
        lines
            .iter()
            .all(|l| &l["trace_id"] == first && l["span_id"] == lines[0]["span_id"])
    );
}

#[test]
fn an_unsampled_span_says_so_in_trace_flags() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOff)
        .build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let out = Capture::default();
    let ours = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(otel).with(ours), || {
        let span = info_span!("request");
        let _e = span.enter();
        info!("not sampled");
    });
    provider.force_flush().unwrap();
    assert!(
        exporter.get_finished_spans().unwrap().is_empty(),
        "nothing exported"
    );
    let line = out.only_line();
    // The ids are there, and the flags tell that no trace holds them.
    assert_eq!(line["trace_flags"], "00", "{line}");
    assert_eq!(line["trace_id"].as_str().unwrap().len(), 32);
}

#[test]
fn request_metrics_name_the_slowest_request_by_its_trace() {
    let provider = SdkTracerProvider::builder().build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
    let out = Capture::default();
    let ours = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .with_request_metrics(
            tracing_aws_ecs::RequestMetrics::new("Test/Traced")
                .with_interval(std::time::Duration::from_secs(3600)),
        )
        .layer();
    // The interval is written as the layer goes, at the end of the scope.
    tracing::subscriber::with_default(tracing_subscriber::registry().with(otel).with(ours), || {
        for i in 0..3u64 {
            let request = info_span!(
                "request",
                http.route = "/traced",
                http.request.method = "GET"
            );
            let _r = request.enter();
            info!(i, "handled");
            if i == 1 {
                std::thread::sleep(std::time::Duration::from_millis(30));
            }
        }
    });
    let lines = out.lines();
    let slowest = lines
        .iter()
        .find(|l| l["message"] == "handled" && l["i"] == 1)
        .expect("the slowest request's line");
    let xray = slowest["xray_trace_id"].as_str().expect("traced");
    let metrics = lines
        .iter()
        .find(|l| l["Route"] == "/traced")
        .expect("the route's metrics line");
    assert_eq!(metrics["Requests"], 3);
    assert_eq!(metrics["xray_trace_id"], xray, "{metrics}");
}
