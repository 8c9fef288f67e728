//! The README's first command: the quickstart example, off ECS, prints only enriched JSON
//! lines on stdout, one per event, from the main thread and a spawned one.

use std::process::Command;

mod common;

use common::example;
use serde_json::Value;

#[test]
fn quickstart_prints_enriched_json_lines_only() {
    let out = Command::new(example("quickstart"))
        .env_remove("ECS_CONTAINER_METADATA_URI_V4")
        .env_remove("ECS_CONTAINER_METADATA_URI")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let levels: Vec<&str> = lines.iter().map(|l| l["level"].as_str().unwrap()).collect();
    assert_eq!(levels, ["INFO", "INFO", "WARN", "ERROR"]);
    for line in &lines {
        assert_eq!(line["ecs"]["cluster"], "prod-web");
        assert_eq!(line["ecs"]["container_name"], "app");
    }
    assert_eq!(lines[0]["path"], "/orders");
    assert_eq!(lines[0]["order_id"], 1042);
    assert_eq!(lines[1]["queue"], "emails");
    assert_eq!(lines[3]["error"], "payment gateway timed out");
    assert!(String::from_utf8_lossy(&out.stderr).contains("emulator"));
}
