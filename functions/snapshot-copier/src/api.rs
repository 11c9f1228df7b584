//! The EC2 calls the copier makes, per region.

use crate::snapshot::Snapshot;
use std::future::Future;

/// What CopySnapshot is asked to do, in the destination region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyRequest {
    pub source_region: String,
    pub source_snapshot_id: String,
    pub description: String,
    pub tags: Vec<(String, String)>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub completion_duration_minutes: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ec2Error {
    /// ResourceLimitExceeded: too many copies in flight; try later.
    #[error("ResourceLimitExceeded: {0}")]
    LimitExceeded(String),
    /// EC2 answered that it did not do it (a 4xx service error, or the
    /// request was never sent): safe to try again.
    #[error("{0}")]
    Refused(String),
    /// Anything else. For CopySnapshot the outcome is unknown (timeout, 5xx,
    /// dropped connection, unreadable answer): the copy may exist.
    #[error("{0}")]
    Other(String),
}

/// One region's snapshots, owned by this account.
pub trait SnapshotApi: Send + Sync {
    fn describe(&self, id: &str)
    -> impl Future<Output = Result<Option<Snapshot>, Ec2Error>> + Send;
    /// Completed snapshots carrying `tag_key`, of `volume` when given.
    fn tagged(
        &self,
        tag_key: &str,
        volume: Option<&str>,
    ) -> impl Future<Output = Result<Vec<Snapshot>, Ec2Error>> + Send;
    /// Snapshots whose tag `key` is `value`.
    fn with_tag(
        &self,
        key: &str,
        value: &str,
    ) -> impl Future<Output = Result<Vec<Snapshot>, Ec2Error>> + Send;
    /// This account's copies in progress (state pending), whoever made them.
    fn pending_count(&self) -> impl Future<Output = Result<usize, Ec2Error>> + Send;
    /// Returns the new snapshot's id.
    fn copy(&self, request: &CopyRequest) -> impl Future<Output = Result<String, Ec2Error>> + Send;
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), Ec2Error>> + Send;
}

/// A client per region.
pub trait Regions: Send + Sync {
    type Api: SnapshotApi;
    fn region(&self, name: &str) -> Self::Api;
}
