//! `ecs-metadata`: print ECS task metadata in images without curl, or serve a local endpoint.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tracing_aws_ecs::endpoint::Document;
use tracing_aws_ecs::stats::TaskFigures;
use tracing_aws_ecs::{EcsMetadata, Error, Identity, MetadataClient, emf};

const USAGE: &str = r#"usage: ecs-metadata [summary|container|task|task-with-tags|stats|task-stats] [--raw]
       ecs-metadata metrics [--emf] [--raw]
       ecs-metadata serve [--scenario fargate|ec2|managed-instances] [--port N]
       ecs-metadata help | -h | --help | --version

Reads the ECS task metadata endpoint named by ECS_CONTAINER_METADATA_URI_V4
(or ECS_CONTAINER_METADATA_URI) and prints JSON on stdout.

  summary          the task's identity as one JSON object (the default)
  container        this container's metadata
  task             the task's metadata
  task-with-tags   the task's metadata with its tags (EC2)
  stats            this container's stats
  task-stats       every container's stats
  metrics          CPU %, memory, network, block I/O and pids of the task and each
                   container, as {"task":{...},"containers":{"<name>":{...}},"skipped":{...}}
  --emf            the same as CloudWatch Embedded Metric Format lines
  --raw            JSON on one line (for jq); otherwise indented
  --deadline D     the longest the endpoint may take, retries included (5s, 500ms, 1m;
                   default 2s)
  serve            run a local endpoint emulator and print the variable to export"#;

/// What the usage says of `serve` in a build without the emulator.
const SERVE_ELSEWHERE: &str = "serve needs a build with the emulator: \
    cargo install tracing-aws-ecs --features emulator";

const EXIT_STATUS: &str =
    "Exit status: 0 on success, 1 on endpoint or payload errors, 2 off ECS or on a usage error.";

/// The usage, as this build has it.
fn usage() -> String {
    let usage = if cfg!(feature = "emulator") {
        USAGE.to_owned()
    } else {
        USAGE
            .lines()
            .filter(|line| !line.contains("serve"))
            .chain(["", SERVE_ELSEWHERE])
            .collect::<Vec<_>>()
            .join("\n")
    };
    format!("{usage}\n\n{EXIT_STATUS}")
}

/// What the command line asks for.
#[derive(Default)]
struct Options<'a> {
    command: Option<&'a str>,
    raw: bool,
    emf: bool,
    deadline: Option<Duration>,
    /// `serve`'s own options, as given.
    serve: Vec<&'a str>,
}

impl<'a> Options<'a> {
    /// Reads the arguments; `None` when they asked for help or the version, printed.
    fn parse(args: &'a [String]) -> Result<Option<Self>, Failure> {
        let mut options = Options::default();
        let mut args = args.iter().map(String::as_str);
        while let Some(arg) = args.next() {
            match arg {
                "help" | "-h" | "--help" => {
                    println!("{}", usage());
                    return Ok(None);
                }
                "-V" | "--version" => {
                    println!("ecs-metadata {}", env!("CARGO_PKG_VERSION"));
                    return Ok(None);
                }
                "--raw" => options.raw = true,
                "--emf" => options.emf = true,
                "--deadline" => {
                    let value = args
                        .next()
                        .ok_or_else(|| Failure::Usage("--deadline needs a value".into()))?;
                    options.deadline = Some(parse_duration(value).ok_or_else(|| {
                        Failure::Usage(format!("bad deadline {value:?} (5s, 500ms, 1m)"))
                    })?);
                }
                "--scenario" | "--port" => {
                    let value = args
                        .next()
                        .ok_or_else(|| Failure::Usage(format!("{arg} needs a value")))?;
                    options.serve.extend([arg, value]);
                }
                command if options.command.is_none() && !command.starts_with('-') => {
                    options.command = Some(command);
                }
                other => return Err(Failure::Usage(format!("unexpected argument {other:?}"))),
            }
        }
        let command = options.command.unwrap_or("summary");
        if options.emf && command != "metrics" {
            return Err(Failure::Usage("--emf goes with metrics".into()));
        }
        if !options.serve.is_empty() && command != "serve" {
            return Err(Failure::Usage(format!(
                "{} goes with serve",
                options.serve[0]
            )));
        }
        Ok(Some(options))
    }

    /// A client for the endpoint the environment names, with the deadline asked for.
    fn client(&self) -> Result<MetadataClient, Failure> {
        let client = MetadataClient::from_env()?;
        Ok(match self.deadline {
            Some(deadline) => client.with_deadline(deadline),
            None => client,
        })
    }
}

/// `5s`, `500ms`, `1m`, `1.5s`, or a number of seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let number: f64 = number.trim().parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1e3,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(seconds).ok()
}

/// What `summary` prints: the endpoint's API version and the identity's keys, `null` where
/// unknown.
#[derive(Serialize)]
struct Summary<'a> {
    api_version: Option<&'a str>,
    #[serde(flatten)]
    identity: &'a Identity,
}

impl<'a> Summary<'a> {
    fn of(m: &'a EcsMetadata) -> Self {
        Summary {
            api_version: m.api_version().map(|v| v.as_str()),
            identity: m.identity(),
        }
    }
}

enum Failure {
    Usage(String),
    NotOnEcs(Error),
    Endpoint(Error),
    Metrics(emf::EmfError),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        if e.is_not_on_ecs() {
            Failure::NotOnEcs(e)
        } else {
            Failure::Endpoint(e)
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("ecs-metadata: {message}\n\n{}", usage());
            ExitCode::from(2)
        }
        Err(Failure::NotOnEcs(e)) => {
            eprintln!("ecs-metadata: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Endpoint(e)) => {
            eprintln!("ecs-metadata: {e}");
            ExitCode::from(1)
        }
        Err(Failure::Metrics(e)) => {
            eprintln!("ecs-metadata: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &[String]) -> Result<(), Failure> {
    let Some(options) = Options::parse(args)? else {
        return Ok(());
    };
    let document = match options.command.unwrap_or("summary") {
        "serve" => return serve(&options.serve),
        "metrics" => return metrics(&options),
        "summary" => return summary(&options),
        "container" => Document::Container,
        "task" => Document::Task,
        "task-with-tags" => Document::TaskWithTags,
        "stats" => Document::Stats,
        "task-stats" => Document::TaskStats,
        other => return Err(Failure::Usage(format!("unknown command {other:?}"))),
    };
    let value = options.client()?.raw(document)?;
    print_json(&value, options.raw);
    Ok(())
}

fn summary(options: &Options<'_>) -> Result<(), Failure> {
    let metadata = options.client()?.fetch_metadata()?;
    if let Some(reason) = metadata.task_error() {
        eprintln!("ecs-metadata: warning: task metadata unavailable, summary is partial: {reason}");
    }
    print_json(&Summary::of(&metadata), options.raw);
    Ok(())
}

fn metrics(options: &Options<'_>) -> Result<(), Failure> {
    let client = options.client()?;
    let metadata = client.fetch_metadata()?;
    if let Some(reason) = metadata.task_error() {
        eprintln!(
            "ecs-metadata: warning: task metadata unavailable, containers are named by id: {reason}"
        );
    }
    let stats = client.task_stats()?;
    let figures = TaskFigures::new(&stats, metadata.task(), None);
    if options.emf {
        // One record a line already: `--raw` changes nothing.
        let records = emf::task_records(
            &figures,
            Some(&metadata),
            emf::DEFAULT_NAMESPACE,
            SystemTime::now(),
        )
        .map_err(Failure::Metrics)?;
        for name in &records.left_out {
            eprintln!(
                "ecs-metadata: warning: {name} left out: its value is one CloudWatch refuses"
            );
        }
        let _ = std::io::stdout().lock().write_all(records.lines.as_bytes());
    } else {
        print_json(&figures, options.raw);
    }
    Ok(())
}

fn print_json<T: Serialize>(value: &T, compact: bool) {
    let text = if compact {
        serde_json::to_string(value)
    } else {
        serde_json::to_string_pretty(value)
    };
    let mut out = std::io::stdout().lock();
    // A closed stdout (`| head`) is not worth a panic.
    let _ = writeln!(out, "{}", text.unwrap_or_default());
}

#[cfg(feature = "emulator")]
fn serve(args: &[&str]) -> Result<(), Failure> {
    use tracing_aws_ecs::emulator::{Emulator, Scenario};

    let mut scenario = Scenario::Fargate;
    let mut port = 0u16;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))
        };
        match *flag {
            "--scenario" => scenario = value()?.parse().map_err(Failure::Usage)?,
            "--port" => {
                let v = value()?;
                port = v
                    .parse()
                    .map_err(|_| Failure::Usage(format!("bad port {v:?}")))?;
            }
            other => return Err(Failure::Usage(format!("unexpected argument {other:?}"))),
        }
    }
    let emulator = Emulator::builder()
        .scenario(scenario)
        .port(port)
        .start()
        .map_err(|e| Failure::Usage(format!("cannot listen on 127.0.0.1:{port}: {e}")))?;
    eprintln!(
        "ecs-metadata: serving the {scenario} scenario on {}; in another shell run:",
        emulator.addr()
    );
    println!("{}", emulator.export_line());
    let _ = std::io::stdout().flush();
    loop {
        std::thread::park();
    }
}

#[cfg(not(feature = "emulator"))]
fn serve(_: &[&str]) -> Result<(), Failure> {
    Err(Failure::Usage(SERVE_ELSEWHERE.into()))
}
