//! Memory stays bounded whatever the service does: many requests open at once each holding a
//! line, requests kept open after their flush, and threads that log at thousands of
//! callsites. Counted with a global allocator that counts only on the thread that asks
//! (bytes, not a timing).

mod common;

#[path = "common/counting.rs"]
mod counting;

use std::sync::Mutex;

use common::{dynamic_callsite, fargate_metadata};
use counting::counted;
use tracing::metadata::Kind;
use tracing::{Dispatch, debug, error, info_span};
use tracing_aws_ecs::Buffering;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// The buffers' process-wide room is shared: one buffering test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// What one request costs beyond its lines when it holds any: its buffer's bookkeeping.
const PER_REQUEST: isize = 256;

const PADDING: &str = "a DEBUG line of a few hundred bytes, as a service writes them: \
    parsed the request, looked up the user, checked the cache, called the database, \
    and everything else a request does before it answers or fails; the details a \
    support engineer wants when it fails and nobody reads when it does not.";

fn dispatch(buffering: Option<Buffering>) -> Dispatch {
    let mut builder = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_writer(std::io::sink);
    if let Some(buffering) = buffering {
        builder = builder.with_buffering(buffering);
    }
    Dispatch::new(
        tracing_subscriber::registry()
            .with(LevelFilter::TRACE)
            .with(builder.layer()),
    )
}

/// The bytes left allocated by `requests` requests kept open, each having logged `lines`
/// DEBUG lines, and failed when `fail`.
fn open_requests(buffering: Option<Buffering>, requests: usize, lines: usize, fail: bool) -> isize {
    let dispatch = dispatch(buffering);
    tracing::dispatcher::with_default(&dispatch, || {
        let mut open = Vec::with_capacity(requests);
        // Warm: the registry's first pages, the per-thread buffers.
        for _ in 0..100 {
            info_span!("warm-up").in_scope(|| debug!("warm"));
        }
        let (_, bytes) = counted(|| {
            for request in 0..requests {
                let span = info_span!("request", request);
                span.in_scope(|| {
                    for step in 0..lines {
                        debug!(step, PADDING);
                    }
                    if fail {
                        error!("failed");
                    }
                });
                open.push(span);
            }
        });
        drop(open);
        bytes
    })
}

#[test]
fn open_requests_holding_lines_stay_within_the_cap() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const REQUESTS: usize = 50_000;
    let cap = 1024 * 1024;
    let plain = open_requests(None, REQUESTS, 1, false);
    let buffered = open_requests(
        Some(Buffering::default().with_max_total_bytes(cap)),
        REQUESTS,
        1,
        false,
    );
    let extra = buffered - plain;
    println!(
        "{REQUESTS} open requests holding a line: {plain} bytes without buffering, {buffered} \
         with (cap {cap})"
    );
    assert!(
        extra <= cap as isize + REQUESTS as isize * PER_REQUEST,
        "{extra} bytes beyond the requests themselves"
    );
}

#[test]
fn a_flushed_request_keeps_no_room() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const REQUESTS: usize = 1_000;
    let plain = open_requests(None, REQUESTS, 20, true);
    let buffered = open_requests(Some(Buffering::default()), REQUESTS, 20, true);
    let extra = buffered - plain;
    println!("{REQUESTS} open requests after their flush: {plain} bytes, {buffered} buffered");
    assert!(
        extra <= REQUESTS as isize * PER_REQUEST,
        "{extra} bytes kept by {REQUESTS} flushed requests"
    );
}

#[test]
fn per_thread_tables_stay_small_however_many_callsites() {
    const CALLSITES: usize = 10_000;
    const THREADS: usize = 4;
    let names = |prefix: &str| -> Vec<&'static [&'static str]> {
        (0..CALLSITES)
            .map(|i| -> &'static [&'static str] {
                let name: &'static str = Box::leak(format!("{prefix}{i}").into_boxed_str());
                Box::leak(Box::new([name, "message"]))
            })
            .collect()
    };
    let events: Vec<_> = names("e")
        .into_iter()
        .map(|names| dynamic_callsite(names, "memory", Kind::EVENT))
        .collect();
    let spans: Vec<_> = names("s")
        .into_iter()
        .map(|names| dynamic_callsite(names, "memory", Kind::SPAN))
        .collect();
    let dispatch = dispatch(None);
    let per_thread: Vec<isize> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                s.spawn(|| {
                    tracing::dispatcher::with_default(&dispatch, || {
                        let log = |range: std::ops::Range<usize>| {
                            for i in range {
                                let value = i as u64;
                                let span_meta = spans[i];
                                let fields = span_meta.fields();
                                let span = tracing::Span::new(
                                    span_meta,
                                    &fields.value_set_all(&[Some(&value), Some(&"span")]),
                                );
                                let _e = span.enter();
                                let event = events[i];
                                tracing::Event::dispatch(
                                    event,
                                    &event.fields().value_set_all(&[Some(&value), Some(&"m")]),
                                );
                            }
                        };
                        // Warm: the per-thread line buffers.
                        log(0..10);
                        counted(|| log(10..CALLSITES)).1
                    })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    println!("{CALLSITES} callsites on each of {THREADS} threads: {per_thread:?} bytes kept");
    for bytes in per_thread {
        assert!(bytes <= 64 * 1024, "{bytes} bytes kept by one thread");
    }
}
