//! `lambda-redrive` against moto's SQS, with Lambda's Invoke API played by
//! the test kit's stand-in (which fails chosen payloads).
//!
//! The tool is built with the `redrive` feature. Under
//! `cargo test -p shared --features redrive` Cargo builds it; under a plain
//! `cargo test` (the workspace run) the test builds it itself, so the test
//! never silently drops out.

use aws_sdk_sqs::types::{MessageAttributeValue, QueueAttributeName};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use suite_tests::lambda_invoke::InvokeStandIn;
use suite_tests::moto::Moto;
use suite_tests::process::workspace_root;

const FUNCTION: &str = "ses-bounce-handler";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:ses-bounce-handler";

/// What Lambda puts in a dead-letter queue: the SNS event itself.
const SNS_EVENT: &str = r#"{"Records":[{"EventSource":"aws:sns","EventVersion":"1.0","Sns":{"Type":"Notification","MessageId":"m-1","TopicArn":"arn:aws:sns:us-east-1:123456789012:ses","Message":"{\"notificationType\":\"Bounce\",\"bounce\":{\"feedbackId\":\"f-1\"}}","Timestamp":"2026-11-30T10:00:00.000Z"}}]}"#;

/// An OnFailure destination record (the shape Lambda documents).
fn destination_record(payload: Option<&str>) -> String {
    let payload = payload.map_or(String::new(), |p| format!(r#""requestPayload":{p},"#));
    format!(
        r#"{{"version":"1.0","timestamp":"2026-11-30T10:00:05.000Z","requestContext":{{"requestId":"4b4a3c1e-0000-4000-8000-000000000001","functionArn":"{FUNCTION_ARN}:$LATEST","condition":"RetriesExhausted","approximateInvokeCount":3}},{payload}"responseContext":{{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"}},"responsePayload":{{"errorType":"Throttled","errorMessage":"SESv2 throttled"}}}}"#
    )
}

fn tool() -> &'static PathBuf {
    static TOOL: OnceLock<PathBuf> = OnceLock::new();
    TOOL.get_or_init(built_tool)
}

/// Cargo names the binary even when the feature is off and it was not
/// built (a stale copy may sit there), so it is trusted only with the feature.
#[cfg(feature = "redrive")]
fn built_tool() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lambda-redrive"))
}

/// Builds the tool with its feature, as `cargo test -p shared --features
/// redrive` would have.
#[cfg(not(feature = "redrive"))]
fn built_tool() -> PathBuf {
    let status = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "-p",
            "shared",
            "--features",
            "redrive",
            "--bin",
            "lambda-redrive",
        ])
        .current_dir(workspace_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "lambda-redrive builds");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("debug/lambda-redrive")
}

struct Run {
    code: Option<i32>,
    stdout: String,
}

/// Runs the tool as an operator would, aimed at moto and the stand-in.
async fn run(moto: &Moto, lambda: &InvokeStandIn, queue_url: &str, extra: &[&str]) -> Run {
    let lambda_env = [("AWS_ENDPOINT_URL_LAMBDA".to_owned(), lambda.endpoint())];
    run_with(moto, &lambda_env, queue_url, extra).await
}

/// Runs the tool aimed at moto's SQS, with `env` (Lambda's endpoint) added.
async fn run_with(moto: &Moto, env: &[(String, String)], queue_url: &str, extra: &[&str]) -> Run {
    let mut command = std::process::Command::new(tool());
    command
        .env_clear()
        .env("AWS_ENDPOINT_URL_SQS", moto.endpoint())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .args(["--queue-url", queue_url, "--function", FUNCTION])
        .args(extra);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("joined")
        .expect("lambda-redrive starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!(
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr).into_owned()
    );
    Run {
        code: output.status.code(),
        stdout,
    }
}

async fn queue(moto: &Moto, name: &str) -> (aws_sdk_sqs::Client, String) {
    let sqs = aws_sdk_sqs::Client::new(&moto.sdk_config().await);
    let url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("moto creates the queue")
        .queue_url
        .expect("a queue URL");
    (sqs, url)
}

/// Sends `body` as Lambda would: dead-letter messages carry the error.
async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str, dead_letter_error: Option<&str>) {
    let mut request = sqs.send_message().queue_url(url).message_body(body);
    if let Some(error) = dead_letter_error {
        request = request.message_attributes(
            "ErrorMessage",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(error)
                .build()
                .expect("complete"),
        );
    }
    request.send().await.expect("moto takes the message");
}

/// (visible, in flight) message counts; moto counts exactly.
async fn counts(sqs: &aws_sdk_sqs::Client, url: &str) -> (u64, u64) {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("moto answers")
        .attributes
        .unwrap_or_default();
    let count = |name: QueueAttributeName| {
        attributes
            .get(&name)
            .and_then(|v| v.parse().ok())
            .unwrap_or(u64::MAX)
    };
    (
        count(QueueAttributeName::ApproximateNumberOfMessages),
        count(QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

/// Bodies of the messages visible now (received with no wait, then handed back).
async fn visible_bodies(sqs: &aws_sdk_sqs::Client, url: &str) -> Vec<String> {
    let messages = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .expect("moto answers")
        .messages
        .unwrap_or_default();
    let mut bodies: Vec<String> = messages.into_iter().filter_map(|m| m.body).collect();
    bodies.sort();
    bodies
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letter_and_destination_messages_are_redriven_and_a_second_run_does_nothing() {
    let moto = Moto::start();
    let lambda = InvokeStandIn::start(None).await.unwrap();
    let (sqs, url) = queue(&moto, "ses-dlq").await;
    let destination_payload = r#"{"Records":[{"EventSource":"aws:sns","Sns":{"Message":"{\"notificationType\":\"Complaint\"}"}}]}"#;
    send(
        &sqs,
        &url,
        SNS_EVENT,
        Some("Task timed out after 30.00 seconds"),
    )
    .await;
    send(
        &sqs,
        &url,
        &destination_record(Some(destination_payload)),
        None,
    )
    .await;

    let first = run(&moto, &lambda, &url, &[]).await;
    assert_eq!(first.code, Some(0), "{}", first.stdout);
    let invokes = lambda.invokes();
    let mut payloads: Vec<&str> = invokes.iter().map(|i| i.payload.as_str()).collect();
    payloads.sort();
    let mut expected = [destination_payload, SNS_EVENT];
    expected.sort();
    assert_eq!(payloads, expected, "the events, byte for byte");
    for invoke in &invokes {
        assert_eq!(invoke.function, FUNCTION);
        assert_eq!(invoke.invocation_type.as_deref(), Some("RequestResponse"));
    }
    assert!(first.stdout.contains("redriven"), "{}", first.stdout);
    assert!(
        first.stdout.contains("dead-letter event") && first.stdout.contains("Task timed out"),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("destination record (RetriesExhausted, 3 attempts)"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("2 received, 2 redriven"),
        "{}",
        first.stdout
    );
    assert_eq!(counts(&sqs, &url).await, (0, 0), "both deleted");

    let second = run(&moto, &lambda, &url, &[]).await;
    assert_eq!(second.code, Some(0), "{}", second.stdout);
    assert!(second.stdout.contains("0 received"), "{}", second.stdout);
    assert_eq!(lambda.invokes().len(), 2, "nothing invoked again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_function_error_keeps_its_message_and_the_others_still_go() {
    let moto = Moto::start();
    let lambda = InvokeStandIn::start(Some("poison")).await.unwrap();
    let (sqs, url) = queue(&moto, "transcode-failures").await;
    let poison = destination_record(Some(
        r#"{"Records":[{"s3":{"object":{"key":"poison.mp4"}}}]}"#,
    ));
    send(&sqs, &url, r#"{"Records":[{"n":1}]}"#, Some("boom")).await;
    send(&sqs, &url, &poison, None).await;
    send(
        &sqs,
        &url,
        &destination_record(Some(r#"{"Records":[{"n":3}]}"#)),
        None,
    )
    .await;

    let first = run(&moto, &lambda, &url, &[]).await;
    assert_eq!(first.code, Some(1), "a message was left: {}", first.stdout);
    assert_eq!(
        lambda.invokes().len(),
        3,
        "the poison message did not stop the others"
    );
    assert!(
        first.stdout.lines().any(|l| l.starts_with("left")
            && l.contains(
                "function error Unhandled: StandInFailure: the stand-in refused this payload"
            )),
        "{}",
        first.stdout
    );
    assert!(
        first
            .stdout
            .contains("3 received, 2 redriven, 1 left (1 function error)"),
        "{}",
        first.stdout
    );
    // Left visible at once, so it can be retried now, not in 20 minutes.
    assert_eq!(counts(&sqs, &url).await, (1, 0));
    assert_eq!(visible_bodies(&sqs, &url).await, [poison]);

    // The next run tries only what is left, once.
    let second = run(&moto, &lambda, &url, &[]).await;
    assert_eq!(second.code, Some(1), "{}", second.stdout);
    let invokes = lambda.invokes();
    assert_eq!(invokes.len(), 4);
    assert!(invokes[3].payload.contains("poison.mp4"));
    assert!(
        second.stdout.contains("1 received, 0 redriven, 1 left"),
        "{}",
        second.stdout
    );
    assert_eq!(counts(&sqs, &url).await, (1, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_message_is_reported_with_its_field_and_kept() {
    let moto = Moto::start();
    let lambda = InvokeStandIn::start(None).await.unwrap();
    let (sqs, url) = queue(&moto, "malformed").await;
    let without_payload = destination_record(None);
    send(&sqs, &url, &without_payload, None).await;
    send(&sqs, &url, "not json at all", None).await;
    send(&sqs, &url, SNS_EVENT, None).await;

    let dry = run(&moto, &lambda, &url, &["--dry-run"]).await;
    assert_eq!(
        dry.code,
        Some(1),
        "a dry run still flags what cannot go: {}",
        dry.stdout
    );
    assert!(lambda.invokes().is_empty(), "a dry run invokes nothing");
    assert!(dry.stdout.contains("would redrive"), "{}", dry.stdout);
    assert_eq!(
        counts(&sqs, &url).await,
        (3, 0),
        "a dry run deletes nothing"
    );

    let run = run(&moto, &lambda, &url, &[]).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("malformed: requestPayload: missing from the destination record"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("malformed: body: not JSON"),
        "{}",
        run.stdout
    );
    assert_eq!(lambda.invokes().len(), 1, "only the good message went");
    let mut kept = vec![without_payload, "not json at all".to_owned()];
    kept.sort();
    assert_eq!(visible_bodies(&sqs, &url).await, kept);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_bounds_the_run() {
    let moto = Moto::start();
    let lambda = InvokeStandIn::start(None).await.unwrap();
    let (sqs, url) = queue(&moto, "bounded").await;
    for i in 0..5 {
        send(&sqs, &url, &format!(r#"{{"Records":[{{"n":{i}}}]}}"#), None).await;
    }
    let bounded = run(&moto, &lambda, &url, &["--max", "3"]).await;
    assert_eq!(bounded.code, Some(0), "{}", bounded.stdout);
    assert_eq!(lambda.invokes().len(), 3);
    assert_eq!(
        counts(&sqs, &url).await,
        (2, 0),
        "the rest untouched and visible"
    );
}

/// The real ses-bounce-handler under `cargo lambda watch` (the emulator
/// serves Lambda's Invoke API), its table in moto: a dead-lettered bounce is
/// applied and deleted; an event the function refuses stays, as the
/// function's own error says.
#[tokio::test(flavor = "multi_thread")]
async fn the_real_ses_function_takes_back_its_dead_letters() {
    let moto = Moto::start();
    let db = moto.dynamodb().await;
    // The table named in the function's [package.metadata.lambda.env],
    // which cargo lambda watch applies over its own environment.
    suite_tests::moto::create_table(&db, "suppression", &["address"]).await;
    let env = moto.env();
    let emulator = suite_tests::emulator::Emulator::start(&env);
    let (sqs, url) = queue(&moto, "ses-bounce-dlq").await;
    let bounce = std::fs::read_to_string(
        workspace_root().join("events/ses-bounce-handler/01-permanent-bounce-two-recipients.json"),
    )
    .unwrap();
    let refused = r#"{"detail":"not an SNS or SQS event"}"#;
    send(&sqs, &url, &bounce, Some("SESv2 throttled")).await;
    send(&sqs, &url, refused, Some("unsupported")).await;

    let lambda_env = [(
        "AWS_ENDPOINT_URL_LAMBDA".to_owned(),
        format!("http://127.0.0.1:{}", emulator.port),
    )];
    let first = run_with(&moto, &lambda_env, &url, &[]).await;
    assert_eq!(first.code, Some(1), "{}", first.stdout);
    // The emulator answers a function error with HTTP 500 where Lambda
    // answers 200 and X-Amz-Function-Error (the stand-in tests play that),
    // so here it reads as a failed invoke; either way the message stays.
    assert!(
        first.stdout.contains("2 received, 1 redriven, 1 left"),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.lines().any(|l| l.starts_with("left")
            && l.contains("UnsupportedEvent")
            && l.contains("the event has no Records list")),
        "the function's own error is shown: {}",
        first.stdout
    );
    let rows = suite_tests::moto::scan(&db, "suppression").await;
    let mut addresses: Vec<&str> = rows
        .iter()
        .map(|r| r["address"].as_s().unwrap().as_str())
        .collect();
    addresses.sort();
    assert_eq!(addresses, ["jane.doe@example.com", "john.roe@example.com"]);
    assert_eq!(visible_bodies(&sqs, &url).await, [refused.to_owned()]);

    let second = run_with(&moto, &lambda_env, &url, &[]).await;
    assert_eq!(second.code, Some(1), "{}", second.stdout);
    assert!(
        second.stdout.contains("1 received, 0 redriven, 1 left"),
        "only the refused event is tried again: {}",
        second.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_at_once_invoke_each_message_once() {
    let moto = Moto::start();
    let lambda = InvokeStandIn::start(None).await.unwrap();
    let (sqs, url) = queue(&moto, "two-operators").await;
    for i in 0..30 {
        send(&sqs, &url, &format!(r#"{{"Records":[{{"n":{i}}}]}}"#), None).await;
    }
    let (one, two) = tokio::join!(
        run(&moto, &lambda, &url, &[]),
        run(&moto, &lambda, &url, &[])
    );
    assert_eq!(
        (one.code, two.code),
        (Some(0), Some(0)),
        "{}\n{}",
        one.stdout,
        two.stdout
    );
    let mut payloads: Vec<String> = lambda.invokes().into_iter().map(|i| i.payload).collect();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), 30, "every message once");
    assert_eq!(lambda.invokes().len(), 30, "none twice");
    assert_eq!(counts(&sqs, &url).await, (0, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_queue_that_cannot_be_read_stops_the_run_with_its_own_exit_status() {
    let moto = Moto::start();
    let lambda = InvokeStandIn::start(None).await.unwrap();
    let missing = format!("{}/123456789012/no-such-queue", moto.endpoint());
    let stopped = run(&moto, &lambda, &missing, &[]).await;
    assert_eq!(stopped.code, Some(3), "{}", stopped.stdout);
    assert!(
        stopped
            .stdout
            .contains("0 received, 0 redriven; stopped early: SQS ReceiveMessage: "),
        "{}",
        stopped.stdout
    );
    assert!(lambda.invokes().is_empty());
}

/// Lambda's Invoke API answering as when the function may well have run
/// but the call failed anyway: HTTP 500 `ServiceException` for payloads
/// with "flaky", 429 `TooManyRequestsException` for those with
/// "throttled" (the SDK's standard retry sends both again), 200 for the
/// rest. Returns the endpoint, every payload received, and the server.
async fn failing_lambda() -> (String, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    let payloads = Arc::new(Mutex::new(Vec::new()));
    let seen = payloads.clone();
    let (addr, task) = suite_tests::http::serve(0, move |request: suite_tests::http::Received| {
        let seen = seen.clone();
        async move {
            let payload = String::from_utf8_lossy(&request.body).into_owned();
            seen.lock().unwrap().push(payload.clone());
            let (status, error) = if payload.contains("flaky") {
                (500, Some("ServiceException"))
            } else if payload.contains("throttled") {
                (429, Some("TooManyRequestsException"))
            } else {
                (200, None)
            };
            let mut response = suite_tests::http::reply(
                status,
                match error {
                    Some(code) => {
                        format!(r#"{{"Type":"Service","message":"{code} from the stand-in"}}"#)
                    }
                    None => "null".to_owned(),
                },
            );
            if let Some(code) = error {
                response
                    .headers_mut()
                    .insert("x-amzn-errortype", code.parse().unwrap());
            }
            response
        }
    })
    .await
    .expect("the stand-in starts");
    (format!("http://{addr}"), payloads, task)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_invoke_is_sent_once_and_left_for_the_next_run() {
    let moto = Moto::start();
    let (endpoint, payloads, server) = failing_lambda().await;
    let (sqs, url) = queue(&moto, "failing-invokes").await;
    for body in [
        r#"{"Records":[{"flaky":1}]}"#,
        r#"{"Records":[{"throttled":2}]}"#,
        r#"{"Records":[{"n":3}]}"#,
    ] {
        send(&sqs, &url, body, None).await;
    }
    let lambda_env = [("AWS_ENDPOINT_URL_LAMBDA".to_owned(), endpoint)];
    let run = run_with(&moto, &lambda_env, &url, &[]).await;
    server.abort();
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let mut sent = payloads.lock().unwrap().clone();
    sent.sort();
    assert_eq!(
        sent,
        [
            r#"{"Records":[{"flaky":1}]}"#,
            r#"{"Records":[{"n":3}]}"#,
            r#"{"Records":[{"throttled":2}]}"#,
        ],
        "each event sent once: a failed invoke may have run the function"
    );
    assert!(
        run.stdout
            .contains("3 received, 1 redriven, 2 left (2 invoke failed)"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains("ServiceException") && run.stdout.contains("TooManyRequestsException"),
        "{}",
        run.stdout
    );
    assert_eq!(counts(&sqs, &url).await, (2, 0), "left, visible at once");
}
