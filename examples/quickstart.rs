//! Quick start: runs anywhere. On ECS it reads the real endpoint; elsewhere it starts the
//! built-in emulator (Fargate scenario) and runs itself again with the variable pointing at it.
//!
//! ```text
//! cargo run --example quickstart --features emulator
//! ```

use std::process::{Command, ExitCode};

use tracing_aws_ecs::client::{V3_VARIABLE, V4_VARIABLE};
use tracing_aws_ecs::emulator::{Emulator, Scenario};

fn main() -> ExitCode {
    let on_ecs = [V4_VARIABLE, V3_VARIABLE]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    if !on_ecs {
        return run_on_emulator();
    }
    service();
    ExitCode::SUCCESS
}

/// What a service does: read the cached metadata once, use it anywhere.
fn service() {
    match tracing_aws_ecs::metadata_result() {
        Ok(meta) => println!(
            "{}",
            serde_json::json!({
                "cluster": meta.cluster_name(),
                "task_id": meta.task_id(),
                "family": meta.family(),
                "revision": meta.revision(),
                "container": meta.container_name(),
                "image": meta.image(),
                "region": meta.region(),
                "launch_type": meta.launch_type().map(|l| l.as_str()),
            })
        ),
        Err(e) => eprintln!("no ECS metadata: {e}"),
    }
}

/// Off ECS: serve the Fargate scenario and run this program again against it (the variable
/// is set for the child, so nothing here touches this process's environment).
fn run_on_emulator() -> ExitCode {
    let emulator = match Emulator::start(Scenario::Fargate) {
        Ok(emulator) => emulator,
        Err(e) => {
            eprintln!("cannot start the emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (variable, url) = emulator.env_var();
    eprintln!("not on ECS: using the emulator's Fargate scenario ({variable}={url})");
    let status =
        std::env::current_exe().and_then(|exe| Command::new(exe).env(variable, url).status());
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cannot run the service: {e}");
            ExitCode::FAILURE
        }
    }
}
