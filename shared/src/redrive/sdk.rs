//! The SQS queue and the Lambda function behind [`FailureQueue`] and
//! [`Invoker`], through the AWS SDK.

use super::{CallError, FailureQueue, Invoked, Invoker, QueueMessage};
use crate::aws::{ClientPolicy, SdkConfig, with_policy};
use crate::sqs::QueueClient;
use aws_config::Region;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use std::time::Duration;

/// How long a received message stays hidden while the run goes on: longer
/// than the longest synchronous invoke (Lambda's 900 s limit plus the
/// client's margin), so no message reappears to a second run while its
/// invoke is still under way (the run receives one message at a time and
/// invokes it at once).
pub const HOLD: Duration = Duration::from_secs(1200);

const _: () = assert!(
    HOLD.as_secs() > INVOKE_POLICY.operation_timeout.as_secs() + 60,
    "the hold outlasts an invoke, with time to receive and delete"
);

/// Long polling asks every SQS server, so an empty answer means an empty
/// queue (short polling samples a subset and can answer empty too early).
pub const RECEIVE_WAIT: Duration = Duration::from_secs(2);

/// The longest synchronous invoke: Lambda's 900 s timeout and a margin.
pub const INVOKE_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(930);

/// The longest a function can run (Lambda's timeout limit).
pub const LONGEST_FUNCTION_RUN: Duration = Duration::from_secs(900);

/// The Lambda client's bounds: one attempt, never retried by the SDK. An
/// Invoke that failed (an error answer, a lost connection, a timeout) may
/// have run the function already; sending it again would run it twice, so
/// the message is left for the next run instead. The attempt outlasts the
/// longest function run, so a slow invoke that succeeds is not cut off.
pub const INVOKE_POLICY: ClientPolicy = ClientPolicy {
    connect_timeout: Duration::from_secs(5),
    attempt_timeout: INVOKE_ATTEMPT_TIMEOUT,
    operation_timeout: INVOKE_ATTEMPT_TIMEOUT,
    sdk_retries: false,
};

const _: () = assert!(
    INVOKE_ATTEMPT_TIMEOUT.as_secs() > LONGEST_FUNCTION_RUN.as_secs()
        && INVOKE_POLICY.operation_timeout.as_secs() >= INVOKE_POLICY.attempt_timeout.as_secs(),
    "an invoke is never cut off before the function could have finished"
);

/// The Lambda client's configuration: `base` under [`INVOKE_POLICY`], in
/// `region` (the function's).
pub fn lambda_client_config(base: &SdkConfig, region: Option<Region>) -> aws_sdk_lambda::Config {
    aws_sdk_lambda::config::Builder::from(&with_policy(base, INVOKE_POLICY))
        .region(region)
        .build()
}

/// A call's failure on one line: the service's error code and message (the
/// SDK's full context repeats the raw response), else the SDK's context.
fn call_error<E>(
    service: &'static str,
    operation: &'static str,
    error: SdkError<E, HttpResponse>,
) -> CallError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = match &error {
        SdkError::ServiceError(failure) => {
            let code = failure.err().code().unwrap_or("unnamed error");
            let status = failure.raw().status().as_u16();
            // An error the SDK does not model keeps its text in the body.
            let body = failure
                .raw()
                .body()
                .bytes()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            match failure.err().message().map(str::to_owned).or(body) {
                Some(text) => format!("{code} (HTTP {status}): {text}"),
                None => format!("{code} (HTTP {status})"),
            }
        }
        other => crate::aws::error_text(other),
    };
    CallError {
        service,
        operation,
        message,
    }
}

pub struct SqsQueue(QueueClient);

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self(QueueClient::new(client, url))
    }
}

impl FailureQueue for SqsQueue {
    async fn receive(&self, max: usize) -> Result<Vec<QueueMessage>, CallError> {
        let output = self
            .0
            .receive(max, HOLD, RECEIVE_WAIT)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| call_error("SQS", "ReceiveMessage", e))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let error_message = m
                    .message_attributes
                    .as_ref()
                    .and_then(|a| a.get("ErrorMessage"))
                    .and_then(|v| v.string_value.clone());
                Some(QueueMessage {
                    id: m.message_id?,
                    receipt: m.receipt_handle?,
                    body: m.body.unwrap_or_default(),
                    error_message,
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), CallError> {
        self.0
            .delete(receipt)
            .await
            .map_err(|e| call_error("SQS", "DeleteMessage", e))
    }

    async fn release(&self, receipt: &str) -> Result<(), CallError> {
        self.0
            .hide(receipt, Duration::ZERO)
            .await
            .map_err(|e| call_error("SQS", "ChangeMessageVisibility", e))
    }
}

pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
}

impl LambdaInvoker {
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client }
    }
}

impl Invoker for LambdaInvoker {
    async fn invoke(&self, function: &str, payload: &str) -> Result<Invoked, CallError> {
        let output = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload.as_bytes()))
            .send()
            .await
            .map_err(|e| call_error("Lambda", "Invoke", e))?;
        Ok(match output.function_error {
            Some(kind) => Invoked::FunctionError {
                kind,
                payload: output
                    .payload
                    .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                    .unwrap_or_default(),
            },
            None => Invoked::Succeeded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_config::BehaviorVersion;

    #[test]
    fn the_lambda_client_makes_one_attempt_that_outlasts_the_longest_function() {
        let base = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build();
        let config = lambda_client_config(&base, Some(Region::from_static("eu-west-1")));
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(1));
        let timeouts = config.timeout_config().expect("timeouts are set");
        let attempt = timeouts
            .operation_attempt_timeout()
            .expect("an attempt bound");
        assert!(attempt > LONGEST_FUNCTION_RUN, "{attempt:?}");
        assert!(
            timeouts.operation_timeout().expect("an operation bound") >= attempt,
            "{timeouts:?}"
        );
        assert!(
            HOLD > attempt,
            "a message stays hidden for its whole invoke"
        );
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
    }
}
