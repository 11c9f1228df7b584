//! EC2 (and DynamoDB) accept the connection and never answer: a snapshot
//! event and a sweep both report their errors before the invocation's
//! deadline (the next sweep copies what was missed), instead of running out
//! the clock.

use std::time::Duration;
use suite_tests::events::sample;
use suite_tests::http::SilentServer;
use suite_tests::running::{Env, Running};

#[tokio::test(flavor = "multi_thread")]
async fn hung_ec2_reports_errors_before_the_deadline() {
    let silent = SilentServer::start().await.unwrap();
    let env = Env::aws(&silent.endpoint()).extend(&[
        ("DEFAULT_DESTINATIONS", "us-west-2"),
        ("CLAIM_TABLE", "copy-claims"),
    ]);
    let function = Running::start(env!("CARGO_BIN_EXE_snapshot-copier"), &env).await;
    let time = Duration::from_secs(6);
    for event in [
        "01-create-snapshot-succeeded.json",
        "03-create-snapshots-multi-volume.json",
        "04-scheduled-sweep.json",
    ] {
        let event_json = sample(snapshot_copier::FUNCTION_NAME, event);
        let answer = function.invoke_before_deadline(event_json, time).await;
        let error = answer.result.expect_err("the errors are reported");
        assert_eq!(error["errorType"], "CopiesIncomplete", "{event}: {error}");
    }
    assert!(silent.connections() > 0, "EC2 was really called");
}
