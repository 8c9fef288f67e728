//! Heap allocations per event for every configuration and shape, counted with a counting
//! global allocator over 1,000 warm events to `io::sink()`. Prints one tab-separated line per
//! row: `shape`, `configuration`, `allocations per event`.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{CONFIGS, Shape, event, our_line};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call goes to the system allocator unchanged; counting reads a
// const-initialised thread-local and bumps an atomic, neither of which allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const EVENTS: usize = 1000;

fn count(f: impl Fn()) -> f64 {
    for _ in 0..10 {
        f();
    }
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    for _ in 0..EVENTS {
        f();
    }
    COUNTING.with(|c| c.set(false));
    (ALLOCATIONS.load(Ordering::SeqCst) - before) as f64 / EVENTS as f64
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
