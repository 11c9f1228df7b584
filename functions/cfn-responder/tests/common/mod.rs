//! Playing CloudFormation: requests as it sends them, checks on what it gets.
#![allow(dead_code)]

use cfn_responder::cfn::MAX_RESPONSE_BYTES;
use serde_json::{Value, json};
use suite_tests::sink::Sink;

pub const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/demo-app/8f1e2c40-7c1b-11ee-b962-0242ac120002";

/// A request exactly as CloudFormation shapes it (scalars as strings).
pub fn request(
    kind: &str,
    request_id: &str,
    response_url: &str,
    resource_type: &str,
    props: Value,
) -> Value {
    let mut props = props;
    props["ServiceToken"] = json!("arn:aws:lambda:us-east-1:123456789012:function:cfn-responder");
    json!({
        "RequestType": kind,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:cfn-responder",
        "ResponseURL": response_url,
        "StackId": STACK_ID,
        "RequestId": request_id,
        "LogicalResourceId": "Thing",
        "ResourceType": resource_type,
        "ResourceProperties": props,
    })
}

pub fn update(
    request_id: &str,
    url: &str,
    resource_type: &str,
    physical_id: &str,
    old: Value,
    new: Value,
) -> Value {
    let mut r = request("Update", request_id, url, resource_type, new);
    r["PhysicalResourceId"] = json!(physical_id);
    r["OldResourceProperties"] = old;
    r
}

pub fn delete(
    request_id: &str,
    url: &str,
    resource_type: &str,
    physical_id: &str,
    props: Value,
) -> Value {
    let mut r = request("Delete", request_id, url, resource_type, props);
    r["PhysicalResourceId"] = json!(physical_id);
    r
}

/// What CloudFormation checks on every response: exactly one PUT, an empty
/// Content-Type, the ids copied verbatim, the size limit. Returns the body.
pub fn the_one_response(sink: &Sink, id: &str, sent: &Value) -> Value {
    let received = sink.received(id);
    assert_eq!(
        received.len(),
        1,
        "exactly one PUT for {id}, got {}",
        received.len()
    );
    let put = &received[0];
    assert_eq!(put.method, "PUT");
    assert_eq!(
        put.header("content-type"),
        Some(""),
        "Content-Type must be present and empty"
    );
    assert!(
        put.body.len() <= MAX_RESPONSE_BYTES,
        "body is {} bytes",
        put.body.len()
    );
    let body: Value = serde_json::from_slice(&put.body).expect("JSON body");
    for field in ["StackId", "RequestId", "LogicalResourceId"] {
        assert_eq!(body[field], sent[field], "{field} copied verbatim");
    }
    let physical = body["PhysicalResourceId"]
        .as_str()
        .expect("PhysicalResourceId");
    assert!(!physical.is_empty() && physical.len() <= 1024);
    if body["Status"] == "FAILED" {
        assert!(
            body["Reason"].as_str().is_some_and(|r| !r.is_empty()),
            "FAILED needs a Reason"
        );
    }
    body
}
