//! ns/event of the enriched formatter against `tracing_subscriber::fmt().json()`, on the
//! same event: a message and three fields inside one span with two fields, to `io::sink`.

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::Value;
use tracing::{Subscriber, info, info_span};
use tracing_aws_ecs::{EcsMetadata, ExtraFields, FieldScheme};
use tracing_subscriber::prelude::*;

fn metadata() -> EcsMetadata {
    let task: Value =
        serde_json::from_str(include_str!("../tests/fixtures/fargate-v4-task.json")).unwrap();
    EcsMetadata::from_values(task["Containers"][1].clone(), Some(task)).unwrap()
}

fn event() {
    info!(
        order_id = 42u64,
        user = "ada",
        cached = true,
        "order placed"
    );
}

fn run(c: &mut Criterion, name: &str, subscriber: impl Subscriber + Send + Sync + 'static) {
    tracing::subscriber::with_default(subscriber, || {
        let span = info_span!("request", method = "GET", path = "/orders");
        let _entered = span.enter();
        c.bench_function(name, |b| b.iter(event));
    });
}

fn ours(scheme: FieldScheme, metadata: Option<EcsMetadata>) -> impl Subscriber + Send + Sync {
    let builder = tracing_aws_ecs::builder()
        .with_scheme(scheme)
        .with_fields(ExtraFields::NONE)
        .with_writer(std::io::sink);
    let builder = match metadata {
        Some(m) => builder.with_metadata(m),
        None => builder,
    };
    tracing_subscriber::registry().with(builder.layer())
}

fn formatter(c: &mut Criterion) {
    let stock = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::sink),
    );
    run(c, "baseline fmt().json()", stock);
    run(c, "ours, not enriched", ours(FieldScheme::Nested, None));
    run(
        c,
        "ours, Nested",
        ours(FieldScheme::Nested, Some(metadata())),
    );
    run(
        c,
        "ours, FireLens",
        ours(FieldScheme::FireLens, Some(metadata())),
    );
    run(
        c,
        "ours, OpenTelemetry",
        ours(FieldScheme::OpenTelemetry, Some(metadata())),
    );
}

criterion_group!(benches, formatter);
criterion_main!(benches);
