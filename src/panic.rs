//! A panic as one JSON line: the moment a service most needs a good log line.

use std::backtrace::{Backtrace, BacktraceStatus};
use std::panic::PanicHookInfo;
use std::sync::Once;

/// Installs a panic hook that writes each panic as one ERROR event through the global
/// subscriber (so, with [`init`](crate::init), as one JSON line on the logs' writer with the
/// ECS identity): the panic's message as `message`, `location` (`file:line:column`),
/// `thread` (its name, or its id when unnamed), and `backtrace` as one string when
/// `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) asks for one. The target is `panic`.
///
/// The hook that was installed before still runs after it (by default Rust's, which prints
/// the panic on stderr; the awslogs driver ships stderr too, as several events without the
/// identity). To keep only the JSON line, install a silent hook first:
/// `std::panic::set_hook(Box::new(|_| {}))`. The exit status stays what Rust gives (101
/// when `main` panics). Installing more than once changes nothing. The line is an ERROR in
/// the panicking thread's current span: with [`Buffering`](crate::Buffering), it flushes
/// the request it happens in, and no other.
///
/// [`init`](crate::init) and [`try_init`](crate::try_init) call it unless
/// [`Builder::with_panic_hook`](crate::Builder::with_panic_hook) says not to; call it
/// yourself on the [`layer`](crate::layer) path.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            log_panic(info);
            previous(info);
        }));
    });
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
        target: "panic",
        location,
        thread = thread_name,
        backtrace,
        "{message}"
    );
}
