//! What request-scoped buffering saves and costs.
//!
//! - Bytes: a service doing requests of 10 DEBUG lines and one INFO, 1 request in 100
//!   failing with an ERROR, with DEBUG reaching the layer: bytes written with buffering
//!   against without, over 10,000 requests.
//! - Time: a request of 10 DEBUG lines held and discarded, against one of 10 INFO lines
//!   written, to `io::sink()`; per line, span open and close included in both, the two in
//!   alternating turns.
//!
//! Prints a line `bytes …` and a line `per line …`; `scripts/bench.sh` does not run it: run
//! `cargo bench --bench buffering`.

mod support;

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tracing::{Dispatch, debug, error, info, info_span};
use tracing_aws_ecs::Buffering;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::prelude::*;

/// Counts the bytes written to it.
#[derive(Clone, Default)]
struct Counting(Arc<AtomicUsize>);

impl io::Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(buf.len(), Ordering::Relaxed);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Counting {
    type Writer = Counting;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn dispatch<W>(buffering: Option<Buffering>, writer: W) -> Dispatch
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_aws_ecs::builder()
        .with_metadata(support::metadata())
        .with_writer(writer);
    let builder = match buffering {
        Some(buffering) => builder.with_buffering(buffering),
        None => builder,
    };
    Dispatch::new(
        tracing_subscriber::registry()
            .with(LevelFilter::DEBUG)
            .with(builder.layer()),
    )
}

/// One request: 10 DEBUG lines, one INFO, and an ERROR when it fails.
fn request(n: u64, fails: bool) {
    let span = info_span!("request", method = "GET", path = "/orders", n);
    let _e = span.enter();
    for step in 0..10u64 {
        debug!(step, cache = "miss", "looked up order");
    }
    info!(status = 200, "served");
    if fails {
        error!(status = 500, "upstream failed");
    }
}

fn bytes() {
    let requests = 10_000u64;
    let mut written = [0usize; 2];
    for (i, buffering) in [None, Some(Buffering::default())].into_iter().enumerate() {
        let counting = Counting::default();
        tracing::dispatcher::with_default(&dispatch(buffering, counting.clone()), || {
            for n in 0..requests {
                request(n, n % 100 == 0);
            }
        });
        written[i] = counting.0.load(Ordering::Relaxed);
    }
    println!(
        "bytes without buffering {} | with {} | ratio {:.3}",
        written[0],
        written[1],
        written[1] as f64 / written[0] as f64
    );
}

/// One request of 10 lines at `level`, in its span.
fn ten_lines(held: bool) {
    let span = info_span!("request", method = "GET");
    let _e = span.enter();
    for step in 0..10u64 {
        if held {
            debug!(step, cache = "miss", "looked up order");
        } else {
            info!(step, cache = "miss", "looked up order");
        }
    }
}

/// Held against written, in alternating turns so that both see the machine alike: 25 turns
/// of 10,000 requests each (the first dropped as warm-up), the median ns a line of each.
fn per_line() {
    const REQUESTS: u32 = 10_000;
    let held = dispatch(Some(Buffering::default()), io::sink);
    let written = dispatch(None, io::sink);
    let mut times = [Vec::new(), Vec::new()];
    for turn in 0..25 {
        for (i, (dispatch, is_held)) in [(&held, true), (&written, false)].into_iter().enumerate() {
            tracing::dispatcher::with_default(dispatch, || {
                let start = Instant::now();
                for _ in 0..REQUESTS {
                    ten_lines(is_held);
                }
                if turn > 0 {
                    times[i].push(start.elapsed().as_nanos() as f64 / f64::from(REQUESTS * 10));
                }
            });
        }
    }
    let [held, written] = times.map(|mut times| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    });
    println!(
        "per line, 10 lines a request: DEBUG held and discarded {held:.0} ns | INFO written \
         {written:.0} ns | ratio {:.2}",
        held / written
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    bytes();
    per_line();
}
