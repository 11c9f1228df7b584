//! Events to launcher calls, and the invocation's summary.

use crate::event::{self, Event};
use crate::launcher::{Failure, Launcher, Outcome, ReconcileReport, RecordResult};
use crate::ports::{Fleet, JobStore, StatusStore};
use lambda_runtime::LambdaEvent;
use serde_json::{Value, json};
use shared::metrics::Emf;
use std::time::{Duration, Instant, SystemTime};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error(transparent)]
    Unsupported(#[from] event::UnsupportedEvent),
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

pub async fn handle<F: Fleet, J: JobStore, S: StatusStore>(
    launcher: &Launcher<F, J, S>,
    event: LambdaEvent<Value>,
) -> Result<Value, HandlerError> {
    let records = match event::parse(&event.payload)? {
        Event::Test => {
            tracing::info!("s3:TestEvent: nothing to do");
            return Ok(json!({"results": [], "testEvent": true}));
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
    Ok(json!({ "results": results }))
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

fn reconciled(report: ReconcileReport) -> Result<Value, HandlerError> {
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
    Ok(json!({ "reconciled": report }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launcher::tests::{created, settings};
    use crate::testing::{InMemoryFleet, InMemoryJobs, InMemoryStatus};

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
