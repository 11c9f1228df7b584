//! One claim per (source snapshot, destination), taken with a conditional
//! write before CopySnapshot: CopySnapshot has no client token, and
//! DescribeSnapshots is eventually consistent, so "look, then copy" lets two
//! invocations at once both copy. Whoever writes the claim copies; the
//! others skip.
//!
//! A claim records its holder, the copy's id once made, a lease (how long a
//! claim without a copy id is trusted) and an expiry. A claim is only
//! needed until its copy shows up in listings, so it expires after a day
//! (DynamoDB's TTL removes it; an expired claim counts as absent even before).

use aws_sdk_dynamodb::Client as DynamoDb;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

/// A holder without a copy id after this long has died: Lambda stops every
/// invocation within 15 minutes.
pub const LEASE_SECS: i64 = 15 * 60;
/// Far beyond the time a new copy takes to show up in DescribeSnapshots.
pub const EXPIRY_SECS: i64 = 24 * 3600;

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
    fn holds(&self, stored: Option<&Claim>) -> bool {
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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("claim table: {0}")]
pub struct ClaimError(pub String);

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

/// Claims within one process: for tests and local runs without a table.
#[derive(Default)]
pub struct MemoryClaims(Mutex<HashMap<String, Claim>>);

impl Claims for MemoryClaims {
    async fn put_if(
        &self,
        key: &str,
        claim: &Claim,
        condition: &Condition,
    ) -> Result<bool, ClaimError> {
        let mut claims = self.0.lock().expect("not poisoned");
        if !condition.holds(claims.get(key)) {
            return Ok(false);
        }
        claims.insert(key.to_owned(), claim.clone());
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Claim>, ClaimError> {
        Ok(self.0.lock().expect("not poisoned").get(key).cloned())
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), ClaimError> {
        let mut claims = self.0.lock().expect("not poisoned");
        if Condition::HeldWithoutCopy(holder.to_owned()).holds(claims.get(key)) {
            claims.remove(key);
        }
        Ok(())
    }
}

/// A DynamoDB table keyed by the string attribute `claim`, TTL on `expires_at`.
pub struct DynamoClaims {
    pub client: DynamoDb,
    pub table: String,
}

fn dynamo_error<E: std::error::Error + 'static>(table: &str, call: &str, e: E) -> ClaimError {
    ClaimError(format!(
        "{call} on {table}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(e)
    ))
}

impl Claims for DynamoClaims {
    async fn put_if(
        &self,
        key: &str,
        claim: &Claim,
        condition: &Condition,
    ) -> Result<bool, ClaimError> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("claim", AttributeValue::S(key.to_owned()))
            .item("holder", AttributeValue::S(claim.holder.clone()))
            .item(
                "lease_until",
                AttributeValue::N(claim.lease_until.to_string()),
            )
            .item(
                "expires_at",
                AttributeValue::N(claim.expires_at.to_string()),
            );
        if let Some(copy) = &claim.copy_id {
            put = put.item("copy_id", AttributeValue::S(copy.clone()));
        }
        put = match condition {
            Condition::Free { now } => put
                .condition_expression("attribute_not_exists(#k) OR #e < :now")
                .expression_attribute_names("#k", "claim")
                .expression_attribute_names("#e", "expires_at")
                .expression_attribute_values(":now", AttributeValue::N(now.to_string())),
            Condition::CopyIs(copy) => put
                .condition_expression("#c = :copy")
                .expression_attribute_names("#c", "copy_id")
                .expression_attribute_values(":copy", AttributeValue::S(copy.clone())),
            Condition::HeldWithoutCopy(holder) => put
                .condition_expression("#h = :holder AND attribute_not_exists(#c)")
                .expression_attribute_names("#h", "holder")
                .expression_attribute_names("#c", "copy_id")
                .expression_attribute_values(":holder", AttributeValue::S(holder.clone())),
        };
        match put.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(dynamo_error(&self.table, "PutItem", e)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Claim>, ClaimError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("claim", AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_error(&self.table, "GetItem", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let number = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|n| n.parse::<i64>().ok())
                .unwrap_or(0)
        };
        Ok(Some(Claim {
            holder: text("holder").unwrap_or_default(),
            copy_id: text("copy_id"),
            lease_until: number("lease_until"),
            expires_at: number("expires_at"),
        }))
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), ClaimError> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("claim", AttributeValue::S(key.to_owned()))
            .condition_expression("#h = :holder AND attribute_not_exists(#c)")
            .expression_attribute_names("#h", "holder")
            .expression_attribute_names("#c", "copy_id")
            .expression_attribute_values(":holder", AttributeValue::S(holder.to_owned()))
            .send()
            .await;
        match delete {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(dynamo_error(&self.table, "DeleteItem", e)),
        }
    }
}

/// The store the function runs with: DynamoDB when `CLAIM_TABLE` is set.
pub enum ClaimStore {
    Memory(MemoryClaims),
    Dynamo(DynamoClaims),
}

impl Default for ClaimStore {
    fn default() -> Self {
        Self::Memory(MemoryClaims::default())
    }
}

impl Claims for ClaimStore {
    async fn put_if(
        &self,
        key: &str,
        claim: &Claim,
        condition: &Condition,
    ) -> Result<bool, ClaimError> {
        match self {
            Self::Memory(m) => m.put_if(key, claim, condition).await,
            Self::Dynamo(d) => d.put_if(key, claim, condition).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Claim>, ClaimError> {
        match self {
            Self::Memory(m) => m.get(key).await,
            Self::Dynamo(d) => d.get(key).await,
        }
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), ClaimError> {
        match self {
            Self::Memory(m) => m.release(key, holder).await,
            Self::Dynamo(d) => d.release(key, holder).await,
        }
    }
}
