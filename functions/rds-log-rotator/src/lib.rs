//! Archives RDS MySQL slow and general log tables to S3 before rotating
//! them, so that rotation never destroys a row, and digests the slow log.
//!
//! - `main.rs`: wiring only (config, clients, adapters, run).
//! - [`config`]: the environment read into [`config::Config`].
//! - [`handler`]: the event to a run over every target ([`handler::FleetRotator`]).
//! - [`rotator`]: one target: archive, rotate, archive again, keep watermarks.
//! - [`ports`]: the traits the domain runs over (`LogDb`, `ArchiveStore`,
//!   `Connector`) and their error enums.
//! - [`target`]: an instance to rotate, as configured or discovered.
//! - [`preflight`]: whether a log can be rotated, from what the server reports.
//! - [`log_table`]: the two log tables and their RDS names.
//! - [`timestamp`]: MySQL's date and time text to and from epoch seconds.
//! - [`archive`]: one archive part (gzip JSON lines).
//! - [`digest`]: slow-query fingerprints and the digest.
//! - [`aws`]: the SDK adapters (`aws::rds`, `aws::secrets_manager`, `aws::s3`).
//! - [`mysql`]: the MySQL adapter.
//! - `testing` (feature `testing`): the `InMemory*` doubles of the ports.

pub mod archive;
pub mod aws;
pub mod config;
pub mod digest;
pub mod handler;
pub mod log_table;
pub mod mysql;
pub mod ports;
pub mod preflight;
pub mod rotator;
pub mod target;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod timestamp;

/// The function's name in logs (`service`) and metrics (`Function`).
pub const FUNCTION_NAME: &str = "rds-log-rotator";
