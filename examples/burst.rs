//! A service under load, for the CloudWatch end-to-end test (`tests/cloudwatch.rs`): a burst
//! of lines from four threads, a few large messages (multi-byte text, escapes, U+2028), then
//! a panic. Each burst line carries its thread and sequence number, so that what arrives can
//! be checked for order and loss.
//!
//! ```text
//! cargo run --example burst -- 5000   # lines per thread (default 5,000)
//! BURST_BACKGROUND=1 cargo run --example burst   # through the background writer
//! ```

fn main() {
    let per_thread: u64 = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(5_000);
    // `BURST_BACKGROUND=1`: lines written by the background writer.
    let builder = tracing_aws_ecs::builder();
    let builder = match std::env::var_os("BURST_BACKGROUND") {
        Some(_) => builder.with_background_writer(tracing_aws_ecs::BackgroundWriter::default()),
        None => builder,
    };
    let _guard = builder.init();

    let threads: Vec<_> = (0..4u64)
        .map(|thread| {
            std::thread::spawn(move || {
                let request = tracing::info_span!("request", thread);
                let _entered = request.enter();
                for seq in 0..per_thread {
                    tracing::info!(seq, kind = "burst", "line {seq} of thread {thread}");
                }
            })
        })
        .collect();
    for thread in threads {
        let _ = thread.join();
    }

    // Around Docker's 16 KiB read, and past CloudWatch's 256 KiB event limit.
    let piece = "élan → \"quoted\"\\ \u{2028} ✓ ";
    for (name, bytes) in [("16k", 16 * 1024), ("256k", 256 * 1024)] {
        let text = piece.repeat(bytes / piece.len() + 1);
        tracing::info!(kind = "large", size = name, "{text}");
    }
    panic!("the burst is over");
}
