//! Copy claims in DynamoDB: conditional writes, so that two invocations at
//! once cannot both hold a claim.

use crate::ports::{Claim, ClaimError, Claims, Condition};
use aws_sdk_dynamodb::Client as DynamoDb;
use aws_sdk_dynamodb::types::AttributeValue;

/// A DynamoDB table keyed by the string attribute `claim`, TTL on `expires_at`.
pub struct DynamoClaims {
    pub client: DynamoDb,
    pub table: String,
}

fn dynamo_error<E: std::error::Error + 'static>(
    table: &str,
    call: &'static str,
    e: E,
) -> ClaimError {
    ClaimError::Unavailable {
        call,
        table: table.to_owned(),
        reason: shared::aws::error_text(&e),
    }
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
