//! The identity derivation on arbitrary ARN-like text in every field that carries an ARN:
//! `Ok` or `Err`, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let payload = serde_json::json!({
        "TaskARN": text,
        "Cluster": text,
        "ContainerARN": text,
        "Labels": {"com.amazonaws.ecs.task-arn": text},
    });
    if let Ok(meta) = tracing_aws_ecs::EcsMetadata::from_values(payload.clone(), Some(payload)) {
        let _ = (meta.cluster_name(), meta.cluster_arn(), meta.task_id(), meta.region(), meta.account_id());
    }
});
