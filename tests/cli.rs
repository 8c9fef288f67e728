//! The `ecs-metadata` binary against the emulator: output, exit codes, messages.

use std::process::{Command, Output};

use serde_json::Value;
use tracing_aws_ecs::emulator::{ALWAYS, Emulator, Fault, Scenario};
use tracing_aws_ecs::endpoint::Document;

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ecs-metadata"));
    command
        .args(args)
        .env_remove("ECS_CONTAINER_METADATA_URI_V4")
        .env_remove("ECS_CONTAINER_METADATA_URI");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

const SUMMARY_KEYS: [&str; 18] = [
    "api_version",
    "cluster_name",
    "cluster_arn",
    "task_arn",
    "task_id",
    "family",
    "revision",
    "container_name",
    "image",
    "container_id",
    "region",
    "account_id",
    "partition",
    "launch_type",
    "availability_zone",
    "service_name",
    "log_group",
    "log_stream",
];

#[test]
fn summary_has_exactly_the_documented_keys() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let (var, url) = emulator.env_var();
    let out = run(&[], &[(var, &url)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout_json(&out);
    let keys: Vec<&str> = summary
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = SUMMARY_KEYS.to_vec();
    expected.sort_unstable();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected);
    assert_eq!(summary["api_version"], "v4");
    assert_eq!(summary["cluster_name"], "prod-web");
    assert_eq!(summary["launch_type"], "FARGATE");
    assert_eq!(summary["task_id"], "9c2b1d7e4f6a48b3a1c0d2e3f4a5b6c7");
}

#[test]
fn summary_on_v3_has_nulls_where_unknown() {
    let emulator = Emulator::start(Scenario::Ec2).unwrap();
    let url = emulator.url(tracing_aws_ecs::endpoint::ApiVersion::V3);
    let out = run(&["summary"], &[("ECS_CONTAINER_METADATA_URI", &url)]);
    assert_eq!(out.status.code(), Some(0));
    let summary = stdout_json(&out);
    assert_eq!(summary["api_version"], "v3");
    assert_eq!(summary["launch_type"], Value::Null);
    assert_eq!(summary["cluster_name"], "default");
    assert_eq!(summary.as_object().unwrap().len(), SUMMARY_KEYS.len());
}

#[test]
fn payload_commands_print_json() {
    let emulator = Emulator::start(Scenario::Ec2).unwrap();
    let (var, url) = emulator.env_var();
    for (command, key) in [
        ("container", "DockerId"),
        ("task", "TaskARN"),
        ("task-with-tags", "TaskTags"),
        ("stats", "cpu_stats"),
    ] {
        let out = run(&[command], &[(var, &url)]);
        assert_eq!(out.status.code(), Some(0), "{command}");
        assert!(stdout_json(&out).get(key).is_some(), "{command}");
    }
    let raw = run(&["task-stats", "--raw"], &[(var, &url)]);
    assert_eq!(String::from_utf8_lossy(&raw.stdout).lines().count(), 1);
    assert_eq!(stdout_json(&raw).as_object().unwrap().len(), 3);
}

#[test]
fn exit_codes() {
    // Off ECS: 2, with the reason on stderr and nothing on stdout.
    let out = run(&[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not running on ECS"));
    // Usage errors: 2.
    assert_eq!(run(&["frobnicate"], &[]).status.code(), Some(2));
    assert_eq!(run(&["task", "--bogus"], &[]).status.code(), Some(2));
    assert_eq!(
        run(&["serve", "--scenario", "mars"], &[]).status.code(),
        Some(2)
    );
    // A malformed variable: 1, naming it.
    let out = run(&["task"], &[("ECS_CONTAINER_METADATA_URI_V4", "not a url")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ECS_CONTAINER_METADATA_URI_V4 is malformed")
    );
    // An endpoint error: 1, with the status and body.
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(Document::Task, Fault::Status(404), ALWAYS);
    let (var, url) = emulator.env_var();
    let out = run(&["task"], &[(var, &url)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("404") && stderr.contains("/task"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));
    // Help: 0.
    assert_eq!(run(&["--help"], &[]).status.code(), Some(0));
}

#[test]
fn partial_summary_warns_and_succeeds() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(Document::Task, Fault::Status(500), ALWAYS);
    let (var, url) = emulator.env_var();
    let out = run(&["summary"], &[(var, &url)]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("partial"));
    let summary = stdout_json(&out);
    assert_eq!(summary["family"], "orders-api");
    assert_eq!(summary["launch_type"], Value::Null);
}

#[test]
fn serve_prints_a_working_export_line() {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_ecs-metadata"))
        .args(["serve", "--scenario", "managed-instances"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (var, url) = line
        .trim()
        .strip_prefix("export ")
        .unwrap()
        .split_once('=')
        .unwrap();
    let out = run(&["summary"], &[(var, url)]);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["launch_type"], "MANAGED_INSTANCES");
}

#[test]
fn metrics_prints_figures_keyed_by_container_name() {
    let emulator = Emulator::start(Scenario::Ec2).unwrap();
    let (var, url) = emulator.env_var();
    let out = run(&["metrics"], &[(var, &url)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures = stdout_json(&out);
    assert!(
        (figures["containers"]["worker"]["cpu_percent"]
            .as_f64()
            .unwrap()
            - 16.0)
            .abs()
            < 1e-6
    );
    assert_eq!(
        figures["containers"]["worker"]["memory_limit_bytes"],
        1024 * 1024 * 1024
    );
    assert_eq!(figures["skipped"]["migrate"], "empty");
    assert!(figures["task"]["memory_used_bytes"].as_u64().unwrap() > 0);
}

#[test]
fn metrics_emf_prints_valid_lines() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let (var, url) = emulator.env_var();
    let out = run(&["metrics", "--emf"], &[(var, &url)]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "app, envoy, task");
    assert!(
        lines
            .iter()
            .all(|l| l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "ECS/TaskMetrics")
    );
    assert_eq!(
        run(&["metrics", "--bogus"], &[(var, &url)]).status.code(),
        Some(2)
    );
    assert_eq!(run(&["metrics"], &[]).status.code(), Some(2));
}

#[test]
fn every_command_takes_raw_and_a_deadline() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let (var, url) = emulator.env_var();
    for command in ["summary", "task", "metrics"] {
        let out = run(&[command, "--raw", "--deadline", "5s"], &[(var, &url)]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{command}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout.clone()).unwrap();
        assert_eq!(
            text.lines().count(),
            1,
            "{command} --raw is one line: {text}"
        );
        stdout_json(&out);
    }
}

#[test]
fn the_deadline_bounds_a_stalled_endpoint() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(
        Document::Container,
        Fault::StallBeforeHeaders(std::time::Duration::from_secs(30)),
        ALWAYS,
    );
    let (var, url) = emulator.env_var();
    let started = std::time::Instant::now();
    let out = run(&["container", "--deadline", "300ms"], &[(var, &url)]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("timed out"), "{stderr}");
    // A bound on a hang: the stall lasts 30 s.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
