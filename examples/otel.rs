//! Logs and traces together: the task as the OpenTelemetry resource, and every log line
//! inside a traced span carrying its `trace_id`, `span_id` and `xray_trace_id`.
//!
//! ```text
//! cargo run --example otel --features opentelemetry,emulator
//! ```
//!
//! Spans go to an in-memory exporter (nothing leaves the machine); at the end the example
//! prints each exported span's ids on stderr, to compare with the log lines on stdout.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing::{info, info_span};
use tracing_aws_ecs::emulator::{Emulator, Scenario};
use tracing_subscriber::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // On ECS the cached metadata; elsewhere the emulator's Fargate task.
    let metadata = match tracing_aws_ecs::metadata() {
        Some(metadata) => metadata.clone(),
        None => Emulator::start(Scenario::Fargate)?
            .client()
            .fetch_metadata()?,
    };

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_resource(metadata.to_resource())
        .build();
    tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("orders")))
        .with(tracing_aws_ecs::builder().with_metadata(metadata).layer())
        .init();

    info!("starting: outside any trace, no ids");
    {
        let request = info_span!("request", method = "GET", path = "/orders/42");
        let _entered = request.enter();
        info!(order_id = 42, "order loaded");
    }

    provider.force_flush()?;
    for span in exporter.get_finished_spans()? {
        eprintln!(
            "exported span {:?}: trace_id {} span_id {}",
            span.name,
            span.span_context.trace_id(),
            span.span_context.span_id()
        );
    }
    Ok(())
}
