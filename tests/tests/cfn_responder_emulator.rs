//! The cfn-responder sample events through the `cargo lambda` emulator,
//! against moto and a CloudFormation stand-in: what `make demo` shows.

use serde_json::Value;
use std::path::PathBuf;
use suite_tests::emulator::Emulator;
use suite_tests::moto::Moto;
use suite_tests::process::workspace_root;
use suite_tests::sink::Sink;

fn sample(name: &str) -> Value {
    let path: PathBuf = workspace_root().join("events/cfn-responder").join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn sample_events_play_a_stack_lifecycle_through_the_emulator() {
    let moto = Moto::start();
    let sink = Sink::start(0).await.unwrap();
    let mut env = moto.env();
    env.push(("ALLOW_LOCAL_RESPONSE_URL".into(), "true".into()));
    env.push(("AWS_LAMBDA_LOG_FORMAT".into(), "JSON".into()));
    let emulator = Emulator::start(&env);

    let mut answers = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(workspace_root().join("events/cfn-responder"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    for name in &names {
        let mut event = sample(name);
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
        sample(&names[1])["PhysicalResourceId"]
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
