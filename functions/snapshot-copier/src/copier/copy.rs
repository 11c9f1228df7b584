//! Copying one source to one destination: a copy slot under the limit, a
//! claim, then CopySnapshot, and what its outcome means for the claim.

use super::claim::{Claimed, Held};
use super::{Copier, Pair, Summary};
use crate::ports::{CopyRequest, Ec2Error, Regions, SnapshotApi};
use crate::snapshot::{
    MANAGED_BY_TAG, MANAGED_BY_VALUE, SOURCE_ID_TAG, SOURCE_REGION_TAG, SOURCE_START_TIME_TAG,
    SOURCE_VOLUME_TAG, Snapshot,
};
use crate::tags;

impl<R: Regions> Copier<R> {
    /// The CopySnapshot request, and a warning naming source tags the copy
    /// could not carry as they were.
    pub(super) fn request(&self, source: &Snapshot, region: &str) -> (CopyRequest, Option<String>) {
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
    pub(super) fn start(&self) {
        self.in_flight.lock().expect("not poisoned").clear();
    }

    /// Gives back a copy slot taken by [`Self::reserve`].
    fn release(&self, region: &str) {
        if let Some(slot) = self.in_flight.lock().expect("not poisoned").get_mut(region) {
            *slot = slot.saturating_sub(1);
        }
    }

    /// Copies `source` to `region` under a claim, replacing its `errored`
    /// copies there.
    pub(super) async fn copy_to(
        &self,
        source: &Snapshot,
        region: &str,
        mut errored: Vec<String>,
    ) -> Summary {
        let mut summary = Summary::default();
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
                summary
                    .deferred
                    .push(Pair::of(source, region, None, Some(note)));
                return summary;
            }
            Err(e) => {
                summary
                    .errors
                    .push(format!("{}: counting copies in {region}: {e}", source.id));
                return summary;
            }
        }
        let held = match self.claim(&api, source, region, &mut errored).await {
            Ok(Claimed::Held(held)) => held,
            Ok(Claimed::Taken { copy, note }) => {
                self.release(region);
                summary
                    .skipped_existing
                    .push(Pair::of(source, region, copy, Some(note)));
                return summary;
            }
            Err(e) => {
                self.release(region);
                summary.errors.push(e);
                return summary;
            }
        };
        self.copy_held(&api, source, region, &held, errored).await
    }

    /// Under a claim: deletes the `errored` copies, then copies.
    async fn copy_held(
        &self,
        api: &R::Api,
        source: &Snapshot,
        region: &str,
        held: &Held,
        errored: Vec<String>,
    ) -> Summary {
        let mut summary = Summary::default();
        for errored in &errored {
            if let Err(e) = api.delete(errored).await {
                self.release(region);
                self.release_claim(held).await;
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
                self.record(held, &copy).await;
                if errored.is_empty() {
                    summary
                        .copied
                        .push(Pair::of(source, region, Some(copy), warning));
                } else {
                    let replaces = format!("replaces {}", errored.join(", "));
                    let note = match warning {
                        Some(warning) => format!("{replaces}; {warning}"),
                        None => replaces,
                    };
                    summary.retried_after_error.push(Pair::of(
                        source,
                        region,
                        Some(copy),
                        Some(note),
                    ));
                }
            }
            Err(e) => {
                self.copy_failed(e, source, region, held, &mut summary)
                    .await
            }
        }
        summary
    }

    /// What a CopySnapshot error means for the claim and the copy slot.
    async fn copy_failed(
        &self,
        error: Ec2Error,
        source: &Snapshot,
        region: &str,
        held: &Held,
        summary: &mut Summary,
    ) {
        match error {
            Ec2Error::LimitExceeded(e) => {
                self.release_claim(held).await;
                // EC2's own count is the truth: stop starting copies here.
                self.in_flight
                    .lock()
                    .expect("not poisoned")
                    .insert(region.to_owned(), self.settings.max_concurrent_copies);
                let note = format!("ResourceLimitExceeded: {e}");
                summary
                    .deferred
                    .push(Pair::of(source, region, None, Some(note)));
            }
            Ec2Error::Refused(e) => {
                self.release_claim(held).await;
                self.release(region);
                summary
                    .errors
                    .push(format!("{}: CopySnapshot in {region}: {e}", source.id));
            }
            Ec2Error::Other(e) => {
                // EC2 may have made the copy: the claim stays (and so does the
                // copy slot) until its lease runs out, then the copy is looked
                // for by its source-id tag.
                summary.errors.push(format!(
                    "{}: CopySnapshot in {region}, outcome unknown (claim kept): {e}",
                    source.id
                ));
            }
        }
    }
}
