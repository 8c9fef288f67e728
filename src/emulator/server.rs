//! The HTTP/1.1 server: one thread to accept, one per connection (a stall must not hold up
//! other requests), `Connection: close` on every answer.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::scenarios::{self, Payloads};
use super::{Fault, Route, Scenario, stats_gen};
use crate::endpoint::{ApiVersion, Document};

const RATE_LIMITED: &str = "You have reached maximum request limit.";
const REQUEST_HEAD_LIMIT: u64 = 16 * 1024;

struct Planned {
    route: Route,
    fault: Fault,
    remaining: usize,
    /// When the fault stops applying, if it is planned for a time rather than a count.
    until: Option<Instant>,
}

pub(super) struct Shared {
    pub(super) scenario: Scenario,
    pub(super) endpoint_id: String,
    payloads: Payloads,
    fixed_stats: Option<Value>,
    fixed_task_stats: Option<Value>,
    faults: Mutex<Vec<Planned>>,
    counts: [AtomicUsize; Route::COUNT],
    samples: AtomicU64,
    stopping: AtomicBool,
}

impl Shared {
    pub(super) fn new(
        scenario: Scenario,
        payloads: Payloads,
        fixed_stats: Option<Value>,
        fixed_task_stats: Option<Value>,
    ) -> Self {
        // Fargate ids are `<task id>-<digits>`, EC2 ones UUIDs: opaque either way.
        let endpoint_id = match scenario {
            Scenario::Ec2 => "79de7f83-becd-4750-ab4c-26ccc3ee533c".to_owned(),
            _ => "5e1b0c8f2d9a4e7b8c3f6a1d0e9b2c7f-3779599274".to_owned(),
        };
        Shared {
            scenario,
            endpoint_id,
            payloads,
            fixed_stats,
            fixed_task_stats,
            faults: Mutex::new(Vec::new()),
            counts: Default::default(),
            samples: AtomicU64::new(0),
            stopping: AtomicBool::new(false),
        }
    }

    pub(super) fn inject(&self, route: Route, fault: Fault, times: usize) {
        if times > 0 {
            self.lock_faults().push(Planned {
                route,
                fault,
                remaining: times,
                until: None,
            });
        }
    }

    pub(super) fn inject_for(&self, route: Route, fault: Fault, period: Duration) {
        self.lock_faults().push(Planned {
            route,
            fault,
            remaining: super::ALWAYS,
            until: Some(Instant::now() + period),
        });
    }

    pub(super) fn clear_faults(&self) {
        self.lock_faults().clear();
    }

    pub(super) fn requests(&self, route: Route) -> usize {
        self.counts[route.index()].load(Ordering::SeqCst)
    }

    fn lock_faults(&self) -> std::sync::MutexGuard<'_, Vec<Planned>> {
        // A panicking test thread must not wedge the emulator for the others.
        self.faults.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn take_fault(&self, route: Route) -> Option<Fault> {
        let mut faults = self.lock_faults();
        let now = Instant::now();
        faults.retain(|p| p.until.is_none_or(|until| now < until));
        let index = faults
            .iter()
            .position(|p| p.route == route || p.route == Route::Any)?;
        let planned = &mut faults[index];
        let fault = planned.fault.clone();
        if planned.remaining != super::ALWAYS {
            planned.remaining -= 1;
        }
        if planned.remaining == 0 {
            faults.remove(index);
        }
        Some(fault)
    }

    /// The body for a route, or the status and body of the agent's refusal.
    fn body(&self, version: ApiVersion, path: Document) -> Result<Value, (u16, String)> {
        let value = match path {
            Document::Container => self.payloads.container.clone(),
            Document::Task => self.payloads.task.clone(),
            Document::TaskWithTags => self.payloads.task_with_tags.clone().ok_or_else(|| {
                (
                    404,
                    json_string(&format!(
                        "task metadata with tags is not served on {}",
                        self.scenario
                    )),
                )
            })?,
            Document::Stats | Document::TaskStats => {
                let fixed = if path == Document::Stats {
                    &self.fixed_stats
                } else {
                    &self.fixed_task_stats
                };
                match fixed {
                    Some(fixed) => fixed.clone(),
                    None => self.generated_stats(path),
                }
            }
        };
        Ok(match (version, path) {
            (ApiVersion::V4, _) => value,
            (_, Document::Stats | Document::TaskStats) => stats_gen::to_v3(value),
            _ => scenarios::to_v3(value),
        })
    }

    fn generated_stats(&self, path: Document) -> Value {
        let n = self.samples.fetch_add(1, Ordering::SeqCst) + 1;
        let all = stats_gen::task_stats(
            self.scenario,
            &self.payloads.task,
            &self.payloads.container,
            n,
        );
        if path == Document::TaskStats {
            return all;
        }
        let own = self.payloads.container["DockerId"].as_str().unwrap_or("");
        all.get(own)
            .cloned()
            .unwrap_or(Value::Object(Default::default()))
    }

    /// Sleeps `d`, waking early when the emulator stops.
    fn pause(&self, d: Duration) {
        let until = Instant::now() + d;
        while !self.stopping.load(Ordering::SeqCst) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

pub(super) struct Server {
    pub(super) addr: SocketAddr,
    pub(super) shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .field("scenario", &self.shared.scenario)
            .finish_non_exhaustive()
    }
}

impl Server {
    pub(super) fn start(port: u16, shared: Arc<Shared>) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let accepting = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name("ecs-emulator".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    if accepting.stopping.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let shared = Arc::clone(&accepting);
                    // If no thread can be had, the connection drops: a fault the client sees.
                    let _ = thread::Builder::new()
                        .name("ecs-emulator-conn".into())
                        .spawn(move || handle(stream, &shared));
                }
            })?;
        Ok(Server {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Reads the request line and headers; returns the path.
fn read_request(stream: &TcpStream) -> Option<(String, String)> {
    let mut reader = BufReader::new(io::Read::take(stream, REQUEST_HEAD_LIMIT));
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let path = target.split(['?', '#']).next().unwrap_or("").to_owned();
    Some((method, path))
}

/// The version and document a request path names.
fn route_of(path: &str, endpoint_id: &str) -> Option<(ApiVersion, Document)> {
    let (version, rest) = if let Some(rest) = path.strip_prefix("/v4/") {
        (ApiVersion::V4, rest)
    } else {
        (ApiVersion::V3, path.strip_prefix("/v3/")?)
    };
    let suffix = rest.strip_prefix(endpoint_id)?;
    Some((version, Document::from_suffix(suffix)?))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn head(status: u16, content_type: &str, length: usize) -> String {
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n",
        reason(status)
    )
}

fn respond(mut stream: &TcpStream, status: u16, content_type: &str, body: &[u8]) {
    // The client may be gone; that is its business.
    let _ = stream.write_all(head(status, content_type, body.len()).as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

const JSON: &str = "application/json";

fn handle(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_nodelay(true);
    shared.counts[Route::Any.index()].fetch_add(1, Ordering::SeqCst);
    let Some((method, path)) = read_request(&stream) else {
        respond(
            &stream,
            400,
            JSON,
            json_string("malformed request").as_bytes(),
        );
        return;
    };
    let Some((version, document)) = route_of(&path, &shared.endpoint_id) else {
        let message = format!("unable to get metadata: no endpoint at {path}");
        respond(&stream, 404, JSON, json_string(&message).as_bytes());
        return;
    };
    shared.counts[Route::Document(document).index()].fetch_add(1, Ordering::SeqCst);
    if method != "GET" {
        respond(
            &stream,
            405,
            JSON,
            json_string("method not allowed").as_bytes(),
        );
        return;
    }
    let fault = shared.take_fault(Route::Document(document));
    let body = match &fault {
        Some(Fault::Close) => return,
        Some(Fault::StallBeforeHeaders(d)) => return shared.pause(*d),
        Some(Fault::Status(429)) => {
            return respond(
                &stream,
                429,
                "text/plain; charset=utf-8",
                RATE_LIMITED.as_bytes(),
            );
        }
        Some(Fault::Status(status)) => {
            let message = format!(
                "emulated fault: {} metadata handler answered {status}",
                version.as_str()
            );
            return respond(&stream, *status, JSON, json_string(&message).as_bytes());
        }
        Some(Fault::Oversized(size)) => return send_oversized(&stream, *size),
        Some(Fault::NotJson) => Ok(b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec()),
        Some(Fault::Body(body)) => Ok(body.clone().into_bytes()),
        Some(Fault::Delay(d)) => {
            shared.pause(*d);
            serve(shared, version, document)
        }
        _ => serve(shared, version, document),
    };
    let body = match body {
        Ok(body) => body,
        Err((status, message)) => return respond(&stream, status, JSON, message.as_bytes()),
    };
    let mut out = &stream;
    let half = body.len() / 2;
    match fault {
        Some(Fault::TruncatedBody) => {
            let _ = out.write_all(head(200, JSON, body.len()).as_bytes());
            let _ = out.write_all(&body[..half]);
            let _ = out.flush();
        }
        Some(Fault::StallMidBody(d)) => {
            let _ = out.write_all(head(200, JSON, body.len()).as_bytes());
            let _ = out.write_all(&body[..half]);
            let _ = out.flush();
            shared.pause(d);
            let _ = out.write_all(&body[half..]);
            let _ = out.flush();
        }
        _ => respond(&stream, 200, JSON, &body),
    }
}

fn serve(shared: &Shared, version: ApiVersion, path: Document) -> Result<Vec<u8>, (u16, String)> {
    let value = shared.body(version, path)?;
    Ok(serde_json::to_vec(&value).unwrap_or_default())
}

/// A valid JSON object of `size` bytes (at least 14), streamed so that a client giving up
/// early costs nothing.
fn send_oversized(mut stream: &TcpStream, size: usize) {
    const OPEN: &[u8] = br#"{"padding":""#;
    const CLOSE: &[u8] = br#""}"#;
    let size = size.max(OPEN.len() + CLOSE.len());
    let chunk = [b'x'; 64 * 1024];
    let mut padding = size - OPEN.len() - CLOSE.len();
    if stream.write_all(head(200, JSON, size).as_bytes()).is_err()
        || stream.write_all(OPEN).is_err()
    {
        return;
    }
    while padding > 0 {
        let n = padding.min(chunk.len());
        if stream.write_all(&chunk[..n]).is_err() {
            return;
        }
        padding -= n;
    }
    let _ = stream.write_all(CLOSE);
    let _ = stream.flush();
}
