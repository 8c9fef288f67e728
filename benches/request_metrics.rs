//! What request metrics add to a request: a root span of three fields (route, method,
//! status) around one event, with and without `with_request_metrics`, to `io::sink()`. The
//! difference is the cost of starting the request's clock, reading its fields at the close
//! and counting it.

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing::{Dispatch, info, info_span};
use tracing_aws_ecs::{EcsMetadata, RequestMetrics};
use tracing_subscriber::prelude::*;

fn dispatch(metrics: Option<RequestMetrics>) -> Dispatch {
    let metadata = EcsMetadata::from_json(
        r#"{"Name":"app","Labels":{"com.amazonaws.ecs.cluster":"prod","com.amazonaws.ecs.task-definition-family":"orders"}}"#,
        None,
    )
    .expect("metadata");
    let mut builder = tracing_aws_ecs::builder()
        .with_metadata(metadata)
        .with_writer(std::io::sink);
    if let Some(metrics) = metrics {
        builder = builder.with_request_metrics(metrics);
    }
    Dispatch::new(tracing_subscriber::registry().with(builder.layer()))
}

fn request() {
    let span = info_span!(
        "request",
        route = "/orders/{id}",
        method = "GET",
        status = 200u16
    );
    span.in_scope(|| info!(order_id = 42u64, "served"));
}

fn per_request(c: &mut Criterion) {
    let mut group = c.benchmark_group("request metrics | a request of one event");
    let metrics = RequestMetrics::new("Bench/Requests").with_interval(Duration::from_secs(3600));
    for (name, dispatch) in [
        ("without", dispatch(None)),
        ("with request metrics", dispatch(Some(metrics))),
    ] {
        tracing::dispatcher::with_default(&dispatch, || {
            group.bench_function(name, |b| b.iter(request));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = per_request
}
criterion_main!(benches);
