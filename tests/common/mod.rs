//! Helpers shared by the formatter tests: a writer that captures lines, and metadata.
#![allow(dead_code)]

use std::io;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tracing_aws_ecs::EcsMetadata;
use tracing_subscriber::fmt::MakeWriter;

/// Collects everything written, for reading back as lines.
#[derive(Clone, Default)]
pub struct Capture(Arc<Mutex<Vec<u8>>>);

impl Capture {
    /// Forgets what was written so far.
    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).expect("output is UTF-8")
    }

    /// Every line, parsed; panics on a line that is not one JSON object.
    pub fn lines(&self) -> Vec<Value> {
        let text = self.text();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "output ends with a newline"
        );
        text.lines()
            .map(|line| {
                let value: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
                assert!(value.is_object(), "{line}");
                assert_no_duplicate_keys(line);
                value
            })
            .collect()
    }

    pub fn only_line(&self) -> Value {
        let mut lines = self.lines();
        assert_eq!(lines.len(), 1, "{}", self.text());
        lines.remove(0)
    }
}

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

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// A capture behind a global subscriber that `install` sets up once per test binary (as
/// `init()` would), for tests that need one: `tracing` drops an event logged inside
/// another's dispatch while a scoped subscriber is in use. The tests take turns (hold the
/// guard), each starting from an empty capture.
pub fn global_capture(
    install: impl FnOnce(&Capture),
) -> (std::sync::MutexGuard<'static, ()>, &'static Capture) {
    static SERIAL: Mutex<()> = Mutex::new(());
    static OUTPUT: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let output = OUTPUT.get_or_init(|| {
        let output = Capture::default();
        install(&output);
        output
    });
    output.clear();
    (serial, output)
}

/// Fails if a JSON object on the line repeats a key at any depth (serde_json keeps the last).
pub fn assert_no_duplicate_keys(line: &str) {
    struct Check;
    impl<'de> serde::de::Visitor<'de> for Check {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !seen.insert(key.clone()) {
                    return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
                }
                map.next_value::<Nested>()?;
            }
            Ok(())
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element::<Nested>()?.is_some() {}
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
    }
    struct Nested;
    impl<'de> serde::Deserialize<'de> for Nested {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Check).map(|()| Nested)
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    serde::Deserializer::deserialize_any(&mut de, Check).unwrap_or_else(|e| panic!("{e}: {line}"));
}

pub fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The Fargate documentation task, seen from its `fargate-app` container.
pub fn fargate_metadata() -> EcsMetadata {
    let task = fixture("fargate-v4-task.json");
    let value: Value = serde_json::from_str(&task).unwrap();
    EcsMetadata::from_values(value["Containers"][1].clone(), Some(value)).unwrap()
}

/// The EC2 documentation container and task (short cluster name).
pub fn ec2_metadata() -> EcsMetadata {
    EcsMetadata::from_json(
        &fixture("ec2-v4-container.json"),
        Some(&fixture("ec2-v4-task.json")),
    )
    .unwrap()
}

/// Checks one line against the EMF specification's structure: `_aws.Timestamp` (ms) and
/// `_aws.CloudWatchMetrics`, each directive with a namespace, at most 30 dimensions per set
/// and 100 metrics, every referenced member present at the top level with the right type.
/// Returns the metric names.
pub fn assert_emf(line: &Value) -> Vec<String> {
    const UNITS: [&str; 27] = [
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    ];
    let root = line.as_object().expect("an object");
    let aws = root["_aws"].as_object().expect("_aws is an object");
    let millis = aws["Timestamp"].as_u64().expect("Timestamp in ms");
    assert!(
        millis > 1_600_000_000_000,
        "Timestamp is in milliseconds: {millis}"
    );
    let directives = aws["CloudWatchMetrics"]
        .as_array()
        .expect("CloudWatchMetrics is an array");
    assert!(!directives.is_empty());
    let mut names = Vec::new();
    for directive in directives {
        let namespace = directive["Namespace"].as_str().expect("Namespace");
        assert!(!namespace.trim().is_empty() && namespace.chars().count() <= 1024);
        for set in directive["Dimensions"].as_array().expect("Dimensions") {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30);
            for key in set {
                let key = key.as_str().expect("dimension keys are strings");
                let value = root[key]
                    .as_str()
                    .unwrap_or_else(|| panic!("dimension {key} is a string member"));
                assert!(!value.is_empty() && value.chars().count() <= 1024);
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics");
        assert!(!metrics.is_empty() && metrics.len() <= 100);
        for metric in metrics {
            let name = metric["Name"].as_str().expect("Name");
            assert!(!name.is_empty() && name.chars().count() <= 1024);
            if let Some(unit) = metric.get("Unit") {
                assert!(UNITS.contains(&unit.as_str().unwrap()), "unit {unit}");
            }
            // A number, or an array of 1 to 100 numbers (one value per observation).
            let values = &root[name];
            assert!(
                values.is_number()
                    || values.as_array().is_some_and(|a| {
                        !a.is_empty() && a.len() <= 100 && a.iter().all(Value::is_number)
                    }),
                "metric {name} is a number member, or an array of at most 100"
            );
            names.push(name.to_owned());
        }
    }
    names
}

/// A writer into memory that refuses every write whose bytes hold `word`: with an error, or
/// with a panic the first time (then with an error).
#[derive(Clone)]
pub struct Refusing {
    pub out: Capture,
    word: &'static str,
    panics: bool,
    refused: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Refusing {
    /// Fails each write that holds `word`.
    pub fn failing(word: &'static str) -> Self {
        Refusing {
            out: Capture::default(),
            word,
            panics: false,
            refused: std::sync::Arc::default(),
        }
    }

    /// Panics on the first write that holds `word`, fails the others.
    pub fn panicking(word: &'static str) -> Self {
        Refusing {
            panics: true,
            ..Self::failing(word)
        }
    }
}

impl io::Write for Refusing {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf
            .windows(self.word.len())
            .any(|w| w == self.word.as_bytes())
        {
            let first = self
                .refused
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                == 0;
            if self.panics && first {
                panic!("the writer broke");
            }
            return Err(io::Error::other("refused"));
        }
        self.out.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Refusing {
    type Writer = Refusing;

    fn make_writer(&'a self) -> Refusing {
        self.clone()
    }
}

/// A real pipe into `cat` (as a container's stdout is a pipe the runtime drains), written
/// one locked line at a time as `io::stdout()` is.
pub struct Pipe {
    child: std::process::Child,
    stdin: Option<std::sync::Arc<Mutex<std::process::ChildStdin>>>,
}

impl Pipe {
    /// A pipe `cat` drains into nowhere.
    pub fn drained() -> Self {
        Self::spawn(std::process::Stdio::null()).0
    }

    /// A pipe `cat` copies back to the caller, through the returned reader.
    pub fn echoed() -> (Self, std::process::ChildStdout) {
        let (pipe, output) = Self::spawn(std::process::Stdio::piped());
        (pipe, output.expect("cat's stdout"))
    }

    fn spawn(output: std::process::Stdio) -> (Self, Option<std::process::ChildStdout>) {
        let mut child = std::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .stdout(output)
            .spawn()
            .expect("cat drains the pipe");
        let stdin = child
            .stdin
            .take()
            .map(|s| std::sync::Arc::new(Mutex::new(s)));
        let stdout = child.stdout.take();
        (Pipe { child, stdin }, stdout)
    }

    pub fn writer(&self) -> PipeWriter {
        PipeWriter(std::sync::Arc::clone(self.stdin.as_ref().expect("open")))
    }

    /// Closes this end (once every writer is gone too) and waits for `cat` to finish.
    pub fn close(mut self) {
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        if self.stdin.is_some() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(Clone)]
pub struct PipeWriter(std::sync::Arc<Mutex<std::process::ChildStdin>>);

pub struct PipeGuard<'a>(std::sync::MutexGuard<'a, std::process::ChildStdin>);

impl io::Write for PipeGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for PipeWriter {
    type Writer = PipeGuard<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        PipeGuard(self.0.lock().unwrap())
    }
}

/// Runs this test binary's `child` test again in a new process (for what is process-wide:
/// the global subscriber, the metadata cache), with `case` in the variable `case_var`, no
/// endpoint variable unless `env` sets one, and `RUST_LOG` unset. Returns the JSON lines the
/// child wrote on stdout (libtest's own text is skipped) and its whole stdout.
pub fn run_child(case_var: &str, case: &str, env: &[(&str, &str)]) -> (Vec<Value>, String) {
    let mut command = child_command(case_var, case);
    command.envs(env.iter().copied());
    let out = command.output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (json_lines(&stdout), stdout)
}

/// This test binary's `child` test as a command, with `case` in `case_var`, no endpoint
/// variable and `RUST_LOG` unset.
pub fn child_command(case_var: &str, case: &str) -> std::process::Command {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(case_var, case)
        .env_remove("RUST_LOG")
        .env_remove("ECS_CONTAINER_METADATA_URI_V4")
        .env_remove("ECS_CONTAINER_METADATA_URI");
    command
}

/// The JSON lines of a child's stdout (libtest writes "test child ... " just before the
/// first line: cut off).
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| l.find(r#"{""#).map(|at| &l[at..]))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The line whose message is `message`.
pub fn by_message<'a>(lines: &'a [Value], message: &str) -> &'a Value {
    lines
        .iter()
        .find(|l| l["message"] == message)
        .unwrap_or_else(|| panic!("no line {message:?} in {lines:#?}"))
}

/// A callsite made at run time, so that field names can be anything: `names`, with
/// `target`, at INFO (leaked: one per call).
pub fn dynamic_callsite(
    names: &'static [&'static str],
    target: &'static str,
    kind: tracing::metadata::Kind,
) -> &'static tracing::Metadata<'static> {
    use tracing::callsite::{Callsite, Identifier};

    struct Dynamic(once_cell::sync::OnceCell<tracing::Metadata<'static>>);

    impl Callsite for Dynamic {
        fn set_interest(&self, _: tracing::subscriber::Interest) {}

        fn metadata(&self) -> &tracing::Metadata<'_> {
            self.0.get().expect("set at creation")
        }
    }

    let site: &'static Dynamic = Box::leak(Box::new(Dynamic(once_cell::sync::OnceCell::new())));
    let meta = tracing::Metadata::new(
        "dynamic",
        target,
        tracing::Level::INFO,
        None,
        None,
        None,
        tracing::field::FieldSet::new(names, Identifier(site)),
        kind,
    );
    let _ = site.0.set(meta);
    tracing::callsite::register(site);
    site.metadata()
}

/// An example built by `cargo test` (next to the test binaries' `deps` folder).
pub fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("examples");
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} not built", path.display());
    path
}

/// Request metrics' `Requests` and `Errors` per (Route, Method), summed over the EMF lines
/// among `lines` of `namespace` (any namespace when `None`), each checked against the EMF
/// rules.
pub fn request_counts(
    lines: &[Value],
    namespace: Option<&str>,
) -> std::collections::BTreeMap<(String, String), (u64, u64)> {
    let mut counts = std::collections::BTreeMap::<(String, String), (u64, u64)>::new();
    let of_namespace = |line: &Value| {
        namespace.is_none_or(|ns| line["_aws"]["CloudWatchMetrics"][0]["Namespace"] == ns)
    };
    for line in lines
        .iter()
        .filter(|l| l.get("Route").is_some() && l.get("_aws").is_some() && of_namespace(l))
    {
        assert_emf(line);
        let key = (
            line["Route"].as_str().unwrap().to_owned(),
            line["Method"].as_str().unwrap().to_owned(),
        );
        let entry = counts.entry(key).or_default();
        entry.0 += line["Requests"].as_u64().unwrap_or(0);
        entry.1 += line["Errors"].as_u64().unwrap_or(0);
    }
    counts
}

/// A stream of `items`, ready at once.
pub fn stream_of<T: Unpin>(items: Vec<T>) -> impl futures_core::Stream<Item = T> {
    struct Iter<T>(std::vec::IntoIter<T>);
    impl<T: Unpin> futures_core::Stream for Iter<T> {
        type Item = T;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<T>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Iter(items.into_iter())
}
