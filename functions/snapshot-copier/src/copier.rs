//! Copying tagged snapshots to their destination regions, once each, and
//! pruning old copies.

use crate::destinations;
use crate::fallback::ClaimStore;
use crate::ports::{
    Claim, ClaimError, Claims, Condition, CopyRequest, Ec2Error, Regions, SnapshotApi,
};
use crate::retention::{self, Plan, Retention};
use crate::snapshot::{
    MANAGED_BY_TAG, MANAGED_BY_VALUE, SOURCE_ID_TAG, SOURCE_REGION_TAG, SOURCE_START_TIME_TAG,
    SOURCE_VOLUME_TAG, Snapshot, State,
};
use crate::tags;
use futures_util::{StreamExt, stream};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub source_region: String,
    pub copy_tag_key: String,
    pub default_destinations: Vec<String>,
    /// Destination region to KMS key (id, ARN or alias in that region).
    pub kms_keys: BTreeMap<String, String>,
    pub max_concurrent_copies: usize,
    pub retention: Retention,
    pub dry_run: bool,
    pub completion_duration_minutes: Option<i32>,
    /// EC2 calls in flight during a sweep.
    pub concurrency: usize,
}

/// One source snapshot and one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pair {
    pub source: String,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What an invocation did; the function's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub copied: Vec<Pair>,
    pub skipped_existing: Vec<Pair>,
    /// Sources retention drops in a destination: never copied there.
    pub not_retained: Vec<Pair>,
    /// Held back by the copy limit; the next sweep copies them.
    pub deferred: Vec<Pair>,
    pub retried_after_error: Vec<Pair>,
    /// `region/snapshot-id` of deleted copies.
    pub pruned: Vec<String>,
    /// With DRY_RUN: what would have been copied or deleted.
    pub dry_run_plan: Vec<String>,
    /// Snapshots not copied, and why (untagged, not completed, ...).
    pub ignored: Vec<String>,
    /// copySnapshot results seen.
    pub completions: Vec<String>,
    pub errors: Vec<String>,
}

impl Summary {
    pub fn merge(&mut self, other: Summary) {
        self.copied.extend(other.copied);
        self.skipped_existing.extend(other.skipped_existing);
        self.not_retained.extend(other.not_retained);
        self.deferred.extend(other.deferred);
        self.retried_after_error.extend(other.retried_after_error);
        self.pruned.extend(other.pruned);
        self.dry_run_plan.extend(other.dry_run_plan);
        self.ignored.extend(other.ignored);
        self.completions.extend(other.completions);
        self.errors.extend(other.errors);
    }
}

/// One claim per (source snapshot, destination), taken with a conditional
/// write before CopySnapshot: CopySnapshot has no client token, and
/// DescribeSnapshots is eventually consistent, so "look, then copy" lets two
/// invocations at once both copy. Whoever writes the claim copies; the
/// others skip.
///
/// A claim records its holder, the copy's id once made, a lease (how long a
/// claim without a copy id is trusted) and an expiry. A claim is only
/// needed until its copy shows up in listings, so it expires after a day
/// (DynamoDB's TTL removes it; an expired claim counts as absent even before).
///
/// A holder without a copy id after this long has died: Lambda stops every
/// invocation within 15 minutes.
pub const LEASE_SECS: i64 = 15 * 60;
/// Far beyond the time a new copy takes to show up in DescribeSnapshots.
pub const EXPIRY_SECS: i64 = 24 * 3600;

/// Who copies a source to a destination.
enum Claimed {
    /// This invocation: copy, then record the copy id.
    Held { key: String, holder: String },
    /// Another invocation, which made `copy` or is making it.
    Taken { copy: Option<String>, note: String },
}

pub struct Copier<R: Regions> {
    pub regions: R,
    pub settings: Settings,
    claims: ClaimStore,
    /// Makes claim holders unique across processes and attempts.
    holder_prefix: String,
    holders: AtomicUsize,
    /// Copies in progress per destination, as counted at the start plus
    /// those started since: the limit is checked against it.
    in_flight: Mutex<HashMap<String, usize>>,
}

impl<R: Regions> Copier<R> {
    pub fn new(regions: R, settings: Settings) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            regions,
            settings,
            claims: ClaimStore::default(),
            holder_prefix: format!("{:x}-{nanos:x}", std::process::id()),
            holders: AtomicUsize::new(0),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// Claims copies in `claims` (without it, in this process only).
    pub fn with_claims(self, claims: ClaimStore) -> Self {
        Self { claims, ..self }
    }

    fn new_holder(&self) -> String {
        let n = self.holders.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.holder_prefix)
    }

    /// Claims the copy of `source` to `region` for this invocation, or says
    /// who has it. `errored` are the copies in error the caller saw (a claim
    /// recording one of them may be taken over); copies in error found while
    /// recovering a dead holder's claim are added to it.
    async fn claim(
        &self,
        api: &R::Api,
        source: &Snapshot,
        region: &str,
        errored: &mut Vec<String>,
    ) -> Result<Claimed, String> {
        let key = format!("{}/{}/{region}", self.settings.source_region, source.id);
        let now = now();
        let holder = self.new_holder();
        let mine = Claim {
            holder: holder.clone(),
            copy_id: None,
            lease_until: now + LEASE_SECS,
            expires_at: now + EXPIRY_SECS,
        };
        let held = || Claimed::Held {
            key: key.clone(),
            holder: holder.clone(),
        };
        let taken = |copy: Option<String>, why: &str| Claimed::Taken {
            copy,
            note: why.to_owned(),
        };
        let fail = |e: ClaimError| format!("{}: claiming the copy to {region}: {e}", source.id);
        if self
            .claims
            .put_if(&key, &mine, &Condition::Free { now })
            .await
            .map_err(fail)?
        {
            return Ok(held());
        }
        let Some(current) = self.claims.get(&key).await.map_err(fail)? else {
            // Released (or expired and removed) in between: one more try.
            let free = Condition::Free { now };
            return Ok(
                if self.claims.put_if(&key, &mine, &free).await.map_err(fail)? {
                    held()
                } else {
                    taken(None, "claimed by another invocation")
                },
            );
        };
        match current.copy_id {
            Some(copy) if errored.contains(&copy) => {
                let condition = Condition::CopyIs(copy);
                Ok(
                    if self
                        .claims
                        .put_if(&key, &mine, &condition)
                        .await
                        .map_err(fail)?
                    {
                        held()
                    } else {
                        taken(None, "replaced by another invocation")
                    },
                )
            }
            // Made by another invocation; the listing had not shown it yet.
            Some(copy) => Ok(taken(Some(copy), "made by another invocation")),
            None if current.lease_until >= now => {
                Ok(taken(None, "being copied by another invocation"))
            }
            None => {
                // The holder died before recording a copy id: it may have
                // made the copy. Long after, the copy shows up by its tag.
                let found = api
                    .with_tag(SOURCE_ID_TAG, &source.id)
                    .await
                    .map_err(|e| format!("{}: looking for copies in {region}: {e}", source.id))?;
                let found = self.own_copies(found);
                let dead = Condition::HeldWithoutCopy(current.holder.clone());
                if let Some(live) = found.iter().find(|c| c.state != State::Error) {
                    let recorded = Claim {
                        copy_id: Some(live.id.clone()),
                        ..current
                    };
                    self.claims
                        .put_if(&key, &recorded, &dead)
                        .await
                        .map_err(fail)?;
                    return Ok(taken(
                        Some(live.id.clone()),
                        "made by an invocation that stopped before recording it",
                    ));
                }
                for copy in found {
                    if !errored.contains(&copy.id) {
                        errored.push(copy.id);
                    }
                }
                Ok(
                    if self.claims.put_if(&key, &mine, &dead).await.map_err(fail)? {
                        held()
                    } else {
                        taken(None, "claimed by another invocation")
                    },
                )
            }
        }
    }

    /// Records the copy made under a claim; if that fails, the claim's lease
    /// runs out and the copy is found by its tag.
    async fn record(&self, key: &str, holder: &str, copy: &str) {
        let now = now();
        let done = Claim {
            holder: holder.to_owned(),
            copy_id: Some(copy.to_owned()),
            lease_until: now,
            expires_at: now + EXPIRY_SECS,
        };
        let condition = Condition::HeldWithoutCopy(holder.to_owned());
        match self.claims.put_if(key, &done, &condition).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(key, copy, "the claim was lost before recording the copy"),
            Err(e) => tracing::warn!(key, copy, error = %e, "recording the copy in its claim"),
        }
    }

    /// Gives a claim back when no copy was made, so the next run may copy.
    async fn release_claim(&self, key: &str, holder: &str) {
        if let Err(e) = self.claims.release(key, holder).await {
            tracing::warn!(key, error = %e, "releasing a claim; its lease runs out instead");
        }
    }

    fn source(&self) -> R::Api {
        self.regions.region(&self.settings.source_region)
    }

    /// The destinations a snapshot asks for, or why it is not copied.
    fn destinations(&self, snapshot: &Snapshot) -> Result<Vec<String>, String> {
        if snapshot.state != State::Completed {
            return Err(format!("{}: not completed", snapshot.id));
        }
        let Some(value) = snapshot.tag(&self.settings.copy_tag_key) else {
            return Err(format!(
                "{}: no {} tag",
                snapshot.id, self.settings.copy_tag_key
            ));
        };
        destinations::parse(
            value,
            &self.settings.default_destinations,
            &self.settings.source_region,
        )
        .map_err(|e| format!("{}: tag {}: {e}", snapshot.id, self.settings.copy_tag_key))
    }

    /// The CopySnapshot request, and a warning naming source tags the copy
    /// could not carry as they were.
    fn request(&self, source: &Snapshot, region: &str) -> (CopyRequest, Option<String>) {
        let ours = vec![
            (SOURCE_ID_TAG.to_owned(), source.id.clone()),
            (
                SOURCE_REGION_TAG.to_owned(),
                self.settings.source_region.clone(),
            ),
            (SOURCE_VOLUME_TAG.to_owned(), source.volume_id.clone()),
            (
                SOURCE_START_TIME_TAG.to_owned(),
                source.start_time.to_string(),
            ),
            (MANAGED_BY_TAG.to_owned(), MANAGED_BY_VALUE.to_owned()),
        ];
        let tags = tags::for_copy(&source.tags, &self.settings.copy_tag_key, ours);
        let warning = tags.warning();
        if let Some(warning) = &warning {
            tracing::warn!(source = %source.id, region, "{warning}");
        }
        let tags = tags.tags;
        let kms_key_id = self.settings.kms_keys.get(region).cloned();
        let request = CopyRequest {
            source_region: self.settings.source_region.clone(),
            source_snapshot_id: source.id.clone(),
            description: format!(
                "Disaster-recovery copy of {} ({}) from {}",
                source.id, source.volume_id, self.settings.source_region
            ),
            tags,
            // An encrypted source stays encrypted; a mapped key encrypts
            // (it requires Encrypted=true). Without one, EC2 uses the
            // destination's default key.
            encrypted: source.encrypted || kms_key_id.is_some(),
            kms_key_id,
            completion_duration_minutes: self.settings.completion_duration_minutes,
        };
        (request, warning)
    }

    /// Takes a copy slot in `region`, counting its pending copies on first use.
    async fn reserve(&self, api: &R::Api, region: &str) -> Result<bool, Ec2Error> {
        let counted = self
            .in_flight
            .lock()
            .expect("not poisoned")
            .contains_key(region);
        if !counted {
            let pending = api.pending_count().await?;
            self.in_flight
                .lock()
                .expect("not poisoned")
                .entry(region.to_owned())
                .or_insert(pending);
        }
        let mut in_flight = self.in_flight.lock().expect("not poisoned");
        let slot = in_flight.entry(region.to_owned()).or_default();
        if *slot >= self.settings.max_concurrent_copies {
            return Ok(false);
        }
        *slot += 1;
        Ok(true)
    }

    /// Counts start afresh with each invocation: a warm container's old
    /// counts are stale.
    fn start(&self) {
        self.in_flight.lock().expect("not poisoned").clear();
    }

    fn release(&self, region: &str) {
        if let Some(slot) = self.in_flight.lock().expect("not poisoned").get_mut(region) {
            *slot = slot.saturating_sub(1);
        }
    }

    /// Copies `source` to `region` under a claim, replacing its `errored`
    /// copies there.
    async fn copy_to(&self, source: &Snapshot, region: &str, mut errored: Vec<String>) -> Summary {
        let mut summary = Summary::default();
        let pair = |copy: Option<String>, note: Option<String>| Pair {
            source: source.id.clone(),
            region: region.to_owned(),
            copy,
            note,
        };
        if self.settings.dry_run {
            summary
                .dry_run_plan
                .push(format!("copy {} to {region}", source.id));
            return summary;
        }
        let api = self.regions.region(region);
        match self.reserve(&api, region).await {
            Ok(true) => {}
            Ok(false) => {
                let note = format!("{} copies in progress", self.settings.max_concurrent_copies);
                summary.deferred.push(pair(None, Some(note)));
                return summary;
            }
            Err(e) => {
                summary
                    .errors
                    .push(format!("{}: counting copies in {region}: {e}", source.id));
                return summary;
            }
        }
        let (key, holder) = match self.claim(&api, source, region, &mut errored).await {
            Ok(Claimed::Held { key, holder }) => (key, holder),
            Ok(Claimed::Taken { copy, note }) => {
                self.release(region);
                summary.skipped_existing.push(pair(copy, Some(note)));
                return summary;
            }
            Err(e) => {
                self.release(region);
                summary.errors.push(e);
                return summary;
            }
        };
        for errored in &errored {
            if let Err(e) = api.delete(errored).await {
                self.release(region);
                self.release_claim(&key, &holder).await;
                summary.errors.push(format!(
                    "{}: deleting failed copy {errored} in {region}: {e}",
                    source.id
                ));
                return summary;
            }
        }
        let (request, warning) = self.request(source, region);
        match api.copy(&request).await {
            Ok(copy) => {
                self.record(&key, &holder, &copy).await;
                if errored.is_empty() {
                    summary.copied.push(pair(Some(copy), warning));
                } else {
                    let replaces = format!("replaces {}", errored.join(", "));
                    let note = match warning {
                        Some(warning) => format!("{replaces}; {warning}"),
                        None => replaces,
                    };
                    summary
                        .retried_after_error
                        .push(pair(Some(copy), Some(note)));
                }
            }
            Err(Ec2Error::LimitExceeded(e)) => {
                self.release_claim(&key, &holder).await;
                // EC2's own count is the truth: stop starting copies here.
                self.in_flight
                    .lock()
                    .expect("not poisoned")
                    .insert(region.to_owned(), self.settings.max_concurrent_copies);
                summary
                    .deferred
                    .push(pair(None, Some(format!("ResourceLimitExceeded: {e}"))));
            }
            Err(Ec2Error::Refused(e)) => {
                self.release_claim(&key, &holder).await;
                self.release(region);
                summary
                    .errors
                    .push(format!("{}: CopySnapshot in {region}: {e}", source.id));
            }
            Err(Ec2Error::Other(e)) => {
                // EC2 may have made the copy: the claim stays (and so does the
                // copy slot) until its lease runs out, then the copy is looked
                // for by its source-id tag.
                summary.errors.push(format!(
                    "{}: CopySnapshot in {region}, outcome unknown (claim kept): {e}",
                    source.id
                ));
            }
        }
        summary
    }

    /// This copier's copies in `region` made from this source region.
    fn own_copies(&self, copies: Vec<Snapshot>) -> Vec<Snapshot> {
        copies
            .into_iter()
            .filter(|c| {
                c.is_managed()
                    && c.tag(SOURCE_REGION_TAG) == Some(self.settings.source_region.as_str())
            })
            .collect()
    }

    /// Splits a destination's plan into copies to make (returned) and what
    /// the summary reports: live copies and sources retention drops.
    fn report<'s>(
        &self,
        region: &str,
        plan: &Plan,
        sources: &'s [Snapshot],
        only: Option<&str>,
        summary: &mut Summary,
    ) -> Vec<(&'s Snapshot, Vec<String>)> {
        let wanted = |id: &str| only.is_none_or(|only| only == id);
        let pair = |source: &str, copy: Option<&str>| Pair {
            source: source.to_owned(),
            region: region.to_owned(),
            copy: copy.map(str::to_owned),
            note: None,
        };
        for (source, copy) in plan.existing.iter().filter(|(s, _)| wanted(s)) {
            summary.skipped_existing.push(pair(source, Some(copy)));
        }
        for source in plan.dropped.iter().filter(|s| wanted(s)) {
            summary.not_retained.push(pair(source, None));
        }
        plan.copy
            .iter()
            .filter(|(s, _)| wanted(s))
            .filter_map(|(id, errored)| {
                let source = sources.iter().find(|s| &s.id == id)?;
                Some((source, errored.clone()))
            })
            .collect()
    }

    /// A snapshot just created (EventBridge createSnapshot/createSnapshots):
    /// copied where retention keeps it, judged among its volume's other
    /// restore points. Deletions are left to the sweep.
    pub async fn copy_snapshot(&self, id: &str) -> Summary {
        self.start();
        let mut summary = Summary::default();
        let snapshot = match self.source().describe(id).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => {
                summary.ignored.push(format!("{id}: not found"));
                return summary;
            }
            Err(e) => {
                summary.errors.push(format!("{id}: DescribeSnapshots: {e}"));
                return summary;
            }
        };
        let regions = match self.destinations(&snapshot) {
            Ok(regions) => regions,
            Err(why) => {
                summary.ignored.push(why);
                return summary;
            }
        };
        let mut siblings = match self
            .source()
            .tagged(&self.settings.copy_tag_key, Some(&snapshot.volume_id))
            .await
        {
            Ok(siblings) => siblings,
            Err(e) => {
                summary.errors.push(format!(
                    "{id}: listing snapshots of {}: {e}",
                    snapshot.volume_id
                ));
                return summary;
            }
        };
        // The listing may lag behind the event.
        siblings.retain(|s| s.id != snapshot.id);
        siblings.push(snapshot.clone());
        let now = now();
        for region in regions {
            let api = self.regions.region(&region);
            let copies = match api.with_tag(SOURCE_VOLUME_TAG, &snapshot.volume_id).await {
                Ok(copies) => self.own_copies(copies),
                Err(e) => {
                    summary
                        .errors
                        .push(format!("{id}: looking for copies in {region}: {e}"));
                    continue;
                }
            };
            let sources: Vec<Snapshot> = siblings
                .iter()
                .filter(|s| self.destinations(s).is_ok_and(|d| d.contains(&region)))
                .cloned()
                .collect();
            let plan = retention::plan(&sources, &copies, self.settings.retention, now);
            for (source, errored) in self.report(&region, &plan, &sources, Some(id), &mut summary) {
                summary.merge(self.copy_to(source, &region, errored).await);
            }
        }
        summary
    }

    /// A copySnapshot result seen in a destination region. A failed copy is
    /// replaced at once (the sweep would otherwise do it).
    pub async fn copy_finished(&self, region: &str, copy_id: &str, succeeded: bool) -> Summary {
        let mut summary = Summary::default();
        summary.completions.push(format!(
            "{region}/{copy_id}: {}",
            if succeeded { "succeeded" } else { "failed" }
        ));
        if succeeded {
            return summary;
        }
        let source_id = match self.regions.region(region).describe(copy_id).await {
            Ok(Some(copy)) if copy.is_managed() => copy.tag(SOURCE_ID_TAG).map(str::to_owned),
            Ok(_) => None,
            Err(e) => {
                summary
                    .errors
                    .push(format!("{region}/{copy_id}: DescribeSnapshots: {e}"));
                return summary;
            }
        };
        if let Some(source_id) = source_id {
            summary.merge(self.copy_snapshot(&source_id).await);
        }
        summary
    }

    /// Every destination brought to its retention plan: kept sources copied,
    /// dropped restore points' copies deleted.
    pub async fn sweep(&self) -> Summary {
        self.start();
        let mut summary = Summary::default();
        let sources = match self
            .source()
            .tagged(&self.settings.copy_tag_key, None)
            .await
        {
            Ok(sources) => sources,
            Err(e) => {
                summary
                    .errors
                    .push(format!("listing tagged snapshots: {e}"));
                return summary;
            }
        };
        let mut wanted: BTreeMap<String, Vec<Snapshot>> = self
            .settings
            .default_destinations
            .iter()
            .map(|r| (r.clone(), Vec::new()))
            .collect();
        for source in &sources {
            match self.destinations(source) {
                Ok(dests) => {
                    for region in dests {
                        wanted.entry(region).or_default().push(source.clone());
                    }
                }
                Err(why) => summary.ignored.push(why),
            }
        }
        wanted.remove(&self.settings.source_region);
        // One listing per destination serves the plan; its copies in
        // progress are counted once, up front.
        let listings: Vec<(String, Result<Vec<Snapshot>, Ec2Error>)> =
            stream::iter(wanted.keys().cloned())
                .map(|region| async move {
                    let api = self.regions.region(&region);
                    let copies = api.with_tag(MANAGED_BY_TAG, MANAGED_BY_VALUE).await;
                    if let Ok(pending) = api.pending_count().await {
                        self.in_flight
                            .lock()
                            .expect("not poisoned")
                            .insert(region.clone(), pending);
                    }
                    (region, copies)
                })
                .buffer_unordered(self.settings.concurrency)
                .collect()
                .await;
        let now = now();
        let mut plans: Vec<(String, Plan)> = Vec::new();
        for (region, listing) in listings {
            match listing {
                Ok(copies) => {
                    let copies = self.own_copies(copies);
                    let plan =
                        retention::plan(&wanted[&region], &copies, self.settings.retention, now);
                    plans.push((region, plan));
                }
                Err(e) => summary
                    .errors
                    .push(format!("listing copies in {region}: {e}")),
            }
        }
        let mut work = Vec::new();
        for (region, plan) in &plans {
            for (source, errored) in self.report(region, plan, &wanted[region], None, &mut summary)
            {
                work.push((source, region.as_str(), errored));
            }
        }
        let results: Vec<Summary> =
            stream::iter(work)
                .map(|(source, region, errored)| async move {
                    self.copy_to(source, region, errored).await
                })
                .buffer_unordered(self.settings.concurrency)
                .collect()
                .await;
        for result in results {
            summary.merge(result);
        }
        summary.merge(self.prune(&plans).await);
        summary
    }

    /// Deletes the copies the plans drop.
    async fn prune(&self, plans: &[(String, Plan)]) -> Summary {
        let mut summary = Summary::default();
        for (region, plan) in plans {
            if self.settings.dry_run {
                summary
                    .dry_run_plan
                    .extend(plan.delete.iter().map(|id| format!("delete {region}/{id}")));
                continue;
            }
            let api = self.regions.region(region);
            for id in &plan.delete {
                match api.delete(id).await {
                    Ok(()) => summary.pruned.push(format!("{region}/{id}")),
                    Err(e) => summary.errors.push(format!("deleting {region}/{id}: {e}")),
                }
            }
        }
        summary
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fallback::LocalClaims;
    use crate::testing::{CopyFault, InMemoryRegions};

    fn settings() -> Settings {
        Settings {
            source_region: "us-east-1".into(),
            copy_tag_key: "dr:copy-to".into(),
            default_destinations: vec!["eu-west-1".into()],
            kms_keys: BTreeMap::from([("us-west-2".into(), "alias/dr".into())]),
            max_concurrent_copies: 20,
            retention: Retention {
                keep: Some(2),
                max_age_secs: None,
            },
            dry_run: false,
            completion_duration_minutes: None,
            concurrency: 4,
        }
    }

    #[tokio::test]
    async fn copies_once_with_the_tags_and_never_twice() {
        let fake = InMemoryRegions::default();
        let id = fake.source(
            "us-east-1",
            "vol-1",
            &[
                ("dr:copy-to", "us-west-2,eu-west-1"),
                ("team", "db"),
                ("aws:backup", "x"),
            ],
        );
        let untagged = fake.source("us-east-1", "vol-2", &[("team", "web")]);
        let copier = Copier::new(fake.clone(), settings());
        let first = copier.sweep().await;
        assert_eq!(first.copied.len(), 2, "{first:?}");
        assert!(fake.copies_of(&untagged).is_empty());
        let ignored = copier.copy_snapshot(&untagged).await.ignored;
        assert!(ignored[0].contains("no dr:copy-to tag"), "{ignored:?}");
        let copy = fake.copies_of(&id);
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
        assert_eq!(fake.copies_of(&id).len(), 2, "no duplicate copies");
    }

    #[tokio::test]
    async fn an_event_for_a_source_retention_drops_copies_nothing() {
        let fake = InMemoryRegions::default();
        // Equal start times: ranked by id, so the last made ranks last.
        let ids: Vec<String> = (0..3)
            .map(|_| fake.source("us-east-1", "vol-1", &[("dr:copy-to", "us-west-2")]))
            .collect();
        let copier = Copier::new(fake.clone(), settings());
        let dropped = copier.copy_snapshot(&ids[2]).await;
        assert_eq!(dropped.not_retained.len(), 1, "{dropped:?}");
        assert!(dropped.copied.is_empty() && fake.copies_of(&ids[2]).is_empty());
        assert_eq!(copier.copy_snapshot(&ids[0]).await.copied.len(), 1);
        let sweep = copier.sweep().await;
        assert_eq!(
            (sweep.copied.len(), sweep.pruned.len()),
            (1, 0),
            "{sweep:?}"
        );
        assert!(fake.copies_of(&ids[2]).is_empty());
    }

    #[tokio::test]
    async fn a_live_claim_is_respected_and_a_dead_holders_claim_is_taken_over() {
        let fake = InMemoryRegions::default();
        let busy = fake.source("us-east-1", "vol-1", &[("dr:copy-to", "us-west-2")]);
        let dead = fake.source("us-east-1", "vol-2", &[("dr:copy-to", "us-west-2")]);
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
        let copier = Copier::new(fake.clone(), settings()).with_claims(ClaimStore::Local(claims));
        let summary = copier.sweep().await;
        assert!(fake.copies_of(&busy).is_empty(), "{summary:?}");
        assert_eq!(summary.skipped_existing[0].source, busy);
        assert_eq!(summary.copied.len(), 1, "{summary:?}");
        assert_eq!(
            fake.copies_of(&dead).len(),
            1,
            "the dead holder made no copy"
        );
    }

    #[tokio::test]
    async fn an_errored_copy_is_replaced() {
        let fake = InMemoryRegions::default();
        let id = fake.source("us-east-1", "vol-1", &[("dr:copy-to", "us-west-2")]);
        let copier = Copier::new(fake.clone(), settings());
        copier.copy_snapshot(&id).await;
        let (_, broken) = fake.copies_of(&id).pop().unwrap();
        fake.set_state("us-west-2", &broken.id, State::Error);
        let summary = copier.copy_finished("us-west-2", &broken.id, false).await;
        assert_eq!(summary.retried_after_error.len(), 1, "{summary:?}");
        let copies = fake.copies_of(&id);
        assert_eq!(copies.len(), 1);
        assert_ne!(copies[0].1.id, broken.id);
    }

    #[tokio::test]
    async fn the_limit_defers_and_a_later_sweep_completes() {
        let fake = InMemoryRegions::default();
        let ids: Vec<String> = (0..5)
            .map(|i| {
                fake.source(
                    "us-east-1",
                    &format!("vol-{i}"),
                    &[("dr:copy-to", "us-west-2")],
                )
            })
            .collect();
        fake.limit_after("us-west-2", 2);
        let copier = Copier::new(
            fake.clone(),
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
        fake.complete_all();
        fake.limit_after("us-west-2", usize::MAX);
        let second = copier.sweep().await;
        assert_eq!((second.copied.len(), second.skipped_existing.len()), (3, 2));
        for id in ids {
            assert_eq!(fake.copies_of(&id).len(), 1, "{id}: exactly one copy");
        }
    }

    #[tokio::test]
    async fn an_unknown_copy_outcome_keeps_the_claim_and_a_refusal_frees_it() {
        let fake = InMemoryRegions::default();
        let lost = fake.source("us-east-1", "vol-1", &[("dr:copy-to", "us-west-2")]);
        let copier = Copier::new(fake.clone(), settings());
        fake.fail_next_copy("us-west-2", CopyFault::MadeThenLost);
        let first = copier.copy_snapshot(&lost).await;
        assert_eq!(first.errors.len(), 1, "{first:?}");
        // Lambda retries the event and sweeps run while listings lag.
        let retried = copier.copy_snapshot(&lost).await;
        let sweep = copier.sweep().await;
        assert_eq!(fake.copies_of(&lost).len(), 1, "{retried:?} {sweep:?}");
        assert!(retried.copied.is_empty() && sweep.copied.is_empty());
        assert_eq!(sweep.skipped_existing.len(), 1, "{sweep:?}");
        fake.list_all();
        assert!(copier.sweep().await.copied.is_empty());
        assert_eq!(fake.copies_of(&lost).len(), 1, "exactly one copy");

        let refused = fake.source("us-east-1", "vol-2", &[("dr:copy-to", "us-west-2")]);
        fake.fail_next_copy("us-west-2", CopyFault::Refused);
        let first = copier.copy_snapshot(&refused).await;
        assert_eq!(first.errors.len(), 1, "{first:?}");
        assert!(fake.copies_of(&refused).is_empty());
        let next = copier.sweep().await;
        assert_eq!(next.copied.len(), 1, "a refusal frees the claim: {next:?}");
        assert_eq!(fake.copies_of(&refused).len(), 1);
    }

    #[tokio::test]
    async fn retention_and_dry_run() {
        let fake = InMemoryRegions::default();
        let id = fake.source("us-east-1", "vol-1", &[("dr:copy-to", "us-west-2")]);
        for day in 1..=4 {
            fake.managed_copy("us-west-2", "vol-1", "us-east-1", day, State::Completed);
        }
        let unmanaged = fake.unmanaged("us-west-2", "vol-1", 0);
        let dry = Copier::new(
            fake.clone(),
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
        assert_eq!(fake.count("us-west-2"), 5, "a dry run changes nothing");
        let real = Copier::new(fake.clone(), settings());
        let done = real.sweep().await;
        assert_eq!(done.copied.len(), 1);
        assert_eq!(done.pruned.len(), 3, "{done:?}");
        assert_eq!(fake.count("us-west-2"), 3);
        assert!(
            fake.exists("us-west-2", &unmanaged),
            "unmanaged snapshots survive"
        );
        let _ = id;
    }
}
