//! Copies tagged EBS snapshots to other regions for disaster recovery, once
//! each, deferring (never dropping) what the copy limit holds back, and
//! prunes only its own old copies.
//!
//! - `main.rs`: wiring only (config, clients, adapters, run).
//! - [`config`]: the environment read into [`config::Config`].
//! - [`handler`]: EventBridge events to copier calls; the answer is a [`copier::Summary`].
//! - [`copier`]: copies a snapshot, records a finished copy, sweeps every destination.
//! - [`retention`]: what a destination keeps (the plan); [`destinations`]: the
//!   selection tag's value; [`tags`]: a copy's tags; [`snapshot`]: a snapshot and its tag names.
//! - [`ports`]: the traits the domain calls (EC2 per region, copy claims) and their errors.
//! - [`aws`]: the SDK adapters (`aws::ec2`, `aws::dynamodb`).
//! - [`fallback`]: claims within one process when `CLAIM_TABLE` is unset.
//! - `testing` (feature `testing`): the in-memory EC2 for tests and benches.

pub mod aws;
pub mod config;
pub mod copier;
pub mod destinations;
pub mod fallback;
pub mod handler;
pub mod ports;
pub mod retention;
pub mod snapshot;
pub mod tags;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// The function's name in logs (`service`) and metrics (`Function`).
pub const FUNCTION_NAME: &str = "snapshot-copier";
