//! Endpoint discovery and the HTTP client: timeouts, an overall deadline, retries, a body cap.

use std::hash::BuildHasher;
use std::io::Read;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::error::Error;
use crate::metadata::{Container, EcsMetadata, Task, parse_json, parse_object};
use crate::stats::{ContainerStats, TaskStats};

/// The variable ECS sets to the v4 endpoint (Fargate PV ≥ 1.4, EC2 agent ≥ 1.39, Managed Instances).
pub const V4_VARIABLE: &str = "ECS_CONTAINER_METADATA_URI_V4";
/// The variable ECS sets to the v3 endpoint (EC2 agent ≥ 1.21, older Fargate).
pub const V3_VARIABLE: &str = "ECS_CONTAINER_METADATA_URI";

/// The default time one call may take, retries included.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);
/// The default cap on a response body: ample for a task of ten containers' stats.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// How much of an error response's body is read to report it.
const ERROR_BODY_BYTES: u64 = 4096;
/// How much of it is kept in the error.
const ERROR_BODY_SHOWN: usize = 512;
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_CAP: Duration = Duration::from_millis(400);

/// The version of the metadata endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiVersion {
    /// v3 (`ECS_CONTAINER_METADATA_URI`): no `LaunchType`, `LogOptions` or `ContainerARN`.
    V3,
    /// v4 (`ECS_CONTAINER_METADATA_URI_V4`).
    V4,
}

impl ApiVersion {
    /// `"v3"` or `"v4"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V3 => "v3",
            ApiVersion::V4 => "v4",
        }
    }

    /// The environment variable that carries this version's endpoint.
    pub fn variable(self) -> &'static str {
        match self {
            ApiVersion::V3 => V3_VARIABLE,
            ApiVersion::V4 => V4_VARIABLE,
        }
    }
}

/// A validated endpoint base URL, without a trailing slash.
///
/// ```
/// use tracing_aws_ecs::{ApiVersion, Endpoint};
///
/// let endpoint = Endpoint::from_lookup(|var| match var {
///     "ECS_CONTAINER_METADATA_URI_V4" => Some(" http://169.254.170.2/v4/abc/ ".into()),
///     _ => None,
/// })?;
/// assert_eq!(endpoint.url(), "http://169.254.170.2/v4/abc");
/// assert_eq!(endpoint.version(), ApiVersion::V4);
/// # Ok::<(), tracing_aws_ecs::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    url: String,
    version: ApiVersion,
    variable: Option<&'static str>,
    ignored: Option<String>,
}

impl Endpoint {
    /// Reads `ECS_CONTAINER_METADATA_URI_V4`, else `ECS_CONTAINER_METADATA_URI`.
    ///
    /// [`Error::NotOnEcs`] when neither is set (or both are empty); [`Error::InvalidEndpoint`]
    /// naming the variable when the one to use is malformed. A malformed v4 value next to a
    /// valid v3 one falls back to v3, and [`ignored`](Self::ignored) says why.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let read = |version: ApiVersion| {
            let value = lookup(version.variable())?;
            let trimmed = value.trim();
            if trimmed.is_empty() {
                return None;
            }
            Some(match normalise(trimmed) {
                Ok(url) => Ok(Endpoint {
                    url,
                    version,
                    variable: Some(version.variable()),
                    ignored: None,
                }),
                Err(reason) => Err(Error::InvalidEndpoint {
                    variable: Some(version.variable()),
                    value: value.clone(),
                    reason,
                }),
            })
        };
        match (read(ApiVersion::V4), read(ApiVersion::V3)) {
            (Some(Ok(v4)), _) => Ok(v4),
            (Some(Err(v4_error)), Some(Ok(mut v3))) => {
                v3.ignored = Some(format!("{v4_error}; using {V3_VARIABLE}"));
                Ok(v3)
            }
            (Some(Err(v4_error)), _) => Err(v4_error),
            (None, Some(v3)) => v3,
            (None, None) => Err(Error::NotOnEcs),
        }
    }

    /// Validates a base URL given directly; a `/v3/` path segment means v3, anything else v4.
    pub fn parse(url: &str) -> Result<Self, Error> {
        let url = normalise(url.trim()).map_err(|reason| Error::InvalidEndpoint {
            variable: None,
            value: url.to_owned(),
            reason,
        })?;
        let path = url["http://".len()..]
            .split_once('/')
            .map_or("", |(_, p)| p);
        let version = if path.split('/').any(|segment| segment == "v3") {
            ApiVersion::V3
        } else {
            ApiVersion::V4
        };
        Ok(Endpoint {
            url,
            version,
            variable: None,
            ignored: None,
        })
    }

    /// The base URL, without a trailing slash.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The endpoint version.
    pub fn version(&self) -> ApiVersion {
        self.version
    }

    /// The environment variable it came from, if any.
    pub fn variable(&self) -> Option<&'static str> {
        self.variable
    }

    /// Why the v4 variable was passed over for the v3 one, if it was.
    pub fn ignored(&self) -> Option<&str> {
        self.ignored.as_deref()
    }

    /// The URL of `path` (`""`, `"/task"`, …) under the base.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

/// Checks an `http://host[:port]/path` URL and drops trailing slashes (a double slash gets a
/// redirect from the agent).
fn normalise(value: &str) -> Result<String, &'static str> {
    let Some((scheme, rest)) = value.split_once("://") else {
        return Err("not a URL: expected http://host/path");
    };
    if scheme.eq_ignore_ascii_case("https") {
        return Err("the metadata endpoint is plain http://, not https://");
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err("not an http:// URL");
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("contains whitespace or control characters");
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if path.contains(['?', '#']) {
        return Err("has a query or fragment");
    }
    if authority.contains('@') {
        return Err("has user info");
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or("unclosed IPv6 bracket")?;
            if host.is_empty()
                || !host
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            {
                return Err("bad IPv6 host");
            }
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err("no host");
    }
    if !authority.starts_with('[')
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return Err("bad host");
    }
    if port.is_some_and(|p| p.parse::<u16>().map_or(true, |p| p == 0)) {
        return Err("bad port");
    }
    Ok(format!("http://{authority}{}", path.trim_end_matches('/')))
}

/// A client for the task metadata endpoint.
///
/// Each call retries connection errors, timeouts, 5xx and 429 with capped, jittered
/// exponential backoff for as long as its deadline leaves time; 404 and other 4xx are final.
/// A request may use all the time the deadline has left, so a slow endpoint that does answer
/// within it succeeds. Proxy
/// variables are ignored: the endpoint is link-local. Bodies over the cap are an error.
///
/// ```no_run
/// use std::time::Duration;
/// use tracing_aws_ecs::MetadataClient;
///
/// let client = MetadataClient::from_env()?.with_deadline(Duration::from_secs(5));
/// let task = client.task()?;
/// println!("{:?} {:?}", task.family, task.revision);
/// # Ok::<(), tracing_aws_ecs::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct MetadataClient {
    endpoint: Endpoint,
    agent: ureq::Agent,
    request_timeout: Option<Duration>,
    deadline: Duration,
    max_body_bytes: u64,
    max_attempts: u32,
}

impl MetadataClient {
    /// A client for the endpoint named by the environment ([`Endpoint::from_env`]).
    pub fn from_env() -> Result<Self, Error> {
        Ok(Self::for_endpoint(Endpoint::from_env()?))
    }

    /// A client for `base_url` (see [`Endpoint::parse`]).
    pub fn new(base_url: &str) -> Result<Self, Error> {
        Ok(Self::for_endpoint(Endpoint::parse(base_url)?))
    }

    /// A client for an endpoint already validated.
    pub fn for_endpoint(endpoint: Endpoint) -> Self {
        let config = ureq::Agent::config_builder()
            // HTTP_PROXY must not capture a link-local endpoint.
            .proxy(None)
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("tracing-aws-ecs/", env!("CARGO_PKG_VERSION")))
            .build();
        MetadataClient {
            endpoint,
            agent: ureq::Agent::new_with_config(config),
            request_timeout: None,
            deadline: DEFAULT_DEADLINE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_attempts: u32::MAX,
        }
    }

    /// The longest one request may take, body included, so that a stalled request leaves
    /// time for another (default: whatever the deadline has left).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// The time one call may take, retries included (default 2 s).
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The largest body accepted, in bytes (default 1 MiB).
    pub fn with_max_body_bytes(mut self, bytes: u64) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// How many requests one call may make at most (default: as many as the deadline allows;
    /// at least 1).
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The endpoint this client reads.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The overall deadline of one call.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// This container's metadata (the endpoint's base path).
    pub fn container(&self) -> Result<Container, Error> {
        self.typed("", "container metadata").map(|(typed, _)| typed)
    }

    /// This container's metadata, as sent.
    pub fn container_raw(&self) -> Result<Value, Error> {
        self.raw("")
    }

    /// The task's metadata (`/task`).
    pub fn task(&self) -> Result<Task, Error> {
        self.typed("/task", "task metadata").map(|(typed, _)| typed)
    }

    /// The task's metadata, as sent.
    pub fn task_raw(&self) -> Result<Value, Error> {
        self.raw("/task")
    }

    /// The task's metadata with its tags (`/taskWithTags`; EC2 only).
    pub fn task_with_tags(&self) -> Result<Task, Error> {
        self.typed("/taskWithTags", "task metadata")
            .map(|(typed, _)| typed)
    }

    /// The task's metadata with its tags, as sent.
    pub fn task_with_tags_raw(&self) -> Result<Value, Error> {
        self.raw("/taskWithTags")
    }

    /// This container's stats (`/stats`). Not cached: each call asks the endpoint.
    pub fn stats(&self) -> Result<ContainerStats, Error> {
        self.typed("/stats", "container stats")
            .map(|(typed, _)| typed)
    }

    /// This container's stats, as sent.
    pub fn stats_raw(&self) -> Result<Value, Error> {
        self.raw("/stats")
    }

    /// Every container's stats (`/task/stats`). Not cached.
    pub fn task_stats(&self) -> Result<TaskStats, Error> {
        self.typed("/task/stats", "task stats")
            .map(|(typed, _)| typed)
    }

    /// Every container's stats, as sent.
    pub fn task_stats_raw(&self) -> Result<Value, Error> {
        self.raw("/task/stats")
    }

    /// The container metadata and the task metadata, within one deadline, requested at the
    /// same time so that the call costs one round trip. A failed `/task` leaves
    /// [`EcsMetadata::task`] empty and its reason in [`EcsMetadata::task_error`]; a failed
    /// container request is an error.
    pub fn fetch_metadata(&self) -> Result<EcsMetadata, Error> {
        let deadline = Instant::now() + self.deadline;
        let (container, task) = std::thread::scope(|scope| {
            let task = std::thread::Builder::new()
                .name("ecs-task-fetch".into())
                .spawn_scoped(scope, || self.task_document(deadline));
            let container = self.get_json("", deadline);
            let task = match task {
                // The request never panics; a panic would only lose the task metadata.
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|_| Err(Error::payload(None, "the /task request panicked"))),
                // No thread to be had: one request after the other.
                Err(_) => self.task_document(deadline),
            };
            (container, task)
        });
        self.assemble(container?, task)
    }

    /// The `/task` document, raw and typed.
    pub(crate) fn task_document(&self, deadline: Instant) -> Result<(Task, Value), Error> {
        let url = self.endpoint.join("/task");
        self.get_json("/task", deadline)
            .and_then(|value| parse_object::<Task>(value, "task metadata", Some(&url)))
    }

    /// The container document, raw.
    pub(crate) fn container_document(&self, deadline: Instant) -> Result<Value, Error> {
        self.get_json("", deadline)
    }

    /// Metadata from a container document and the outcome of the `/task` request.
    pub(crate) fn assemble(
        &self,
        container: Value,
        task: Result<(Task, Value), Error>,
    ) -> Result<EcsMetadata, Error> {
        let (task, task_error) = match task {
            Ok(task) => (Some(task), None),
            Err(e) => (None, Some(e)),
        };
        EcsMetadata::assemble(
            Some(self.endpoint.version),
            container,
            task,
            task_error,
            Some(&self.endpoint.url),
        )
    }

    fn raw(&self, path: &str) -> Result<Value, Error> {
        self.get_json(path, Instant::now() + self.deadline)
    }

    fn typed<T: for<'de> Deserialize<'de>>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<(T, Value), Error> {
        let value = self.raw(path)?;
        parse_object(value, what, Some(&self.endpoint.join(path)))
    }

    fn get_json(&self, path: &str, deadline: Instant) -> Result<Value, Error> {
        let url = self.endpoint.join(path);
        let body = self.get(&url, deadline)?;
        parse_json(&body, Some(&url))
    }

    /// GET with retries until `deadline`.
    fn get(&self, url: &str, deadline: Instant) -> Result<Vec<u8>, Error> {
        let started = Instant::now();
        let finish = |error: Error, attempts: u32| match error {
            Error::Timeout { url, .. } => Error::Timeout {
                url,
                after: started.elapsed(),
                attempts,
            },
            other => other.with_attempts(attempts),
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                let timeout = Error::Timeout {
                    url: url.to_owned(),
                    after: Duration::ZERO,
                    attempts: 0,
                };
                return Err(finish(timeout, attempt - 1));
            }
            let timeout = self.request_timeout.map_or(remaining, |t| t.min(remaining));
            let error = match self.get_once(url, timeout) {
                Ok(body) => return Ok(body),
                Err(error) => error,
            };
            if !error.is_transient() || attempt >= self.max_attempts {
                return Err(finish(error, attempt));
            }
            let pause = backoff(attempt);
            if Instant::now() + pause >= deadline {
                return Err(finish(error, attempt));
            }
            std::thread::sleep(pause);
        }
    }

    fn get_once(&self, url: &str, timeout: Duration) -> Result<Vec<u8>, Error> {
        let transport = |error: ureq::Error| match error {
            ureq::Error::Timeout(_) => Error::Timeout {
                url: url.to_owned(),
                after: timeout,
                attempts: 1,
            },
            ureq::Error::BodyExceedsLimit(limit) => Error::BodyTooLarge {
                url: url.to_owned(),
                limit,
            },
            other => Error::Transport {
                url: url.to_owned(),
                message: other.to_string(),
                attempts: 1,
            },
        };
        let mut response = self
            .agent
            .get(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map_err(transport)?;
        let status = response.status().as_u16();
        if status != 200 {
            let mut body = Vec::new();
            // The status is the error; a body that cannot be read only loses the detail.
            let _ = response
                .body_mut()
                .as_reader()
                .take(ERROR_BODY_BYTES)
                .read_to_end(&mut body);
            return Err(Error::Status {
                url: url.to_owned(),
                status,
                body: describe_error_body(&body),
                attempts: 1,
            });
        }
        response
            .body_mut()
            .with_config()
            .limit(self.max_body_bytes)
            .read_to_vec()
            .map_err(transport)
    }
}

/// The agent's error bodies are JSON strings (`"Unable to get …"`); 429 is plain text.
fn describe_error_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = match serde_json::from_str::<Value>(&text) {
        Ok(Value::String(s)) => s,
        _ => text.into_owned(),
    };
    let text = text.trim();
    match text.char_indices().nth(ERROR_BODY_SHOWN) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// Exponential backoff from 25 ms capped at 400 ms, each pause drawn from its upper half.
fn backoff(attempt: u32) -> Duration {
    jitter(
        BACKOFF_BASE
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(BACKOFF_CAP),
    )
}

/// A pause drawn at random from the upper half of `full`, so that many tasks started
/// together do not retry in step.
pub(crate) fn jitter(full: Duration) -> Duration {
    // A per-process random key hashed with the clock: jitter without a dependency.
    let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
    let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
    full.mul_f64(0.5 + fraction / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn discovery_prefers_v4_then_v3() {
        let both = [
            (V4_VARIABLE, "http://169.254.170.2/v4/a"),
            (V3_VARIABLE, "http://169.254.170.2/v3/a"),
        ];
        assert_eq!(
            Endpoint::from_lookup(env(&both)).unwrap().version(),
            ApiVersion::V4
        );
        let v3 = [(V3_VARIABLE, "http://169.254.170.2/v3/a/")];
        let endpoint = Endpoint::from_lookup(env(&v3)).unwrap();
        assert_eq!(
            (endpoint.version(), endpoint.url()),
            (ApiVersion::V3, "http://169.254.170.2/v3/a")
        );
        assert!(Endpoint::from_lookup(env(&[])).unwrap_err().is_not_on_ecs());
        assert!(
            Endpoint::from_lookup(env(&[(V4_VARIABLE, "  ")]))
                .unwrap_err()
                .is_not_on_ecs()
        );
    }

    #[test]
    fn malformed_values_name_the_variable() {
        let err = Endpoint::from_lookup(env(&[(V4_VARIABLE, "169.254.170.2/v4/a")])).unwrap_err();
        assert!(err.to_string().contains(V4_VARIABLE), "{err}");
        let err = Endpoint::from_lookup(env(&[(V3_VARIABLE, "https://x/v3")])).unwrap_err();
        assert!(matches!(
            err,
            Error::InvalidEndpoint {
                variable: Some(V3_VARIABLE),
                ..
            }
        ));
        let fallback = Endpoint::from_lookup(env(&[
            (V4_VARIABLE, "http://"),
            (V3_VARIABLE, "http://h/v3/x"),
        ]))
        .unwrap();
        assert_eq!(fallback.version(), ApiVersion::V3);
        assert!(fallback.ignored().unwrap().contains(V4_VARIABLE));
    }

    #[test]
    fn url_validation() {
        for good in [
            "http://169.254.170.2/v4/x",
            "HTTP://h:8080",
            "http://[::1]:80/v4/a",
            "http://a-b.c_d/",
        ] {
            assert!(normalise(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "http://",
            "http:///v4",
            "ftp://h/",
            "http://h:0/",
            "http://h:99999/",
            "http://u@h/",
            "http://h/a b",
            "http://h/?q",
            "http://h/#f",
            "http://[zz]/",
            "http://[::1/",
            "http://h\n/",
        ] {
            assert!(normalise(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Endpoint::parse("http://h/v3/id").unwrap().version(),
            ApiVersion::V3
        );
        assert_eq!(
            Endpoint::parse("http://h/v4/id//").unwrap().url(),
            "http://h/v4/id"
        );
    }

    #[test]
    fn error_bodies_are_decoded_and_cut() {
        assert_eq!(
            describe_error_body(br#""Unable to get stats""#),
            "Unable to get stats"
        );
        assert_eq!(
            describe_error_body(b"You have reached maximum request limit.\n"),
            "You have reached maximum request limit."
        );
        assert_eq!(
            describe_error_body(&[b'x'; 2000]).chars().count(),
            ERROR_BODY_SHOWN + 1
        );
        assert_eq!(describe_error_body(&[0xff, 0xfe]), "\u{fffd}\u{fffd}");
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        for attempt in 1..40 {
            let pause = backoff(attempt);
            assert!(
                pause <= BACKOFF_CAP && pause >= BACKOFF_BASE / 2,
                "{attempt}: {pause:?}"
            );
        }
    }
}
