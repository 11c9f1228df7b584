//! The job ledger and the capacity slots, one versioned store: every write
//! is conditional on the version read, so two invocations never both win
//! the same slot or the same job.

use crate::event::ObjectCreated;

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
