//! An S3 upload launches one EC2 worker that transcodes it with ffmpeg and
//! terminates itself: keys decoded per delivery path, one job per object,
//! and the key carried to the worker as data, never as shell code. A
//! DynamoDB table holds the capacity slots and the job ledger; a scheduled
//! reconcile relaunches jobs whose worker died without a status.

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
