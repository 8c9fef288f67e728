//! Heap allocations per event for every configuration and shape, counted with a counting
//! global allocator over 1,000 warm events to `io::sink()`. Prints one tab-separated line per
//! row: `shape`, `configuration`, `allocations per event`.

mod support;

use std::io::Write;

use support::{CONFIGS, Shape, event, our_line};

#[path = "../tests/common/counting.rs"]
mod counting;

const EVENTS: usize = 1000;

fn count(f: impl Fn()) -> f64 {
    for _ in 0..10 {
        f();
    }
    let total = counting::allocations(|| (0..EVENTS).for_each(|_| f()));
    total as f64 / EVENTS as f64
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    for shape in [Shape::OneSpan, Shape::ThreeSpans] {
        let line = our_line(shape);
        for config in CONFIGS {
            let per_event = match config.dispatch(std::io::sink) {
                Some(dispatch) => tracing::dispatcher::with_default(&dispatch, || {
                    shape.within(config, || count(event))
                }),
                None => count(|| {
                    let _ = std::io::sink().write_all(std::hint::black_box(&line));
                }),
            };
            println!("{}\t{}\t{per_event}", shape.name(), config.name());
        }
    }
}
