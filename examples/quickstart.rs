//! Quick start: a small service logging enriched JSON lines. Runs anywhere: on ECS it reads
//! the real endpoint; elsewhere it starts the built-in emulator (Fargate scenario) and runs
//! itself again with `ECS_CONTAINER_METADATA_URI_V4` pointing at it.
//!
//! ```text
//! cargo run --example quickstart --features emulator
//! ```
//!
//! Stdout carries only JSON lines; notes go to stderr.

use std::process::{Command, ExitCode};

use tracing::{error, info, info_span, warn};
use tracing_aws_ecs::emulator::{Emulator, Scenario};
use tracing_aws_ecs::endpoint::{V3_VARIABLE, V4_VARIABLE};

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

/// What a service does: one line of set-up, then ordinary `tracing`.
fn service() {
    let _guard = tracing_aws_ecs::init();

    let request = info_span!("request", method = "POST", path = "/orders");
    let _entered = request.enter();
    info!(order_id = 1042, items = 3, total = 59.90, "order placed");

    let worker = std::thread::spawn(|| {
        info!(queue = "emails", "confirmation queued");
    });
    let _ = worker.join();

    warn!(stock_left = 2, sku = "SKU-1138", "stock running low");

    let failure = std::io::Error::new(std::io::ErrorKind::TimedOut, "payment gateway timed out");
    error!(
        error = &failure as &dyn std::error::Error,
        order_id = 1042,
        "charge failed"
    );
}

/// Off ECS: serve the Fargate scenario and run this program again against it. The variable
/// is set for the child only, so this process's environment is never modified.
fn run_on_emulator() -> ExitCode {
    let emulator = match Emulator::start(Scenario::Fargate) {
        Ok(emulator) => emulator,
        Err(e) => {
            eprintln!("quickstart: cannot start the emulator: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (variable, url) = emulator.env_var();
    eprintln!("quickstart: not on ECS, using the emulator's Fargate scenario: {variable}={url}");
    let status =
        std::env::current_exe().and_then(|exe| Command::new(exe).env(variable, url).status());
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("quickstart: cannot run the service: {e}");
            ExitCode::FAILURE
        }
    }
}
