//! The real binary under a Runtime API: init, deadline and logs as Lambda
//! would see them.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use suite_tests::function::FunctionProcess;
use suite_tests::http::{Received, reply, serve};
use suite_tests::running::{Env, Running};
use suite_tests::sink::Sink;

/// The binary with exactly the variables `pairs`.
async fn start(pairs: &[(&str, &str)]) -> Running {
    Running::start(
        env!("CARGO_BIN_EXE_cfn-responder"),
        &Env::new().extend(pairs),
    )
    .await
}

#[tokio::test]
async fn bad_configuration_still_answers_failed() {
    let sink = Sink::start(0).await.unwrap();
    let function = start(&[
        ("ALLOW_LOCAL_RESPONSE_URL", "true"),
        ("TIMEOUT_MARGIN_MS", "soon"),
        ("RESPONSE_PUT_MAX_ATTEMPTS", "0"),
    ])
    .await;
    let sent = request(
        "Create",
        "r1",
        &sink.url("r1"),
        "Custom::AmiLookup",
        json!({}),
    );
    let invocation = function
        .invoke_within(sent.clone(), Duration::from_secs(20))
        .await;
    assert!(invocation.result.is_ok(), "{:?}", invocation.result);
    let body = the_one_response(&sink, "r1", &sent);
    assert_eq!(body["Status"], "FAILED");
    let reason = body["Reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the function failed to initialise: invalid configuration:"),
        "{reason}"
    );
    assert!(
        reason.contains("TIMEOUT_MARGIN_MS=\"soon\"")
            && reason.contains("RESPONSE_PUT_MAX_ATTEMPTS"),
        "{reason}"
    );
}

#[tokio::test]
async fn hanging_aws_call_is_answered_failed_before_the_deadline() {
    let sink = Sink::start(0).await.unwrap();
    // An EC2 endpoint that accepts and never answers.
    let (ec2, _task) = serve(0, |_: Received| async {
        tokio::time::sleep(Duration::from_secs(600)).await;
        reply(500, "")
    })
    .await
    .unwrap();
    let ec2_url = format!("http://{ec2}");
    let function = start(&[
        ("ALLOW_LOCAL_RESPONSE_URL", "true"),
        ("TIMEOUT_MARGIN_MS", "1500"),
        ("AWS_ENDPOINT_URL_EC2", &ec2_url),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ])
    .await;
    let props = json!({"Owners": "amazon", "NamePattern": "al2023-ami-*", "Architecture": "arm64"});
    let sent = request("Create", "r1", &sink.url("r1"), "Custom::AmiLookup", props);
    let invocation = function
        .invoke_within(sent.clone(), Duration::from_secs(5))
        .await;
    assert!(
        invocation.duration() < Duration::from_secs(5),
        "answered within the 5 s deadline"
    );
    assert!(
        invocation.duration() >= Duration::from_millis(3000),
        "used the time up to the margin"
    );
    let body = the_one_response(&sink, "r1", &sent);
    assert_eq!(body["Status"], "FAILED");
    assert!(
        body["Reason"].as_str().unwrap().starts_with("timed out"),
        "{body}"
    );
}

/// The JSON log lines that `pick` selects, waiting up to 5 s for `count`.
async fn log_lines(
    function: &FunctionProcess,
    count: usize,
    pick: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let found: Vec<Value> = function
            .logs()
            .into_iter()
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .filter(|l| pick(l))
            .collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "expected {count} matching lines: {:?}",
            function.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Powertools' keys and the request's correlation ids at the top level, the
/// cold start on the first invocation only; the answers and the PUT retry
/// in the EMF lines, under the namespace and stack the environment names.
#[tokio::test]
async fn json_logs_and_metrics_fit_powertools_and_the_stack() {
    let sink = Sink::start(0).await.unwrap();
    let function = start(&[
        ("ALLOW_LOCAL_RESPONSE_URL", "true"),
        ("METRICS_NAMESPACE", "TeamSuite"),
        ("STACK_NAME", "stack-a"),
        ("POWERTOOLS_SERVICE_NAME", "custom-resources"),
    ])
    .await;
    // A FAILED answer whose PUT needs a retry.
    sink.script(&[503]);
    let failed = request(
        "Create",
        "logs-1",
        &sink.url("logs-1"),
        "Custom::Nope",
        json!({}),
    );
    function
        .invoke_within(failed, Duration::from_secs(20))
        .await;
    // A SUCCESS answer: the Delete of an id never issued touches nothing.
    let never_issued = delete(
        "logs-2",
        &sink.url("logs-2"),
        "Custom::Nope",
        "never-issued",
        json!({}),
    );
    function
        .invoke_within(never_issued, Duration::from_secs(20))
        .await;
    assert_eq!(sink.received("logs-1").len(), 2, "one retry");

    let delivered = log_lines(function.process(), 2, |l| {
        l["message"] == "response delivered"
    })
    .await;
    for (line, request_id, cold_start) in [
        (&delivered[0], "logs-1", true),
        (&delivered[1], "logs-2", false),
    ] {
        assert_eq!(line["level"], "INFO", "{line}");
        assert_eq!(line["service"], "custom-resources", "{line}");
        assert_eq!(line["cold_start"], cold_start, "{line}");
        assert!(
            line["timestamp"].as_str().is_some_and(|t| t.contains('T')),
            "{line}"
        );
        assert_eq!(line["stack_id"], STACK_ID, "{line}");
        assert_eq!(line["request_id"], request_id, "{line}");
        assert_eq!(line["logical_resource_id"], "Thing", "{line}");
        assert_eq!(line["resource_type"], "Custom::Nope", "{line}");
        assert_eq!(
            line["xray_trace_id"], "1-00000000-000000000000000000000000",
            "{line}"
        );
        assert!(
            line.get("span").is_none() && line.get("spans").is_none(),
            "{line}"
        );
    }
    assert_eq!(
        delivered[0]["function_request_id"],
        "00000000-0000-4000-8000-000000000001"
    );
    assert_eq!(
        delivered[1]["function_request_id"],
        "00000000-0000-4000-8000-000000000002"
    );

    let emf = log_lines(function.process(), 3, |l| l.get("_aws").is_some()).await;
    for line in &emf {
        let def = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(def["Namespace"], "TeamSuite", "{line}");
        assert_eq!(def["Dimensions"], json!([["Stack", "Function"]]), "{line}");
        assert_eq!(line["Stack"], "stack-a", "{line}");
        assert_eq!(line["Function"], "cfn-responder", "{line}");
    }
    let total = |name: &str| emf.iter().filter_map(|l| l[name].as_u64()).sum::<u64>();
    assert_eq!(total("ColdStart"), 1, "{emf:?}");
    assert_eq!(total("AnswersFailed"), 1, "{emf:?}");
    assert_eq!(total("AnswersSuccess"), 1, "{emf:?}");
    assert_eq!(total("PutRetries"), 1, "{emf:?}");
    assert_eq!(total("PutTimeouts"), 0, "{emf:?}");
    assert_eq!(total("PutRejected"), 0, "{emf:?}");
}

/// A 4xx from the ResponseURL is final and leaves the stack waiting: it is
/// counted as PutRejected (the alarm's metric), without retries.
#[tokio::test]
async fn a_response_cloudformation_refuses_is_counted_as_put_rejected() {
    let sink = Sink::start(0).await.unwrap();
    let function = start(&[("ALLOW_LOCAL_RESPONSE_URL", "true")]).await;
    sink.script(&[403]);
    let sent = request(
        "Create",
        "refused-1",
        &sink.url("refused-1"),
        "Custom::Nope",
        json!({}),
    );
    function.invoke_within(sent, Duration::from_secs(20)).await;
    assert_eq!(sink.received("refused-1").len(), 1, "a 4xx is not retried");
    let emf = log_lines(function.process(), 1, |l| l.get("AnswersFailed").is_some()).await;
    assert_eq!(emf[0]["PutRejected"], 1, "{}", emf[0]);
    assert_eq!(emf[0]["PutRetries"], 0, "{}", emf[0]);
}

/// The real HTTPS/HTTP transport's attempt timeout shows as PutTimeouts, and
/// an answer that could not be delivered still counts as sent.
#[tokio::test]
async fn put_attempts_without_a_reply_are_counted_as_timeouts() {
    let sink = Sink::start(0).await.unwrap();
    // Longer than the 5 s attempt timeout.
    sink.delay_replies(Duration::from_secs(7));
    let function = start(&[
        ("ALLOW_LOCAL_RESPONSE_URL", "true"),
        ("RESPONSE_PUT_MAX_ATTEMPTS", "2"),
    ])
    .await;
    let sent = request(
        "Create",
        "slow-1",
        &sink.url("slow-1"),
        "Custom::Nope",
        json!({}),
    );
    let invocation = function.invoke_within(sent, Duration::from_secs(30)).await;
    assert_eq!(
        invocation.result.unwrap_err()["errorType"],
        "ResponseNotDelivered"
    );
    let emf = log_lines(function.process(), 1, |l| l.get("PutTimeouts").is_some()).await;
    assert_eq!(emf[0]["PutTimeouts"], 2, "{}", emf[0]);
    assert_eq!(emf[0]["PutRetries"], 1, "{}", emf[0]);
    assert_eq!(emf[0]["AnswersFailed"], 1, "{}", emf[0]);
}

/// The response goes straight to the ResponseURL: a proxy named in the
/// environment sees nothing of it.
#[tokio::test]
async fn the_response_put_ignores_proxy_variables() {
    let (sink, proxy) = (Sink::start(0).await.unwrap(), Sink::start(0).await.unwrap());
    let proxy_url = format!("http://{}", proxy.addr);
    let function = start(&[
        ("ALLOW_LOCAL_RESPONSE_URL", "true"),
        ("HTTP_PROXY", &proxy_url),
        ("http_proxy", &proxy_url),
        ("ALL_PROXY", &proxy_url),
    ])
    .await;
    let sent = request("Create", "r1", &sink.url("r1"), "Custom::Nope", json!({}));
    let invocation = function
        .invoke_within(sent.clone(), Duration::from_secs(20))
        .await;
    assert!(invocation.result.is_ok(), "{:?}", invocation.result);
    assert_eq!(the_one_response(&sink, "r1", &sent)["Status"], "FAILED");
    assert!(
        proxy.all_received().is_empty(),
        "the proxy got the response"
    );
}
