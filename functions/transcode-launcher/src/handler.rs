//! Events to launcher calls: the event's kind read with serde, the
//! records handed to the launcher or the sweep run, and the invocation's
//! typed answer and metrics.

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

/// What made an event unsupported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedEvent {
    /// `Records` is there but is no array.
    #[error("unsupported event: Records: expected an array of S3 notification records")]
    RecordsNotAnArray,
    /// None of the kinds the function handles; the fields that tell them
    /// apart, as read (`None`: absent or not a string).
    #[error(
        "unsupported event: expected an S3 notification (Records), an EventBridge \"Object Created\" event from aws.s3, \
         a \"Scheduled Event\" from aws.events, or s3:TestEvent; got source {event_source:?}, detail-type {detail_type:?}"
    )]
    UnknownKind {
        event_source: Option<String>,
        detail_type: Option<String>,
    },
}

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

/// `T` read from `value`; an error is `unsupported`, logged with the path
/// and why.
fn read<T: serde::de::DeserializeOwned>(
    value: Value,
    unsupported: UnsupportedEvent,
) -> Result<T, UnsupportedEvent> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        tracing::debug!(path = %e.path(), error = %e.inner(), "unsupported event");
        unsupported
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
        let records: Vec<Value> = read(records, UnsupportedEvent::RecordsNotAnArray)?;
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
    Err(UnsupportedEvent::UnknownKind {
        event_source: input.source,
        detail_type: input.detail_type,
    })
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
mod tests;
