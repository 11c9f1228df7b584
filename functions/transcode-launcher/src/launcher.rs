//! Records to launches: filter, identify, guard against duplicates and the
//! capacity limit, render the worker, launch.

use crate::event::{ObjectCreated, Record};
use crate::fleet::{Fleet, LaunchRequest};
use crate::job::{self, Locations};
use crate::worker::{self, WorkerSettings};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub locations: Locations,
    pub worker: WorkerSettings,
    pub max_running_jobs: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Launched,
    Duplicate,
    Skipped,
    Failed,
}

/// Why a record failed; each is retried by Lambda, then lands in the
/// on-failure destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Failure {
    CapacityReached,
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

pub struct Launcher<F> {
    fleet: F,
    settings: Settings,
}

impl<F: Fleet> Launcher<F> {
    pub fn new(fleet: F, settings: Settings) -> Self {
        Self { fleet, settings }
    }

    pub fn fleet(&self) -> &F {
        &self.fleet
    }

    /// Every record gets a result, in order. The running-job count is read
    /// once, on the first launch, and kept up to date locally.
    pub async fn process(&self, records: &[Record]) -> Vec<RecordResult> {
        let mut running = None;
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
                Record::Created(object) => self.launch(object, &mut running).await,
            };
            results.push(result);
        }
        results
    }

    async fn launch(&self, object: &ObjectCreated, running: &mut Option<usize>) -> RecordResult {
        if let Some(reason) = self.settings.locations.skip_reason(object) {
            return RecordResult::skipped(Some(object), reason);
        }
        let job_id = job::job_id(object);
        let with_job = |mut r: RecordResult| {
            r.job_id = Some(job_id.clone());
            r
        };
        let user_data = match worker::render(&self.settings.worker, object, &job_id) {
            Ok(script) => script,
            Err(e) => {
                return with_job(RecordResult::failed(
                    Some(object),
                    Failure::InvalidRecord,
                    e.to_string(),
                ));
            }
        };
        let launch_failed =
            |e: String| with_job(RecordResult::failed(Some(object), Failure::LaunchFailed, e));
        // EC2 honours the client token; this guard also covers emulators
        // that do not, and says which instance already has the job.
        match self.fleet.live_instance(&job_id).await {
            Ok(Some(instance)) => {
                return with_job(RecordResult {
                    instance_id: Some(instance),
                    ..RecordResult::new(Outcome::Duplicate, Some(object))
                });
            }
            Ok(None) => {}
            Err(e) => return launch_failed(format!("looking up the job's instance: {e}")),
        }
        let count = match *running {
            Some(n) => n,
            None => match self.fleet.running_jobs().await {
                Ok(n) => *running.insert(n),
                Err(e) => return launch_failed(format!("counting running jobs: {e}")),
            },
        };
        let limit = self.settings.max_running_jobs;
        if count >= limit {
            return with_job(RecordResult::failed(
                Some(object),
                Failure::CapacityReached,
                format!(
                    "MAX_RUNNING_JOBS={limit} reached ({count} workers running); \
                     Lambda retries this event, then sends it to the on-failure destination"
                ),
            ));
        }
        let request = LaunchRequest {
            client_token: job_id.clone(),
            user_data,
            tags: job::tags(object, &job_id),
        };
        match self.fleet.launch(&request).await {
            Ok(instance) => {
                *running = Some(count + 1);
                with_job(RecordResult {
                    instance_id: Some(instance),
                    ..RecordResult::new(Outcome::Launched, Some(object))
                })
            }
            Err(e) => launch_failed(format!("RunInstances: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::MemoryFleet;

    pub fn settings(max_running_jobs: usize) -> Settings {
        Settings {
            locations: Locations {
                input_bucket: "in".into(),
                input_prefix: String::new(),
                output_bucket: "out".into(),
                output_prefix: "transcoded/".into(),
                suffixes: vec!["mp4".into()],
            },
            worker: crate::worker::tests::settings(),
            max_running_jobs,
        }
    }

    fn created(key: &str, sequencer: &str) -> Record {
        Record::Created(ObjectCreated {
            bucket: "in".into(),
            key: key.into(),
            size: Some(10),
            etag: Some("e".into()),
            version_id: None,
            sequencer: Some(sequencer.into()),
        })
    }

    #[tokio::test]
    async fn one_instance_per_object_and_duplicates_are_reported() {
        let launcher = Launcher::new(MemoryFleet::default(), settings(10));
        let first = launcher.process(&[created("a.mp4", "01")]).await;
        assert_eq!(first[0].outcome, Outcome::Launched);
        let again = launcher
            .process(&[created("a.mp4", "01"), created("notes.txt", "02")])
            .await;
        assert_eq!(again[0].outcome, Outcome::Duplicate);
        assert_eq!(again[0].instance_id, first[0].instance_id);
        assert_eq!(again[1].outcome, Outcome::Skipped);
        assert_eq!(launcher.fleet().instances.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn capacity_and_launch_errors_fail_the_record() {
        let launcher = Launcher::new(MemoryFleet::default(), settings(1));
        let results = launcher
            .process(&[created("a.mp4", "01"), created("b.mp4", "02")])
            .await;
        assert_eq!(results[0].outcome, Outcome::Launched);
        assert_eq!(results[1].failure, Some(Failure::CapacityReached));
        assert!(
            results[1]
                .reason
                .as_ref()
                .unwrap()
                .contains("MAX_RUNNING_JOBS=1")
        );

        let launcher = Launcher::new(MemoryFleet::default(), settings(5));
        *launcher.fleet().launch_error.lock().unwrap() = Some("Unsupported".into());
        let results = launcher.process(&[created("a.mp4", "01")]).await;
        assert_eq!(results[0].failure, Some(Failure::LaunchFailed));
        assert!(results[0].job_id.is_some());
    }

    #[tokio::test]
    async fn invalid_records_fail_and_the_rest_still_launch() {
        let launcher = Launcher::new(MemoryFleet::default(), settings(5));
        let results = launcher
            .process(&[
                Record::Invalid("Records[0].s3.object.key: bad".into()),
                created("a.mp4", "1"),
            ])
            .await;
        assert_eq!(results[0].failure, Some(Failure::InvalidRecord));
        assert_eq!(results[1].outcome, Outcome::Launched);
    }
}
