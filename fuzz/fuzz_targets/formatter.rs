//! The formatter on arbitrary strings, in a span, with arbitrary line limits: every event is
//! exactly one line of valid JSON within the limit.
#![no_main]

use std::io;
use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

fuzz_target!(|data: &[u8]| {
    let (limit, rest) = data.split_first().map_or((255, data), |(l, r)| (*l, r));
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\0');
    let (message, a, b, s) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    let max_line = 64 + usize::from(limit) * 8;
    let out = Capture::default();
    let layer = tracing_aws_ecs::builder()
        .with_metadata(tracing_aws_ecs::EcsMetadata::from_json(r#"{"Name":"fuzz"}"#, None).unwrap())
        .with_max_line_bytes(max_line)
        .with_writer(out.clone())
        .layer();
    tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
        let span = tracing::info_span!("s", s = s, a = a, message = message);
        let _entered = span.enter();
        tracing::info!(a = a, b = ?b, n = rest.len(), "{message}");
    });
    let bytes = out.0.lock().unwrap().clone();
    let line = String::from_utf8(bytes).expect("UTF-8");
    assert!(line.ends_with('\n') && line.matches('\n').count() == 1, "one line: {line:?}");
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert!(value.is_object());
    // Over the limit only when even empty values do not fit.
    if line.len() - 1 > max_line {
        assert_eq!(value["truncated"], true, "{line}");
        assert!(value["a"] == "" && value["b"] == "" && value["message"] == "", "{line}");
    }
});
