//! One created object to a launch: filter, identify, guard against
//! duplicates, then dispatch.

use super::{Dispatch, Failure, Launcher, Outcome, RecordResult};
use crate::event::ObjectCreated;
use crate::job;
use crate::jobs::{Job, JobState, Versioned};
use crate::ports::{Fleet, JobStore, StatusStore};
use std::ops::ControlFlow;

/// The record of one object that is a job: its results name the job.
struct JobRecord<'a> {
    object: &'a ObjectCreated,
    job_id: String,
}

impl JobRecord<'_> {
    fn result(&self, result: RecordResult) -> RecordResult {
        RecordResult {
            job_id: Some(self.job_id.clone()),
            ..result
        }
    }

    fn launch_failed(&self, reason: String) -> RecordResult {
        self.result(RecordResult::failed(
            Some(self.object),
            Failure::LaunchFailed,
            reason,
        ))
    }

    fn duplicate(&self, instance: Option<String>) -> RecordResult {
        self.result(RecordResult {
            instance_id: instance,
            ..RecordResult::new(Outcome::Duplicate, Some(self.object))
        })
    }
}

impl<F: Fleet, J: JobStore, S: StatusStore> Launcher<F, J, S> {
    pub(super) async fn launch(&self, object: &ObjectCreated) -> RecordResult {
        if let Some(reason) = self.settings.locations.skip_reason(object) {
            return RecordResult::skipped(Some(object), reason);
        }
        let record = JobRecord {
            object,
            job_id: job::job_id(object),
        };
        let existing = match self.duplicate_check(&record).await {
            ControlFlow::Continue(existing) => existing,
            ControlFlow::Break(result) => return result,
        };
        let (job, expected) = match existing {
            Some(known) => (known.value, Some(known.version)),
            None => (
                Job {
                    id: record.job_id.clone(),
                    object: object.clone(),
                    attempt: 1,
                    launch_failures: 0,
                    state: JobState::Queued,
                    instance_id: None,
                    slot: None,
                    updated_at: (self.clock)(),
                },
                None,
            ),
        };
        match self.dispatch(job, expected).await {
            Dispatch::Launched(instance) => record.result(RecordResult {
                instance_id: Some(instance),
                ..RecordResult::new(Outcome::Launched, Some(object))
            }),
            Dispatch::Taken(instance) => record.duplicate(instance),
            Dispatch::NoCapacity => {
                let limit = self.settings.max_running_jobs;
                record.result(RecordResult {
                    reason: Some(format!(
                        "MAX_RUNNING_JOBS={limit} reached (every slot is leased to a live worker); \
                         the job is queued in the ledger and the reconcile launches it when a slot frees"
                    )),
                    ..RecordResult::new(Outcome::CapacityQueued, Some(object))
                })
            }
            Dispatch::Invalid(reason) => record.result(RecordResult::failed(
                Some(object),
                Failure::InvalidRecord,
                reason,
            )),
            Dispatch::Failed(reason) => record.launch_failed(reason),
        }
    }

    /// The job as the ledger holds it (None: not yet), to dispatch; or the
    /// record's result when it must not be dispatched: another invocation
    /// holds it, it is out of launch attempts, or a lookup failed.
    async fn duplicate_check(
        &self,
        record: &JobRecord<'_>,
    ) -> ControlFlow<RecordResult, Option<Versioned<Job>>> {
        // The ledger is the duplicate guard: a job it holds beyond "queued"
        // was launched (or is being launched) by another invocation.
        let existing = match self.store.job(&record.job_id).await {
            Ok(existing) => existing,
            Err(e) => {
                return ControlFlow::Break(
                    record.launch_failed(format!("reading the job ledger: {e}")),
                );
            }
        };
        if let Some(known) = &existing
            && known.value.state != JobState::Queued
        {
            return ControlFlow::Break(record.duplicate(known.value.instance_id.clone()));
        }
        if let Some(known) = &existing
            && known.value.launch_failures >= self.settings.max_attempts
        {
            return ControlFlow::Break(record.launch_failed(format!(
                "launching its worker failed {} times (MAX_ATTEMPTS={}); \
                 the reconcile writes its failure status",
                known.value.launch_failures, self.settings.max_attempts
            )));
        }
        // Instances launched before the ledger knew them, and emulators
        // that ignore the client token.
        match self.fleet.live_instance(&record.job_id).await {
            Ok(Some(instance)) => ControlFlow::Break(record.duplicate(Some(instance))),
            Ok(None) => ControlFlow::Continue(existing),
            Err(e) => ControlFlow::Break(
                record.launch_failed(format!("looking up the job's instance: {e}")),
            ),
        }
    }
}
