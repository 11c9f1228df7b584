//! The job ledger and the capacity slots, one versioned store: every write
//! is conditional on the version read, so two invocations never both win
//! the same slot or the same job.

use crate::event::ObjectCreated;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

/// A stored value and the version its next write must name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned<T> {
    pub version: u64,
    pub value: T,
}

/// One unit of `MAX_RUNNING_JOBS`. Free when it names no job or its lease
/// has expired.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Slot {
    pub job_id: String,
    pub instance_id: Option<String>,
    /// The job's attempt that took the slot. A release names it: the slot
    /// of a job's next attempt (same id, same slot) is never freed by a
    /// sweep that saw the previous one die. 0 in slots written before.
    pub attempt: u32,
    /// Epoch seconds after which anyone may take the slot.
    pub expires_at: u64,
}

impl Slot {
    pub fn is_free(&self, now: u64) -> bool {
        self.job_id.is_empty() || self.expires_at <= now
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for a slot; the reconcile launches it when one frees.
    Queued,
    /// A slot is held and RunInstances is under way.
    Launching,
    Running,
    /// `status.json` was written by the worker.
    Done,
    /// Every attempt died; a failure `status.json` was written for it.
    Failed,
    /// The worker's `status.json` reported failure, or was no status.
    WorkerFailed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Launching => "launching",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::WorkerFailed => "worker-failed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Launching,
            Self::Running,
            Self::Done,
            Self::Failed,
            Self::WorkerFailed,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn is_active(self) -> bool {
        matches!(self, Self::Queued | Self::Launching | Self::Running)
    }
}

/// The ledger's record of one job: enough to launch it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: String,
    pub object: ObjectCreated,
    /// 1 for the first launch.
    pub attempt: u32,
    /// RunInstances calls for this job that failed, over all attempts; at
    /// MAX_ATTEMPTS the reconcile fails the job instead of trying again.
    pub launch_failures: u32,
    pub state: JobState,
    pub instance_id: Option<String>,
    pub slot: Option<usize>,
    /// Epoch seconds of the last state change.
    pub updated_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// `expected`: None writes only if the item is absent; Some(v) only if the
/// stored version is v. Ok(Some(new version)) when the write won, Ok(None)
/// when the condition failed.
pub trait JobStore: Send + Sync {
    fn slot(
        &self,
        index: usize,
    ) -> impl Future<Output = Result<Option<Versioned<Slot>>, StoreError>> + Send;
    fn put_slot(
        &self,
        index: usize,
        slot: &Slot,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    fn job(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<Versioned<Job>>, StoreError>> + Send;
    fn put_job(
        &self,
        job: &Job,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// Queued, launching and running jobs.
    fn active_jobs(&self) -> impl Future<Output = Result<Vec<Versioned<Job>>, StoreError>> + Send;
}

/// The store in memory, for unit tests and benchmarks.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub slots: Mutex<HashMap<usize, Versioned<Slot>>>,
    pub jobs: Mutex<HashMap<String, Versioned<Job>>>,
}

fn conditional_put<K: std::hash::Hash + Eq, T: Clone>(
    map: &mut HashMap<K, Versioned<T>>,
    key: K,
    value: &T,
    expected: Option<u64>,
) -> Option<u64> {
    if map.get(&key).map(|v| v.version) != expected {
        return None;
    }
    let version = expected.unwrap_or(0) + 1;
    map.insert(
        key,
        Versioned {
            version,
            value: value.clone(),
        },
    );
    Some(version)
}

impl JobStore for MemoryStore {
    async fn slot(&self, index: usize) -> Result<Option<Versioned<Slot>>, StoreError> {
        Ok(self
            .slots
            .lock()
            .expect("not poisoned")
            .get(&index)
            .cloned())
    }

    async fn put_slot(
        &self,
        index: usize,
        slot: &Slot,
        expected: Option<u64>,
    ) -> Result<Option<u64>, StoreError> {
        let mut slots = self.slots.lock().expect("not poisoned");
        Ok(conditional_put(&mut slots, index, slot, expected))
    }

    async fn job(&self, job_id: &str) -> Result<Option<Versioned<Job>>, StoreError> {
        Ok(self.jobs.lock().expect("not poisoned").get(job_id).cloned())
    }

    async fn put_job(&self, job: &Job, expected: Option<u64>) -> Result<Option<u64>, StoreError> {
        let mut jobs = self.jobs.lock().expect("not poisoned");
        Ok(conditional_put(&mut jobs, job.id.clone(), job, expected))
    }

    async fn active_jobs(&self) -> Result<Vec<Versioned<Job>>, StoreError> {
        let jobs = self.jobs.lock().expect("not poisoned");
        let mut active: Vec<_> = jobs
            .values()
            .filter(|j| j.value.state.is_active())
            .cloned()
            .collect();
        active.sort_by(|a, b| a.value.id.cmp(&b.value.id));
        Ok(active)
    }
}
