//! EC2, DynamoDB and S3 accept the connection and never answer: an upload's
//! event fails before its deadline (so Lambda retries it, then sends it to
//! the on-failure destination), and a reconcile sweep reports itself
//! incomplete before its deadline (the next sweep tries again).

mod common;

use common::sample;
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use suite_tests::function::FunctionProcess;
use suite_tests::http::SilentServer;
use suite_tests::runtime_api::RuntimeApi;

#[tokio::test(flavor = "multi_thread")]
async fn hung_services_fail_the_record_and_the_sweep_before_the_deadline() {
    let silent = SilentServer::start().await.unwrap();
    let api = RuntimeApi::start().await.unwrap();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", silent.endpoint().as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("INPUT_BUCKET", "video-uploads-123456789012"),
        ("INPUT_PREFIX", "videos"),
        ("OUTPUT_BUCKET", "video-uploads-123456789012"),
        ("OUTPUT_PREFIX", "transcoded"),
        ("LAUNCH_TEMPLATE_NAME", common::TEMPLATE),
        ("JOBS_TABLE", common::JOBS_TABLE),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let _function = FunctionProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_transcode-launcher")),
        &api.host_port(),
        &env,
    );
    let time = Duration::from_secs(6);

    let upload = api
        .invoke_before_deadline(sample("01-put-holiday-video.json"), time)
        .await;
    let error = upload.result.expect_err("the record fails, to be retried");
    assert_eq!(error["errorType"], "LaunchFailed", "{error}");

    let tick = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let sweep = api.invoke_before_deadline(tick, time).await;
    let error = sweep.result.expect_err("the sweep reports what it left");
    assert_eq!(error["errorType"], "ReconcileIncomplete", "{error}");
    assert!(silent.connections() > 0, "the services were really called");
}
