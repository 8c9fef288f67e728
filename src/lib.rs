//! ECS task metadata for Rust services on AWS ECS (Fargate, EC2 and Managed Instances).
//!
//! The metadata endpoint (v4, falling back to v3) is read once per process and cached;
//! [`metadata()`] returns the cached [`EcsMetadata`], or `None` off ECS or when the endpoint
//! failed (see [`metadata_result`] for why).
//!
//! ```no_run
//! if let Some(meta) = tracing_aws_ecs::metadata() {
//!     println!("cluster {:?}, task {:?}", meta.cluster_name(), meta.task_id());
//! }
//! ```
//!
//! For stats, or for metadata with other timeouts, use a [`MetadataClient`]. The
//! `emulator` feature adds [`emulator`], a local endpoint for tests and development.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client;
mod error;
pub mod metadata;
pub mod stats;
mod time;

#[cfg(feature = "emulator")]
#[cfg_attr(docsrs, doc(cfg(feature = "emulator")))]
pub mod emulator;

pub use client::{ApiVersion, Endpoint, MetadataClient};
pub use error::Error;
pub use metadata::EcsMetadata;

use once_cell::sync::OnceCell;

static METADATA: OnceCell<Result<EcsMetadata, Error>> = OnceCell::new();

/// The metadata of this container and its task, fetched on first use and cached for the life
/// of the process; `None` off ECS or when the fetch failed.
///
/// Every caller on every thread gets the same value. Concurrent first calls wait for one
/// fetch; a failed fetch is not repeated (no retry storms against a struggling endpoint).
pub fn metadata() -> Option<&'static EcsMetadata> {
    metadata_result().ok()
}

/// As [`metadata()`], with the reason when there is none ([`Error::NotOnEcs`] off ECS).
pub fn metadata_result() -> Result<&'static EcsMetadata, &'static Error> {
    cached_or_fetch(|| MetadataClient::from_env()?.fetch_metadata())
}

/// The cached metadata, fetching it with `fetch` if nothing is cached yet.
pub(crate) fn cached_or_fetch(
    fetch: impl FnOnce() -> Result<EcsMetadata, Error>,
) -> Result<&'static EcsMetadata, &'static Error> {
    METADATA.get_or_init(fetch).as_ref()
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
