//! Who set a notification topic on an SES identity.
//!
//! SES keeps one topic per identity and notification type and says nothing
//! about who set it. Two resources can set the same topic ARN (a renamed
//! logical id, two stacks on one identity), so "the current topic is mine"
//! is not enough to decide that a Delete may unset it: each resource that
//! sets a topic records itself as an owner of (identity, type, topic), and
//! a Delete unsets only when no other owner of that topic remains.

use aws_sdk_dynamodb::Client as DynamoDb;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Mutex;

pub trait TopicOwners: Send + Sync + 'static {
    /// Records `owner` as an owner of the topic `key` names.
    fn claim(&self, key: &str, owner: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Forgets `owner`; returns whether another owner of that topic remains.
    fn release(&self, key: &str, owner: &str) -> impl Future<Output = Result<bool, String>> + Send;
}

/// The record key for `topic` set as the `kind` topic of `identity`.
pub fn owner_key(identity: &str, kind: &str, topic: &str) -> String {
    format!("ses-topic-owners|{identity}|{kind}|{topic}")
}

/// Per execution environment only: for local runs and tests. A Delete that
/// finds no record sees no other owner.
#[derive(Default)]
pub struct MemoryOwners(Mutex<HashMap<String, BTreeSet<String>>>);

impl TopicOwners for MemoryOwners {
    async fn claim(&self, key: &str, owner: &str) -> Result<(), String> {
        let mut owners = self.0.lock().map_err(|_| "owner store poisoned")?;
        owners
            .entry(key.to_owned())
            .or_default()
            .insert(owner.to_owned());
        Ok(())
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, String> {
        let mut owners = self.0.lock().map_err(|_| "owner store poisoned")?;
        let Some(set) = owners.get_mut(key) else {
            return Ok(false);
        };
        set.remove(owner);
        let others = !set.is_empty();
        if !others {
            owners.remove(key);
        }
        Ok(others)
    }
}

/// Items in the idempotency table (`RequestId` is the key; these keys cannot
/// collide with a RequestId, a UUID), owners as a string set, no TTL.
/// Atomic set updates keep concurrent claims and releases consistent.
pub struct DynamoOwners {
    client: DynamoDb,
    table: String,
}

impl DynamoOwners {
    pub fn new(client: DynamoDb, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn failed<E: std::error::Error>(&self, e: E) -> String {
        format!(
            "DynamoDB UpdateItem on {}: {}",
            self.table,
            aws_sdk_dynamodb::error::DisplayErrorContext(e)
        )
    }
}

impl TopicOwners for DynamoOwners {
    async fn claim(&self, key: &str, owner: &str) -> Result<(), String> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("RequestId", AttributeValue::S(key.to_owned()))
            .update_expression("ADD Owners :owner")
            .expression_attribute_values(":owner", AttributeValue::Ss(vec![owner.to_owned()]))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.failed(e))
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, String> {
        let released = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("RequestId", AttributeValue::S(key.to_owned()))
            .update_expression("DELETE Owners :owner")
            // Without it, releasing an unknown key would create an item.
            .condition_expression("attribute_exists(RequestId)")
            .expression_attribute_values(":owner", AttributeValue::Ss(vec![owner.to_owned()]))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match released {
            // DynamoDB drops a set that becomes empty.
            Ok(out) => Ok(out
                .attributes
                .and_then(|item| item.get("Owners").cloned())
                .and_then(|owners| owners.as_ss().ok().map(|s| !s.is_empty()))
                .unwrap_or(false)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.failed(e)),
        }
    }
}

/// The store chosen by configuration.
pub enum Owners {
    Memory(MemoryOwners),
    Dynamo(DynamoOwners),
}

impl TopicOwners for Owners {
    async fn claim(&self, key: &str, owner: &str) -> Result<(), String> {
        match self {
            Owners::Memory(s) => s.claim(key, owner).await,
            Owners::Dynamo(s) => s.claim(key, owner).await,
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, String> {
        match self {
            Owners::Memory(s) => s.release(key, owner).await,
            Owners::Dynamo(s) => s.release(key, owner).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_owners_count_each_owner_once() {
        let owners = MemoryOwners::default();
        assert!(!owners.release("k", "a").await.unwrap(), "unknown key");
        owners.claim("k", "a").await.unwrap();
        owners.claim("k", "a").await.unwrap();
        owners.claim("k", "b").await.unwrap();
        assert!(owners.release("k", "a").await.unwrap());
        assert!(owners.release("k", "a").await.unwrap(), "b remains");
        assert!(!owners.release("k", "b").await.unwrap());
    }
}
