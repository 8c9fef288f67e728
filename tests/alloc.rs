//! The per-event path allocates nothing once warm: counted with a global allocator that
//! counts only while this thread asks it to (deterministic, not a timing).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::fargate_metadata;
use tracing::{info, info_span};
use tracing_aws_ecs::{ExtraFields, FieldScheme};
use tracing_subscriber::prelude::*;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting only reads
// a const-initialised thread-local and bumps an atomic, neither of which allocates.
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

/// Allocations made by `f`, on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[derive(Debug)]
struct Failure;
impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("upstream timed out")
    }
}
impl std::error::Error for Failure {}

fn per_event_allocations(scheme: FieldScheme, extra: ExtraFields, nested_spans: bool) -> usize {
    let layer = tracing_aws_ecs::builder()
        .with_metadata(fargate_metadata())
        .with_scheme(scheme)
        .with_fields(extra)
        .with_writer(std::io::sink)
        .layer();
    let subscriber = tracing_subscriber::registry().with(layer);
    tracing::subscriber::with_default(subscriber, || {
        let outer = info_span!("request", method = "GET", path = "/orders");
        let _outer = outer.enter();
        let inner = nested_spans.then(|| info_span!("db", table = "orders", rows = 3));
        let _inner = inner.as_ref().map(|s| s.enter());
        let event = || {
            let error = Failure;
            info!(
                order_id = 42u64,
                user = "ada",
                cached = true,
                "order placed"
            );
            info!(latency = 1.25f64, debug = ?[1, 2, 3], error = &error as &dyn std::error::Error, "mixed \"types\"\n");
        };
        // Warm up: callsite registration, the per-thread line buffer.
        for _ in 0..10 {
            event();
        }
        allocations(|| {
            for _ in 0..1000 {
                event();
            }
        })
    })
}

#[test]
fn zero_allocations_per_event_in_every_scheme() {
    for scheme in [
        FieldScheme::Nested,
        FieldScheme::FireLens,
        FieldScheme::OpenTelemetry,
    ] {
        for extra in [ExtraFields::NONE, ExtraFields::ALL] {
            for nested in [false, true] {
                assert_eq!(
                    per_event_allocations(scheme, extra, nested),
                    0,
                    "{scheme} {extra:?} nested={nested}"
                );
            }
        }
    }
}

#[test]
fn the_counter_counts() {
    // The allocator really sees allocations on this thread while counting.
    let n = allocations(|| {
        let v: Vec<u8> = Vec::with_capacity(64);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}
