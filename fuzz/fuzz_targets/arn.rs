//! The ARN parser on arbitrary text: `Ok` or `Err`, never a panic; what parses prints back
//! as it was, and its parts are consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracing_aws_ecs::metadata::Arn;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(arn) = Arn::parse(text) {
        assert_eq!(arn.to_string(), text);
        assert!(arn.resource.starts_with(arn.resource_type()));
        assert!(arn.resource.ends_with(arn.resource_id()));
        let _ = arn.resource_path().count();
    }
    // The identity derivation goes through every ARN shape it meets.
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
