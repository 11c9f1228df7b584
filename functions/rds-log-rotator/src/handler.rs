//! Scheduled and manual invocations: every target, a few at a time.

use crate::ports::{ArchiveStore, Connector};
use crate::rotator::{Rotator, TargetReport};
use futures_util::StreamExt;
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
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

/// A manual run; both fields are optional.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ManualRun {
    /// Absent: every target. `null` is refused, as any other non-list is.
    #[serde(default, deserialize_with = "instance_list")]
    instances: Option<Vec<String>>,
    #[serde(default, deserialize_with = "flag")]
    dry_run: bool,
}

/// `ManualRun`'s fields as the event spells them.
const MANUAL_FIELDS: [&str; 2] = ["instances", "dryRun"];

/// An EventBridge "Scheduled Event", or `{"instances": [...], "dryRun": true}`.
pub fn parse(event: &Value) -> Result<Request, HandlerError> {
    // The rest of a scheduled event is EventBridge's: only its type is read.
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        return Ok(Request {
            instances: None,
            dry_run: false,
        });
    }
    let Some(object) = event.as_object() else {
        return Err(HandlerError::InvalidEvent("expected a JSON object".into()));
    };
    // Unknown fields are refused before any value is read: an event meant
    // for another function is named as such, not by its first odd value.
    if let Some(unknown) = object.keys().find(|k| !MANUAL_FIELDS.contains(&k.as_str())) {
        return Err(HandlerError::InvalidEvent(format!(
            "unknown field {unknown:?}: expected a Scheduled Event or {{\"instances\": [...], \"dryRun\": bool}}"
        )));
    }
    let run: ManualRun = serde_path_to_error::deserialize(event)
        .map_err(|e| HandlerError::InvalidEvent(format!("{}: {}", e.path(), e.inner())))?;
    Ok(Request {
        instances: run.instances,
        dry_run: run.dry_run,
    })
}

/// `true` or `false`, nothing else (not even `null`).
fn flag<'de, D: Deserializer<'de>>(value: D) -> Result<bool, D::Error> {
    match Value::deserialize(value)? {
        Value::Bool(b) => Ok(b),
        other => Err(de::Error::custom(format!(
            "expected true or false, got {other}"
        ))),
    }
}

fn instance_list<'de, D: Deserializer<'de>>(value: D) -> Result<Option<Vec<String>>, D::Error> {
    value.deserialize_any(InstanceList).map(Some)
}

/// A list of instance identifiers, read item by item so that a bad one is
/// named by its index; anything but a list is refused showing it as JSON.
struct InstanceList;

fn not_a_list<E: de::Error>(got: Value) -> E {
    E::custom(format!("expected an array of identifiers, got {got}"))
}

impl<'de> Visitor<'de> for InstanceList {
    type Value = Vec<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of identifiers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<Vec<String>, A::Error> {
        let mut ids = Vec::new();
        while let Some(InstanceId(id)) = items.next_element()? {
            ids.push(id);
        }
        Ok(ids)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<String>, E> {
        Err(not_a_list(Value::Null))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Vec<String>, E> {
        Err(not_a_list(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Vec<String>, E> {
        Err(not_a_list(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Vec<String>, E> {
        Err(not_a_list(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Vec<String>, E> {
        Err(not_a_list(v.into()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<String>, E> {
        Err(not_a_list(v.into()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<String>, A::Error> {
        let object = Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Err(not_a_list(object))
    }
}

/// A DB instance identifier (see [`crate::target::is_instance_id`]).
struct InstanceId(String);

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: Deserializer<'de>>(value: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(value)?;
        match value.as_str() {
            Some(id) if crate::target::is_instance_id(id) => Ok(InstanceId(id.to_owned())),
            _ => Err(de::Error::custom(format!(
                "{value} is not a DB instance identifier"
            ))),
        }
    }
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
    fleet: &FleetRotator<C, S>,
    event: LambdaEvent<Value>,
) -> Result<Output, HandlerError> {
    let request = parse(&event.payload)?;
    let stop_by = work_deadline(event.context.deadline);
    let targets = tokio::time::timeout_at(
        stop_by,
        fleet.connector.targets(request.instances.as_deref()),
    )
    .await
    .map_err(|_| HandlerError::Targets(CUT_OFF.into()))?
    .map_err(|e| HandlerError::Targets(e.to_string()))?;
    let run_time = crate::timestamp::format_timestamp(SystemTime::now());
    let reports: Vec<TargetReport> = futures_util::stream::iter(targets)
        .map(|target| {
            let run_time = run_time.clone();
            async move {
                let run = async {
                    match fleet.connector.connect(&target).await {
                        Ok(mut db) => {
                            fleet
                                .rotator
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
        .buffer_unordered(fleet.concurrency)
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

    /// The texts a caller reads, word for word, including which problem
    /// an event with several is refused for.
    #[test]
    fn invalid_events_are_refused_with_the_same_texts() {
        let hint = r#"expected a Scheduled Event or {"instances": [...], "dryRun": bool}"#;
        for (bad, text) in [
            (json!(["orders-db"]), "expected a JSON object".to_owned()),
            (json!("Scheduled Event"), "expected a JSON object".into()),
            (json!(null), "expected a JSON object".into()),
            (
                json!({"detail-type": "Object Created", "detail": {}}),
                format!("unknown field \"detail\": {hint}"),
            ),
            (
                json!({"dryRun": "yes", "zone": 1}),
                format!("unknown field \"zone\": {hint}"),
            ),
            (
                json!({"dryRun": null}),
                "dryRun: expected true or false, got null".into(),
            ),
            (
                json!({"instances": [5], "dryRun": 1}),
                "dryRun: expected true or false, got 1".into(),
            ),
            (
                json!({"instances": "orders-db"}),
                r#"instances: expected an array of identifiers, got "orders-db""#.into(),
            ),
            (
                json!({"instances": null}),
                "instances: expected an array of identifiers, got null".into(),
            ),
            (
                json!({"instances": {"id": "orders-db"}}),
                r#"instances: expected an array of identifiers, got {"id":"orders-db"}"#.into(),
            ),
            (
                json!({"instances": 1.5}),
                "instances: expected an array of identifiers, got 1.5".into(),
            ),
            (
                json!({"instances": -3}),
                "instances: expected an array of identifiers, got -3".into(),
            ),
            (
                json!({"instances": false}),
                "instances: expected an array of identifiers, got false".into(),
            ),
            (
                json!({"instances": ["ok", "9x"]}),
                r#"instances[1]: "9x" is not a DB instance identifier"#.into(),
            ),
            (
                json!({"instances": ["ok", ["a"]]}),
                r#"instances[1]: ["a"] is not a DB instance identifier"#.into(),
            ),
            (
                json!({"instances": [null]}),
                "instances[0]: null is not a DB instance identifier".into(),
            ),
        ] {
            let error = parse(&bad).unwrap_err();
            assert!(matches!(error, HandlerError::InvalidEvent(_)), "{bad}");
            assert_eq!(error.to_string(), format!("invalid event: {text}"), "{bad}");
        }
        let every = |dry_run| Request {
            instances: None,
            dry_run,
        };
        for (good, request) in [
            (json!({}), every(false)),
            (json!({"dryRun": false}), every(false)),
            (json!({"dryRun": true}), every(true)),
            (
                json!({"detail-type": "Scheduled Event", "dryRun": "yes", "x": 1}),
                every(false),
            ),
            (
                json!({"instances": []}),
                Request {
                    instances: Some(vec![]),
                    dry_run: false,
                },
            ),
        ] {
            assert_eq!(parse(&good).unwrap(), request, "{good}");
        }
    }
}
