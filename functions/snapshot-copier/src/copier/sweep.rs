//! The sweep: every destination brought to its retention plan.

use super::{Copier, Summary, now};
use crate::ports::{Ec2Error, Regions, SnapshotApi};
use crate::retention::{self, Plan};
use crate::snapshot::{MANAGED_BY_TAG, MANAGED_BY_VALUE, Snapshot};
use futures_util::{StreamExt, stream};
use std::collections::BTreeMap;

/// Per destination, the sources that ask for it.
type Wanted = BTreeMap<String, Vec<Snapshot>>;

impl<R: Regions> Copier<R> {
    /// Every destination brought to its retention plan: kept sources copied,
    /// dropped restore points' copies deleted.
    pub async fn sweep(&self) -> Summary {
        let mut summary = Summary::default();
        self.sweep_into(&mut summary).await;
        summary
    }

    /// [`Self::sweep`], reporting into `summary` as each step ends, so a
    /// caller that cuts it off (the invocation deadline) still reports and
    /// counts what was done.
    pub async fn sweep_into(&self, summary: &mut Summary) {
        self.start();
        let Some(wanted) = self.wanted(summary).await else {
            return;
        };
        let listings = self.list_destinations(&wanted).await;
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
        self.apply_plans(&plans, &wanted, summary).await;
    }

    /// The tagged sources grouped by destination (the default destinations
    /// always present); `None` if they could not be listed.
    async fn wanted(&self, summary: &mut Summary) -> Option<Wanted> {
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
                return None;
            }
        };
        let mut wanted: Wanted = self
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
        Some(wanted)
    }

    /// One listing per destination serves the plan; its copies in progress
    /// are counted once, up front.
    async fn list_destinations(
        &self,
        wanted: &Wanted,
    ) -> Vec<(String, Result<Vec<Snapshot>, Ec2Error>)> {
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
            .await
    }

    /// Makes the copies the plans keep, then deletes what they drop.
    async fn apply_plans(&self, plans: &[(String, Plan)], wanted: &Wanted, summary: &mut Summary) {
        let mut work = Vec::new();
        for (region, plan) in plans {
            for (source, errored) in self.report(region, plan, &wanted[region], None, summary) {
                work.push((source, region.as_str(), errored));
            }
        }
        // Each copy's result lands as it comes, not when all are done.
        stream::iter(work)
            .map(|(source, region, errored)| self.copy_to(source, region, errored))
            .buffer_unordered(self.settings.concurrency)
            .for_each(|result| {
                summary.merge(result);
                std::future::ready(())
            })
            .await;
        self.prune(plans, summary).await;
    }

    /// Deletes the copies the plans drop.
    async fn prune(&self, plans: &[(String, Plan)], summary: &mut Summary) {
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
    }
}
