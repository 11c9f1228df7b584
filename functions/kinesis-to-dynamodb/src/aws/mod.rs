//! The SDK adapters behind the traits of `ports`, one per service.

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

pub mod dynamodb;
pub mod kinesis;
pub mod sqs;

/// A service error reads as its code and the service's message; the Debug
/// context (the whole HTTP response) is only for transport failures.
pub(crate) fn error_text<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(service) => format!(
            "{}: {}",
            service.code().unwrap_or("UnknownError"),
            service.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(error).to_string(),
    }
}
