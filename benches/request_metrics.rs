//! What request metrics add to a request: a root span of three fields (route, method,
//! status) around one event, with and without `with_request_metrics`, to `io::sink()`. The
//! difference is the cost of starting the request's clock, reading its fields at the close
//! and counting it. A second group times the close alone (the span is made and its event
//! written untimed), and a third spreads the requests over 50 routes, among which the count
//! looks each one up.

mod support;

use std::time::Duration;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use support::request_metrics_dispatch;
use tracing::{Span, info, info_span};

const SETUPS: [(&str, bool); 2] = [("without", false), ("with request metrics", true)];

/// A request that has served its one event, not closed yet.
fn served(route: &str) -> Span {
    let span = info_span!("request", route, method = "GET", status = 200u16);
    span.in_scope(|| info!(order_id = 42u64, "served"));
    span
}

fn one_event(c: &mut Criterion) {
    let mut group = c.benchmark_group("request metrics | a request of one event");
    for (name, metrics) in SETUPS {
        tracing::dispatcher::with_default(&request_metrics_dispatch(metrics), || {
            group.bench_function(name, |b| b.iter(|| drop(served("/orders/{id}"))));
        });
    }
    group.finish();
}

fn close_alone(c: &mut Criterion) {
    let mut group = c.benchmark_group("request metrics | the close alone");
    for (name, metrics) in SETUPS {
        tracing::dispatcher::with_default(&request_metrics_dispatch(metrics), || {
            group.bench_function(name, |b| {
                b.iter_batched(|| served("/orders/{id}"), drop, BatchSize::SmallInput);
            });
        });
    }
    group.finish();
}

fn fifty_routes(c: &mut Criterion) {
    let routes: Vec<String> = (0..50)
        .map(|i| format!("/api/v1/resource{i:02}/{{id}}"))
        .collect();
    let mut group = c.benchmark_group("request metrics | a request of one event, 50 routes");
    for (name, metrics) in SETUPS {
        let mut next = routes.iter().cycle();
        tracing::dispatcher::with_default(&request_metrics_dispatch(metrics), || {
            group.bench_function(name, |b| {
                b.iter(|| drop(served(next.next().expect("endless"))));
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = one_event, close_alone, fifty_routes
}
criterion_main!(benches);
