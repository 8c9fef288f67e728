//! Where the metadata endpoint is: the variables ECS sets, their validation, the API version,
//! and the paths it serves.

use crate::error::Error;

/// The variable ECS sets to the v4 endpoint (Fargate PV ≥ 1.4, EC2 agent ≥ 1.39, Managed Instances).
pub const V4_VARIABLE: &str = "ECS_CONTAINER_METADATA_URI_V4";
/// The variable ECS sets to the v3 endpoint (EC2 agent ≥ 1.21, older Fargate).
pub const V3_VARIABLE: &str = "ECS_CONTAINER_METADATA_URI";

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
/// use tracing_aws_ecs::endpoint::{ApiVersion, Endpoint};
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

/// A document the endpoint serves, under its base URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Document {
    /// The base path: this container's metadata.
    Container,
    /// `/task`: the task's metadata.
    Task,
    /// `/taskWithTags`: the task's metadata with its tags (EC2 only).
    TaskWithTags,
    /// `/stats`: this container's stats.
    Stats,
    /// `/task/stats`: every container's stats.
    TaskStats,
}

impl Document {
    /// Every path.
    pub const ALL: [Document; 5] = [
        Document::Container,
        Document::Task,
        Document::TaskWithTags,
        Document::Stats,
        Document::TaskStats,
    ];

    /// The path under the base URL: `""`, `"/task"`, `"/taskWithTags"`, `"/stats"` or
    /// `"/task/stats"`.
    pub fn suffix(self) -> &'static str {
        match self {
            Document::Container => "",
            Document::Task => "/task",
            Document::TaskWithTags => "/taskWithTags",
            Document::Stats => "/stats",
            Document::TaskStats => "/task/stats",
        }
    }

    /// The path a suffix names (a trailing slash on the base path allowed).
    pub fn from_suffix(suffix: &str) -> Option<Self> {
        match suffix {
            "/" => Some(Document::Container),
            _ => Document::ALL.into_iter().find(|p| p.suffix() == suffix),
        }
    }

    /// What the document is, for messages: `"container metadata"`, `"task stats"`, ….
    pub fn describe(self) -> &'static str {
        match self {
            Document::Container => "container metadata",
            Document::Task | Document::TaskWithTags => "task metadata",
            Document::Stats => "container stats",
            Document::TaskStats => "task stats",
        }
    }
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
    fn paths_round_trip() {
        for path in Document::ALL {
            assert_eq!(Document::from_suffix(path.suffix()), Some(path));
        }
        assert_eq!(Document::from_suffix("/"), Some(Document::Container));
        assert_eq!(Document::from_suffix("/nope"), None);
    }
}
