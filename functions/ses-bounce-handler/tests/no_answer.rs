//! DynamoDB (and SESv2) accept the connection and never answer: an SNS
//! invocation fails before its deadline (so Lambda retries it, then hands it
//! to the dead-letter queue), and an SQS batch names its records as failures
//! before its deadline (so they come back), instead of running out the clock.

use serde_json::Value;
use ses_bounce_handler::FUNCTION_NAME;
use std::time::{Duration, Instant};
use suite_tests::events::sample;
use suite_tests::http::SilentServer;
use suite_tests::running::{Env, Running};

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_table_fails_the_notifications_before_the_deadline() {
    let silent = SilentServer::start().await.unwrap();
    let env = Env::aws(&silent.endpoint())
        .set("SUPPRESSION_TABLE", "suppression")
        .set("ACCOUNT_SUPPRESSION", "true");
    let function = Running::start(env!("CARGO_BIN_EXE_ses-bounce-handler"), &env).await;
    let time = Duration::from_secs(6);

    let deadline = Instant::now() + time;
    let sns = function
        .invoke_within(
            sample(FUNCTION_NAME, "01-permanent-bounce-two-recipients.json"),
            time,
        )
        .await;
    assert!(
        sns.finished <= deadline,
        "SNS: answered {:?} after the deadline",
        sns.finished - deadline
    );
    let error = sns
        .result
        .expect_err("the SNS invocation fails, to be retried");
    assert_eq!(error["errorType"], "NotificationsFailed", "{error}");

    let event = sample(FUNCTION_NAME, "10-sqs-wrapped-bounce.json");
    let ids: Vec<Value> = event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["messageId"].clone())
        .collect();
    let deadline = Instant::now() + time;
    let sqs = function.invoke_within(event, time).await;
    assert!(
        sqs.finished <= deadline,
        "SQS: answered {:?} after the deadline",
        sqs.finished - deadline
    );
    let response = sqs.result.expect("an SQS batch answers with its failures");
    let failed: Vec<Value> = response["batchItemFailures"]
        .as_array()
        .expect("batchItemFailures")
        .iter()
        .map(|f| f["itemIdentifier"].clone())
        .collect();
    assert_eq!(failed, ids, "every record comes back: {response}");
    assert!(silent.connections() > 0, "the table was really called");
}
