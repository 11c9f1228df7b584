//! Archives RDS MySQL slow and general log tables to S3 before rotating
//! them, so that rotation never destroys a row, and digests the slow log.

pub mod archive;
pub mod aws;
pub mod config;
pub mod db;
pub mod digest;
pub mod handler;
pub mod log;
pub mod mysql;
pub mod rotator;
pub mod s3;
pub mod store;
pub mod target;
