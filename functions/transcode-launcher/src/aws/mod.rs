//! The SDK adapters of the ports, one file per service.

pub mod dynamodb;
pub mod ec2;
pub mod s3;
