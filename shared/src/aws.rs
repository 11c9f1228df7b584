//! SDK configuration, loaded once per execution environment, and the one
//! retry and timeout policy every client follows.
//!
//! The policy: a client whose calls our own code retries (a loop with
//! backoff around the call) has the SDK's retries turned off, so attempts do
//! not multiply; any other client keeps the SDK's standard retry, which is
//! bounded (3 attempts unless `AWS_MAX_ATTEMPTS` says otherwise). Every
//! client has connect, attempt and operation timeouts, so a connection that
//! is accepted and never answered fails the call instead of holding it
//! forever. Where an invocation deadline matters, each function also cuts
//! its work off at the deadline (less a margin to answer), so a hung call
//! fails its work in time instead of eating the whole invocation.
//!
//! Also here: SDK error text ([`error_text`], [`service_error_text`]) and
//! [`absent_as_none`], which reads a not-found answer as `None`.

/// Re-exported so function crates can name it without depending on aws-config.
pub use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use std::fmt::Debug;
use std::time::Duration;

/// Connect and per-call bounds for a set of SDK clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientPolicy {
    /// TCP and TLS connection setup.
    pub connect_timeout: Duration,
    /// One attempt, from sending the request to reading the whole answer.
    pub attempt_timeout: Duration,
    /// The whole call, retries and their waits included.
    pub operation_timeout: Duration,
    /// Whether the SDK retries on its own (standard mode, bounded). Off
    /// where our code retries the call itself.
    pub sdk_retries: bool,
}

impl Default for ClientPolicy {
    /// Bounds for the small control-plane and item calls the functions make:
    /// they answer in milliseconds when healthy.
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
            sdk_retries: true,
        }
    }
}

impl ClientPolicy {
    /// The same bounds, for a client whose calls our own code retries.
    pub fn own_retries(self) -> Self {
        Self {
            sdk_retries: false,
            ..self
        }
    }

    pub fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }

    /// `None`: the SDK's standard retry from the environment (bounded).
    pub fn retry_config(&self) -> Option<RetryConfig> {
        (!self.sdk_retries).then(RetryConfig::disabled)
    }
}

/// Loads the SDK configuration with the latest behaviour version and the
/// default [`ClientPolicy`].
///
/// `AWS_ENDPOINT_URL` and the per-service `AWS_ENDPOINT_URL_<SERVICE>`
/// variables are honoured by aws-config itself, which is how local runs point
/// the clients at moto.
pub async fn load_sdk_config() -> SdkConfig {
    load_sdk_config_with(ClientPolicy::default()).await
}

/// Loads the SDK configuration with `policy`'s timeouts and retries.
pub async fn load_sdk_config_with(policy: ClientPolicy) -> SdkConfig {
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).timeout_config(policy.timeout_config());
    match policy.retry_config() {
        Some(retry) => loader.retry_config(retry).load().await,
        None => loader.load().await,
    }
}

/// `base` with `policy`'s timeouts and retries, for one client that differs
/// from the rest (its own retry loop, or large bodies).
pub fn with_policy(base: &SdkConfig, policy: ClientPolicy) -> SdkConfig {
    let mut builder = base.to_builder().timeout_config(policy.timeout_config());
    if let Some(retry) = policy.retry_config() {
        builder = builder.retry_config(retry);
    }
    builder.build()
}

/// The same configuration aimed at another region, for clients that must run
/// there (CopySnapshot is called in the destination region).
pub fn config_for_region(base: &SdkConfig, region: &str) -> SdkConfig {
    base.to_builder()
        .region(Region::new(region.to_owned()))
        .build()
}

/// An SDK error as one line with every cause in its chain (the SDK's own
/// `Display` says only "service error" or "dispatch failure").
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    DisplayErrorContext(error).to_string()
}

/// A service error as `Code: message`, the way the service wrote it; any
/// other failure (transport, timeout) as [`error_text`], whose causes say
/// what went wrong.
pub fn service_error_text<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug,
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

/// A call's answer, or `None` where the service answered with the error
/// `absent` picks out (no such key, no such item): an answer the caller
/// expects, not a failure. Every other error stays an error.
///
/// `absent_as_none(call.send().await, |e| e.is_no_such_key())`
pub fn absent_as_none<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    absent: impl FnOnce(&E) -> bool,
) -> Result<Option<T>, SdkError<E, R>> {
    match result {
        Ok(answer) => Ok(Some(answer)),
        Err(e) if e.as_service_error().is_some_and(absent) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_smithy_types::error::ErrorMetadata;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct Refused;

    #[test]
    fn error_text_names_every_cause() {
        let error: SdkError<ErrorMetadata, ()> = SdkError::timeout_error(Refused);
        let text = error_text(&error);
        assert_eq!(text, DisplayErrorContext(&error).to_string());
        assert!(text.contains("connection refused"), "{text}");
        assert!(!error.to_string().contains("connection refused"));
    }

    #[test]
    fn service_errors_read_as_code_and_message() {
        let throttled = ErrorMetadata::builder()
            .code("ThrottlingException")
            .message("Rate exceeded")
            .build();
        let error: SdkError<ErrorMetadata, ()> = SdkError::service_error(throttled, ());
        assert_eq!(
            service_error_text(&error),
            "ThrottlingException: Rate exceeded"
        );
        let bare: SdkError<ErrorMetadata, ()> =
            SdkError::service_error(ErrorMetadata::builder().build(), ());
        assert_eq!(service_error_text(&bare), "UnknownError: no message");
        let dispatch: SdkError<ErrorMetadata, ()> = SdkError::timeout_error(Refused);
        assert_eq!(service_error_text(&dispatch), error_text(&dispatch));
    }

    #[test]
    fn only_the_picked_service_error_reads_as_absent() {
        let no_such_key = |e: &ErrorMetadata| e.code() == Some("NoSuchKey");
        let answered: Result<u8, SdkError<ErrorMetadata, ()>> = Ok(7);
        assert_eq!(absent_as_none(answered, no_such_key).ok(), Some(Some(7)));
        let service = |code: &str| -> Result<u8, SdkError<ErrorMetadata, ()>> {
            Err(SdkError::service_error(
                ErrorMetadata::builder().code(code).build(),
                (),
            ))
        };
        assert_eq!(
            absent_as_none(service("NoSuchKey"), no_such_key).ok(),
            Some(None)
        );
        let denied = absent_as_none(service("AccessDenied"), no_such_key).unwrap_err();
        assert_eq!(service_error_text(&denied), "AccessDenied: no message");
        let timeout: Result<u8, SdkError<ErrorMetadata, ()>> =
            Err(SdkError::timeout_error(Refused));
        let kept = absent_as_none(timeout, |_| panic!("not a service error")).unwrap_err();
        assert!(error_text(&kept).contains("connection refused"));
    }

    #[test]
    fn region_override_keeps_the_rest() {
        let base = SdkConfig::builder()
            .region(Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:5000")
            .behavior_version(BehaviorVersion::latest())
            .build();
        let other = config_for_region(&base, "us-west-2");
        assert_eq!(other.region().map(|r| r.as_ref()), Some("us-west-2"));
        assert_eq!(other.endpoint_url(), Some("http://127.0.0.1:5000"));
    }

    #[tokio::test]
    async fn every_loaded_config_has_timeouts_and_own_retries_turn_the_sdk_off() {
        let policy = ClientPolicy::default();
        let config = load_sdk_config_with(policy).await;
        let timeouts = config.timeout_config().expect("timeouts are set");
        assert_eq!(timeouts.connect_timeout(), Some(policy.connect_timeout));
        assert_eq!(
            timeouts.operation_attempt_timeout(),
            Some(policy.attempt_timeout)
        );
        assert_eq!(timeouts.operation_timeout(), Some(policy.operation_timeout));
        assert!(config.retry_config().is_some_and(|r| r.max_attempts() > 1));
        let own = with_policy(&config, policy.own_retries());
        assert_eq!(own.retry_config().map(|r| r.max_attempts()), Some(1));
        assert_eq!(own.timeout_config(), config.timeout_config());
    }
}
