//! What CloudWatch receives: the `burst` example, then the `axum` one under load until
//! `docker stop`, run in containers whose output goes through Docker's own awslogs driver
//! into a CloudWatch Logs API (moto), and is read back with `GetLogEvents`. Every part is real and on loopback: Docker Engine (Debian's `docker.io`,
//! started here), `moto_server` (PyPI's `moto[server,logs]`), the metadata emulator.
//!
//! `.ci/run` installs what it needs and runs it (`scripts/e2e-deps.sh`, then
//! `cargo test --test cloudwatch -- --ignored`); it fails, rather than skips, when Docker or
//! moto cannot be started. Elsewhere it is left out, as it needs root and both installed.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tracing_aws_ecs::emulator::{Emulator, Scenario};

/// CloudWatch Logs' event limit less its 26-byte overhead: the crate's default line limit.
const EVENT_LIMIT: usize = 256 * 1024 - 26;
/// Lines per thread in the burst (four threads).
const PER_THREAD: u64 = 5_000;

#[test]
#[ignore = "needs root, dockerd and moto: `.ci/run` installs them and runs it"]
fn what_cloudwatch_receives() {
    let started = Instant::now();
    let work =
        WorkDir(std::env::temp_dir().join(format!("tracing-aws-ecs-e2e-{}", std::process::id())));
    let docker = Docker::start(&work.0.join("docker"));
    let moto = Moto::start();
    let emulator = Emulator::start(Scenario::Fargate).expect("the emulator starts");
    let image = docker.import(&burst_binary(), &work.0.join("rootfs"));

    // Blocking mode: every line arrives, whole or cut to the limit, and a panic is one event.
    let written = 4 * PER_THREAD + 3;
    let status = docker.run(&image, &moto, &emulator, "blocking", &[]);
    assert_eq!(status, Some(101), "the burst ends with a panic");
    let events = moto.events("blocking");
    let lines = check_events(&events);
    assert_eq!(
        events.len() as u64,
        written,
        "one event per line: the burst, two large lines, the panic"
    );
    for thread in 0..4 {
        let seqs = burst_seqs(&lines, thread);
        assert_eq!(seqs, (0..PER_THREAD).collect::<Vec<_>>(), "thread {thread}");
    }
    let large = |size: &str| {
        lines
            .iter()
            .zip(&events)
            .find(|(l, _)| l["size"] == size)
            .unwrap_or_else(|| panic!("the {size} line arrived"))
    };
    let (line_16k, event_16k) = large("16k");
    assert!(line_16k.get("truncated").is_none() && event_16k.len() > 16 * 1024);
    let (line_256k, event_256k) = large("256k");
    assert_eq!(line_256k["truncated"], true);
    let panics: Vec<&Value> = lines.iter().filter(|l| l["target"] == "panic").collect();
    assert_eq!(panics.len(), 1);
    assert_eq!(panics[0]["message"], "the burst is over");
    println!(
        "blocking: {} events of {written} lines; the 16 KiB line as one event of {} bytes, the \
         256 KiB one cut to {} bytes; the panic as 1 event",
        events.len(),
        event_16k.len(),
        event_256k.len()
    );

    // Blocking mode with the background writer: the driver waits on CloudWatch, the service
    // never does; each line arrives as one event or is counted dropped, and the count
    // arrives too; the panic arrives after every line before it.
    let status = docker.run_with(
        &image,
        (&moto, &emulator),
        "background",
        &["-e", "BURST_BACKGROUND=1"],
        &[],
    );
    assert_eq!(status, Some(101));
    let events = moto.events("background");
    let lines = check_events(&events);
    for thread in 0..4 {
        let seqs = burst_seqs(&lines, thread);
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "thread {thread} in order"
        );
    }
    let delivered = lines
        .iter()
        .filter(|l| l["kind"] == "burst" || l["kind"] == "large" || l["target"] == "panic")
        .count() as u64;
    let said: u64 = lines.iter().filter_map(|l| l["lines_lost"].as_u64()).sum();
    assert_eq!(
        delivered + said,
        written,
        "delivered + counted dropped = written"
    );
    let panic_at = lines
        .iter()
        .position(|l| l["target"] == "panic")
        .expect("the panic");
    let last_burst = lines.iter().rposition(|l| l["kind"] == "burst").unwrap();
    assert!(panic_at > last_burst, "the panic after the lines before it");
    println!(
        "blocking, background writer: {delivered} events delivered, {said} counted dropped, of \
         {written} lines written"
    );

    // Non-blocking mode (ECS's default since June 2025): what the driver delivers of a burst.
    let status = docker.run(
        &image,
        &moto,
        &emulator,
        "non-blocking",
        &["mode=non-blocking", "max-buffer-size=25m"],
    );
    assert_eq!(status, Some(101));
    let events = moto.events("non-blocking");
    let lines = check_events(&events);
    for thread in 0..4 {
        let seqs = burst_seqs(&lines, thread);
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "what arrives of thread {thread} is in order, once"
        );
    }
    println!(
        "non-blocking (max-buffer-size=25m): {} events delivered of {written} lines written",
        events.len()
    );
    axum_until_docker_stop(&docker, &moto, &emulator, &work.0.join("axum-rootfs"));
    drop((docker, work));
    println!("wall time: {:.1} s", started.elapsed().as_secs_f64());
}

/// The axum example under load, stopped by `docker stop` (SIGTERM) while requests are in
/// flight: the interval written at shutdown counts every response the clients received,
/// and a failing in-flight request's held lines arrived.
fn axum_until_docker_stop(docker: &Docker, moto: &Moto, emulator: &Emulator, rootfs: &Path) {
    const CLIENTS: usize = 4;
    const EACH: usize = 250;
    let image = docker.import(&axum_binary(), rootfs);
    let port = free_port();
    let started = docker
        .run_command(moto, emulator, "axum", &["-d", "--name", "axum-e2e"], &[])
        .args(["-e", &format!("PORT={port}"), &image])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(started.success());
    wait_until("the axum example", Duration::from_secs(60), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let base = format!("http://127.0.0.1:{port}");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let routes = [
        ("/orders/{id}", "/orders/7"),
        ("/payments/{id}", "/payments/20"),
        ("/payments/{id}", "/payments/21"),
        ("/panic", "/panic"),
        ("/health", "/health"),
    ];
    let responses: Vec<(&str, u16)> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (agent, base) = (agent.clone(), &base);
                scope.spawn(move || {
                    (0..EACH)
                        .map(|i| {
                            let (route, path) = routes[(client + i) % routes.len()];
                            let response = agent.get(format!("{base}{path}")).call();
                            (route, response.expect("a response").status().as_u16())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    });
    // Two slow requests in flight, one failing, when ECS stops the task.
    let in_flight: Vec<_> = ["/slow?fail", "/slow"]
        .into_iter()
        .map(|path| {
            let (agent, url) = (agent.clone(), format!("{base}{path}"));
            std::thread::spawn(move || agent.get(url).call().expect("a response").status().as_u16())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let stopped = docker
        .command(&["stop", "-t", "30", "axum-e2e"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(stopped.success());
    let in_flight: Vec<u16> = in_flight.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(in_flight, [502, 200], "the requests in flight finished");
    let _ = docker
        .command(&["rm", "axum-e2e"])
        .stdout(Stdio::null())
        .status();

    let events = moto.events("axum");
    let lines = check_events(&events);
    let mut counted: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for line in lines.iter().filter(|l| {
        l["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "OrdersService"
            && l.get("Route").is_some()
    }) {
        let entry = counted
            .entry(line["Route"].as_str().unwrap().to_owned())
            .or_default();
        entry.0 += line["Requests"].as_u64().unwrap_or(0);
        entry.1 += line["Errors"].as_u64().unwrap_or(0);
    }
    let mut received: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    for (route, status) in responses
        .iter()
        .copied()
        .chain([("/slow", 502), ("/slow", 200)])
    {
        if route != "/health" {
            let entry = received.entry(route.to_owned()).or_default();
            entry.0 += 1;
            entry.1 += u64::from(status >= 500);
        }
    }
    assert_eq!(
        counted, received,
        "requests counted in CloudWatch, as the clients saw them"
    );
    let held: Vec<&Value> = lines
        .iter()
        .filter(|l| l["message"] == "waiting on a slow dependency")
        .collect();
    assert_eq!(
        held.len(),
        1,
        "the failing request's held line, and not the other's"
    );
    let signal = lines.iter().position(|l| l["signal"] == "SIGTERM");
    assert!(signal.is_some(), "the shutdown is said");
    let requests: u64 = counted.values().map(|(r, _)| r).sum();
    println!(
        "axum: {requests} requests counted in CloudWatch, as many as the clients received, the \
         last 2 in flight at `docker stop`; {} events",
        events.len()
    );
}

/// The sequence numbers of one burst thread's lines, in the order they arrived.
fn burst_seqs(lines: &[Value], thread: u64) -> Vec<u64> {
    lines
        .iter()
        .filter(|l| l["kind"] == "burst" && l["thread"] == thread)
        .map(|l| l["seq"].as_u64().unwrap())
        .collect()
}

/// Checks every event: one JSON line within the limit, carrying the identity (a metrics
/// line, its cluster). Returns the lines, parsed.
fn check_events(events: &[String]) -> Vec<Value> {
    events
        .iter()
        .map(|event| {
            assert!(
                event.len() <= EVENT_LIMIT,
                "an event of {} bytes, over the limit",
                event.len()
            );
            let line: Value = serde_json::from_str(event)
                .unwrap_or_else(|e| panic!("not one JSON line ({e}): {:.200}", event));
            // A log line carries the identity; a metrics line, its cluster as a dimension.
            let cluster = match line.get("_aws") {
                Some(_) => &line["ClusterName"],
                None => &line["ecs"]["cluster"],
            };
            assert_eq!(cluster, "prod-web", "enriched: {:.200}", event);
            line
        })
        .collect()
}

/// The test's directory, removed however the test ends (after the daemon in it).
struct WorkDir(PathBuf);

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Waits until `ready` holds, up to `limit` (a bound on a hang, not a timing assertion).
fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < until, "{what} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A Docker Engine of our own: its own socket, data and state, no network set-up.
struct Docker {
    daemon: Child,
    socket: String,
    root: PathBuf,
}

impl Docker {
    fn start(root: &Path) -> Docker {
        std::fs::create_dir_all(root).unwrap();
        let socket = format!("unix://{}", root.join("docker.sock").display());
        let log = std::fs::File::create(root.join("dockerd.log")).unwrap();
        let daemon = Command::new("dockerd")
            .args(["--iptables=false", "--ip6tables=false", "--bridge=none"])
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("docker.pid"))
            .args(["-H", &socket])
            // The awslogs driver signs its requests: any key will do for moto.
            .env("AWS_ACCESS_KEY_ID", "e2e")
            .env("AWS_SECRET_ACCESS_KEY", "e2e")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("dockerd starts (Debian's docker.io, as root)");
        let docker = Docker {
            daemon,
            socket,
            root: root.to_owned(),
        };
        wait_until("dockerd", Duration::from_secs(60), || {
            docker
                .command(&["info"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        docker
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("docker");
        command.args(["-H", &self.socket]).args(args);
        command
    }

    /// An image `FROM scratch` holding `binary` (an example) and the shared libraries it
    /// needs, as its entry point.
    fn import(&self, binary: &Path, rootfs: &Path) -> String {
        let name = binary.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::create_dir_all(rootfs).unwrap();
        std::fs::copy(binary, rootfs.join(&name)).unwrap();
        let ldd = Command::new("ldd").arg(binary).output().expect("ldd");
        for library in String::from_utf8_lossy(&ldd.stdout)
            .split_whitespace()
            .filter(|word| word.starts_with('/'))
        {
            let into = rootfs.join(library.trim_start_matches('/'));
            std::fs::create_dir_all(into.parent().unwrap()).unwrap();
            std::fs::copy(library, &into).unwrap();
        }
        let image = format!("tracing-aws-ecs-{name}:e2e");
        let mut tar = Command::new("tar")
            .arg("-C")
            .arg(rootfs)
            .args(["-c", "."])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let entrypoint = format!(r#"ENTRYPOINT ["/{name}"]"#);
        let imported = self
            .command(&["import", "-c", &entrypoint, "-", &image])
            .stdin(tar.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(tar.wait().unwrap().success() && imported.success());
        image
    }

    /// Runs the burst with the awslogs driver into `moto`, stream `stream`, with `options`
    /// added; returns its exit status.
    fn run(
        &self,
        image: &str,
        moto: &Moto,
        emulator: &Emulator,
        stream: &str,
        options: &[&str],
    ) -> Option<i32> {
        self.run_with(image, (moto, emulator), stream, &[], options)
    }

    /// As [`run`](Self::run), with `docker run` options of its own (`-e …`).
    fn run_with(
        &self,
        image: &str,
        (moto, emulator): (&Moto, &Emulator),
        stream: &str,
        how: &[&str],
        options: &[&str],
    ) -> Option<i32> {
        let how: Vec<&str> = ["--rm"].iter().chain(how).copied().collect();
        self.run_command(moto, emulator, stream, &how, options)
            .args([image, &PER_THREAD.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .code()
    }

    /// `docker run` with `how` (`--rm`, `-d`, …), on the host's network, with the awslogs
    /// driver into `moto`'s stream `stream` (and `options` added) and the emulator's endpoint
    /// variable: the image and its arguments go after.
    fn run_command(
        &self,
        moto: &Moto,
        emulator: &Emulator,
        stream: &str,
        how: &[&str],
        options: &[&str],
    ) -> Command {
        let (variable, url) = emulator.env_var();
        let mut command = self.command(&["run"]);
        command
            .args(how)
            .args(["--network", "host", "--log-driver", "awslogs"]);
        let endpoint = format!("awslogs-endpoint=http://127.0.0.1:{}", moto.port);
        let stream = format!("awslogs-stream={stream}");
        for option in [
            endpoint.as_str(),
            "awslogs-region=us-east-1",
            "awslogs-group=e2e",
            &stream,
            "awslogs-create-group=true",
        ]
        .iter()
        .chain(options)
        {
            command.args(["--log-opt", option]);
        }
        command.args(["-e", &format!("{variable}={url}")]);
        command
    }
}

impl Drop for Docker {
    /// Stops the daemon, then unmounts what it left mounted (its network namespace) so that
    /// its directory can go.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.daemon.id().to_string())
            .status();
        let _ = self.daemon.wait();
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let root = self.root.to_string_lossy().into_owned();
        for point in mounts
            .lines()
            .filter_map(|line| line.split_whitespace().nth(1))
            .filter(|point| point.starts_with(&root))
        {
            let _ = Command::new("umount").args(["-l", point]).status();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The `burst` example, built for this test.
fn burst_binary() -> PathBuf {
    example("burst", &[])
}

/// The `axum` example, built for this test (with every feature, as the test is).
fn axum_binary() -> PathBuf {
    example("axum", &["--all-features"])
}

/// The example `name`, built with `args`.
fn example(name: &str, args: &[&str]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let built = Command::new(cargo)
        .args(["build", "--quiet", "--example", name])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo builds the example");
    assert!(built.success());
    // target/debug/deps/cloudwatch-… → target/debug/examples/<name>
    let deps = std::env::current_exe().unwrap();
    deps.parent()
        .and_then(Path::parent)
        .map(|profile| profile.join("examples").join(name))
        .expect("the target directory")
}

/// A CloudWatch Logs API on loopback.
struct Moto {
    server: Child,
    port: u16,
}

impl Moto {
    fn start() -> Moto {
        let port = free_port();
        let server = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto's server starts (PyPI's moto[server,logs])");
        wait_until("moto", Duration::from_secs(60), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Moto { server, port }
    }

    /// Every event of stream `stream` in group `e2e`, in order, through `GetLogEvents`.
    fn events(&self, stream: &str) -> Vec<String> {
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut request = json!({
                "logGroupName": "e2e",
                "logStreamName": stream,
                "startFromHead": true,
            });
            if let Some(token) = &token {
                request["nextToken"] = token.clone().into();
            }
            let page = self.call("GetLogEvents", &request);
            let page_events = page["events"].as_array().cloned().unwrap_or_default();
            events.extend(
                page_events
                    .iter()
                    .map(|e| e["message"].as_str().unwrap().to_owned()),
            );
            let next = page["nextForwardToken"].as_str().map(str::to_owned);
            if page_events.is_empty() || next == token {
                return events;
            }
            token = next;
        }
    }

    fn call(&self, action: &str, request: &Value) -> Value {
        let mut response = ureq::post(format!("http://127.0.0.1:{}/", self.port))
            .header("X-Amz-Target", format!("Logs_20140328.{action}"))
            .header("Content-Type", "application/x-amz-json-1.1")
            // moto routes by the service the (unchecked) signature names.
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=e2e/20260101/us-east-1/logs/aws4_request, \
                 SignedHeaders=host, Signature=0",
            )
            .send(request.to_string())
            .unwrap_or_else(|e| panic!("{action}: {e}"));
        let mut body = String::new();
        response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .reader()
            .read_to_string(&mut body)
            .unwrap();
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{action}: {e}: {body:.300}"))
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}
