//! What the benchmarks share: the configurations compared, the event shapes, the writers.
#![allow(dead_code)]

use std::collections::HashMap;

use serde_json::{Value, json};

#[path = "../../tests/common/mod.rs"]
mod common;
use tracing::{Dispatch, info, info_span};
use tracing_aws_ecs::{EcsMetadata, ExtraFields, FieldScheme};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// The documentation Fargate task, seen from its `fargate-app` container.
pub fn metadata() -> EcsMetadata {
    let task: Value =
        serde_json::from_str(include_str!("../../tests/fixtures/fargate-v4-task.json")).unwrap();
    EcsMetadata::from_values(task["Containers"][1].clone(), Some(task)).unwrap()
}

/// Our layer to `io::sink()`, with request metrics (an interval of an hour: no line is
/// written while it runs) or without, for a task of cluster `prod` and family `orders`.
pub fn request_metrics_dispatch(metrics: bool) -> Dispatch {
    let metadata = EcsMetadata::from_json(
        r#"{"Name":"app","Labels":{"com.amazonaws.ecs.cluster":"prod","com.amazonaws.ecs.task-definition-family":"orders"}}"#,
        None,
    )
    .expect("metadata");
    let mut builder = tracing_aws_ecs::builder()
        .with_metadata(metadata)
        .with_writer(std::io::sink);
    if metrics {
        let metrics = tracing_aws_ecs::RequestMetrics::new("Bench/Requests")
            .with_interval(std::time::Duration::from_secs(3600));
        builder = builder.with_request_metrics(metrics);
    }
    Dispatch::new(tracing_subscriber::registry().with(builder.layer()))
}

/// The values our `Nested` scheme writes, for the peers to write the same.
pub fn ecs_object(meta: &EcsMetadata) -> Value {
    json!({
        "cluster": meta.cluster_name(),
        "task_arn": meta.task_arn(),
        "container_name": meta.container_name(),
        "image": meta.image(),
    })
}

/// Every configuration compared; `Floor` is no formatter at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Config {
    Baseline,
    Ours(Option<FieldScheme>),
    /// The baseline and ours (Nested) with the callsite's file and line and the thread name.
    BaselineWithOptions,
    OursWithOptions,
    JsonSubscriber,
    Bunyan,
    NaiveRootSpan,
    Floor,
}

pub const CONFIGS: [Config; 11] = [
    Config::Baseline,
    Config::Ours(None),
    Config::Ours(Some(FieldScheme::Nested)),
    Config::Ours(Some(FieldScheme::FireLens)),
    Config::Ours(Some(FieldScheme::OpenTelemetry)),
    Config::BaselineWithOptions,
    Config::OursWithOptions,
    Config::JsonSubscriber,
    Config::Bunyan,
    Config::NaiveRootSpan,
    Config::Floor,
];

impl Config {
    pub fn name(self) -> &'static str {
        match self {
            Config::Baseline => "fmt().json() (baseline)",
            Config::Ours(None) => "ours, not enriched",
            Config::Ours(Some(FieldScheme::Nested)) => "ours, Nested",
            Config::Ours(Some(FieldScheme::FireLens)) => "ours, FireLens",
            Config::Ours(Some(_)) => "ours, OpenTelemetry",
            Config::BaselineWithOptions => "fmt().json() with file, line, thread names",
            Config::OursWithOptions => "ours, Nested, with file, line, thread names",
            Config::JsonSubscriber => "json-subscriber + static fields",
            Config::Bunyan => "tracing-bunyan-formatter + default fields",
            Config::NaiveRootSpan => "fmt().json() + root span with ECS fields",
            Config::Floor => "floor: write a preformatted line",
        }
    }

    /// The subscriber, writing to `writer`; `None` for the floor.
    pub fn dispatch<W>(self, writer: W) -> Option<Dispatch>
    where
        W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    {
        let meta = metadata();
        Some(match self {
            Config::Baseline | Config::NaiveRootSpan => Dispatch::new(
                tracing_subscriber::registry()
                    .with(tracing_subscriber::fmt::layer().json().with_writer(writer)),
            ),
            Config::BaselineWithOptions => Dispatch::new(
                tracing_subscriber::registry().with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_file(true)
                        .with_line_number(true)
                        .with_thread_names(true)
                        .with_writer(writer),
                ),
            ),
            Config::OursWithOptions => Dispatch::new(
                tracing_subscriber::registry().with(
                    tracing_aws_ecs::builder()
                        .with_metadata(meta)
                        .with_file(true)
                        .with_line_number(true)
                        .with_thread_names(true)
                        .with_writer(writer)
                        .layer(),
                ),
            ),
            Config::Ours(scheme) => {
                let builder = tracing_aws_ecs::builder()
                    .with_scheme(scheme.unwrap_or_default())
                    .with_fields(ExtraFields::NONE)
                    .with_writer(writer);
                // Without metadata the builder would look for an endpoint: there is none here.
                let builder = match scheme {
                    Some(_) => builder.with_metadata(meta),
                    None => builder,
                };
                Dispatch::new(tracing_subscriber::registry().with(builder.layer()))
            }
            Config::JsonSubscriber => {
                let mut layer = json_subscriber::fmt::layer().with_writer(writer);
                layer
                    .inner_layer_mut()
                    .add_static_field("ecs", ecs_object(&meta));
                Dispatch::new(tracing_subscriber::registry().with(layer))
            }
            Config::Bunyan => {
                let fields = HashMap::from([("ecs".to_owned(), ecs_object(&meta))]);
                let layer = tracing_bunyan_formatter::BunyanFormattingLayer::with_default_fields(
                    "bench".into(),
                    writer,
                    fields,
                );
                Dispatch::new(
                    tracing_subscriber::registry()
                        .with(tracing_bunyan_formatter::JsonStorageLayer)
                        .with(layer),
                )
            }
            Config::Floor => return None,
        })
    }
}

/// The event every configuration formats: a message and three fields of mixed types.
#[inline(never)]
pub fn event() {
    info!(
        order_id = 42u64,
        user = "ada",
        cached = true,
        "order placed"
    );
}

/// The spans around the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    OneSpan,
    ThreeSpans,
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::OneSpan => "one span",
            Shape::ThreeSpans => "three nested spans",
        }
    }

    /// Runs `f` inside the shape's spans (and, for the naive row, inside a root span
    /// carrying the ECS fields), under the current subscriber.
    pub fn within<R>(self, config: Config, f: impl FnOnce() -> R) -> R {
        let meta = metadata();
        let root = (config == Config::NaiveRootSpan).then(|| {
            info_span!(
                "ecs",
                cluster = meta.cluster_name(),
                task_arn = meta.task_arn(),
                container_name = meta.container_name(),
                image = meta.image()
            )
        });
        let _root = root.as_ref().map(|s| s.enter());
        let request = info_span!("request", method = "GET", path = "/orders");
        let _request = request.enter();
        if self == Shape::OneSpan {
            return f();
        }
        let handler = info_span!("handler", route = "orders::list", attempt = 1);
        let _handler = handler.enter();
        let db = info_span!("db", table = "orders", rows = 3);
        let _db = db.enter();
        f()
    }
}

#[allow(unused_imports)] // Not every bench writes to a pipe.
pub use common::Pipe;

/// Our enriched line for a shape, to give the floor the same length.
pub fn our_line(shape: Shape) -> Vec<u8> {
    let capture = common::Capture::default();
    let config = Config::Ours(Some(FieldScheme::Nested));
    let dispatch = config.dispatch(capture.clone()).unwrap();
    tracing::dispatcher::with_default(&dispatch, || shape.within(config, event));
    capture.text().into_bytes()
}
