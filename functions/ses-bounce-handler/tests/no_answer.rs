//! DynamoDB (and SESv2) accept the connection and never answer: an SNS
//! invocation fails before its deadline (so Lambda retries it, then hands it
//! to the dead-letter queue), and an SQS batch names its records as failures
//! before its deadline (so they come back), instead of running out the clock.

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use suite_tests::function::FunctionProcess;
use suite_tests::http::SilentServer;
use suite_tests::process::workspace_root;
use suite_tests::runtime_api::RuntimeApi;

fn sample(name: &str) -> Value {
    let path = workspace_root()
        .join("events/ses-bounce-handler")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_table_fails_the_notifications_before_the_deadline() {
    let silent = SilentServer::start().await.unwrap();
    let api = RuntimeApi::start().await.unwrap();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", silent.endpoint().as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("SUPPRESSION_TABLE", "suppression"),
        ("ACCOUNT_SUPPRESSION", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let _function = FunctionProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_ses-bounce-handler")),
        &api.host_port(),
        &env,
    );
    let time = Duration::from_secs(6);

    let deadline = Instant::now() + time;
    let sns = api
        .invoke(sample("01-permanent-bounce-two-recipients.json"), time)
        .await
        .expect("an answer");
    assert!(
        sns.finished <= deadline,
        "SNS: answered {:?} after the deadline",
        sns.finished - deadline
    );
    let error = sns
        .result
        .expect_err("the SNS invocation fails, to be retried");
    assert_eq!(error["errorType"], "NotificationsFailed", "{error}");

    let event = sample("10-sqs-wrapped-bounce.json");
    let ids: Vec<Value> = event["Records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["messageId"].clone())
        .collect();
    let deadline = Instant::now() + time;
    let sqs = api.invoke(event, time).await.expect("an answer");
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
