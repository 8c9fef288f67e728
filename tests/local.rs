//! Local development: `on_ecs()` reads the environment only, `with_text_off_ecs` writes
//! human-readable text off ECS and JSON on ECS (even when the endpoint fails), and
//! `with_metadata` fills the process cache. Each case runs in a child process.

mod common;

use common::{by_message, fargate_metadata};
use tracing_aws_ecs::emulator::{ALWAYS, Emulator, Fault, Route, Scenario};

const CASE: &str = "TRACING_AWS_ECS_LOCAL_CASE";

/// The child half.
#[test]
fn child() {
    let Ok(case) = std::env::var(CASE) else {
        return; // Only meaningful when started by the tests below.
    };
    match case.as_str() {
        "on_ecs" => println!("on_ecs={}", tracing_aws_ecs::on_ecs()),
        "text" => {
            let _guard = tracing_aws_ecs::builder().with_text_off_ecs(true).init();
            tracing::info!(order_id = 42, "order placed");
        }
        "given" => {
            let given = fargate_metadata();
            let _guard = tracing_aws_ecs::builder()
                .with_metadata(given.clone())
                .init();
            let cached = tracing_aws_ecs::metadata();
            tracing::info!(same = cached == Some(&given), "cache");
        }
        other => panic!("unknown case {other}"),
    }
}

#[test]
fn on_ecs_reads_the_variables_only() {
    let on_ecs = |env: &[(&str, &str)]| {
        let (_, stdout) = common::run_child(CASE, "on_ecs", env);
        stdout.contains("on_ecs=true")
    };
    assert!(!on_ecs(&[]));
    assert!(!on_ecs(&[("ECS_CONTAINER_METADATA_URI_V4", "  ")]));
    // A dead endpoint: still ECS, and no request is made to say so.
    assert!(on_ecs(&[(
        "ECS_CONTAINER_METADATA_URI_V4",
        "http://127.0.0.1:9/v4/x"
    )]));
    assert!(on_ecs(&[(
        "ECS_CONTAINER_METADATA_URI",
        "http://169.254.170.2/v3/x"
    )]));
}

#[test]
fn text_off_ecs_json_on_ecs() {
    let (lines, stdout) = common::run_child(CASE, "text", &[]);
    assert!(lines.is_empty(), "no JSON off ECS: {stdout}");
    let line = stdout
        .lines()
        .find(|l| l.contains("order placed"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        line.contains("INFO") && line.contains("order_id=42"),
        "{line}"
    );

    // On ECS with an endpoint that fails, the lines stay JSON.
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(Route::Any, Fault::Status(404), ALWAYS);
    let (var, url) = emulator.env_var();
    let (lines, _) = common::run_child(CASE, "text", &[(var, &url)]);
    let line = by_message(&lines, "order placed");
    assert_eq!(line["order_id"], 42);
    assert!(line.get("ecs").is_none());

    // And on a healthy endpoint, JSON with the identity.
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let (var, url) = emulator.env_var();
    let (lines, _) = common::run_child(CASE, "text", &[(var, &url)]);
    assert_eq!(
        by_message(&lines, "order placed")["ecs"]["cluster"],
        "prod-web"
    );
}

#[test]
fn given_metadata_fills_the_process_cache() {
    let (lines, _) = common::run_child(CASE, "given", &[]);
    let line = by_message(&lines, "cache");
    assert_eq!(line["same"], true);
    assert_eq!(line["ecs"]["cluster"], "MyEmptyCluster");
}
