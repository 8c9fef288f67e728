//! Endpoint discovery from the environment, in a child process (the environment is
//! process-wide): not on ECS, v4, v3 fallback, malformed values, and `HTTP_PROXY` set.

use std::process::{Command, Output};

use serde_json::Value;
use tracing_aws_ecs::emulator::{Emulator, Scenario};
use tracing_aws_ecs::endpoint::ApiVersion;
use tracing_aws_ecs::endpoint::Document;

fn summary(env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecs-metadata"));
    for var in [
        "ECS_CONTAINER_METADATA_URI_V4",
        "ECS_CONTAINER_METADATA_URI",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().copied()).output().unwrap()
}

fn version_of(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["api_version"].clone()
}

#[test]
fn no_variable_means_not_on_ecs() {
    let out = summary(&[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running on ECS"));
    // Empty values are the same as unset.
    assert_eq!(
        summary(&[
            ("ECS_CONTAINER_METADATA_URI_V4", " "),
            ("ECS_CONTAINER_METADATA_URI", "")
        ])
        .status
        .code(),
        Some(2)
    );
}

#[test]
fn v4_is_preferred_and_v3_is_the_fallback() {
    let emulator = Emulator::start(Scenario::Ec2).unwrap();
    let v4 = emulator.url(ApiVersion::V4);
    let v3 = emulator.url(ApiVersion::V3);
    assert_eq!(
        version_of(&summary(&[
            ("ECS_CONTAINER_METADATA_URI_V4", &v4),
            ("ECS_CONTAINER_METADATA_URI", &v3)
        ])),
        "v4"
    );
    assert_eq!(
        version_of(&summary(&[("ECS_CONTAINER_METADATA_URI", &v3)])),
        "v3"
    );
}

#[test]
fn values_are_trimmed_and_trailing_slashes_dropped() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let padded = format!("  {}/ \n", emulator.base_url());
    assert_eq!(
        version_of(&summary(&[("ECS_CONTAINER_METADATA_URI_V4", &padded)])),
        "v4"
    );
}

#[test]
fn malformed_v4_next_to_valid_v3_uses_v3() {
    let emulator = Emulator::start(Scenario::Ec2).unwrap();
    let v3 = emulator.url(ApiVersion::V3);
    let out = summary(&[
        ("ECS_CONTAINER_METADATA_URI_V4", "169.254.170.2/v4/x"),
        ("ECS_CONTAINER_METADATA_URI", &v3),
    ]);
    assert_eq!(version_of(&out), "v3");
}

#[test]
fn malformed_values_are_named() {
    for (var, value) in [
        (
            "ECS_CONTAINER_METADATA_URI_V4",
            "https://169.254.170.2/v4/x",
        ),
        ("ECS_CONTAINER_METADATA_URI_V4", "http://"),
        ("ECS_CONTAINER_METADATA_URI", "ftp://h/v3/x"),
        ("ECS_CONTAINER_METADATA_URI", "http://h:notaport/v3"),
    ] {
        let out = summary(&[(var, value)]);
        assert_eq!(out.status.code(), Some(1), "{value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("{var} is malformed")), "{stderr}");
        assert!(!stderr.contains("panicked"));
    }
}

#[test]
fn proxy_variables_are_ignored() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let proxy = format!("http://{dead}");
    let v4 = emulator.base_url();
    let out = summary(&[
        ("ECS_CONTAINER_METADATA_URI_V4", &v4),
        ("HTTP_PROXY", &proxy),
        ("http_proxy", &proxy),
        ("ALL_PROXY", &proxy),
    ]);
    assert_eq!(version_of(&out), "v4");
    assert_eq!(emulator.requests(Document::Container), 1);
}
