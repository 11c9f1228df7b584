//! Scheduled and manual invocations: every target, a few at a time.

use crate::ports::{ArchiveStore, Connector};
use crate::rotator::{Rotator, TargetReport};
use futures_util::StreamExt;
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::metrics::Emf;
use std::time::{Duration, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("resolving targets: {0}")]
    Targets(String),
    #[error("{count} target(s) failed: {first}")]
    Failed { count: usize, first: String },
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match e {
            HandlerError::InvalidEvent(_) => "InvalidEvent",
            HandlerError::Targets(_) => "TargetsUnavailable",
            HandlerError::Failed { .. } => "RotationFailed",
        };
        Self {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// What an invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// None: every configured or discovered target.
    pub instances: Option<Vec<String>>,
    pub dry_run: bool,
}

/// An EventBridge "Scheduled Event", or `{"instances": [...], "dryRun": true}`.
pub fn parse(event: &Value) -> Result<Request, HandlerError> {
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        return Ok(Request {
            instances: None,
            dry_run: false,
        });
    }
    let Some(object) = event.as_object() else {
        return Err(HandlerError::InvalidEvent("expected a JSON object".into()));
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !["instances", "dryRun"].contains(&k.as_str()))
    {
        return Err(HandlerError::InvalidEvent(format!(
            "unknown field {unknown:?}: expected a Scheduled Event or {{\"instances\": [...], \"dryRun\": bool}}"
        )));
    }
    let dry_run = match object.get("dryRun") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(HandlerError::InvalidEvent(format!(
                "dryRun: expected true or false, got {other}"
            )));
        }
    };
    let instances = match object.get("instances") {
        None => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .filter(|s| crate::target::is_instance_id(s))
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            HandlerError::InvalidEvent(format!(
                                "instances[{i}]: {v} is not a DB instance identifier"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(other) => {
            return Err(HandlerError::InvalidEvent(format!(
                "instances: expected an array of identifiers, got {other}"
            )));
        }
    };
    Ok(Request { instances, dry_run })
}

/// Time kept after the targets are cut off, to report and answer.
const ANSWER_MARGIN: Duration = Duration::from_secs(2);

const CUT_OFF: &str = "cut off at the invocation deadline: RDS, Secrets Manager, the database \
     or S3 did not answer in time; the next run resumes";

fn work_deadline(deadline_ms: u64) -> tokio::time::Instant {
    let deadline = shared::runtime::deadline_instant(deadline_ms, SystemTime::now());
    deadline.checked_sub(ANSWER_MARGIN).unwrap_or(deadline)
}

/// Every target of a run, a few at a time: the targets come from the
/// connector, and each one goes through the per-target [`Rotator`].
pub struct FleetRotator<C, S> {
    pub connector: C,
    pub rotator: Rotator<S>,
    pub concurrency: usize,
}

/// The answer of a run that rotated every target. Fields in key order, as
/// the former `json!` answer wrote them.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    pub dry_run: bool,
    pub run_at: String,
    pub targets: Vec<TargetReport>,
}

pub async fn handle<C: Connector, S: ArchiveStore>(
    app: &FleetRotator<C, S>,
    event: LambdaEvent<Value>,
) -> Result<Output, HandlerError> {
    let request = parse(&event.payload)?;
    let stop_by = work_deadline(event.context.deadline);
    let targets =
        tokio::time::timeout_at(stop_by, app.connector.targets(request.instances.as_deref()))
            .await
            .map_err(|_| HandlerError::Targets(CUT_OFF.into()))?
            .map_err(|e| HandlerError::Targets(e.to_string()))?;
    let run_time = crate::timestamp::format_timestamp(SystemTime::now());
    let reports: Vec<TargetReport> = futures_util::stream::iter(targets)
        .map(|target| {
            let run_time = run_time.clone();
            async move {
                let run = async {
                    match app.connector.connect(&target).await {
                        Ok(mut db) => {
                            app.rotator
                                .run_target(&mut db, &target.id, request.dry_run, &run_time)
                                .await
                        }
                        Err(e) => TargetReport {
                            instance: target.id.clone(),
                            error: Some(format!("connecting: {e}")),
                            ..TargetReport::default()
                        },
                    }
                };
                // Cut off as a Lambda timeout would (archives come before
                // rotation, so nothing unarchived is rotated away), but
                // early enough to report the target failed.
                match tokio::time::timeout_at(stop_by, run).await {
                    Ok(report) => report,
                    Err(_) => TargetReport {
                        instance: target.id.clone(),
                        error: Some(CUT_OFF.into()),
                        ..TargetReport::default()
                    },
                }
            }
        })
        .buffer_unordered(app.concurrency)
        .collect()
        .await;
    report(&reports);
    let failed: Vec<&TargetReport> = reports.iter().filter(|r| r.failed()).collect();
    if let Some(first) = failed.first() {
        let reason = first
            .error
            .clone()
            .or_else(|| first.logs.iter().find_map(|l| l.error.clone()))
            .unwrap_or_default();
        return Err(HandlerError::Failed {
            count: failed.len(),
            first: format!("{}: {reason}", first.instance),
        });
    }
    Ok(Output {
        dry_run: request.dry_run,
        run_at: run_time,
        targets: reports,
    })
}

fn report(reports: &[TargetReport]) {
    let mut emf = Emf::for_function(crate::FUNCTION_NAME);
    for target in reports {
        let summary = serde_json::to_string(target).unwrap_or_default();
        if target.failed() {
            tracing::error!(instance = %target.instance, report = %summary, "target failed");
        } else {
            tracing::info!(instance = %target.instance, report = %summary, "target done");
        }
        for top in target.top_queries.iter().take(5) {
            tracing::info!(
                instance = %target.instance,
                total_secs = top.total_time_secs,
                count = top.count,
                fingerprint = %top.fingerprint,
                "slow query digest"
            );
        }
        emf.add("Targets", 1);
        emf.add("TargetsFailed", u64::from(target.failed()));
        emf.add("TargetsSkipped", u64::from(target.skipped.is_some()));
        for log in &target.logs {
            emf.add("ArchivedRows", log.archived_rows);
            emf.add("Rotations", u64::from(log.rotated));
            emf.add("Warnings", log.warnings.len() as u64);
        }
    }
    emf.emit();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn output_writes_the_bytes_the_json_answer_wrote() {
        let output = Output {
            dry_run: true,
            run_at: "2026-11-22 01:02:03.000000".into(),
            targets: vec![TargetReport {
                instance: "orders-db".into(),
                ..TargetReport::default()
            }],
        };
        let former =
            json!({"runAt": output.run_at, "dryRun": output.dry_run, "targets": output.targets});
        assert_eq!(
            serde_json::to_string(&output).unwrap(),
            serde_json::to_string(&former).unwrap()
        );
    }

    #[test]
    fn events() {
        let scheduled = json!({"detail-type": "Scheduled Event", "source": "aws.events"});
        assert_eq!(
            parse(&scheduled).unwrap(),
            Request {
                instances: None,
                dry_run: false
            }
        );
        let manual = json!({"instances": ["orders-db"], "dryRun": true});
        assert_eq!(
            parse(&manual).unwrap(),
            Request {
                instances: Some(vec!["orders-db".into()]),
                dry_run: true
            }
        );
        for (bad, field) in [
            (json!({"instances": "orders-db"}), "instances"),
            (json!({"instances": ["ok", "9x"]}), "instances[1]"),
            (json!({"dryRun": "yes"}), "dryRun"),
            (json!({"instance": ["a"]}), "\"instance\""),
        ] {
            let message = parse(&bad).unwrap_err().to_string();
            assert!(message.contains(field), "{field}: {message}");
        }
    }
}
