//! The launcher binary against moto EC2: one instance per object, duplicates
//! skipped, tags, the launch template, the capacity limit, the reconcile.

mod common;

use common::{AMI, Launcher, notification, start, start_many, tag};
use futures_util::future::join_all;
use serde_json::Value;
use serde_json::json;
use std::path::Path;
use suite_tests::events::sample;
use transcode_launcher::FUNCTION_NAME;
use transcode_launcher::job::{
    TAG_ATTEMPT, TAG_JOB_ID, TAG_SOURCE_BUCKET, TAG_SOURCE_KEY, TAG_TRUNCATED,
};

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
        .invoke(sample(FUNCTION_NAME, "01-put-holiday-video.json"))
        .await
        .unwrap();
    assert_eq!(outcome(&put), "launched", "{put}");
    assert_eq!(
        put["results"][0]["key"],
        "videos/My Holiday+2024 (final).MOV"
    );
    let multipart = launcher
        .invoke(sample(FUNCTION_NAME, "02-multipart-upload-completed.json"))
        .await
        .unwrap();
    assert_eq!(outcome(&multipart), "launched", "{multipart}");
    let duplicate = launcher
        .invoke(sample(FUNCTION_NAME, "03-duplicate-of-01.json"))
        .await
        .unwrap();
    assert_eq!(outcome(&duplicate), "duplicate", "{duplicate}");
    assert_eq!(
        duplicate["results"][0]["instanceId"],
        put["results"][0]["instanceId"]
    );
    let output = launcher
        .invoke(sample(FUNCTION_NAME, "04-key-under-output-prefix.json"))
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
        .invoke(sample(FUNCTION_NAME, "05-folder-marker.json"))
        .await
        .unwrap();
    assert_eq!(folder["results"][0]["reason"], "folder marker");
    let test = launcher
        .invoke(sample(FUNCTION_NAME, "06-s3-test-event.json"))
        .await
        .unwrap();
    assert_eq!(test["testEvent"], true);
    let bridge = launcher
        .invoke(sample(FUNCTION_NAME, "07-eventbridge-object-created.json"))
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
async fn the_capacity_limit_queues_the_record_until_the_reconcile_launches_it() {
    let launcher = start(&[("MAX_RUNNING_JOBS", "2"), ("INSTANCE_TYPE", "t3.small")]).await;
    let mut first = Vec::new();
    for (i, key) in ["a.mp4", "b.mp4"].iter().enumerate() {
        let answer = launcher
            .invoke(notification("uploads", key, 10, &format!("0{i}")))
            .await
            .unwrap();
        assert_eq!(outcome(&answer), "launched", "{answer}");
        first.push(answer);
    }
    let third = notification("uploads", "c.mp4", 10, "03");
    let queued = launcher.invoke(third.clone()).await.unwrap();
    assert_eq!(outcome(&queued), "capacityQueued", "{queued}");
    let reason = queued["results"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("MAX_RUNNING_JOBS=2"), "{reason}");
    let instances = launcher.instances().await;
    assert_eq!(instances.len(), 2);
    assert_eq!(
        instances[0].instance_type().map(|t| t.as_str()),
        Some("t3.small")
    );

    // A worker ends; the next sweep launches the queued job.
    let ended = &first[0]["results"][0];
    launcher
        .put_status(ended["jobId"].as_str().unwrap(), r#"{"status":"success"}"#)
        .await;
    terminate(&launcher, ended["instanceId"].as_str().unwrap()).await;
    let swept = launcher.invoke(tick()).await.unwrap();
    assert_eq!(
        swept["reconciled"]["launchedFromQueue"],
        json!([queued["results"][0]["jobId"]]),
        "{swept}"
    );
    let redelivered = launcher.invoke(third).await.unwrap();
    assert_eq!(outcome(&redelivered), "duplicate", "{redelivered}");
    assert_eq!(launcher.instances().await.len(), 3);
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
    // Inside the source's s3:// URI, carried as base64 data.
    assert!(script.contains(&aws_smithy_types::base64::encode(format!(
        "s3://uploads/{long_key}"
    ))));

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

/// Invokes every event at once; returns (launched answers, refused errors).
async fn burst(launcher: &Launcher, events: &[Value]) -> (Vec<Value>, Vec<Value>) {
    let answers = join_all(events.iter().map(|e| launcher.invoke(e.clone()))).await;
    let (mut launched, mut refused) = (Vec::new(), Vec::new());
    for answer in answers {
        match answer {
            Ok(ok) => launched.push(ok),
            Err(error) => refused.push(error),
        }
    }
    (launched, refused)
}

async fn live_instances(launcher: &Launcher) -> Vec<String> {
    launcher
        .instances()
        .await
        .iter()
        .filter(|i| {
            matches!(
                i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                Some("pending" | "running")
            )
        })
        .filter_map(|i| i.instance_id().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_of_50_uploads_launches_at_most_max_running_jobs() {
    let launcher = start_many(50, &[("MAX_RUNNING_JOBS", "5")]).await;
    let events: Vec<Value> = (0..50)
        .map(|i| notification("uploads", &format!("burst/{i}.mp4"), 10, &format!("{i:03}")))
        .collect();
    let (answers, errors) = burst(&launcher, &events).await;
    let live = live_instances(&launcher).await;
    assert_eq!(
        live.len(),
        5,
        "workers launched by the burst: {}",
        live.len()
    );
    // Beyond capacity is expected and heals itself: no invocation fails.
    assert!(errors.is_empty(), "{errors:?}");
    let with_outcome = |wanted: &str| -> Vec<String> {
        answers
            .iter()
            .filter(|a| outcome(a) == wanted)
            .map(|a| a["results"][0]["jobId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(with_outcome("launched").len(), 5, "{answers:?}");
    let mut queued = with_outcome("capacityQueued");
    assert_eq!(queued.len(), 45, "{answers:?}");
    assert_eq!(launcher.lines_with("\"CapacityQueued\":1", 45).await, 45);
    assert_eq!(launcher.lines_with("\"Failed\":1", 0).await, 0);

    // Workers end round after round; each sweep launches queued jobs into
    // the freed slots, never more than five at once, each job once.
    let mut from_queue: Vec<String> = Vec::new();
    for _round in 0..20 {
        let live = live_instances(&launcher).await;
        assert!(live.len() <= 5, "{} live workers", live.len());
        for instance in launcher.instances().await {
            let id = instance.instance_id().unwrap();
            if live.iter().any(|l| l == id) {
                let job = tag(&instance, TAG_JOB_ID).unwrap();
                launcher
                    .put_status(job, r#"{"status":"success","exitCode":0}"#)
                    .await;
                terminate(&launcher, id).await;
            }
        }
        let swept = launcher.invoke(tick()).await.unwrap();
        let launched = swept["reconciled"]["launchedFromQueue"].as_array().unwrap();
        assert!(launched.len() <= 5, "{swept}");
        from_queue.extend(launched.iter().map(|j| j.as_str().unwrap().to_owned()));
        if from_queue.len() >= queued.len() {
            break;
        }
    }
    queued.sort();
    from_queue.sort();
    assert_eq!(from_queue, queued, "every queued job launched, once");
    let instances = launcher.instances().await;
    assert_eq!(instances.len(), 50, "one worker per upload");
    for job in &queued {
        let workers: Vec<_> = instances
            .iter()
            .filter(|i| tag(i, TAG_JOB_ID) == Some(job.as_str()))
            .collect();
        assert_eq!(workers.len(), 1, "{job}");
        assert_eq!(tag(workers[0], TAG_ATTEMPT), Some("1"), "{job}");
    }
    // A redelivered event of a queued upload finds it launched.
    let again = launcher.invoke(events[49].clone()).await.unwrap();
    assert_eq!(outcome(&again), "duplicate", "{again}");
}

fn tick() -> Value {
    json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event",
           "resources": ["arn:aws:events:us-east-1:123456789012:rule/reconcile"], "detail": {}})
}

/// The live instances carrying the job's tag.
async fn job_instances(launcher: &Launcher, job_id: &str) -> Vec<aws_sdk_ec2::types::Instance> {
    let live = live_instances(launcher).await;
    launcher
        .instances()
        .await
        .into_iter()
        .filter(|i| tag(i, TAG_JOB_ID) == Some(job_id))
        .filter(|i| live.iter().any(|id| Some(id.as_str()) == i.instance_id()))
        .collect()
}

async fn terminate(launcher: &Launcher, instance_id: &str) {
    launcher
        .ec2
        .terminate_instances()
        .instance_ids(instance_id)
        .send()
        .await
        .unwrap();
}

fn status_object(launcher: &Launcher, job_id: &str) -> Option<Value> {
    let path = std::env::temp_dir().join(format!("status-{job_id}-{}.json", std::process::id()));
    let output = std::process::Command::new(suite_tests::process::venv_tool("aws"))
        .args([
            "--endpoint-url",
            &launcher.moto.endpoint(),
            "s3api",
            "get-object",
        ])
        .args([
            "--bucket",
            "outputs",
            "--key",
            &format!("transcoded/{job_id}/status.json"),
        ])
        .arg(&path)
        .envs(launcher.moto.env())
        .output()
        .unwrap();
    if !output.status.success() {
        return None;
    }
    let body = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    Some(serde_json::from_slice(&body).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_worker_is_relaunched_then_failed_and_a_finished_job_is_left_alone() {
    let launcher = start(&[("MAX_ATTEMPTS", "2")]).await;
    launcher.aws(&["s3api", "create-bucket", "--bucket", "outputs"]);
    let lost = launcher
        .invoke(notification("uploads", "lost.mp4", 10, "01"))
        .await
        .unwrap();
    let finished = launcher
        .invoke(notification("uploads", "finished.mp4", 10, "02"))
        .await
        .unwrap();
    let lost_job = lost["results"][0]["jobId"].as_str().unwrap().to_owned();
    let finished_job = finished["results"][0]["jobId"].as_str().unwrap().to_owned();

    // One worker wrote its status and ended; the other died without one.
    let status = std::env::temp_dir().join(format!("finished-{}.json", std::process::id()));
    std::fs::write(&status, r#"{"status":"success"}"#).unwrap();
    launcher.aws(&[
        "s3api",
        "put-object",
        "--bucket",
        "outputs",
        "--key",
        &format!("transcoded/{finished_job}/status.json"),
        "--body",
        status.to_str().unwrap(),
    ]);
    std::fs::remove_file(&status).unwrap();
    for answer in [&lost, &finished] {
        terminate(
            &launcher,
            answer["results"][0]["instanceId"].as_str().unwrap(),
        )
        .await;
    }

    let first = launcher.invoke(tick()).await.unwrap();
    let report = &first["reconciled"];
    assert_eq!(report["relaunched"], json!([lost_job]), "{first}");
    assert_eq!(report["done"], 1, "{first}");
    let second_worker = job_instances(&launcher, &lost_job).await;
    assert_eq!(second_worker.len(), 1, "a new worker for the same job");
    assert_eq!(tag(&second_worker[0], TAG_ATTEMPT), Some("2"));
    assert!(job_instances(&launcher, &finished_job).await.is_empty());
    assert!(status_object(&launcher, &lost_job).is_none());

    // The second worker dies too: MAX_ATTEMPTS=2 is reached.
    terminate(&launcher, second_worker[0].instance_id().unwrap()).await;
    let before = launcher.instances().await.len();
    let second = launcher.invoke(tick()).await.unwrap();
    assert_eq!(
        second["reconciled"]["failed"],
        json!([lost_job]),
        "{second}"
    );
    assert_eq!(
        launcher.instances().await.len(),
        before,
        "no further worker"
    );
    let failure = status_object(&launcher, &lost_job).expect("a failure status.json");
    assert_eq!(failure["status"], "failure", "{failure}");
    assert_eq!(failure["attempts"], 2);
    assert_eq!(failure["source"]["key"], "lost.mp4");
    assert!(
        launcher.lines_with("\"JobsFailed\":1", 1).await >= 1,
        "the JobsFailed metric is emitted"
    );

    // Later sweeps and redeliveries launch nothing.
    let third = launcher.invoke(tick()).await.unwrap();
    assert_eq!(third["reconciled"]["failed"], json!([]), "{third}");
    let redelivered = launcher
        .invoke(notification("uploads", "lost.mp4", 10, "01"))
        .await
        .unwrap();
    assert_eq!(outcome(&redelivered), "duplicate", "{redelivered}");
    assert_eq!(launcher.instances().await.len(), before);
    let finished_status = status_object(&launcher, &finished_job).unwrap();
    assert_eq!(finished_status["status"], "success", "never overwritten");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_that_reports_failure_raises_workers_failed_once_and_is_not_relaunched() {
    let launcher = start(&[]).await;
    let answer = launcher
        .invoke(notification("uploads", "broken.mp4", 10, "01"))
        .await
        .unwrap();
    let job = answer["results"][0]["jobId"].as_str().unwrap().to_owned();
    // As worker.sh writes it when ffmpeg fails.
    let report = json!({"jobId": job, "status": "failure", "exitCode": 2,
        "error": "ffmpeg exited with status 1", "ffmpegExitCode": 1, "timedOut": false});
    launcher.put_status(&job, &report.to_string()).await;
    terminate(
        &launcher,
        answer["results"][0]["instanceId"].as_str().unwrap(),
    )
    .await;

    let first = launcher.invoke(tick()).await.unwrap();
    let failed = &first["reconciled"]["workersFailed"];
    assert_eq!(failed[0]["jobId"], job.as_str(), "{first}");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("ffmpeg exited with status 1"),
        "{first}"
    );
    assert_eq!(first["reconciled"]["done"], 0, "{first}");
    let raised = |logs: &[String]| {
        logs.iter()
            .filter(|l| l.contains("\"WorkersFailed\":1"))
            .count()
    };
    assert_eq!(
        launcher.lines_with("\"WorkersFailed\":1", 1).await,
        1,
        "the WorkersFailed metric"
    );

    // A fixed point: later sweeps and redeliveries count and launch nothing.
    let second = launcher.invoke(tick()).await.unwrap();
    assert_eq!(second["reconciled"]["workersFailed"], json!([]), "{second}");
    assert_eq!(raised(&launcher.logs()), 1);
    let redelivered = launcher
        .invoke(notification("uploads", "broken.mp4", 10, "01"))
        .await
        .unwrap();
    assert_eq!(outcome(&redelivered), "duplicate", "{redelivered}");
    assert_eq!(launcher.instances().await.len(), 1, "no second worker");
    let kept = status_object(&launcher, &job).unwrap();
    assert_eq!(kept, report, "the worker's report is kept as written");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sweeps_at_once_relaunch_each_dead_worker_once() {
    let launcher = start_many(2, &[]).await;
    launcher.aws(&["s3api", "create-bucket", "--bucket", "outputs"]);
    let mut jobs = Vec::new();
    for i in 0..5 {
        let answer = launcher
            .invoke(notification(
                "uploads",
                &format!("dead/{i}.mp4"),
                10,
                &format!("{i:02}"),
            ))
            .await
            .unwrap();
        terminate(
            &launcher,
            answer["results"][0]["instanceId"].as_str().unwrap(),
        )
        .await;
        jobs.push(answer["results"][0]["jobId"].as_str().unwrap().to_owned());
    }
    let (a, b) = tokio::join!(launcher.invoke(tick()), launcher.invoke(tick()));
    let (a, b) = (a.unwrap(), b.unwrap());
    let relaunched = a["reconciled"]["relaunched"].as_array().unwrap().len()
        + b["reconciled"]["relaunched"].as_array().unwrap().len();
    assert_eq!(relaunched, 5, "{a} {b}");
    for job in &jobs {
        let workers = job_instances(&launcher, job).await;
        assert_eq!(workers.len(), 1, "{job}: one new worker");
        assert_eq!(tag(&workers[0], TAG_ATTEMPT), Some("2"));
    }
}

/// The DynamoDB adapter's requests as moto's fuller DynamoDB reads them:
/// conditional puts win once, stale versions lose, jobs round-trip, and the
/// scan returns the active jobs only.
#[tokio::test(flavor = "multi_thread")]
async fn the_jobs_table_adapter_against_moto_dynamodb() {
    use transcode_launcher::aws::dynamodb::DynamoStore;
    use transcode_launcher::event::ObjectCreated;
    use transcode_launcher::jobs::{Job, JobState, Slot};
    use transcode_launcher::ports::JobStore;

    let moto = suite_tests::moto::Moto::start();
    let db = moto.dynamodb().await;
    suite_tests::moto::create_table(&db, "jobs", &["pk"]).await;
    let store = DynamoStore::new(db, "jobs".into());
    let slot = Slot {
        job_id: "tj-1".into(),
        instance_id: Some("i-1".into()),
        attempt: 3,
        expires_at: 100,
    };
    assert_eq!(store.put_slot(0, &slot, None).await.unwrap(), Some(1));
    assert_eq!(store.slot(0).await.unwrap().unwrap().value, slot);
    assert_eq!(store.put_slot(0, &slot, None).await.unwrap(), None);
    assert_eq!(
        store.put_slot(0, &Slot::default(), Some(1)).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        store.put_slot(0, &slot, Some(1)).await.unwrap(),
        None,
        "stale"
    );
    assert_eq!(store.slot(0).await.unwrap().unwrap().value, Slot::default());
    assert_eq!(store.slot(1).await.unwrap(), None);

    let job = Job {
        id: "tj-1".into(),
        object: ObjectCreated {
            bucket: "uploads".into(),
            key: "a b+c.mp4".into(),
            size: Some(10),
            etag: Some("e".into()),
            version_id: Some("v".into()),
            sequencer: Some("01".into()),
        },
        attempt: 1,
        launch_failures: 2,
        state: JobState::Running,
        instance_id: Some("i-1".into()),
        slot: Some(0),
        updated_at: 5,
    };
    assert_eq!(store.put_job(&job, None).await.unwrap(), Some(1));
    let done = Job {
        id: "tj-2".into(),
        state: JobState::Done,
        ..job.clone()
    };
    assert_eq!(store.put_job(&done, None).await.unwrap(), Some(1));
    assert_eq!(store.job("tj-1").await.unwrap().unwrap().value, job);
    let active = store.active_jobs().await.unwrap();
    assert_eq!(active.len(), 1, "{active:?}");
    assert_eq!(active[0].value, job);
}
