//! One line at start-up saying what the service should know of its logging: why lines carry
//! no ECS fields, when they do not, and when buffering can hold nothing.

use std::sync::Once;

use crate::cache;
use crate::endpoint::Endpoint;

/// Logs, once per process, why lines carry no (or partial) ECS fields: at DEBUG off ECS, at
/// WARN when the endpoint failed or `/task` did, or when a malformed v4 variable was passed
/// over for the v3 one. Also one WARN when [buffering](crate::Builder::with_buffering) is on and the
/// filter lets none of the lines it holds through (`RUST_LOG=info`). Silent when all is
/// well.
///
/// [`init`](crate::init) calls it; call it yourself after installing a stack built with
/// [`layer`](crate::layer).
pub fn log_metadata_status() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Some(why) = Endpoint::from_env()
            .ok()
            .as_ref()
            .and_then(Endpoint::ignored)
        {
            tracing::warn!(target: "tracing_aws_ecs", "{why}");
        }
        log_fetch_outcome();
    });
    crate::buffering::warn_if_filtered_out();
}

fn log_fetch_outcome() {
    let retrying = if cache::recovering() {
        ", retrying in the background"
    } else {
        ""
    };
    match crate::metadata_result() {
        Err(e) if e.is_not_on_ecs() => {
            tracing::debug!(target: "tracing_aws_ecs", "{e}: logging without ECS fields");
        }
        Err(e) => {
            tracing::warn!(target: "tracing_aws_ecs", "ECS metadata unavailable, logging without ECS fields{retrying}: {e}");
        }
        Ok(meta) => {
            if let Some(reason) = meta.task_error() {
                tracing::warn!(
                    target: "tracing_aws_ecs",
                    "ECS task metadata unavailable, lines carry what the container metadata gives{retrying}: {reason}"
                );
            }
            log_delivery_mode(meta);
        }
    }
}

/// At DEBUG, how the awslogs driver delivers this container's lines: in non-blocking mode
/// it drops lines when its buffer is full, and the service never hears of it. The mode is
/// in the metadata only when the task definition sets it; ECS's default has been
/// non-blocking since June 2025, unless the account setting `defaultLogDriverMode` says
/// blocking.
fn log_delivery_mode(meta: &crate::EcsMetadata) {
    let container = meta.container();
    if container.log_driver.as_deref() != Some("awslogs") {
        return;
    }
    let option = |key: &str| container.log_options.get(key).map(String::as_str);
    match option("mode") {
        Some("non-blocking") => tracing::debug!(
            target: "tracing_aws_ecs",
            "awslogs delivers in non-blocking mode (max-buffer-size {}): the driver drops lines \
             when its buffer is full, without a word to the service",
            option("max-buffer-size").unwrap_or("not set: the driver's default")
        ),
        Some(mode) => tracing::debug!(target: "tracing_aws_ecs", "awslogs delivers in {mode} mode"),
        None => tracing::debug!(
            target: "tracing_aws_ecs",
            "awslogs delivery mode not set in the task definition: ECS's default applies \
             (non-blocking since June 2025, which drops lines when the driver's buffer is \
             full, unless the account setting defaultLogDriverMode is blocking)"
        ),
    }
}
