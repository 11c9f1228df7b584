//! One batch: decode, collapse, write, set poison aside, checkpoint.
//!
//! Records are decoded lazily, as write slots free up: decoding overlaps the
//! requests in flight, and only the items being written are in memory.

use crate::batch_write::{MAX_BATCH_BYTES, MAX_BATCH_ITEMS, batch_put_all, with_retries};
use crate::checkpoint;
use crate::checkpoint::{Position, compare_sequence};
use crate::config::{Config, Mode};
use crate::convert::Item;
use crate::ports::{Order, PutResult, Table, WriteError};
use crate::record::{
    ARRIVAL_ATTR, Entry, EventRecord, MAX_ITEM_BYTES, POSITION_ATTR, Reject, SHARD_ATTR, UserData,
    decode, user_data,
};
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::{StreamExt, stream};
use shared::batch::PartialBatchResponse;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Write requests converted and waiting for a slot.
const CONVERTED_AHEAD: usize = 4;

/// Latest mode collapses a key's records within windows of this many
/// consecutive records, written in order: a cut-off in window w fails no
/// record before it, so the checkpoint moves on under a sustained slow
/// table instead of returning to a key's first record in the batch.
pub const WINDOW_RECORDS: usize = 1_000;

/// Reject items keep at most this much of the record's data.
const MAX_REJECT_DATA: usize = 300 * 1024;

/// A reject's reason is cut to this many bytes.
const MAX_REASON_BYTES: usize = 1024;

/// What happened to a batch, for metrics and logs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts {
    pub records_in: u64,
    /// User records (KPL aggregates expand to several).
    pub user_records: u64,
    pub written: u64,
    /// Already newer in the table (latest mode): success.
    pub stale_skipped: u64,
    /// Superseded in the same window of the batch by a newer record for
    /// the same key.
    pub collapsed: u64,
    pub rejected: u64,
    pub retried: u64,
    pub failed: u64,
}

/// An entry DynamoDB itself refused (ValidationException): poison after
/// all. Its data is read back from the event when its reject is stored.
struct Refusal {
    position: Position,
    shard: String,
    key: Vec<String>,
    reason: String,
    /// What to report if it cannot be dealt with (see `Work::One`).
    failed_as: String,
}

/// What one write request (a PutItem, or a BatchWriteItem chunk of items
/// or of rejects) achieved.
#[derive(Default)]
struct Written {
    written: u64,
    stale_skipped: u64,
    rejected: u64,
    retried: u64,
    /// Sequence numbers of records left unwritten.
    failed: Vec<String>,
    refused: Vec<Refusal>,
}

impl Written {
    fn add(&mut self, other: Written) {
        self.written += other.written;
        self.stale_skipped += other.stale_skipped;
        self.rejected += other.rejected;
        self.retried += other.retried;
        self.failed.extend(other.failed);
        self.refused.extend(other.refused);
    }
}

/// When to stop: no new request starts after `start_by`, and a request
/// still running at `stop_by` is abandoned, its records failed, so the
/// response always goes out before the Lambda deadline.
#[derive(Clone, Copy)]
struct Budget {
    start_by: Instant,
    stop_by: Instant,
}

impl Budget {
    fn new(deadline: Instant, margin: std::time::Duration) -> Self {
        let now = Instant::now();
        Self {
            start_by: deadline.checked_sub(margin).unwrap_or(now),
            stop_by: deadline.checked_sub(margin / 2).unwrap_or(now),
        }
    }

    fn expired(&self) -> bool {
        Instant::now() >= self.start_by
    }
}

/// Processes the event's records, answering by `deadline`.
///
/// Conversion runs ahead of the writes, bounded by a channel, so a request
/// goes out as soon as a slot frees. Each write request runs as a task of
/// its own, so building, signing and parsing requests spreads over the
/// runtime's workers. Conversion stays on this task: its allocations then
/// come from the main thread's heap, which the handler trims after each
/// invoke (worker-thread arenas kept ~4 MB more resident).
///
/// Rejects go through the same writers, in BatchWriteItem chunks, as they
/// are found: a KPL aggregate of 100,000 poison sub-records costs 4,000
/// requests, under the same in-flight bound, and never more memory than
/// the chunks in flight. What the budget cuts off is reported through the
/// checkpoint.
pub async fn process<T: Table + Clone + 'static>(
    table: &T,
    config: &Config,
    records: &[EventRecord],
    deadline: Instant,
) -> (PartialBatchResponse, Counts) {
    let budget = Budget::new(deadline, config.deadline_margin);
    let mut counts = Counts {
        records_in: records.len() as u64,
        ..Counts::default()
    };
    let shared = Arc::new(config.clone());
    let (ready, next) = mpsc::channel(CONVERTED_AHEAD);
    let writes = run_writes(table, &shared, next, budget);
    let (converted, mut done) =
        futures_util::join!(convert_all(records, config, budget, ready), writes);
    counts.user_records = converted.user_records;
    counts.collapsed = converted.collapsed;
    done.failed.extend(converted.cut_off);
    let mut refusals = std::mem::take(&mut done.refused);
    // Fallbacks and rejects of refusals read the batch again: with the
    // budget spent, their keys fail instead, at once.
    if config.mode == Mode::Latest && !refusals.is_empty() && !budget.expired() {
        let mut fallback = fall_back(table, &shared, records, &refusals, budget).await;
        counts.collapsed = counts.collapsed.saturating_sub(fallback.attempts);
        refusals.append(&mut fallback.written.refused);
        done.add(fallback.written);
    }
    if budget.expired() {
        done.failed
            .extend(refusals.into_iter().map(|refusal| refusal.failed_as));
    } else if !refusals.is_empty() {
        done.add(store_refusals(table, &shared, records, refusals, budget).await);
    }
    counts.written = done.written;
    counts.stale_skipped = done.stale_skipped;
    counts.rejected = done.rejected;
    counts.retried = done.retried;
    counts.failed = done.failed.len() as u64;
    (
        checkpoint::response(done.failed.iter().map(String::as_str)),
        counts,
    )
}

/// Runs the work handed over by `next`, at most `max_in_flight` requests at
/// once, and sums what they achieved.
async fn run_writes<T: Table + Clone + 'static>(
    table: &T,
    config: &Arc<Config>,
    mut next: mpsc::Receiver<Work>,
    budget: Budget,
) -> Written {
    stream::poll_fn(|cx| next.poll_recv(cx))
        .map(|work: Work| {
            let sequences = work.sequences();
            let request = write(table.clone(), config.clone(), work, budget.start_by);
            spawned(request, sequences, budget.stop_by)
        })
        .buffer_unordered(config.max_in_flight)
        .fold(Written::default(), |mut total, written| async move {
            total.add(written);
            total
        })
        .await
}

/// What the converter hands to the writers: one entry (latest mode, a
/// conditional PutItem each), a BatchWriteItem chunk of entries (append
/// mode) or of rejects.
enum Work {
    /// `failed_as`: the sequence number of the key's oldest record in its
    /// window, reported if the write does not finish, so that every record
    /// of the key (collapsed ones included) is redelivered.
    One {
        entry: Entry,
        failed_as: String,
    },
    Chunk(Vec<Entry>),
    Rejects(Vec<Reject>),
}

impl Work {
    fn sequences(&self) -> Vec<String> {
        match self {
            Work::One { failed_as, .. } => vec![failed_as.clone()],
            Work::Chunk(chunk) => chunk.iter().map(|e| e.position.sequence.clone()).collect(),
            Work::Rejects(rejects) => rejects
                .iter()
                .map(|r| r.position.sequence.clone())
                .collect(),
        }
    }
}

/// What conversion found besides the work it handed on.
struct Converted {
    user_records: u64,
    collapsed: u64,
    /// Sequence numbers of the records the budget cut off: converted, or
    /// waiting in a chunk, but never handed to a writer.
    cut_off: Vec<String>,
}

/// Gathers entries or rejects into BatchWriteItem chunks: at most 25
/// items and 16 MB, no key twice (DynamoDB refuses duplicates in a call).
struct Chunk<T> {
    items: Vec<T>,
    bytes: usize,
}

impl<T> Chunk<T> {
    fn new() -> Self {
        Self {
            items: Vec::with_capacity(MAX_BATCH_ITEMS),
            bytes: 0,
        }
    }

    /// Adds `item`; returns a chunk ready to write, if there is one.
    fn push(&mut self, item: T, bytes: usize, same_key: impl Fn(&T, &T) -> bool) -> Option<Vec<T>> {
        if self.items.iter().any(|held| same_key(held, &item)) {
            let full = self.take();
            self.items.push(item);
            self.bytes = bytes;
            return Some(full);
        }
        self.items.push(item);
        self.bytes += bytes;
        // Items are at most 400 KB: the next one always fits in 16 MB while
        // there is 400 KB left.
        (self.items.len() == MAX_BATCH_ITEMS || self.bytes + MAX_ITEM_BYTES > MAX_BATCH_BYTES)
            .then(|| self.take())
    }

    fn take(&mut self) -> Vec<T> {
        self.bytes = 0;
        std::mem::replace(&mut self.items, Vec::with_capacity(MAX_BATCH_ITEMS))
    }
}

/// Converts every record in order, handing the work to `ready` as it
/// forms, until the budget runs out.
async fn convert_all(
    records: &[EventRecord],
    config: &Config,
    budget: Budget,
    ready: mpsc::Sender<Work>,
) -> Converted {
    // Latest mode collapses duplicate keys within each window: a first
    // pass finds the oldest and newest position per key and window, the
    // second writes only the newest.
    // Append mode keys include the position, so keys only repeat if a
    // record itself does.
    let mut converted = Converted {
        user_records: 0,
        collapsed: 0,
        cut_off: Vec::new(),
    };
    let newest = match config.mode {
        Mode::Latest => match span_per_key(records, config, budget) {
            Some(spans) => Some(spans),
            None => {
                // Nothing handed over yet: the batch fails at its start.
                converted
                    .cut_off
                    .extend(records.first().map(|r| r.sequence().to_owned()));
                return converted;
            }
        },
        Mode::Append => None,
    };
    let mut sorter = Sorter {
        newest,
        seen: HashSet::new(),
        entries: Chunk::new(),
        rejects: Chunk::new(),
    };
    let mut pending: Option<Work> = None;
    // A record reached with the budget spent: nothing of it is decoded.
    let mut cut_at = None;
    'records: for (index, record) in records.iter().enumerate() {
        let window = index / WINDOW_RECORDS;
        if budget.expired() {
            cut_at = Some(record.sequence().to_owned());
            break;
        }
        for result in decode(record, config).results {
            converted.user_records += 1;
            let work = sorter.work_for(result, window, &mut converted);
            if let Some(work) = work
                && !hand_over(&ready, work, budget, &mut pending).await
            {
                break 'records;
            }
        }
        // A window's partial chunks go out with it: held on, a reject (or
        // an entry) of an early window would fail at a later cut-off and
        // pull the checkpoint back to it on every redelivery.
        if ((index + 1) % WINDOW_RECORDS == 0 || index + 1 == records.len())
            && !sorter.hand_over_window(&ready, budget, &mut pending).await
        {
            break 'records;
        }
    }
    let cut: Vec<String> = pending
        .map(|work| work.sequences())
        .into_iter()
        .flatten()
        .chain(cut_at)
        .collect();
    if !cut.is_empty() {
        sorter.fail_after_cut(cut, &mut converted);
    }
    converted
}

/// What the conversion keeps between records: which entries are wanted,
/// and the chunks being filled.
struct Sorter {
    /// Latest mode: the oldest and newest position per key, per window.
    newest: Option<Vec<HashMap<Vec<String>, KeySpan>>>,
    /// Append mode: the keys already taken.
    seen: HashSet<Vec<String>>,
    entries: Chunk<Entry>,
    rejects: Chunk<Reject>,
}

impl Sorter {
    /// The work a decoded result makes, if any yet (chunks hand over when
    /// full); a collapsed entry is counted and dropped.
    fn work_for(
        &mut self,
        result: Result<Entry, Reject>,
        window: usize,
        converted: &mut Converted,
    ) -> Option<Work> {
        let same_reject = |a: &Reject, b: &Reject| a.shard == b.shard && a.position == b.position;
        let entry = match result {
            Err(reject) => {
                let bytes = reject.data.len().min(MAX_REJECT_DATA) + MAX_REASON_BYTES + 512;
                return self
                    .rejects
                    .push(reject, bytes, same_reject)
                    .map(Work::Rejects);
            }
            Ok(entry) => entry,
        };
        let wanted = match &self.newest {
            Some(spans) => spans[window]
                .get(&entry.key)
                .is_some_and(|span| span.newest == entry.position),
            None => self.seen.insert(entry.key.clone()),
        };
        if !wanted {
            converted.collapsed += 1;
            return None;
        }
        match &self.newest {
            Some(spans) => {
                let failed_as = spans[window]
                    .get(&entry.key)
                    .map_or(&entry.position, |span| &span.oldest)
                    .sequence
                    .clone();
                Some(Work::One { entry, failed_as })
            }
            None => {
                let size = entry.size;
                self.entries
                    .push(entry, size, |_, _| false)
                    .map(Work::Chunk)
            }
        }
    }

    /// Hands over the window's partial chunks; false on a cut-off.
    async fn hand_over_window(
        &mut self,
        ready: &mpsc::Sender<Work>,
        budget: Budget,
        pending: &mut Option<Work>,
    ) -> bool {
        // Each taken only as it is handed over: one left behind by a
        // cut-off is failed by `fail_after_cut`.
        if !self.entries.items.is_empty()
            && !hand_over(ready, Work::Chunk(self.entries.take()), budget, pending).await
        {
            return false;
        }
        self.rejects.items.is_empty()
            || hand_over(ready, Work::Rejects(self.rejects.take()), budget, pending).await
    }

    /// Cut off at `cut` (what was not handed over): it fails, and with it
    /// (the checkpoint being the lowest failure) every record after it.
    /// Only the cut's window has records still waiting in a chunk.
    fn fail_after_cut(&mut self, sequences: Vec<String>, converted: &mut Converted) {
        // Latest mode: a key whose newest record in its window comes at or
        // after the cut was not written; its older records of the window
        // may lie below the checkpoint. Earlier windows are all before it.
        if let (Some(spans), Some(cut)) = (
            &self.newest,
            sequences.iter().min_by(|a, b| compare_sequence(a, b)),
        ) {
            converted.cut_off.extend(
                spans
                    .iter()
                    .flat_map(HashMap::values)
                    .filter(|span| compare_sequence(&span.newest.sequence, cut).is_ge())
                    .map(|span| span.oldest.sequence.clone()),
            );
        }
        converted.cut_off.extend(sequences);
        converted
            .cut_off
            .extend(Work::Chunk(self.entries.take()).sequences());
        converted
            .cut_off
            .extend(Work::Rejects(self.rejects.take()).sequences());
    }
}

/// Hands `work` to the writers unless the budget has run out (then it is
/// left in `pending`). A send fails only if the writers are gone.
async fn hand_over(
    ready: &mpsc::Sender<Work>,
    work: Work,
    budget: Budget,
    pending: &mut Option<Work>,
) -> bool {
    if budget.expired() {
        *pending = Some(work);
        return false;
    }
    match ready.send(work).await {
        Ok(()) => true,
        Err(mpsc::error::SendError(work)) => {
            *pending = Some(work);
            false
        }
    }
}

async fn write<T: Table>(table: T, config: Arc<Config>, work: Work, deadline: Instant) -> Written {
    match work {
        Work::One { entry, failed_as } => {
            put_latest(table, config, entry, failed_as, deadline).await
        }
        Work::Chunk(chunk) => {
            let items = chunk
                .into_iter()
                .map(|entry| Keyed {
                    position: entry.position,
                    shard: String::new(),
                    key: entry.key,
                    item: entry.item,
                })
                .collect();
            put_chunk(
                &table,
                &config,
                &config.table,
                POSITION_ATTR,
                items,
                deadline,
            )
            .await
        }
        Work::Rejects(rejects) => {
            let now_ms = u128::from(shared::time::now_millis());
            let items = rejects
                .into_iter()
                .map(|reject| Keyed {
                    item: reject_item(&reject, now_ms),
                    position: reject.position,
                    shard: reject.shard,
                    key: Vec::new(),
                })
                .collect();
            let mut done = put_chunk(
                &table,
                &config,
                &config.rejects_table,
                REJECT_POSITION,
                items,
                deadline,
            )
            .await;
            // A reject DynamoDB refuses cannot be set aside: its record fails.
            done.rejected = std::mem::take(&mut done.written);
            let refused = std::mem::take(&mut done.refused);
            done.failed
                .extend(refused.into_iter().map(|r| r.position.sequence));
            done
        }
    }
}

/// Runs a write request as a task. Should the task die (a panic) or still
/// run at `stop_by`, its records count as unwritten: the checkpoint then
/// covers them.
async fn spawned(
    request: impl Future<Output = Written> + Send + 'static,
    sequences: Vec<String>,
    stop_by: Instant,
) -> Written {
    // Whatever the request logs keeps the invocation's ids.
    let mut task = tokio::spawn(tracing::Instrument::in_current_span(request));
    let failed = match tokio::time::timeout_at(stop_by, &mut task).await {
        Ok(Ok(written)) => return written,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "write task failed");
            sequences
        }
        Err(_) => {
            task.abort();
            tracing::warn!("write request abandoned at the deadline");
            sequences
        }
    };
    Written {
        failed,
        ..Written::default()
    }
}

/// Where a key's records lie in the batch.
struct KeySpan {
    oldest: Position,
    newest: Position,
}

/// The oldest and newest position of each key in each window of the
/// batch, or None if the budget runs out first.
fn span_per_key(
    records: &[EventRecord],
    config: &Config,
    budget: Budget,
) -> Option<Vec<HashMap<Vec<String>, KeySpan>>> {
    let mut windows: Vec<HashMap<Vec<String>, KeySpan>> = Vec::new();
    for (index, record) in records.iter().enumerate() {
        if budget.expired() {
            return None;
        }
        if index % WINDOW_RECORDS == 0 {
            windows.push(HashMap::new());
        }
        let spans = windows.last_mut().expect("pushed at the window's start");
        for entry in decode(record, config).results.into_iter().flatten() {
            match spans.get_mut(&entry.key) {
                Some(span) => {
                    if entry.position > span.newest {
                        span.newest = entry.position;
                    } else if entry.position < span.oldest {
                        span.oldest = entry.position;
                    }
                }
                None => {
                    spans.insert(
                        entry.key,
                        KeySpan {
                            oldest: entry.position.clone(),
                            newest: entry.position,
                        },
                    );
                }
            }
        }
    }
    Some(windows)
}

async fn put_latest<T: Table>(
    table: T,
    config: Arc<Config>,
    entry: Entry,
    failed_as: String,
    deadline: Instant,
) -> Written {
    let order = Order {
        position: entry.position.sortable(),
        shard: shard_of(&entry.item),
        arrival_ms: match entry.item.get(ARRIVAL_ATTR) {
            Some(AttributeValue::N(ms)) => ms.parse().unwrap_or(0),
            _ => 0,
        },
    };
    let (result, retries) = with_retries(config.backoff, deadline, || {
        table.put_if_newer(&config.table, entry.item.clone(), &order)
    })
    .await;
    let mut done = Written {
        retried: u64::from(retries),
        ..Written::default()
    };
    match result {
        Ok(PutResult::Written) => done.written = 1,
        Ok(PutResult::Stale) => done.stale_skipped = 1,
        Err(WriteError::ItemRejected(reason)) => done.refused.push(Refusal {
            shard: shard_of(&entry.item),
            position: entry.position,
            key: entry.key,
            reason,
            failed_as,
        }),
        Err(_) => done.failed.push(failed_as),
    }
    done
}

fn shard_of(item: &Item) -> String {
    match item.get(SHARD_ATTR) {
        Some(AttributeValue::S(shard)) => shard.clone(),
        _ => String::new(),
    }
}

/// An item with what identifies its record.
struct Keyed {
    position: Position,
    shard: String,
    key: Vec<String>,
    item: Item,
}

/// Writes a chunk with BatchWriteItem (retrying what comes back
/// unprocessed); items are matched to their records by the sortable
/// position they carry in `position_attr`.
async fn put_chunk<T: Table>(
    table: &T,
    config: &Config,
    name: &str,
    position_attr: &str,
    chunk: Vec<Keyed>,
    deadline: Instant,
) -> Written {
    let mut sources = Vec::with_capacity(chunk.len());
    let items = chunk
        .into_iter()
        .map(|keyed| {
            sources.push((keyed.position, keyed.shard, keyed.key));
            keyed.item
        })
        .collect();
    let (unwritten, error, retries) =
        batch_put_all(table, name, items, config.backoff, deadline).await;
    let mut done = Written {
        written: (sources.len() - unwritten.len()) as u64,
        retried: u64::from(retries),
        ..Written::default()
    };
    let source_of = |item: &Item| match item.get(position_attr) {
        Some(AttributeValue::S(text)) => sources.iter().find(|(p, _, _)| p.sortable() == *text),
        _ => None,
    };
    if !matches!(error, Some(WriteError::ItemRejected(_))) {
        done.failed.extend(
            unwritten
                .iter()
                .filter_map(source_of)
                .map(|(p, _, _)| p.sequence.clone()),
        );
        return done;
    }
    // One bad item fails the whole call: put them one by one to find it.
    for item in unwritten {
        let (result, retries) =
            with_retries(config.backoff, deadline, || table.put(name, item.clone())).await;
        done.retried += u64::from(retries);
        let Some((position, shard, key)) = source_of(&item) else {
            continue;
        };
        match result {
            Ok(()) => done.written += 1,
            Err(WriteError::ItemRejected(reason)) => done.refused.push(Refusal {
                position: position.clone(),
                shard: if shard.is_empty() {
                    shard_of(&item)
                } else {
                    shard.clone()
                },
                key: key.clone(),
                reason,
                failed_as: position.sequence.clone(),
            }),
            Err(_) => done.failed.push(position.sequence.clone()),
        }
    }
    done
}

/// What the latest-mode fallback did.
struct Fallback {
    written: Written,
    /// Collapsed records it tried after all.
    attempts: u64,
}

/// Latest mode: where DynamoDB refused the newest record of a key in a
/// window, the key's older records of that window are tried, newest
/// first, until one is accepted (or found stale), so no valid record is
/// silently dropped. (Records of earlier windows had their own write.)
async fn fall_back<T: Table + Clone + 'static>(
    table: &T,
    config: &Arc<Config>,
    records: &[EventRecord],
    refusals: &[Refusal],
    budget: Budget,
) -> Fallback {
    let Some(older) = older_candidates(config, records, refusals, budget) else {
        // Cut off while reading: every refused key fails at its oldest.
        return Fallback {
            written: Written {
                failed: refusals.iter().map(|r| r.failed_as.clone()).collect(),
                ..Written::default()
            },
            attempts: 0,
        };
    };
    let attempts = AtomicU64::new(0);
    let written = stream::iter(older.into_values())
        .map(|candidates| newest_that_is_accepted(table, config, candidates, budget, &attempts))
        .buffer_unordered(config.max_in_flight)
        .fold(Written::default(), |mut total, written| async move {
            total.add(written);
            total
        })
        .await;
    Fallback {
        written,
        attempts: attempts.into_inner(),
    }
}

/// A key within a window of the batch.
type WindowKey = (usize, Vec<String>);

/// The entries older than a refused newest one, per window and key; None
/// if the budget ran out while reading them.
fn older_candidates(
    config: &Config,
    records: &[EventRecord],
    refusals: &[Refusal],
    budget: Budget,
) -> Option<HashMap<WindowKey, Vec<Entry>>> {
    let window_of: HashMap<&str, usize> = records
        .iter()
        .enumerate()
        .map(|(index, r)| (r.sequence(), index / WINDOW_RECORDS))
        .collect();
    let refused: HashMap<(usize, &[String]), &Position> = refusals
        .iter()
        .filter_map(|r| {
            let window = *window_of.get(r.position.sequence.as_str())?;
            Some(((window, r.key.as_slice()), &r.position))
        })
        .collect();
    let mut older: HashMap<WindowKey, Vec<Entry>> = HashMap::new();
    for (index, record) in records.iter().enumerate() {
        let window = index / WINDOW_RECORDS;
        if budget.expired() {
            return None;
        }
        for entry in decode(record, config).results.into_iter().flatten() {
            if refused
                .get(&(window, entry.key.as_slice()))
                .is_some_and(|newest| entry.position < **newest)
            {
                older
                    .entry((window, entry.key.clone()))
                    .or_default()
                    .push(entry);
            }
        }
    }
    Some(older)
}

/// Puts one key's candidates newest first until one is not refused.
async fn newest_that_is_accepted<T: Table + Clone + 'static>(
    table: &T,
    config: &Arc<Config>,
    mut candidates: Vec<Entry>,
    budget: Budget,
    attempts: &AtomicU64,
) -> Written {
    candidates.sort_by(|a, b| b.position.cmp(&a.position));
    // Unfinished, the key fails at its oldest candidate: every
    // candidate is then redelivered, not only the untried ones.
    let failed_as = candidates
        .last()
        .map(|e| e.position.sequence.clone())
        .unwrap_or_default();
    let mut done = Written::default();
    for entry in candidates {
        if budget.expired() {
            done.failed.push(failed_as);
            break;
        }
        attempts.fetch_add(1, Ordering::Relaxed);
        let request = put_latest(
            table.clone(),
            config.clone(),
            entry,
            failed_as.clone(),
            budget.start_by,
        );
        let result = spawned(request, vec![failed_as.clone()], budget.stop_by).await;
        let refused = !result.refused.is_empty();
        done.add(result);
        if !refused {
            break;
        }
    }
    done
}

/// Stores the rejects of items DynamoDB refused, with their raw data read
/// back from the event (each KPL aggregate is split once).
async fn store_refusals<T: Table + Clone + 'static>(
    table: &T,
    config: &Arc<Config>,
    records: &[EventRecord],
    mut refusals: Vec<Refusal>,
    budget: Budget,
) -> Written {
    refusals.sort_by(|a, b| a.position.cmp(&b.position));
    let by_sequence: HashMap<&str, &EventRecord> =
        records.iter().map(|r| (r.sequence(), r)).collect();
    let (ready, next) = mpsc::channel(CONVERTED_AHEAD);
    let hand = async move {
        // The record being read: its sequence number, arrival, user records.
        let mut current: Option<(String, i64, Vec<UserData>)> = None;
        let mut chunk = Chunk::new();
        let same = |a: &Reject, b: &Reject| a.shard == b.shard && a.position == b.position;
        let mut pending = None;
        let mut cut_off = Vec::new();
        let mut refusals = refusals.into_iter();
        while let Some(refusal) = refusals.next() {
            if current
                .as_ref()
                .is_none_or(|(seq, _, _)| *seq != refusal.position.sequence)
            {
                // Splitting an aggregate again is long: not once the budget
                // is spent. This refusal and the rest fail as they would
                // have without a reject.
                if budget.expired() {
                    cut_off.push(refusal.failed_as);
                    cut_off.extend(refusals.map(|r| r.failed_as));
                    pending = Some(Work::Rejects(chunk.take()));
                    break;
                }
                let record = by_sequence.get(refusal.position.sequence.as_str());
                current = Some((
                    refusal.position.sequence.clone(),
                    record.map_or(0, |record| record.arrival_ms()),
                    record.map(|record| user_data(record)).unwrap_or_default(),
                ));
            }
            let (arrival_ms, (partition_key, data)) = current
                .as_ref()
                .map(|(_, arrival_ms, users)| {
                    let user = users.get(refusal.position.sub as usize);
                    (*arrival_ms, user.cloned().unwrap_or_default())
                })
                .unwrap_or_default();
            let reject = Reject {
                position: refusal.position,
                shard: refusal.shard,
                reason: format!("DynamoDB refused the item: {}", refusal.reason),
                data: data.into(),
                partition_key: partition_key.into(),
                arrival_ms,
            };
            let bytes = reject.data.len().min(MAX_REJECT_DATA) + MAX_REASON_BYTES + 512;
            if let Some(full) = chunk.push(reject, bytes, same)
                && !hand_over(&ready, Work::Rejects(full), budget, &mut pending).await
            {
                // The rest of the refusals fail with the chunk left behind.
                cut_off.extend(refusals.map(|r| r.failed_as));
                break;
            }
        }
        if pending.is_none() {
            let last = Work::Rejects(chunk.take());
            if !last.sequences().is_empty() {
                hand_over(&ready, last, budget, &mut pending).await;
            }
        }
        if let Some(work) = pending {
            cut_off.extend(work.sequences());
            cut_off.extend(Work::Rejects(chunk.take()).sequences());
        }
        cut_off
    };
    let (cut_off, mut done) = futures_util::join!(hand, run_writes(table, config, next, budget));
    done.failed.extend(cut_off);
    done
}

/// Where a reject item keeps its sortable position (its sort key).
const REJECT_POSITION: &str = "position";

/// The rejects-table item for `reject`: its key, reason (at most 1 KB) and
/// raw data (at most 300 KB).
pub(crate) fn reject_item(reject: &Reject, now_ms: u128) -> Item {
    let data = &reject.data[..reject.data.len().min(MAX_REJECT_DATA)];
    HashMap::from([
        (
            "shardId".to_owned(),
            AttributeValue::S(reject.shard.clone()),
        ),
        (
            REJECT_POSITION.to_owned(),
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
            AttributeValue::S(truncated(&reject.reason, MAX_REASON_BYTES).to_owned()),
        ),
        (
            "dataTruncated".to_owned(),
            AttributeValue::Bool(data.len() < reject.data.len()),
        ),
        ("data".to_owned(), AttributeValue::B(data.to_vec().into())),
        (
            "partitionKey".to_owned(),
            AttributeValue::S(reject.partition_key.to_string()),
        ),
        (
            "arrivalMs".to_owned(),
            AttributeValue::N(reject.arrival_ms.to_string()),
        ),
        (
            "rejectedAtMs".to_owned(),
            AttributeValue::N(now_ms.to_string()),
        ),
    ])
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn truncated(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_at_most_25_items_and_16_mb_and_no_key_twice() {
        let sizes = |items: Vec<(u32, usize)>| -> Vec<usize> {
            let mut chunk = Chunk::new();
            let mut sizes: Vec<usize> = items
                .into_iter()
                .filter_map(|(key, bytes)| chunk.push(key, bytes, |a, b| a == b))
                .map(|c| c.len())
                .collect();
            let last = chunk.take();
            if !last.is_empty() {
                sizes.push(last.len());
            }
            sizes
        };
        assert_eq!(sizes((0..60).map(|k| (k, 10)).collect()), vec![25, 25, 10]);
        let big = 400 * 1024;
        let chunks = sizes((0..100).map(|k| (k, big)).collect());
        assert!(
            chunks
                .iter()
                .all(|&n| n * big <= MAX_BATCH_BYTES && n <= 25)
        );
        assert_eq!(chunks.iter().sum::<usize>(), 100);
        assert!(sizes(Vec::new()).is_empty());
        assert_eq!(sizes(vec![(1, 1), (2, 1), (1, 1), (3, 1)]), vec![2, 2]);
    }

    #[test]
    fn reasons_are_cut_on_a_character_boundary() {
        assert_eq!(truncated("abc", 10), "abc");
        assert_eq!(truncated("aé", 2), "a");
        assert_eq!(truncated(&"x".repeat(5000), MAX_REASON_BYTES).len(), 1024);
    }
}
