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
        }
    }
}
