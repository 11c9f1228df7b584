//! Records to launches: filter, identify, guard against duplicates, lease
//! a capacity slot, render the worker, launch; and the scheduled reconcile
//! that relaunches jobs whose worker died. Here: the `Launcher`, its
//! settings and results; its steps are in `launch.rs`, `dispatch.rs` and
//! `reconcile.rs`.

use crate::event::{ObjectCreated, Record};
use crate::job::{self, Locations};
use crate::ports::{Fleet, JobStore, StatusStore};
use crate::worker::WorkerSettings;
use serde::Serialize;

mod dispatch;
mod launch;
mod reconcile;

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
                    // Boxed: a launch nests the SDK's futures deep enough to
                    // pass the compiler's layout recursion limit in main's.
                    let launch = Box::pin(self.launch(object));
                    match tokio::time::timeout_at(stop_by, launch).await {
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
}

#[cfg(test)]
pub(crate) mod tests;
