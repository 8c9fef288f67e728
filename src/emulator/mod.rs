//! A local ECS task metadata endpoint, for tests and development (feature `emulator`).
//!
//! The emulator is a real HTTP server on `127.0.0.1` that serves the v4 and v3 paths
//! (container, `/task`, `/taskWithTags`, `/stats`, `/task/stats`) from a built-in
//! [`Scenario`] or from payloads you supply. Stats counters advance on every request, so
//! CPU % and rates come out non-zero. Faults are injected on the wire, per route and for a
//! number of requests: a status (5xx, 404, 429 with the agent's plain-text body), a stall
//! before the headers, a stall mid-body, a truncated body, a body that is not JSON, an
//! oversized body, a delay, a closed connection.
//!
//! Point your service at it by setting the variable it hands back:
//!
//! ```
//! use tracing_aws_ecs::emulator::{Emulator, Fault, Scenario};
//! use tracing_aws_ecs::MetadataClient;
//! use tracing_aws_ecs::endpoint::Document;
//!
//! let emulator = Emulator::start(Scenario::Fargate)?;
//! let (variable, url) = emulator.env_var();
//! assert_eq!(variable, "ECS_CONTAINER_METADATA_URI_V4");
//! // In a test of your service: Command::new(..).env(variable, url), or set it before start-up.
//!
//! let client = MetadataClient::new(&url)?;
//! assert_eq!(client.container()?.name.as_deref(), Some("app"));
//!
//! // The next two `/task` requests answer 503; the client retries through them.
//! emulator.inject(Document::Task, Fault::Status(503), 2);
//! assert_eq!(client.task()?.family.as_deref(), Some("orders-api"));
//! assert_eq!(emulator.requests(Document::Task), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! From a shell, `ecs-metadata serve` runs one and prints the `export` line.

mod scenarios;
mod server;
mod stats_gen;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::client::MetadataClient;
use crate::endpoint::{ApiVersion, Document};
use server::{Server, Shared};

/// A built-in task, with identities consistent across every path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scenario {
    /// Fargate: cluster `prod-web` given as an ARN, task family `orders-api`, containers
    /// `app` (this one) and `envoy`, cgroup v1 stats on `eth1`, no `/taskWithTags`.
    Fargate,
    /// EC2: cluster given by its short name `default`, family `billing-worker`, a pause
    /// container, `worker` (this one) and a stopped `migrate` whose stats are `{}`
    /// (`null` on v3), cgroup v1 stats on `eth0`, `/taskWithTags` with tags.
    Ec2,
    /// ECS Managed Instances: cluster `ml-serving` as an ARN, family `inference`, container
    /// `model-server`, cgroup v2 stats (`u64::MAX` memory limit, `null` blkio lists, no
    /// network stats).
    ManagedInstances,
}

impl Scenario {
    /// The name `ecs-metadata serve --scenario` takes.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Fargate => "fargate",
            Scenario::Ec2 => "ec2",
            Scenario::ManagedInstances => "managed-instances",
        }
    }

    /// Every scenario.
    pub const ALL: [Scenario; 3] = [Scenario::Fargate, Scenario::Ec2, Scenario::ManagedInstances];
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|scenario| scenario.name() == s)
            .ok_or_else(|| {
                format!("unknown scenario {s:?}: expected fargate, ec2 or managed-instances")
            })
    }
}

/// Which requests a fault applies to, or a count counts: those to one [`Document`] (in either
/// version), or any request, unknown paths included. A [`Document`] converts into it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// Requests to this path.
    Document(Document),
    /// Every request, unknown paths included.
    Any,
}

impl From<Document> for Route {
    fn from(path: Document) -> Self {
        Route::Document(path)
    }
}

impl Route {
    const COUNT: usize = Document::ALL.len() + 1;

    fn index(self) -> usize {
        match self {
            Route::Document(path) => path as usize,
            Route::Any => Document::ALL.len(),
        }
    }
}

/// What goes wrong with a request, on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer with this status. 429 carries the agent's plain-text body; other statuses
    /// a JSON string, as the agent sends.
    Status(u16),
    /// Wait this long, then answer normally.
    Delay(Duration),
    /// Read the request, send nothing for this long, then close.
    StallBeforeHeaders(Duration),
    /// Send the headers and half the body, wait this long, then send the rest.
    StallMidBody(Duration),
    /// Send the headers (with the full length) and half the body, then close.
    TruncatedBody,
    /// Answer 200 with an HTML page.
    NotJson,
    /// Answer 200 with this body (wrong types, odd payloads).
    Body(String),
    /// Answer 200 with a valid JSON body of this many bytes.
    Oversized(usize),
    /// Close the connection without answering.
    Close,
}

/// Inject a fault for every matching request from now on.
pub const ALWAYS: usize = usize::MAX;

/// A running emulator. It stops when dropped.
#[derive(Debug)]
pub struct Emulator {
    server: Server,
}

/// Configures an [`Emulator`]: a scenario, payloads to serve instead, a port.
#[derive(Clone, Debug)]
#[must_use]
pub struct EmulatorBuilder {
    scenario: Scenario,
    port: u16,
    container: Option<Value>,
    task: Option<Value>,
    task_with_tags: Option<Value>,
    stats: Option<Value>,
    task_stats: Option<Value>,
}

impl EmulatorBuilder {
    /// The built-in scenario whose payloads are served where none is supplied (Fargate).
    pub fn scenario(mut self, scenario: Scenario) -> Self {
        self.scenario = scenario;
        self
    }

    /// The port on 127.0.0.1 (0, the default, picks a free one).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The container payload (the base path), as v4 would send it.
    pub fn container(mut self, payload: Value) -> Self {
        self.container = Some(payload);
        self
    }

    /// The `/task` payload. Generated stats follow its `Containers`.
    pub fn task(mut self, payload: Value) -> Self {
        self.task = Some(payload);
        self
    }

    /// The `/taskWithTags` payload.
    pub fn task_with_tags(mut self, payload: Value) -> Self {
        self.task_with_tags = Some(payload);
        self
    }

    /// A fixed `/stats` payload, instead of advancing ones.
    pub fn stats(mut self, payload: Value) -> Self {
        self.stats = Some(payload);
        self
    }

    /// A fixed `/task/stats` payload, instead of advancing ones.
    pub fn task_stats(mut self, payload: Value) -> Self {
        self.task_stats = Some(payload);
        self
    }

    /// Binds and starts serving.
    pub fn start(self) -> io::Result<Emulator> {
        let built_in = scenarios::payloads(self.scenario);
        let shared = Shared::new(
            self.scenario,
            scenarios::Payloads {
                container: self.container.unwrap_or(built_in.container),
                task: self.task.unwrap_or(built_in.task),
                task_with_tags: self.task_with_tags.or(built_in.task_with_tags),
            },
            self.stats,
            self.task_stats,
        );
        Ok(Emulator {
            server: Server::start(self.port, Arc::new(shared))?,
        })
    }
}

impl Emulator {
    /// Starts a scenario on a free port.
    pub fn start(scenario: Scenario) -> io::Result<Self> {
        Self::builder().scenario(scenario).start()
    }

    /// A builder, for supplied payloads or a fixed port.
    pub fn builder() -> EmulatorBuilder {
        EmulatorBuilder {
            scenario: Scenario::Fargate,
            port: 0,
            container: None,
            task: None,
            task_with_tags: None,
            stats: None,
            task_stats: None,
        }
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The scenario it serves.
    pub fn scenario(&self) -> Scenario {
        self.server.shared.scenario
    }

    /// The base URL of one endpoint version, like the value ECS puts in the variable.
    pub fn url(&self, version: ApiVersion) -> String {
        format!(
            "http://{}/{}/{}",
            self.server.addr,
            version.as_str(),
            self.server.shared.endpoint_id
        )
    }

    /// The v4 base URL.
    pub fn base_url(&self) -> String {
        self.url(ApiVersion::V4)
    }

    /// The variable to set and its value: `("ECS_CONTAINER_METADATA_URI_V4", base_url)`.
    pub fn env_var(&self) -> (&'static str, String) {
        (ApiVersion::V4.variable(), self.base_url())
    }

    /// `export ECS_CONTAINER_METADATA_URI_V4=…`, for a shell.
    pub fn export_line(&self) -> String {
        let (variable, url) = self.env_var();
        format!("export {variable}={url}")
    }

    /// A client for the v4 endpoint.
    pub fn client(&self) -> MetadataClient {
        MetadataClient::new(&self.base_url()).expect("the emulator's URL is valid")
    }

    /// Makes the next `times` requests to `route` (a [`Document`], or [`Route::Any`]) fail with
    /// `fault`; [`ALWAYS`] for every one. Faults queue in the order injected.
    pub fn inject(&self, route: impl Into<Route>, fault: Fault, times: usize) {
        self.server.shared.inject(route.into(), fault, times);
    }

    /// Makes every request to `route` (a [`Document`], or [`Route::Any`]) that arrives within
    /// `period` from now fail with `fault`: an outage that ends by itself, as an agent busy
    /// at start-up.
    pub fn inject_for(&self, route: impl Into<Route>, fault: Fault, period: Duration) {
        self.server.shared.inject_for(route.into(), fault, period);
    }

    /// Drops every fault not yet used.
    pub fn clear_faults(&self) {
        self.server.shared.clear_faults();
    }

    /// How many requests reached `route` (a [`Document`], in either version); [`Route::Any`]
    /// counts all.
    pub fn requests(&self, route: impl Into<Route>) -> usize {
        self.server.shared.requests(route.into())
    }

    /// Stops serving and waits for the listener to close. Dropping does the same.
    pub fn stop(self) {}
}
