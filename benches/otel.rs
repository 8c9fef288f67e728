//! What trace correlation costs (feature `opentelemetry`): the same event in a traced span,
//! with an OpenTelemetry layer in the stack, with and without ids on the line.

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use support::{event, metadata};
use tracing::Dispatch;
use tracing_aws_ecs::{EcsFormat, ExtraFields, FieldScheme, SpanFields};
use tracing_subscriber::prelude::*;

fn correlation(c: &mut Criterion) {
    let provider = SdkTracerProvider::builder().build();
    let otel = || tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"));
    let with_ids = Dispatch::new(
        tracing_subscriber::registry().with(otel()).with(
            tracing_aws_ecs::builder()
                .with_metadata(metadata())
                .with_writer(std::io::sink)
                .layer(),
        ),
    );
    // The same formatter outside `EcsLayer` never learns the dispatch: no ids.
    let without_ids = Dispatch::new(
        tracing_subscriber::registry().with(otel()).with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(SpanFields::default())
                .event_format(EcsFormat::new(
                    Some(&metadata()),
                    FieldScheme::Nested,
                    ExtraFields::NONE,
                ))
                .with_writer(std::io::sink),
        ),
    );
    for (name, dispatch) in [
        ("traced span, ids on the line", &with_ids),
        ("traced span, no ids", &without_ids),
    ] {
        tracing::dispatcher::with_default(dispatch, || {
            let span = tracing::info_span!("request", method = "GET", path = "/orders");
            let _entered = span.enter();
            c.bench_function(name, |b| b.iter(event));
        });
    }
}

criterion_group!(benches, correlation);
criterion_main!(benches);
