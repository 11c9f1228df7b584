//! Maps SNS and SQS invocations to notifications.
//!
//! SNS: `Records[].Sns.Message` is the SES notification as a JSON string.
//! SQS (a queue subscribed to the topic): `Records[].body` is the SNS
//! envelope, or the notification itself with raw message delivery. SQS
//! batches get a partial batch response; an SNS invocation fails as a
//! whole, so Lambda retries it and then hands it to its dead-letter queue.

use crate::ports::{AccountSuppression, Clock, SuppressionStore};
use crate::processor::{Processor, Tally};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::batch::PartialBatchResponse;
use shared::logging::mask_emails_in;
use shared::runtime::deadline_instant;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

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

/// The invocation: a `Records` list. Records stay JSON here because each is
/// read on its own (`source`): one unreadable record fails alone.
#[derive(Debug, Deserialize)]
struct Input {
    #[serde(rename = "Records")]
    records: Vec<Value>,
}

fn read_input(payload: Value) -> Result<Input, HandlerError> {
    // A bare list would pass as a struct in serde's eyes; it is no event.
    if !payload.is_object() {
        return Err(HandlerError::NotSnsOrSqs);
    }
    serde_path_to_error::deserialize(payload).map_err(|e| {
        tracing::debug!(path = %e.path(), error = %e.inner(), "not an SNS or SQS event");
        HandlerError::NotSnsOrSqs
    })
}

/// The answer: SQS batches name their failed messages; an SNS invocation
/// that succeeds reports what it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Batch(PartialBatchResponse),
    Summary(Summary),
}

/// Fields in alphabetical order, as the JSON object has always listed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub already_suppressed: u64,
    pub duplicates: u64,
    pub escalated: u64,
    pub ignored: u64,
    pub recorded: u64,
    pub soft_bounces: u64,
    pub soft_resets: u64,
    pub suppressed: u64,
}

impl From<&Tally> for Summary {
    fn from(tally: &Tally) -> Self {
        Self {
            already_suppressed: tally.already_suppressed,
            duplicates: tally.duplicates,
            escalated: tally.escalated,
            ignored: tally.ignored,
            recorded: tally.recorded,
            soft_bounces: tally.soft_bounces,
            soft_resets: tally.soft_resets,
            suppressed: tally.suppressed,
        }
    }
}

pub async fn handle<S, A, C>(
    processor: &Processor<S, A, C>,
    event: LambdaEvent<Value>,
) -> Result<Output, HandlerError>
where
    S: SuppressionStore,
    A: AccountSuppression,
    C: Clock,
{
    let input = read_input(event.payload)?;
    let deadline = deadline_instant(event.context.deadline, SystemTime::now());
    let stop_by = deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(deadline);
    let mut batch = Batch::default();
    for record in &input.records {
        batch.record(processor, record, stop_by).await;
    }
    batch.tally.emit();
    tracing::info!(tally = ?batch.tally, "batch processed");
    batch.answer(input.records.len())
}

/// What the records of one invocation did so far.
#[derive(Default)]
struct Batch {
    tally: Tally,
    sqs_failures: Vec<String>,
    sns_errors: Vec<String>,
    any_sqs: bool,
}

impl Batch {
    async fn record<S, A, C>(
        &mut self,
        processor: &Processor<S, A, C>,
        record: &Value,
        stop_by: Instant,
    ) where
        S: SuppressionStore,
        A: AccountSuppression,
        C: Clock,
    {
        let (message, message_id) = match source(record) {
            Source::Sns(message) => (message, None),
            Source::Sqs {
                message_id,
                message,
            } => {
                self.any_sqs = true;
                (message, Some(message_id))
            }
            Source::Unreadable(field) => {
                let error = format!("record has no {field}");
                tracing::error!(%error, "record not processed");
                let message_id = record.get("messageId").and_then(Value::as_str);
                self.any_sqs |= message_id.is_some();
                self.failed(message_id.map(str::to_owned), error);
                return;
            }
        };
        // Bounded by the deadline: a hung call fails its record (and those
        // not yet started) in time to answer, so Lambda or SQS retries them.
        let done =
            tokio::time::timeout_at(stop_by, processor.notification(&message, &mut self.tally));
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
            self.failed(message_id, error);
        }
    }

    /// An SQS record is named in the batch response; an SNS one fails the
    /// invocation.
    fn failed(&mut self, message_id: Option<String>, error: String) {
        self.tally.failed += 1;
        match message_id {
            Some(id) => self.sqs_failures.push(id),
            None => self.sns_errors.push(error),
        }
    }

    fn answer(self, total: usize) -> Result<Output, HandlerError> {
        if self.any_sqs {
            return Ok(Output::Batch(PartialBatchResponse::failing(
                self.sqs_failures,
            )));
        }
        match self.sns_errors.first() {
            Some(first) => Err(HandlerError::Failed {
                failed: self.sns_errors.len(),
                total,
                first: first.clone(),
            }),
            None => Ok(Output::Summary(Summary::from(&self.tally))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn the_summary_keeps_its_json_shape() {
        let tally = Tally {
            suppressed: 1,
            escalated: 2,
            already_suppressed: 3,
            soft_bounces: 4,
            recorded: 5,
            soft_resets: 6,
            duplicates: 7,
            ignored: 8,
            failed: 9,
            ..Tally::default()
        };
        let text = serde_json::to_string(&Output::Summary(Summary::from(&tally))).unwrap();
        assert_eq!(
            text,
            r#"{"alreadySuppressed":3,"duplicates":7,"escalated":2,"ignored":8,"recorded":5,"softBounces":4,"softResets":6,"suppressed":1}"#
        );
        let batch = Output::Batch(PartialBatchResponse::failing(["id-1"]));
        assert_eq!(
            serde_json::to_string(&batch).unwrap(),
            r#"{"batchItemFailures":[{"itemIdentifier":"id-1"}]}"#
        );
    }
}
