use super::claim::{EXPIRY_SECS, LEASE_SECS};
use super::*;
use crate::config::Config;
use crate::fallback::LocalClaims;
use crate::ports::{Claim, Claims, Condition};
use crate::snapshot::{MANAGED_BY_TAG, MANAGED_BY_VALUE};
use crate::testing::{CopyFault, InMemoryRegions};

fn settings() -> Settings {
    Settings {
        source_region: "us-east-1".into(),
        default_destinations: vec!["eu-west-1".into()],
        kms_keys: BTreeMap::from([("us-west-2".into(), "alias/dr".into())]),
        retention: Retention {
            keep: Some(2),
            max_age_secs: None,
        },
        concurrency: 4,
        ..Config::default().copier
    }
}

#[tokio::test]
async fn copies_once_with_the_tags_and_never_twice() {
    let ec2 = InMemoryRegions::default();
    let id = ec2.source(
        "us-east-1",
        "vol-1",
        &[
            ("dr:copy-to", "us-west-2,eu-west-1"),
            ("team", "db"),
            ("aws:backup", "x"),
        ],
    );
    let untagged = ec2.source("us-east-1", "vol-2", &[("team", "web")]);
    let copier = Copier::new(ec2.clone(), settings());
    let first = copier.sweep().await;
    assert_eq!(first.copied.len(), 2, "{first:?}");
    assert!(ec2.copies_of(&untagged).is_empty());
    let ignored = copier.copy_snapshot(&untagged).await.ignored;
    assert!(ignored[0].contains("no dr:copy-to tag"), "{ignored:?}");
    let copy = ec2.copies_of(&id);
    assert_eq!(copy.len(), 2);
    let west = copy.iter().find(|(r, _)| r == "us-west-2").unwrap();
    let tags: BTreeMap<_, _> = west.1.tags.iter().cloned().collect();
    assert_eq!(tags["team"], "db");
    assert!(!tags.contains_key("aws:backup") && !tags.contains_key("dr:copy-to"));
    assert_eq!(tags[SOURCE_ID_TAG], id);
    assert_eq!(tags[SOURCE_VOLUME_TAG], "vol-1");
    assert_eq!(tags[MANAGED_BY_TAG], MANAGED_BY_VALUE);
    assert!(west.1.encrypted, "a mapped key encrypts");
    let again = copier.sweep().await;
    assert!(again.copied.is_empty());
    assert_eq!(again.skipped_existing.len(), 2);
    assert_eq!(copier.copy_snapshot(&id).await.skipped_existing.len(), 2);
    assert_eq!(ec2.copies_of(&id).len(), 2, "no duplicate copies");
}

#[tokio::test]
async fn an_event_for_a_source_retention_drops_copies_nothing() {
    let ec2 = InMemoryRegions::default();
    // Equal start times: ranked by id, so the last made ranks last.
    let ids: Vec<String> = (0..3)
        .map(|_| ec2.source("us-east-1", "vol-1", &[("dr:copy-to", "us-west-2")]))
        .collect();
    let copier = Copier::new(ec2.clone(), settings());
    let dropped = copier.copy_snapshot(&ids[2]).await;
    assert_eq!(dropped.not_retained.len(), 1, "{dropped:?}");
    assert!(dropped.copied.is_empty() && ec2.copies_of(&ids[2]).is_empty());
    assert_eq!(copier.copy_snapshot(&ids[0]).await.copied.len(), 1);
    let sweep = copier.sweep().await;
    assert_eq!(
        (sweep.copied.len(), sweep.pruned.len()),
        (1, 0),
        "{sweep:?}"
    );
    assert!(ec2.copies_of(&ids[2]).is_empty());
}

#[tokio::test]
async fn a_live_claim_is_respected_and_a_dead_holders_claim_is_taken_over() {
    let ec2 = InMemoryRegions::default();
    let busy = ec2.source("us-east-1", "vol-1", &[("dr:copy-to", "us-west-2")]);
    let dead = ec2.source("us-east-1", "vol-2", &[("dr:copy-to", "us-west-2")]);
    let claims = LocalClaims::default();
    let now = now();
    for (source, holder, lease_until) in [
        (&busy, "running", now + LEASE_SECS),
        (&dead, "crashed", now - 1),
    ] {
        let claim = Claim {
            holder: holder.into(),
            copy_id: None,
            lease_until,
            expires_at: now + EXPIRY_SECS,
        };
        let key = format!("us-east-1/{source}/us-west-2");
        assert!(
            claims
                .put_if(&key, &claim, &Condition::Free { now })
                .await
                .unwrap()
        );
    }
    let copier = Copier::new(ec2.clone(), settings()).with_claims(ClaimStore::Local(claims));
    let summary = copier.sweep().await;
    assert!(ec2.copies_of(&busy).is_empty(), "{summary:?}");
    assert_eq!(summary.skipped_existing[0].source, busy);
    assert_eq!(summary.copied.len(), 1, "{summary:?}");
    assert_eq!(
        ec2.copies_of(&dead).len(),
        1,
        "the dead holder made no copy"
    );
}

#[tokio::test]
async fn an_errored_copy_is_replaced() {
    let ec2 = InMemoryRegions::default();
    let id = ec2.source("us-east-1", "vol-1", &[("dr:copy-to", "us-west-2")]);
    let copier = Copier::new(ec2.clone(), settings());
    copier.copy_snapshot(&id).await;
    let (_, broken) = ec2.copies_of(&id).pop().unwrap();
    ec2.set_state("us-west-2", &broken.id, State::Error);
    let summary = copier.copy_finished("us-west-2", &broken.id, false).await;
    assert_eq!(summary.retried_after_error.len(), 1, "{summary:?}");
    let copies = ec2.copies_of(&id);
    assert_eq!(copies.len(), 1);
    assert_ne!(copies[0].1.id, broken.id);
}

#[tokio::test]
async fn the_limit_defers_and_a_later_sweep_completes() {
    let ec2 = InMemoryRegions::default();
    let ids: Vec<String> = (0..5)
        .map(|i| {
            ec2.source(
                "us-east-1",
                &format!("vol-{i}"),
                &[("dr:copy-to", "us-west-2")],
            )
        })
        .collect();
    ec2.limit_after("us-west-2", 2);
    let copier = Copier::new(
        ec2.clone(),
        Settings {
            concurrency: 1,
            ..settings()
        },
    );
    let first = copier.sweep().await;
    assert_eq!(
        (first.copied.len(), first.deferred.len()),
        (2, 3),
        "{first:?}"
    );
    assert!(first.errors.is_empty());
    ec2.complete_all();
    ec2.limit_after("us-west-2", usize::MAX);
    let second = copier.sweep().await;
    assert_eq!((second.copied.len(), second.skipped_existing.len()), (3, 2));
    for id in ids {
        assert_eq!(ec2.copies_of(&id).len(), 1, "{id}: exactly one copy");
    }
}

#[tokio::test]
async fn an_unknown_copy_outcome_keeps_the_claim_and_a_refusal_frees_it() {
    let ec2 = InMemoryRegions::default();
    let lost = ec2.source("us-east-1", "vol-1", &[("dr:copy-to", "us-west-2")]);
    let copier = Copier::new(ec2.clone(), settings());
    ec2.fail_next_copy("us-west-2", CopyFault::MadeThenLost);
    let first = copier.copy_snapshot(&lost).await;
    assert_eq!(first.errors.len(), 1, "{first:?}");
    // Lambda retries the event and sweeps run while listings lag.
    let retried = copier.copy_snapshot(&lost).await;
    let sweep = copier.sweep().await;
    assert_eq!(ec2.copies_of(&lost).len(), 1, "{retried:?} {sweep:?}");
    assert!(retried.copied.is_empty() && sweep.copied.is_empty());
    assert_eq!(sweep.skipped_existing.len(), 1, "{sweep:?}");
    ec2.list_all();
    assert!(copier.sweep().await.copied.is_empty());
    assert_eq!(ec2.copies_of(&lost).len(), 1, "exactly one copy");

    let refused = ec2.source("us-east-1", "vol-2", &[("dr:copy-to", "us-west-2")]);
    ec2.fail_next_copy("us-west-2", CopyFault::Refused);
    let first = copier.copy_snapshot(&refused).await;
    assert_eq!(first.errors.len(), 1, "{first:?}");
    assert!(ec2.copies_of(&refused).is_empty());
    let next = copier.sweep().await;
    assert_eq!(next.copied.len(), 1, "a refusal frees the claim: {next:?}");
    assert_eq!(ec2.copies_of(&refused).len(), 1);
}

#[tokio::test]
async fn retention_and_dry_run() {
    let ec2 = InMemoryRegions::default();
    let id = ec2.source("us-east-1", "vol-1", &[("dr:copy-to", "us-west-2")]);
    for day in 1..=4 {
        ec2.managed_copy("us-west-2", "vol-1", "us-east-1", day, State::Completed);
    }
    let unmanaged = ec2.unmanaged("us-west-2", "vol-1", 0);
    let dry = Copier::new(
        ec2.clone(),
        Settings {
            dry_run: true,
            ..settings()
        },
    );
    let plan = dry.sweep().await;
    // The source is the newest restore point: it and the newest copy stay.
    assert_eq!(
        plan.dry_run_plan.len(),
        1 + 3,
        "one copy, three deletions: {plan:?}"
    );
    assert!(plan.pruned.is_empty() && plan.copied.is_empty());
    assert_eq!(ec2.count("us-west-2"), 5, "a dry run changes nothing");
    let real = Copier::new(ec2.clone(), settings());
    let done = real.sweep().await;
    assert_eq!(done.copied.len(), 1);
    assert_eq!(done.pruned.len(), 3, "{done:?}");
    assert_eq!(ec2.count("us-west-2"), 3);
    assert!(
        ec2.exists("us-west-2", &unmanaged),
        "unmanaged snapshots survive"
    );
    let _ = id;
}
