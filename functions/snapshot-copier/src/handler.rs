//! EventBridge events to copier calls.
//!
//! "EBS Snapshot Notification" createSnapshot / createSnapshots (succeeded)
//! copy the new snapshots; copySnapshot results, routed here from the
//! destination regions, are recorded (a failed copy is replaced); a
//! "Scheduled Event" sweeps.

use crate::copier::{Copier, Summary};
use crate::ports::Regions;
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shared::metrics::Emf;
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("unsupported event: {0}")]
    Unsupported(String),
    #[error("{count} error(s); the next sweep retries: {first}")]
    Incomplete { count: usize, first: String },
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match e {
            HandlerError::Unsupported(_) => "UnsupportedEvent",
            HandlerError::Incomplete { .. } => "CopiesIncomplete",
        };
        Self {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// What an event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Copy(Vec<String>),
    CopyFinished {
        region: String,
        copy: String,
        succeeded: bool,
    },
    Sweep,
    /// A failed createSnapshot(s): nothing to copy; says which and how.
    SnapshotFailed(String),
}

/// An EventBridge event; `detail`'s shape depends on `detail-type`, so it is
/// read once that is known (a sweep's detail is never looked at).
#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "detail-type", default)]
    detail_type: String,
    #[serde(default)]
    region: String,
    #[serde(default)]
    detail: Value,
}

/// An "EBS Snapshot Notification"'s detail.
#[derive(Debug, Default, Deserialize)]
struct SnapshotDetail {
    #[serde(default)]
    event: String,
    #[serde(default)]
    result: String,
    snapshot_id: Option<String>,
    /// createSnapshots: one entry per volume.
    snapshots: Option<Vec<SnapshotEntry>>,
}

#[derive(Debug, Deserialize)]
struct SnapshotEntry {
    snapshot_id: Option<String>,
}

/// `value` read as `T`; an error names the field (under `prefix`) and why.
fn read<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<T, HandlerError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match (prefix, path.as_str()) {
            (_, ".") => prefix.trim_end_matches('.').to_owned(),
            ("", path) => path.to_owned(),
            (prefix, path) => format!("{prefix}{path}"),
        };
        let field = if field.is_empty() { "event" } else { &field };
        HandlerError::Unsupported(format!("{field}: {}", e.inner()))
    })
}

/// `arn:aws:ec2::us-east-1:snapshot/snap-0123` -> `snap-0123`.
fn snapshot_id(arn: Option<&str>) -> Option<String> {
    arn?.rsplit_once("snapshot/")
        .map(|(_, id)| id.to_owned())
        .filter(|id| id.starts_with("snap-"))
}

pub fn parse(event: &Value) -> Result<Request, HandlerError> {
    let event: Event = read(event.clone(), "")?;
    if event.detail_type == "Scheduled Event" {
        return Ok(Request::Sweep);
    }
    if event.detail_type != "EBS Snapshot Notification" {
        return Err(HandlerError::Unsupported(format!(
            "detail-type {:?}: expected \"EBS Snapshot Notification\" or \"Scheduled Event\"",
            event.detail_type
        )));
    }
    let detail: SnapshotDetail = match event.detail {
        Value::Null => SnapshotDetail::default(),
        detail => read(detail, "detail.")?,
    };
    let missing = |field: &str| {
        HandlerError::Unsupported(format!("detail.{field} is missing or not a snapshot ARN"))
    };
    let (kind, result) = (detail.event.as_str(), detail.result.as_str());
    match kind {
        "createSnapshot" | "createSnapshots" if result != "succeeded" => {
            Ok(Request::SnapshotFailed(format!("{kind} {result}")))
        }
        "createSnapshot" => Ok(Request::Copy(vec![
            snapshot_id(detail.snapshot_id.as_deref()).ok_or_else(|| missing("snapshot_id"))?,
        ])),
        "createSnapshots" => {
            let ids = detail
                .snapshots
                .ok_or_else(|| missing("snapshots"))?
                .iter()
                .map(|s| {
                    snapshot_id(s.snapshot_id.as_deref())
                        .ok_or_else(|| missing("snapshots[].snapshot_id"))
                })
                .collect::<Result<_, _>>()?;
            Ok(Request::Copy(ids))
        }
        "copySnapshot" => Ok(Request::CopyFinished {
            region: event.region,
            copy: snapshot_id(detail.snapshot_id.as_deref())
                .ok_or_else(|| missing("snapshot_id"))?,
            succeeded: result == "succeeded",
        }),
        other => Err(HandlerError::Unsupported(format!("detail.event {other:?}"))),
    }
}

pub async fn handle<R: Regions>(
    copier: &Copier<R>,
    event: LambdaEvent<Value>,
) -> Result<Summary, HandlerError> {
    answer(summarize(copier, event).await?)
}

/// What the event's work did, reported and counted in the metrics (an error
/// only if the event is not understood).
async fn summarize<R: Regions>(
    copier: &Copier<R>,
    event: LambdaEvent<Value>,
) -> Result<Summary, HandlerError> {
    let stop_by = work_deadline(event.context.deadline);
    // The summary is ours: work cut off at the deadline adds its error to
    // what it already reported, so the metrics count the work done.
    let mut summary = Summary::default();
    match parse(&event.payload)? {
        Request::Copy(ids) => {
            for id in ids {
                let work = copier.copy_snapshot_into(&id, &mut summary);
                if !finished_by(stop_by, work).await {
                    cut_off(&id, &mut summary);
                }
            }
        }
        Request::CopyFinished {
            region,
            copy,
            succeeded,
        } => {
            let work = copier.copy_finished_into(&region, &copy, succeeded, &mut summary);
            if !finished_by(stop_by, work).await {
                cut_off(&copy, &mut summary);
            }
        }
        Request::Sweep => {
            if !finished_by(stop_by, copier.sweep_into(&mut summary)).await {
                cut_off("sweep", &mut summary);
            }
        }
        Request::SnapshotFailed(why) => summary.ignored.push(why),
    }
    emit(&summary);
    tracing::info!(?summary, "done");
    Ok(summary)
}

/// The invocation's answer: an error if any work failed.
fn answer(summary: Summary) -> Result<Summary, HandlerError> {
    match summary.errors.first() {
        Some(first) => Err(HandlerError::Incomplete {
            count: summary.errors.len(),
            first: first.clone(),
        }),
        None => Ok(summary),
    }
}

/// Time kept after work is cut off, to report and answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(1);

fn work_deadline(deadline_ms: u64) -> tokio::time::Instant {
    let deadline = shared::runtime::deadline_instant(deadline_ms, SystemTime::now());
    deadline.checked_sub(ANSWER_MARGIN).unwrap_or(deadline)
}

/// Whether `work` (which reports into the handler's summary as it goes)
/// finished by `stop_by`. Cut off as a Lambda timeout would cut it (a copy
/// whose answer never came keeps its claim until the lease runs out), but
/// in time to report.
async fn finished_by(stop_by: tokio::time::Instant, work: impl Future<Output = ()>) -> bool {
    tokio::time::timeout_at(stop_by, work).await.is_ok()
}

/// The error of work cut off, next to what it reported before.
fn cut_off(what: &str, summary: &mut Summary) {
    summary.errors.push(format!(
        "{what}: cut off at the invocation deadline: EC2 or DynamoDB did not answer \
         in time; the next sweep retries"
    ));
}

fn emit(summary: &Summary) {
    let counts = [
        ("Copied", summary.copied.len()),
        ("SkippedExisting", summary.skipped_existing.len()),
        ("NotRetained", summary.not_retained.len()),
        ("Deferred", summary.deferred.len()),
        ("RetriedAfterError", summary.retried_after_error.len()),
        ("Pruned", summary.pruned.len()),
        ("Errors", summary.errors.len()),
    ];
    Emf::for_function(crate::FUNCTION_NAME)
        .with_counts(counts.map(|(name, count)| (name, count as u64)))
        .emit();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ebs(detail: Value) -> Value {
        json!({"version": "0", "detail-type": "EBS Snapshot Notification", "source": "aws.ec2",
               "region": "us-west-2", "detail": detail})
    }

    #[test]
    fn events_map_to_requests() {
        assert_eq!(
            parse(&ebs(
                json!({"event": "createSnapshot", "result": "succeeded",
                              "snapshot_id": "arn:aws:ec2::us-east-1:snapshot/snap-01"})
            ))
            .unwrap(),
            Request::Copy(vec!["snap-01".into()])
        );
        assert!(matches!(
            parse(&ebs(json!({"event": "createSnapshot", "result": "failed"}))).unwrap(),
            Request::SnapshotFailed(_)
        ));
        assert_eq!(
            parse(&ebs(
                json!({"event": "createSnapshots", "result": "succeeded", "snapshots": [
                {"snapshot_id": "arn:aws:ec2::us-east-1:snapshot/snap-a"},
                {"snapshot_id": "arn:aws:ec2::us-east-1:snapshot/snap-b"}]})
            ))
            .unwrap(),
            Request::Copy(vec!["snap-a".into(), "snap-b".into()])
        );
        assert_eq!(
            parse(&ebs(json!({"event": "copySnapshot", "result": "failed",
                              "snapshot_id": "arn:aws:ec2::us-west-2:snapshot/snap-c"})))
            .unwrap(),
            Request::CopyFinished {
                region: "us-west-2".into(),
                copy: "snap-c".into(),
                succeeded: false
            }
        );
        assert_eq!(
            parse(&json!({"detail-type": "Scheduled Event"})).unwrap(),
            Request::Sweep
        );
        let err = parse(&ebs(
            json!({"event": "createSnapshot", "result": "succeeded"}),
        ))
        .unwrap_err();
        assert!(err.to_string().contains("detail.snapshot_id"));
        assert!(parse(&json!({"detail-type": "Object Created"})).is_err());
    }

    /// Work done before a cut-off is still reported (and counted in the
    /// metrics), next to the cut-off's error.
    #[tokio::test]
    async fn a_sweep_cut_off_keeps_the_copies_it_made() {
        use crate::copier::Settings;
        use crate::testing::{CopyFault, InMemoryRegions};
        let ec2 = InMemoryRegions::default();
        ec2.source("us-east-1", "vol-1", &[("dr:copy-to", "eu-west-1")]);
        ec2.source("us-east-1", "vol-2", &[("dr:copy-to", "us-west-2")]);
        ec2.fail_next_copy("us-west-2", CopyFault::Hangs);
        let settings = Settings {
            source_region: "us-east-1".into(),
            default_destinations: vec![],
            // One copy at a time: eu-west-1's, then us-west-2's, which hangs.
            concurrency: 1,
            ..crate::config::Config::default().copier
        };
        let copier = Copier::new(ec2.clone(), settings);
        let deadline = SystemTime::now() + ANSWER_MARGIN + Duration::from_millis(500);
        let deadline_ms = deadline
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut context = lambda_runtime::Context::default();
        context.deadline = deadline_ms;
        let event = LambdaEvent::new(json!({"detail-type": "Scheduled Event"}), context);
        let summary = summarize(&copier, event).await.expect("a sweep");
        let error = answer(summary.clone()).err();
        assert!(SystemTime::now() < deadline, "answered before the deadline");
        assert!(
            matches!(error, Some(HandlerError::Incomplete { .. })),
            "{error:?}"
        );
        assert_eq!(summary.copied.len(), 1, "{summary:?}");
        assert_eq!(summary.copied[0].region, "eu-west-1");
        assert_eq!(summary.errors.len(), 1, "{summary:?}");
        assert!(summary.errors[0].contains("cut off"), "{summary:?}");
    }

    #[test]
    fn a_field_of_the_wrong_type_is_named() {
        let err = parse(&ebs(
            json!({"event": "createSnapshots", "result": "succeeded",
                                    "snapshots": [{"snapshot_id": 3}]}),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("detail.snapshots[0].snapshot_id"), "{err}");
        let err = parse(&json!({"detail-type": 3})).unwrap_err().to_string();
        assert!(err.starts_with("unsupported event: detail-type: "), "{err}");
    }
}
