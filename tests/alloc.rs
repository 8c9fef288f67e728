//! The per-event path allocates nothing once warm: counted with a global allocator that
//! counts only while this thread asks it to (deterministic, not a timing).

mod common;

#[path = "common/counting.rs"]
mod counting;

use common::fargate_metadata;
use counting::{allocations, counted};
use tracing::{info, info_span};
use tracing_aws_ecs::{ExtraFields, FieldScheme, Timestamp};
use tracing_subscriber::prelude::*;

#[derive(Debug)]
struct Failure;
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream timed out")
    }
}
impl std::error::Error for Failure {}

fn per_event_allocations(scheme: FieldScheme, extra: ExtraFields, nested_spans: bool) -> usize {
    per_event_allocations_with(
        tracing_aws_ecs::builder()
            .with_scheme(scheme)
            .with_fields(extra),
        nested_spans,
    )
}

/// Runs `f` under the builder's layer, with the Fargate metadata, writing to a sink.
fn under<R>(builder: tracing_aws_ecs::Builder, f: impl FnOnce() -> R) -> R {
    let layer = builder
        .with_metadata(fargate_metadata())
        .with_writer(std::io::sink)
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f)
}

fn per_event_allocations_with(builder: tracing_aws_ecs::Builder, nested_spans: bool) -> usize {
    under(builder, || {
        let outer = info_span!("request", method = "GET", path = "/orders");
        let _outer = outer.enter();
        let inner = nested_spans.then(|| info_span!("db", table = "orders", rows = 3));
        let _inner = inner.as_ref().map(|s| s.enter());
        let event = || {
            let error = Failure;
            info!(
                order_id = 42u64,
                user = "ada",
                cached = true,
                "order placed"
            );
            info!(latency = 1.25f64, debug = ?[1, 2, 3], error = &error as &dyn std::error::Error, "mixed \"types\"\n");
        };
        // Warm up: callsite registration, the per-thread line buffer.
        for _ in 0..10 {
            event();
        }
        allocations(|| {
            for _ in 0..1000 {
                event();
            }
        })
    })
}

#[test]
fn zero_allocations_per_event_in_every_scheme() {
    for scheme in [
        FieldScheme::Nested,
        FieldScheme::FireLens,
        FieldScheme::OpenTelemetry,
    ] {
        for extra in [ExtraFields::NONE, ExtraFields::ALL] {
            for nested in [false, true] {
                assert_eq!(
                    per_event_allocations(scheme, extra, nested),
                    0,
                    "{scheme} {extra:?} nested={nested}"
                );
            }
        }
    }
}

#[test]
fn zero_allocations_per_event_with_the_background_writer() {
    // The caller copies its line into the buffer; the writer thread's allocations are its
    // own (the counter counts this thread's only).
    let builder = tracing_aws_ecs::builder()
        .with_background_writer(tracing_aws_ecs::BackgroundWriter::default());
    assert_eq!(per_event_allocations_with(builder, true), 0);
}

#[test]
fn zero_allocations_per_event_with_every_line_option_on() {
    for timestamp in [
        Timestamp::Rfc3339Micros,
        Timestamp::Rfc3339Millis,
        Timestamp::UnixMillis,
        Timestamp::None,
    ] {
        for nested in [false, true] {
            let builder = tracing_aws_ecs::builder()
                .with_file(true)
                .with_line_number(true)
                .with_thread_ids(true)
                .with_thread_names(true)
                .with_current_span(true)
                .with_span_list(true)
                .with_timestamp(timestamp)
                .with_static_field("service", "orders")
                .with_static_field("version", 3);
            assert_eq!(
                per_event_allocations_with(builder, nested),
                0,
                "{timestamp:?} nested={nested}"
            );
        }
    }
}

#[test]
fn the_counter_counts() {
    // The allocator really sees allocations on this thread while counting.
    let (n, kept) = counted(|| {
        let v: Vec<u8> = Vec::with_capacity(64);
        std::hint::black_box(v);
        let kept: Vec<u8> = Vec::with_capacity(100);
        std::mem::forget(kept);
    });
    assert_eq!((n, kept), (2, 100));
}

/// 128 callsites with distinct field names, used in turn: past the first use of each, no
/// event allocates, and a span allocates only its store and its place in the span's
/// extensions (what the formatter keeps per callsite and per name is not a small cache that
/// callsites evict from each other).
#[test]
fn no_allocation_per_event_across_many_callsites() {
    macro_rules! callsites {
        ($($name:ident)*) => {
            (
                [$((|| info!($name = 1u64, "many")) as fn(),)*],
                [$((|| drop(info_span!("op", $name = 1u64))) as fn(),)*],
            )
        };
    }
    let (events, spans) = callsites!(
        f000 f001 f002 f003 f004 f005 f006 f007 f008 f009 f010 f011 f012 f013 f014 f015
        f016 f017 f018 f019 f020 f021 f022 f023 f024 f025 f026 f027 f028 f029 f030 f031
        f032 f033 f034 f035 f036 f037 f038 f039 f040 f041 f042 f043 f044 f045 f046 f047
        f048 f049 f050 f051 f052 f053 f054 f055 f056 f057 f058 f059 f060 f061 f062 f063
        f064 f065 f066 f067 f068 f069 f070 f071 f072 f073 f074 f075 f076 f077 f078 f079
        f080 f081 f082 f083 f084 f085 f086 f087 f088 f089 f090 f091 f092 f093 f094 f095
        f096 f097 f098 f099 f100 f101 f102 f103 f104 f105 f106 f107 f108 f109 f110 f111
        f112 f113 f114 f115 f116 f117 f118 f119 f120 f121 f122 f123 f124 f125 f126 f127
    );
    under(tracing_aws_ecs::builder(), || {
        let span = info_span!("request", id = 7);
        let _e = span.enter();
        let all = || events.iter().chain(&spans).for_each(|f| f());
        all();
        let per_event = allocations(|| (0..3).for_each(|_| events.iter().for_each(|f| f())));
        assert_eq!(per_event, 0);
        let per_span = allocations(|| spans.iter().for_each(|f| f()));
        assert!(
            per_span <= 2 * spans.len(),
            "{per_span} for {} spans",
            spans.len()
        );
    });
}

/// A span is stored in one allocation, with room for the fields it declared `Empty`:
/// recording them later, or recording a value again, allocates nothing.
#[test]
fn recording_a_declared_field_allocates_nothing() {
    under(tracing_aws_ecs::builder(), || {
        let request = || {
            info_span!(
                "request",
                method = "GET",
                status = tracing::field::Empty,
                latency_ms = tracing::field::Empty
            )
        };
        // Warm up: the thread's scratch strings.
        request().record(
            "latency_ms",
            "a long value, for the scratch strings to grow",
        );
        let span = request();
        let recorded = [
            allocations(|| {
                span.record("status", 200u64);
            }),
            allocations(|| {
                span.record("latency_ms", 12.5f64);
            }),
            allocations(|| {
                span.record("status", 503u64);
            }),
            allocations(|| {
                span.record("method", "POST");
            }),
        ];
        assert_eq!(recorded, [0; 4]);
    });
}

/// One huge line does not keep its size in memory for the thread's life: once small lines
/// follow, no buffer on the line's way (the formatter's, or a second one the line is copied
/// into) holds more than a small steady size.
#[test]
fn a_huge_line_leaves_no_huge_buffer_behind() {
    let huge = "x".repeat(200 * 1024);
    under(tracing_aws_ecs::builder(), || {
        let span = info_span!("request", id = 7);
        let _e = span.enter();
        for _ in 0..10 {
            info!("warm");
        }
        let (_, kept) = counted(|| {
            info!(body = %huge, "huge");
            for _ in 0..100 {
                info!("small");
            }
        });
        assert!(kept < 32 * 1024, "{kept} bytes kept after one huge line");
    });
}

/// Buffering allocates per request (its buffer, its place in the list of live requests), not
/// per event: a request of 40 held lines costs what one of 10 does, but for the held text
/// doubling its room now and then.
#[test]
fn buffering_allocates_per_request_not_per_event() {
    let per_request = |events: usize| {
        let layer = tracing_aws_ecs::builder()
            .with_metadata(fargate_metadata())
            .with_buffering(tracing_aws_ecs::Buffering::default())
            .with_writer(std::io::sink)
            .layer();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let request = || {
                let span = info_span!("request", id = 7);
                let _e = span.enter();
                for i in 0..events {
                    tracing::debug!(i, "held");
                }
                info!("served");
            };
            for _ in 0..10 {
                request();
            }
            allocations(|| {
                for _ in 0..100 {
                    request();
                }
            }) / 100
        })
    };
    let (ten, forty) = (per_request(10), per_request(40));
    println!("allocations per request: {ten} with 10 held lines, {forty} with 40");
    assert!(forty <= ten + 3, "{ten} with 10 lines, {forty} with 40");
}

/// Request metrics allocate nothing per request once its (Route, Method) is known in the
/// interval: the same allocations as without them (the span's own store), whatever the
/// route's characters, and once the latency sample is full.
#[test]
fn request_metrics_allocate_nothing_per_request() {
    let allocations_of = |metrics: bool| {
        let mut builder = tracing_aws_ecs::builder();
        if metrics {
            builder = builder.with_request_metrics(
                tracing_aws_ecs::RequestMetrics::new("Test/Alloc")
                    .with_interval(std::time::Duration::from_secs(3600))
                    .with_max_latencies(5),
            );
        }
        under(builder, || {
            let requests = || {
                info_span!(
                    "request",
                    route = "/orders/{id}",
                    method = "GET",
                    status = 200
                )
                .in_scope(|| info!("served"));
                info_span!(
                    "request",
                    route = r#"/a"b\c €"#,
                    method = "PUT",
                    status = 503
                )
                .in_scope(|| info!("served"));
                // axum's route field, and a status as `Display` writes it.
                info_span!(
                    "http_request",
                    matched_path = "/ping",
                    status = tracing::field::display("503 Service Unavailable"),
                    request_id = "7c1f5e2a"
                )
                .in_scope(|| info!("served"));
                // A background job: not a request.
                info_span!("cart_sweep").in_scope(|| info!("swept"));
            };
            // Warm up: the pairs, their sample full (5 latencies), the per-thread buffers.
            for _ in 0..10 {
                requests();
            }
            allocations(|| {
                for _ in 0..100 {
                    requests();
                }
            })
        })
    };
    let (without, with) = (allocations_of(false), allocations_of(true));
    println!("allocations for 300 requests: {without} without request metrics, {with} with");
    assert_eq!(with, without);
}
