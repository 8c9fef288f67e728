//! What request metrics add to a request, the two subscribers taking turns: 100,000 requests
//! under one, then under the other, 30 turns (the first dropped as warm-up), so that a slow
//! spell of the machine falls on both. Prints, for one route, for 50 look-alike routes and for
//! one route whose requests open three child spans in turn, the median ns per request without
//! and with request metrics, and the difference.

mod support;

use std::time::Instant;

use support::request_metrics_dispatch;
use tracing::{info, info_span};

const REQUESTS: u32 = 100_000;
const TURNS: usize = 30;

/// The median ns per request over the turns, without and with request metrics: requests
/// over `routes` in turn, each opening `children` child spans one after the other.
fn medians(routes: &[String], children: usize) -> [f64; 2] {
    let dispatches = [
        request_metrics_dispatch(false),
        request_metrics_dispatch(true),
    ];
    let mut times: [Vec<f64>; 2] = Default::default();
    for turn in 0..TURNS {
        for (times, dispatch) in times.iter_mut().zip(&dispatches) {
            let mut next = routes.iter().cycle();
            tracing::dispatcher::with_default(dispatch, || {
                let start = Instant::now();
                for _ in 0..REQUESTS {
                    let route = next.next().map_or("/", String::as_str);
                    let span = info_span!("request", route, method = "GET", status = 200u16);
                    span.in_scope(|| {
                        for _ in 0..children {
                            info_span!("query", table = "orders").in_scope(|| {});
                        }
                        info!(order_id = 42u64, "served");
                    });
                }
                if turn > 0 {
                    times.push(start.elapsed().as_nanos() as f64 / f64::from(REQUESTS));
                }
            });
        }
    }
    times.map(|mut times| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    })
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let one = vec!["/orders/{id}".to_owned()];
    let fifty: Vec<String> = (0..50)
        .map(|i| format!("/api/v1/resource{i:02}/{{id}}"))
        .collect();
    for (name, routes, children) in [
        ("one route", &one, 0),
        ("50 routes", &fifty, 0),
        ("one route, 3 child spans", &one, 3),
    ] {
        let [without, with] = medians(routes, children);
        println!(
            "{name}: {without:.0} ns without request metrics, {with:.0} ns with: {:.0} ns added",
            with - without
        );
    }
}
