//! The clock reading `RequestLayer` shares with request metrics times only its own request:
//! a panic in another layer, as the request's span is made or as its last line is written,
//! leaves no reading behind for a span opened later on the thread.
#![cfg(feature = "axum")]

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::MutexGuard;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use common::{Capture, fargate_metadata};
use http_body::Body as _;
use serde_json::Value;
use tower::{Layer as _, Service, ServiceExt};
use tracing_aws_ecs::RequestMetrics;
use tracing_aws_ecs::http::RequestLayer;
use tracing_subscriber::prelude::*;

thread_local! {
    /// The message of the event, or the name of the span, the next of which [`Panicky`]
    /// panics on.
    static PANIC_ON: Cell<Option<&'static str>> = const { Cell::new(None) };
}

/// A layer before ours that panics once, on an event or a new span named by [`PANIC_ON`].
struct Panicky;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Panicky {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(String);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        if PANIC_ON.get() == Some(message.0.as_str()) {
            PANIC_ON.set(None);
            panic!("a layer panicked on {}", message.0);
        }
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        _: &tracing::span::Id,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if PANIC_ON.get() == Some(attrs.metadata().name()) {
            PANIC_ON.set(None);
            panic!("a layer panicked on span {}", attrs.metadata().name());
        }
    }
}

fn output() -> (MutexGuard<'static, ()>, &'static Capture) {
    let (serial, output) = common::global_capture(|output| {
        let layer = tracing_aws_ecs::builder()
            .with_metadata(fargate_metadata())
            .with_writer(output.clone())
            .with_request_metrics(
                RequestMetrics::new("Test/Clock").with_interval(Duration::from_secs(3600)),
            )
            .layer();
        // Before ours: it panics before our layer has seen the span or the line.
        tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("info"))
            .with(Panicky)
            .with(layer)
            .init();
        // The panics are the tests' own: not printed.
        std::panic::set_hook(Box::new(|_| {}));
    });
    tracing_aws_ecs::flush();
    output.clear();
    (serial, output)
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// The `Latency` values request metrics wrote for `route`.
fn latencies(lines: &[Value], route: &str) -> Vec<f64> {
    lines
        .iter()
        .filter(|l| l["Route"] == route)
        .flat_map(|l| l["Latency"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.as_f64())
        .collect()
}

/// A root span with a route, closed as soon as it is made: a request of about no time.
fn instant_request(route: &'static str) {
    let span = tracing::info_span!(
        parent: None,
        "instant",
        http.route = route,
        http.request.method = "GET",
        http.response.status_code = 200u16
    );
    drop(span);
}

/// Two chunks, then the end.
struct TwoChunks(u32);

impl futures_core::Stream for TwoChunks {
    type Item = Result<&'static str, std::io::Error>;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0 += 1;
        Poll::Ready((self.0 <= 2).then_some(Ok("chunk")))
    }
}

/// Waits long enough that a stale reading would show, then makes an instant request and
/// returns its latency.
fn instant_request_after_a_pause(out: &Capture, route: &'static str) -> Vec<f64> {
    std::thread::sleep(Duration::from_millis(200));
    instant_request(route);
    tracing_aws_ecs::flush();
    latencies(&out.lines(), route)
}

#[test]
fn a_panic_as_the_last_line_is_written_leaves_no_reading() {
    let (_serial, out) = output();
    let app = Router::new()
        .route("/stream", get(|| async { Body::from_stream(TwoChunks(0)) }))
        .layer(RequestLayer::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut body = runtime
        .block_on(app.oneshot(get_request("/stream")))
        .unwrap()
        .into_body();
    let mut cx = Context::from_waker(std::task::Waker::noop());
    for _ in 0..2 {
        let frame = Pin::new(&mut body).poll_frame(&mut cx);
        assert!(matches!(frame, Poll::Ready(Some(Ok(_)))));
    }
    PANIC_ON.set(Some("request finished"));
    let last = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut body).poll_frame(&mut cx)));
    assert!(
        last.is_err(),
        "the layer before ours panicked on the last line"
    );
    // The body is still alive: the request's reading must not be.
    let latency = instant_request_after_a_pause(out, "/after-a-panic-in-the-last-line");
    drop(body);
    assert_eq!(latency.len(), 1, "{latency:?}");
    assert!(latency[0] < 50.0, "a stale reading: {latency:?}");
}

#[test]
fn a_panic_as_the_span_is_made_leaves_no_reading() {
    let (_serial, out) = output();
    let mut service = RequestLayer::new().layer(tower::service_fn(|_: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(axum::http::Response::new(Body::empty()))
    }));
    PANIC_ON.set(Some("request"));
    let call = catch_unwind(AssertUnwindSafe(|| {
        drop(service.call(get_request("/x")));
    }));
    assert!(
        call.is_err(),
        "the layer before ours panicked on the request's span"
    );
    let latency = instant_request_after_a_pause(out, "/after-a-panic-in-the-span");
    assert_eq!(latency.len(), 1, "{latency:?}");
    assert!(latency[0] < 50.0, "a stale reading: {latency:?}");
}
