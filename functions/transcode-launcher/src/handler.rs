//! Events to launcher calls, and the invocation's summary.

use crate::event::{self, Event};
use crate::fleet::Fleet;
use crate::launcher::{Failure, Launcher, Outcome, RecordResult};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use shared::metrics::Emf;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Unsupported(#[from] event::UnsupportedEvent),
    /// Some records were not launched: Lambda retries the event (launched
    /// records are found as duplicates), then sends it to the on-failure
    /// destination.
    #[error("{count} record(s) failed: {first}")]
    RecordsFailed {
        count: usize,
        kind: Failure,
        first: String,
    },
}

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match &e {
            HandlerError::Unsupported(_) => "UnsupportedEvent",
            HandlerError::RecordsFailed { kind, .. } => match kind {
                Failure::CapacityReached => "CapacityReached",
                Failure::InvalidRecord => "InvalidRecord",
                Failure::LaunchFailed => "LaunchFailed",
            },
        };
        Self {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

pub async fn handle<F: Fleet>(
    launcher: &Launcher<F>,
    event: LambdaEvent<Value>,
) -> Result<Value, HandlerError> {
    let records = match event::parse(&event.payload)? {
        Event::Test => {
            tracing::info!("s3:TestEvent: nothing to do");
            return Ok(json!({"results": [], "testEvent": true}));
        }
        Event::Records(records) => records,
    };
    let results = launcher.process(&records).await;
    report(&results);
    let failed: Vec<&RecordResult> = results
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .collect();
    if let Some(first) = failed.first() {
        // Capacity first: it is the failure a retry is most likely to cure.
        let kind = [Failure::CapacityReached, Failure::LaunchFailed]
            .into_iter()
            .find(|k| failed.iter().any(|r| r.failure == Some(*k)))
            .unwrap_or(Failure::InvalidRecord);
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
    Ok(json!({ "results": results }))
}

fn report(results: &[RecordResult]) {
    let mut emf = Emf::new("LambdaSuite").dimension("Function", "transcode-launcher");
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
            Outcome::Failed => "Failed",
        };
        emf.add(name, 1);
    }
    emf.emit();
}
