//! The SDK adapters behind the traits of `ports`, one per service. Their
//! errors read as `shared::aws::service_error_text`: a service error as
//! its code and the service's message, the Debug context (the whole HTTP
//! response) only for transport failures.

pub mod dynamodb;
pub mod kinesis;
pub mod sqs;
