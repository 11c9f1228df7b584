//! The real binary under the Runtime API stand-in: the ERROR line of a
//! failed invocation carries its ids at every log level, and a first event
//! that cannot be read is still the cold start.

use serde_json::{Value, json};
use std::time::Duration;
use suite_tests::running::{Env, Running};

const FIRST_REQUEST: &str = "00000000-0000-4000-8000-000000000001";
const TRACE_ID: &str = "1-00000000-000000000000000000000000";

async fn start(log_level: &str) -> Running {
    let env = Env::test_credentials().extend(&[
        // Nothing here reaches DynamoDB; a closed port if it did.
        ("AWS_ENDPOINT_URL_DYNAMODB", "http://127.0.0.1:9"),
        ("TABLE_NAME", "items"),
        ("PARTITION_KEY", "pk"),
        ("REJECTS_TABLE_NAME", "rejects"),
        ("AWS_LAMBDA_LOG_LEVEL", log_level),
    ]);
    Running::start(env!("CARGO_BIN_EXE_kinesis-to-dynamodb"), &env).await
}

fn errors(line: &Value) -> bool {
    line["level"] == "ERROR"
}

#[tokio::test]
async fn a_failed_invocation_logs_its_ids_at_every_level() {
    for level in ["INFO", "WARN", "ERROR"] {
        let function = start(level).await;
        // Not a Kinesis event: the handler returns an error.
        let answer = function
            .invoke_within(json!({"source": "aws.events"}), Duration::from_secs(10))
            .await;
        let error = answer.result.expect_err("a failed invocation");
        assert_eq!(error["errorType"], "NotAKinesisEvent", "{error}");
        let lines = function.process().json_lines(1, errors).await;
        for line in &lines {
            assert_eq!(
                line["function_request_id"], FIRST_REQUEST,
                "{level}: {line}"
            );
            assert_eq!(line["xray_trace_id"], TRACE_ID, "{level}: {line}");
            assert_eq!(line["service"], "kinesis-to-dynamodb", "{level}: {line}");
        }
    }
}

#[tokio::test]
async fn an_unreadable_first_event_is_the_cold_start() {
    let function = start("INFO").await;
    let answer = function
        .invoke_within(json!({"Records": 5}), Duration::from_secs(10))
        .await;
    let error = answer.result.expect_err("an unreadable event fails");
    let message = error["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("Records"), "names the field: {error}");
    let answer = function
        .invoke_within(json!({"Records": []}), Duration::from_secs(10))
        .await;
    assert!(answer.result.is_ok(), "{:?}", answer.result);

    let failed = function.process().json_lines(1, errors).await;
    assert_eq!(
        failed[0]["function_request_id"], FIRST_REQUEST,
        "{}",
        failed[0]
    );
    let processed = function
        .process()
        .json_lines(1, |l| l["message"] == "batch processed")
        .await;
    assert_eq!(processed[0]["cold_start"], false, "{}", processed[0]);
    let cold_starts: Vec<Value> = function
        .process()
        .json_lines(0, |l| l.get("ColdStart").is_some())
        .await;
    assert_eq!(cold_starts.len(), 1, "{cold_starts:?}");
}
