//! The AWS SDK adapters behind the traits in `ports`.

pub mod dynamodb;
pub mod sesv2;
