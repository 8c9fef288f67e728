//! The tower layer on an axum `Router`, served in process: the request span's keys, route
//! templates and the unmatched route, request ids given and made, the ALB's trace id, left-out
//! routes, status recorded at the response, a streaming body kept in its request, and a
//! panic as one ERROR line with `CatchPanicLayer` inside the layer or outside it, and a
//! router nested in another, each with the layer, as one request; a layer around the router
//! (not inside it) says once that it sees no route. Layers inside this one make their spans
//! in the request; methods no one knows are counted as one; a layer on a nested router has
//! the path as requested; what a cancelled handler or a dropped body logs as it goes is in
//! the request; a task spawned in the request's span does not put off its count.
//!
//! The subscriber is global, as `init()` installs it, with request metrics and buffering,
//! filtered as `RUST_LOG=info,http_layer=debug` does; the tests take turns.
#![cfg(feature = "axum")]

mod common;

use std::collections::BTreeMap;
use std::sync::MutexGuard;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::routing::{get, post};
use common::{Capture, fargate_metadata};
use serde_json::Value;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use tracing_aws_ecs::http::{OTHER_METHOD, RequestLayer, UNMATCHED_ROUTE};
use tracing_aws_ecs::{Buffering, RequestMetrics};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// The global subscriber at INFO, with request metrics and buffering, writing into the
/// returned capture, empty.
fn output() -> (MutexGuard<'static, ()>, &'static Capture) {
    let (serial, output) = common::global_capture(|output| {
        let layer = tracing_aws_ecs::builder()
            .with_metadata(fargate_metadata())
            .with_writer(output.clone())
            .with_buffering(Buffering::default())
            .with_request_metrics(
                RequestMetrics::new("Test/Http").with_interval(Duration::from_secs(3600)),
            )
            .layer();
        // What `RUST_LOG=info,http_layer=debug` gives.
        tracing_subscriber::registry()
            .with(EnvFilter::new("info,http_layer=debug"))
            .with(layer)
            .init();
        tracing_aws_ecs::install_panic_hook();
        // The hook writes panics into the capture: a failed assertion is printed too.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            hook(info);
            if info.payload().downcast_ref::<&str>() != Some(&"handler panicked") {
                eprintln!("{info}");
            }
        }));
    });
    tracing_aws_ecs::flush();
    output.clear();
    (serial, output)
}

/// A service's routes: path parameters, a failing route, a panicking one, a health check
/// and a streaming body.
fn routes() -> Router {
    Router::new()
        .route(
            "/orders/{id}",
            get(|| async {
                tracing::info!("looked up order");
                "order"
            }),
        )
        .route("/orders", post(|| async { StatusCode::CREATED }))
        .route(
            "/fail",
            get(|| async {
                tracing::debug!("held until the failure");
                StatusCode::SERVICE_UNAVAILABLE
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler panicked");
                }
                "never"
            }),
        )
        .route("/health", get(|| async { "ok" }))
        .route(
            "/stream",
            get(|| async {
                let chunks = futures_chunks();
                Body::from_stream(chunks)
            }),
        )
}

/// Three chunks, each logging as it is made, the second after a pause.
fn futures_chunks() -> impl futures_core::Stream<Item = Result<String, std::io::Error>> {
    struct Chunks(u32, Option<std::pin::Pin<Box<tokio::time::Sleep>>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<String, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            if let Some(sleep) = self.1.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return std::task::Poll::Pending;
                }
                self.1 = None;
            }
            if self.0 == 3 {
                return std::task::Poll::Ready(None);
            }
            self.0 += 1;
            tracing::info!(chunk = self.0, "streamed");
            if self.0 == 1 {
                self.1 = Some(Box::pin(tokio::time::sleep(Duration::from_millis(50))));
            }
            std::task::Poll::Ready(Some(Ok(format!("chunk {}\n", self.0))))
        }
    }
    use std::future::Future;
    Chunks(0, None)
}

/// Sends `request` through `app` and reads the whole body: the request ends.
async fn send(app: &Router, request: Request<Body>) -> (StatusCode, axum::http::HeaderMap) {
    let response = app.clone().oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    axum::body::to_bytes(body, usize::MAX).await.expect("body");
    (parts.status, parts.headers)
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

/// `(Route, Method)` → (Requests, Errors), from the EMF lines.
fn counts(out: &Capture) -> BTreeMap<(String, String), (u64, u64)> {
    common::request_counts(&out.lines(), None)
}

fn pair(route: &str, method: &str) -> (String, String) {
    (route.to_owned(), method.to_owned())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn each_request_is_counted_under_its_route_template() {
    let (_serial, out) = output();
    let app = routes().layer(RequestLayer::new().without_route("/health"));
    runtime().block_on(async {
        for i in 0..40 {
            send(&app, get_request(&format!("/orders/{i}"))).await;
            send(&app, get_request("/health")).await;
        }
        for _ in 0..10 {
            let created = Request::post("/orders").body(Body::empty()).unwrap();
            assert_eq!(send(&app, created).await.0, StatusCode::CREATED);
            assert_eq!(send(&app, get_request("/fail")).await.0, 503);
            assert_eq!(send(&app, get_request("/no/such/path")).await.0, 404);
        }
    });
    // A background job's root span is not a request.
    tracing::info_span!("cart_sweep").in_scope(|| tracing::info!("swept"));
    tracing_aws_ecs::flush();
    let expected: BTreeMap<_, _> = [
        (pair("/orders/{id}", "GET"), (40, 0)),
        (pair("/orders", "POST"), (10, 0)),
        (pair("/fail", "GET"), (10, 10)),
        (pair(UNMATCHED_ROUTE, "GET"), (10, 0)),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts(out), expected);
    let lines = out.lines();
    // One line a request, at INFO but for the 5xx (ERROR, after its held DEBUG line); none at
    // INFO for the health checks.
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request finished")
        .collect();
    assert_eq!(finished.len(), 70);
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    assert_eq!(errors.len(), 10);
    assert!(errors.iter().all(|l| l["http.route"] == "/fail"));
    let held = lines
        .iter()
        .filter(|l| l["message"] == "held until the failure")
        .count();
    assert_eq!(held, 10, "the failing requests' DEBUG lines are written");
    assert!(lines.iter().all(|l| l["url.path"] != "/health"));
    // Every line of a request carries its keys, and ids differ between requests.
    let mut ids = std::collections::HashSet::new();
    for line in lines.iter().filter(|l| l.get("http.route").is_some()) {
        let id = line["request_id"].as_str().expect("request_id");
        assert_eq!(id.len(), 32, "{line}");
        assert!(line["http.request.method"].is_string(), "{line}");
        assert!(line["url.path"].is_string(), "{line}");
        if line["message"] == "request finished" {
            assert!(line["http.response.status_code"].is_u64(), "{line}");
            assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
            ids.insert(id.to_owned());
        }
    }
    assert_eq!(ids.len(), 70);
    let unmatched = lines
        .iter()
        .find(|l| l["http.route"] == UNMATCHED_ROUTE)
        .unwrap();
    assert_eq!(unmatched["url.path"], "/no/such/path");
    assert_eq!(unmatched["http.response.status_code"], 404);
}

#[test]
fn a_request_id_given_is_kept_and_echoed_and_the_albs_trace_is_on_every_line() {
    let (_serial, out) = output();
    let app = routes().layer(RequestLayer::new().with_request_id_in_response(true));
    let root = "1-67891233-abcdef012345678912345678";
    let headers = runtime().block_on(async {
        let request = Request::get("/orders/7")
            .header("x-request-id", "client-id-42")
            .header(
                "x-amzn-trace-id",
                format!("Self=1-67891234-12456789abcdef012345678;Root={root};Sampled=1"),
            )
            .body(Body::empty())
            .unwrap();
        let (_, given) = send(&app, request).await;
        // A bad id (a space) is replaced, and the one made is echoed.
        let request = Request::get("/orders/8")
            .header("x-request-id", "two words")
            .body(Body::empty())
            .unwrap();
        let (_, made) = send(&app, request).await;
        (given, made)
    });
    assert_eq!(headers.0["x-request-id"], "client-id-42");
    let made = headers.1["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 32);
    let lines = out.lines();
    let of =
        |path: &str| -> Vec<&Value> { lines.iter().filter(|l| l["url.path"] == path).collect() };
    let (seven, eight) = (of("/orders/7"), of("/orders/8"));
    assert_eq!(seven.len(), 2, "the handler's line and the request's");
    for line in &seven {
        assert_eq!(line["request_id"], "client-id-42");
        assert_eq!(line["xray_trace_id"], root);
    }
    for line in &eight {
        assert_eq!(line["request_id"], made.as_str());
        assert!(line.get("xray_trace_id").is_none());
    }
}

#[test]
fn a_request_cancelled_before_its_response_is_a_499_and_a_failed_body_an_error() {
    let (_serial, out) = output();
    let app = Router::new()
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        )
        .route(
            "/broken",
            get(|| async {
                let chunks: Vec<Result<&'static str, std::io::Error>> =
                    vec![Ok("part"), Err(std::io::Error::other("upstream reset"))];
                Body::from_stream(common::stream_of(chunks))
            }),
        )
        .route(
            "/own-id",
            get(|| async { ([("x-request-id", "the-handler's")], "ok") }),
        )
        .layer(RequestLayer::new().with_request_id_in_response(true));
    let own = runtime().block_on(async {
        // The client goes: the response future is dropped before it is ready.
        let hang = app.clone().oneshot(get_request("/hang"));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), hang)
                .await
                .is_err()
        );
        let response = app.clone().oneshot(get_request("/broken")).await.unwrap();
        assert!(
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .is_err()
        );
        send(&app, get_request("/own-id")).await;
        send(&app, get_request("/own-id")).await.1
    });
    assert_eq!(own["x-request-id"], "the-handler's", "not overwritten");
    tracing_aws_ecs::flush();
    assert_eq!(
        counts(out),
        [
            (pair("/broken", "GET"), (1, 1)),
            (pair("/hang", "GET"), (1, 0)),
            (pair("/own-id", "GET"), (2, 0)),
        ]
        .into_iter()
        .collect()
    );
    let lines = out.lines();
    // The id the client got is not the one on the lines: said once.
    let other_id = lines
        .iter()
        .filter(|l| {
            l["level"] == "WARN"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("x-request-id that is not"))
        })
        .count();
    assert_eq!(other_id, 1);
    let cancelled = lines
        .iter()
        .find(|l| l["message"] == "request cancelled")
        .expect("the cancelled request's line");
    assert_eq!(cancelled["http.response.status_code"], 499);
    assert_eq!(cancelled["level"], "INFO");
    let broken = lines
        .iter()
        .find(|l| l["message"] == "request finished" && l["http.route"] == "/broken")
        .unwrap();
    assert_eq!(broken["level"], "ERROR");
}

#[test]
fn a_streaming_body_stays_in_its_request() {
    let (_serial, out) = output();
    let app = routes().layer(RequestLayer::new());
    runtime().block_on(async {
        send(&app, get_request("/stream")).await;
    });
    tracing_aws_ecs::flush();
    let lines = out.lines();
    let streamed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "streamed")
        .collect();
    assert_eq!(streamed.len(), 3);
    let id = &streamed[0]["request_id"];
    assert!(streamed.iter().all(|l| &l["request_id"] == id));
    let finished = lines
        .iter()
        .find(|l| l["message"] == "request finished")
        .unwrap();
    assert_eq!(&finished["request_id"], id);
    // The request lasted until its body ended, pause included.
    assert!(
        finished["duration_ms"].as_f64().unwrap() >= 50.0,
        "{finished}"
    );
    let latency = lines
        .iter()
        .find(|l| l["Route"] == "/stream")
        .map(|l| l["Latency"][0].as_f64().unwrap())
        .unwrap();
    assert!(latency >= 50.0, "{latency}");
    // Request metrics time the request with the readings of the clock its line's
    // `duration_ms` was measured with: the slowest request's line shows the metric's figure.
    assert_eq!(latency, finished["duration_ms"].as_f64().unwrap());
}

#[test]
fn a_panic_is_one_error_line_and_a_500_with_catch_panic_inside_or_outside() {
    let (_serial, out) = output();
    let inside = routes()
        .layer(CatchPanicLayer::new())
        .layer(RequestLayer::new());
    let outside = routes()
        .layer(RequestLayer::new())
        .layer(CatchPanicLayer::new());
    runtime().block_on(async {
        for app in [&inside, &outside] {
            for _ in 0..3 {
                assert_eq!(send(app, get_request("/panic")).await.0, 500);
            }
        }
    });
    tracing_aws_ecs::flush();
    assert_eq!(
        counts(out),
        [(pair("/panic", "GET"), (6, 6))].into_iter().collect()
    );
    let lines = out.lines();
    let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
    let messages: Vec<_> = errors
        .iter()
        .map(|l| (&l["message"], &l["target"]))
        .collect();
    assert_eq!(errors.len(), 6, "{messages:?}");
    for error in &errors {
        assert_eq!(error["message"], "handler panicked");
        assert_eq!(error["http.route"], "/panic");
        assert!(error["request_id"].is_string());
    }
}

/// Sends a GET for each of `paths` to `app`, one after another on this thread, with
/// `subscriber` as this thread's default.
fn send_scoped(subscriber: impl tracing::Subscriber + Send + Sync, app: &Router, paths: &[&str]) {
    tracing::subscriber::with_default(subscriber, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            for path in paths {
                send(app, get_request(path)).await;
            }
        });
    });
}

fn layer_into<S>(out: &Capture) -> tracing_aws_ecs::EcsLayer<S, Capture>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(out.clone())
        .layer()
}

#[test]
fn two_layers_of_ours_each_write_a_caught_panic_once() {
    let (_serial, _) = output();
    let (first, second) = (Capture::default(), Capture::default());
    let subscriber = tracing_subscriber::registry()
        .with(layer_into(&first))
        .with(layer_into(&second));
    let app = routes()
        .route(
            "/resume",
            get(|| async {
                if true {
                    // No hook runs: tower-http's report is the only one.
                    std::panic::resume_unwind(Box::new("resumed panic"));
                }
                "never"
            }),
        )
        .layer(CatchPanicLayer::new())
        .layer(RequestLayer::new());
    send_scoped(subscriber, &app, &["/panic", "/resume", "/panic"]);
    // The hook's line in each, not tower-http's report of the same panic; tower-http's
    // report of the panic the hook did not see, and that request's 500 at ERROR.
    for out in [&first, &second] {
        let lines = out.lines();
        let errors: Vec<&Value> = lines.iter().filter(|l| l["level"] == "ERROR").collect();
        let messages: Vec<&str> = errors
            .iter()
            .filter_map(|l| l["message"].as_str())
            .collect();
        assert_eq!(
            messages,
            [
                "handler panicked",
                "Service panicked: resumed panic",
                "request finished",
                "handler panicked"
            ]
        );
    }
}

#[test]
fn the_last_line_is_in_the_request_for_span_directives() {
    let (_serial, _) = output();
    let out = Capture::default();
    // `RUST_LOG=warn,[request]=info`: what is logged inside a request.
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new("warn,[request]=info"))
        .with(layer_into(&out));
    send_scoped(
        subscriber,
        &routes().layer(RequestLayer::new()),
        &["/orders/7"],
    );
    let lines = out.lines();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert_eq!(messages, ["looked up order", "request finished"]);
}

/// A body of one frame that logs as it gives it, says it has ended, and logs if polled
/// again.
struct Once(Option<axum::body::Bytes>);

impl http_body::Body for Once {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::task::Poll::Ready(match self.0.take() {
            Some(data) => {
                tracing::info!("last frame");
                Some(Ok(http_body::Frame::data(data)))
            }
            None => {
                tracing::info!("polled past its end");
                None
            }
        })
    }
    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

#[test]
fn the_frame_after_which_the_body_is_at_its_end_ends_the_request() {
    let (_serial, _) = output();
    let out = Capture::default();
    let subscriber = tracing_subscriber::registry().with(layer_into(&out));
    let app = Router::new()
        .route(
            "/once",
            get(|| async { Body::new(Once(Some("once".into()))) }),
        )
        .layer(RequestLayer::new());
    // `send` reads the body to its end: one poll past the frame, as hyper does not.
    send_scoped(subscriber, &app, &["/once"]);
    let lines = out.lines();
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert_eq!(
        messages,
        ["last frame", "request finished", "polled past its end"]
    );
    // The frame's line is in the request; the poll past the end is not.
    assert_eq!(lines[0]["http.route"], "/once", "{}", lines[0]);
    assert_eq!(lines[1]["http.response.status_code"], 200, "{}", lines[1]);
    assert!(lines[2].get("http.route").is_none(), "{}", lines[2]);
}

#[test]
fn a_response_with_an_empty_body_ends_its_request_as_it_is_made() {
    let (_serial, _) = output();
    let out = Capture::default();
    let subscriber = tracing_subscriber::registry().with(layer_into(&out));
    let app = Router::new()
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
        .route("/full", get(|| async { "full" }))
        .layer(RequestLayer::new());
    let finished = || {
        out.lines()
            .into_iter()
            .filter(|l| l["message"] == "request finished")
            .collect::<Vec<_>>()
    };
    tracing::subscriber::with_default(subscriber, || {
        let runtime = runtime();
        runtime.block_on(async {
            // The body is held, never polled: the request has ended with the response.
            let response = app.clone().oneshot(get_request("/empty")).await.unwrap();
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
            let lines = finished();
            assert_eq!(lines.len(), 1);
            assert_eq!(lines[0]["http.response.status_code"], 204, "{}", lines[0]);
            // A body of one frame: the request ends with the frame, before the body is
            // polled again or dropped.
            let response = app.clone().oneshot(get_request("/full")).await.unwrap();
            let mut body = response.into_body();
            assert_eq!(finished().len(), 1);
            let frame = std::future::poll_fn(|cx| {
                http_body::Body::poll_frame(std::pin::Pin::new(&mut body), cx)
            })
            .await;
            assert!(frame.is_some_and(|f| f.is_ok_and(|f| f.is_data())));
            let lines = finished();
            assert_eq!(lines.len(), 2);
            assert_eq!(lines[1]["http.route"], "/full", "{}", lines[1]);
            drop(body);
        });
    });
    assert_eq!(finished().len(), 2);
}

#[test]
fn another_layers_visitor_reads_the_lines_messages_as_text() {
    // A visitor that implements only `record_debug`, as many do: a message given as a `&str`
    // field would reach it as `"request finished"`, quotes and all.
    struct DebugOnly(std::sync::Arc<std::sync::Mutex<Vec<String>>>);
    impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DebugOnly {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    if field.name() == "message" {
                        self.0 = format!("{value:?}");
                    }
                }
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push(message.0);
        }
    }
    let seen = std::sync::Arc::default();
    let subscriber = tracing_subscriber::registry().with(DebugOnly(std::sync::Arc::clone(&seen)));
    send_scoped(
        subscriber,
        &routes().layer(RequestLayer::new()),
        &["/orders/7"],
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["looked up order", "request finished"]
    );
}

#[test]
fn a_router_nested_in_another_each_with_the_layer_is_one_request() {
    let (_serial, out) = output();
    let items = Router::new()
        .route(
            "/items/{id}",
            get(|| async {
                tracing::info!("looked up item");
                "item"
            }),
        )
        .layer(RequestLayer::new());
    let app = Router::new().nest("/api", items).layer(RequestLayer::new());
    runtime().block_on(async {
        for i in 0..5 {
            let (status, _) = send(&app, get_request(&format!("/api/items/{i}"))).await;
            assert_eq!(status, StatusCode::OK);
        }
    });
    tracing_aws_ecs::flush();
    let expected: BTreeMap<_, _> = [(pair("/api/items/{id}", "GET"), (5, 0))]
        .into_iter()
        .collect();
    assert_eq!(counts(out), expected, "each request counted once");
    let lines = out.lines();
    let finished = lines
        .iter()
        .filter(|l| l["message"] == "request finished")
        .count();
    assert_eq!(finished, 5, "one line a request");
    let looked_up: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "looked up item")
        .collect();
    assert_eq!(looked_up.len(), 5);
    assert!(
        looked_up.iter().all(|l| l["request_id"].is_string()),
        "{looked_up:#?}"
    );
}

#[test]
fn a_layer_around_the_router_says_once_that_it_sees_no_route() {
    let (_serial, out) = output();
    // Inside the router, a path with no route is unmatched, and there is nothing to say.
    let inside = routes().layer(RequestLayer::new());
    // Around it, as a service of its own, a layer never sees the route the router matches.
    let around = || tower::Layer::layer(&RequestLayer::new(), routes());
    let warnings = || {
        let lines = out.lines();
        lines
            .into_iter()
            .filter(|l| l["level"] == "WARN")
            .collect::<Vec<Value>>()
    };
    runtime().block_on(async {
        assert_eq!(send(&inside, get_request("/no/such/path")).await.0, 404);
        assert_eq!(warnings(), Vec::<Value>::new(), "a 404 is no mistake");
        // Two layers, each served three requests: each says it once.
        for around in [around(), around()] {
            for path in ["/orders/1", "/orders/2", "/health"] {
                let response = around.clone().oneshot(get_request(path)).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let body = Body::new(response.into_body());
                axum::body::to_bytes(body, usize::MAX).await.expect("body");
            }
        }
    });
    tracing_aws_ecs::flush();
    let warnings = warnings();
    assert_eq!(warnings.len(), 2, "once a layer: {warnings:#?}");
    let warning = warnings[0]["message"].as_str().unwrap();
    assert!(warning.contains("Router::layer"), "{warning}");
    assert!(warning.contains(UNMATCHED_ROUTE), "{warning}");
    let expected: BTreeMap<_, _> = [(pair(UNMATCHED_ROUTE, "GET"), (7, 0))]
        .into_iter()
        .collect();
    assert_eq!(counts(out), expected);
}

#[test]
fn a_layer_inside_this_one_makes_its_span_in_the_request() {
    let (_serial, out) = output();
    // tower-http's `TraceLayer` makes its span (at INFO here) in its `call`.
    let inside = TraceLayer::new_for_http()
        .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO));
    let app = Router::new()
        .route(
            "/orders/{id}",
            get(|| async {
                tracing::info!("looked up order");
                "order"
            }),
        )
        .route(
            "/pay",
            get(|| async {
                tracing::error!("payment failed");
                StatusCode::PAYMENT_REQUIRED
            }),
        )
        .layer(
            tower::ServiceBuilder::new()
                .layer(RequestLayer::new())
                .layer(inside),
        );
    runtime().block_on(async {
        send(&app, get_request("/orders/7")).await;
        send(&app, get_request("/pay")).await;
    });
    tracing_aws_ecs::flush();
    // The handler's ERROR is its request's: counted as an error.
    assert_eq!(
        counts(out),
        [
            (pair("/orders/{id}", "GET"), (1, 0)),
            (pair("/pay", "GET"), (1, 1)),
        ]
        .into_iter()
        .collect()
    );
    let lines = out.lines();
    for (message, route) in [
        ("looked up order", "/orders/{id}"),
        ("payment failed", "/pay"),
    ] {
        let line = lines.iter().find(|l| l["message"] == message).unwrap();
        assert_eq!(line["http.route"], route, "{line}");
        assert!(line["request_id"].is_string(), "{line}");
    }
    // `TraceLayer`'s span is inside the request, not a root span of its own.
    assert!(
        lines.iter().all(|l| !l["message"]
            .as_str()
            .is_some_and(|m| m.contains("no route"))),
        "{lines:#?}"
    );
}

#[test]
fn a_method_not_known_is_counted_as_other_with_the_method_as_sent() {
    let (_serial, out) = output();
    let propfind = Method::from_bytes(b"PROPFIND").unwrap();
    let app = routes().layer(RequestLayer::new().with_known_method(propfind.clone()));
    let request = |method: Method, path: &str| {
        Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap()
    };
    runtime().block_on(async {
        // More methods than the pairs request metrics keep (100): a client's methods must not
        // push the service's routes out.
        for i in 0..150 {
            let junk = Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
            assert_eq!(send(&app, request(junk, "/no/such/path")).await.0, 404);
        }
        let status = send(&app, request(propfind, "/orders/1")).await.0;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        send(&app, get_request("/orders/1")).await;
    });
    tracing_aws_ecs::flush();
    assert_eq!(
        counts(out),
        [
            (pair(UNMATCHED_ROUTE, OTHER_METHOD), (150, 0)),
            (pair("/orders/{id}", "PROPFIND"), (1, 0)),
            (pair("/orders/{id}", "GET"), (1, 0)),
        ]
        .into_iter()
        .collect()
    );
    let lines = out.lines();
    let junk = lines
        .iter()
        .find(|l| l["message"] == "request finished" && l["http.request.method_original"] == "X7")
        .expect("the method as sent");
    assert_eq!(junk["http.request.method"], OTHER_METHOD);
    assert!(
        lines
            .iter()
            .filter(|l| l["http.request.method"] == "GET" || l["http.request.method"] == "PROPFIND")
            .all(|l| l.get("http.request.method_original").is_none())
    );
}

#[test]
fn a_layer_on_a_nested_router_has_the_path_as_requested() {
    let (_serial, out) = output();
    let api = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/items/{id}", get(|| async { "item" }))
        .layer(RequestLayer::new().without_route("/health"));
    let app = Router::new().nest("/api", api);
    runtime().block_on(async {
        send(&app, get_request("/api/health")).await;
        send(&app, get_request("/api/items/2")).await;
    });
    tracing_aws_ecs::flush();
    // The health check is left out by the path its router sees.
    assert_eq!(
        counts(out),
        [(pair("/api/items/{id}", "GET"), (1, 0))]
            .into_iter()
            .collect()
    );
    let lines = out.lines();
    let finished: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "request finished")
        .collect();
    assert_eq!(finished.len(), 1, "{lines:#?}");
    assert_eq!(finished[0]["http.route"], "/api/items/{id}");
    assert_eq!(finished[0]["url.path"], "/api/items/2");
}

/// Logs as it is dropped, as a guard that says the client went does.
struct LogOnDrop(&'static str);

impl Drop for LogOnDrop {
    fn drop(&mut self) {
        tracing::warn!(part = self.0, "dropped: the client went");
    }
}

#[test]
fn what_a_cancelled_handler_or_a_dropped_body_logs_as_it_goes_is_in_the_request() {
    use http_body::Body as _;
    /// Chunks for ever, holding a guard (dropped with the stream).
    struct Endless(#[allow(dead_code)] LogOnDrop);
    impl futures_core::Stream for Endless {
        type Item = Result<&'static str, std::io::Error>;
        fn poll_next(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(Some(Ok("tick\n")))
        }
    }
    let (_serial, out) = output();
    let app = Router::new()
        .route(
            "/hang",
            get(|| async {
                let _guard = LogOnDrop("handler");
                tokio::time::sleep(Duration::from_secs(3600)).await;
                "never"
            }),
        )
        .route(
            "/stream",
            get(|| async { Body::from_stream(Endless(LogOnDrop("body"))) }),
        )
        .layer(RequestLayer::new());
    runtime().block_on(async {
        let hang = app.clone().oneshot(get_request("/hang"));
        assert!(
            tokio::time::timeout(Duration::from_millis(20), hang)
                .await
                .is_err()
        );
        let response = app.clone().oneshot(get_request("/stream")).await.unwrap();
        let mut body = response.into_body();
        let frame = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await;
        assert!(frame.is_some_and(|frame| frame.is_ok()));
        drop(body);
    });
    let lines = out.lines();
    for (part, route, last) in [
        ("handler", "/hang", "request cancelled"),
        ("body", "/stream", "request finished"),
    ] {
        let at = lines
            .iter()
            .position(|l| l["part"] == part)
            .unwrap_or_else(|| panic!("the {part}'s line in {lines:#?}"));
        let line = &lines[at];
        assert_eq!(line["http.route"], route, "{line}");
        let last = lines
            .iter()
            .position(|l| l["message"] == last && l["http.route"] == route)
            .unwrap();
        assert!(at < last, "before the request's last line");
        assert_eq!(lines[last]["request_id"], line["request_id"]);
    }
}

#[test]
fn a_task_spawned_in_the_request_does_not_put_off_its_count() {
    use tracing::Instrument;
    let (_serial, out) = output();
    let (release, wait) = tokio::sync::oneshot::channel::<()>();
    let wait = std::sync::Arc::new(std::sync::Mutex::new(Some(wait)));
    let task_done = std::sync::Arc::new(tokio::sync::Notify::new());
    let notify = std::sync::Arc::clone(&task_done);
    let app = Router::new()
        .route(
            "/signup",
            post(move || {
                // The task logs in the request's span, once the test has read the count.
                let wait = wait.lock().unwrap().take();
                let notify = std::sync::Arc::clone(&notify);
                async move {
                    tokio::spawn(
                        async move {
                            if let Some(wait) = wait {
                                let _ = wait.await;
                            }
                            tracing::info!("welcome email sent");
                            notify.notify_one();
                        }
                        .in_current_span(),
                    );
                    StatusCode::CREATED
                }
            }),
        )
        .layer(RequestLayer::new());
    runtime().block_on(async {
        let signup = Request::post("/signup").body(Body::empty()).unwrap();
        assert_eq!(send(&app, signup).await.0, StatusCode::CREATED);
        // The task still holds the span: the request is counted all the same.
        tracing_aws_ecs::flush();
        assert_eq!(
            counts(out),
            [(pair("/signup", "POST"), (1, 0))].into_iter().collect()
        );
        drop(release);
        task_done.notified().await;
    });
    let lines = out.lines();
    let finished = lines
        .iter()
        .find(|l| l["message"] == "request finished")
        .unwrap();
    let email = lines
        .iter()
        .find(|l| l["message"] == "welcome email sent")
        .unwrap();
    assert_eq!(email["request_id"], finished["request_id"]);
    // Timed to its last line, not to the task's end.
    let latency = lines
        .iter()
        .find(|l| l["Route"] == "/signup")
        .map(|l| l["Latency"][0].as_f64().unwrap())
        .unwrap();
    assert_eq!(latency, finished["duration_ms"].as_f64().unwrap());
}
