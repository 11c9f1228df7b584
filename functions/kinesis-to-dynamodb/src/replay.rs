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
use shared::batch::PartialBatchResponse;
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
        let (entries, rejects) = decoded(&records, config);
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
    let verdict = verdict(delete, missing.is_some(), &response);
    out(format!(
        "{verdict} {id} {range}: {found} records read, {}",
        describe(&counts)
    ));
    delete
}

/// The user records `records` decode to, and the rejects among them.
fn decoded(records: &[EventRecord], config: &Config) -> (u64, u64) {
    let (mut entries, mut rejects) = (0, 0);
    for record in records {
        for result in decode(record, config).results {
            match result {
                Ok(_) => entries += 1,
                Err(_) => rejects += 1,
            }
        }
    }
    (entries, rejects)
}

/// What became of a queue message, as its line starts.
fn verdict(delete: bool, missing: bool, response: &PartialBatchResponse) -> String {
    let complete = response.batch_item_failures.is_empty();
    match (delete, complete, missing) {
        (true, _, false) => "deleted".to_owned(),
        (true, _, true) => "deleted (--accept-loss)".to_owned(),
        (false, false, _) => format!(
            "kept    (not written from {} on)",
            response
                .batch_item_failures
                .first()
                .map_or("", |f| f.item_identifier.as_str())
        ),
        (false, true, _) => "kept    (records missing; --accept-loss deletes it)".to_owned(),
    }
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
    delete_replayed(rejects, &id, &item, counts).await
}

/// Deletes a replayed reject unless it was stored again meanwhile.
async fn delete_replayed<R: Rejects>(
    rejects: &R,
    id: &RejectId,
    item: &Item,
    counts: Counts,
) -> Result<(Outcome, String, Counts), ReplayError> {
    let rejected_at = match item.get("rejectedAtMs") {
        Some(AttributeValue::N(n)) => n.clone(),
        _ => "0".to_owned(),
    };
    let done = |line: String, counts| Ok((Outcome::Done, line, counts));
    let left = |line: String, counts| Ok((Outcome::Left, line, counts));
    match rejects.delete_if_unchanged(id, &rejected_at).await? {
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
mod tests;
