//! ns/event of every configuration in `support::CONFIGS`, on both event shapes, to
//! `io::sink()` and to a real pipe; two threads at once; and start-up.
//!
//! `scripts/bench.sh` runs this and prints the table for BENCHMARKS.md.

mod support;

use std::hint::black_box;
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use support::{CONFIGS, Config, Pipe, Shape, event, our_line};
use tracing::Dispatch;
use tracing_aws_ecs::emulator::{ALWAYS, Emulator, Fault, Route, Scenario};
use tracing_aws_ecs::{FieldScheme, MetadataClient};

/// The layer start-up builds with what it read (off ECS, nothing: the process's cache says so).
fn layer(
    metadata: Option<tracing_aws_ecs::EcsMetadata>,
) -> tracing_aws_ecs::EcsLayer<tracing_subscriber::Registry, fn() -> std::io::Sink> {
    let builder = tracing_aws_ecs::builder().with_writer(std::io::sink as fn() -> std::io::Sink);
    match metadata {
        Some(metadata) => builder.with_metadata(metadata).layer(),
        None => builder.layer(),
    }
}

fn per_event(c: &mut Criterion) {
    for shape in [Shape::OneSpan, Shape::ThreeSpans] {
        let line = our_line(shape);
        for writer in ["sink", "pipe"] {
            let mut group = c.benchmark_group(format!("{} | {writer}", shape.name()));
            let pipe = (writer == "pipe").then(Pipe::drained);
            for config in CONFIGS {
                let dispatch = match &pipe {
                    Some(pipe) => config.dispatch(pipe.writer()),
                    None => config.dispatch(std::io::sink),
                };
                group.bench_function(config.name(), |b| match &dispatch {
                    Some(dispatch) => tracing::dispatcher::with_default(dispatch, || {
                        shape.within(config, || b.iter(event));
                    }),
                    None => match &pipe {
                        Some(pipe) => {
                            let writer = pipe.writer();
                            b.iter(|| {
                                use tracing_subscriber::fmt::MakeWriter;
                                let _ = writer.make_writer().write_all(black_box(&line));
                            });
                        }
                        None => b.iter(|| {
                            let _ = std::io::sink().write_all(black_box(&line));
                        }),
                    },
                });
            }
            group.finish();
        }
    }
}

/// Two threads logging at once through one subscriber: ns per event over both.
fn two_threads(c: &mut Criterion) {
    for writer in ["sink", "pipe"] {
        let mut group = c.benchmark_group(format!("two threads | one span | {writer}"));
        for config in [Config::Baseline, Config::Ours(Some(FieldScheme::Nested))] {
            let pipe = Pipe::drained();
            let dispatch = match writer {
                "pipe" => config.dispatch(pipe.writer()),
                _ => config.dispatch(std::io::sink),
            };
            two_threads_one(&mut group, config, dispatch.unwrap());
        }
        group.finish();
    }
}

fn two_threads_one(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    config: Config,
    dispatch: Dispatch,
) {
    group.bench_function(config.name(), |b| {
        b.iter_custom(|iters| {
            let per_thread = iters.div_ceil(2);
            let started = Instant::now();
            thread::scope(|s| {
                for _ in 0..2 {
                    let dispatch: &Dispatch = &dispatch;
                    s.spawn(move || {
                        tracing::dispatcher::with_default(dispatch, || {
                            Shape::OneSpan.within(config, || (0..per_thread).for_each(|_| event()));
                        });
                    });
                }
            });
            started.elapsed()
        });
    });
}

/// What `try_init` spends before the first line: the fetch and the formatter.
fn startup(c: &mut Criterion) {
    let mut group = c.benchmark_group("startup");
    group.sample_size(20);
    let emulator = Emulator::start(Scenario::Fargate).unwrap();
    let client = emulator.client();
    group.bench_function("on ECS: fetch container + task from the emulator", |b| {
        b.iter(|| {
            let meta = client.fetch_metadata().unwrap();
            black_box(layer(Some(meta)))
        })
    });
    group.bench_function("off ECS: discover, give up, build", |b| {
        b.iter(|| {
            let meta = MetadataClient::from_env()
                .and_then(|c| c.fetch_metadata())
                .ok();
            black_box(layer(meta))
        })
    });
    let stalled = Emulator::start(Scenario::Fargate).unwrap();
    stalled.inject(
        Route::Any,
        Fault::StallBeforeHeaders(Duration::from_secs(60)),
        ALWAYS,
    );
    let deadline = Duration::from_millis(250);
    let client = stalled
        .client()
        .with_deadline(deadline)
        .with_request_timeout(deadline);
    group.sample_size(10);
    group.bench_function("stalled endpoint, 250 ms deadline", |b| {
        b.iter(|| black_box(client.fetch_metadata().is_err()))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(2));
    targets = per_event, two_threads, startup
}
criterion_main!(benches);
