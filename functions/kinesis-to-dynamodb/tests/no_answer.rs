//! DynamoDB accepts the connection and never answers: the function still
//! answers before the deadline it was given, and its batchItemFailures
//! checkpoint keeps every record (none is lost, none reported written).

use serde_json::{Value, json};
use std::time::Duration;
use suite_tests::http::SilentServer;
use suite_tests::running::{Env, Running};

fn record(i: u64) -> Value {
    let seq = format!("4959033827149025660855969253836157109592157500{i:08}");
    let data = json!({"id": format!("k{i}"), "n": i}).to_string();
    json!({
        "eventID": format!("shardId-000000000000:{seq}"),
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/hung",
        "kinesis": {"partitionKey": format!("k{i}"), "sequenceNumber": seq,
                    "data": aws_smithy_types::base64::encode(data.as_bytes()),
                    "approximateArrivalTimestamp": 1763750000.25}
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_table_fails_the_batch_from_its_first_record_before_the_deadline() {
    let silent = SilentServer::start().await.unwrap();
    let env = Env::test_credentials().extend(&[
        ("AWS_ENDPOINT_URL_DYNAMODB", silent.endpoint().as_str()),
        ("TABLE_NAME", "items"),
        ("PARTITION_KEY", "pk"),
        ("REJECTS_TABLE_NAME", "rejects"),
        ("MODE", "latest"),
    ]);
    let function = Running::start(env!("CARGO_BIN_EXE_kinesis-to-dynamodb"), &env).await;
    let records: Vec<Value> = (0..3).map(record).collect();
    let first = records[0]["kinesis"]["sequenceNumber"].clone();
    // The default margin (2 s) against a 6 s Lambda deadline.
    let time = Duration::from_secs(6);
    for _ in 0..2 {
        let answer = function
            .invoke_before_deadline(json!({"Records": records}), time)
            .await;
        let response = answer.result.expect("the invocation itself succeeds");
        assert_eq!(
            response["batchItemFailures"][0]["itemIdentifier"], first,
            "the checkpoint stays at the first unwritten record: {response}"
        );
    }
    assert!(silent.connections() > 0, "the table was really called");
}

/// Under the client policy a hung attempt ends as a transient error (ours to
/// retry, within the deadline), and the SDK does not retry it underneath:
/// one connection per call.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_attempt_is_a_transient_error_and_the_sdk_does_not_retry_it() {
    use aws_sdk_dynamodb::config::{Credentials, Region, SharedCredentialsProvider};
    use kinesis_to_dynamodb::aws::dynamodb::DynamoTable;
    use kinesis_to_dynamodb::ports::{Table, WriteError};
    use shared::aws::{ClientPolicy, SdkConfig, with_policy};

    let silent = SilentServer::start().await.unwrap();
    let base = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(silent.endpoint())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "test",
        )))
        .build();
    let policy = ClientPolicy {
        attempt_timeout: Duration::from_millis(300),
        ..ClientPolicy::default()
    };
    // What DynamoTable::from_sdk builds, with a short attempt timeout.
    let table = DynamoTable::from_sdk(&with_policy(&base, policy));
    let item = [(
        "pk".to_string(),
        aws_sdk_dynamodb::types::AttributeValue::S("k".into()),
    )]
    .into_iter()
    .collect();
    let result = tokio::time::timeout(Duration::from_secs(60), table.put("items", item))
        .await
        .expect("the call ends");
    assert!(
        matches!(result, Err(WriteError::Transient(_))),
        "{result:?}"
    );
    assert_eq!(
        silent.connections(),
        1,
        "one attempt: the SDK did not retry"
    );
}
