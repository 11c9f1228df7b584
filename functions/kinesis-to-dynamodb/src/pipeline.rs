//! One batch: decode, collapse, write, set poison aside, checkpoint.

use crate::checkpoint;
use crate::checkpoint::Position;
use crate::config::{Config, Mode};
use crate::convert::Item;
use crate::record::{Entry, POSITION_ATTR, Reject, SHARD_ATTR, decode};
use crate::writer::{PutResult, Table, WriteError, batch_put_all, chunks, with_retries};
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{StreamExt, stream};
use serde_json::value::RawValue;
use shared::batch::PartialBatchResponse;
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Reject items keep at most this much of the record's data.
const MAX_REJECT_DATA: usize = 300 * 1024;

/// What happened to a batch, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub records_in: u64,
    /// User records (KPL aggregates expand to several).
    pub user_records: u64,
    pub written: u64,
    /// Already newer in the table (latest mode): success.
    pub stale_skipped: u64,
    /// Superseded in the same batch by a newer record for the same key.
    pub collapsed: u64,
    pub rejected: u64,
    pub retried: u64,
    pub failed: u64,
}

/// Records decoded and written at a time: memory stays bounded by this
/// window whatever the batch size, and each window is a whole number of
/// full BatchWriteItem rounds (2000 = 80 chunks = 5 rounds of 16).
pub const WINDOW: usize = 2000;

/// Processes `records` (the event's `Records`, as raw JSON), answering by
/// `deadline`.
pub async fn process<T: Table>(
    table: &T,
    config: &Config,
    records: &[Box<RawValue>],
    deadline: Instant,
) -> (PartialBatchResponse, Counts) {
    let retry_deadline = deadline
        .checked_sub(config.deadline_margin)
        .unwrap_or_else(Instant::now);
    let mut counts = Counts {
        records_in: records.len() as u64,
        ..Counts::default()
    };
    let mut failed: Vec<String> = Vec::new();
    for window in records.chunks(WINDOW) {
        process_window(
            table,
            config,
            window,
            retry_deadline,
            &mut counts,
            &mut failed,
        )
        .await;
    }
    counts.failed = failed.len() as u64;
    (
        checkpoint::response(failed.iter().map(String::as_str)),
        counts,
    )
}

async fn process_window<T: Table>(
    table: &T,
    config: &Config,
    records: &[Box<RawValue>],
    deadline: Instant,
    counts: &mut Counts,
    failed: &mut Vec<String>,
) {
    let mut rejects = Vec::new();
    // Newest entry per key: a BatchWriteItem call must not repeat a key, and
    // in latest mode only the newest matters (the conditional write settles
    // keys that recur across windows).
    let mut newest: HashMap<Vec<String>, Entry> = HashMap::new();
    for raw in records {
        for result in decode(raw.get(), config).results {
            counts.user_records += 1;
            match result {
                Err(reject) => rejects.push(reject),
                Ok(entry) => {
                    if let Some(previous) = newest.get(&entry.key) {
                        counts.collapsed += 1;
                        if previous.position > entry.position {
                            continue;
                        }
                    }
                    newest.insert(entry.key.clone(), entry);
                }
            }
        }
    }
    let entries: Vec<Entry> = newest.into_values().collect();
    let refused = match config.mode {
        Mode::Latest => write_latest(table, config, entries, deadline, counts, failed).await,
        Mode::Append => write_append(table, config, entries, deadline, counts, failed).await,
    };
    rejects.extend(refused);
    store_rejects(table, config, rejects, deadline, counts, failed).await;
}

/// A reject for an item DynamoDB itself refused.
fn refused(entry: &Entry, reason: String) -> Reject {
    Reject {
        position: entry.position.clone(),
        ..refused_item(&entry.item, reason)
    }
}

/// The same from the item alone: its position is read back from it.
fn refused_item(item: &Item, reason: String) -> Reject {
    let text = |attr: &str| match item.get(attr) {
        Some(AttributeValue::S(s)) => s.clone(),
        _ => String::new(),
    };
    let sortable = text(POSITION_ATTR);
    let (sequence, sub) = sortable.split_once('.').unwrap_or((&sortable, "0"));
    Reject {
        position: Position {
            sequence: sequence.trim_start_matches('0').to_owned(),
            sub: sub.parse().unwrap_or(0),
        },
        shard: text(SHARD_ATTR),
        reason: format!("DynamoDB refused the item: {reason}"),
        data: Vec::new(),
    }
}

async fn write_latest<T: Table>(
    table: &T,
    config: &Config,
    entries: Vec<Entry>,
    deadline: Instant,
    counts: &mut Counts,
    failed: &mut Vec<String>,
) -> Vec<Reject> {
    let results: Vec<_> = stream::iter(entries)
        .map(|entry| async move {
            let position = entry.position.sortable();
            let (result, retries) = with_retries(config.backoff, deadline, || {
                table.put_if_newer(&config.table, entry.item.clone(), POSITION_ATTR, &position)
            })
            .await;
            (entry, result, retries)
        })
        .buffer_unordered(config.max_in_flight)
        .collect()
        .await;
    let mut rejects = Vec::new();
    for (entry, result, retries) in results {
        counts.retried += u64::from(retries);
        match result {
            Ok(PutResult::Written) => counts.written += 1,
            Ok(PutResult::Stale) => counts.stale_skipped += 1,
            Err(WriteError::ItemRejected(reason)) => rejects.push(refused(&entry, reason)),
            Err(_) => failed.push(entry.position.sequence),
        }
    }
    rejects
}

async fn write_append<T: Table>(
    table: &T,
    config: &Config,
    entries: Vec<Entry>,
    deadline: Instant,
    counts: &mut Counts,
    failed: &mut Vec<String>,
) -> Vec<Reject> {
    // Items move into the requests; what is left of each entry is enough to
    // report it: its position text (to match unprocessed items) and sequence.
    let mut sequence_of: HashMap<String, String> = HashMap::with_capacity(entries.len());
    let mut items = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        sequence_of.insert(entry.position.sortable(), entry.position.sequence);
        items.push((entry.item, i));
    }
    let results: Vec<_> = stream::iter(chunks(items))
        .map(|chunk| async move {
            let size = chunk.len();
            let items = chunk.into_iter().map(|(item, _)| item).collect();
            let (unwritten, error, retries) =
                batch_put_all(table, &config.table, items, config.backoff, deadline).await;
            (size, unwritten, error, retries)
        })
        .buffer_unordered(config.max_in_flight)
        .collect()
        .await;
    let position_of = |item: &Item| match item.get(POSITION_ATTR) {
        Some(AttributeValue::S(p)) => sequence_of.get(p).cloned(),
        _ => None,
    };
    let mut rejects = Vec::new();
    for (size, unwritten, error, retries) in results {
        counts.retried += u64::from(retries);
        if let Some(WriteError::ItemRejected(_)) = error {
            // One bad item fails the whole call: put them one by one to find it.
            for item in unwritten {
                let (result, retries) = with_retries(config.backoff, deadline, || {
                    table.put(&config.table, item.clone())
                })
                .await;
                counts.retried += u64::from(retries);
                match result {
                    Ok(()) => counts.written += 1,
                    Err(WriteError::ItemRejected(reason)) => {
                        rejects.push(refused_item(&item, reason))
                    }
                    Err(_) => failed.extend(position_of(&item)),
                }
            }
            continue;
        }
        counts.written += (size - unwritten.len()) as u64;
        failed.extend(unwritten.iter().filter_map(position_of));
    }
    rejects
}

/// Stores poison where people can inspect and replay it; a record is
/// reported failed only if its reject could not be stored.
async fn store_rejects<T: Table>(
    table: &T,
    config: &Config,
    rejects: Vec<Reject>,
    deadline: Instant,
    counts: &mut Counts,
    failed: &mut Vec<String>,
) {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let results: Vec<_> = stream::iter(rejects)
        .map(|reject| async move {
            let mut data = reject.data.clone();
            data.truncate(MAX_REJECT_DATA);
            let item = HashMap::from([
                (
                    "shardId".to_owned(),
                    AttributeValue::S(reject.shard.clone()),
                ),
                (
                    "position".to_owned(),
                    AttributeValue::S(reject.position.sortable()),
                ),
                (
                    "sequenceNumber".to_owned(),
                    AttributeValue::S(reject.position.sequence.clone()),
                ),
                (
                    "subSequence".to_owned(),
                    AttributeValue::N(reject.position.sub.to_string()),
                ),
                (
                    "reason".to_owned(),
                    AttributeValue::S(reject.reason.chars().take(2000).collect()),
                ),
                (
                    "dataTruncated".to_owned(),
                    AttributeValue::Bool(data.len() < reject.data.len()),
                ),
                ("data".to_owned(), AttributeValue::B(data.into())),
                (
                    "rejectedAtMs".to_owned(),
                    AttributeValue::N(now_ms.to_string()),
                ),
            ]);
            let (result, retries) = with_retries(config.backoff, deadline, || {
                table.put(&config.rejects_table, item.clone())
            })
            .await;
            (reject, result, retries)
        })
        .buffer_unordered(config.max_in_flight)
        .collect()
        .await;
    for (reject, result, retries) in results {
        counts.retried += u64::from(retries);
        match result {
            Ok(()) => counts.rejected += 1,
            Err(_) => failed.push(reject.position.sequence),
        }
    }
}
