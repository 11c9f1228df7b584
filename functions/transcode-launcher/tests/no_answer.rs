//! EC2, DynamoDB and S3 accept the connection and never answer: an upload's
//! event fails before its deadline (so Lambda retries it, then sends it to
//! the on-failure destination), and a reconcile sweep reports itself
//! incomplete before its deadline (the next sweep tries again).

mod common;

use serde_json::json;
use std::time::Duration;
use suite_tests::events::sample;
use suite_tests::running::{Env, Running};
use transcode_launcher::FUNCTION_NAME;

#[tokio::test(flavor = "multi_thread")]
async fn hung_services_fail_the_record_and_the_sweep_before_the_deadline() {
    let env = Env::new().extend(&[
        ("INPUT_BUCKET", "video-uploads-123456789012"),
        ("INPUT_PREFIX", "videos"),
        ("OUTPUT_BUCKET", "video-uploads-123456789012"),
        ("OUTPUT_PREFIX", "transcoded"),
        ("LAUNCH_TEMPLATE_NAME", common::TEMPLATE),
        ("JOBS_TABLE", common::JOBS_TABLE),
    ]);
    let (function, silent) =
        Running::start_with_silent_aws(env!("CARGO_BIN_EXE_transcode-launcher"), &env).await;
    let time = Duration::from_secs(6);

    let upload = function
        .invoke_before_deadline(sample(FUNCTION_NAME, "01-put-holiday-video.json"), time)
        .await;
    let error = upload.result.expect_err("the record fails, to be retried");
    assert_eq!(error["errorType"], "LaunchFailed", "{error}");

    let tick = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    let sweep = function.invoke_before_deadline(tick, time).await;
    let error = sweep.result.expect_err("the sweep reports what it left");
    assert_eq!(error["errorType"], "ReconcileIncomplete", "{error}");
    assert!(silent.connections() > 0, "the services were really called");
}
