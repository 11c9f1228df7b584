//! Copying tagged snapshots to their destination regions, once each, and
//! pruning old copies.
//!
//! - this file: the copier, its settings and answer, and the two event paths
//!   (a snapshot just created, a copy finished);
//! - [`claim`]: who copies a source to a destination;
//! - `copy`: one copy under the limit and a claim;
//! - `sweep`: every destination brought to its retention plan.

pub mod claim;
mod copy;
mod sweep;

use crate::destinations;
use crate::fallback::ClaimStore;
use crate::ports::{Regions, SnapshotApi};
use crate::retention::{self, Plan, Retention};
use crate::snapshot::{SOURCE_ID_TAG, SOURCE_REGION_TAG, SOURCE_VOLUME_TAG, Snapshot, State};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::AtomicUsize;

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

impl Pair {
    fn of(source: &Snapshot, region: &str, copy: Option<String>, note: Option<String>) -> Pair {
        Pair {
            source: source.id.clone(),
            region: region.to_owned(),
            copy,
            note,
        }
    }
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
        let nanos = shared::time::now_nanos();
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

    /// This copier's copies in `region` made from this source region.
    pub(super) fn own_copies(&self, copies: Vec<Snapshot>) -> Vec<Snapshot> {
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
        let mut summary = Summary::default();
        self.copy_snapshot_into(id, &mut summary).await;
        summary
    }

    /// [`Self::copy_snapshot`], reporting into `summary` as it goes, so a
    /// caller that cuts it off keeps what was done.
    pub async fn copy_snapshot_into(&self, id: &str, summary: &mut Summary) {
        self.start();
        let snapshot = match self.source().describe(id).await {
            Ok(Some(snapshot)) => snapshot,
            Ok(None) => {
                summary.ignored.push(format!("{id}: not found"));
                return;
            }
            Err(e) => {
                summary.errors.push(format!("{id}: DescribeSnapshots: {e}"));
                return;
            }
        };
        let regions = match self.destinations(&snapshot) {
            Ok(regions) => regions,
            Err(why) => {
                summary.ignored.push(why);
                return;
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
                return;
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
            for (source, errored) in self.report(&region, &plan, &sources, Some(id), summary) {
                summary.merge(self.copy_to(source, &region, errored).await);
            }
        }
    }

    /// A copySnapshot result seen in a destination region. A failed copy is
    /// replaced at once (the sweep would otherwise do it).
    pub async fn copy_finished(&self, region: &str, copy_id: &str, succeeded: bool) -> Summary {
        let mut summary = Summary::default();
        self.copy_finished_into(region, copy_id, succeeded, &mut summary)
            .await;
        summary
    }

    /// [`Self::copy_finished`], reporting into `summary` as it goes.
    pub async fn copy_finished_into(
        &self,
        region: &str,
        copy_id: &str,
        succeeded: bool,
        summary: &mut Summary,
    ) {
        summary.completions.push(format!(
            "{region}/{copy_id}: {}",
            if succeeded { "succeeded" } else { "failed" }
        ));
        if succeeded {
            return;
        }
        let source_id = match self.regions.region(region).describe(copy_id).await {
            Ok(Some(copy)) if copy.is_managed() => copy.tag(SOURCE_ID_TAG).map(str::to_owned),
            Ok(_) => None,
            Err(e) => {
                summary
                    .errors
                    .push(format!("{region}/{copy_id}: DescribeSnapshots: {e}"));
                return;
            }
        };
        if let Some(source_id) = source_id {
            self.copy_snapshot_into(&source_id, summary).await;
        }
    }
}

/// Epoch seconds, as claims and retention count time.
fn now() -> i64 {
    shared::time::now_secs() as i64
}

#[cfg(test)]
mod tests;
