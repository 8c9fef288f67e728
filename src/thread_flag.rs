//! A per-thread flag raised for the length of a call: what this thread is doing in the
//! crate (writing a line, making a request of its own), for what runs inside the call on the
//! same thread (a panic hook, the layer) to know.

use std::cell::Cell;
use std::thread::LocalKey;

/// A flag of one thread-local cell.
pub(crate) struct ThreadFlag(pub(crate) &'static LocalKey<Cell<bool>>);

impl ThreadFlag {
    /// Whether the flag is raised on this thread (never while the thread is torn down).
    pub(crate) fn is_raised(&self) -> bool {
        self.0.try_with(Cell::get).unwrap_or(false)
    }

    /// Raises the flag on this thread until the guard is dropped (a panic hook runs before
    /// the unwinding drops it).
    pub(crate) fn raise(&self) -> Raised {
        Raised {
            flag: self.0,
            before: self.0.try_with(|flag| flag.replace(true)).unwrap_or(false),
        }
    }
}

/// A raised [`ThreadFlag`]; dropping it lowers it again, as it was.
pub(crate) struct Raised {
    flag: &'static LocalKey<Cell<bool>>,
    before: bool,
}

impl Drop for Raised {
    fn drop(&mut self) {
        let _ = self.flag.try_with(|flag| flag.set(self.before));
    }
}
