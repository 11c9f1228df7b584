//! Maps SNS and SQS invocations to notifications.
//!
//! SNS: `Records[].Sns.Message` is the SES notification as a JSON string.
//! SQS (a queue subscribed to the topic): `Records[].body` is the SNS
//! envelope, or the notification itself with raw message delivery. SQS
//! batches get a partial batch response; an SNS invocation fails as a
//! whole, so Lambda retries it and then hands it to its dead-letter queue.

use crate::account::AccountSuppression;
use crate::processor::{Clock, Processor, Tally};
use crate::store::SuppressionStore;
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use shared::batch::PartialBatchResponse;
use shared::logging::mask_emails_in;
use shared::runtime::deadline_instant;
use std::time::{Duration, SystemTime};

/// Time kept after the last notification to report and answer.
const DEADLINE_MARGIN: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("the event has no Records list: this function takes SNS or SQS events")]
    NotSnsOrSqs,
    #[error("{failed} of {total} SNS records failed; first: {first}")]
    Failed {
        failed: usize,
        total: usize,
        first: String,
    },
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match e {
            HandlerError::NotSnsOrSqs => "UnsupportedEvent",
            HandlerError::Failed { .. } => "NotificationsFailed",
        };
        Self {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// Where a record came from, and its SES notification text.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Sns(String),
    /// The SQS message id (what a partial batch response names) and the text.
    Sqs {
        message_id: String,
        message: String,
    },
    /// Neither: the field that is missing.
    Unreadable(&'static str),
}

fn source(record: &Value) -> Source {
    if let Some(sns) = record.get("Sns") {
        return match sns.get("Message").and_then(Value::as_str) {
            Some(message) => Source::Sns(message.to_owned()),
            None => Source::Unreadable("Records[].Sns.Message"),
        };
    }
    if record.get("eventSource").and_then(Value::as_str) == Some("aws:sqs") {
        let message_id = record
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let Some(body) = record.get("body").and_then(Value::as_str) else {
            return Source::Unreadable("Records[].body");
        };
        let envelope: Option<Value> = serde_json::from_str(body).ok();
        let message = envelope
            .as_ref()
            .filter(|e| e.get("Type").and_then(Value::as_str) == Some("Notification"))
            .and_then(|e| e.get("Message").and_then(Value::as_str))
            .unwrap_or(body)
            .to_owned();
        return Source::Sqs {
            message_id,
            message,
        };
    }
    Source::Unreadable("Records[].Sns or an SQS record")
}

pub async fn handle<S, A, C>(
    processor: &Processor<S, A, C>,
    event: LambdaEvent<Value>,
) -> Result<Value, HandlerError>
where
    S: SuppressionStore,
    A: AccountSuppression,
    C: Clock,
{
    let records = event
        .payload
        .get("Records")
        .and_then(Value::as_array)
        .ok_or(HandlerError::NotSnsOrSqs)?;
    let deadline = deadline_instant(event.context.deadline, SystemTime::now());
    let stop_by = deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(deadline);
    let mut tally = Tally::default();
    let mut sqs_failures = Vec::new();
    let mut sns_errors = Vec::new();
    let mut any_sqs = false;
    for record in records {
        let (message, message_id) = match source(record) {
            Source::Sns(message) => (message, None),
            Source::Sqs {
                message_id,
                message,
            } => {
                any_sqs = true;
                (message, Some(message_id))
            }
            Source::Unreadable(field) => {
                let error = format!("record has no {field}");
                tracing::error!(%error, "record not processed");
                tally.failed += 1;
                match record.get("messageId").and_then(Value::as_str) {
                    Some(id) => {
                        any_sqs = true;
                        sqs_failures.push(id.to_owned());
                    }
                    None => sns_errors.push(error),
                }
                continue;
            }
        };
        // Bounded by the deadline: a hung call fails its record (and those
        // not yet started) in time to answer, so Lambda or SQS retries them.
        let done = tokio::time::timeout_at(stop_by, processor.notification(&message, &mut tally));
        let outcome = match done.await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "not done {} ms before the invocation deadline; left for a retry",
                DEADLINE_MARGIN.as_millis()
            )),
        };
        if let Err(e) = outcome {
            let error = mask_emails_in(&e);
            tracing::error!(%error, "notification not processed");
            tally.failed += 1;
            match message_id {
                Some(id) => sqs_failures.push(id),
                None => sns_errors.push(error),
            }
        }
    }
    tally.emit();
    tracing::info!(?tally, "batch processed");
    if any_sqs {
        return Ok(json!(PartialBatchResponse::failing(sqs_failures)));
    }
    match sns_errors.first() {
        Some(first) => Err(HandlerError::Failed {
            failed: sns_errors.len(),
            total: records.len(),
            first: first.clone(),
        }),
        None => Ok(json!({
            "suppressed": tally.suppressed,
            "escalated": tally.escalated,
            "alreadySuppressed": tally.already_suppressed,
            "softBounces": tally.soft_bounces,
            "recorded": tally.recorded,
            "softResets": tally.soft_resets,
            "duplicates": tally.duplicates,
            "ignored": tally.ignored,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_told_apart() {
        let sns = json!({"EventSource": "aws:sns", "Sns": {"Message": "{\"a\":1}"}});
        assert_eq!(source(&sns), Source::Sns("{\"a\":1}".into()));
        let envelope = json!({"Type": "Notification", "Message": "{\"b\":2}"}).to_string();
        let sqs = json!({"eventSource": "aws:sqs", "messageId": "id-1", "body": envelope});
        assert_eq!(
            source(&sqs),
            Source::Sqs {
                message_id: "id-1".into(),
                message: "{\"b\":2}".into()
            }
        );
        let raw = json!({"eventSource": "aws:sqs", "messageId": "id-2", "body": "{\"c\":3}"});
        assert_eq!(
            source(&raw),
            Source::Sqs {
                message_id: "id-2".into(),
                message: "{\"c\":3}".into()
            }
        );
        assert_eq!(
            source(&json!({"Sns": {}})),
            Source::Unreadable("Records[].Sns.Message")
        );
    }
}
