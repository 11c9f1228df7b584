//! The scheduled sweep: every active job ends with a status.json or is
//! launched again, queued jobs are launched as slots free up, and slots
//! nobody claimed are freed.

use super::{Dispatch, LAUNCH_GRACE_SECS, LIVE, Launcher, ReconcileReport, WorkerFailure};
use crate::jobs::{Job, JobState, Slot, Versioned};
use crate::ports::{Fleet, JobStore, StatusStore};
use crate::status;
use std::collections::HashMap;

/// What one sweep carries from job to job.
struct Sweep {
    /// Epoch seconds when the sweep began.
    now: u64,
    /// The state of each listed instance of the swept jobs.
    states: HashMap<String, String>,
    /// False once a dispatch found every slot leased: the queued jobs after
    /// it are counted, not dispatched.
    capacity_left: bool,
}

impl<F: Fleet, J: JobStore, S: StatusStore> Launcher<F, J, S> {
    /// The scheduled sweep: every job the ledger holds as active ends with
    /// a status.json, or is launched again, until `MAX_ATTEMPTS`; queued
    /// jobs are launched as slots free up. Jobs not reached by `deadline`
    /// are left to the next sweep.
    pub async fn reconcile(&self, deadline: std::time::Instant) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        self.reconcile_into(deadline, &mut report).await;
        report
    }

    /// [`Self::reconcile`] into a report the caller owns: each job is counted
    /// as soon as its ledger write wins, so a sweep the caller cuts off (a
    /// call hanging past the invocation's deadline) still reports what it
    /// settled. A settled job is never looked at again: a lost count would
    /// be an alarm that never fires.
    pub async fn reconcile_into(&self, deadline: std::time::Instant, report: &mut ReconcileReport) {
        let now = (self.clock)();
        let jobs = match self.store.active_jobs().await {
            Ok(jobs) => jobs,
            Err(e) => {
                report.errors.push(format!("reading the job ledger: {e}"));
                return;
            }
        };
        let ids: Vec<String> = jobs
            .iter()
            .filter_map(|j| j.value.instance_id.clone())
            .collect();
        let states = match self.fleet.instance_states(&ids).await {
            Ok(states) => states,
            Err(e) => {
                report.errors.push(format!("DescribeInstances: {e}"));
                return;
            }
        };
        self.free_orphan_slots(&jobs, now, report).await;
        let mut sweep = Sweep {
            now,
            states,
            capacity_left: true,
        };
        let total = jobs.len();
        for (done_so_far, Versioned { version, value }) in jobs.into_iter().enumerate() {
            if std::time::Instant::now() >= deadline {
                report.deferred = total - done_so_far;
                break;
            }
            match value.state {
                JobState::Queued => self.sweep_queued(&mut sweep, value, version, report).await,
                _ => self.sweep_active(&mut sweep, value, version, report).await,
            }
        }
    }

    /// Frees slots leased, longer ago than the launch grace, to a job that
    /// holds no claim on them: the launching invocation died between taking
    /// the slot and claiming the job.
    async fn free_orphan_slots(
        &self,
        jobs: &[Versioned<Job>],
        now: u64,
        report: &mut ReconcileReport,
    ) {
        for index in 0..self.settings.max_running_jobs {
            let slot = match self.store.slot(index).await {
                Ok(Some(slot)) => slot,
                Ok(None) => continue,
                Err(e) => {
                    report.errors.push(format!("slot {index}: {e}"));
                    return;
                }
            };
            let taken_at = slot.value.expires_at.saturating_sub(self.lease_secs());
            let claimed = jobs
                .iter()
                .any(|j| j.value.id == slot.value.job_id && j.value.slot == Some(index));
            if slot.value.is_free(now)
                || slot.value.instance_id.is_some()
                || claimed
                || taken_at + LAUNCH_GRACE_SECS > now
            {
                continue;
            }
            if let Ok(Some(_)) = self
                .store
                .put_slot(index, &Slot::default(), Some(slot.version))
                .await
            {
                report.orphan_slots_freed += 1;
            }
        }
    }

    /// A queued job: failed for good once its launches failed
    /// `MAX_ATTEMPTS` times, else launched if a slot is free.
    async fn sweep_queued(
        &self,
        sweep: &mut Sweep,
        job: Job,
        version: u64,
        report: &mut ReconcileReport,
    ) {
        if job.launch_failures >= self.settings.max_attempts {
            let error = format!(
                "launching its worker failed {} times (MAX_ATTEMPTS={}); \
                 the launcher's logs hold each error",
                job.launch_failures, self.settings.max_attempts
            );
            self.fail_job(job, version, &error, report).await;
            return;
        }
        self.dispatch_in_sweep(sweep, job, version, report, |r, id| {
            r.launched_from_queue.push(id)
        })
        .await;
    }

    /// Dispatches a queued job unless an earlier dispatch of the sweep
    /// found every slot leased; `launched` counts a launch.
    async fn dispatch_in_sweep(
        &self,
        sweep: &mut Sweep,
        job: Job,
        version: u64,
        report: &mut ReconcileReport,
        launched: impl FnOnce(&mut ReconcileReport, String),
    ) {
        if !sweep.capacity_left {
            report.queued += 1;
            return;
        }
        let id = job.id.clone();
        match self.dispatch(job, Some(version)).await {
            Dispatch::Launched(_) => launched(report, id),
            Dispatch::NoCapacity => {
                sweep.capacity_left = false;
                report.queued += 1;
            }
            Dispatch::Taken(_) => {}
            Dispatch::Invalid(e) | Dispatch::Failed(e) => report.errors.push(format!("{id}: {e}")),
        }
    }

    /// A launching or running job: counted while its worker lives (or was
    /// launched too recently to be listed), adopted if its instance was
    /// never recorded, else its worker is gone.
    async fn sweep_active(
        &self,
        sweep: &mut Sweep,
        job: Job,
        version: u64,
        report: &mut ReconcileReport,
    ) {
        let state = job.instance_id.as_ref().and_then(|id| sweep.states.get(id));
        let recent = job.updated_at + LAUNCH_GRACE_SECS > sweep.now;
        match state {
            Some(state) if LIVE.contains(&state.as_str()) => {
                report.running += 1;
                return;
            }
            None if recent => {
                report.running += 1;
                return;
            }
            _ => {}
        }
        if job.instance_id.is_none() && self.adopt_orphan(&job, version, sweep.now, report).await {
            return;
        }
        let state = state.cloned();
        self.job_gone(sweep, job, version, state, report).await;
    }

    /// The launching invocation died before recording its instance: adopt
    /// the instance if there is one. True when the sweep is done with the
    /// job (adopted, or the lookup failed).
    async fn adopt_orphan(
        &self,
        job: &Job,
        version: u64,
        now: u64,
        report: &mut ReconcileReport,
    ) -> bool {
        match self.fleet.live_instance(&job.id).await {
            Ok(Some(instance)) => {
                let running = Job {
                    state: JobState::Running,
                    instance_id: Some(instance),
                    updated_at: now,
                    ..job.clone()
                };
                if let Err(e) = self.store.put_job(&running, Some(version)).await {
                    report.errors.push(format!("{}: {e}", running.id));
                }
                report.running += 1;
                true
            }
            Ok(None) => false,
            Err(e) => {
                report.errors.push(format!("{}: {e}", job.id));
                true
            }
        }
    }

    /// The worker is gone. It uploads status.json before it shuts down, so
    /// a status written now is never missed: the job settles as it says,
    /// and without one it is launched again or failed for good.
    ///
    /// Each step first wins the job's conditional write, and only then
    /// frees its slot: of two sweeps, one acts, and none frees a slot the
    /// other's relaunch just took. The job's new state is what keeps a
    /// later sweep from counting it again.
    async fn job_gone(
        &self,
        sweep: &mut Sweep,
        job: Job,
        version: u64,
        state: Option<String>,
        report: &mut ReconcileReport,
    ) {
        let key = self.status_key(&job.id);
        let written = match self.status.get(&key).await {
            Ok(written) => written,
            Err(e) => {
                report.errors.push(format!("{}: status.json: {e}", job.id));
                return;
            }
        };
        match written.as_deref().map(status::read) {
            Some(status::Report::Success) => {
                self.settle(&job, version, JobState::Done, report, |r| r.done += 1)
                    .await;
            }
            // Failed for good: the worker ran to its end, and the same
            // input, image and settings would fail the same way (a
            // missing ffmpeg, an input ffmpeg rejects, a run past
            // MAX_RUNTIME). A relaunch would also race the old report.
            Some(status::Report::WorkerFailed(reason)) => {
                let job_id = job.id.clone();
                self.settle(&job, version, JobState::WorkerFailed, report, |r| {
                    r.workers_failed.push(WorkerFailure { job_id, reason })
                })
                .await;
            }
            // A sweep wrote the job's failure status, then lost its
            // ledger write: finish what it started.
            Some(status::Report::LauncherFailed) => {
                let job_id = job.id.clone();
                self.settle(&job, version, JobState::Failed, report, |r| {
                    r.failed.push(job_id)
                })
                .await;
            }
            None => {
                self.relaunch_or_fail(sweep, job, version, state, report)
                    .await
            }
        }
    }

    /// A worker that ended without a status: its job is launched again
    /// while attempts are left, else failed for good.
    async fn relaunch_or_fail(
        &self,
        sweep: &mut Sweep,
        job: Job,
        version: u64,
        state: Option<String>,
        report: &mut ReconcileReport,
    ) {
        let lost = format!(
            "the worker of attempt {} ({}, {}) ended without writing status.json",
            job.attempt,
            job.instance_id.as_deref().unwrap_or("no instance"),
            state.as_deref().unwrap_or("not listed")
        );
        tracing::warn!(job = %job.id, "{lost}");
        if job.attempt < self.settings.max_attempts {
            self.relaunch(sweep, job, version, report).await;
        } else {
            let error = format!(
                "no worker wrote a status after {} attempt(s) (MAX_ATTEMPTS={}); last: {lost}",
                job.attempt, self.settings.max_attempts
            );
            self.fail_job(job, version, &error, report).await;
        }
    }

    /// Queues the job's next attempt (winning the write first), frees the
    /// dead attempt's slot, and dispatches the next one.
    async fn relaunch(
        &self,
        sweep: &mut Sweep,
        job: Job,
        version: u64,
        report: &mut ReconcileReport,
    ) {
        let next = Job {
            attempt: job.attempt + 1,
            state: JobState::Queued,
            instance_id: None,
            slot: None,
            updated_at: sweep.now,
            ..job.clone()
        };
        let next_version = match self.store.put_job(&next, Some(version)).await {
            Ok(Some(v)) => v,
            Ok(None) => return, // another sweep took it
            Err(e) => {
                report.errors.push(format!("{}: {e}", next.id));
                return;
            }
        };
        self.release_job_slot(&job).await;
        self.dispatch_in_sweep(sweep, next, next_version, report, |r, id| {
            r.relaunched.push(id)
        })
        .await;
    }

    /// Moves the job to a final state and frees its slot. `count` records
    /// it when this sweep's write wins (a lost write means another sweep
    /// settled it), before the slot is freed: a cut-off there keeps the count.
    async fn settle(
        &self,
        job: &Job,
        version: u64,
        state: JobState,
        report: &mut ReconcileReport,
        count: impl FnOnce(&mut ReconcileReport),
    ) {
        let settled = Job {
            state,
            updated_at: (self.clock)(),
            ..job.clone()
        };
        match self.store.put_job(&settled, Some(version)).await {
            Ok(Some(_)) => {
                count(report);
                self.release_job_slot(job).await;
            }
            Ok(None) => {}
            Err(e) => report.errors.push(format!("{}: {e}", job.id)),
        }
    }

    /// Writes the job's failure status.json, then marks it failed and frees
    /// its slot. The status first: if writing it fails, the job stays
    /// active and the next sweep writes it. Two sweeps write the same text;
    /// only the one that wins the ledger counts it.
    async fn fail_job(&self, job: Job, version: u64, error: &str, report: &mut ReconcileReport) {
        let body = failure_status(&job, error);
        if let Err(e) = self.status.put(&self.status_key(&job.id), &body).await {
            report
                .errors
                .push(format!("{}: writing the failure status.json: {e}", job.id));
            return;
        }
        let job_id = job.id.clone();
        self.settle(&job, version, JobState::Failed, report, |r| {
            r.failed.push(job_id)
        })
        .await;
    }
}

/// The status.json written for a job whose every attempt died, or whose
/// worker could not be launched.
pub(super) fn failure_status(job: &Job, error: &str) -> String {
    serde_json::json!({
        "jobId": job.id,
        "status": "failure",
        "error": error,
        "attempts": job.attempt,
        "launchFailures": job.launch_failures,
        "lastInstanceId": job.instance_id,
        "source": {
            "bucket": job.object.bucket,
            "key": job.object.key,
            "versionId": job.object.version_id,
            "eTag": job.object.etag,
        },
        "writtenBy": status::WRITTEN_BY_LAUNCHER,
    })
    .to_string()
}
