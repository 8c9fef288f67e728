//! The process-wide metadata: read once at start-up, and completed by one background thread
//! when the endpoint failed for a reason that can pass.
//!
//! ECS agents are busiest when tasks start, so a start-up fetch may meet 5xx, 429, timeouts
//! or a body cut short, and a moment later the endpoint is healthy. Rather than log without
//! the identity for the life of the process, the recovery thread asks again, one request at
//! a time, with jittered backoff from [`FIRST_STEP`] doubling to [`MAX_STEP`], until it has
//! the complete metadata. It then fills the cache, tells every formatter that follows it,
//! and logs one INFO line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use once_cell::sync::OnceCell;
use serde_json::Value;

use crate::client::{MetadataClient, jitter};
use crate::error::Error;
use crate::metadata::EcsMetadata;

/// The first pause of the recovery thread (drawn from its upper half).
pub(crate) const FIRST_STEP: Duration = Duration::from_secs(1);
/// The longest pause of the recovery thread between two attempts.
pub(crate) const MAX_STEP: Duration = Duration::from_secs(30);
/// The shortest time a recovery request waits for its answer, whatever the start-up
/// deadline: a deadline of zero would otherwise stay zero as it doubles.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);
/// The name of the recovery thread.
pub(crate) const THREAD_NAME: &str = "ecs-recovery";

/// What the start-up fetch gave, or the metadata given to a builder.
static STARTUP: OnceCell<Result<EcsMetadata, Error>> = OnceCell::new();
/// The complete metadata, once the recovery thread has read it.
static RECOVERED: OnceCell<EcsMetadata> = OnceCell::new();
/// Whether a recovery thread was started (it runs until it succeeds or meets a final error).
static RECOVERING: AtomicBool = AtomicBool::new(false);
/// Called once with the recovered metadata; registered while a recovery is under way.
static LISTENERS: Mutex<Vec<Listener>> = Mutex::new(Vec::new());

type Listener = Box<dyn FnOnce(&'static EcsMetadata) + Send>;

/// How the start-up fetch is made, by whoever makes it first.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Startup {
    /// The whole fetch's deadline; also the first recovery request's timeout, doubled at
    /// each attempt up to 30 s.
    pub(crate) deadline: Duration,
    /// Whether to recover in the background from a failure that can pass.
    pub(crate) recover: bool,
}

/// The cached metadata, fetched with `startup` if nothing is cached yet: the recovered
/// metadata once there is some, else what the start-up fetch gave.
pub(crate) fn get_or_fetch(startup: Startup) -> Result<&'static EcsMetadata, &'static Error> {
    if let Some(recovered) = RECOVERED.get() {
        return Ok(recovered);
    }
    let outcome = STARTUP.get_or_init(|| {
        let began = Instant::now();
        let client = MetadataClient::from_env()?.with_deadline(startup.deadline);
        let outcome = client.fetch_metadata();
        if startup.recover {
            start_recovery(client, &outcome, began);
        }
        outcome
    });
    RECOVERED.get().map_or(outcome.as_ref(), Ok)
}

/// Caches `metadata` as if the start-up fetch had read it, unless something is cached.
pub(crate) fn fill(metadata: EcsMetadata) {
    let _ = STARTUP.set(Ok(metadata));
}

/// Calls `listener` with the complete metadata when the recovery thread reads it; does nothing
/// when no recovery is under way. Returns whether it will be called.
pub(crate) fn on_recovery(listener: impl FnOnce(&'static EcsMetadata) + Send + 'static) -> bool {
    let mut listeners = LISTENERS.lock().unwrap_or_else(PoisonError::into_inner);
    // The recovery thread sets RECOVERED before it takes the lock to call the listeners:
    // under the lock, either it is set (call now) or this listener will be called.
    if let Some(recovered) = RECOVERED.get() {
        drop(listeners);
        listener(recovered);
        return true;
    }
    if !RECOVERING.load(Ordering::Acquire) {
        return false;
    }
    listeners.push(Box::new(listener));
    true
}

/// The metadata the recovery thread read, once it has: nothing is fetched.
pub(crate) fn recovered() -> Option<&'static EcsMetadata> {
    RECOVERED.get()
}

/// Whether a recovery thread is trying to complete the metadata now.
pub(crate) fn recovering() -> bool {
    RECOVERING.load(Ordering::Acquire)
}

/// Whether the outcome is worth trying again: a failure that can pass, or a partial result
/// whose `/task` request failed for such a reason.
fn recoverable(outcome: &Result<EcsMetadata, Error>) -> bool {
    match outcome {
        Ok(metadata) => metadata.task_error().is_some_and(Error::is_recoverable),
        Err(error) => error.is_recoverable(),
    }
}

fn start_recovery(client: MetadataClient, outcome: &Result<EcsMetadata, Error>, began: Instant) {
    if !recoverable(outcome) {
        return;
    }
    let container = outcome.as_ref().ok().map(|m| m.container_raw().clone());
    // A start-up deadline of zero (or near it) must not make every attempt fail at once.
    let request_timeout = client.deadline().max(MIN_ATTEMPT);
    // Set before the thread runs, so that formatters built meanwhile follow it.
    RECOVERING.store(true, Ordering::Release);
    let spawned = std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || finish(recover(client, container, request_timeout), began));
    if spawned.is_err() {
        // No thread to be had: lines carry what start-up gave, as without recovery.
        RECOVERING.store(false, Ordering::Release);
    }
}

/// The recovery thread's work: one request at a time, the container document until it is
/// read (unless start-up read it), then `/task`, pausing between attempts. `None` when the
/// endpoint comes to say something final (404).
fn recover(
    client: MetadataClient,
    mut container: Option<Value>,
    request_timeout: Duration,
) -> Option<EcsMetadata> {
    let client = client.with_max_attempts(1).with_deadline(request_timeout);
    let mut step = FIRST_STEP;
    let mut next_timeout = request_timeout;
    loop {
        std::thread::sleep(jitter(step));
        step = step.saturating_mul(2).min(MAX_STEP);
        // Each attempt waits longer for an answer, up to 30 s: an endpoint slower than the
        // start-up deadline, but healthy, is read in the end.
        let timeout = next_timeout;
        next_timeout = next_timeout
            .saturating_mul(2)
            .min(MAX_STEP.max(request_timeout));
        let document = match container.take() {
            Some(document) => document,
            None => match client.container_document(Instant::now() + timeout) {
                Ok(document) => document,
                Err(e) if e.is_recoverable() => continue,
                Err(_) => return None,
            },
        };
        match client.task_document(Instant::now() + timeout) {
            Err(e) if e.is_recoverable() => container = Some(document),
            task => match client.assemble(document, task) {
                Ok(metadata) => return Some(metadata),
                // The container document is not an object: ask for it again.
                Err(_) => continue,
            },
        }
    }
}

/// Publishes what the recovery read, if anything, to the cache and the listeners, and says
/// so in one INFO line; `began` is when the start-up fetch began.
fn finish(recovered: Option<EcsMetadata>, began: Instant) {
    let recovered = recovered.map(|metadata| RECOVERED.get_or_init(|| metadata));
    let listeners = {
        let mut listeners = LISTENERS.lock().unwrap_or_else(PoisonError::into_inner);
        RECOVERING.store(false, Ordering::Release);
        std::mem::take(&mut *listeners)
    };
    let Some(recovered) = recovered else {
        // The endpoint now says something final (404): lines keep what start-up gave.
        return;
    };
    for listener in listeners {
        listener(recovered);
    }
    let after = began.elapsed();
    tracing::info!(
        target: "tracing_aws_ecs",
        after_ms = after.as_millis() as u64,
        "ECS metadata recovered {:.1} s after start-up: lines carry the ECS fields from now on",
        after.as_secs_f64()
    );
}
