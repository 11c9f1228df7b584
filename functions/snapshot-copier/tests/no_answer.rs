//! EC2 (and DynamoDB) accept the connection and never answer: a snapshot
//! event and a sweep both report their errors before the invocation's
//! deadline (the next sweep copies what was missed), instead of running out
//! the clock.

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use suite_tests::function::FunctionProcess;
use suite_tests::http::SilentServer;
use suite_tests::process::workspace_root;
use suite_tests::runtime_api::RuntimeApi;

fn sample(name: &str) -> Value {
    let path = workspace_root().join("events/snapshot-copier").join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn hung_ec2_reports_errors_before_the_deadline() {
    let silent = SilentServer::start().await.unwrap();
    let api = RuntimeApi::start().await.unwrap();
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", silent.endpoint().as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("DEFAULT_DESTINATIONS", "us-west-2"),
        ("CLAIM_TABLE", "copy-claims"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let _function = FunctionProcess::spawn(
        Path::new(env!("CARGO_BIN_EXE_snapshot-copier")),
        &api.host_port(),
        &env,
    );
    let time = Duration::from_secs(6);
    for event in [
        "01-create-snapshot-succeeded.json",
        "03-create-snapshots-multi-volume.json",
        "04-scheduled-sweep.json",
    ] {
        let deadline = Instant::now() + time;
        let answer = api.invoke(sample(event), time).await.expect(event);
        assert!(
            answer.finished <= deadline,
            "{event}: answered {:?} after the deadline",
            answer.finished - deadline
        );
        let error = answer.result.expect_err("the errors are reported");
        assert_eq!(error["errorType"], "CopiesIncomplete", "{event}: {error}");
    }
    assert!(silent.connections() > 0, "EC2 was really called");
}
