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
/// `RUST_BACKTRACE` (or `RUST_LIB_BACKTRACE`) asks for one: from the frame that panicked, at
/// most 24 frames and 8 KiB, cut at a frame, with a last line that says how many frames were
/// left out. The target is `panic`. tower-http's `CatchPanicLayer` logs its own ERROR for a
/// panic it catches: when this line was written, that one is left out.
///
/// A panic raised while its thread writes a line (a writer that panics) is not logged
/// through that writer, which may hold a lock of its own: the hook installed before says it
/// on stderr.
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
            // Raised while this thread writes a line (a writer that panics, holding its own
            // lock maybe): logging through the same writer could wait forever.
            if crate::write::WRITING.is_raised() {
                previous(info);
                return;
            }
            let _ = PANICS.try_with(|panics| panics.set(panics.get().wrapping_add(1)));
            let _ = WRITTEN.try_with(|written| written.set(false));
            log_panic(info);
            // A background writer holds the line: out before the process may end.
            crate::background::drain_all(crate::background::DRAIN_WAIT);
            let written = WRITTEN.try_with(|written| written.replace(false));
            if written == Ok(true) {
                let _ = LINES.try_with(|lines| lines.set(lines.get().wrapping_add(1)));
            }
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
    /// How many panics the hook has seen on this thread.
    static PANICS: Cell<u64> = const { Cell::new(0) };
    /// How many panic lines the hook has written on this thread, and how many of them a
    /// second report (tower-http's) was left out for.
    static LINES: Cell<u64> = const { Cell::new(0) };
    static SECOND_REPORTS: Cell<u64> = const { Cell::new(0) };
}

/// The target of tower-http's `CatchPanicLayer`, which logs an ERROR for each panic it
/// catches, on the panicking thread, after the hook.
const CATCH_PANIC_TARGET: &str = "tower_http::catch_panic";

thread_local! {
    /// The address of the event being dispatched that a layer of ours left out as a second
    /// report (0 for none): the other layers of ours leave it out too.
    static LEFT_OUT: Cell<usize> = const { Cell::new(0) };
}

/// An event's dispatch begins (every layer's `event_enabled` runs before any `on_event`):
/// what was left out belongs to the event before.
pub(crate) fn event_begins() {
    let _ = LEFT_OUT.try_with(|left_out| left_out.set(0));
}

/// Whether `event` reports again a panic whose line the hook wrote: tower-http's
/// `CatchPanicLayer`'s ERROR, one per panic. A panic is one ERROR line, in each layer of
/// ours: the event the first layer left out, the others leave out too.
pub(crate) fn is_second_report(event: &tracing::Event<'_>) -> bool {
    let meta = event.metadata();
    if *meta.level() != tracing::Level::ERROR || meta.target() != CATCH_PANIC_TARGET {
        return false;
    }
    let address = std::ptr::from_ref(event) as usize;
    if LEFT_OUT.try_with(Cell::get) == Ok(address) {
        return true;
    }
    let lines = LINES.try_with(Cell::get).unwrap_or(0);
    let second = SECOND_REPORTS.try_with(|reported| reported.replace(lines) != lines) == Ok(true);
    if second {
        let _ = LEFT_OUT.try_with(|left_out| left_out.set(address));
    }
    second
}

/// How many panics the hook has seen on this thread: a service that sees it change while it
/// polls what it wraps knows that a panic was caught inside, and its line written.
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) fn panics_on_this_thread() -> u64 {
    PANICS.try_with(Cell::get).unwrap_or(0)
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
    // The line's `threadName` says it already when thread names are on.
    let thread = (!THREAD_NAMES.load(Ordering::Relaxed)).then(|| {
        let thread = std::thread::current();
        match thread.name() {
            Some(name) => name.to_owned(),
            None => format!("{:?}", thread.id()),
        }
    });
    let backtrace = Backtrace::capture();
    let backtrace = (backtrace.status() == BacktraceStatus::Captured)
        .then(|| from_the_panicking_frame(&backtrace.to_string()));
    tracing::error!(
        target: TARGET,
        location,
        thread,
        backtrace,
        "{message}"
    );
}

/// Whether a layer writes `threadName` on every line: the panic line then has no `thread`.
static THREAD_NAMES: AtomicBool = AtomicBool::new(false);

/// Notes that a layer writes thread names on every line.
pub(crate) fn thread_names_on_lines() {
    THREAD_NAMES.store(true, Ordering::Relaxed);
}

/// The most frames of a backtrace the panic line carries, from the frame that panicked.
const MAX_FRAMES: usize = 24;
/// The most bytes of a backtrace the panic line carries: with the rest of the line, well
/// within the 16 KiB a FireLens (Fluent Bit) record takes whole.
const MAX_BACKTRACE_BYTES: usize = 8 * 1024;

/// A backtrace from the frame that panicked: the frames above it (the hook's, and those of
/// the standard library's panic machinery) are left out, and so are those past
/// [`MAX_FRAMES`] or [`MAX_BACKTRACE_BYTES`] (the runtime's, mostly), with a last line that
/// says how many.
fn from_the_panicking_frame(backtrace: &str) -> String {
    /// Whether a frame's symbol names the standard library's code.
    fn standard(symbol: &str) -> bool {
        [
            "std::",
            "core::",
            "alloc::",
            "<std::",
            "<core::",
            "<alloc::",
            "__rustc::",
        ]
        .iter()
        .any(|prefix| symbol.starts_with(prefix))
    }
    /// Whether a frame's source is the standard library's: its generic functions are built
    /// into the caller's crate, and with `debug = "line-tables-only"` their symbols have no
    /// path (`unwrap<u32>`), but their `at` line is under the toolchain's `library`.
    fn standard_source(at: &str) -> bool {
        [
            "/library/std/src/",
            "/library/core/src/",
            "/library/alloc/src/",
        ]
        .iter()
        .any(|library| at.contains(library))
    }
    /// Whether a frame's symbol is where a panic enters the standard library (not the
    /// runtime's `catch_unwind` frames further down).
    fn panic_entry(symbol: &str) -> bool {
        [
            "rust_begin_unwind",
            "core::panicking::panic",
            "std::panicking::begin_panic",
            "std::panicking::rust_panic_with_hook",
            "std::panicking::panic_with_hook",
            "std::panicking::panic_handler",
        ]
        .iter()
        .any(|entry| symbol.contains(entry))
    }
    // Frames are `N: symbol` lines, each followed by its `at file:line` lines.
    fn frame(line: &str) -> Option<&str> {
        let (number, symbol) = line.trim_start().split_once(": ")?;
        number.bytes().all(|b| b.is_ascii_digit()).then_some(symbol)
    }
    let lines: Vec<&str> = backtrace.lines().collect();
    // Each frame: its first line, its symbol, and its first `at` line, if any.
    let parsed: Vec<(usize, &str, Option<&str>)> = lines
        .iter()
        .enumerate()
        .filter_map(|(at, line)| {
            let symbol = frame(line)?;
            let source = lines
                .get(at + 1)
                .map(|next| next.trim_start())
                .filter(|next| next.starts_with("at "));
            Some((at, symbol, source))
        })
        .collect();
    let std_frame = |(_, symbol, source): &(usize, &str, Option<&str>)| {
        standard(symbol) || source.is_some_and(standard_source)
    };
    // The hook's frames come first, and their symbols may carry no path (`log_panic`, with
    // line tables only): the panicking frame is the first after the standard library's
    // panic entry that is not the standard library's (`unwrap_failed`, `unwrap<u32>`, …).
    // With no entry among them (a trace cut short), the first frame that is neither the
    // standard library's nor this hook's.
    let entry = parsed.iter().position(|(_, symbol, _)| panic_entry(symbol));
    let start = match entry {
        Some(entry) => parsed[entry..]
            .iter()
            .find(|f| !std_frame(f) && !panic_entry(f.1)),
        None => parsed
            .iter()
            .find(|f| !std_frame(f) && !f.1.starts_with("tracing_aws_ecs::panic::")),
    }
    .map_or(0, |(at, _, _)| *at);
    let mut kept = String::new();
    let mut frames = 0;
    let mut left_out = 0;
    // Each frame whole, with its `at` lines, or not at all.
    let mut frame_lines: Vec<&str> = Vec::new();
    let mut keep = |frame_lines: &mut Vec<&str>| {
        if frame_lines.is_empty() {
            return;
        }
        let size: usize = frame_lines.iter().map(|l| l.len() + 1).sum();
        if left_out == 0 && frames < MAX_FRAMES && kept.len() + size <= MAX_BACKTRACE_BYTES {
            for line in frame_lines.iter() {
                if !kept.is_empty() {
                    kept.push('\n');
                }
                kept.push_str(line);
            }
            frames += 1;
        } else {
            left_out += 1;
        }
        frame_lines.clear();
    };
    for line in &lines[start..] {
        if frame(line).is_some() {
            keep(&mut frame_lines);
        }
        frame_lines.push(line);
    }
    keep(&mut frame_lines);
    if left_out > 0 {
        kept.push_str(&format!("\n… {left_out} more frames left out"));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backtrace_starts_at_the_panicking_frame() {
        let backtrace = "   0: std::backtrace::Backtrace::capture
             at /rustc/library/std/src/backtrace.rs:296:9
   1: tracing_aws_ecs::panic::log_panic
   2: std::panicking::rust_panic_with_hook
   3: std::panicking::begin_panic_handler::{{closure}}
   4: __rustc::rust_begin_unwind
   5: core::panicking::panic_fmt
   6: orders::handle
             at src/main.rs:12:5
   7: orders::main";
        assert_eq!(
            from_the_panicking_frame(backtrace),
            "   6: orders::handle\n             at src/main.rs:12:5\n   7: orders::main"
        );
        // Built with `debug = "line-tables-only"`: the crates' own symbols have no path.
        let short = "   0: log_panic
             at ./src/panic.rs:153:21
   1: tracing_aws_ecs::panic::install_panic_hook::{{closure}}::{{closure}}
   2: <alloc::boxed::Box<dyn Fn> as core::ops::function::Fn>::call
   3: std::panicking::panic_with_hook
   4: std::panicking::panic_handler::{closure#0}
   5: __rustc::rust_begin_unwind
   6: core::panicking::panic_fmt
   7: core::option::unwrap_failed
   8: handle
             at ./src/main.rs:12:5
   9: main";
        assert_eq!(
            from_the_panicking_frame(short),
            "   8: handle\n             at ./src/main.rs:12:5\n   9: main"
        );
    }

    /// Generic functions of the standard library are built into the caller's crate: with
    /// line tables only, their symbols have no path, and their source tells them.
    #[test]
    fn the_standard_librarys_generic_frames_are_left_out() {
        let unwrap = "   0: log_panic
             at ./src/panic.rs:153:21
   1: std::panicking::panic_with_hook
             at /rustc/5980/library/std/src/panicking.rs:833:13
   2: __rustc::rust_begin_unwind
             at /rustc/5980/library/std/src/panicking.rs:689:5
   3: core::panicking::panic_fmt
             at /rustc/5980/library/core/src/panicking.rs:80:14
   4: core::option::unwrap_failed
             at /rustc/5980/library/core/src/option.rs:2150:5
   5: unwrap<u32>
             at /rustc/5980/library/core/src/option.rs:1016:21
   6: handle
             at ./src/main.rs:7:5
   7: main";
        assert!(from_the_panicking_frame(unwrap).starts_with("   6: handle\n"));
        // `panic_any`, and an index out of bounds (an impl of a `core` trait for a primitive,
        // whose symbol starts with `<usize as core::`).
        let panic_any = "   0: log_panic
   1: std::panicking::rust_panic_with_hook
   2: begin_panic<u8>
             at /home/u/.rustup/toolchains/stable/lib/rustlib/src/rust/library/std/src/panicking.rs:769:5
   3: std::panic::panic_any<u8>
   4: orders::handle
             at src/main.rs:9:5";
        assert!(from_the_panicking_frame(panic_any).starts_with("   4: orders::handle\n"));
        let index = "   0: tracing_aws_ecs::panic::log_panic
   1: std::panicking::begin_panic_handler::{{closure}}
   2: rust_begin_unwind
   3: core::panicking::panic_bounds_check
   4: <usize as core::slice::index::SliceIndex<[T]>>::index
             at /rustc/5980/library/core/src/slice/index.rs:274:10
   5: orders::handle
             at src/main.rs:11:5";
        assert!(from_the_panicking_frame(index).starts_with("   5: orders::handle\n"));
    }

    /// The runtime's `std::panicking` frames further down are not where the panic entered.
    #[test]
    fn without_a_panic_entry_the_first_frame_past_the_hook() {
        let cut_short = "   0: tracing_aws_ecs::panic::log_panic
   1: tracing_aws_ecs::panic::install_panic_hook::{{closure}}
   2: myapp::handle
   3: myapp::main
   4: std::panicking::catch_unwind::do_call
   5: std::rt::lang_start_internal
   6: main";
        assert!(from_the_panicking_frame(cut_short).starts_with("   2: myapp::handle\n"));
        assert_eq!(from_the_panicking_frame(""), "");
        // Nothing to leave out: as it is.
        assert_eq!(
            from_the_panicking_frame("   0: a\n   1: b"),
            "   0: a\n   1: b"
        );
    }

    #[test]
    fn a_long_backtrace_is_cut_at_a_frame() {
        let deep: String = (0..200)
            .map(|i| format!("  {i:>2}: service::level{i}\n             at src/deep.rs:{i}:5\n"))
            .collect();
        let kept = from_the_panicking_frame(&deep);
        assert_eq!(
            kept.lines().filter(|l| l.contains(": service::")).count(),
            MAX_FRAMES
        );
        assert!(kept.ends_with(&format!("… {} more frames left out", 200 - MAX_FRAMES)));
        assert!(
            kept.contains("at src/deep.rs:23:5"),
            "each kept frame whole"
        );
        // Long symbols: the byte cap cuts first.
        let wide: String = (0..30)
            .map(|i| format!("  {i:>2}: service::{}\n", "x".repeat(1000)))
            .collect();
        let kept = from_the_panicking_frame(&wide);
        assert!(kept.len() <= MAX_BACKTRACE_BYTES + 40, "{}", kept.len());
        assert!(
            kept.ends_with("… 22 more frames left out"),
            "{}",
            &kept[kept.len() - 40..]
        );
    }
}
