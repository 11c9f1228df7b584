//! The seams: the traits the domain calls, and the errors it branches on.
//! Adapters in `aws/` implement them; `testing` has in-memory doubles.

use crate::convert::Item;
use crate::record::KinesisRecord;
use crate::replay::{BatchInfo, RejectId};
use std::future::Future;
use std::time::Duration;

/// How a write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// Throttling, 5xx, network: worth retrying.
    Transient(String),
    /// DynamoDB refused the item itself (ValidationException): poison.
    ItemRejected(String),
    /// Anything else (missing table, access denied): fails the records,
    /// without retrying inside this invocation.
    Fatal(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutResult {
    Written,
    /// The table already holds this record or a newer one.
    Stale,
}

/// Where a record stands, for latest mode's rule of which record is newer.
///
/// Sequence numbers order records within a shard only. So a record is newer
/// than the stored one if both come from the same shard and its position
/// (sequence number, then KPL sub-record) is greater, or if they come from
/// different shards and it arrived later (Kinesis's approximate arrival
/// time, in ms). A tie keeps the stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The sortable position (see `Position::sortable`).
    pub position: String,
    pub shard: String,
    pub arrival_ms: i64,
}

impl Order {
    /// True if a record at `self` replaces one stored at `stored`.
    pub fn is_newer_than(&self, stored: &Order) -> bool {
        if self.shard == stored.shard {
            self.position > stored.position
        } else {
            self.arrival_ms > stored.arrival_ms
        }
    }
}

/// The DynamoDB calls the function makes.
pub trait Table: Send + Sync {
    /// PutItem unless the stored item is at least as new as `order` (see
    /// [`Order`]; latest mode).
    fn put_if_newer(
        &self,
        table: &str,
        item: Item,
        order: &Order,
    ) -> impl Future<Output = Result<PutResult, WriteError>> + Send;
    /// BatchWriteItem puts; returns what DynamoDB left unprocessed.
    fn batch_put(
        &self,
        table: &str,
        items: Vec<Item>,
    ) -> impl Future<Output = Result<Vec<Item>, WriteError>> + Send;
    /// A plain PutItem (rejects).
    fn put(&self, table: &str, item: Item) -> impl Future<Output = Result<(), WriteError>> + Send;
}

/// A shared table is a table: tests share their fakes with the write tasks.
impl<T: Table> Table for std::sync::Arc<T> {
    fn put_if_newer(
        &self,
        table: &str,
        item: Item,
        order: &Order,
    ) -> impl Future<Output = Result<PutResult, WriteError>> + Send {
        (**self).put_if_newer(table, item, order)
    }
    fn batch_put(
        &self,
        table: &str,
        items: Vec<Item>,
    ) -> impl Future<Output = Result<Vec<Item>, WriteError>> + Send {
        (**self).batch_put(table, items)
    }
    fn put(&self, table: &str, item: Item) -> impl Future<Output = Result<(), WriteError>> + Send {
        (**self).put(table, item)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("queue: {0}")]
    Queue(String),
    #[error("stream: {0}")]
    Stream(String),
    #[error("rejects table: {0}")]
    Rejects(String),
    #[error("{0}")]
    Usage(String),
}

/// Records read back from a shard, and why the read stopped short of the
/// batch's end, if it did.
#[derive(Debug, Default)]
pub struct ReadRange {
    pub records: Vec<KinesisRecord>,
    /// The stream no longer holds (part of) the batch: trimmed by
    /// retention, the shard or stream gone.
    pub gone: Option<String>,
}

/// GetShardIterator AT_SEQUENCE_NUMBER + GetRecords up to the batch's end.
pub trait Shards {
    fn read_range(
        &self,
        batch: &BatchInfo,
    ) -> impl Future<Output = Result<ReadRange, ReplayError>> + Send;
}

pub struct QueueMessage {
    pub id: String,
    pub receipt: String,
    pub body: String,
}

pub trait Queue {
    /// One message (None: the queue looks empty), hidden from others for
    /// `hide`. One at a time: a message waiting its turn in our hands would
    /// become visible to others while the ones before it are replayed.
    fn receive(
        &self,
        hide: Duration,
    ) -> impl Future<Output = Result<Option<QueueMessage>, ReplayError>> + Send;
    fn delete(&self, receipt: &str) -> impl Future<Output = Result<(), ReplayError>> + Send;
    /// Hides the message for `hide` from now on; zero makes it visible
    /// again at once.
    fn hide(
        &self,
        receipt: &str,
        hide: Duration,
    ) -> impl Future<Output = Result<(), ReplayError>> + Send;
}

/// The rejects table, keyed by `shardId` + `position`.
pub trait Rejects {
    /// One page of a scan from `start` (None: the first), and where the
    /// next begins (None: this was the last). Pages keep memory bounded: a
    /// reject holds up to 300 KB, and a table can hold millions.
    fn scan_page(
        &self,
        start: Option<Item>,
    ) -> impl Future<Output = Result<(Vec<Item>, Option<Item>), ReplayError>> + Send;
    /// Deletes the reject unless it was written again since it was read
    /// (another `rejectedAtMs`).
    fn delete_if_unchanged(
        &self,
        id: &RejectId,
        rejected_at_ms: &str,
    ) -> impl Future<Output = Result<Deleted, ReplayError>> + Send;
    /// Deletes the reject; returns what was removed.
    fn delete(
        &self,
        id: &RejectId,
    ) -> impl Future<Output = Result<Option<Item>, ReplayError>> + Send;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    /// Someone else deleted it (another replay running at once).
    Gone,
    /// Written again since it was read: it stays.
    Changed,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_shard_compares_positions_other_shards_arrival() {
        let at = |position: &str, shard: &str, arrival_ms| Order {
            position: position.into(),
            shard: shard.into(),
            arrival_ms,
        };
        let stored = at("0005", "s1", 100);
        assert!(at("0006", "s1", 50).is_newer_than(&stored));
        assert!(!at("0004", "s1", 500).is_newer_than(&stored));
        assert!(!at("0005", "s1", 100).is_newer_than(&stored));
        assert!(at("0001", "s2", 101).is_newer_than(&stored));
        assert!(!at("0009", "s2", 99).is_newer_than(&stored));
        assert!(
            !at("0009", "s2", 100).is_newer_than(&stored),
            "a tie keeps the stored item"
        );
    }
}
