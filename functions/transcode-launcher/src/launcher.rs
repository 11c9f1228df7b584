//! Records to launches: filter, identify, guard against duplicates, lease
//! a capacity slot, render the worker, launch; and the scheduled reconcile
//! that relaunches jobs whose worker died.

use crate::event::{ObjectCreated, Record};
use crate::job::{self, Locations};
use crate::jobs::{Job, JobState, Slot, Versioned};
use crate::ports::{Fleet, JobStore, LaunchRequest, StatusStore, StoreError};
use crate::status;
use crate::worker::{self, WorkerSettings};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub locations: Locations,
    pub worker: WorkerSettings,
    pub max_running_jobs: usize,
    /// Launches per job before a failure status is written for it.
    pub max_attempts: u32,
    /// The DynamoDB table of the ledger and the slots.
    pub jobs_table: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Launched,
    Duplicate,
    Skipped,
    /// Every slot is leased to a live worker: the job waits in the ledger
    /// and the reconcile launches it when a slot frees. Not a failure: a
    /// burst beyond MAX_RUNNING_JOBS heals itself.
    #[serde(rename = "capacityQueued")]
    CapacityQueued,
    Failed,
}

/// Why a record failed; each is retried by Lambda, then lands in the
/// on-failure destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Failure {
    InvalidRecord,
    LaunchFailed,
}

/// One record's result, as reported in the invocation's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordResult {
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

impl RecordResult {
    fn new(outcome: Outcome, object: Option<&ObjectCreated>) -> Self {
        Self {
            outcome,
            bucket: object.map(|o| o.bucket.clone()),
            key: object.map(|o| o.key.clone()),
            job_id: None,
            instance_id: None,
            reason: None,
            failure: None,
        }
    }

    fn skipped(object: Option<&ObjectCreated>, reason: String) -> Self {
        Self {
            reason: Some(reason),
            ..Self::new(Outcome::Skipped, object)
        }
    }

    fn failed(object: Option<&ObjectCreated>, failure: Failure, reason: String) -> Self {
        Self {
            reason: Some(reason),
            failure: Some(failure),
            ..Self::new(Outcome::Failed, object)
        }
    }
}

/// Slots outlive the worker's watchdog by this much: boot, download, the
/// watchdog's KILL grace and the uploads. Past it a slot is free even if
/// nobody saw its worker end.
pub const LEASE_MARGIN_SECS: u64 = 1800;
/// DescribeInstances may not list an instance this long after its launch
/// (eventual consistency); before that, "not listed" is not "gone".
pub const LAUNCH_GRACE_SECS: u64 = 300;

/// Instance states in which the worker can still write its status.
const LIVE: &[&str] = &["pending", "running"];

/// What one attempt to start a job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dispatch {
    Launched(String),
    /// Another invocation holds the job; its instance, when known.
    Taken(Option<String>),
    /// Every slot is leased to a live worker; the job is queued in the
    /// ledger (a failure to queue it is `Failed`).
    NoCapacity,
    Invalid(String),
    Failed(String),
}

/// What a reconcile did, for its answer and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    /// Jobs whose worker is still alive.
    pub running: usize,
    /// Jobs whose worker wrote a success status.json; their slots are
    /// released.
    pub done: usize,
    /// Jobs whose worker reported failure in status.json, or wrote one that
    /// is no status: failed for good (not relaunched), slots released.
    pub workers_failed: Vec<WorkerFailure>,
    /// Dead workers' jobs launched again, with the next attempt number.
    pub relaunched: Vec<String>,
    /// Queued jobs launched now that a slot was free.
    pub launched_from_queue: Vec<String>,
    /// Jobs still queued (no free slot).
    pub queued: usize,
    /// Jobs out of attempts (every worker died, or MAX_ATTEMPTS launches
    /// failed): a failure status.json was written for each.
    pub failed: Vec<String>,
    /// Jobs left for the next sweep: the invocation's deadline came first.
    pub deferred: usize,
    /// Slots taken by a launch that never claimed its job (the invocation
    /// died in between), freed before their lease ran out.
    pub orphan_slots_freed: usize,
    pub errors: Vec<String>,
}

/// A job whose worker ended in failure, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerFailure {
    pub job_id: String,
    pub reason: String,
}

pub struct Launcher<F, J, S> {
    fleet: F,
    store: J,
    status: S,
    settings: Settings,
    clock: fn() -> u64,
}

fn spread(job_id: &str) -> usize {
    // FNV-1a: a job's first slot probe is stable and jobs spread out.
    job_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    }) as usize
}

impl<F: Fleet, J: JobStore, S: StatusStore> Launcher<F, J, S> {
    pub fn new(fleet: F, store: J, status: S, settings: Settings) -> Self {
        Self {
            fleet,
            store,
            status,
            settings,
            clock: shared::time::now_secs,
        }
    }

    /// Epoch seconds as the launcher sees them (tests move time on).
    pub fn with_clock(mut self, clock: fn() -> u64) -> Self {
        self.clock = clock;
        self
    }

    pub fn fleet(&self) -> &F {
        &self.fleet
    }

    pub fn store(&self) -> &J {
        &self.store
    }

    pub fn status(&self) -> &S {
        &self.status
    }

    /// Where the worker writes the job's status.json (see worker.sh DEST).
    pub fn status_key(&self, job_id: &str) -> String {
        format!("{}{job_id}/status.json", self.settings.worker.output_prefix)
    }

    fn lease_secs(&self) -> u64 {
        self.settings.worker.max_runtime_secs + LEASE_MARGIN_SECS
    }

    /// Every record gets a result, in order.
    pub async fn process(&self, records: &[Record]) -> Vec<RecordResult> {
        let never = tokio::time::Instant::now() + std::time::Duration::from_secs(86_400 * 365);
        self.process_until(records, never).await
    }

    /// [`Self::process`], each launch cut off at `stop_by`: a call that
    /// hangs fails its record (and those after it) in time for the
    /// invocation to answer, so Lambda retries the event. A launch cut off
    /// midway is left as a Lambda timeout would leave it: the retry finds
    /// the job, and the reconcile settles its slot.
    pub async fn process_until(
        &self,
        records: &[Record],
        stop_by: tokio::time::Instant,
    ) -> Vec<RecordResult> {
        let mut results = Vec::with_capacity(records.len());
        for record in records {
            let result = match record {
                Record::Invalid(reason) => {
                    RecordResult::failed(None, Failure::InvalidRecord, reason.clone())
                }
                Record::NotCreated { event_name } => RecordResult::skipped(
                    None,
                    format!("{event_name:?} is not an ObjectCreated event"),
                ),
                Record::Created(object) => {
                    match tokio::time::timeout_at(stop_by, self.launch(object)).await {
                        Ok(result) => result,
                        Err(_) => RecordResult {
                            job_id: Some(job::job_id(object)),
                            ..RecordResult::failed(
                                Some(object),
                                Failure::LaunchFailed,
                                "not launched before the invocation deadline: \
                                 a service did not answer in time"
                                    .into(),
                            )
                        },
                    }
                }
            };
            results.push(result);
        }
        results
    }

    async fn launch(&self, object: &ObjectCreated) -> RecordResult {
        if let Some(reason) = self.settings.locations.skip_reason(object) {
            return RecordResult::skipped(Some(object), reason);
        }
        let job_id = job::job_id(object);
        let with_job = |mut r: RecordResult| {
            r.job_id = Some(job_id.clone());
            r
        };
        let launch_failed =
            |e: String| with_job(RecordResult::failed(Some(object), Failure::LaunchFailed, e));
        let duplicate = |instance: Option<String>| {
            with_job(RecordResult {
                instance_id: instance,
                ..RecordResult::new(Outcome::Duplicate, Some(object))
            })
        };
        // The ledger is the duplicate guard: a job it holds beyond "queued"
        // was launched (or is being launched) by another invocation.
        let existing = match self.store.job(&job_id).await {
            Ok(existing) => existing,
            Err(e) => return launch_failed(format!("reading the job ledger: {e}")),
        };
        if let Some(known) = &existing
            && known.value.state != JobState::Queued
        {
            return duplicate(known.value.instance_id.clone());
        }
        if let Some(known) = &existing
            && known.value.launch_failures >= self.settings.max_attempts
        {
            return launch_failed(format!(
                "launching its worker failed {} times (MAX_ATTEMPTS={}); \
                 the reconcile writes its failure status",
                known.value.launch_failures, self.settings.max_attempts
            ));
        }
        // Instances launched before the ledger knew them, and emulators
        // that ignore the client token.
        match self.fleet.live_instance(&job_id).await {
            Ok(Some(instance)) => return duplicate(Some(instance)),
            Ok(None) => {}
            Err(e) => return launch_failed(format!("looking up the job's instance: {e}")),
        }
        let (job, expected) = match existing {
            Some(known) => (known.value, Some(known.version)),
            None => (
                Job {
                    id: job_id.clone(),
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
            Dispatch::Launched(instance) => with_job(RecordResult {
                instance_id: Some(instance),
                ..RecordResult::new(Outcome::Launched, Some(object))
            }),
            Dispatch::Taken(instance) => duplicate(instance),
            Dispatch::NoCapacity => {
                let limit = self.settings.max_running_jobs;
                with_job(RecordResult {
                    reason: Some(format!(
                        "MAX_RUNNING_JOBS={limit} reached (every slot is leased to a live worker); \
                         the job is queued in the ledger and the reconcile launches it when a slot frees"
                    )),
                    ..RecordResult::new(Outcome::CapacityQueued, Some(object))
                })
            }
            Dispatch::Invalid(reason) => with_job(RecordResult::failed(
                Some(object),
                Failure::InvalidRecord,
                reason,
            )),
            Dispatch::Failed(reason) => launch_failed(reason),
        }
    }

    /// Takes a slot, claims the job in the ledger (`expected`: the version
    /// read, None if absent), and launches its worker.
    pub async fn dispatch(&self, job: Job, expected: Option<u64>) -> Dispatch {
        let user_data = match worker::render(&self.settings.worker, &job.object, &job.id) {
            Ok(script) => script,
            Err(e) => return Dispatch::Invalid(e.to_string()),
        };
        let now = (self.clock)();
        let (slot_index, slot_version) = match self.acquire_slot(&job, now).await {
            Ok(Some(slot)) => slot,
            Ok(None) => {
                if expected.is_none() {
                    // Queued, so that the reconcile launches it even after
                    // Lambda's retries run out. Losing this write means
                    // another invocation recorded the job first.
                    let queued = Job {
                        state: JobState::Queued,
                        updated_at: now,
                        ..job
                    };
                    if let Err(e) = self.store.put_job(&queued, None).await {
                        return Dispatch::Failed(format!("queueing the job: {e}"));
                    }
                }
                return Dispatch::NoCapacity;
            }
            Err(e) => return Dispatch::Failed(e),
        };
        let launching = Job {
            state: JobState::Launching,
            slot: Some(slot_index),
            instance_id: None,
            updated_at: now,
            ..job
        };
        let job_version = match self.store.put_job(&launching, expected).await {
            Ok(Some(version)) => version,
            Ok(None) => {
                self.release_slot(slot_index, slot_version).await;
                let holder = self.store.job(&launching.id).await.ok().flatten();
                return Dispatch::Taken(holder.and_then(|j| j.value.instance_id));
            }
            Err(e) => {
                self.release_slot(slot_index, slot_version).await;
                return Dispatch::Failed(format!("claiming the job in the ledger: {e}"));
            }
        };
        let mut tags = job::tags(&launching.object, &launching.id);
        tags.push((job::TAG_ATTEMPT.to_owned(), launching.attempt.to_string()));
        let request = LaunchRequest {
            client_token: job::client_token(&launching.id, launching.attempt),
            user_data,
            tags,
        };
        match self.fleet.launch(&request).await {
            Ok(instance) => {
                // If these writes fail, the job stays "launching" with its
                // slot leased; the reconcile finds the instance by its tag.
                let slot = Slot {
                    job_id: launching.id.clone(),
                    instance_id: Some(instance.clone()),
                    attempt: launching.attempt,
                    expires_at: now + self.lease_secs(),
                };
                if let Err(e) = self
                    .store
                    .put_slot(slot_index, &slot, Some(slot_version))
                    .await
                {
                    tracing::warn!(job = %launching.id, error = %e, "slot not updated");
                }
                let running = Job {
                    state: JobState::Running,
                    instance_id: Some(instance.clone()),
                    ..launching
                };
                if let Err(e) = self.store.put_job(&running, Some(job_version)).await {
                    tracing::warn!(job = %running.id, error = %e, "ledger not updated");
                }
                Dispatch::Launched(instance)
            }
            Err(e) => {
                self.release_slot(slot_index, slot_version).await;
                let queued = Job {
                    state: JobState::Queued,
                    slot: None,
                    launch_failures: launching.launch_failures + 1,
                    ..launching
                };
                if let Err(e) = self.store.put_job(&queued, Some(job_version)).await {
                    tracing::warn!(job = %queued.id, error = %e, "ledger not updated");
                }
                Dispatch::Failed(format!("RunInstances: {e}"))
            }
        }
    }

    /// A slot leased to this attempt of `job`: a free or expired one, else
    /// one whose worker's instance is gone. None when every slot holds a
    /// live worker (or one launched too recently to be listed).
    async fn acquire_slot(&self, job: &Job, now: u64) -> Result<Option<(usize, u64)>, String> {
        let slots = self.settings.max_running_jobs;
        let first = spread(&job.id) % slots;
        let claim = Slot {
            job_id: job.id.clone(),
            instance_id: None,
            attempt: job.attempt,
            expires_at: now + self.lease_secs(),
        };
        let store_error = |e: StoreError| format!("capacity slots: {e}");
        let mut leased = Vec::new();
        for index in (0..slots).map(|k| (first + k) % slots) {
            let current = self.store.slot(index).await.map_err(store_error)?;
            let expected = match &current {
                None => None,
                Some(slot) if slot.value.is_free(now) => Some(slot.version),
                Some(slot) => {
                    leased.push((index, slot.clone()));
                    continue;
                }
            };
            // Losing the write means another invocation took this slot.
            if let Some(version) = self
                .store
                .put_slot(index, &claim, expected)
                .await
                .map_err(store_error)?
            {
                return Ok(Some((index, version)));
            }
        }
        let ids: Vec<String> = leased
            .iter()
            .filter_map(|(_, s)| s.value.instance_id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let states = self
            .fleet
            .instance_states(&ids)
            .await
            .map_err(|e| format!("checking the slots' workers: {e}"))?;
        for (index, slot) in leased {
            let gone = slot
                .value
                .instance_id
                .as_ref()
                .and_then(|id| states.get(id))
                .is_some_and(|state| !LIVE.contains(&state.as_str()));
            if gone
                && let Some(version) = self
                    .store
                    .put_slot(index, &claim, Some(slot.version))
                    .await
                    .map_err(store_error)?
            {
                return Ok(Some((index, version)));
            }
        }
        Ok(None)
    }

    async fn release_slot(&self, index: usize, version: u64) {
        if let Err(e) = self
            .store
            .put_slot(index, &Slot::default(), Some(version))
            .await
        {
            tracing::warn!(slot = index, error = %e, "slot not released; its lease will expire");
        }
    }

    /// Frees the job's slot if this attempt of the job still holds it (the
    /// job id alone would match the next attempt's claim of the same slot).
    async fn release_job_slot(&self, job: &Job) {
        let Some(index) = job.slot else { return };
        if let Ok(Some(slot)) = self.store.slot(index).await
            && slot.value.job_id == job.id
            && slot.value.attempt == job.attempt
        {
            self.release_slot(index, slot.version).await;
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
        let mut capacity_left = true;
        let total = jobs.len();
        for (done_so_far, Versioned { version, value }) in jobs.into_iter().enumerate() {
            if std::time::Instant::now() >= deadline {
                report.deferred = total - done_so_far;
                break;
            }
            if value.state == JobState::Queued
                && value.launch_failures >= self.settings.max_attempts
            {
                let error = format!(
                    "launching its worker failed {} times (MAX_ATTEMPTS={}); \
                     the launcher's logs hold each error",
                    value.launch_failures, self.settings.max_attempts
                );
                self.fail_job(value, version, &error, report).await;
                continue;
            }
            if value.state == JobState::Queued {
                if !capacity_left {
                    report.queued += 1;
                    continue;
                }
                let id = value.id.clone();
                match self.dispatch(value, Some(version)).await {
                    Dispatch::Launched(_) => report.launched_from_queue.push(id),
                    Dispatch::NoCapacity => {
                        capacity_left = false;
                        report.queued += 1;
                    }
                    Dispatch::Taken(_) => {}
                    Dispatch::Invalid(e) | Dispatch::Failed(e) => {
                        report.errors.push(format!("{id}: {e}"))
                    }
                }
                continue;
            }
            let state = value.instance_id.as_ref().and_then(|id| states.get(id));
            let recent = value.updated_at + LAUNCH_GRACE_SECS > now;
            match state {
                Some(state) if LIVE.contains(&state.as_str()) => {
                    report.running += 1;
                    continue;
                }
                None if recent => {
                    report.running += 1;
                    continue;
                }
                _ => {}
            }
            if value.instance_id.is_none() {
                // The launching invocation died before recording its
                // instance: adopt the instance if there is one.
                match self.fleet.live_instance(&value.id).await {
                    Ok(Some(instance)) => {
                        let running = Job {
                            state: JobState::Running,
                            instance_id: Some(instance),
                            updated_at: now,
                            ..value
                        };
                        if let Err(e) = self.store.put_job(&running, Some(version)).await {
                            report.errors.push(format!("{}: {e}", running.id));
                        }
                        report.running += 1;
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        report.errors.push(format!("{}: {e}", value.id));
                        continue;
                    }
                }
            }
            // The worker is gone. It uploads status.json before it shuts
            // down, so a status written now is never missed.
            let key = self.status_key(&value.id);
            let written = match self.status.get(&key).await {
                Ok(written) => written,
                Err(e) => {
                    report
                        .errors
                        .push(format!("{}: status.json: {e}", value.id));
                    continue;
                }
            };
            // Each step below first wins the job's conditional write, and
            // only then frees its slot: of two sweeps, one acts, and none
            // frees a slot the other's relaunch just took. The job's new
            // state is what keeps a later sweep from counting it again.
            match written.as_deref().map(status::read) {
                Some(status::Report::Success) => {
                    self.settle(&value, version, JobState::Done, report, |r| r.done += 1)
                        .await;
                    continue;
                }
                // Failed for good: the worker ran to its end, and the same
                // input, image and settings would fail the same way (a
                // missing ffmpeg, an input ffmpeg rejects, a run past
                // MAX_RUNTIME). A relaunch would also race the old report.
                Some(status::Report::WorkerFailed(reason)) => {
                    let job_id = value.id.clone();
                    self.settle(&value, version, JobState::WorkerFailed, report, |r| {
                        r.workers_failed.push(WorkerFailure { job_id, reason })
                    })
                    .await;
                    continue;
                }
                // A sweep wrote the job's failure status, then lost its
                // ledger write: finish what it started.
                Some(status::Report::LauncherFailed) => {
                    let job_id = value.id.clone();
                    self.settle(&value, version, JobState::Failed, report, |r| {
                        r.failed.push(job_id)
                    })
                    .await;
                    continue;
                }
                None => {}
            }
            let lost = format!(
                "the worker of attempt {} ({}, {}) ended without writing status.json",
                value.attempt,
                value.instance_id.as_deref().unwrap_or("no instance"),
                state.map_or("not listed", String::as_str)
            );
            tracing::warn!(job = %value.id, "{lost}");
            if value.attempt < self.settings.max_attempts {
                let next = Job {
                    attempt: value.attempt + 1,
                    state: JobState::Queued,
                    instance_id: None,
                    slot: None,
                    updated_at: now,
                    ..value.clone()
                };
                let id = next.id.clone();
                let next_version = match self.store.put_job(&next, Some(version)).await {
                    Ok(Some(v)) => v,
                    Ok(None) => continue, // another sweep took it
                    Err(e) => {
                        report.errors.push(format!("{id}: {e}"));
                        continue;
                    }
                };
                self.release_job_slot(&value).await;
                if !capacity_left {
                    report.queued += 1;
                    continue;
                }
                match self.dispatch(next, Some(next_version)).await {
                    Dispatch::Launched(_) => report.relaunched.push(id),
                    Dispatch::NoCapacity => {
                        capacity_left = false;
                        report.queued += 1;
                    }
                    Dispatch::Taken(_) => {}
                    Dispatch::Invalid(e) | Dispatch::Failed(e) => {
                        report.errors.push(format!("{id}: {e}"))
                    }
                }
            } else {
                let error = format!(
                    "no worker wrote a status after {} attempt(s) (MAX_ATTEMPTS={}); last: {lost}",
                    value.attempt, self.settings.max_attempts
                );
                self.fail_job(value, version, &error, report).await;
            }
        }
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
fn failure_status(job: &Job, error: &str) -> String {
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

#[cfg(test)]
pub(crate) mod tests;
