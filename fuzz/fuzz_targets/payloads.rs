//! Every payload parser, the figures and the EMF writer on arbitrary bytes: `Ok` or `Err`,
//! never a panic. The input is a container payload, then optionally NUL and a task payload,
//! then optionally NUL and a task stats payload.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;
use tracing_aws_ecs::metadata::{Container, Task};
use tracing_aws_ecs::stats::{ContainerFigures, ContainerStats, TaskFigures, TaskStats};
use tracing_aws_ecs::{EcsMetadata, ExtraFields, FieldScheme, emf};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let container = parts.next().unwrap_or_default();
    let task = parts.next();
    let stats = parts.next().unwrap_or(container);

    let _ = serde_json::from_str::<Container>(container);
    let _ = serde_json::from_str::<Task>(container);
    let _ = serde_json::from_str::<ContainerStats>(stats).map(|s| ContainerFigures::new(&s, None, None, Some(&s)));
    let metadata = EcsMetadata::from_json(container, task);
    let task_typed = task.and_then(|t| serde_json::from_str::<Task>(t).ok());
    if let Ok(stats) = serde_json::from_str::<TaskStats>(stats) {
        let figures = TaskFigures::new(&stats, task_typed.as_ref(), Some(&stats));
        let _ = emf::task_records(&figures, metadata.as_ref().ok(), "Fuzz", UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    }
    if let Ok(metadata) = metadata {
        // Every accessor, and every scheme's rendering of them.
        let _ = (metadata.cluster_arn(), metadata.region(), metadata.task_id(), metadata.service_name());
        for scheme in [FieldScheme::Nested, FieldScheme::FireLens, FieldScheme::OpenTelemetry] {
            let layer = tracing_aws_ecs::builder()
                .with_metadata(metadata.clone())
                .with_scheme(scheme)
                .with_fields(ExtraFields::ALL)
                .with_writer(std::io::sink)
                .layer::<tracing_subscriber::Registry>();
            let _ = layer;
        }
    }
});
