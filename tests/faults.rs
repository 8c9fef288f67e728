//! Every fault the emulator injects on the wire, against the client: the right outcome, the
//! right number of requests, and an answer within the deadline (plus a wide margin for a
//! loaded machine; this bounds a hang, it measures no speed).

use std::time::{Duration, Instant};

use tracing_aws_ecs::emulator::{ALWAYS, Emulator, Fault, Route, Scenario};
use tracing_aws_ecs::endpoint::Document;
use tracing_aws_ecs::{Error, MetadataClient};

const DEADLINE: Duration = Duration::from_millis(800);
const MARGIN: Duration = Duration::from_secs(5);

fn setup(route: impl Into<Route>, fault: Fault, times: usize) -> (Emulator, MetadataClient) {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(route, fault, times);
    let client = emulator
        .client()
        .with_request_timeout(Duration::from_millis(300))
        .with_deadline(DEADLINE);
    (emulator, client)
}

/// Runs `f`, checking it returns within the deadline plus the margin.
fn bounded<T>(f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    assert!(
        started.elapsed() < DEADLINE + MARGIN,
        "took {:?}",
        started.elapsed()
    );
    out
}

#[test]
fn server_errors_then_success_are_retried() {
    for status in [500, 502, 503] {
        let (emulator, client) = setup(Document::Container, Fault::Status(status), 2);
        assert_eq!(
            bounded(|| client.container()).unwrap().name.as_deref(),
            Some("app")
        );
        assert_eq!(emulator.requests(Document::Container), 3);
    }
}

#[test]
fn rate_limit_then_success_is_retried() {
    let (emulator, client) = setup(Document::Task, Fault::Status(429), 1);
    assert!(bounded(|| client.task()).is_ok());
    assert_eq!(emulator.requests(Document::Task), 2);
}

#[test]
fn rate_limit_body_is_reported() {
    let (_emulator, client) = setup(Document::Task, Fault::Status(429), ALWAYS);
    let err = bounded(|| client.task()).unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert!(
        err.to_string()
            .contains("You have reached maximum request limit."),
        "{err}"
    );
}

#[test]
fn client_errors_are_not_retried() {
    for status in [400, 404, 403] {
        let (emulator, client) = setup(Document::Container, Fault::Status(status), ALWAYS);
        let err = bounded(|| client.container()).unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert!(!err.is_transient());
        assert_eq!(emulator.requests(Document::Container), 1, "{status}");
        // The URL and the agent's (JSON-string) body are in the message.
        let text = err.to_string();
        assert!(
            text.contains(&emulator.base_url()) && text.contains("emulated fault"),
            "{text}"
        );
    }
}

#[test]
fn persistent_server_errors_stop_at_the_attempt_limit() {
    let (emulator, client) = setup(Document::Container, Fault::Status(500), ALWAYS);
    let client = client
        .with_deadline(Duration::from_secs(10))
        .with_max_attempts(3);
    let err = bounded(|| client.container()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Status {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(emulator.requests(Document::Container), 3);
}

#[test]
fn stall_before_headers_times_out() {
    let (_emulator, client) = setup(
        Document::Container,
        Fault::StallBeforeHeaders(Duration::from_secs(30)),
        ALWAYS,
    );
    let err = bounded(|| client.container()).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("timed out"));
}

#[test]
fn stall_mid_body_times_out() {
    let (_emulator, client) = setup(
        Document::Container,
        Fault::StallMidBody(Duration::from_secs(30)),
        ALWAYS,
    );
    let err = bounded(|| client.container()).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[test]
fn one_stall_then_success_is_retried() {
    let (emulator, client) = setup(
        Document::Container,
        Fault::StallBeforeHeaders(Duration::from_secs(30)),
        1,
    );
    assert!(bounded(|| client.container()).is_ok());
    assert_eq!(emulator.requests(Document::Container), 2);
}

#[test]
fn truncated_body_is_retried_then_reported() {
    let (emulator, client) = setup(Document::Container, Fault::TruncatedBody, 1);
    assert!(bounded(|| client.container()).is_ok());
    assert_eq!(emulator.requests(Document::Container), 2);

    let (_emulator, client) = setup(Document::Container, Fault::TruncatedBody, ALWAYS);
    let err = bounded(|| client.container()).unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
}

#[test]
fn closed_connection_is_retried_then_reported() {
    let (emulator, client) = setup(Route::Any, Fault::Close, 2);
    assert!(bounded(|| client.container()).is_ok());
    assert_eq!(emulator.requests(Document::Container), 3);

    let (_emulator, client) = setup(Route::Any, Fault::Close, ALWAYS);
    assert!(matches!(
        bounded(|| client.container()),
        Err(Error::Transport { .. })
    ));
}

#[test]
fn non_json_body_is_a_payload_error() {
    let (emulator, client) = setup(Document::Container, Fault::NotJson, ALWAYS);
    let err = bounded(|| client.container()).unwrap_err();
    assert!(matches!(err, Error::Payload { .. }), "{err:?}");
    assert!(err.to_string().contains("not JSON"), "{err}");
    assert_eq!(emulator.requests(Document::Container), 1);
}

#[test]
fn wrong_types_parse_leniently_and_non_objects_are_errors() {
    let (_emulator, client) = setup(
        Document::Task,
        Fault::Body(
            r#"{"Cluster": 5, "TaskARN": ["x"], "Containers": {"a": 1}, "Revision": 3}"#.into(),
        ),
        1,
    );
    let task = bounded(|| client.task()).unwrap();
    assert_eq!(task.cluster.as_deref(), Some("5"));
    assert_eq!(task.task_arn, None);
    assert!(task.containers.is_empty());
    assert_eq!(task.revision.as_deref(), Some("3"));

    let (_emulator, client) = setup(Document::Task, Fault::Body("[1, 2]".into()), 1);
    let err = bounded(|| client.task()).unwrap_err();
    assert!(err.to_string().contains("not a JSON object"), "{err}");
}

#[test]
fn oversized_body_is_refused() {
    let (_emulator, client) = setup(
        Document::TaskStats,
        Fault::Oversized(32 * 1024 * 1024),
        ALWAYS,
    );
    let err = bounded(|| client.task_stats()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::BodyTooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{err:?}"
    );
    // A raised cap lets a large (valid) body through.
    let (_emulator, client) = setup(
        Document::TaskStats,
        Fault::Oversized(2 * 1024 * 1024),
        ALWAYS,
    );
    assert!(
        client
            .with_max_body_bytes(4 * 1024 * 1024)
            .raw(Document::TaskStats)
            .is_ok()
    );
}

#[test]
fn delay_within_the_timeout_succeeds() {
    let (_emulator, client) = setup(
        Document::Container,
        Fault::Delay(Duration::from_millis(100)),
        ALWAYS,
    );
    assert!(bounded(|| client.container()).is_ok());
}

#[test]
fn refused_connection_is_reported_within_the_deadline() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let client = MetadataClient::new(&format!("http://127.0.0.1:{port}/v4/x"))
        .unwrap()
        .with_deadline(DEADLINE);
    let err = bounded(|| client.container()).unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn failing_task_leaves_partial_metadata() {
    for fault in [
        Fault::Status(404),
        Fault::Status(500),
        Fault::StallBeforeHeaders(Duration::from_secs(30)),
        Fault::NotJson,
    ] {
        let (_emulator, client) = setup(Document::Task, fault.clone(), ALWAYS);
        let meta = bounded(|| client.fetch_metadata()).unwrap();
        assert!(meta.task().is_none(), "{fault:?}");
        assert!(
            meta.task_error().unwrap().to_string().contains("/task"),
            "{fault:?}: {:?}",
            meta.task_error()
        );
        // What the container's labels carry still serves.
        assert_eq!(meta.cluster_name(), Some("prod-web"));
        assert_eq!(meta.task_id(), Some("9c2b1d7e4f6a48b3a1c0d2e3f4a5b6c7"));
        assert_eq!(meta.family(), Some("orders-api"));
        assert_eq!(meta.region(), Some("us-east-1"));
        assert_eq!(meta.launch_type(), None);
    }
}

#[test]
fn failing_container_fails_the_fetch() {
    let (emulator, client) = setup(Document::Container, Fault::Status(404), ALWAYS);
    assert_eq!(
        bounded(|| client.fetch_metadata()).unwrap_err().status(),
        Some(404)
    );
    // Both documents are asked for at once: one round trip when all is well.
    assert_eq!(emulator.requests(Document::Container), 1);
    assert_eq!(emulator.requests(Document::Task), 1);
}

#[test]
fn stats_faults_leave_metadata_alone() {
    let (_emulator, client) = setup(Document::Stats, Fault::Status(500), ALWAYS);
    assert!(client.fetch_metadata().is_ok());
    assert_eq!(bounded(|| client.stats()).unwrap_err().status(), Some(500));
}
