//! The RDS API or S3 accepts the connection and never answers: the run
//! reports the target failed before the invocation's deadline, rotates
//! nothing it did not archive, and the next healthy run loses nothing.

mod common;

use common::{BUCKET, INSTANCE, invoke, scheduled, start};
use std::time::Duration;
use suite_tests::http::SilentServer;
use suite_tests::running::{Env, Running};

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_rds_api_fails_the_target_before_the_deadline() {
    let env = Env::new().extend(&[
        // No host: connecting asks DescribeDBInstances for the endpoint.
        ("DB_INSTANCES", INSTANCE),
        ("DB_TLS", "disabled"),
        (
            "SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds-AbCdEf",
        ),
        ("ARCHIVE_BUCKET", BUCKET),
    ]);
    let (function, silent) =
        Running::start_with_silent_aws(env!("CARGO_BIN_EXE_rds-log-rotator"), &env).await;
    let answer = function
        .invoke_before_deadline(scheduled(), Duration::from_secs(6))
        .await;
    let error = answer.result.expect_err("the run fails");
    assert_eq!(error["errorType"], "RotationFailed", "{error}");
    assert!(
        error["errorMessage"].as_str().unwrap().contains(INSTANCE),
        "{error}"
    );
    assert!(silent.connections() > 0, "the RDS API was really called");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_s3_fails_the_target_before_the_deadline_and_the_next_run_loses_nothing() {
    let stack = start().await;
    let silent = SilentServer::start().await.unwrap();
    let hung = stack
        .rotator(1, &[("AWS_ENDPOINT_URL_S3", &silent.endpoint())])
        .await;
    let issued = stack.markers(1, 10);
    let answer = hung
        .invoke_before_deadline(scheduled(), Duration::from_secs(8))
        .await;
    let error = answer.result.expect_err("the run fails");
    assert_eq!(error["errorType"], "RotationFailed", "{error}");
    assert!(silent.connections() > 0, "S3 was really called");
    // Nothing archived was rotated away: the rows are still live.
    let live = stack
        .db
        .sql("SELECT COUNT(*) FROM mysql.slow_log WHERE sql_text LIKE 'SELECT ''marker-1-%'");
    assert_eq!(live.trim(), "10");

    let healthy = stack.rotator(1, &[]).await;
    invoke(&healthy, scheduled()).await.unwrap();
    stack.assert_archived_exactly_once(&issued).await;
}

/// A database that accepts TCP and never sends its handshake gives up its
/// slot well before the cut-off: with one slot, the healthy instance
/// queued behind it is still archived and rotated in the same run.
#[tokio::test(flavor = "multi_thread")]
async fn a_silent_database_fails_alone_and_frees_its_slot_for_the_others() {
    let stack = start().await;
    let silent = SilentServer::start().await.unwrap();
    let instances = format!(
        "stalled-db=127.0.0.1:{},{INSTANCE}=127.0.0.1:{}",
        silent.addr.port(),
        stack.db.port
    );
    let rotator = stack
        .rotator(1, &[("DB_INSTANCES", &instances), ("CONCURRENCY", "1")])
        .await;
    let issued = stack.markers(1, 5);
    let answer = rotator
        .invoke_before_deadline(scheduled(), Duration::from_secs(40))
        .await;
    let error = answer.result.expect_err("the run fails");
    assert_eq!(error["errorType"], "RotationFailed", "{error}");
    let message = error["errorMessage"].as_str().unwrap();
    assert!(
        message.starts_with("1 target(s) failed: stalled-db: connecting: "),
        "{message}"
    );
    assert!(message.contains("handshake"), "{message}");
    assert!(
        silent.connections() > 0,
        "the silent database was really called"
    );
    // The healthy instance ran: its rows are archived and its live log rotated.
    stack.assert_archived_exactly_once(&issued).await;
    let live = stack
        .db
        .sql("SELECT COUNT(*) FROM mysql.slow_log WHERE sql_text LIKE 'SELECT ''marker-1-%'");
    assert_eq!(live.trim(), "0");
}
