//! The launcher binary against moto EC2: one instance per object, duplicates
//! skipped, tags, the launch template, the capacity limit.

mod common;

use common::{AMI, notification, sample, start, tag};
use serde_json::Value;
use std::path::Path;
use transcode_launcher::job::{TAG_JOB_ID, TAG_SOURCE_BUCKET, TAG_SOURCE_KEY, TAG_TRUNCATED};

const SAMPLE_BUCKET: &str = "video-uploads-123456789012";

fn outcome(answer: &Value) -> &str {
    answer["results"][0]["outcome"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sample_events_launch_once_per_object_and_skip_the_rest() {
    let launcher = start(&[
        ("INPUT_BUCKET", SAMPLE_BUCKET),
        ("INPUT_PREFIX", "videos"),
        ("OUTPUT_BUCKET", SAMPLE_BUCKET),
        ("OUTPUT_PREFIX", "transcoded"),
    ])
    .await;
    let put = launcher
        .invoke(sample("01-put-holiday-video.json"))
        .await
        .unwrap();
    assert_eq!(outcome(&put), "launched", "{put}");
    assert_eq!(
        put["results"][0]["key"],
        "videos/My Holiday+2024 (final).MOV"
    );
    let multipart = launcher
        .invoke(sample("02-multipart-upload-completed.json"))
        .await
        .unwrap();
    assert_eq!(outcome(&multipart), "launched", "{multipart}");
    let duplicate = launcher
        .invoke(sample("03-duplicate-of-01.json"))
        .await
        .unwrap();
    assert_eq!(outcome(&duplicate), "duplicate", "{duplicate}");
    assert_eq!(
        duplicate["results"][0]["instanceId"],
        put["results"][0]["instanceId"]
    );
    let output = launcher
        .invoke(sample("04-key-under-output-prefix.json"))
        .await
        .unwrap();
    assert_eq!(outcome(&output), "skipped");
    assert!(
        output["results"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("output prefix"),
        "{output}"
    );
    let folder = launcher
        .invoke(sample("05-folder-marker.json"))
        .await
        .unwrap();
    assert_eq!(folder["results"][0]["reason"], "folder marker");
    let test = launcher
        .invoke(sample("06-s3-test-event.json"))
        .await
        .unwrap();
    assert_eq!(test["testEvent"], true);
    let bridge = launcher
        .invoke(sample("07-eventbridge-object-created.json"))
        .await
        .unwrap();
    assert_eq!(outcome(&bridge), "launched", "{bridge}");
    assert_eq!(bridge["results"][0]["key"], "videos/Team+Offsite 2026.mp4");

    let instances = launcher.instances().await;
    assert_eq!(instances.len(), 3, "one instance per object");
    let holiday = instances
        .iter()
        .find(|i| Some(i.instance_id().unwrap()) == put["results"][0]["instanceId"].as_str())
        .unwrap();
    assert_eq!(
        tag(holiday, TAG_SOURCE_KEY),
        Some("videos/My Holiday+2024 (final).MOV")
    );
    assert_eq!(tag(holiday, TAG_SOURCE_BUCKET), Some(SAMPLE_BUCKET));
    assert_eq!(
        tag(holiday, TAG_JOB_ID),
        put["results"][0]["jobId"].as_str()
    );
    assert!(tag(holiday, "Name").unwrap().starts_with("transcode-tj-"));
    // From the launch template.
    assert_eq!(holiday.image_id(), Some(AMI));
    assert_eq!(
        holiday.instance_type().map(|t| t.as_str()),
        Some("c6i.large")
    );
    let behaviour = launcher
        .ec2
        .describe_instance_attribute()
        .instance_id(holiday.instance_id().unwrap())
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::InstanceInitiatedShutdownBehavior)
        .send()
        .await
        .unwrap();
    assert_eq!(
        behaviour
            .instance_initiated_shutdown_behavior()
            .and_then(|b| b.value()),
        Some("terminate")
    );
    let script = launcher.user_data(holiday.instance_id().unwrap()).await;
    assert!(script.starts_with("#!/bin/bash\n"), "{script}");
    assert!(script.contains("set -euo pipefail"));
    assert!(
        !script.contains("My Holiday"),
        "the key travels as base64 only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_capacity_limit_fails_the_record_until_a_worker_ends() {
    let launcher = start(&[("MAX_RUNNING_JOBS", "2"), ("INSTANCE_TYPE", "t3.small")]).await;
    for (i, key) in ["a.mp4", "b.mp4"].iter().enumerate() {
        let answer = launcher
            .invoke(notification("uploads", key, 10, &format!("0{i}")))
            .await
            .unwrap();
        assert_eq!(outcome(&answer), "launched", "{answer}");
    }
    let third = notification("uploads", "c.mp4", 10, "03");
    let refused = launcher.invoke(third.clone()).await.unwrap_err();
    assert_eq!(refused["errorType"], "CapacityReached", "{refused}");
    let message = refused["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("MAX_RUNNING_JOBS=2") && message.contains("c.mp4"),
        "{message}"
    );
    let instances = launcher.instances().await;
    assert_eq!(instances.len(), 2);
    assert_eq!(
        instances[0].instance_type().map(|t| t.as_str()),
        Some("t3.small")
    );

    // A worker terminates itself; Lambda's retry of the event now launches.
    launcher
        .ec2
        .terminate_instances()
        .instance_ids(instances[0].instance_id().unwrap())
        .send()
        .await
        .unwrap();
    let retried = launcher.invoke(third).await.unwrap();
    assert_eq!(outcome(&retried), "launched", "{retried}");
}

#[tokio::test(flavor = "multi_thread")]
async fn long_keys_are_truncated_in_tags_and_bad_keys_fail_clearly() {
    let launcher = start(&[]).await;
    let long_key = format!("{}.mp4", "ß".repeat(300));
    let answer = launcher
        .invoke(notification("uploads", &long_key, 10, "01"))
        .await
        .unwrap();
    assert_eq!(outcome(&answer), "launched", "{answer}");
    let instance = &launcher.instances().await[0];
    let key_tag = tag(instance, TAG_SOURCE_KEY).unwrap();
    assert_eq!(key_tag.chars().count(), 256);
    assert!(key_tag.ends_with('…'));
    assert_eq!(tag(instance, TAG_TRUNCATED), Some(TAG_SOURCE_KEY));
    // The worker still gets the whole key.
    let script = launcher.user_data(instance.instance_id().unwrap()).await;
    assert!(script.contains(&aws_smithy_types::base64::encode(&long_key)));

    let mut bad = notification("uploads", "x.mp4", 10, "02");
    bad["Records"][0]["s3"]["object"]["key"] = "bad%G1.mp4".into();
    let error = launcher.invoke(bad).await.unwrap_err();
    assert_eq!(error["errorType"], "InvalidRecord");
    assert!(
        error["errorMessage"]
            .as_str()
            .unwrap()
            .contains("Records[0].s3.object.key: object key has an invalid percent escape"),
        "{error}"
    );
}

#[tokio::test]
async fn a_loop_or_a_missing_template_fails_init_naming_the_variables() {
    suite_tests::function::assert_init_fails_naming(
        Path::new(env!("CARGO_BIN_EXE_transcode-launcher")),
        &[
            ("AWS_REGION", "us-east-1"),
            ("INPUT_BUCKET", "media"),
            ("OUTPUT_BUCKET", "media"),
            ("OUTPUT_PREFIX", "/"),
        ],
        &[
            "OUTPUT_BUCKET/OUTPUT_PREFIX",
            "LAUNCH_TEMPLATE_ID or LAUNCH_TEMPLATE_NAME",
        ],
    )
    .await;
}
