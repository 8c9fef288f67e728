//! The crate's error type.

use std::fmt;
use std::time::Duration;

/// Why metadata or stats could not be read.
///
/// Every variant names what failed (the variable, the URL) and what the endpoint said, so
/// that the one line a service logs about it is enough to act on. Variants and their fields
/// may grow: match them with `..`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Neither `ECS_CONTAINER_METADATA_URI_V4` nor `ECS_CONTAINER_METADATA_URI` is set: the
    /// process is not running in an ECS task. Not a fault; callers usually carry on quietly.
    NotOnEcs,
    /// An endpoint variable or URL is malformed.
    #[non_exhaustive]
    InvalidEndpoint {
        /// The environment variable it came from, if any.
        variable: Option<&'static str>,
        /// The value as found.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The endpoint answered with a status other than 200.
    #[non_exhaustive]
    Status {
        /// The URL requested.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What the endpoint's body said (decoded when it is a JSON string, cut to 512 bytes).
        body: String,
        /// How many requests were made.
        attempts: u32,
    },
    /// The request failed below HTTP: refused, reset, closed mid-body.
    #[non_exhaustive]
    Transport {
        /// The URL requested.
        url: String,
        /// What the transport reported.
        message: String,
        /// How many requests were made.
        attempts: u32,
    },
    /// No complete answer arrived within the deadline.
    #[non_exhaustive]
    Timeout {
        /// The URL requested.
        url: String,
        /// The time spent before giving up.
        after: Duration,
        /// How many requests were made.
        attempts: u32,
    },
    /// The body was larger than the client's cap.
    #[non_exhaustive]
    BodyTooLarge {
        /// The URL requested.
        url: String,
        /// The cap, in bytes.
        limit: u64,
    },
    /// The body is not the JSON expected.
    #[non_exhaustive]
    Payload {
        /// The URL it came from; `None` for payloads given directly.
        url: Option<String>,
        /// What is wrong with it.
        detail: String,
    },
}

impl Error {
    /// `true` for [`Error::NotOnEcs`]: the environment says this is not ECS.
    pub fn is_not_on_ecs(&self) -> bool {
        matches!(self, Error::NotOnEcs)
    }

    /// The HTTP status, for [`Error::Status`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The URL involved, where there is one.
    pub fn url(&self) -> Option<&str> {
        match self {
            Error::Status { url, .. }
            | Error::Transport { url, .. }
            | Error::Timeout { url, .. }
            | Error::BodyTooLarge { url, .. } => Some(url),
            Error::Payload { url, .. } => url.as_deref(),
            Error::NotOnEcs | Error::InvalidEndpoint { .. } => None,
        }
    }

    /// Whether the same request may succeed if tried again: connection faults, timeouts,
    /// 5xx and 429. 404 and other 4xx are final.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } | Error::Timeout { .. } => true,
            Error::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// Whether a later call may succeed where this one failed, so that a background retry is
    /// worth it: what [`is_transient`](Self::is_transient) covers, and a body that could not
    /// be parsed (an agent busy at start-up). Off ECS, a malformed variable, 404 and other
    /// 4xx but 429, and an oversized body are final.
    pub fn is_recoverable(&self) -> bool {
        self.is_transient() || matches!(self, Error::Payload { url: Some(_), .. })
    }

    pub(crate) fn payload(url: Option<&str>, detail: impl fmt::Display) -> Self {
        Error::Payload {
            url: url.map(str::to_owned),
            detail: detail.to_string(),
        }
    }

    pub(crate) fn with_attempts(mut self, n: u32) -> Self {
        if let Error::Status { attempts, .. }
        | Error::Transport { attempts, .. }
        | Error::Timeout { attempts, .. } = &mut self
        {
            *attempts = n;
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tries = |n: &u32| {
            if *n > 1 {
                format!(" (after {n} attempts)")
            } else {
                String::new()
            }
        };
        match self {
            Error::NotOnEcs => f.write_str(
                "not running on ECS: neither ECS_CONTAINER_METADATA_URI_V4 nor ECS_CONTAINER_METADATA_URI is set",
            ),
            Error::InvalidEndpoint {
                variable: Some(var),
                value,
                reason,
            } => write!(f, "{var} is malformed ({reason}): {value:?}"),
            Error::InvalidEndpoint {
                variable: None,
                value,
                reason,
            } => write!(f, "invalid metadata endpoint URL ({reason}): {value:?}"),
            Error::Status {
                url,
                status,
                body,
                attempts,
            } => {
                write!(f, "GET {url} answered {status}{}", tries(attempts))?;
                if !body.is_empty() {
                    write!(f, ": {body}")?;
                }
                Ok(())
            }
            Error::Transport {
                url,
                message,
                attempts,
            } => write!(f, "GET {url} failed{}: {message}", tries(attempts)),
            Error::Timeout {
                url,
                after,
                attempts,
            } => write!(
                f,
                "GET {url} timed out after {} ms{}",
                after.as_millis(),
                tries(attempts)
            ),
            Error::BodyTooLarge { url, limit } => {
                write!(f, "GET {url}: body is larger than the {limit}-byte limit")
            }
            Error::Payload { url: Some(url), detail } => {
                write!(f, "GET {url}: unexpected payload: {detail}")
            }
            Error::Payload { url: None, detail } => write!(f, "unexpected payload: {detail}"),
        }
    }
}

impl std::error::Error for Error {}
