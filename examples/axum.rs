//! An axum service on ECS: per-route request metrics, request ids and X-Ray trace ids on
//! every line, DEBUG lines kept for the requests that fail, a health check left out, a
//! background task, a panic caught as a 500, and nothing lost when ECS stops the task.
//!
//! ```text
//! cargo run --example axum --features axum,emulator
//! curl localhost:8080/orders/42
//! ```
//!
//! Runs anywhere: on ECS it reads the real endpoint; elsewhere the emulator's Fargate task
//! stands in for it. Listens on `PORT` (8080); stdout carries only JSON lines. Stop it with
//! Ctrl-C or SIGTERM, as ECS does.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tracing::Instrument;
use tracing_aws_ecs::emulator::{Emulator, Scenario};
use tracing_aws_ecs::http::{RequestLayer, shutdown_signal};
use tracing_aws_ecs::{Buffering, MetricsReporter, RequestMetrics};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Off ECS, the emulator's Fargate task stands in for the endpoint; it outlives the guard.
    let emulator = match tracing_aws_ecs::on_ecs() {
        true => None,
        false => Some(Emulator::start(Scenario::Fargate)?),
    };
    let mut logs = tracing_aws_ecs::builder()
        .with_buffering(Buffering::default())
        .with_request_metrics(RequestMetrics::new("OrdersService"));
    let mut container = MetricsReporter::builder();
    if let Some(emulator) = &emulator {
        logs = logs.with_metadata(emulator.client().fetch_metadata()?);
        container = container.with_client(emulator.client());
    }
    // Kept until `main` returns: then the last interval, held lines and a last report.
    let _guard = logs.with_container_metrics(container).init();

    tokio::spawn(sweep_carts());

    let app = Router::new()
        .route("/orders/{id}", get(order))
        .route("/orders", post(place_order))
        .route("/payments/{id}", get(payment))
        .route("/slow", get(slow))
        .route("/panic", get(panics))
        .route("/health", get(|| async { "ok" }))
        .layer(CatchPanicLayer::new())
        .layer(RequestLayer::new().without_route("/health"));

    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("0.0.0.0:{port}")).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    Ok(())
}

async fn order(Path(id): Path<u64>) -> Result<String, StatusCode> {
    tracing::debug!(id, "cache lookup"); // held: written only if the request fails
    if id == 0 {
        return Err(StatusCode::NOT_FOUND);
    }
    tracing::info!(order_id = id, "order loaded");
    Ok(format!("order {id}\n"))
}

async fn place_order() -> StatusCode {
    tracing::info!("order placed");
    StatusCode::CREATED
}

/// Every tenth payment fails: the request's DEBUG lines are written before its ERROR.
async fn payment(Path(id): Path<u64>) -> StatusCode {
    tracing::debug!(id, "calling the payment gateway");
    if id % 10 == 0 {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    StatusCode::OK
}

/// 300 ms on a slow dependency; `?fail` makes it fail then.
async fn slow(Query(query): Query<HashMap<String, String>>) -> StatusCode {
    tracing::info!("calling a slow dependency");
    tracing::debug!("waiting on a slow dependency");
    tokio::time::sleep(Duration::from_millis(300)).await;
    match query.contains_key("fail") {
        true => StatusCode::BAD_GATEWAY,
        false => StatusCode::OK,
    }
}

async fn panics() -> &'static str {
    panic!("a bug in the handler");
}

/// A background job: its span is a root span without a route, so not a request.
async fn sweep_carts() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        async { tracing::info!(swept = 3, "abandoned carts swept") }
            .instrument(tracing::info_span!("cart_sweep"))
            .await;
    }
}
