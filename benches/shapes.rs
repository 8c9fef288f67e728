//! The cost of a line on the shapes real services produce, ours against the stock
//! `fmt().json()`, to `io::sink()`: time per operation (Criterion) and allocations per
//! operation (a counting allocator). Prints one `alloc` line per row for `scripts/shapes.sh`.
//!
//! `scripts/shapes.sh` runs it twice: without features, then the OpenTelemetry row with
//! `--features opentelemetry`.

mod support;

#[path = "../tests/common/counting.rs"]
mod counting;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tracing::{Dispatch, info, info_span};
use tracing_subscriber::prelude::*;

/// A shape: what one operation does, inside the spans `tree` makes (entered once, outside
/// the measurement), if any.
struct Shape {
    name: &'static str,
    op: fn(),
    tree: Option<fn() -> Vec<tracing::Span>>,
}

fn long_lived_span() {
    info!(
        order_id = 42u64,
        user = "ada",
        cached = true,
        "order placed"
    );
}

fn request_life() {
    let span = info_span!(
        "request",
        method = "GET",
        uri = "/orders/42",
        version = "HTTP/1.1",
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty
    );
    let _e = span.enter();
    info!("started");
    info!(order_id = 42u64, "loaded order");
    span.record("status", 200u64);
    span.record("latency_ms", 12.5f64);
    info!("finished");
}

fn short_span() {
    let span = info_span!("cache", key = "orders:42", hit = true, ttl = 30u64);
    let _e = span.enter();
    info!("looked up");
}

fn record_nine() {
    let span = info_span!(
        "s",
        a = 1u64,
        b = 2u64,
        c = 3u64,
        d = "four",
        e = "five",
        f = true,
        g = 7.5f64,
        h = "eight",
        i = tracing::field::Empty
    );
    span.record("i", 9u64);
    span.record("a", 10u64);
}

fn real_service_tree() -> Vec<tracing::Span> {
    let request = info_span!(
        "request",
        method = "GET",
        uri = "/orders/42",
        version = "HTTP/1.1"
    );
    let handler = info_span!(parent: &request, "get_order", id = 42u64);
    let db = info_span!(parent: &handler, "db", id = 42u64, table = "orders");
    vec![request, handler, db]
}

/// `depth` spans, each the child of the one before, sharing their six field names.
fn shared_names(depth: usize) -> Vec<tracing::Span> {
    let mut spans: Vec<tracing::Span> = Vec::new();
    for i in 0..depth as u64 {
        let parent = spans.last().and_then(tracing::Span::id);
        let span = info_span!(
            parent: parent,
            "layer",
            id = i,
            name = "n",
            kind = "k",
            level_no = i,
            owner = "o",
            status = "s"
        );
        spans.push(span);
    }
    spans
}

fn five_shared() -> Vec<tracing::Span> {
    shared_names(5)
}

fn twenty_shared() -> Vec<tracing::Span> {
    shared_names(20)
}

fn look_alikes() -> Vec<tracing::Span> {
    let a = info_span!("a", order_id = 1u64);
    let b = info_span!(parent: &a, "b", offer_id = 2u64);
    let c = info_span!(parent: &b, "c", owner_id = 3u64);
    vec![a, b, c]
}

fn in_tree() {
    info!(id = 0u64, status = "done", outer_id = 4u64, "in the tree");
}

fn twenty_fields() {
    info!(
        f01 = 1u64,
        f02 = "two",
        f03 = true,
        f04 = 4.5f64,
        f05 = 5u64,
        f06 = "six",
        f07 = false,
        f08 = 8u64,
        f09 = "nine",
        f10 = 10u64,
        f11 = 11u64,
        f12 = "twelve",
        f13 = true,
        f14 = 14.5f64,
        f15 = 15u64,
        f16 = "sixteen",
        f17 = false,
        f18 = 18u64,
        f19 = "nineteen",
        f20 = 20u64,
        "twenty fields"
    );
}

fn message_of(len: usize) -> &'static str {
    Box::leak(
        "payload with some ordinary text. ".repeat(len / 33 + 1)[..len]
            .to_owned()
            .into_boxed_str(),
    )
}

fn four_kib() {
    static MESSAGE: once_cell::sync::Lazy<&str> =
        once_cell::sync::Lazy::new(|| message_of(4 << 10));
    info!(body = *MESSAGE, "request body");
}

fn sixty_four_kib() {
    static MESSAGE: once_cell::sync::Lazy<&str> =
        once_cell::sync::Lazy::new(|| message_of(64 << 10));
    info!(body = *MESSAGE, "request body");
}

fn over_the_cap() {
    static MESSAGE: once_cell::sync::Lazy<&str> =
        once_cell::sync::Lazy::new(|| message_of(300 << 10));
    info!(body = *MESSAGE, "request body");
}

const fn shape(name: &'static str, op: fn()) -> Shape {
    Shape {
        name,
        op,
        tree: None,
    }
}

const fn tree(name: &'static str, tree: fn() -> Vec<tracing::Span>) -> Shape {
    Shape {
        name,
        op: in_tree,
        tree: Some(tree),
    }
}

const SHAPES: &[Shape] = &[
    shape("one long-lived span, 3-field event", long_lived_span),
    shape(
        "a request's life: span of 5 fields (2 recorded), 3 events",
        request_life,
    ),
    shape("a short span of 3 fields around one event", short_span),
    shape("span.record on a 9-field span, no event", record_nine),
    tree("3 nested spans like a real service", real_service_tree),
    tree("5 nested spans sharing 6 field names", five_shared),
    tree("20 nested spans sharing 6 field names", twenty_shared),
    tree("3 spans whose names only look alike", look_alikes),
    shape("an event of 20 fields", twenty_fields),
    shape("a 4 KiB message", four_kib),
    shape("a 64 KiB message", sixty_four_kib),
    shape("a 300 KiB message (over the line cap)", over_the_cap),
];

fn ours() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry().with(
            tracing_aws_ecs::builder()
                .with_metadata(support::metadata())
                .with_writer(std::io::sink)
                .layer(),
        ),
    )
}

/// The registry alone: what spans and dispatch cost before any formatting.
fn floor() -> Dispatch {
    Dispatch::new(tracing_subscriber::registry())
}

fn stock() -> Dispatch {
    Dispatch::new(
        tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::sink),
        ),
    )
}

/// Runs `f` inside the long-lived span every shape runs in, and the shape's tree.
fn within<R>(shape_tree: Option<fn() -> Vec<tracing::Span>>, f: impl FnOnce() -> R) -> R {
    let span = info_span!("service", region = "us-east-1");
    let _e = span.enter();
    let spans = shape_tree.map(|make| make()).unwrap_or_default();
    let _entered: Vec<_> = spans.iter().map(|s| s.enter()).collect();
    f()
}

fn allocations(
    dispatch: &Dispatch,
    shape_tree: Option<fn() -> Vec<tracing::Span>>,
    op: fn(),
) -> f64 {
    tracing::dispatcher::with_default(dispatch, || {
        within(shape_tree, || {
            for _ in 0..10 {
                op();
            }
            counting::allocations(|| (0..200).for_each(|_| op())) as f64 / 200.0
        })
    })
}

#[cfg(feature = "opentelemetry")]
fn otel_trio() -> (Dispatch, Dispatch, Dispatch) {
    use opentelemetry::trace::TracerProvider as _;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let ours = Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")))
            .with(
                tracing_aws_ecs::builder()
                    .with_metadata(support::metadata())
                    .with_writer(std::io::sink)
                    .layer(),
            ),
    );
    let stock = Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")))
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::sink),
            ),
    );
    // The floor of this row: the registry and the OpenTelemetry layer, no formatter.
    let floor = Dispatch::new(
        tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench"))),
    );
    (ours, stock, floor)
}

#[cfg(feature = "opentelemetry")]
fn traced() {
    let span = info_span!("request", method = "GET");
    let _e = span.enter();
    info!("traced");
}

fn shapes(c: &mut Criterion) {
    let (ours, stock, floor) = (ours(), stock(), floor());
    type Row = (
        &'static str,
        [Dispatch; 3],
        fn(),
        Option<fn() -> Vec<tracing::Span>>,
    );
    #[allow(unused_mut)] // The OpenTelemetry row is added with its feature.
    let mut rows: Vec<Row> = SHAPES
        .iter()
        .map(|s| {
            let dispatches = [ours.clone(), stock.clone(), floor.clone()];
            (s.name, dispatches, s.op, s.tree)
        })
        .collect();
    #[cfg(feature = "opentelemetry")]
    {
        let (o, s, f) = otel_trio();
        rows.push((
            "OpenTelemetry: a short traced span and one event",
            [o, s, f],
            traced,
            None,
        ));
    }
    for (name, [ours, stock, floor], op, shape_tree) in rows {
        let mut group = c.benchmark_group(format!("shape | {name}"));
        for (who, dispatch) in [("ours", &ours), ("stock", &stock), ("floor", &floor)] {
            println!(
                "alloc\t{name}\t{who}\t{}",
                allocations(dispatch, shape_tree, op)
            );
            group.bench_function(who, |b| {
                tracing::dispatcher::with_default(dispatch, || {
                    within(shape_tree, || b.iter(|| black_box(op)()))
                })
            });
        }
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(1));
    targets = shapes
}
criterion_main!(benches);
