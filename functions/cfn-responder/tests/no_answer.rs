//! AWS accepts the connection and never answers: CloudFormation still gets
//! its one response before the invocation's deadline, whether the hung call
//! is a resource type's (EC2, SES, the owners table) or the idempotency
//! table's (claim before the work, record after it).

mod common;

use cfn_responder::aws::dynamodb::DynamoStore;
use cfn_responder::cfn::{CfnResponse, HttpsPut, ResponseUrlPolicy};
use cfn_responder::ports::{Claim, IdempotencyStore, StoreError};
use cfn_responder::resource::{CustomResource, Outcome, Registry, RequestContext, ResourceError};
use cfn_responder::responder::{Responder, Settings};
use common::*;
use serde_json::json;
use std::time::{Duration, SystemTime};
use suite_tests::http::SilentServer;
use suite_tests::running::{Env, Running};
use suite_tests::sink::Sink;
use tokio::time::Instant;

#[tokio::test(flavor = "multi_thread")]
async fn the_binary_answers_before_the_deadline_when_every_aws_call_hangs() {
    let silent = SilentServer::start().await.unwrap();
    let sink = Sink::start(0).await.unwrap();
    let env = Env::aws(&silent.endpoint()).extend(&[
        ("ALLOW_LOCAL_RESPONSE_URL", "true"),
        ("TIMEOUT_MARGIN_MS", "1500"),
        ("IDEMPOTENCY_TABLE", "idempotency"),
    ]);
    let function = Running::start(env!("CARGO_BIN_EXE_cfn-responder"), &env).await;
    let time = Duration::from_secs(5);
    for (id, resource_type, props) in [
        (
            "ami",
            "Custom::AmiLookup",
            json!({"Owners": "amazon", "NamePattern": "al2023-ami-*"}),
        ),
        (
            "ses",
            "Custom::SesIdentityNotifications",
            json!({"Identity": "example.com",
                   "BounceTopic": "arn:aws:sns:us-east-1:123456789012:bounces",
                   "ComplaintTopic": "arn:aws:sns:us-east-1:123456789012:complaints"}),
        ),
    ] {
        let sent = request("Create", id, &sink.url(id), resource_type, props);
        let deadline = std::time::Instant::now() + time;
        let invocation = function.invoke_within(sent.clone(), time).await;
        assert!(
            invocation.finished <= deadline,
            "{id}: answered {:?} after the deadline",
            invocation.finished - deadline
        );
        let body = the_one_response(&sink, id, &sent);
        assert_eq!(body["Status"], "FAILED", "{id}: {body}");
        assert!(
            sink.received(id)[0].at <= deadline,
            "{id}: the response arrived after the deadline"
        );
    }
    assert!(silent.connections() > 0, "AWS was really called");
}

/// A resource type that is not idempotent, so the responder claims each
/// request in the idempotency table before running it.
struct Widget;

#[derive(serde::Deserialize)]
struct WidgetProps {}

impl CustomResource for Widget {
    const RESOURCE_TYPE: &'static str = "Custom::Widget";
    type Properties = WidgetProps;

    async fn create(&self, _: &RequestContext, _: &WidgetProps) -> Result<Outcome, ResourceError> {
        Ok(Outcome::default())
    }
}

fn settings() -> Settings {
    Settings {
        timeout_margin: Duration::from_millis(1500),
        url_policy: ResponseUrlPolicy { allow_local: true },
        ..Settings::default()
    }
}

/// Runs one Create of the widget with `store`, and checks that the one
/// response went out, and the call returned, before the deadline.
async fn answered_in_time<S: IdempotencyStore>(store: S, id: &str) -> serde_json::Value {
    let sink = Sink::start(0).await.unwrap();
    let responder = Responder::new(
        Registry::new().register(Widget),
        store,
        HttpsPut::default(),
        settings(),
    );
    let sent = request("Create", id, &sink.url(id), "Custom::Widget", json!({}));
    let deadline = Instant::now() + Duration::from_secs(5);
    let handled = tokio::time::timeout_at(
        deadline + Duration::from_secs(10),
        responder.handle(sent.clone(), deadline),
    )
    .await
    .expect("the responder returns");
    assert!(
        Instant::now() <= deadline,
        "returned after the deadline: {handled:?}"
    );
    let body = the_one_response(&sink, id, &sent);
    assert!(
        sink.received(id)[0].at <= deadline.into_std(),
        "the response arrived after the deadline"
    );
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_idempotency_table_still_gets_an_answer_before_the_deadline() {
    let silent = SilentServer::start().await.unwrap();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .endpoint_url(silent.endpoint())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "idempotency");
    let body = answered_in_time(store, "claim-hangs").await;
    // Unknown whether the claim was taken: the work is not run blind.
    assert_eq!(body["Status"], "FAILED", "{body}");
    assert!(silent.connections() > 0, "the table was really called");
}

/// Claims, then never finishes recording the response.
struct RecordHangs;

impl IdempotencyStore for RecordHangs {
    async fn claim(&self, _: &str, _: SystemTime) -> Result<Claim, StoreError> {
        Ok(Claim::Fresh)
    }

    async fn complete(&self, _: &str, _: &CfnResponse) -> Result<(), StoreError> {
        std::future::pending().await
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_record_of_the_response_does_not_hold_the_response_back() {
    let body = answered_in_time(RecordHangs, "record-hangs").await;
    assert_eq!(body["Status"], "SUCCESS", "{body}");
}

/// The ResponseURL itself accepts and never answers: each PUT attempt times
/// out, and the invocation fails before its deadline (so Lambda's retry can
/// deliver the answer later) instead of hanging on the first attempt.
#[tokio::test(flavor = "multi_thread")]
async fn a_hung_response_url_fails_the_invocation_before_the_deadline() {
    let silent = SilentServer::start().await.unwrap();
    let env = Env::new().set("ALLOW_LOCAL_RESPONSE_URL", "true");
    let function = Running::start(env!("CARGO_BIN_EXE_cfn-responder"), &env).await;
    let url = format!("{}/response", silent.endpoint());
    let sent = request("Create", "put", &url, "Custom::Nope", json!({}));
    // Room for more than one 5 s attempt.
    let time = Duration::from_secs(14);
    let deadline = std::time::Instant::now() + time;
    let invocation = function.invoke_within(sent, time).await;
    assert!(
        invocation.finished <= deadline,
        "answered {:?} after the deadline",
        invocation.finished - deadline
    );
    let error = invocation.result.expect_err("not delivered");
    assert_eq!(error["errorType"], "ResponseNotDelivered", "{error}");
    assert!(silent.connections() > 1, "the PUT was attempted again");
}
