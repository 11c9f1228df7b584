//! The SDK behind the replay traits: Kinesis, SQS, the rejects table.

use super::{
    BatchInfo, Deleted, Queue, QueueMessage, ReadRange, RejectId, Rejects, ReplayError, Shards,
};
use crate::checkpoint::compare_sequence;
use crate::convert::Item;
use crate::record::KinesisRecord;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use aws_sdk_kinesis::types::ShardIteratorType;
use std::collections::HashMap;
use std::time::Duration;

/// GetRecords allows 5 calls per second per shard.
const BETWEEN_READS: Duration = Duration::from_millis(200);
/// Retries of a throttled or expired read before giving up on a batch.
const READ_RETRIES: u32 = 5;
/// Calls past the batch's end position before giving up looking for it (a
/// shard with long gaps answers empty pages while it catches up).
const MAX_READS: u32 = 10_000;

fn error_text<E, R>(error: &SdkError<E, R>) -> String
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

fn code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> &str {
    error
        .as_service_error()
        .and_then(|e| e.code())
        .unwrap_or("")
}

/// Codes that mean the stream no longer holds the records. Not an expired
/// iterator (a slow or throttled read: the records may all be there) nor
/// InvalidArgumentException (a bad request): those keep the message as a
/// stream error, which --accept-loss never deletes.
fn gone(code: &str) -> bool {
    matches!(
        code,
        "ResourceNotFoundException" | "TrimmedDataAccessException"
    )
}

/// Worth another attempt: throttling, the service's own failures, and the
/// transport's (timeouts, lost connections). The Kinesis client's SDK
/// retries are off, so these are retried here, with backoff.
fn transient<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> bool {
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        _ => matches!(
            code(error),
            "ProvisionedThroughputExceededException"
                | "LimitExceededException"
                | "KMSThrottlingException"
                | "InternalFailure"
                | "ServiceUnavailable"
        ),
    }
}

/// The wait before retry `attempt` (1, 2, ...).
fn backoff(attempt: u32) -> Duration {
    BETWEEN_READS * 2u32.pow(attempt)
}

/// A Kinesis client built with `ClientPolicy::own_retries`: read_range
/// retries what is worth it.
pub struct KinesisShards(pub aws_sdk_kinesis::Client);

impl KinesisShards {
    /// An iterator at `sequence` (or just after it).
    async fn iterator(
        &self,
        batch: &BatchInfo,
        kind: ShardIteratorType,
        sequence: &str,
    ) -> Result<Result<String, String>, ReplayError> {
        let mut attempt = 0;
        loop {
            let result = self
                .0
                .get_shard_iterator()
                .stream_arn(&batch.stream_arn)
                .shard_id(&batch.shard_id)
                .shard_iterator_type(kind.clone())
                .starting_sequence_number(sequence)
                .send()
                .await;
            return match result {
                Ok(output) => Ok(output
                    .shard_iterator
                    .ok_or_else(|| "GetShardIterator returned no iterator".to_owned())),
                Err(e) if gone(code(&e)) => Ok(Err(error_text(&e))),
                Err(e) if attempt < READ_RETRIES && transient(&e) => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => Err(ReplayError::Stream(error_text(&e))),
            };
        }
    }
}

impl Shards for KinesisShards {
    async fn read_range(&self, batch: &BatchInfo) -> Result<ReadRange, ReplayError> {
        let end = batch.end_sequence_number.as_str();
        let mut read = ReadRange::default();
        let mut iterator = match self
            .iterator(
                batch,
                ShardIteratorType::AtSequenceNumber,
                &batch.start_sequence_number,
            )
            .await?
        {
            Ok(iterator) => iterator,
            Err(why) => {
                read.gone = Some(why);
                return Ok(read);
            }
        };
        let (mut calls, mut retries) = (0, 0);
        loop {
            calls += 1;
            if calls > MAX_READS {
                read.gone = Some(format!("the end was not reached in {MAX_READS} reads"));
                return Ok(read);
            }
            if calls > 1 {
                tokio::time::sleep(BETWEEN_READS).await;
            }
            let output = match self
                .0
                .get_records()
                .shard_iterator(&iterator)
                .stream_arn(&batch.stream_arn)
                .send()
                .await
            {
                Ok(output) => output,
                Err(e)
                    if retries < READ_RETRIES
                        && (transient(&e) || code(&e) == "ExpiredIteratorException") =>
                {
                    retries += 1;
                    match code(&e) {
                        // Iterators last 5 minutes: take a new one after the
                        // last record read.
                        "ExpiredIteratorException" => {
                            let renewed = match read.records.last() {
                                Some(last) => {
                                    let after = last.sequence.clone();
                                    self.iterator(
                                        batch,
                                        ShardIteratorType::AfterSequenceNumber,
                                        &after,
                                    )
                                    .await?
                                }
                                None => {
                                    self.iterator(
                                        batch,
                                        ShardIteratorType::AtSequenceNumber,
                                        &batch.start_sequence_number,
                                    )
                                    .await?
                                }
                            };
                            match renewed {
                                Ok(next) => {
                                    iterator = next;
                                    continue;
                                }
                                Err(why) => {
                                    read.gone = Some(why);
                                    return Ok(read);
                                }
                            }
                        }
                        _ => {
                            tokio::time::sleep(backoff(retries)).await;
                            continue;
                        }
                    }
                }
                Err(e) if gone(code(&e)) => {
                    read.gone = Some(error_text(&e));
                    return Ok(read);
                }
                Err(e) => return Err(ReplayError::Stream(error_text(&e))),
            };
            retries = 0;
            let empty = output.records.is_empty();
            for record in output.records {
                if compare_sequence(&record.sequence_number, end).is_gt() {
                    return Ok(read);
                }
                if compare_sequence(&record.sequence_number, &batch.start_sequence_number).is_lt() {
                    continue;
                }
                read.records.push(KinesisRecord {
                    arrival_ms: record
                        .approximate_arrival_timestamp
                        .and_then(|t| t.to_millis().ok())
                        .unwrap_or(0),
                    sequence: record.sequence_number,
                    shard: batch.shard_id.clone(),
                    partition_key: record.partition_key.unwrap_or_default(),
                    data: record.data.into_inner(),
                    user_record: None,
                });
            }
            if read
                .records
                .last()
                .is_some_and(|last| compare_sequence(&last.sequence, end).is_ge())
            {
                return Ok(read);
            }
            match output.next_shard_iterator {
                // A closed shard read to its end.
                None => return Ok(read),
                // Caught up with the shard's tip: the rest is not there.
                Some(_) if empty && output.millis_behind_latest == Some(0) => return Ok(read),
                Some(next) => iterator = next,
            }
        }
    }
}

pub struct SqsQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl Queue for SqsQueue {
    async fn receive(&self, hide: Duration) -> Result<Option<QueueMessage>, ReplayError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(1)
            .visibility_timeout(hide.as_secs() as i32)
            // Long polling asks every SQS server: a short poll may answer
            // empty while messages wait.
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| ReplayError::Queue(error_text(&e)))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| QueueMessage {
                id: m.message_id.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .next())
    }

    async fn delete(&self, receipt: &str) -> Result<(), ReplayError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ReplayError::Queue(error_text(&e)))
    }

    async fn hide(&self, receipt: &str, hide: Duration) -> Result<(), ReplayError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(hide.as_secs() as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ReplayError::Queue(error_text(&e)))
    }
}

pub struct DynamoRejects {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl DynamoRejects {
    fn key(id: &RejectId) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("shardId".to_owned(), AttributeValue::S(id.shard.clone())),
            (
                "position".to_owned(),
                AttributeValue::S(id.position.sortable()),
            ),
        ])
    }
}

impl Rejects for DynamoRejects {
    async fn scan_page(
        &self,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), ReplayError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| ReplayError::Rejects(error_text(&e)))?;
        Ok((
            output.items.unwrap_or_default(),
            output.last_evaluated_key.filter(|key| !key.is_empty()),
        ))
    }

    async fn delete_if_unchanged(
        &self,
        id: &RejectId,
        rejected_at_ms: &str,
    ) -> Result<Deleted, ReplayError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .condition_expression("#at = :at")
            .expression_attribute_names("#at", "rejectedAtMs")
            .expression_attribute_values(":at", AttributeValue::N(rejected_at_ms.to_owned()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Deleted::Deleted),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                // With the item it failed on: written again meanwhile.
                DeleteItemError::ConditionalCheckFailedException(failed) => Ok(match failed.item {
                    Some(item) if !item.is_empty() => Deleted::Changed,
                    _ => Deleted::Gone,
                }),
                other => Err(ReplayError::Rejects(format!(
                    "{}: {}",
                    other.code().unwrap_or("UnknownError"),
                    other.message().unwrap_or("no message")
                ))),
            },
            Err(e) => Err(ReplayError::Rejects(error_text(&e))),
        }
    }

    async fn delete(&self, id: &RejectId) -> Result<Option<Item>, ReplayError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| ReplayError::Rejects(error_text(&e)))?;
        Ok(output.attributes.filter(|item| !item.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kinesis::operation::get_records::GetRecordsError;

    type Error = SdkError<GetRecordsError, ()>;

    fn service(code: &str) -> Error {
        let meta = aws_sdk_kinesis::error::ErrorMetadata::builder()
            .code(code)
            .build();
        SdkError::service_error(GetRecordsError::generic(meta), ())
    }

    #[test]
    fn throttling_server_and_transport_errors_are_transient_and_the_rest_not() {
        assert!(transient(&Error::timeout_error("attempt timed out")));
        for code in [
            "ProvisionedThroughputExceededException",
            "LimitExceededException",
            "InternalFailure",
            "ServiceUnavailable",
        ] {
            assert!(transient(&service(code)), "{code}");
        }
        for code in [
            "ExpiredIteratorException",
            "TrimmedDataAccessException",
            "AccessDeniedException",
            "InvalidArgumentException",
        ] {
            assert!(!transient(&service(code)), "{code}");
        }
    }
}
