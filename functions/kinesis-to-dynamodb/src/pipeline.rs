//! One batch: decode, collapse, write, set poison aside, checkpoint.
//!
//! Records are decoded lazily, as write slots free up: decoding overlaps the
//! requests in flight, and only the items being written are in memory.

use crate::checkpoint;
use crate::checkpoint::Position;
use crate::config::{Config, Mode};
use crate::convert::Item;
use crate::record::{Entry, EventRecord, POSITION_ATTR, Reject, SHARD_ATTR, decode};
use crate::writer::{
    MAX_BATCH_BYTES, MAX_BATCH_ITEMS, PutResult, Table, WriteError, batch_put_all, with_retries,
};
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{StreamExt, stream};
use shared::batch::PartialBatchResponse;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Write requests converted and waiting for a slot.
const CONVERTED_AHEAD: usize = 4;

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

/// What one write request (a PutItem, or a BatchWriteItem chunk) achieved.
#[derive(Default)]
struct Written {
    written: u64,
    stale_skipped: u64,
    retried: u64,
    /// Sequence numbers of records left unwritten.
    failed: Vec<String>,
    /// Items DynamoDB itself refused: poison after all.
    refused: Vec<Reject>,
}

/// Processes the event's records, answering by `deadline`.
///
/// Conversion runs ahead of the writes, bounded by a channel, so a request
/// goes out as soon as a slot frees. Each write request runs as a task of
/// its own, so building, signing and parsing requests spreads over the
/// runtime's workers. Conversion stays on this task: its allocations then
/// come from the main thread's heap, which the handler trims after each
/// invoke (worker-thread arenas kept ~4 MB more resident).
pub async fn process<T: Table + Clone + 'static>(
    table: &T,
    config: &Config,
    records: &[EventRecord],
    deadline: Instant,
) -> (PartialBatchResponse, Counts) {
    let retry_deadline = deadline
        .checked_sub(config.deadline_margin)
        .unwrap_or_else(Instant::now);
    let mut counts = Counts {
        records_in: records.len() as u64,
        ..Counts::default()
    };
    let shared = Arc::new(config.clone());
    let (ready, mut next) = mpsc::channel(CONVERTED_AHEAD);
    let writes = stream::poll_fn(|cx| next.poll_recv(cx))
        .map(|work: Work| {
            let sequences = work
                .entries()
                .map(|e| e.position.sequence.clone())
                .collect();
            let request = write(table.clone(), shared.clone(), work, retry_deadline);
            spawned(request, sequences)
        })
        .buffer_unordered(config.max_in_flight)
        .collect::<Vec<Written>>();
    let (converted, requests) = futures_util::join!(convert_all(records, config, ready), writes);
    counts.user_records = converted.user_records;
    counts.collapsed = converted.collapsed;
    let mut rejects = converted.rejects;
    let mut failed: Vec<String> = Vec::new();
    for request in requests {
        counts.written += request.written;
        counts.stale_skipped += request.stale_skipped;
        counts.retried += request.retried;
        failed.extend(request.failed);
        rejects.extend(request.refused);
    }
    store_rejects(
        table,
        config,
        rejects,
        retry_deadline,
        &mut counts,
        &mut failed,
    )
    .await;
    counts.failed = failed.len() as u64;
    (
        checkpoint::response(failed.iter().map(String::as_str)),
        counts,
    )
}

/// What the converter hands to the writers: one entry (latest mode, a
/// conditional PutItem each) or a BatchWriteItem chunk (append mode).
enum Work {
    One(Entry),
    Chunk(Vec<Entry>),
}

impl Work {
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        match self {
            Work::One(entry) => std::slice::from_ref(entry).iter(),
            Work::Chunk(chunk) => chunk.iter(),
        }
    }
}

/// What conversion found besides the entries it handed on.
struct Converted {
    rejects: Vec<Reject>,
    user_records: u64,
    collapsed: u64,
}

/// Converts every record, sending the entries to write into `ready`.
async fn convert_all(
    records: &[EventRecord],
    config: &Config,
    ready: mpsc::Sender<Work>,
) -> Converted {
    // Latest mode collapses duplicate keys over the whole batch: a first
    // pass finds the newest position per key, the second writes only those.
    // Append mode keys include the position, so keys only repeat if a
    // record itself does.
    let newest = match config.mode {
        Mode::Latest => Some(newest_per_key(records, config)),
        Mode::Append => None,
    };
    let mut seen = HashSet::new();
    let mut converted = Converted {
        rejects: Vec::new(),
        user_records: 0,
        collapsed: 0,
    };
    let entries = records
        .iter()
        .flat_map(|record| decode(record, config).results)
        .filter_map(|result| {
            converted.user_records += 1;
            let entry = result
                .map_err(|reject| converted.rejects.push(reject))
                .ok()?;
            let wanted = match &newest {
                Some(newest) => newest.get(&entry.key) == Some(&entry.position),
                None => seen.insert(entry.key.clone()),
            };
            if !wanted {
                converted.collapsed += 1;
            }
            wanted.then_some(entry)
        });
    let work: Box<dyn Iterator<Item = Work> + Send + '_> = match config.mode {
        Mode::Latest => Box::new(entries.map(Work::One)),
        Mode::Append => Box::new(Chunks { entries }.map(Work::Chunk)),
    };
    // A send fails only if the writers are gone: no one is left to write for.
    // Dropping `ready` at the end tells them there is no more.
    for next in work {
        if ready.send(next).await.is_err() {
            break;
        }
    }
    converted
}

async fn write<T: Table>(table: T, config: Arc<Config>, work: Work, deadline: Instant) -> Written {
    match work {
        Work::One(entry) => put_latest(table, config, entry, deadline).await,
        Work::Chunk(chunk) => put_chunk(table, config, chunk, deadline).await,
    }
}

/// Runs a write request as a task. Should the task die (a panic), its
/// records count as unwritten: the checkpoint then covers them.
async fn spawned(
    request: impl Future<Output = Written> + Send + 'static,
    sequences: Vec<String>,
) -> Written {
    match tokio::spawn(request).await {
        Ok(written) => written,
        Err(e) => {
            tracing::error!(error = %e, "write task failed");
            Written {
                failed: sequences,
                ..Written::default()
            }
        }
    }
}

/// The newest position of each key in the batch.
fn newest_per_key(records: &[EventRecord], config: &Config) -> HashMap<Vec<String>, Position> {
    let mut newest: HashMap<Vec<String>, Position> = HashMap::new();
    for record in records {
        for entry in decode(record, config).results.into_iter().flatten() {
            match newest.get_mut(&entry.key) {
                Some(position) if *position >= entry.position => {}
                Some(position) => *position = entry.position,
                None => {
                    newest.insert(entry.key, entry.position);
                }
            }
        }
    }
    newest
}

/// Groups entries into BatchWriteItem-sized chunks (25 items, 16 MB), as
/// they are pulled.
struct Chunks<I> {
    entries: I,
}

impl<I: Iterator<Item = Entry>> Iterator for Chunks<I> {
    type Item = Vec<Entry>;

    fn next(&mut self) -> Option<Vec<Entry>> {
        let mut chunk: Vec<Entry> = Vec::with_capacity(MAX_BATCH_ITEMS);
        let mut bytes = 0;
        for entry in self.entries.by_ref() {
            bytes += entry.size;
            chunk.push(entry);
            // Items are at most 400 KB: the next one always fits in 16 MB
            // while there is 400 KB left.
            if chunk.len() == MAX_BATCH_ITEMS || bytes + 400 * 1024 > MAX_BATCH_BYTES {
                break;
            }
        }
        (!chunk.is_empty()).then_some(chunk)
    }
}

async fn put_latest<T: Table>(
    table: T,
    config: Arc<Config>,
    entry: Entry,
    deadline: Instant,
) -> Written {
    let position = entry.position.sortable();
    let (result, retries) = with_retries(config.backoff, deadline, || {
        table.put_if_newer(&config.table, entry.item.clone(), POSITION_ATTR, &position)
    })
    .await;
    let mut done = Written {
        retried: u64::from(retries),
        ..Written::default()
    };
    match result {
        Ok(PutResult::Written) => done.written = 1,
        Ok(PutResult::Stale) => done.stale_skipped = 1,
        Err(WriteError::ItemRejected(reason)) => done.refused.push(refused(&entry, reason)),
        Err(_) => done.failed.push(entry.position.sequence),
    }
    done
}

async fn put_chunk<T: Table>(
    table: T,
    config: Arc<Config>,
    chunk: Vec<Entry>,
    deadline: Instant,
) -> Written {
    let mut positions = Vec::with_capacity(chunk.len());
    let items = chunk
        .into_iter()
        .map(|entry| {
            positions.push(entry.position);
            entry.item
        })
        .collect();
    let (unwritten, error, retries) =
        batch_put_all(&table, &config.table, items, config.backoff, deadline).await;
    let mut done = Written {
        written: (positions.len() - unwritten.len()) as u64,
        retried: u64::from(retries),
        ..Written::default()
    };
    // An item is matched to its record by the position it carries.
    let sequence_of = |item: &Item| match item.get(POSITION_ATTR) {
        Some(AttributeValue::S(text)) => positions
            .iter()
            .find(|p| p.sortable() == *text)
            .map(|p| p.sequence.clone()),
        _ => None,
    };
    if !matches!(error, Some(WriteError::ItemRejected(_))) {
        done.failed.extend(unwritten.iter().filter_map(sequence_of));
        return done;
    }
    // One bad item fails the whole call: put them one by one to find it.
    for item in unwritten {
        let (result, retries) = with_retries(config.backoff, deadline, || {
            table.put(&config.table, item.clone())
        })
        .await;
        done.retried += u64::from(retries);
        match result {
            Ok(()) => done.written += 1,
            Err(WriteError::ItemRejected(reason)) => done.refused.push(refused_item(&item, reason)),
            Err(_) => done.failed.extend(sequence_of(&item)),
        }
    }
    done
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(size: usize) -> Entry {
        Entry {
            position: Position {
                sequence: "1".into(),
                sub: 0,
            },
            key: Vec::new(),
            item: Item::new(),
            size,
        }
    }

    #[test]
    fn chunks_hold_at_most_25_items_and_16_mb() {
        let sizes = |entries: Vec<Entry>| -> Vec<usize> {
            Chunks {
                entries: entries.into_iter(),
            }
            .map(|c| c.len())
            .collect()
        };
        assert_eq!(
            sizes((0..60).map(|_| entry(10)).collect()),
            vec![25, 25, 10]
        );
        let big = 400 * 1024;
        let chunks = sizes((0..100).map(|_| entry(big)).collect());
        assert!(
            chunks
                .iter()
                .all(|&n| n * big <= MAX_BATCH_BYTES && n <= 25)
        );
        assert_eq!(chunks.iter().sum::<usize>(), 100);
        assert!(sizes(Vec::new()).is_empty());
    }
}
