//! A panic as one JSON line: the moment a service most needs a good log line.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::cell::Cell;
use std::panic::PanicHookInfo;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

/// Installs a panic hook that writes each panic as one ERROR event through the global
/// subscriber (so, with [`init`](crate::init), as one JSON line on the logs' writer with the
/// ECS identity): the panic's message as `message`, `location` (`file:line:column`),
/// `thread` (its name, or its id when unnamed), and `backtrace` as one string when
/// `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) asks for one. The target is `panic`.
///
/// When the line was written, that is all: a panic is one event in CloudWatch. When it was
/// not (no subscriber, a filter that leaves it out, a writer that failed), the hook that was
/// installed before runs instead (by default Rust's, which prints the panic on stderr), so
/// that a panic is never silent. [`Builder::with_rust_panic_message`](crate::Builder::with_rust_panic_message)
/// runs it every time, as before (the awslogs driver ships its stderr lines as several events
/// without the identity). The exit status stays what Rust gives (101 when `main` panics).
/// Installing more than once changes nothing. The line is an ERROR in the panicking thread's
/// current span: with [`Buffering`](crate::Buffering), it flushes the request it happens in,
/// and no other.
///
/// [`init`](crate::init) and [`try_init`](crate::try_init) call it unless
/// [`Builder::with_panic_hook`](crate::Builder::with_panic_hook) says not to; call it
/// yourself on the [`layer`](crate::layer) path.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = WRITTEN.try_with(|written| written.set(false));
            log_panic(info);
            let written = WRITTEN.try_with(|written| written.replace(false));
            if written != Ok(true) || RUN_PREVIOUS.load(Ordering::Relaxed) {
                previous(info);
            }
        }));
    });
}

/// The target of the panic's line.
const TARGET: &str = "panic";

/// Whether the hook that was installed before runs after every panic line.
static RUN_PREVIOUS: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Whether a line of the panic's target was written on this thread since the hook began.
    static WRITTEN: Cell<bool> = const { Cell::new(false) };
}

/// Sets whether the hook installed before ours runs after every panic line, not only when
/// the line could not be written.
pub(crate) fn run_previous_hook(always: bool) {
    RUN_PREVIOUS.store(always, Ordering::Relaxed);
}

/// Notes that a line of `target` was written: the panic's, when the target is its.
pub(crate) fn note_written(target: &str) {
    if target == TARGET {
        let _ = WRITTEN.try_with(|written| written.set(true));
    }
}

fn log_panic(info: &PanicHookInfo<'_>) {
    let payload = info.payload();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    let location = info
        .location()
        .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
    let thread = std::thread::current();
    let thread_name = match thread.name() {
        Some(name) => name.to_owned(),
        None => format!("{:?}", thread.id()),
    };
    let backtrace = Backtrace::capture();
    let backtrace =
        (backtrace.status() == BacktraceStatus::Captured).then(|| backtrace.to_string());
    tracing::error!(
        target: TARGET,
        location,
        thread = thread_name,
        backtrace,
        "{message}"
    );
}
