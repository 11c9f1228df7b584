//! The real binary under a Runtime API: init, deadline and logs as Lambda
//! would see them.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use suite_tests::function::FunctionProcess;
use suite_tests::http::{Received, reply, serve};
use suite_tests::moto::Moto;
use suite_tests::runtime_api::RuntimeApi;
use suite_tests::sink::Sink;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_cfn-responder"))
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn bad_configuration_still_answers_failed() {
    let (api, sink) = (
        RuntimeApi::start().await.unwrap(),
        Sink::start(0).await.unwrap(),
    );
    let _function = FunctionProcess::spawn(
        binary(),
        &api.host_port(),
        &env(&[
            ("ALLOW_LOCAL_RESPONSE_URL", "true"),
            ("TIMEOUT_MARGIN_MS", "soon"),
            ("RESPONSE_PUT_MAX_ATTEMPTS", "0"),
        ]),
    );
    let sent = request(
        "Create",
        "r1",
        &sink.url("r1"),
        "Custom::AmiLookup",
        json!({}),
    );
    let invocation = api
        .invoke(sent.clone(), Duration::from_secs(20))
        .await
        .unwrap();
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
    let (api, sink) = (
        RuntimeApi::start().await.unwrap(),
        Sink::start(0).await.unwrap(),
    );
    // An EC2 endpoint that accepts and never answers.
    let (ec2, _task) = serve(0, |_: Received| async {
        tokio::time::sleep(Duration::from_secs(600)).await;
        reply(500, "")
    })
    .await
    .unwrap();
    let ec2_url = format!("http://{ec2}");
    let _function = FunctionProcess::spawn(
        binary(),
        &api.host_port(),
        &env(&[
            ("ALLOW_LOCAL_RESPONSE_URL", "true"),
            ("TIMEOUT_MARGIN_MS", "1500"),
            ("AWS_ENDPOINT_URL_EC2", &ec2_url),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ]),
    );
    let props = json!({"Owners": "amazon", "NamePattern": "al2023-ami-*", "Architecture": "arm64"});
    let sent = request("Create", "r1", &sink.url("r1"), "Custom::AmiLookup", props);
    let invocation = api
        .invoke(sent.clone(), Duration::from_secs(5))
        .await
        .unwrap();
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

#[tokio::test]
async fn json_logs_carry_the_request_fields() {
    let moto = Moto::start();
    let (api, sink) = (
        RuntimeApi::start().await.unwrap(),
        Sink::start(0).await.unwrap(),
    );
    let mut vars = moto.env();
    vars.push(("ALLOW_LOCAL_RESPONSE_URL".into(), "true".into()));
    let function = FunctionProcess::spawn(binary(), &api.host_port(), &vars);
    let props = json!({"Owners": "amazon", "NamePattern": "no-such-*", "Architecture": "arm64"});
    let sent = request(
        "Create",
        "logs-1",
        &sink.url("logs"),
        "Custom::AmiLookup",
        props,
    );
    api.invoke(sent.clone(), Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(the_one_response(&sink, "logs", &sent)["Status"], "FAILED");

    let started = Instant::now();
    let delivered = loop {
        let found = function
            .logs()
            .into_iter()
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .find(|l| l["message"] == "response delivered");
        if let Some(line) = found {
            break line;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no 'response delivered' log: {:?}",
            function.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let span = &delivered["span"];
    assert_eq!(span["stack_id"], STACK_ID);
    assert_eq!(span["request_id"], "logs-1");
    assert_eq!(span["logical_resource_id"], "Thing");
    assert_eq!(span["request_type"], "Create");
    assert_eq!(delivered["level"], "INFO");
}
