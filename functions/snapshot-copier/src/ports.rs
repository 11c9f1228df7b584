//! The seams of the domain: the EC2 calls the copier makes, per region, and
//! the store of copy claims. Adapters are in `aws/`, the in-process claim
//! store in `fallback.rs`, test doubles in `testing.rs`.

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub holder: String,
    pub copy_id: Option<String>,
    /// Epoch seconds: until then a claim without a copy id is being copied.
    pub lease_until: i64,
    /// Epoch seconds: after that the claim counts as absent.
    pub expires_at: i64,
}

/// When a write may replace what is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// No claim, or an expired one (`now` in epoch seconds).
    Free { now: i64 },
    /// The stored claim records this copy (taking over a copy in error).
    CopyIs(String),
    /// This holder holds it and no copy id is recorded yet (recording one,
    /// or taking over from a holder that died).
    HeldWithoutCopy(String),
}

impl Condition {
    /// Whether a write under this condition may replace `stored`: what every
    /// store implements (DynamoDB as a condition expression).
    pub fn holds(&self, stored: Option<&Claim>) -> bool {
        match (self, stored) {
            (Self::Free { .. }, None) => true,
            (Self::Free { now }, Some(claim)) => claim.expires_at < *now,
            (Self::CopyIs(copy), Some(claim)) => claim.copy_id.as_ref() == Some(copy),
            (Self::HeldWithoutCopy(holder), Some(claim)) => {
                &claim.holder == holder && claim.copy_id.is_none()
            }
            (_, None) => false,
        }
    }
}

/// The claim store did not answer as asked: the copy is left to the next
/// sweep (a condition that does not hold is not an error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("claim table: {call} on {table}: {reason}")]
    Unavailable {
        call: &'static str,
        table: String,
        reason: String,
    },
}

/// Copy claims, one per (source snapshot, destination) key.
pub trait Claims: Send + Sync {
    /// Writes `claim` under `key` if `condition` holds; false if it does not.
    fn put_if(
        &self,
        key: &str,
        claim: &Claim,
        condition: &Condition,
    ) -> impl Future<Output = Result<bool, ClaimError>> + Send;
    /// The stored claim, read consistently.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Claim>, ClaimError>> + Send;
    /// Deletes the claim if `holder` holds it without a copy id.
    fn release(
        &self,
        key: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), ClaimError>> + Send;
}
