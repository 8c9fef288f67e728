//! A `RequestLayer` request is counted at its last line: a line another layer logs as that
//! line is dispatched (the global dispatcher dispatches it in full) does not end the request
//! before the last line marks it failed; two layers stacked in one `ServiceBuilder` make one
//! request.
#![cfg(feature = "axum")]

mod common;

use std::collections::BTreeMap;
use std::sync::MutexGuard;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use common::{Capture, fargate_metadata};
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing_aws_ecs::RequestMetrics;
use tracing_aws_ecs::http::RequestLayer;
use tracing_subscriber::prelude::*;

/// A layer of the service's own, inside ours: it logs a line of its own as it sees a
/// request's last line.
struct Audit;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Audit {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                self.0 |= field.name() == "message" && format!("{value:?}") == "request finished";
            }
        }
        let mut finished = Message(false);
        event.record(&mut finished);
        if finished.0 {
            tracing::warn!(target: "audit", "a request ended");
        }
    }
}

/// The global subscriber: the audit layer, then ours with request metrics.
fn output() -> (MutexGuard<'static, ()>, &'static Capture) {
    let (serial, output) = common::global_capture(|output| {
        let ours = tracing_aws_ecs::builder()
            .with_metadata(fargate_metadata())
            .with_writer(output.clone())
            .with_request_metrics(
                RequestMetrics::new("Test/LastLine").with_interval(Duration::from_secs(3600)),
            )
            .layer();
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(Audit)
            .with(ours)
            .init();
    });
    tracing_aws_ecs::flush();
    output.clear();
    (serial, output)
}

fn counts(out: &Capture) -> BTreeMap<(String, String), (u64, u64)> {
    common::request_counts(&out.lines(), None)
}

fn pair(route: &str, method: &str) -> (String, String) {
    (route.to_owned(), method.to_owned())
}

/// Sends a GET for `path` and reads the body, whether it fails or not.
fn send_get(app: Router, path: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let response = app.oneshot(request).await.unwrap();
        let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
    });
}

#[test]
fn a_line_logged_as_the_last_line_is_dispatched_leaves_the_request_to_it() {
    let (_serial, out) = output();
    // Status 200, and a body that fails: the failure is known from the last line only.
    let app = Router::new()
        .route(
            "/broken",
            get(|| async {
                Body::from_stream(common::stream_of(vec![
                    Ok("part"),
                    Err(std::io::Error::other("upstream reset")),
                ]))
            }),
        )
        .layer(RequestLayer::new());
    send_get(app, "/broken");
    tracing_aws_ecs::flush();
    let lines = out.lines();
    assert!(
        lines.iter().any(|l| l["message"] == "a request ended"),
        "the audit layer logged: {lines:#?}"
    );
    assert_eq!(
        counts(out),
        [(pair("/broken", "GET"), (1, 1))].into_iter().collect()
    );
}

#[test]
fn two_layers_stacked_in_a_service_builder_make_one_request() {
    let (_serial, out) = output();
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .layer(
            tower::ServiceBuilder::new()
                .layer(RequestLayer::new())
                .layer(RequestLayer::new()),
        );
    send_get(app, "/orders/7");
    tracing_aws_ecs::flush();
    assert_eq!(
        counts(out),
        [(pair("/orders/{id}", "GET"), (1, 0))]
            .into_iter()
            .collect()
    );
    let finished = out
        .lines()
        .into_iter()
        .filter(|l| l["message"] == "request finished")
        .count();
    assert_eq!(finished, 1);
}
