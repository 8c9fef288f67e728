//! What trace correlation costs (feature `opentelemetry`): the same event in a span traced
//! by an OpenTelemetry layer, ids on the line, and in the same span without that layer.

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use support::{event, metadata};
use tracing::Dispatch;
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
    // No OpenTelemetry layer: no trace, no ids.
    let untraced = Dispatch::new(
        tracing_subscriber::registry().with(
            tracing_aws_ecs::builder()
                .with_metadata(metadata())
                .with_writer(std::io::sink)
                .layer(),
        ),
    );
    for (name, dispatch) in [
        ("traced span, ids on the line", &with_ids),
        ("untraced span (no OpenTelemetry layer)", &untraced),
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
