//! OpenTelemetry (feature `opentelemetry`): the task as a resource, and trace ids on lines.

use std::fmt::{self, Write as _};

use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use tracing::dispatcher::WeakDispatch;

use crate::fields::{DatumValue, ExtraFields, FieldScheme};
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
/// layer traces it. Worked out on a span's first event and kept in its extensions, as hex
/// digits in fixed arrays: nothing is formatted or allocated for it but the extension.
pub(crate) struct TraceIds(Option<Ids>);

struct Ids {
    trace: Hex<32>,
    span: Hex<16>,
    flags: Hex<2>,
}

impl TraceIds {
    pub(crate) fn of(id: &tracing::span::Id, dispatch: &WeakDispatch) -> Self {
        TraceIds(ids_of(id, dispatch))
    }

    /// Writes the ids, if the span is traced; whether it wrote them.
    pub(crate) fn write(&self, out: &mut String) -> bool {
        let Some(ids) = &self.0 else {
            return false;
        };
        let (Some(trace), Some(span), Some(flags)) =
            (ids.trace.as_str(), ids.span.as_str(), ids.flags.as_str())
        else {
            return false;
        };
        out.push_str(",\"trace_id\":\"");
        out.push_str(trace);
        out.push_str("\",\"span_id\":\"");
        out.push_str(span);
        out.push_str("\",\"trace_flags\":\"");
        out.push_str(flags);
        // X-Ray's form of the trace id: version 1, the first 8 digits, the other 24.
        out.push_str("\",\"xray_trace_id\":\"1-");
        out.push_str(&trace[..8]);
        out.push('-');
        out.push_str(&trace[8..]);
        out.push('"');
        true
    }
}

fn ids_of(id: &tracing::span::Id, dispatch: &WeakDispatch) -> Option<Ids> {
    let dispatch = dispatch.upgrade()?;
    let cx = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
    let span = cx.span();
    let context: &SpanContext = span.span_context();
    if !context.is_valid() {
        return None;
    }
    let mut ids = Ids {
        trace: Hex::default(),
        span: Hex::default(),
        flags: Hex::default(),
    };
    // Each writes exactly as many hex digits as it holds (the W3C flags: 01 when sampled).
    write!(ids.trace, "{}", context.trace_id()).ok()?;
    write!(ids.span, "{}", context.span_id()).ok()?;
    write!(ids.flags, "{:02x}", context.trace_flags().to_u8()).ok()?;
    Some(ids)
}

/// A fixed-size buffer for hex digits, filled through `fmt::Write` without allocating.
struct Hex<const N: usize> {
    digits: [u8; N],
    len: usize,
}

impl<const N: usize> Default for Hex<N> {
    fn default() -> Self {
        Hex {
            digits: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> Hex<N> {
    fn as_str(&self) -> Option<&str> {
        (self.len == N)
            .then(|| std::str::from_utf8(&self.digits).ok())
            .flatten()
    }
}

impl<const N: usize> fmt::Write for Hex<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        if end > N || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(fmt::Error);
        }
        self.digits[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}
