//! The seams between the domain and the outside world: the suppression
//! table, SES's account-level list and the clock, with the errors the
//! processor tells apart.

use crate::notification::Reason;
use crate::suppression::Entry;
use std::future::Future;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("DynamoDB {operation} on {table}: {message}")]
    Call {
        operation: &'static str,
        table: String,
        message: String,
    },
    #[error("stored entry is unreadable: {0}")]
    Unreadable(String),
}

/// Whether a conditional write went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    Yes,
    /// Someone wrote the entry since it was read: read again.
    Conflict,
}

/// Where entries live, written with optimistic locking so concurrent
/// notifications for one address never lose a count.
pub trait SuppressionStore: Send + Sync {
    fn get(&self, address: &str) -> impl Future<Output = Result<Option<Entry>, StoreError>> + Send;
    /// Writes `entry` as version `entry.version + 1`, if the stored one is
    /// still `entry.version` (0: absent).
    fn put(&self, entry: &Entry) -> impl Future<Output = Result<Written, StoreError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// SES refused the call or could not be reached; addresses are masked.
    #[error("{message}")]
    Call { message: String },
}

/// The SES account-level suppression list (SESv2 PutSuppressedDestination).
pub trait AccountSuppression: Send + Sync {
    /// Adds `address` to the account suppression list. Idempotent on SES's
    /// side: a second call for the same address changes nothing.
    fn suppress(
        &self,
        address: &str,
        reason: Reason,
    ) -> impl Future<Output = Result<(), AccountError>> + Send;
}

/// Epoch seconds; injectable so that time-window rules test without waiting.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}
