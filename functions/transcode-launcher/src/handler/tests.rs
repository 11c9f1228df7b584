use super::*;
use crate::event::ObjectCreated;
use crate::launcher::tests as launcher_tests;
use crate::testing::{InMemoryFleet, InMemoryJobs, InMemoryStatus};
use serde_json::json;

fn notification(key: &str) -> Value {
    json!({"Records": [{
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "in"},
               "object": {"key": key, "size": 5, "eTag": "e", "sequencer": "0A"}}
    }]})
}

fn created(event: &Value) -> ObjectCreated {
    match parse(event).unwrap() {
        Event::Records(records) => match &records[0] {
            Record::Created(object) => object.clone(),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// The event's kind is told as it always was: a test event first,
/// then a `Records` field that is there (null included), then
/// EventBridge's source and detail-type; fields that are not strings
/// are absent, and a payload that is no object is unsupported.
#[test]
fn the_kind_of_event_is_told_apart_in_its_order() {
    let test = json!({"Event": "s3:TestEvent", "Records": 5});
    assert_eq!(parse(&test).unwrap(), Event::Test);
    for records in [json!({"Records": null}), json!({"Event": 5, "Records": {}})] {
        assert_eq!(
            parse(&records).unwrap_err().to_string(),
            "unsupported event: Records: expected an array of S3 notification records"
        );
    }
    let tick = json!({"source": ["aws.events"], "detail-type": "Scheduled Event"});
    let error = parse(&tick).unwrap_err().to_string();
    assert!(
        error.ends_with("got source None, detail-type Some(\"Scheduled Event\")"),
        "{error}"
    );
    for no_object in [json!(["s3:TestEvent"]), json!("x")] {
        let error = parse(&no_object).unwrap_err().to_string();
        assert!(
            error.ends_with("got source None, detail-type None"),
            "{error}"
        );
    }
}

#[test]
fn notification_keys_are_form_decoded() {
    for (raw, key) in [
        (
            "videos/My+Holiday%2B2024+%28final%29.MOV",
            "videos/My Holiday+2024 (final).MOV",
        ),
        ("a%20b.mp4", "a b.mp4"),
        ("%E5%8B%95%E7%94%BB.mp4", "動画.mp4"),
    ] {
        assert_eq!(created(&notification(raw)).key, key);
    }
}

#[test]
fn eventbridge_keys_keep_plus() {
    let event = json!({
        "source": "aws.s3", "detail-type": "Object Created",
        "detail": {"bucket": {"name": "in"},
                   "object": {"key": "a+b%20c.mp4", "size": 1, "etag": "e",
                              "version-id": "v1", "sequencer": "0B"}}
    });
    let object = created(&event);
    assert_eq!(object.key, "a+b c.mp4");
    assert_eq!(object.version_id.as_deref(), Some("v1"));
}

#[test]
fn invalid_escapes_name_the_field() {
    let Event::Records(records) = parse(&notification("bad%zz.mp4")).unwrap() else {
        panic!()
    };
    assert_eq!(
        records[0],
        Record::Invalid(
            "Records[0].s3.object.key: object key has an invalid percent escape at byte 3".into()
        )
    );
}

#[test]
fn test_event_and_other_events() {
    let test = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "in"});
    assert_eq!(parse(&test).unwrap(), Event::Test);
    let tick = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
    assert_eq!(parse(&tick).unwrap(), Event::Reconcile);
    let removed =
        json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete"}]});
    assert_eq!(
        parse(&removed).unwrap(),
        Event::Records(vec![Record::NotCreated {
            event_name: "ObjectRemoved:Delete".into()
        }])
    );
    assert!(
        parse(&json!({"hello": 1}))
            .unwrap_err()
            .to_string()
            .contains("Records")
    );
}

/// The answers, byte for byte as the `serde_json::Value` they were built
/// as before (objects list their keys in alphabetical order).
#[test]
fn answers_serialize_as_before() {
    let every_field = RecordResult {
        outcome: Outcome::Failed,
        bucket: Some("in".into()),
        key: Some("a.mp4".into()),
        job_id: Some("tj-1".into()),
        instance_id: Some("i-1".into()),
        reason: Some("why".into()),
        failure: Some(Failure::LaunchFailed),
    };
    let few_fields = RecordResult {
        outcome: Outcome::CapacityQueued,
        bucket: None,
        key: None,
        job_id: None,
        instance_id: None,
        reason: None,
        failure: None,
    };
    let results = vec![every_field, few_fields];
    let answer = Output::Records {
        results: results.iter().map(RecordSummary::from).collect(),
        test_event: false,
    };
    let before = json!({ "results": results });
    assert_eq!(serde_json::to_string(&answer).unwrap(), before.to_string());

    let test = Output::Records {
        results: Vec::new(),
        test_event: true,
    };
    let before = json!({"results": [], "testEvent": true});
    assert_eq!(serde_json::to_string(&test).unwrap(), before.to_string());

    let report = ReconcileReport {
        running: 1,
        done: 2,
        workers_failed: vec![WorkerFailure {
            job_id: "tj-1".into(),
            reason: "ffmpeg".into(),
        }],
        relaunched: vec!["tj-2".into()],
        launched_from_queue: vec!["tj-3".into()],
        queued: 3,
        failed: vec!["tj-4".into()],
        deferred: 4,
        orphan_slots_freed: 5,
        errors: vec!["e".into()],
    };
    let before = json!({ "reconciled": report });
    let answer = Output::Reconciled {
        reconciled: report.into(),
    };
    assert_eq!(serde_json::to_string(&answer).unwrap(), before.to_string());
}

/// A sweep cut off at the invocation deadline still reports what it
/// settled before: a job settled as worker-failed is never looked at
/// again, so a lost count is an alarm that never fires.
#[tokio::test]
async fn a_cut_off_sweep_still_counts_the_jobs_it_settled() {
    let launcher = Launcher::new(
        InMemoryFleet::default(),
        InMemoryJobs::default(),
        InMemoryStatus::default(),
        launcher_tests::settings(2),
    );
    let mut results = launcher
        .process(&[
            launcher_tests::created("a.mp4", "01"),
            launcher_tests::created("b.mp4", "02"),
        ])
        .await;
    assert!(results.iter().all(|r| r.outcome == Outcome::Launched));
    // The sweep visits jobs in id order: the first settles, the second's
    // relaunch hangs.
    results.sort_by(|a, b| a.job_id.cmp(&b.job_id));
    let failed_job = results[0].job_id.clone().unwrap();
    launcher
        .status()
        .put(
            &launcher.status_key(&failed_job),
            r#"{"status":"failure","exitCode":1,"error":"ffmpeg rejected the input"}"#,
        )
        .await
        .unwrap();
    for result in &results {
        launcher
            .fleet()
            .terminate(result.instance_id.as_deref().unwrap());
    }
    launcher
        .fleet()
        .hang_launches
        .store(true, std::sync::atomic::Ordering::SeqCst);

    let far = Instant::now() + Duration::from_secs(3600);
    let stop_by = tokio::time::Instant::now() + Duration::from_millis(300);
    let report = sweep(&launcher, far, stop_by).await;

    let counted: Vec<&str> = report
        .workers_failed
        .iter()
        .map(|f| f.job_id.as_str())
        .collect();
    assert_eq!(counted, vec![failed_job.as_str()], "{report:?}");
    assert!(
        report.errors.iter().any(|e| e.contains("cut off")),
        "{report:?}"
    );
    assert!(reconciled(report).is_err(), "the sweep is incomplete");
    let stored = launcher.store().job(&failed_job).await.unwrap().unwrap();
    assert_eq!(stored.value.state, crate::jobs::JobState::WorkerFailed);
}
