//! One SQS queue's message calls, for the operator tools that drain a
//! failure queue (kinesis-replay, lambda-redrive): receive under a hold,
//! delete, and change how long a message stays hidden. Each tool reads the
//! messages and maps the SDK's errors its own way. Feature `sqs`.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::operation::change_message_visibility::ChangeMessageVisibilityError;
use aws_sdk_sqs::operation::delete_message::DeleteMessageError;
use aws_sdk_sqs::operation::receive_message::builders::ReceiveMessageFluentBuilder;
use std::time::Duration;

/// An SQS client and the URL of the queue it works on.
#[derive(Debug, Clone)]
pub struct QueueClient {
    pub client: Client,
    pub url: String,
}

impl QueueClient {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self {
            client,
            url: url.into(),
        }
    }

    /// A ReceiveMessage of up to `max` messages (1 to 10, as SQS allows),
    /// each hidden from other receivers for `hold`, long-polling for `wait`:
    /// long polling asks every SQS server, where a short poll may answer
    /// empty while messages wait. The caller adds the attributes it reads
    /// and sends it.
    pub fn receive(
        &self,
        max: usize,
        hold: Duration,
        wait: Duration,
    ) -> ReceiveMessageFluentBuilder {
        self.client
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(hold.as_secs() as i32)
            .wait_time_seconds(wait.as_secs() as i32)
    }

    /// Deletes the message `receipt` was received with.
    pub async fn delete(
        &self,
        receipt: &str,
    ) -> Result<(), SdkError<DeleteMessageError, HttpResponse>> {
        self.client
            .delete_message()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
    }

    /// Keeps the message `receipt` was received with hidden for `hidden`
    /// from now; zero makes it visible again at once.
    pub async fn hide(
        &self,
        receipt: &str,
        hidden: Duration,
    ) -> Result<(), SdkError<ChangeMessageVisibilityError, HttpResponse>> {
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(hidden.as_secs() as i32)
            .send()
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sqs::config::{BehaviorVersion, Region};

    fn queue() -> QueueClient {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::from_static("us-east-1"))
            .build();
        QueueClient::new(Client::from_conf(config), "http://127.0.0.1:1/q")
    }

    #[test]
    fn a_receive_asks_for_what_sqs_allows_under_the_hold_and_wait_given() {
        let queue = queue();
        let input = |max| {
            let call = queue.receive(max, Duration::from_secs(1200), Duration::from_secs(2));
            let input = call.as_input();
            (
                input.get_queue_url().clone(),
                input.get_max_number_of_messages().to_owned(),
                input.get_visibility_timeout().to_owned(),
                input.get_wait_time_seconds().to_owned(),
            )
        };
        let url = Some("http://127.0.0.1:1/q".to_owned());
        assert_eq!(input(1), (url.clone(), Some(1), Some(1200), Some(2)));
        assert_eq!(input(0), (url.clone(), Some(1), Some(1200), Some(2)));
        assert_eq!(input(25), (url, Some(10), Some(1200), Some(2)));
    }
}
