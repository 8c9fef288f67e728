//! What logging costs an axum request, served in process through `oneshot` on a
//! current-thread runtime, all lines to `io::sink()`: no logging at all; the stock stack
//! (tower-http's `TraceLayer` with its span and response line at INFO, and
//! `tracing_subscriber::fmt().json()`); and ours (`RequestLayer`, its one INFO line a
//! request, request metrics on, and off). Each router is made ready as `axum::serve` makes
//! it for each connection (`Router::with_state(())`: every route, with its layers, built
//! once rather than for each request), so that a request takes the path a served one takes.
//! The four take turns, 5,000 requests a turn, 101 turns (the first dropped as warm-up),
//! each turn starting with the next stack, so that the four meet the machine alike; prints
//! the median ns a request of each stack, and the median of the turns' ratios of our
//! overhead above no logging to the stock stack's: a turn's four runs are a fraction of a
//! second apart, so a machine whose speed drifts (a shared VM) moves them together.
//!
//! `AXUM_BENCH_ONLY=<n>` serves stack `n` alone (0 no logging, 1 stock, 2 and 3 ours), all
//! turns' requests in one run and nothing printed: for a profiler.

mod support;

use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use tower::ServiceExt;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::{Dispatch, Level};
use tracing_aws_ecs::RequestMetrics;
use tracing_aws_ecs::http::RequestLayer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

const REQUESTS: u32 = 5_000;
const TURNS: usize = 101;

fn routes() -> Router {
    Router::new().route("/orders/{id}", get(|| async { "order" }))
}

/// A stack: the router, and the subscriber its requests log to.
struct Stack {
    name: &'static str,
    app: Router,
    dispatch: Dispatch,
}

/// Ours, with request metrics or without.
fn ours(metrics: bool) -> Stack {
    let mut builder = tracing_aws_ecs::builder()
        .with_metadata(support::metadata())
        .with_writer(std::io::sink);
    if metrics {
        builder = builder.with_request_metrics(
            RequestMetrics::new("Bench/Axum").with_interval(Duration::from_secs(3600)),
        );
    }
    Stack {
        name: if metrics {
            "RequestLayer + ours, request metrics on"
        } else {
            "RequestLayer + ours, request metrics off"
        },
        app: routes().layer(RequestLayer::new()),
        dispatch: Dispatch::new(
            tracing_subscriber::registry()
                .with(LevelFilter::INFO)
                .with(builder.layer()),
        ),
    }
}

fn stacks() -> [Stack; 4] {
    let none = Stack {
        name: "no logging",
        app: routes(),
        dispatch: Dispatch::none(),
    };
    let stock = Stack {
        name: "TraceLayer + fmt().json()",
        app: routes().layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        ),
        dispatch: Dispatch::new(
            tracing_subscriber::registry().with(LevelFilter::INFO).with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::sink),
            ),
        ),
    };
    let mut stacks = [none, stock, ours(true), ours(false)];
    for stack in &mut stacks {
        // What `axum::serve` does for each connection: a `Router<()>` called as it is would
        // build each route, and apply each layer to it, for every request.
        stack.app = stack.app.clone().with_state(());
    }
    stacks
}

async fn serve(app: &Router, requests: u32) {
    for i in 0..requests {
        let request = Request::get(format!("/orders/{}", i % 100))
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let stacks = stacks();
    if let Ok(only) = std::env::var("AXUM_BENCH_ONLY") {
        let stack = only
            .parse::<usize>()
            .ok()
            .and_then(|only| stacks.get(only))
            .expect("AXUM_BENCH_ONLY is a stack's number, 0 to 3");
        tracing::dispatcher::with_default(&stack.dispatch, || {
            runtime.block_on(serve(&stack.app, REQUESTS * TURNS as u32));
        });
        return;
    }
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); stacks.len()];
    for turn in 0..TURNS {
        for k in 0..stacks.len() {
            let at = (turn + k) % stacks.len();
            let stack = &stacks[at];
            tracing::dispatcher::with_default(&stack.dispatch, || {
                let start = Instant::now();
                runtime.block_on(serve(&stack.app, REQUESTS));
                if turn > 0 {
                    times[at].push(start.elapsed().as_nanos() as f64 / f64::from(REQUESTS));
                }
            });
        }
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    // Each turn's ratio of an overhead above no logging to the stock stack's.
    let ratios = |of: usize| {
        let turns = times[0].iter().zip(&times[1]).zip(&times[of]);
        median(
            turns
                .map(|((none, stock), ours)| (ours - none) / (stock - none))
                .collect(),
        )
    };
    let (ours, without_metrics) = (ratios(2), ratios(3));
    let medians: Vec<f64> = times.iter().cloned().map(median).collect();
    for (stack, median) in stacks.iter().zip(&medians) {
        println!("{}: {median:.0} ns a request", stack.name);
    }
    let (none, stock, ours_ns) = (medians[0], medians[1], medians[2]);
    println!(
        "overhead above no logging: stock {:.0} ns, ours {:.0} ns; ours {ours:.3}x the stock \
         stack's, median of the turns ({without_metrics:.3}x without request metrics)",
        stock - none,
        ours_ns - none,
    );
}
