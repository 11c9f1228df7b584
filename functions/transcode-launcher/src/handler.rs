//! Events to launcher calls, and the invocation's summary.

use crate::event::{Record, eventbridge_record, notification_record};
use crate::launcher::{Failure, Launcher, Outcome, ReconcileReport, RecordResult, WorkerFailure};
use crate::ports::{Fleet, JobStore, StatusStore};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use shared::metrics::Emf;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Unsupported(#[from] UnsupportedEvent),
    /// Some records were neither launched nor queued: Lambda retries the
    /// event (launched records are found as duplicates), then sends it to
    /// the on-failure destination. A record queued for capacity is no
    /// failure: the reconcile launches it.
    #[error("{count} record(s) failed: {first}")]
    RecordsFailed {
        count: usize,
        kind: Failure,
        first: String,
    },
    /// The sweep did what it could; the next one tries the rest again.
    #[error("reconcile: {count} error(s): {first}")]
    ReconcileIncomplete { count: usize, first: String },
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match &e {
            HandlerError::Unsupported(_) => "UnsupportedEvent",
            HandlerError::RecordsFailed { kind, .. } => match kind {
                Failure::InvalidRecord => "InvalidRecord",
                Failure::LaunchFailed => "LaunchFailed",
            },
            HandlerError::ReconcileIncomplete { .. } => "ReconcileIncomplete",
        };
        Self {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported event: {0}")]
pub struct UnsupportedEvent(pub String);

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `s3:TestEvent`, sent when a notification is configured: a no-op.
    Test,
    Records(Vec<Record>),
    /// The schedule's tick (an EventBridge "Scheduled Event"): reconcile.
    Reconcile,
}

/// The fields that tell the kinds of event apart. A field that is not a
/// string reads as absent. `Records` stays JSON until the event is known
/// not to be a test event; each record is then read on its own, so one bad
/// record fails alone.
#[derive(Debug, Default, Deserialize)]
struct Input {
    #[serde(rename = "Event", default, deserialize_with = "text")]
    test_event: Option<String>,
    #[serde(rename = "Records", default, deserialize_with = "present")]
    records: Option<Value>,
    #[serde(default, deserialize_with = "text")]
    source: Option<String>,
    #[serde(rename = "detail-type", default, deserialize_with = "text")]
    detail_type: Option<String>,
}

/// Any JSON value, null included: a field that is there.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// A string, or None for any other JSON value.
fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Value::deserialize(deserializer)?
        .as_str()
        .map(str::to_owned))
}

/// `T` read from `value`; an error is `what`, logged with the path and why.
fn read<T: serde::de::DeserializeOwned>(value: Value, what: &str) -> Result<T, UnsupportedEvent> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        tracing::debug!(path = %e.path(), error = %e.inner(), "unsupported event");
        UnsupportedEvent(what.to_owned())
    })
}

pub fn parse(event: &Value) -> Result<Event, UnsupportedEvent> {
    // Every field of Input reads any JSON value, so any object reads. A
    // list would pass as a struct in serde's eyes: it is no event.
    let input = match event.is_object() {
        true => Input::deserialize(event).unwrap_or_default(),
        false => Input::default(),
    };
    if input.test_event.as_deref() == Some("s3:TestEvent") {
        return Ok(Event::Test);
    }
    if let Some(records) = input.records {
        let records: Vec<Value> = read(
            records,
            "Records: expected an array of S3 notification records",
        )?;
        return Ok(Event::Records(
            records
                .iter()
                .enumerate()
                .map(|(i, r)| notification_record(i, r))
                .collect(),
        ));
    }
    let (source, detail_type) = (input.source.as_deref(), input.detail_type.as_deref());
    if source == Some("aws.events") && detail_type == Some("Scheduled Event") {
        return Ok(Event::Reconcile);
    }
    if source == Some("aws.s3") && detail_type == Some("Object Created") {
        return Ok(Event::Records(vec![eventbridge_record(event)]));
    }
    Err(UnsupportedEvent(format!(
        "expected an S3 notification (Records), an EventBridge \"Object Created\" event from aws.s3, \
         a \"Scheduled Event\" from aws.events, or s3:TestEvent; got source {source:?}, detail-type {detail_type:?}"
    )))
}

/// The invocation's answer. Fields are in alphabetical order, as the JSON
/// objects have always listed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Output {
    Records {
        results: Vec<RecordSummary>,
        #[serde(rename = "testEvent", skip_serializing_if = "std::ops::Not::not")]
        test_event: bool,
    },
    Reconciled {
        reconciled: ReconcileSummary,
    },
}

/// One record's result in the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordSummary {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl From<&RecordResult> for RecordSummary {
    fn from(result: &RecordResult) -> Self {
        Self {
            bucket: result.bucket.clone(),
            failure: result.failure,
            instance_id: result.instance_id.clone(),
            job_id: result.job_id.clone(),
            key: result.key.clone(),
            outcome: result.outcome,
            reason: result.reason.clone(),
        }
    }
}

/// What a reconcile did, in the answer (see [`ReconcileReport`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileSummary {
    pub deferred: usize,
    pub done: usize,
    pub errors: Vec<String>,
    pub failed: Vec<String>,
    pub launched_from_queue: Vec<String>,
    pub orphan_slots_freed: usize,
    pub queued: usize,
    pub relaunched: Vec<String>,
    pub running: usize,
    pub workers_failed: Vec<WorkerFailure>,
}

impl From<ReconcileReport> for ReconcileSummary {
    fn from(report: ReconcileReport) -> Self {
        Self {
            deferred: report.deferred,
            done: report.done,
            errors: report.errors,
            failed: report.failed,
            launched_from_queue: report.launched_from_queue,
            orphan_slots_freed: report.orphan_slots_freed,
            queued: report.queued,
            relaunched: report.relaunched,
            running: report.running,
            workers_failed: report.workers_failed,
        }
    }
}

pub async fn handle<F: Fleet, J: JobStore, S: StatusStore>(
    launcher: &Launcher<F, J, S>,
    event: LambdaEvent<Value>,
) -> Result<Output, HandlerError> {
    let records = match parse(&event.payload)? {
        Event::Test => {
            tracing::info!("s3:TestEvent: nothing to do");
            return Ok(Output::Records {
                results: Vec::new(),
                test_event: true,
            });
        }
        Event::Reconcile => {
            let report = sweep(
                launcher,
                sweep_deadline(event.context.deadline),
                work_deadline(event.context.deadline),
            )
            .await;
            return reconciled(report);
        }
        Event::Records(records) => records,
    };
    let stop_by = work_deadline(event.context.deadline);
    let results = launcher.process_until(&records, stop_by).await;
    report(&results);
    let failed: Vec<&RecordResult> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .collect();
    if let Some(first) = failed.first() {
        // A launch failure first: it is the one a retry may cure.
        let kind = if failed
            .iter()
            .any(|r| r.failure == Some(Failure::LaunchFailed))
        {
            Failure::LaunchFailed
        } else {
            Failure::InvalidRecord
        };
        return Err(HandlerError::RecordsFailed {
            count: failed.len(),
            kind,
            first: format!(
                "{}: {}",
                first.key.as_deref().unwrap_or("(record)"),
                first.reason.as_deref().unwrap_or_default()
            ),
        });
    }
    Ok(Output::Records {
        results: results.iter().map(RecordSummary::from).collect(),
        test_event: false,
    })
}

fn report(results: &[RecordResult]) {
    let mut emf = Emf::for_function(crate::FUNCTION_NAME);
    for result in results {
        let summary = serde_json::to_string(result).unwrap_or_default();
        match result.outcome {
            Outcome::Failed => tracing::error!(result = %summary, "record failed"),
            _ => tracing::info!(result = %summary, "record done"),
        }
        let name = match result.outcome {
            Outcome::Launched => "Launched",
            Outcome::Duplicate => "Duplicates",
            Outcome::Skipped => "Skipped",
            Outcome::CapacityQueued => "CapacityQueued",
            Outcome::Failed => "Failed",
        };
        emf.add(name, 1);
    }
    emf.emit();
}

/// Time kept to answer after work is cut off: a call that hangs past it is
/// abandoned, so the invocation still answers (and fails) in time.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

fn work_deadline(deadline_ms: u64) -> tokio::time::Instant {
    let deadline = shared::runtime::deadline_instant(deadline_ms, SystemTime::now());
    deadline.checked_sub(ANSWER_MARGIN).unwrap_or(deadline)
}

/// The sweep stops this long before the invocation's deadline.
const SWEEP_MARGIN: Duration = Duration::from_secs(10);

/// `deadline_ms`: Lambda's deadline, epoch milliseconds.
fn sweep_deadline(deadline_ms: u64) -> Instant {
    let now_ms = shared::time::now_millis();
    let left = Duration::from_millis(deadline_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(SWEEP_MARGIN)
}

/// The reconcile, stopping new jobs at `deadline` and cut off at `stop_by`.
async fn sweep<F: Fleet, J: JobStore, S: StatusStore>(
    launcher: &Launcher<F, J, S>,
    deadline: Instant,
    stop_by: tokio::time::Instant,
) -> ReconcileReport {
    let mut report = ReconcileReport::default();
    // Boxed: the sweep's future nests deep enough to pass the compiler's
    // layout recursion limit inside the runtime's.
    let run = Box::pin(launcher.reconcile_into(deadline, &mut report));
    if tokio::time::timeout_at(stop_by, run).await.is_err() {
        // A call hung past the sweep's own margin: what was settled before
        // it stays counted; the next sweep takes up the rest.
        report.errors.push(
            "the sweep was cut off at the invocation deadline: a service did not answer in time"
                .into(),
        );
    }
    report
}

fn reconciled(report: ReconcileReport) -> Result<Output, HandlerError> {
    let summary = serde_json::to_string(&report).unwrap_or_default();
    tracing::info!(report = %summary, "reconciled");
    for job in &report.failed {
        tracing::error!(job = %job, "job out of attempts (its workers died or could not be launched); failure status.json written");
    }
    for failure in &report.workers_failed {
        tracing::error!(job = %failure.job_id, reason = %failure.reason, "transcode worker ended in failure; its status.json holds the details");
    }
    let mut emf = Emf::for_function(crate::FUNCTION_NAME);
    emf.add("JobsDone", report.done as u64);
    // The alarm's metric: workers that ran and failed (or left a garbled
    // status); their jobs are not relaunched.
    emf.add("WorkersFailed", report.workers_failed.len() as u64);
    emf.add("JobsRelaunched", report.relaunched.len() as u64);
    emf.add(
        "JobsLaunchedFromQueue",
        report.launched_from_queue.len() as u64,
    );
    emf.add("JobsQueued", report.queued as u64);
    // The alarm's metric: jobs that will never be transcoded.
    emf.add("JobsFailed", report.failed.len() as u64);
    emf.add("JobsDeferred", report.deferred as u64);
    emf.add("OrphanSlotsFreed", report.orphan_slots_freed as u64);
    emf.add("ReconcileErrors", report.errors.len() as u64);
    emf.emit();
    if let Some(first) = report.errors.first() {
        return Err(HandlerError::ReconcileIncomplete {
            count: report.errors.len(),
            first: first.clone(),
        });
    }
    Ok(Output::Reconciled {
        reconciled: report.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::tests::{created, settings};
    use crate::testing::{InMemoryFleet, InMemoryJobs, InMemoryStatus};

    /// The answers, byte for byte as the `serde_json::Value` they were built
    /// as before (objects list their keys in alphabetical order).
    #[test]
    fn answers_serialize_as_before() {
        use serde_json::json;
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
            settings(2),
        );
        let mut results = launcher
            .process(&[created("a.mp4", "01"), created("b.mp4", "02")])
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
}

#[cfg(test)]
mod parse_tests {
    use super::*;
    use crate::event::ObjectCreated;
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
                parse(&records).unwrap_err().0,
                "Records: expected an array of S3 notification records"
            );
        }
        let tick = json!({"source": ["aws.events"], "detail-type": "Scheduled Event"});
        let error = parse(&tick).unwrap_err().0;
        assert!(
            error.ends_with("got source None, detail-type Some(\"Scheduled Event\")"),
            "{error}"
        );
        for no_object in [json!(["s3:TestEvent"]), json!("x")] {
            let error = parse(&no_object).unwrap_err().0;
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
                "Records[0].s3.object.key: object key has an invalid percent escape at byte 3"
                    .into()
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
                .0
                .contains("Records")
        );
    }
}
