//! The Kinesis stream behind [`Shards`], for the replay tool.

use crate::checkpoint::compare_sequence;
use crate::ports::{ReadRange, ReplayError, Shards};
use crate::record::KinesisRecord;
use crate::replay::BatchInfo;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::types::ShardIteratorType;
use shared::aws::service_error_text;
use std::time::Duration;

/// GetRecords allows 5 calls per second per shard.
const BETWEEN_READS: Duration = Duration::from_millis(200);
/// Retries of a throttled or expired read before giving up on a batch.
const READ_RETRIES: u32 = 5;
/// Calls past the batch's end position before giving up looking for it (a
/// shard with long gaps answers empty pages while it catches up).
const MAX_READS: u32 = 10_000;

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
                Err(e) if gone(code(&e)) => Ok(Err(service_error_text(&e))),
                Err(e) if attempt < READ_RETRIES && transient(&e) => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                    continue;
                }
                Err(e) => Err(ReplayError::Stream(service_error_text(&e))),
            };
        }
    }
}

impl KinesisShards {
    /// Iterators last 5 minutes: a new one after the last record read (at
    /// the batch's start if none was).
    async fn renewed_iterator(
        &self,
        batch: &BatchInfo,
        read: &ReadRange,
    ) -> Result<Result<String, String>, ReplayError> {
        match read.records.last() {
            Some(last) => {
                let after = last.sequence.clone();
                self.iterator(batch, ShardIteratorType::AfterSequenceNumber, &after)
                    .await
            }
            None => {
                self.iterator(
                    batch,
                    ShardIteratorType::AtSequenceNumber,
                    &batch.start_sequence_number,
                )
                .await
            }
        }
    }
}

impl Shards for KinesisShards {
    async fn read_range(&self, batch: &BatchInfo) -> Result<ReadRange, ReplayError> {
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
                Err(e) if retries < READ_RETRIES && code(&e) == "ExpiredIteratorException" => {
                    retries += 1;
                    match self.renewed_iterator(batch, &read).await? {
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
                Err(e) if retries < READ_RETRIES && transient(&e) => {
                    retries += 1;
                    tokio::time::sleep(backoff(retries)).await;
                    continue;
                }
                Err(e) if gone(code(&e)) => {
                    read.gone = Some(service_error_text(&e));
                    return Ok(read);
                }
                Err(e) => return Err(ReplayError::Stream(service_error_text(&e))),
            };
            retries = 0;
            let empty = output.records.is_empty();
            if take_page(batch, output.records, &mut read) {
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

/// Adds a page's records that belong to the batch to `read`; true once
/// the batch's end is reached.
fn take_page(
    batch: &BatchInfo,
    records: Vec<aws_sdk_kinesis::types::Record>,
    read: &mut ReadRange,
) -> bool {
    let end = batch.end_sequence_number.as_str();
    for record in records {
        if compare_sequence(&record.sequence_number, end).is_gt() {
            return true;
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
    read.records
        .last()
        .is_some_and(|last| compare_sequence(&last.sequence, end).is_ge())
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
