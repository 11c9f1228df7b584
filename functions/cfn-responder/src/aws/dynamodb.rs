//! DynamoDB adapters: the idempotency table, which also keeps the SES topic
//! owners.

use crate::cfn::CfnResponse;
use crate::idempotency::{Entry, KEEP_FOR, claim_outcome};
use crate::ports::{Claim, IdempotencyStore, StoreError, TopicOwners};
use aws_sdk_dynamodb::Client as DynamoDb;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use shared::time::millis_since_epoch;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `call` on `table` failed with `e`.
fn call_failed<E: std::error::Error + 'static>(
    call: &'static str,
    table: &str,
    e: E,
) -> StoreError {
    StoreError::Call {
        call,
        table: table.to_owned(),
        reason: shared::aws::error_text(&e),
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
        AttributeValue::N((millis_since_epoch(at) / 1000).to_string())
    }

    fn failed<E: std::error::Error + 'static>(&self, call: &'static str, e: E) -> StoreError {
        call_failed(call, &self.table, e)
    }
}

impl IdempotencyStore for DynamoStore {
    async fn claim(&self, request_id: &str, until: SystemTime) -> Result<Claim, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("RequestId", AttributeValue::S(request_id.to_owned()))
            .item("State", AttributeValue::S("RUNNING".into()))
            .item(
                "RunningUntil",
                AttributeValue::N(millis_since_epoch(until).to_string()),
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
            Err(e) => return Err(self.failed("PutItem", e)),
        }
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("RequestId", AttributeValue::S(request_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.failed("GetItem", e))?
            .item
            .ok_or_else(|| StoreError::Vanished(request_id.to_owned()))?;
        let text = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned();
        let entry = match text("Response") {
            Some(json) => Entry::Done(Box::new(serde_json::from_str(&json).map_err(|e| {
                StoreError::Unreadable {
                    request_id: request_id.to_owned(),
                    reason: e.to_string(),
                }
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

    async fn complete(&self, request_id: &str, response: &CfnResponse) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(response).map_err(|e| StoreError::Encode(e.to_string()))?;
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
            .map_err(|e| self.failed("PutItem", e))
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

    fn failed<E: std::error::Error + 'static>(&self, e: E) -> StoreError {
        call_failed("UpdateItem", &self.table, e)
    }
}

impl TopicOwners for DynamoOwners {
    async fn claim(&self, key: &str, owner: &str) -> Result<(), StoreError> {
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

    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
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
