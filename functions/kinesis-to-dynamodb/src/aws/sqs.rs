//! The SQS failure queue behind [`Queue`], for the replay tool.

use crate::ports::{Queue, QueueMessage, ReplayError};
use shared::aws::service_error_text;
use shared::sqs::QueueClient;
use std::time::Duration;

pub struct SqsQueue(QueueClient);

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self(QueueClient::new(client, url))
    }
}

/// Long polling asks every SQS server: a short poll may answer empty while
/// messages wait.
const RECEIVE_WAIT: Duration = Duration::from_secs(1);

impl Queue for SqsQueue {
    async fn receive(&self, hide: Duration) -> Result<Option<QueueMessage>, ReplayError> {
        let output = self
            .0
            .receive(1, hide, RECEIVE_WAIT)
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
        self.0
            .delete(receipt)
            .await
            .map_err(|e| ReplayError::Queue(service_error_text(&e)))
    }

    async fn hide(&self, receipt: &str, hide: Duration) -> Result<(), ReplayError> {
        self.0
            .hide(receipt, hide)
            .await
            .map_err(|e| ReplayError::Queue(service_error_text(&e)))
    }
}
