//! A global allocator that counts allocations on the threads that ask it to, for tests and
//! benches that check the per-event path allocates nothing. Not part of `common`: a binary
//! has one global allocator, so only the files that count include it (`#[path]`).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// This thread's count: tests counting at once on other threads do not add to it.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    /// Bytes allocated less bytes freed on this thread while counting.
    static NET_BYTES: Cell<isize> = const { Cell::new(0) };
}

/// Counts an allocation of `bytes` (negative: freed) if this thread counts.
fn count(allocation: bool, bytes: isize) {
    if COUNTING.with(Cell::get) {
        if allocation {
            ALLOCATIONS.with(|n| n.set(n.get() + 1));
        }
        NET_BYTES.with(|n| n.set(n.get() + bytes));
    }
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting only reads and
// writes const-initialised thread-locals, which does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(true, layout.size() as isize);
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(false, -(layout.size() as isize));
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(true, new_size as isize - layout.size() as isize);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations (and reallocations) made by `f`, on this thread.
pub fn allocations(f: impl FnOnce()) -> usize {
    counted(f).0
}

/// Allocations (and reallocations) made by `f` on this thread, and the bytes it left
/// allocated (those it allocated less those it freed).
pub fn counted(f: impl FnOnce()) -> (usize, isize) {
    let before = (ALLOCATIONS.with(Cell::get), NET_BYTES.with(Cell::get));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    (
        ALLOCATIONS.with(Cell::get) - before.0,
        NET_BYTES.with(Cell::get) - before.1,
    )
}
