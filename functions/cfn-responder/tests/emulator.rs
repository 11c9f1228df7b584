//! The cfn-responder sample events through the `cargo lambda` emulator,
//! against moto and a CloudFormation stand-in: what `make demo` shows.

use serde_json::Value;
use suite_tests::emulator::Emulator;
use suite_tests::events::{sample, samples};
use suite_tests::moto::Moto;
use suite_tests::sink::Sink;

#[tokio::test(flavor = "multi_thread")]
async fn sample_events_play_a_stack_lifecycle_through_the_emulator() {
    let moto = Moto::start();
    let sink = Sink::start(0).await.unwrap();
    let mut env = moto.env();
    env.push(("ALLOW_LOCAL_RESPONSE_URL".into(), "true".into()));
    env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
    let emulator = Emulator::start(&env);

    let mut answers = Vec::new();
    let events = samples("cfn-responder");
    let names: Vec<String> = events.iter().map(|(name, _)| name.clone()).collect();
    for (name, mut event) in events {
        let name = &name;
        assert!(
            event["ResponseURL"]
                .as_str()
                .unwrap()
                .starts_with("https://cloudformation-custom-resource-response-"),
            "{name} carries a real-shaped ResponseURL"
        );
        event["ResponseURL"] = Value::from(sink.url(name));
        let (status, reply) = emulator.invoke("cfn-responder", &event).await.unwrap();
        assert_eq!(status, 200, "{name}: {reply}");
        let received = sink.received(name);
        assert_eq!(received.len(), 1, "{name}: exactly one response");
        assert!(received[0].body.len() <= 4096);
        let body: Value = serde_json::from_slice(&received[0].body).unwrap();
        for field in ["StackId", "RequestId", "LogicalResourceId"] {
            assert_eq!(body[field], event[field], "{name}: {field}");
        }
        answers.push((name.clone(), body));
    }

    let status = |i: usize| answers[i].1["Status"].as_str().unwrap().to_owned();
    let (create, update, delete) = (&answers[0].1, &answers[1].1, &answers[2].1);
    assert_eq!(status(0), "SUCCESS", "{create}");
    assert!(
        create["Data"]["ImageId"]
            .as_str()
            .unwrap()
            .starts_with("ami-")
    );
    assert!(create["Data"]["Name"].as_str().unwrap().contains("x86_64"));
    // The samples' Update and Delete carry the id the Create issues.
    assert_eq!(
        create["PhysicalResourceId"],
        sample("cfn-responder", &names[1])["PhysicalResourceId"]
    );
    assert_eq!(status(1), "SUCCESS", "{update}");
    assert_eq!(
        update["PhysicalResourceId"], create["PhysicalResourceId"],
        "in-place update keeps the id"
    );
    assert!(update["Data"]["Name"].as_str().unwrap().contains("arm64"));
    assert_eq!(status(2), "SUCCESS", "{delete}");
    assert_eq!(status(3), "FAILED");
    assert!(
        answers[3].1["Reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid property Architecture")
    );
    assert_eq!(
        status(4),
        "SUCCESS",
        "Delete after a failed Create is a no-op"
    );
    assert_eq!(status(5), "FAILED");
    assert!(
        answers[5].1["Reason"]
            .as_str()
            .unwrap()
            .starts_with("no available image matches")
    );
    assert_eq!(status(6), "FAILED");
    assert!(
        answers[6].1["Reason"]
            .as_str()
            .unwrap()
            .starts_with("unsupported ResourceType")
    );
}
