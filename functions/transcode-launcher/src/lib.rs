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
//! - [`launcher`]: records to launches (filter, dedupe, lease a slot, launch) and the reconcile.
//! - [`jobs`]: the job ledger and capacity slots (trait and in-memory store).
//! - [`fleet`]: the EC2 calls the launcher makes (trait and in-memory fleet).
//! - [`status`]: the workers' `status.json` (trait and in-memory store).
//! - [`worker`]: the worker's user-data script.
//! - [`aws`]: the SDK adapters (`aws::dynamodb`, `aws::ec2`, `aws::s3`).

pub mod aws;
pub mod config;
pub mod event;
pub mod fleet;
pub mod handler;
pub mod job;
pub mod jobs;
pub mod launcher;
pub mod s3_key;
pub mod status;
pub mod worker;

/// The function's name in logs (`service`) and metrics (`Function`).
pub const FUNCTION_NAME: &str = "transcode-launcher";
