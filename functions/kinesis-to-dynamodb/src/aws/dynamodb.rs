//! DynamoDB behind [`Table`] (the function's writes) and [`Rejects`] (the
//! replay tool's rejects table).

use crate::convert::Item;
use crate::ports::{Deleted, Order, PutResult, Rejects, ReplayError, Table, WriteError};
use crate::record::{ARRIVAL_ATTR, POSITION_ATTR, SHARD_ATTR};
use crate::replay::RejectId;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure, WriteRequest,
};
use shared::aws::service_error_text;
use std::collections::HashMap;

#[derive(Clone)]
pub struct DynamoTable(pub Client);

impl DynamoTable {
    /// The client for our writes: `batch_write::with_retries` retries them with
    /// its own backoff, within the deadline, so the SDK does not retry too
    /// (attempts would multiply). `sdk`'s timeouts stay: its attempt timeout
    /// ends a hung call, which then counts as a transient failure.
    pub fn from_sdk(sdk: &shared::aws::SdkConfig) -> Self {
        let own_retries = sdk
            .to_builder()
            .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
            .build();
        Self(Client::new(&own_retries))
    }
}

/// Sorts an SDK error into retry, poison or give up.
fn classify<E, R>(error: SdkError<E, R>) -> WriteError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let text = service_error_text(&error);
    match &error {
        SdkError::ServiceError(service) => match service.err().code().unwrap_or_default() {
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "InternalServerError"
            | "ServiceUnavailable"
            | "LimitExceededException" => WriteError::Transient(text),
            "ValidationException" => WriteError::ItemRejected(text),
            _ => WriteError::Fatal(text),
        },
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            WriteError::Transient(text)
        }
        _ => WriteError::Fatal(text),
    }
}

impl Table for DynamoTable {
    async fn put_if_newer(
        &self,
        table: &str,
        item: Item,
        order: &Order,
    ) -> Result<PutResult, WriteError> {
        // The rule of `Order::is_newer_than`. An item lacking the shard or
        // arrival attributes (not written by this function) is never replaced.
        let result = self
            .0
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(#position) \
                 OR (#shard = :shard AND #position < :position) \
                 OR (#shard <> :shard AND #arrival < :arrival)",
            )
            .expression_attribute_names("#position", POSITION_ATTR)
            .expression_attribute_names("#shard", SHARD_ATTR)
            .expression_attribute_names("#arrival", ARRIVAL_ATTR)
            .expression_attribute_values(":position", AttributeValue::S(order.position.clone()))
            .expression_attribute_values(":shard", AttributeValue::S(order.shard.clone()))
            .expression_attribute_values(
                ":arrival",
                AttributeValue::N(order.arrival_ms.to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutResult::Written),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(PutResult::Stale)
            }
            Err(e) => Err(classify(e)),
        }
    }

    async fn batch_put(&self, table: &str, items: Vec<Item>) -> Result<Vec<Item>, WriteError> {
        let requests = items
            .into_iter()
            .map(|item| {
                let put = PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map_err(|e| WriteError::Fatal(e.to_string()))?;
                Ok(WriteRequest::builder().put_request(put).build())
            })
            .collect::<Result<Vec<_>, WriteError>>()?;
        let output = self
            .0
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
            .map_err(classify)?;
        Ok(output
            .unprocessed_items
            .and_then(|mut tables| tables.remove(table))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|request| request.put_request.map(|put| put.item))
            .collect())
    }

    async fn put(&self, table: &str, item: Item) -> Result<(), WriteError> {
        self.0
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map(|_| ())
            .map_err(classify)
    }
}

pub struct DynamoRejects {
    pub client: aws_sdk_dynamodb::Client,
    pub table: String,
}

impl DynamoRejects {
    fn key(id: &RejectId) -> HashMap<String, AttributeValue> {
        HashMap::from([
            ("shardId".to_owned(), AttributeValue::S(id.shard.clone())),
            (
                "position".to_owned(),
                AttributeValue::S(id.position.sortable()),
            ),
        ])
    }
}

impl Rejects for DynamoRejects {
    async fn scan_page(
        &self,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), ReplayError> {
        let output = self
            .client
            .scan()
            .table_name(&self.table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| ReplayError::Rejects(service_error_text(&e)))?;
        Ok((
            output.items.unwrap_or_default(),
            output.last_evaluated_key.filter(|key| !key.is_empty()),
        ))
    }

    async fn delete_if_unchanged(
        &self,
        id: &RejectId,
        rejected_at_ms: &str,
    ) -> Result<Deleted, ReplayError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .condition_expression("#at = :at")
            .expression_attribute_names("#at", "rejectedAtMs")
            .expression_attribute_values(":at", AttributeValue::N(rejected_at_ms.to_owned()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Deleted::Deleted),
            Err(SdkError::ServiceError(e)) => match e.into_err() {
                // With the item it failed on: written again meanwhile.
                DeleteItemError::ConditionalCheckFailedException(failed) => Ok(match failed.item {
                    Some(item) if !item.is_empty() => Deleted::Changed,
                    _ => Deleted::Gone,
                }),
                other => Err(ReplayError::Rejects(format!(
                    "{}: {}",
                    other.code().unwrap_or("UnknownError"),
                    other.message().unwrap_or("no message")
                ))),
            },
            Err(e) => Err(ReplayError::Rejects(service_error_text(&e))),
        }
    }

    async fn delete(&self, id: &RejectId) -> Result<Option<Item>, ReplayError> {
        let output = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| ReplayError::Rejects(service_error_text(&e)))?;
        Ok(output.attributes.filter(|item| !item.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sdk_does_not_retry_under_our_retries_and_calls_time_out() {
        let sdk = shared::aws::load_sdk_config().await;
        let table = DynamoTable::from_sdk(&sdk);
        let config = table.0.config();
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(1));
        let timeouts = config.timeout_config().expect("timeouts");
        assert!(timeouts.connect_timeout().is_some());
        assert!(timeouts.operation_attempt_timeout().is_some());
    }
}
