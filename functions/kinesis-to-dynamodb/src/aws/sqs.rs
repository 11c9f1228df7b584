//! The SQS failure queue behind [`Queue`], for the replay tool.

use crate::ports::{Queue, QueueMessage, ReplayError};
use shared::aws::service_error_text;
use std::time::Duration;

pub struct SqsQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

impl Queue for SqsQueue {
    async fn receive(&self, hide: Duration) -> Result<Option<QueueMessage>, ReplayError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(1)
            .visibility_timeout(hide.as_secs() as i32)
            // Long polling asks every SQS server: a short poll may answer
            // empty while messages wait.
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| ReplayError::Queue(service_error_text(&e)))?;
        Ok(output
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| QueueMessage {
                id: m.message_id.unwrap_or_default(),
                receipt: m.receipt_handle.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
            })
            .next())
    }

    async fn delete(&self, receipt: &str) -> Result<(), ReplayError> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ReplayError::Queue(service_error_text(&e)))
    }

    async fn hide(&self, receipt: &str, hide: Duration) -> Result<(), ReplayError> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(hide.as_secs() as i32)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| ReplayError::Queue(service_error_text(&e)))
    }
}
