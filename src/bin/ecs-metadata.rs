//! `ecs-metadata`: print ECS task metadata in images without curl, or serve a local endpoint.

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use serde::Serialize;
use tracing_aws_ecs::endpoint::Document;
use tracing_aws_ecs::stats::TaskFigures;
use tracing_aws_ecs::{EcsMetadata, Error, Identity, MetadataClient, emf};

const USAGE: &str = r#"usage: ecs-metadata [summary|container|task|task-with-tags|stats|task-stats] [--raw]
       ecs-metadata metrics [--emf]
       ecs-metadata serve [--scenario fargate|ec2|managed-instances] [--port N]

Reads the ECS task metadata endpoint named by ECS_CONTAINER_METADATA_URI_V4
(or ECS_CONTAINER_METADATA_URI) and prints JSON on stdout.

  summary          the task's identity as one JSON object (the default)
  container        this container's metadata
  task             the task's metadata
  task-with-tags   the task's metadata with its tags (EC2)
  stats            this container's stats
  task-stats       every container's stats
  --raw            the payload on one line (for jq); otherwise indented
  metrics          CPU %, memory, network, block I/O and pids of the task and each
                   container, as {"task":{...},"containers":{"<name>":{...}},"skipped":{...}}
  --emf            the same as CloudWatch Embedded Metric Format lines
  serve            run a local endpoint emulator and print the variable to export

Exit status: 0 on success, 1 on endpoint or payload errors, 2 off ECS or on a usage error."#;

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
            eprintln!("ecs-metadata: {message}\n\n{USAGE}");
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
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return Ok(());
    }
    let command = args.first().map(String::as_str).unwrap_or("summary");
    if command == "serve" {
        return serve(&args[1..]);
    }
    if command == "metrics" {
        return metrics(&args[1..]);
    }
    let mut raw = false;
    for flag in args.iter().skip(1) {
        match flag.as_str() {
            "--raw" => raw = true,
            other => return Err(Failure::Usage(format!("unexpected argument {other:?}"))),
        }
    }
    let (command, raw) = match command {
        "--raw" => ("summary", true),
        other => (other, raw),
    };
    let path = match command {
        "summary" => return summary(),
        "container" => Document::Container,
        "task" => Document::Task,
        "task-with-tags" => Document::TaskWithTags,
        "stats" => Document::Stats,
        "task-stats" => Document::TaskStats,
        other => return Err(Failure::Usage(format!("unknown command {other:?}"))),
    };
    let value = MetadataClient::from_env()?.raw(path)?;
    print_json(&value, raw);
    Ok(())
}

fn summary() -> Result<(), Failure> {
    let metadata = MetadataClient::from_env()?.fetch_metadata()?;
    if let Some(reason) = metadata.task_error() {
        eprintln!("ecs-metadata: warning: task metadata unavailable, summary is partial: {reason}");
    }
    print_json(&Summary::of(&metadata), false);
    Ok(())
}

fn metrics(args: &[String]) -> Result<(), Failure> {
    let emf = match args {
        [] => false,
        [flag] if flag == "--emf" => true,
        [other, ..] => return Err(Failure::Usage(format!("unexpected argument {other:?}"))),
    };
    let client = MetadataClient::from_env()?;
    let metadata = client.fetch_metadata()?;
    if let Some(reason) = metadata.task_error() {
        eprintln!(
            "ecs-metadata: warning: task metadata unavailable, containers are named by id: {reason}"
        );
    }
    let stats = client.task_stats()?;
    let figures = TaskFigures::new(&stats, metadata.task(), None);
    if emf {
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
        print_json(&figures, false);
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
fn serve(args: &[String]) -> Result<(), Failure> {
    use tracing_aws_ecs::emulator::{Emulator, Scenario};

    let mut scenario = Scenario::Fargate;
    let mut port = 0u16;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))
        };
        match flag.as_str() {
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
fn serve(_: &[String]) -> Result<(), Failure> {
    Err(Failure::Usage(
        "serve needs the emulator: cargo run --features emulator --bin ecs-metadata -- serve"
            .into(),
    ))
}
