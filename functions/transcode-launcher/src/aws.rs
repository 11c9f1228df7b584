//! The AWS SDK adapters behind the launcher's traits.

pub mod dynamodb;
pub mod ec2;
pub mod s3;
