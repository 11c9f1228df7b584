use super::reconcile::failure_status;
use super::*;
use crate::jobs::{Job, JobState, Slot};
use crate::testing::{InMemoryFleet, InMemoryJobs, InMemoryStatus};

type InMemoryLauncher = Launcher<InMemoryFleet, InMemoryJobs, InMemoryStatus>;

fn memory_launcher(max_running_jobs: usize) -> InMemoryLauncher {
    Launcher::new(
        InMemoryFleet::default(),
        InMemoryJobs::default(),
        InMemoryStatus::default(),
        settings(max_running_jobs),
    )
}

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
        max_attempts: 3,
        jobs_table: "jobs".into(),
    }
}

pub fn created(key: &str, sequencer: &str) -> Record {
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
    let launcher = memory_launcher(10);
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
async fn a_launch_cut_off_at_the_deadline_fails_and_the_sweep_launches_it_once() {
    use std::sync::atomic::Ordering;
    let launcher = memory_launcher(1);
    launcher.fleet().hang_launches.store(true, Ordering::SeqCst);
    let soon = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
    let records = [created("a.mp4", "01"), created("b.mp4", "02")];
    let cut = launcher.process_until(&records, soon).await;
    // a hung, so the event fails and is retried; b found a's slot
    // taken and waits in the ledger.
    assert_eq!(cut[0].failure, Some(Failure::LaunchFailed), "{cut:?}");
    assert_eq!(cut[1].outcome, Outcome::CapacityQueued, "{cut:?}");
    // As after a Lambda timeout: the ledger holds a's launch as under
    // way, so Lambda's retry launches nothing twice...
    launcher
        .fleet()
        .hang_launches
        .store(false, Ordering::SeqCst);
    let retried = launcher.process(&records[..1]).await;
    assert_eq!(retried[0].outcome, Outcome::Duplicate, "{retried:?}");
    assert!(launcher.fleet().instances.lock().unwrap().is_empty());
    // ...and the sweep after the launch grace launches it, once.
    fn after_the_grace() -> u64 {
        shared::time::now_secs() + LAUNCH_GRACE_SECS + 1
    }
    let launcher = launcher.with_clock(after_the_grace);
    let report = launcher.reconcile(far()).await;
    assert!(report.errors.is_empty(), "{report:?}");
    let launched = launcher.fleet().instances.lock().unwrap().len();
    assert_eq!(launched, 1, "{report:?}");
    launcher.reconcile(far()).await;
    assert_eq!(launcher.fleet().instances.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn capacity_queues_the_record_and_launch_errors_fail_it() {
    let launcher = memory_launcher(1);
    let results = launcher
        .process(&[created("a.mp4", "01"), created("b.mp4", "02")])
        .await;
    assert_eq!(results[0].outcome, Outcome::Launched);
    assert_eq!(results[1].outcome, Outcome::CapacityQueued);
    assert_eq!(results[1].failure, None);
    assert!(
        results[1]
            .reason
            .as_ref()
            .unwrap()
            .contains("MAX_RUNNING_JOBS=1")
    );

    let launcher = memory_launcher(5);
    *launcher.fleet().launch_error.lock().unwrap() = Some("Unsupported".into());
    let results = launcher.process(&[created("a.mp4", "01")]).await;
    assert_eq!(results[0].failure, Some(Failure::LaunchFailed));
    assert!(results[0].job_id.is_some());

    // A failed RunInstances gives its slot back and leaves the job to a
    // retry: with one slot, the retry launches.
    let launcher = memory_launcher(1);
    *launcher.fleet().launch_error.lock().unwrap() = Some("InsufficientInstanceCapacity".into());
    let failed = launcher.process(&[created("a.mp4", "01")]).await;
    assert_eq!(failed[0].failure, Some(Failure::LaunchFailed));
    *launcher.fleet().launch_error.lock().unwrap() = None;
    let retried = launcher.process(&[created("a.mp4", "01")]).await;
    assert_eq!(retried[0].outcome, Outcome::Launched, "{retried:?}");
}

#[tokio::test]
async fn invalid_records_fail_and_the_rest_still_launch() {
    let launcher = memory_launcher(5);
    let results = launcher
        .process(&[
            Record::Invalid("Records[0].s3.object.key: bad".into()),
            created("a.mp4", "1"),
        ])
        .await;
    assert_eq!(results[0].failure, Some(Failure::InvalidRecord));
    assert_eq!(results[1].outcome, Outcome::Launched);
}

#[tokio::test]
async fn a_refused_job_is_queued_and_the_reconcile_launches_it_when_a_slot_frees() {
    let launcher = memory_launcher(1);
    let results = launcher
        .process(&[created("a.mp4", "01"), created("b.mp4", "02")])
        .await;
    assert_eq!(results[1].outcome, Outcome::CapacityQueued);
    let queued = results[1].job_id.clone().unwrap();
    let report = launcher.reconcile(far()).await;
    assert_eq!((report.running, report.queued), (1, 1), "{report:?}");

    // a's worker finishes: status, then its instance terminates.
    worker_ends(&launcher, &results[0], r#"{"status":"success"}"#).await;
    let report = launcher.reconcile(far()).await;
    assert_eq!(report.done, 1, "{report:?}");
    assert_eq!(report.launched_from_queue, vec![queued.clone()]);
    assert!(report.relaunched.is_empty());
    // A redelivery of b's event now finds it launched.
    let retried = launcher.process(&[created("b.mp4", "02")]).await;
    assert_eq!(retried[0].outcome, Outcome::Duplicate);
    assert_eq!(launcher.fleet().instances.lock().unwrap().len(), 2);
}

/// Puts the job's status.json and ends its worker, as worker.sh does.
async fn worker_ends(launcher: &InMemoryLauncher, result: &RecordResult, status: &str) {
    let job = result.job_id.as_deref().unwrap();
    launcher
        .status()
        .put(&launcher.status_key(job), status)
        .await
        .unwrap();
    launcher
        .fleet()
        .terminate(result.instance_id.as_deref().unwrap());
}

#[tokio::test]
async fn a_worker_that_reports_failure_is_counted_once_and_its_job_is_not_relaunched() {
    let launcher = memory_launcher(4);
    let results = launcher
        .process(&[
            created("ffmpeg.mp4", "01"),
            created("garbled.mp4", "02"),
            created("ok.mp4", "03"),
            created("no-status-field.mp4", "04"),
        ])
        .await;
    assert!(results.iter().all(|r| r.outcome == Outcome::Launched));
    let failure = r#"{"jobId":"x","status":"failure","exitCode":127,"error":"ffmpeg not found: searched /usr/bin"}"#;
    worker_ends(&launcher, &results[0], failure).await;
    worker_ends(&launcher, &results[1], "{\"status\":\"succ").await;
    worker_ends(
        &launcher,
        &results[2],
        r#"{"status":"success","exitCode":0}"#,
    )
    .await;
    worker_ends(&launcher, &results[3], r#"{"exitCode":0}"#).await;

    let report = launcher.reconcile(far()).await;
    assert_eq!(report.done, 1, "only ok.mp4 succeeded: {report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    let job = |i: usize| results[i].job_id.clone().unwrap();
    let mut failed = report.workers_failed.clone();
    failed.sort_by_key(|f| [0, 1, 3].iter().position(|i| job(*i) == f.job_id));
    let ids: Vec<_> = failed.iter().map(|f| f.job_id.clone()).collect();
    assert_eq!(ids, vec![job(0), job(1), job(3)], "{report:?}");
    assert!(failed[0].reason.contains("ffmpeg not found"), "{failed:?}");
    assert!(failed[1].reason.contains("not JSON"), "{failed:?}");
    assert!(
        failed[2].reason.contains("no \"status\" field"),
        "{failed:?}"
    );
    assert!(report.relaunched.is_empty() && report.failed.is_empty());
    for i in [0, 1, 3] {
        let stored = launcher.store().job(&job(i)).await.unwrap().unwrap();
        assert_eq!(stored.value.state, JobState::WorkerFailed);
    }
    // The worker's report stays as written, for the operator.
    let kept = launcher.status().objects.lock().unwrap()[&launcher.status_key(&job(0))].clone();
    assert_eq!(kept, failure);

    // A fixed point: counted once, never relaunched, even on redelivery.
    let again = launcher.reconcile(far()).await;
    assert_eq!(again, ReconcileReport::default(), "{again:?}");
    let redelivered = launcher.process(&[created("ffmpeg.mp4", "01")]).await;
    assert_eq!(redelivered[0].outcome, Outcome::Duplicate);
    assert_eq!(launcher.fleet().instances.lock().unwrap().len(), 4);
    // Their slots are free.
    let next = launcher
        .process(&[
            created("d.mp4", "05"),
            created("e.mp4", "06"),
            created("f.mp4", "07"),
            created("g.mp4", "08"),
        ])
        .await;
    assert!(
        next.iter().all(|r| r.outcome == Outcome::Launched),
        "{next:?}"
    );
}

#[tokio::test]
async fn a_failure_status_the_sweep_wrote_before_losing_its_ledger_write_counts_as_jobs_failed() {
    let launcher = memory_launcher(1);
    let first = launcher.process(&[created("a.mp4", "01")]).await;
    let read = launcher
        .store()
        .job(first[0].job_id.as_deref().unwrap())
        .await
        .unwrap()
        .unwrap();
    // What fail_job left: its status written, the job still active.
    let body = failure_status(&read.value, "no worker wrote a status");
    worker_ends(&launcher, &first[0], &body).await;
    let report = launcher.reconcile(far()).await;
    assert_eq!(report.failed, vec![read.value.id.clone()], "{report:?}");
    assert!(
        report.workers_failed.is_empty() && report.done == 0,
        "{report:?}"
    );
    assert_eq!(launcher.reconcile(far()).await, ReconcileReport::default());
}

#[tokio::test]
async fn a_sweep_that_requeues_a_job_never_frees_the_slot_of_its_next_attempt() {
    let launcher = memory_launcher(1);
    let first = launcher.process(&[created("a.mp4", "01")]).await;
    let job_id = first[0].job_id.clone().unwrap();
    launcher
        .fleet()
        .terminate(first[0].instance_id.as_deref().unwrap());
    // Sweep A, up to its release: it reads the job and wins the requeue.
    let read = launcher.store().job(&job_id).await.unwrap().unwrap();
    let next = Job {
        attempt: read.value.attempt + 1,
        state: JobState::Queued,
        instance_id: None,
        slot: None,
        ..read.value.clone()
    };
    let stored = launcher.store().put_job(&next, Some(read.version)).await;
    assert!(matches!(stored, Ok(Some(_))));
    // Meanwhile a retried event launches attempt 2 in the same slot.
    let retried = launcher.process(&[created("a.mp4", "01")]).await;
    assert_eq!(retried[0].outcome, Outcome::Launched, "{retried:?}");
    // A resumes: attempt 1's release must leave attempt 2's slot alone.
    launcher.release_job_slot(&read.value).await;
    let other = launcher.process(&[created("b.mp4", "02")]).await;
    assert_eq!(
        other[0].outcome,
        Outcome::CapacityQueued,
        "one slot, one live worker: {other:?}"
    );
}

#[tokio::test]
async fn a_job_whose_launch_always_fails_is_failed_after_max_attempts() {
    let launcher = memory_launcher(2);
    *launcher.fleet().launch_error.lock().unwrap() = Some("UnauthorizedOperation".into());
    let first = launcher.process(&[created("a.mp4", "01")]).await;
    assert_eq!(first[0].failure, Some(Failure::LaunchFailed));
    let job_id = first[0].job_id.clone().unwrap();
    let mut failed = Vec::new();
    for _ in 0..=launcher.settings.max_attempts {
        failed.extend(launcher.reconcile(far()).await.failed);
    }
    assert_eq!(failed, vec![job_id.clone()], "counted once, as JobsFailed");
    let job = launcher.store().job(&job_id).await.unwrap().unwrap().value;
    assert_eq!(job.state, JobState::Failed);
    let status = launcher.status().objects.lock().unwrap()[&launcher.status_key(&job_id)].clone();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["status"], "failure");
    assert!(
        status["error"].as_str().unwrap().contains("launching"),
        "{status}"
    );
    // Its slot is free: another job launches in each slot.
    *launcher.fleet().launch_error.lock().unwrap() = None;
    let next = launcher
        .process(&[created("b.mp4", "02"), created("c.mp4", "03")])
        .await;
    assert!(
        next.iter().all(|r| r.outcome == Outcome::Launched),
        "{next:?}"
    );
}

fn far() -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(3600)
}

#[tokio::test]
async fn a_slot_taken_by_a_launch_that_died_before_claiming_its_job_is_freed() {
    let launcher = memory_launcher(2);
    let launched = launcher.process(&[created("a.mp4", "01")]).await;
    assert_eq!(launched[0].outcome, Outcome::Launched);
    let now = (launcher.clock)();
    let taken_long_ago = now + launcher.lease_secs() - LAUNCH_GRACE_SECS - 1;
    let orphan = Slot {
        job_id: "tj-died".into(),
        instance_id: None,
        attempt: 1,
        expires_at: taken_long_ago,
    };
    let fresh = Slot {
        expires_at: now + launcher.lease_secs(),
        ..orphan.clone()
    };
    let store = launcher.store();
    // Whichever slot a's job did not take.
    let free = (0..2)
        .find(|i| !store.slots.lock().unwrap().contains_key(i))
        .unwrap();
    store.put_slot(free, &fresh, None).await.unwrap();
    let report = launcher.reconcile(far()).await;
    assert_eq!(report.orphan_slots_freed, 0, "within the grace: {report:?}");
    let version = store.slot(free).await.unwrap().unwrap().version;
    store.put_slot(free, &orphan, Some(version)).await.unwrap();
    let report = launcher.reconcile(far()).await;
    assert_eq!(report.orphan_slots_freed, 1, "{report:?}");
    assert_eq!(report.running, 1, "a's slot is kept");
    let next = launcher.process(&[created("b.mp4", "02")]).await;
    assert_eq!(next[0].outcome, Outcome::Launched);
}

#[tokio::test]
async fn a_sweep_past_its_deadline_defers_the_rest() {
    let launcher = memory_launcher(1);
    launcher
        .process(&[created("a.mp4", "01"), created("b.mp4", "02")])
        .await;
    let report = launcher.reconcile(std::time::Instant::now()).await;
    assert_eq!(report.deferred, 2, "{report:?}");
}

static NOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1_000_000);

fn test_clock() -> u64 {
    NOW.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn an_expired_lease_frees_its_slot_even_if_its_worker_looks_alive() {
    let launcher = memory_launcher(1).with_clock(test_clock);
    let first = launcher.process(&[created("a.mp4", "01")]).await;
    assert_eq!(first[0].outcome, Outcome::Launched);
    let refused = launcher.process(&[created("b.mp4", "02")]).await;
    assert_eq!(refused[0].outcome, Outcome::CapacityQueued);
    let lease = launcher.lease_secs();
    NOW.fetch_add(lease, std::sync::atomic::Ordering::SeqCst);
    let later = launcher.process(&[created("b.mp4", "02")]).await;
    assert_eq!(later[0].outcome, Outcome::Launched, "{later:?}");
}
