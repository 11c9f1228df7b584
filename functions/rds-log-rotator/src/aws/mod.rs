//! The AWS SDK adapters, one service each.

pub mod rds;
pub mod s3;
pub mod secrets_manager;
