//! What a service's own code can do to its lines, and the lines survive: a `Debug` impl that
//! logs or panics while a held line is formatted, a request's error racing its DEBUG lines on
//! another thread, two buffering layers in one registry.
//!
//! The subscriber is global, as `init()` installs it: `tracing` drops an event logged inside
//! another's dispatch while any scoped (`with_default`) subscriber is in use, so the tests
//! take turns, and only the one that needs two layers uses a scoped one.

mod common;

use std::fmt;
use std::sync::MutexGuard;

use common::{Capture, fargate_metadata};
use tracing::{debug, error, info, info_span};
use tracing_aws_ecs::Buffering;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// The global subscriber, installed once: a buffering layer writing to the returned capture.
/// The tests take turns, each starting from an empty capture.
fn output() -> (MutexGuard<'static, ()>, &'static Capture) {
    common::global_capture(|output| {
        tracing_subscriber::registry()
            .with(LevelFilter::TRACE)
            .with(layer(output))
            .init();
    })
}

fn layer<S>(out: &Capture) -> tracing_aws_ecs::EcsLayer<S, Capture>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_buffering(Buffering::default())
        .with_writer(out.clone())
        .layer()
}

fn messages(out: &Capture) -> Vec<String> {
    out.lines()
        .iter()
        .map(|l| l["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A value whose `Debug` runs `f` first.
struct Runs<F: Fn()>(F);

impl<F: Fn()> fmt::Debug for Runs<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)();
        f.write_str("ran")
    }
}

#[test]
fn an_info_line_logged_while_a_held_line_is_formatted_is_written() {
    let (_serial, out) = output();
    {
        let request = info_span!("request");
        let _e = request.enter();
        debug!(value = ?Runs(|| info!("from inside Debug")), "held");
    }
    // The request ended without an error: its DEBUG line is discarded, the INFO line is not.
    assert_eq!(messages(out), ["from inside Debug"]);
}

#[test]
fn an_error_logged_while_a_held_line_is_formatted_flushes_it_in_order() {
    let (_serial, out) = output();
    {
        let request = info_span!("request");
        let _e = request.enter();
        debug!("before");
        debug!(value = ?Runs(|| error!("from inside Debug")), "held");
    }
    assert_eq!(messages(out), ["before", "from inside Debug", "held"]);
}

#[test]
fn a_debug_line_logged_while_a_held_line_is_formatted_is_held_too() {
    let (_serial, out) = output();
    {
        let request = info_span!("request");
        let _e = request.enter();
        debug!(value = ?Runs(|| debug!("from inside Debug")), "held");
    }
    assert_eq!(messages(out), Vec::<String>::new(), "a healthy request");
}

#[test]
fn a_panic_while_a_held_line_is_formatted_leaves_nothing_behind() {
    let (_serial, out) = output();
    {
        let request = info_span!("request");
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            request.in_scope(|| debug!(value = ?Runs(|| panic!("in Debug")), "held"));
        }));
        assert!(caught.is_err());
        drop(request);
        // Later lines of this thread go where they belong.
        info!("outside any request");
        error!("an error outside any request");
        let next = info_span!("next request");
        next.in_scope(|| {
            debug!("next held");
            error!("next failed");
        });
    }
    assert_eq!(
        messages(out),
        [
            "outside any request",
            "an error outside any request",
            "next held",
            "next failed"
        ]
    );
}

#[test]
fn a_debug_line_racing_its_requests_error_is_never_lost() {
    const REQUESTS: u64 = 3_000;
    const DEBUG_LINES: u64 = 40;
    let (_serial, out) = output();
    for request in 0..REQUESTS {
        let root = info_span!("request", request);
        std::thread::scope(|s| {
            s.spawn(|| {
                root.in_scope(|| {
                    for step in 0..DEBUG_LINES {
                        debug!(step, "step");
                    }
                });
            });
            s.spawn(|| root.in_scope(|| error!("failed")));
        });
    }
    let lines = out.lines();
    let mut steps = vec![0u64; REQUESTS as usize];
    for line in lines.iter().filter(|l| l["message"] == "step") {
        steps[line["request"].as_u64().unwrap() as usize] += 1;
    }
    let short: Vec<(usize, u64)> = steps
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n != DEBUG_LINES)
        .map(|(request, &n)| (request, n))
        .collect();
    assert!(
        short.is_empty(),
        "{} of {REQUESTS} failing requests lost DEBUG lines: {:?}",
        short.len(),
        &short[..short.len().min(10)]
    );
    assert_eq!(lines.len() as u64, REQUESTS * (DEBUG_LINES + 1));
}

#[test]
fn two_buffering_layers_keep_their_own_buffers() {
    let (_serial, _) = output();
    let (first, second) = (Capture::default(), Capture::default());
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::TRACE)
        .with(layer(&first))
        .with(layer(&second));
    tracing::subscriber::with_default(subscriber, || {
        let request = info_span!("request");
        let _e = request.enter();
        debug!("held");
        error!("failed");
    });
    assert_eq!(messages(&first), ["held", "failed"]);
    assert_eq!(messages(&second), ["held", "failed"]);
}

/// A thread-local destructor that logs, run after the formatter's own per-thread buffers
/// are gone: its line is written (it used to abort the process, as the stock formatter
/// does, and the panic hook's own failure hid why).
#[test]
fn a_thread_local_destructor_can_log() {
    struct LogsOnDrop;
    impl Drop for LogsOnDrop {
        fn drop(&mut self) {
            info!("from a thread-local destructor");
        }
    }
    thread_local! {
        static LOGGER: LogsOnDrop = const { LogsOnDrop };
    }
    let (_serial, out) = output();
    std::thread::spawn(|| {
        // Made before the formatter's buffers on this thread: destroyed after them.
        LOGGER.with(|_| {});
        info!("before");
    })
    .join()
    .unwrap();
    assert_eq!(messages(out), ["before", "from a thread-local destructor"]);
}
