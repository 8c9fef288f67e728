//! The HTTP client for the metadata endpoint: an overall deadline, retries, a body cap.

use std::io::Read;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::endpoint::{Document, Endpoint};
use crate::error::Error;
use crate::metadata::{Container, EcsMetadata, Task, parse_json, parse_object};
use crate::stats::{ContainerStats, TaskStats};
use crate::thread_flag::ThreadFlag;

/// The default time one call may take, retries included.
pub(crate) const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);
/// The default cap on a response body: ample for a task of ten containers' stats.
pub(crate) const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;

/// How much of an error response's body is read to report it.
const ERROR_BODY_BYTES: u64 = 4096;
/// How much of it is kept in the error.
const ERROR_BODY_SHOWN: usize = 512;
const BACKOFF_BASE: Duration = Duration::from_millis(25);
const BACKOFF_CAP: Duration = Duration::from_millis(400);
/// The least time left worth starting another request in.
const MIN_ATTEMPT: Duration = Duration::from_millis(50);

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
        self.typed(Document::Container)
    }

    /// The task's metadata (`/task`).
    pub fn task(&self) -> Result<Task, Error> {
        self.typed(Document::Task)
    }

    /// The task's metadata with its tags (`/taskWithTags`; EC2 only).
    pub fn task_with_tags(&self) -> Result<Task, Error> {
        self.typed(Document::TaskWithTags)
    }

    /// This container's stats (`/stats`). Not cached: each call asks the endpoint.
    pub fn stats(&self) -> Result<ContainerStats, Error> {
        self.typed(Document::Stats)
    }

    /// Every container's stats (`/task/stats`). Not cached.
    pub fn task_stats(&self) -> Result<TaskStats, Error> {
        self.typed(Document::TaskStats)
    }

    /// A document as the endpoint sent it: any JSON value.
    ///
    /// ```no_run
    /// use tracing_aws_ecs::MetadataClient;
    /// use tracing_aws_ecs::endpoint::Document;
    ///
    /// let task = MetadataClient::from_env()?.raw(Document::Task)?;
    /// println!("{}", task["TaskARN"]);
    /// # Ok::<(), tracing_aws_ecs::Error>(())
    /// ```
    pub fn raw(&self, path: Document) -> Result<Value, Error> {
        self.get_json(path, Instant::now() + self.deadline)
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
            let container = self.container_document(deadline);
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
        let url = self.endpoint.join(Document::Task.suffix());
        self.get_json(Document::Task, deadline)
            .and_then(|value| parse_object::<Task>(value, Document::Task.describe(), Some(&url)))
    }

    /// The container document, raw.
    pub(crate) fn container_document(&self, deadline: Instant) -> Result<Value, Error> {
        self.get_json(Document::Container, deadline)
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
            Some(self.endpoint.version()),
            container,
            task,
            task_error,
            Some(self.endpoint.url()),
        )
    }

    fn typed<T: for<'de> Deserialize<'de>>(&self, path: Document) -> Result<T, Error> {
        let value = self.raw(path)?;
        parse_object(
            value,
            path.describe(),
            Some(&self.endpoint.join(path.suffix())),
        )
        .map(|(typed, _)| typed)
    }

    fn get_json(&self, path: Document, deadline: Instant) -> Result<Value, Error> {
        let url = self.endpoint.join(path.suffix());
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
            // A request started with almost no time left would only end in a timeout that
            // hides why the earlier ones failed.
            if Instant::now() + pause + MIN_ATTEMPT >= deadline {
                return Err(finish(error, attempt));
            }
            std::thread::sleep(pause);
        }
    }

    fn get_once(&self, url: &str, timeout: Duration) -> Result<Vec<u8>, Error> {
        let _own = OWN_REQUEST.raise();
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

thread_local! {
    static OWN_REQUEST_NOW: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is making one of the crate's own requests (start-up, recovery,
/// stats): what its HTTP client logs meanwhile (ureq's DEBUG and TRACE lines, hex dumps of
/// payloads included) is not the service's, and is left out of its logs.
pub(crate) static OWN_REQUEST: ThreadFlag = ThreadFlag(&OWN_REQUEST_NOW);

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
    full.mul_f64(0.5 + crate::time::random_fraction() / 2.0)
}
#[cfg(test)]
mod tests {
    use super::*;

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
