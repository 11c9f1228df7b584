//! At-most-once execution per RequestId for types that are not idempotent.
//!
//! Lambda retries asynchronous invocations, so one CloudFormation request can
//! arrive twice. Before running a non-idempotent type, the responder claims
//! the RequestId with a conditional write. A duplicate that finds the request
//! done re-sends the stored response, doing nothing else; one that finds it
//! still running leaves the answer to the running one; one that finds a claim
//! whose holder died answers FAILED rather than risk doing the work twice.

use crate::cfn::CfnResponse;
use aws_sdk_dynamodb::Client as DynamoDb;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Completed entries are kept this long (DynamoDB TTL), well beyond Lambda's
/// six-hour async retry window.
const KEEP_FOR: Duration = Duration::from_secs(24 * 3600);

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First delivery: go ahead.
    Fresh,
    /// Another delivery is running and will answer.
    InProgress,
    /// Another delivery started but its deadline passed without finishing.
    Abandoned,
    /// Already answered with this response.
    Completed(Box<CfnResponse>),
}

pub trait IdempotencyStore: Send + Sync {
    /// Claims `request_id` until `until` (the claimant's Lambda deadline).
    fn claim(
        &self,
        request_id: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<Claim, String>> + Send;
    /// Records the response sent for `request_id`.
    fn complete(
        &self,
        request_id: &str,
        response: &CfnResponse,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Debug, Clone)]
enum Entry {
    Running { until: SystemTime },
    Done(Box<CfnResponse>),
}

fn claim_outcome(entry: &Entry) -> Claim {
    match entry {
        Entry::Done(response) => Claim::Completed(response.clone()),
        Entry::Running { until } if *until < SystemTime::now() => Claim::Abandoned,
        Entry::Running { .. } => Claim::InProgress,
    }
}

/// Per execution environment only: enough for local runs and tests, not for
/// retries that land in another environment.
#[derive(Default)]
pub struct MemoryStore {
    entries: Mutex<HashMap<String, Entry>>,
}

impl IdempotencyStore for MemoryStore {
    async fn claim(&self, request_id: &str, until: SystemTime) -> Result<Claim, String> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| "idempotency store poisoned".to_owned())?;
        if let Some(entry) = entries.get(request_id) {
            return Ok(claim_outcome(entry));
        }
        entries.insert(request_id.to_owned(), Entry::Running { until });
        Ok(Claim::Fresh)
    }

    async fn complete(&self, request_id: &str, response: &CfnResponse) -> Result<(), String> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| "idempotency store poisoned".to_owned())?;
        entries.insert(
            request_id.to_owned(),
            Entry::Done(Box::new(response.clone())),
        );
        Ok(())
    }
}

/// A DynamoDB table keyed by `RequestId` (S), with TTL on `ExpiresAt`.
pub struct DynamoStore {
    client: DynamoDb,
    table: String,
}

impl DynamoStore {
    pub fn new(client: DynamoDb, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    fn expires_at() -> AttributeValue {
        let at = SystemTime::now() + KEEP_FOR;
        AttributeValue::N((epoch_millis(at) / 1000).to_string())
    }
}

impl IdempotencyStore for DynamoStore {
    async fn claim(&self, request_id: &str, until: SystemTime) -> Result<Claim, String> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("RequestId", AttributeValue::S(request_id.to_owned()))
            .item("State", AttributeValue::S("RUNNING".into()))
            .item(
                "RunningUntil",
                AttributeValue::N(epoch_millis(until).to_string()),
            )
            .item("ExpiresAt", Self::expires_at())
            .condition_expression("attribute_not_exists(RequestId)")
            .send()
            .await;
        match put {
            Ok(_) => return Ok(Claim::Fresh),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
            Err(e) => {
                return Err(format!(
                    "DynamoDB PutItem on {}: {}",
                    self.table,
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                ));
            }
        }
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("RequestId", AttributeValue::S(request_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "DynamoDB GetItem on {}: {}",
                    self.table,
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
            })?
            .item
            .ok_or_else(|| {
                format!("claim for {request_id} vanished between PutItem and GetItem")
            })?;
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let entry =
            match text("Response") {
                Some(json) => Entry::Done(Box::new(serde_json::from_str(&json).map_err(|e| {
                    format!("stored response for {request_id} is unreadable: {e}")
                })?)),
                None => {
                    let until = item
                        .get("RunningUntil")
                        .and_then(|v| v.as_n().ok())
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or(0);
                    Entry::Running {
                        until: UNIX_EPOCH + Duration::from_millis(until),
                    }
                }
            };
        Ok(claim_outcome(&entry))
    }

    async fn complete(&self, request_id: &str, response: &CfnResponse) -> Result<(), String> {
        let json = serde_json::to_string(response).map_err(|e| e.to_string())?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("RequestId", AttributeValue::S(request_id.to_owned()))
            .item("State", AttributeValue::S("DONE".into()))
            .item("Response", AttributeValue::S(json))
            .item("ExpiresAt", Self::expires_at())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                format!(
                    "DynamoDB PutItem on {}: {}",
                    self.table,
                    aws_sdk_dynamodb::error::DisplayErrorContext(e)
                )
            })
    }
}

/// The store chosen by configuration.
pub enum Store {
    Memory(MemoryStore),
    Dynamo(DynamoStore),
}

impl IdempotencyStore for Store {
    async fn claim(&self, request_id: &str, until: SystemTime) -> Result<Claim, String> {
        match self {
            Store::Memory(s) => s.claim(request_id, until).await,
            Store::Dynamo(s) => s.claim(request_id, until).await,
        }
    }

    async fn complete(&self, request_id: &str, response: &CfnResponse) -> Result<(), String> {
        match self {
            Store::Memory(s) => s.complete(request_id, response).await,
            Store::Dynamo(s) => s.complete(request_id, response).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfn::CfnStatus;

    fn response() -> CfnResponse {
        CfnResponse {
            status: CfnStatus::Success,
            reason: None,
            physical_resource_id: "p".into(),
            stack_id: "s".into(),
            request_id: "r".into(),
            logical_resource_id: "l".into(),
            no_echo: false,
            data: Default::default(),
        }
    }

    #[tokio::test]
    async fn memory_store_lifecycle() {
        let store = MemoryStore::default();
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(store.claim("r", later).await.unwrap(), Claim::Fresh);
        assert_eq!(store.claim("r", later).await.unwrap(), Claim::InProgress);
        store.complete("r", &response()).await.unwrap();
        assert_eq!(
            store.claim("r", later).await.unwrap(),
            Claim::Completed(Box::new(response()))
        );
        let past = SystemTime::now() - Duration::from_secs(1);
        assert_eq!(store.claim("dead", past).await.unwrap(), Claim::Fresh);
        assert_eq!(store.claim("dead", later).await.unwrap(), Claim::Abandoned);
    }
}
