//! Operator replays through the function's own pipeline and writer: the
//! batches named by the failure queue, re-read from the stream, and the
//! rejects table once the cause of a reject is fixed.
//!
//! A queue message or a reject is deleted only once every record it stands
//! for was written (or found stale, or rejected, as the function would);
//! everything else stays where it was, and is reported.

use crate::checkpoint::{Position, compare_sequence};
use crate::config::Config;
use crate::convert::Item;
use crate::kpl;
use crate::pipeline::{Counts, process};
use crate::ports::{Deleted, Queue, QueueMessage, ReadRange, Rejects, ReplayError, Shards, Table};
use crate::record::{EventRecord, KinesisRecord, decode};
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// The time one batch (or one reject) gets through the pipeline.
pub const BATCH_TIME: Duration = Duration::from_secs(600);

/// What Lambda sends to a Kinesis event source mapping's on-failure
/// destination: metadata of the discarded batch, never its data.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FailureMessage {
    #[serde(rename = "KinesisBatchInfo")]
    pub batch: BatchInfo,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchInfo {
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub stream_arn: String,
    /// Kinesis records in the batch (an aggregate counts once).
    pub batch_size: u64,
}

/// SNS's envelope, when the destination is a topic whose SQS subscription
/// does not use raw message delivery.
#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

impl FailureMessage {
    /// The message as Lambda sent it, or wrapped by SNS.
    pub fn parse(body: &str) -> Result<Self, String> {
        let inner = match serde_json::from_str::<SnsEnvelope>(body) {
            Ok(envelope) if envelope.kind == "Notification" => envelope.message,
            _ => body.to_owned(),
        };
        serde_json::from_str(&inner).map_err(|e| format!("not a Kinesis on-failure message: {e}"))
    }
}

/// Totals of a run; `left` counts what stays (and makes the exit code).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub seen: u64,
    pub done: u64,
    pub left: u64,
    pub records_read: u64,
    pub records_missing: u64,
    pub counts: Counts,
}

impl Summary {
    fn add_counts(&mut self, c: &Counts) {
        let t = &mut self.counts;
        t.records_in += c.records_in;
        t.user_records += c.user_records;
        t.written += c.written;
        t.stale_skipped += c.stale_skipped;
        t.collapsed += c.collapsed;
        t.rejected += c.rejected;
        t.retried += c.retried;
        t.failed += c.failed;
    }
}

fn describe(c: &Counts) -> String {
    format!(
        "{} user records: written {}, stale {}, collapsed {}, rejected {}, failed {}",
        c.user_records, c.written, c.stale_skipped, c.collapsed, c.rejected, c.failed
    )
}

#[derive(Debug, Clone, Copy, Default)]
pub struct FailureOptions {
    pub dry_run: bool,
    pub max: Option<u64>,
    pub accept_loss: bool,
    pub hold: Hold,
}

/// How a message is kept from others while it is replayed: hidden for
/// `hide` when received, and again every `extend_every` until done (a batch
/// can take BATCH_TIME plus long reads, more than any fixed timeout).
#[derive(Debug, Clone, Copy)]
pub struct Hold {
    pub hide: Duration,
    pub extend_every: Duration,
}

impl Default for Hold {
    fn default() -> Self {
        Self {
            hide: Duration::from_secs(300),
            extend_every: Duration::from_secs(60),
        }
    }
}

/// Runs `work` while keeping the message hidden; returns its output and
/// the last failure to extend, if any.
async fn while_hidden<Q: Queue, F: Future>(
    queue: &Q,
    receipt: &str,
    hold: Hold,
    work: F,
) -> (F::Output, Option<ReplayError>) {
    let mut work = std::pin::pin!(work);
    let mut failure = None;
    loop {
        tokio::select! {
            output = &mut work => return (output, failure),
            () = tokio::time::sleep(hold.extend_every) => {
                if let Err(e) = queue.hide(receipt, hold.hide).await {
                    failure = Some(e);
                }
            }
        }
    }
}

/// Replays the failure queue's messages; `out` gets one line per message.
pub async fn replay_failures<Q, S, T>(
    queue: &Q,
    shards: &S,
    table: &T,
    config: &Config,
    options: FailureOptions,
    out: &mut dyn FnMut(String),
) -> Result<Summary, ReplayError>
where
    Q: Queue,
    S: Shards,
    T: Table + Clone + 'static,
{
    let mut summary = Summary::default();
    let mut seen = HashSet::new();
    // The newest receipt of each message kept, to make it visible again.
    let mut kept = HashMap::new();
    let result = async {
        loop {
            if options.max.is_some_and(|max| summary.seen >= max) {
                break;
            }
            let Some(message) = queue.receive(options.hold.hide).await? else {
                break;
            };
            // Kept earlier in this run, visible again: once is enough.
            if !seen.insert(message.id.clone()) {
                kept.insert(message.id, message.receipt);
                continue;
            }
            summary.seen += 1;
            let (delete, hide_failure) = while_hidden(
                queue,
                &message.receipt,
                options.hold,
                replay_message(shards, table, config, options, &message, &mut summary, out),
            )
            .await;
            if let Some(e) = hide_failure {
                out(format!(
                    "warning: {} may have been visible to others while replayed (another run may replay it too): {e}",
                    message.id
                ));
            }
            let deleted = if delete && !options.dry_run {
                match queue.delete(&message.receipt).await {
                    Ok(()) => true,
                    Err(e) => {
                        out(format!("kept    {}: could not delete it: {e}", message.id));
                        false
                    }
                }
            } else {
                false
            };
            // A dry run counts what it would delete as done.
            if deleted || (delete && options.dry_run) {
                summary.done += 1;
            } else {
                summary.left += 1;
            }
            if !deleted {
                kept.insert(message.id, message.receipt);
            }
        }
        Ok::<(), ReplayError>(())
    }
    .await;
    // Kept messages are visible again at once, for the next run.
    for receipt in kept.into_values() {
        if let Err(e) = queue.hide(&receipt, Duration::ZERO).await {
            out(format!(
                "warning: a kept message stays hidden until its visibility timeout: {e}"
            ));
        }
    }
    result.map(|()| summary)
}

/// Replays one message; true if it can be deleted.
async fn replay_message<S: Shards, T: Table + Clone + 'static>(
    shards: &S,
    table: &T,
    config: &Config,
    options: FailureOptions,
    message: &QueueMessage,
    summary: &mut Summary,
    out: &mut dyn FnMut(String),
) -> bool {
    let id = &message.id;
    let batch = match FailureMessage::parse(&message.body) {
        Ok(parsed) => parsed.batch,
        Err(e) => {
            out(format!("kept    {id}: {e}"));
            return false;
        }
    };
    let range = format!(
        "{} {}..{}",
        batch.shard_id, batch.start_sequence_number, batch.end_sequence_number
    );
    let read = match shards.read_range(&batch).await {
        Ok(read) => read,
        Err(e) => {
            out(format!("kept    {id} {range}: {e}"));
            return false;
        }
    };
    let found = read.records.len() as u64;
    summary.records_read += found;
    let missing = missing(&batch, &read);
    if let Some(why) = &missing {
        summary.records_missing += batch.batch_size.saturating_sub(found);
        out(format!(
            "LOSS    {id} {range}: {found} of {} records read: {why}",
            batch.batch_size
        ));
    }
    let records: Vec<EventRecord> = read
        .records
        .into_iter()
        .map(EventRecord::Readable)
        .collect();
    if options.dry_run {
        let (mut entries, mut rejects) = (0, 0);
        for record in &records {
            for result in decode(record, config).results {
                match result {
                    Ok(_) => entries += 1,
                    Err(_) => rejects += 1,
                }
            }
        }
        out(format!(
            "dry run {id} {range}: {found} records read, would write {entries} user records and reject {rejects}"
        ));
        return missing.is_none();
    }
    // What was found is written even when some is missing: it may expire
    // soon, and writing it again later changes nothing.
    let (response, counts) = process(table, config, &records, Instant::now() + BATCH_TIME).await;
    summary.add_counts(&counts);
    let complete = response.batch_item_failures.is_empty();
    let delete = complete && (missing.is_none() || options.accept_loss);
    let verdict = match (delete, complete, &missing) {
        (true, _, None) => "deleted".to_owned(),
        (true, _, Some(_)) => "deleted (--accept-loss)".to_owned(),
        (false, false, _) => format!(
            "kept    (not written from {} on)",
            response
                .batch_item_failures
                .first()
                .map_or("", |f| f.item_identifier.as_str())
        ),
        (false, true, _) => "kept    (records missing; --accept-loss deletes it)".to_owned(),
    };
    out(format!(
        "{verdict} {id} {range}: {found} records read, {}",
        describe(&counts)
    ));
    delete
}

/// The configuration a run writes with, as one line for the operator.
pub fn describe_config(c: &Config) -> String {
    use crate::config::{KeySource, Mode};
    let source = |s: &KeySource| match s {
        KeySource::Pointer {
            pointer,
            or_partition_key: false,
        } => pointer.clone(),
        KeySource::Pointer {
            pointer,
            or_partition_key: true,
        } => format!("{pointer} (else the Kinesis partition key)"),
        KeySource::PartitionKey => "the Kinesis partition key".into(),
        KeySource::Position => "the record's position".into(),
    };
    let sort = match &c.sort_key {
        Some((name, s)) => format!("sort key {name} from {}", source(s)),
        None => "no sort key".into(),
    };
    let mode = match c.mode {
        Mode::Latest => "latest",
        Mode::Append => "append",
    };
    format!(
        "configuration: table {}, partition key {} from {}, {sort}, mode {mode}, rejects table {}",
        c.table,
        c.partition_key,
        source(&c.partition_key_source),
        c.rejects_table
    )
}

/// Why the records read are not the whole batch, if they are not.
pub fn missing(batch: &BatchInfo, read: &ReadRange) -> Option<String> {
    let first = read.records.first().map(|r| r.sequence.as_str());
    let last = read.records.last().map(|r| r.sequence.as_str());
    let mut problems = Vec::new();
    if let Some(why) = &read.gone {
        problems.push(why.clone());
    }
    if (read.records.len() as u64) < batch.batch_size {
        problems.push(format!(
            "{} records no longer in the stream",
            batch.batch_size - read.records.len() as u64
        ));
    }
    if first.is_none_or(|s| compare_sequence(s, &batch.start_sequence_number).is_ne()) {
        problems.push("the first record is gone (retention passed?)".into());
    }
    if last.is_none_or(|s| compare_sequence(s, &batch.end_sequence_number).is_ne()) {
        problems.push("the last record was not found".into());
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// A reject's key, written `shardId/sequenceNumber/subSequence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectId {
    pub shard: String,
    pub position: Position,
}

impl RejectId {
    pub fn parse(text: &str) -> Result<Self, ReplayError> {
        let bad = || {
            ReplayError::Usage(format!(
                "--id {text:?}: expected shardId/sequenceNumber/subSequence, as `rejects list` prints it"
            ))
        };
        let mut parts = text.split('/');
        let (Some(shard), Some(sequence), Some(sub), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if shard.is_empty() || !sequence.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        Ok(Self {
            shard: shard.to_owned(),
            position: Position {
                sequence: sequence.to_owned(),
                sub: sub.parse().map_err(|_| bad())?,
            },
        })
    }

    fn of(item: &Item) -> Self {
        Self {
            shard: text(item, "shardId").unwrap_or_default().to_owned(),
            position: Position {
                sequence: text(item, "sequenceNumber").unwrap_or_default().to_owned(),
                sub: number(item, "subSequence").unwrap_or(0) as u32,
            },
        }
    }
}

impl std::fmt::Display for RejectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.shard, self.position.sequence, self.position.sub
        )
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(s)) => Some(s),
        _ => None,
    }
}

fn number(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(n)) => n.parse().ok(),
        _ => None,
    }
}

/// One line describing a reject.
pub fn reject_line(item: &Item) -> String {
    let at = number(item, "rejectedAtMs")
        .and_then(|ms| {
            aws_smithy_types::DateTime::from_millis(ms)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .ok()
        })
        .unwrap_or_else(|| "?".into());
    let truncated = matches!(item.get("dataTruncated"), Some(AttributeValue::Bool(true)));
    format!(
        "{}  rejected {at}{}  {}",
        RejectId::of(item),
        if truncated { "  (data truncated)" } else { "" },
        text(item, "reason").unwrap_or("")
    )
}

/// The record a reject stands for, as the function first read it; or why
/// it cannot be rebuilt.
pub fn record_of_reject(item: &Item) -> Result<EventRecord, String> {
    let data = match item.get("data") {
        Some(AttributeValue::B(blob)) => blob.as_ref().to_vec(),
        _ => return Err("the reject has no data".into()),
    };
    if matches!(item.get("dataTruncated"), Some(AttributeValue::Bool(true))) {
        return Err("its data was cut to 300 KB when rejected: replay it by hand".into());
    }
    let reason = text(item, "reason").unwrap_or("");
    // A malformed record's data is the event record's own JSON text.
    if reason.starts_with("malformed Kinesis record") {
        return Ok(EventRecord::read(&String::from_utf8_lossy(&data)));
    }
    let id = RejectId::of(item);
    let (Some(partition_key), Some(arrival_ms)) =
        (text(item, "partitionKey"), number(item, "arrivalMs"))
    else {
        return Err(
            "it was stored without its partition key and arrival time (before the replay tool): replay it by hand"
                .into(),
        );
    };
    Ok(EventRecord::Readable(KinesisRecord {
        sequence: id.position.sequence,
        shard: id.shard,
        partition_key: partition_key.to_owned(),
        arrival_ms,
        // A whole aggregate (its checksum failed) is read as one again; a
        // user record keeps its place in its aggregate.
        user_record: (!kpl::is_aggregated(&data)).then_some(id.position.sub),
        data,
    }))
}

/// Lists the rejects, one line each.
pub async fn list_rejects<R: Rejects>(
    rejects: &R,
    limit: Option<usize>,
    out: &mut dyn FnMut(String),
) -> Result<Summary, ReplayError> {
    let mut summary = Summary::default();
    let mut start = None;
    loop {
        let (items, next) = rejects.scan_page(start).await?;
        for item in &items {
            if limit.is_some_and(|limit| summary.seen as usize >= limit) {
                return Ok(summary);
            }
            summary.seen += 1;
            out(reject_line(item));
        }
        match next {
            Some(key) => start = Some(key),
            None => return Ok(summary),
        }
    }
}

/// What became of one reject.
enum Outcome {
    Done,
    Left,
}

/// Re-submits each reject through the pipeline; deletes it once written.
/// A page's rejects run `MAX_IN_FLIGHT` at once (each a batch of its own,
/// so each has its own outcome); latest mode's conditional writes keep the
/// newest of a key whatever the order.
pub async fn replay_rejects<R, T>(
    rejects: &R,
    table: &T,
    config: &Config,
    dry_run: bool,
    out: &mut dyn FnMut(String),
) -> Result<Summary, ReplayError>
where
    R: Rejects + Sync,
    T: Table + Clone + 'static,
{
    let mut summary = Summary::default();
    let mut start = None;
    loop {
        let (items, next) = rejects.scan_page(start).await?;
        let mut replays = futures_util::stream::iter(items)
            .map(|item| replay_reject(rejects, table, config, dry_run, item))
            .buffer_unordered(config.max_in_flight);
        while let Some(result) = replays.next().await {
            let (outcome, line, counts) = result?;
            summary.seen += 1;
            summary.add_counts(&counts);
            match outcome {
                Outcome::Done => summary.done += 1,
                Outcome::Left => summary.left += 1,
            }
            out(line);
        }
        match next {
            Some(key) => start = Some(key),
            None => return Ok(summary),
        }
    }
}

async fn replay_reject<R, T>(
    rejects: &R,
    table: &T,
    config: &Config,
    dry_run: bool,
    item: Item,
) -> Result<(Outcome, String, Counts), ReplayError>
where
    R: Rejects,
    T: Table + Clone + 'static,
{
    let id = RejectId::of(&item);
    let left = |line: String, counts| Ok((Outcome::Left, line, counts));
    let record = match record_of_reject(&item) {
        Ok(record) => record,
        Err(why) => return left(format!("left    {id}: {why}"), Counts::default()),
    };
    // Still poison as the function decodes it: nothing is written, the
    // reject stays as it is.
    if let Some(reject) = decode(&record, config)
        .results
        .into_iter()
        .find_map(Result::err)
    {
        return left(
            format!("left    {id}: still rejected: {}", reject.reason),
            Counts::default(),
        );
    }
    if dry_run {
        return Ok((
            Outcome::Done,
            format!("dry run {id}: would be written"),
            Counts::default(),
        ));
    }
    let (response, counts) = process(
        table,
        config,
        std::slice::from_ref(&record),
        Instant::now() + BATCH_TIME,
    )
    .await;
    if !response.batch_item_failures.is_empty() {
        return left(
            format!("left    {id}: not written: {}", describe(&counts)),
            counts,
        );
    }
    if counts.rejected > 0 {
        // DynamoDB refused it again: the pipeline stored the reject anew.
        return left(
            format!(
                "left    {id}: DynamoDB refused it again: {}",
                describe(&counts)
            ),
            counts,
        );
    }
    let rejected_at = match item.get("rejectedAtMs") {
        Some(AttributeValue::N(n)) => n.clone(),
        _ => "0".to_owned(),
    };
    let done = |line: String, counts| Ok((Outcome::Done, line, counts));
    match rejects.delete_if_unchanged(&id, &rejected_at).await? {
        Deleted::Deleted => done(
            format!("replayed {id}: {}; reject deleted", describe(&counts)),
            counts,
        ),
        Deleted::Gone => done(
            format!(
                "replayed {id}: {}; the reject was already deleted (another replay?)",
                describe(&counts)
            ),
            counts,
        ),
        Deleted::Changed => left(
            format!(
                "left    {id}: written, but the reject was stored again meanwhile (rejected again?): kept"
            ),
            counts,
        ),
    }
}

/// Deletes rejects by id, reporting each removed one.
pub async fn delete_rejects<R: Rejects>(
    rejects: &R,
    ids: &[RejectId],
    out: &mut dyn FnMut(String),
) -> Result<Summary, ReplayError> {
    let mut summary = Summary::default();
    for id in ids {
        summary.seen += 1;
        match rejects.delete(id).await? {
            Some(item) => {
                summary.done += 1;
                out(format!("deleted {}", reject_line(&item)));
            }
            None => {
                summary.left += 1;
                out(format!("no such reject {id}"));
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(size: u64) -> BatchInfo {
        BatchInfo {
            shard_id: "shardId-000000000000".into(),
            start_sequence_number: "100".into(),
            end_sequence_number: "300".into(),
            stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s".into(),
            batch_size: size,
        }
    }

    fn read(seqs: &[&str]) -> ReadRange {
        ReadRange {
            records: seqs
                .iter()
                .map(|s| KinesisRecord {
                    sequence: (*s).into(),
                    shard: "shardId-000000000000".into(),
                    partition_key: "k".into(),
                    arrival_ms: 0,
                    data: b"{}".to_vec(),
                    user_record: None,
                })
                .collect(),
            gone: None,
        }
    }

    #[test]
    fn parses_what_lambda_sends_to_an_on_failure_destination() {
        let body = r#"{"requestContext":{"requestId":"r","functionArn":"arn:aws:lambda:us-east-1:123456789012:function:f","condition":"RetryAttemptsExhausted","approximateInvokeCount":3},
            "responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},
            "version":"1.0","timestamp":"2026-11-30T10:00:00.000Z",
            "KinesisBatchInfo":{"shardId":"shardId-000000000000","startSequenceNumber":"100","endSequenceNumber":"300",
              "approximateArrivalOfFirstRecord":"2026-11-30T09:59:00.000Z","approximateArrivalOfLastRecord":"2026-11-30T09:59:01.000Z",
              "batchSize":3,"streamArn":"arn:aws:kinesis:us-east-1:123456789012:stream/s"}}"#;
        assert_eq!(FailureMessage::parse(body).unwrap().batch, batch(3));
        let err = FailureMessage::parse(r#"{"KinesisBatchInfo":{"shardId":"s"}}"#).unwrap_err();
        assert!(err.contains("startSequenceNumber"), "{err}");
    }

    #[test]
    fn an_sns_notification_is_unwrapped_and_what_it_wraps_is_checked() {
        let inner = serde_json::json!({"KinesisBatchInfo": {"shardId": "shardId-000000000000",
            "startSequenceNumber": "100", "endSequenceNumber": "300", "batchSize": 3,
            "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}});
        let wrap = |message: String| {
            serde_json::json!({"Type": "Notification", "MessageId": "m",
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": message})
            .to_string()
        };
        assert_eq!(
            FailureMessage::parse(&wrap(inner.to_string()))
                .unwrap()
                .batch,
            batch(3)
        );
        let err = FailureMessage::parse(&wrap(r#"{"KinesisBatchInfo":{}}"#.into())).unwrap_err();
        assert!(err.contains("shardId"), "{err}");
        // Another SNS message type is not a failure message.
        let other =
            serde_json::json!({"Type": "SubscriptionConfirmation", "Message": inner.to_string()});
        assert!(FailureMessage::parse(&other.to_string()).is_err());
    }

    #[test]
    fn a_range_is_complete_only_from_its_first_to_its_last_record() {
        assert_eq!(missing(&batch(3), &read(&["100", "200", "300"])), None);
        let trimmed = missing(&batch(3), &read(&["200", "300"])).unwrap();
        assert!(trimmed.contains("1 records no longer") && trimmed.contains("first record"));
        assert!(missing(&batch(3), &read(&[])).is_some());
        let mut gone = read(&["100", "200", "300"]);
        gone.gone = Some("TrimmedDataAccessException".into());
        assert!(missing(&batch(3), &gone).unwrap().contains("Trimmed"));
    }

    fn config(source: crate::config::KeySource) -> Config {
        Config {
            table: "t".into(),
            partition_key: "pk".into(),
            partition_key_source: source,
            sort_key: None,
            mode: crate::config::Mode::Latest,
            rejects_table: "r".into(),
            max_in_flight: 4,
            deadline_margin: Duration::from_secs(1),
            backoff: crate::batch_write::Backoff {
                base: Duration::from_millis(1),
                max: Duration::from_millis(8),
            },
        }
    }

    /// A reject, stored and read back, decodes as its record did: same
    /// position (KPL sub-record included), key, shard and arrival.
    #[test]
    fn a_stored_reject_decodes_as_its_record_did() {
        use crate::config::KeySource;
        let strict = config(KeySource::Pointer {
            pointer: "/customer".into(),
            or_partition_key: false,
        });
        let fixed = config(KeySource::Pointer {
            pointer: "/id".into(),
            or_partition_key: true,
        });
        let user = |key: &str, data: &str| kpl::UserRecord {
            partition_key: key.into(),
            explicit_hash_key: None,
            data: data.as_bytes().to_vec(),
        };
        let aggregate =
            kpl::aggregate(&[user("k0", r#"{"customer":"c"}"#), user("k1", r#"{"v":1}"#)]);
        let plain = br#"{"v":2}"#.to_vec();
        let bad_checksum = {
            let mut data = aggregate.clone();
            let last = data.len() - 1;
            data[last] ^= 0xff;
            data
        };
        for (data, sub) in [(aggregate, 1), (plain, 0), (bad_checksum, 0)] {
            let original = EventRecord::Readable(KinesisRecord {
                sequence: "49590338271490256608559692538361571095921575989136588898".into(),
                shard: "shardId-000000000003".into(),
                partition_key: "outer".into(),
                arrival_ms: 1_763_750_000_123,
                data,
                user_record: None,
            });
            let reject = decode(&original, &strict)
                .results
                .into_iter()
                .find_map(Result::err)
                .expect("rejected under /customer");
            assert_eq!(reject.position.sub, sub);
            let stored = crate::pipeline::reject_item(&reject, 5);
            let replayed = record_of_reject(&stored).unwrap();
            assert_eq!(
                decode(&replayed, &fixed).results,
                decode(&original, &fixed)
                    .results
                    .into_iter()
                    .filter(|r| r.as_ref().map_or(true, |e| e.position.sub == sub))
                    .collect::<Vec<_>>()
            );
        }
    }

    /// A table that takes every write.
    #[derive(Clone)]
    struct Accepting;

    impl Table for Accepting {
        async fn put_if_newer(
            &self,
            _: &str,
            _: Item,
            _: &crate::ports::Order,
        ) -> Result<crate::ports::PutResult, crate::ports::WriteError> {
            Ok(crate::ports::PutResult::Written)
        }
        async fn batch_put(
            &self,
            _: &str,
            _: Vec<Item>,
        ) -> Result<Vec<Item>, crate::ports::WriteError> {
            Ok(Vec::new())
        }
        async fn put(&self, _: &str, _: Item) -> Result<(), crate::ports::WriteError> {
            Ok(())
        }
    }

    /// Rejects whose every conditional delete finds them stored again.
    struct StoredAgain(Vec<Item>);

    impl Rejects for StoredAgain {
        async fn scan_page(
            &self,
            _: Option<Item>,
        ) -> Result<(Vec<Item>, Option<Item>), ReplayError> {
            Ok((self.0.clone(), None))
        }
        async fn delete_if_unchanged(&self, _: &RejectId, _: &str) -> Result<Deleted, ReplayError> {
            Ok(Deleted::Changed)
        }
        async fn delete(&self, _: &RejectId) -> Result<Option<Item>, ReplayError> {
            panic!("replay deletes only conditionally")
        }
    }

    /// The function stored the record's reject again while it was being
    /// replayed: that newer reject stays.
    #[tokio::test]
    async fn a_reject_stored_again_during_its_replay_stays() {
        let reject = crate::record::Reject {
            position: Position {
                sequence: "7".into(),
                sub: 0,
            },
            shard: "shardId-000000000000".into(),
            reason: "missing key".into(),
            data: br#"{"id":"a"}"#.as_slice().into(),
            partition_key: "a".into(),
            arrival_ms: 1,
        };
        let rejects = StoredAgain(vec![crate::pipeline::reject_item(&reject, 5)]);
        let fixed = config(crate::config::KeySource::Pointer {
            pointer: "/id".into(),
            or_partition_key: false,
        });
        let mut lines = Vec::new();
        let summary = replay_rejects(&rejects, &Accepting, &fixed, false, &mut |l| lines.push(l))
            .await
            .unwrap();
        assert_eq!((summary.done, summary.left), (0, 1));
        assert!(lines[0].contains("stored again meanwhile"), "{lines:?}");
    }

    /// Rejects served two per page, deleted as asked.
    struct Paged(std::sync::Mutex<Vec<Item>>);

    impl Rejects for Paged {
        async fn scan_page(
            &self,
            start: Option<Item>,
        ) -> Result<(Vec<Item>, Option<Item>), ReplayError> {
            let items = self.0.lock().unwrap().clone();
            let from = start.map_or(0, |key| number(&key, "page").unwrap_or(0) as usize);
            let page = items.iter().skip(from).take(2).cloned().collect();
            let next = (from + 2 < items.len()).then(|| {
                Item::from([("page".to_owned(), AttributeValue::N((from + 2).to_string()))])
            });
            Ok((page, next))
        }
        async fn delete_if_unchanged(
            &self,
            id: &RejectId,
            _: &str,
        ) -> Result<Deleted, ReplayError> {
            // Marks it instead of removing it, so pages stay where they were.
            let mut items = self.0.lock().unwrap();
            let item = items.iter_mut().find(|i| RejectId::of(i) == *id).unwrap();
            item.insert("deleted".into(), AttributeValue::Bool(true));
            Ok(Deleted::Deleted)
        }
        async fn delete(&self, _: &RejectId) -> Result<Option<Item>, ReplayError> {
            unreachable!()
        }
    }

    #[tokio::test]
    async fn every_page_of_rejects_is_listed_and_replayed() {
        let items = (0..5)
            .map(|i| {
                crate::pipeline::reject_item(
                    &crate::record::Reject {
                        position: Position {
                            sequence: (100 + i).to_string(),
                            sub: 0,
                        },
                        shard: "shardId-000000000000".into(),
                        reason: "missing key".into(),
                        data: format!(r#"{{"id":"k{i}"}}"#).into_bytes().into(),
                        partition_key: "p".into(),
                        arrival_ms: 1,
                    },
                    5,
                )
            })
            .collect();
        let rejects = Paged(std::sync::Mutex::new(items));
        let mut lines = Vec::new();
        let listed = list_rejects(&rejects, Some(3), &mut |l| lines.push(l))
            .await
            .unwrap();
        assert_eq!((listed.seen, lines.len()), (3, 3));
        let all = list_rejects(&rejects, None, &mut |_| {}).await.unwrap();
        assert_eq!(all.seen, 5);
        let fixed = config(crate::config::KeySource::Pointer {
            pointer: "/id".into(),
            or_partition_key: false,
        });
        let summary = replay_rejects(&rejects, &Accepting, &fixed, false, &mut |_| {})
            .await
            .unwrap();
        assert_eq!(
            (summary.seen, summary.done, summary.counts.written),
            (5, 5, 5)
        );
        assert!(
            rejects
                .0
                .lock()
                .unwrap()
                .iter()
                .all(|i| i.contains_key("deleted"))
        );
    }

    /// A queue holding one message, whose deletes fail.
    struct Undeletable(std::sync::Mutex<Vec<QueueMessage>>);

    impl Queue for Undeletable {
        async fn receive(&self, _: Duration) -> Result<Option<QueueMessage>, ReplayError> {
            Ok(self.0.lock().unwrap().pop())
        }
        async fn delete(&self, _: &str) -> Result<(), ReplayError> {
            Err(ReplayError::Queue("AccessDenied".into()))
        }
        async fn hide(&self, _: &str, _: Duration) -> Result<(), ReplayError> {
            Ok(())
        }
    }

    struct Whole(Vec<KinesisRecord>);

    impl Shards for Whole {
        async fn read_range(&self, _: &BatchInfo) -> Result<ReadRange, ReplayError> {
            Ok(ReadRange {
                records: self.0.clone(),
                gone: None,
            })
        }
    }

    /// Written, but the message could not be deleted: it is left, and the
    /// exit code says so.
    #[tokio::test]
    async fn a_message_that_cannot_be_deleted_counts_as_left() {
        let body = serde_json::json!({"KinesisBatchInfo": {"shardId": "shardId-000000000000",
            "startSequenceNumber": "100", "endSequenceNumber": "100", "batchSize": 1,
            "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}});
        let queue = Undeletable(std::sync::Mutex::new(vec![QueueMessage {
            id: "m1".into(),
            receipt: "r1".into(),
            body: body.to_string(),
        }]));
        let shards = Whole(read(&["100"]).records);
        let fixed = config(crate::config::KeySource::PartitionKey);
        let mut lines = Vec::new();
        let summary = replay_failures(
            &queue,
            &shards,
            &Accepting,
            &fixed,
            FailureOptions::default(),
            &mut |l| lines.push(l),
        )
        .await
        .unwrap();
        assert_eq!((summary.done, summary.left), (0, 1), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("could not delete it")));
    }

    /// A queue that keeps SQS's visibility rules on a real clock: a
    /// message received is hidden for its visibility timeout, then visible
    /// again; a receipt is good only until the message is received again.
    struct Clocked {
        state: std::sync::Mutex<ClockedState>,
    }

    #[derive(Default)]
    struct ClockedState {
        messages: Vec<Held>,
        receipts: u32,
        /// What a second run (or SQS) could have seen go wrong.
        violations: Vec<String>,
    }

    struct Held {
        id: String,
        body: String,
        visible_at: std::time::Instant,
        receipt: String,
        received: u32,
        deleted: bool,
    }

    impl Clocked {
        fn new(bodies: &[String]) -> Self {
            let now = std::time::Instant::now();
            let messages = bodies
                .iter()
                .enumerate()
                .map(|(i, body)| Held {
                    id: format!("m{i}"),
                    body: body.clone(),
                    visible_at: now,
                    receipt: String::new(),
                    received: 0,
                    deleted: false,
                })
                .collect();
            Self {
                state: std::sync::Mutex::new(ClockedState {
                    messages,
                    ..ClockedState::default()
                }),
            }
        }

        /// The message `receipt` stands for, if it is still its receipt and
        /// the message is still hidden.
        fn held<'a>(
            state: &'a mut ClockedState,
            receipt: &str,
            what: &str,
        ) -> Option<&'a mut Held> {
            let now = std::time::Instant::now();
            let Some(i) = state.messages.iter().position(|m| m.receipt == receipt) else {
                state
                    .violations
                    .push(format!("{what} with an old receipt {receipt}"));
                return None;
            };
            if state.messages[i].visible_at <= now {
                let id = state.messages[i].id.clone();
                state
                    .violations
                    .push(format!("{id} was visible again before the {what}"));
            }
            Some(&mut state.messages[i])
        }

        fn receive_up_to(&self, max: usize, hide: Duration) -> Vec<QueueMessage> {
            let now = std::time::Instant::now();
            let mut state = self.state.lock().unwrap();
            let mut out = Vec::new();
            for i in 0..state.messages.len() {
                if out.len() == max {
                    break;
                }
                if state.messages[i].deleted || state.messages[i].visible_at > now {
                    continue;
                }
                state.receipts += 1;
                let receipt = format!("r{}", state.receipts);
                let message = &mut state.messages[i];
                message.received += 1;
                message.visible_at = now + hide;
                message.receipt = receipt.clone();
                out.push(QueueMessage {
                    id: message.id.clone(),
                    receipt,
                    body: message.body.clone(),
                });
            }
            out
        }
    }

    impl Queue for Clocked {
        async fn receive(&self, hide: Duration) -> Result<Option<QueueMessage>, ReplayError> {
            Ok(self.receive_up_to(1, hide).pop())
        }
        async fn delete(&self, receipt: &str) -> Result<(), ReplayError> {
            let mut state = self.state.lock().unwrap();
            match Self::held(&mut state, receipt, "delete") {
                Some(message) => {
                    message.deleted = true;
                    Ok(())
                }
                None => Err(ReplayError::Queue("ReceiptHandleIsInvalid".into())),
            }
        }
        async fn hide(&self, receipt: &str, hide: Duration) -> Result<(), ReplayError> {
            let mut state = self.state.lock().unwrap();
            if let Some(message) = Self::held(&mut state, receipt, "visibility change") {
                message.visible_at = std::time::Instant::now() + hide;
            }
            Ok(())
        }
    }

    /// Reads that take longer than a message's visibility timeout.
    struct Slow(Duration);

    impl Shards for Slow {
        async fn read_range(&self, _: &BatchInfo) -> Result<ReadRange, ReplayError> {
            tokio::time::sleep(self.0).await;
            Ok(read(&["100"]))
        }
    }

    /// Every message stays hidden from the moment it is received until it
    /// is deleted, however long each one (or the ones before it) takes: a
    /// second run at the same time never replays it as well.
    #[tokio::test]
    async fn a_message_stays_hidden_while_it_and_the_ones_before_it_are_replayed() {
        let body = serde_json::json!({"KinesisBatchInfo": {"shardId": "shardId-000000000000",
            "startSequenceNumber": "100", "endSequenceNumber": "100", "batchSize": 1,
            "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}})
        .to_string();
        // Generous slack between extensions: a busy machine may stall a while.
        let visibility = Duration::from_millis(1500);
        let queue = Clocked::new(&vec![body; 3]);
        let fixed = config(crate::config::KeySource::PartitionKey);
        let mut lines = Vec::new();
        let summary = replay_failures(
            &queue,
            &Slow(visibility * 13 / 10),
            &Accepting,
            &fixed,
            FailureOptions {
                hold: Hold {
                    hide: visibility,
                    extend_every: visibility / 15,
                },
                ..FailureOptions::default()
            },
            &mut |l| lines.push(l),
        )
        .await
        .unwrap();
        let state = queue.state.lock().unwrap();
        assert_eq!(state.violations, Vec::<String>::new(), "{lines:?}");
        assert_eq!((summary.seen, summary.done), (3, 3), "{lines:?}");
        assert!(state.messages.iter().all(|m| m.deleted && m.received == 1));
    }

    #[test]
    fn reject_ids_round_trip_and_bad_ones_are_named() {
        let id = RejectId::parse("shardId-000000000001/4959/3").unwrap();
        assert_eq!(id.to_string(), "shardId-000000000001/4959/3");
        for bad in ["x", "s/12", "s/1a/0", "s/1/x", "/1/0", "s/1/0/9"] {
            assert!(RejectId::parse(bad).is_err(), "{bad}");
        }
    }
}
