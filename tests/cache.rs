//! `tracing_aws_ecs::metadata()` fetches once per process, for every thread, and does not
//! repeat a fetch that failed for good. Each case runs in a child process (the cache is process-wide):
//! this file re-runs its own `child` test with the endpoint variable set.

use std::process::Command;

use tracing_aws_ecs::emulator::{ALWAYS, Emulator, Fault, Scenario};
use tracing_aws_ecs::endpoint::Document;

const CHILD: &str = "TRACING_AWS_ECS_CACHE_CHILD";

/// Runs `child` in a new process against `emulator`, expecting metadata or not.
fn run_child(emulator: &Emulator, expect: &str) {
    let (var, url) = emulator.env_var();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(var, url)
        .env(CHILD, expect)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}

/// The child half: 16 threads ask for the metadata at once, then 100 times more.
#[test]
fn child() {
    let Ok(expect) = std::env::var(CHILD) else {
        return; // Only meaningful when started by the tests below.
    };
    let addresses: Vec<Option<usize>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| s.spawn(|| tracing_aws_ecs::metadata().map(|m| m as *const _ as usize)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(
        addresses.windows(2).all(|w| w[0] == w[1]),
        "every thread sees the same value"
    );
    for _ in 0..100 {
        assert_eq!(
            tracing_aws_ecs::metadata().map(|m| m as *const _ as usize),
            addresses[0]
        );
    }
    match expect.as_str() {
        "some" => {
            let meta = tracing_aws_ecs::metadata().unwrap();
            assert_eq!(meta.cluster_name(), Some("prod-web"));
            assert!(meta.task().is_some());
        }
        _ => {
            assert!(tracing_aws_ecs::metadata().is_none());
            let err = tracing_aws_ecs::metadata_result().unwrap_err();
            assert_eq!(err.status(), Some(404));
        }
    }
}

#[test]
fn one_fetch_serves_every_thread() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    run_child(&emulator, "some");
    assert_eq!(emulator.requests(Document::Container), 1);
    assert_eq!(emulator.requests(Document::Task), 1);
}

#[test]
fn a_failed_fetch_is_not_repeated() {
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    emulator.inject(Document::Container, Fault::Status(404), ALWAYS);
    run_child(&emulator, "none");
    // One request, however many threads and calls asked: 404 is final.
    assert_eq!(emulator.requests(Document::Container), 1);
}
