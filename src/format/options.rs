//! The optional keys of a line: where the event was logged, on which thread, in which span,
//! the timestamp's form, and the static fields.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Metadata, Subscriber};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use crate::json::write_json_str;
use crate::time::write_rfc3339;

/// How a line's `timestamp` is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timestamp {
    /// RFC 3339 in UTC with microseconds: `"2026-11-29T03:49:31.123456Z"` (the default).
    #[default]
    Rfc3339Micros,
    /// RFC 3339 in UTC with milliseconds: `"2026-11-29T03:49:31.123Z"`.
    Rfc3339Millis,
    /// Milliseconds since the Unix epoch, as a number: `1795926571123`.
    UnixMillis,
    /// No `timestamp` key: CloudWatch Logs stamps each event when it takes it in.
    None,
}

/// The optional keys, in the order they follow the span fields, and the static fields. The
/// key names are those of `tracing_subscriber::fmt().json()`, so that queries written for it
/// keep working. Set through the [`Builder`](crate::Builder).
#[derive(Clone, Debug)]
pub(crate) struct LineOptions {
    pub(crate) timestamp: Timestamp,
    /// `"target":"orders::db"` (on by default, as in `fmt().json()`).
    pub(crate) target: bool,
    /// `"filename":"src/main.rs"`.
    pub(crate) file: bool,
    /// `"line_number":42`.
    pub(crate) line_number: bool,
    /// `"threadName":"main"` (the thread's id when it has no name).
    pub(crate) thread_names: bool,
    /// `"threadId":"ThreadId(1)"`.
    pub(crate) thread_ids: bool,
    /// `"span":"request"`: the name of the span the event is in.
    pub(crate) current_span: bool,
    /// `"spans":["request","db"]`: the names of the spans it is in, from the root.
    pub(crate) span_list: bool,
    /// Fields written on every line, in order.
    pub(crate) statics: Vec<(String, serde_json::Value)>,
}

impl Default for LineOptions {
    fn default() -> Self {
        LineOptions {
            timestamp: Timestamp::default(),
            target: true,
            file: false,
            line_number: false,
            thread_names: false,
            thread_ids: false,
            current_span: false,
            span_list: false,
            statics: Vec::new(),
        }
    }
}

impl LineOptions {
    /// The keys these options write, which event and span fields must not take.
    pub(super) fn keys(&self) -> impl Iterator<Item = &'static str> + use<> {
        [
            (self.file, "filename"),
            (self.line_number, "line_number"),
            (self.thread_names, "threadName"),
            (self.thread_ids, "threadId"),
            (self.current_span, "span"),
            (self.span_list, "spans"),
        ]
        .into_iter()
        .filter_map(|(on, key)| on.then_some(key))
    }

    /// `{"timestamp":…,` or `{` with no timestamp.
    pub(super) fn write_start(&self, out: &mut String, now: SystemTime) -> fmt::Result {
        match self.timestamp {
            Timestamp::Rfc3339Micros | Timestamp::Rfc3339Millis => {
                let digits = if self.timestamp == Timestamp::Rfc3339Micros {
                    6
                } else {
                    3
                };
                out.push_str("{\"timestamp\":\"");
                write_rfc3339(out, now, digits)?;
                out.push_str("\",");
            }
            Timestamp::UnixMillis => {
                let millis = now
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis();
                write!(out, "{{\"timestamp\":{millis},")?;
            }
            Timestamp::None => out.push('{'),
        }
        Ok(())
    }

    /// The keys after the span fields, for `event` (whose metadata, normalized for `log`
    /// records, is `meta`) in `ctx`.
    pub(super) fn write_keys<S>(
        &self,
        out: &mut String,
        meta: &Metadata<'_>,
        leaf: Option<&SpanRef<'_, S>>,
    ) -> fmt::Result
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        if let (true, Some(file)) = (self.file, meta.file()) {
            out.push_str(",\"filename\":");
            write_json_str(out, file)?;
        }
        if let (true, Some(line)) = (self.line_number, meta.line()) {
            write!(out, ",\"line_number\":{line}")?;
        }
        if self.thread_names || self.thread_ids {
            let thread = std::thread::current();
            if self.thread_names {
                out.push_str(",\"threadName\":");
                match thread.name() {
                    Some(name) => write_json_str(out, name)?,
                    None => write!(out, "\"{:?}\"", thread.id())?,
                }
            }
            if self.thread_ids {
                write!(out, ",\"threadId\":\"{:?}\"", thread.id())?;
            }
        }
        if self.current_span {
            if let Some(span) = leaf {
                out.push_str(",\"span\":");
                write_json_str(out, span.name())?;
            }
        }
        if let (true, Some(leaf)) = (self.span_list, leaf) {
            write_span_list(out, || leaf.scope().map(|span| span.name()))?;
        }
        Ok(())
    }
}

/// `,"spans":[…]` from the root, given the names from the leaf: a fixed array holds the usual
/// depths, so that no line allocates; deeper trees walk the rest again, from the root.
fn write_span_list<I: Iterator<Item = &'static str>>(
    out: &mut String,
    from_leaf: impl Fn() -> I,
) -> fmt::Result {
    const HELD: usize = 32;
    let mut held = [""; HELD];
    let mut depth = 0;
    for name in from_leaf() {
        if depth < HELD {
            held[depth] = name;
        }
        depth += 1;
    }
    out.push_str(",\"spans\":[");
    // Names deeper than the array holds, nearest the root first.
    for (i, skip) in (HELD..depth).rev().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if let Some(name) = from_leaf().nth(skip) {
            write_json_str(out, name)?;
        }
    }
    for (i, name) in held[..depth.min(HELD)].iter().rev().enumerate() {
        if i > 0 || depth > HELD {
            out.push(',');
        }
        write_json_str(out, name)?;
    }
    out.push(']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_lists_run_from_the_root_at_any_depth() {
        for depth in [0, 1, 2, 31, 32, 33, 70] {
            let names: Vec<&'static str> = (0..depth)
                .map(|i| &*Box::leak(format!("s{i}").into_boxed_str()))
                .collect();
            let mut out = String::new();
            // From the leaf: the deepest name first.
            write_span_list(&mut out, || names.iter().rev().copied()).unwrap();
            let expected: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
            assert_eq!(
                out,
                format!(",\"spans\":[{}]", expected.join(",")),
                "{depth}"
            );
        }
    }
}
