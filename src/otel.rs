//! OpenTelemetry (feature `opentelemetry`): the task as a resource, and trace ids on lines.

use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use tracing::dispatcher::WeakDispatch;

use crate::fields::{DatumValue, ExtraFields, FieldScheme};
use crate::json::hex;
use crate::metadata::EcsMetadata;

impl EcsMetadata {
    /// The resource of this task, with the semantic-convention attributes the
    /// [`FieldScheme::OpenTelemetry`] scheme writes (`cloud.*`, `aws.ecs.*`, `container.*`,
    /// `container.image.repo_digests` for an image pinned by digest), `aws.ecs.container.arn`
    /// and `cloud.resource_id` (the container's ARN, as the JavaScript detector sets it),
    /// `container.image.id` (`ImageID`), and, when the container logs through the awslogs
    /// driver, `aws.log.group.names`, `aws.log.group.arns`, `aws.log.stream.names` and
    /// `aws.log.stream.arns`. `aws.ecs.service.name` is added where the task belongs to a
    /// service, though the semantic conventions do not define it. Built from this metadata: no
    /// request.
    ///
    /// ```
    /// # use tracing_aws_ecs::EcsMetadata;
    /// use opentelemetry::Key;
    ///
    /// let meta = EcsMetadata::from_json(r#"{"Name": "app", "Labels": {
    ///     "com.amazonaws.ecs.task-arn": "arn:aws:ecs:us-east-1:123456789012:task/prod/abc"}}"#, None)?;
    /// let resource = meta.to_resource();
    /// assert_eq!(resource.get(&Key::new("cloud.region")).unwrap().as_str(), "us-east-1");
    /// assert_eq!(resource.get(&Key::new("container.name")).unwrap().as_str(), "app");
    /// # Ok::<(), tracing_aws_ecs::Error>(())
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
    pub fn to_resource(&self) -> Resource {
        Resource::builder_empty()
            .with_attributes(self.resource_attributes())
            .build()
    }

    /// The attributes of [`to_resource`](Self::to_resource), for a resource of your own.
    #[cfg_attr(docsrs, doc(cfg(feature = "opentelemetry")))]
    pub fn resource_attributes(&self) -> Vec<KeyValue> {
        let mut attributes: Vec<KeyValue> = FieldScheme::OpenTelemetry
            .values(self, ExtraFields::ALL)
            .into_iter()
            .map(|(key, value)| {
                let value = match value {
                    DatumValue::Text(text) => Value::from(text.into_owned()),
                    DatumValue::List(items) => Value::Array(Array::String(
                        items
                            .into_iter()
                            .map(|i| StringValue::from(i.into_owned()))
                            .collect(),
                    )),
                };
                KeyValue::new(key, value)
            })
            .collect();
        let container = self.container();
        if let Some(arn) = container.container_arn.as_deref().filter(|a| !a.is_empty()) {
            attributes.push(KeyValue::new("aws.ecs.container.arn", arn.to_owned()));
            // As the JavaScript detector sets it: the container is the resource.
            attributes.push(KeyValue::new("cloud.resource_id", arn.to_owned()));
        }
        if let Some(id) = container.image_id.as_deref().filter(|i| !i.is_empty()) {
            attributes.push(KeyValue::new("container.image.id", id.to_owned()));
        }
        let awslogs = container
            .log_driver
            .as_deref()
            .is_none_or(|d| d == "awslogs");
        if !awslogs {
            return attributes;
        }
        let list =
            |item: &str| Value::Array(Array::String(vec![StringValue::from(item.to_owned())]));
        // The group's own region may differ from the task's.
        let region = container
            .log_options
            .get("awslogs-region")
            .map(String::as_str)
            .or(self.region());
        let logs_arn = |resource: &str| {
            Some(format!(
                "arn:{}:logs:{}:{}:{resource}",
                self.partition()?,
                region?,
                self.account_id()?
            ))
        };
        if let Some(group) = self.log_group() {
            attributes.push(KeyValue::new("aws.log.group.names", list(group)));
            if let Some(arn) = logs_arn(&format!("log-group:{group}:*")) {
                attributes.push(KeyValue::new("aws.log.group.arns", list(&arn)));
            }
        }
        if let Some(stream) = self.log_stream() {
            attributes.push(KeyValue::new("aws.log.stream.names", list(stream)));
            let group = self.log_group();
            if let Some(arn) =
                group.and_then(|g| logs_arn(&format!("log-group:{g}:log-stream:{stream}")))
            {
                attributes.push(KeyValue::new("aws.log.stream.arns", list(&arn)));
            }
        }
        attributes
    }
}

/// A span's trace context as it goes on a line: `,"trace_id":"…","span_id":"…",
/// "trace_flags":"01","xray_trace_id":"1-…-…"`, or nothing when no `tracing-opentelemetry`
/// layer traces it. Worked out on a span's first event and kept in its extensions, written
/// out whole in a fixed array: nothing is formatted or allocated for it per event.
#[derive(Clone, Copy)]
pub(crate) struct TraceIds(Option<[u8; IDS_LEN]>);

/// The pieces of the ids' fragment between the hex digits.
const TRACE_KEY: &str = ",\"trace_id\":\"";
const SPAN_KEY: &str = "\",\"span_id\":\"";
const FLAGS_KEY: &str = "\",\"trace_flags\":\"";
/// X-Ray's form of the trace id: version 1, the first 8 digits, the other 24.
const XRAY_KEY: &str = "\",\"xray_trace_id\":\"1-";
/// `1-` and 8 digits, `-` and 24 digits.
const XRAY_ID_LEN: usize = 35;
const IDS_LEN: usize = TRACE_KEY.len()
    + 32
    + SPAN_KEY.len()
    + 16
    + FLAGS_KEY.len()
    + 2
    + XRAY_KEY.len()
    + 8
    + 1
    + 24
    + 1;

impl TraceIds {
    pub(crate) fn of(id: &tracing::span::Id, dispatch: &WeakDispatch) -> Self {
        TraceIds(ids_of(id, dispatch))
    }

    /// The ids' fragment, if the span is traced.
    pub(crate) fn as_str(&self) -> Option<&str> {
        // Only ASCII was put in it.
        self.0
            .as_ref()
            .and_then(|ids| std::str::from_utf8(ids).ok())
    }

    /// The trace id in X-Ray's form (`1-…-…`), if the span is traced: the fragment's last
    /// value.
    pub(crate) fn xray_trace_id(&self) -> Option<&str> {
        let ids = self.as_str()?;
        ids.get(ids.len() - XRAY_ID_LEN - 1..ids.len() - 1)
    }
}

fn ids_of(id: &tracing::span::Id, dispatch: &WeakDispatch) -> Option<[u8; IDS_LEN]> {
    let dispatch = dispatch.upgrade()?;
    let cx = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
    let span = cx.span();
    let context: &SpanContext = span.span_context();
    if !context.is_valid() {
        return None;
    }
    let mut trace = [0; 32];
    hex(&context.trace_id().to_bytes(), &mut trace);
    let mut span = [0; 16];
    hex(&context.span_id().to_bytes(), &mut span);
    // The W3C flags: 01 when sampled.
    let mut flags = [0; 2];
    hex(&[context.trace_flags().to_u8()], &mut flags);
    let mut ids = [0; IDS_LEN];
    let pieces: [&[u8]; 10] = [
        TRACE_KEY.as_bytes(),
        &trace,
        SPAN_KEY.as_bytes(),
        &span,
        FLAGS_KEY.as_bytes(),
        &flags,
        XRAY_KEY.as_bytes(),
        &trace[..8],
        b"-",
        &trace[8..],
    ];
    let mut at = 0;
    for piece in pieces.into_iter().chain([&b"\""[..]]) {
        ids[at..at + piece.len()].copy_from_slice(piece);
        at += piece.len();
    }
    Some(ids)
}
