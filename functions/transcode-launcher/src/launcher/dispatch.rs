//! One job to a running worker: lease a capacity slot, claim the job in the
//! ledger, launch, record the instance; and giving slots back.

use super::{Dispatch, LIVE, Launcher, spread};
use crate::job;
use crate::jobs::{Job, JobState, Slot};
use crate::ports::{Fleet, JobStore, LaunchRequest, StatusStore, StoreError};
use crate::worker;

/// A leased slot: its index and the version its next write names.
type Lease = (usize, u64);

impl<F: Fleet, J: JobStore, S: StatusStore> Launcher<F, J, S> {
    /// Takes a slot, claims the job in the ledger (`expected`: the version
    /// read, None if absent), and launches its worker.
    pub async fn dispatch(&self, job: Job, expected: Option<u64>) -> Dispatch {
        let user_data = match worker::render(&self.settings.worker, &job.object, &job.id) {
            Ok(script) => script,
            Err(e) => return Dispatch::Invalid(e.to_string()),
        };
        let now = (self.clock)();
        let lease = match self.lease_slot(&job, expected, now).await {
            Ok(lease) => lease,
            Err(dispatch) => return dispatch,
        };
        let launching = Job {
            state: JobState::Launching,
            slot: Some(lease.0),
            instance_id: None,
            updated_at: now,
            ..job
        };
        let job_version = match self.claim_job(&launching, expected, lease).await {
            Ok(version) => version,
            Err(dispatch) => return dispatch,
        };
        self.launch_and_record(launching, job_version, lease, user_data, now)
            .await
    }

    /// A slot for the job, or what the dispatch came to without one: no
    /// capacity (a job new to the ledger is queued there) or a failure.
    async fn lease_slot(
        &self,
        job: &Job,
        expected: Option<u64>,
        now: u64,
    ) -> Result<Lease, Dispatch> {
        match self.acquire_slot(job, now).await {
            Ok(Some(lease)) => Ok(lease),
            Ok(None) => {
                if expected.is_none() {
                    // Queued, so that the reconcile launches it even after
                    // Lambda's retries run out. Losing this write means
                    // another invocation recorded the job first.
                    let queued = Job {
                        state: JobState::Queued,
                        updated_at: now,
                        ..job.clone()
                    };
                    if let Err(e) = self.store.put_job(&queued, None).await {
                        return Err(Dispatch::Failed(format!("queueing the job: {e}")));
                    }
                }
                Err(Dispatch::NoCapacity)
            }
            Err(e) => Err(Dispatch::Failed(e)),
        }
    }

    /// Writes the job as launching in the leased slot: the job's new
    /// version, or (the slot given back) what the dispatch came to when
    /// another invocation claimed the job first or the write failed.
    async fn claim_job(
        &self,
        launching: &Job,
        expected: Option<u64>,
        lease: Lease,
    ) -> Result<u64, Dispatch> {
        let (slot_index, slot_version) = lease;
        match self.store.put_job(launching, expected).await {
            Ok(Some(version)) => Ok(version),
            Ok(None) => {
                self.release_slot(slot_index, slot_version).await;
                let holder = self.store.job(&launching.id).await.ok().flatten();
                Err(Dispatch::Taken(holder.and_then(|j| j.value.instance_id)))
            }
            Err(e) => {
                self.release_slot(slot_index, slot_version).await;
                Err(Dispatch::Failed(format!(
                    "claiming the job in the ledger: {e}"
                )))
            }
        }
    }

    /// RunInstances for the claimed job, then the instance into its slot
    /// and the ledger; a failed launch gives the slot back and queues the
    /// job again, one launch failure more.
    async fn launch_and_record(
        &self,
        launching: Job,
        job_version: u64,
        lease: Lease,
        user_data: String,
        now: u64,
    ) -> Dispatch {
        let (slot_index, slot_version) = lease;
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
    async fn acquire_slot(&self, job: &Job, now: u64) -> Result<Option<Lease>, String> {
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
    pub(super) async fn release_job_slot(&self, job: &Job) {
        let Some(index) = job.slot else { return };
        if let Ok(Some(slot)) = self.store.slot(index).await
            && slot.value.job_id == job.id
            && slot.value.attempt == job.attempt
        {
            self.release_slot(index, slot.version).await;
        }
    }
}
