//! 8 threads × 100,000 events through a real pipe (drained by `cat`, read back by a thread):
//! exactly 800,000 lines, each valid JSON, each enriched, none interleaved, and memory flat.

mod common;

use std::io::{BufRead, BufReader};

use common::{Pipe, fargate_metadata};
use tracing_subscriber::prelude::*;

const THREADS: usize = 8;
const EVENTS: usize = 100_000;

/// Resident memory in bytes, from /proc.
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[derive(Default)]
struct Tally {
    lines: usize,
    per_thread: [usize; THREADS],
    last_seq: [Option<usize>; THREADS],
}

#[test]
fn eight_threads_through_a_pipe() {
    let (pipe, output) = Pipe::echoed();
    let writer = pipe.writer();

    let reader = std::thread::spawn(move || {
        let mut tally = Tally::default();
        for line in BufReader::new(output).lines() {
            let line = line.expect("UTF-8 lines");
            // Cheap checks on every line; a full parse on every 50th.
            assert!(
                line.starts_with(r#"{"timestamp":""#) && line.ends_with("}}"),
                "cut or interleaved: {line}"
            );
            assert!(
                line.contains(r#","ecs":{"cluster":"MyEmptyCluster""#),
                "not enriched: {line}"
            );
            let thread = line
                .split(r#""thread":"#)
                .nth(1)
                .and_then(|r| r.split(',').next())
                .and_then(|t| t.parse::<usize>().ok())
                .expect("thread field");
            let seq = line
                .split(r#""seq":"#)
                .nth(1)
                .and_then(|r| r.split(',').next())
                .and_then(|t| t.parse::<usize>().ok())
                .expect("seq field");
            if tally.lines % 50 == 0 {
                let value: serde_json::Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                assert_eq!(value["seq"], seq);
            }
            // Each thread's lines arrive in order, none lost in between.
            assert_eq!(
                tally.last_seq[thread].map_or(0, |s| s + 1),
                seq,
                "thread {thread}"
            );
            tally.last_seq[thread] = Some(seq);
            tally.per_thread[thread] += 1;
            tally.lines += 1;
        }
        tally
    });

    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(writer)
        .layer();
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(layer));
    let mut memory = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|thread| {
                let dispatch = dispatch.clone();
                s.spawn(move || {
                    tracing::dispatcher::with_default(&dispatch, || {
                        let span = tracing::info_span!("worker", thread);
                        let _entered = span.enter();
                        for seq in 0..EVENTS {
                            tracing::info!(
                                seq,
                                payload =
                                    "a line of ordinary length with \"quotes\" and \n newlines",
                                "soak"
                            );
                        }
                    });
                })
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            memory.push(resident());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    memory.push(resident());
    drop(dispatch); // the writers go with the layer
    pipe.close();
    let tally = reader.join().unwrap();

    assert_eq!(tally.lines, THREADS * EVENTS);
    assert!(
        tally.per_thread.iter().all(|n| *n == EVENTS),
        "{:?}",
        tally.per_thread
    );
    // Flat: from the first tenth of the run to its end, resident memory grows by under 8 MiB.
    let settled = memory[memory.len() / 10];
    let peak = *memory.iter().max().unwrap();
    assert!(
        peak.saturating_sub(settled) < 8 << 20,
        "memory grew from {settled} to {peak} bytes"
    );
    println!(
        "soak: {} lines, resident memory {} -> {} KiB over {} samples",
        tally.lines,
        settled >> 10,
        peak >> 10,
        memory.len()
    );
}
