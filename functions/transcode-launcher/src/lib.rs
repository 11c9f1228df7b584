//! An S3 upload launches one EC2 worker that transcodes it with ffmpeg and
//! terminates itself: keys decoded per delivery path, one job per object,
//! and the key carried to the worker as data, never as shell code. A
//! DynamoDB table holds the capacity slots and the job ledger; a scheduled
//! reconcile relaunches jobs whose worker died without a status.
//!
//! - `main.rs`: wiring only (config, clients, adapters, run).
//! - [`config`]: the environment read into the launcher's, the launch's and the worker's settings.
//! - [`handler`]: events to launcher calls, and the invocation's summary.
//! - [`event`]: S3 "object created" events from either delivery path; [`s3_key`]: their key encodings.
//! - [`job`]: which objects become jobs, and each job's identity.
//! - [`launcher`]: records to launches and the reconcile: `launch.rs` filters and dedupes a record,
//!   `dispatch.rs` leases a slot and launches, `reconcile.rs` is the scheduled sweep.
//! - [`jobs`]: the job ledger's records and the capacity slots.
//! - [`status`]: what a job's `status.json` says.
//! - [`worker`]: the worker's user-data script.
//! - [`ports`]: the traits the domain calls (EC2, the job store, the status objects) and their errors.
//! - [`aws`]: the SDK adapters (`aws::dynamodb`, `aws::ec2`, `aws::s3`).
//! - `testing` (feature `testing`): the in-memory fleet, job store and status objects for tests and benches.

pub mod aws;
pub mod config;
pub mod event;
pub mod handler;
pub mod job;
pub mod jobs;
pub mod launcher;
pub mod ports;
pub mod s3_key;
pub mod status;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod worker;

/// The function's name in logs (`service`) and metrics (`Function`).
pub const FUNCTION_NAME: &str = "transcode-launcher";
