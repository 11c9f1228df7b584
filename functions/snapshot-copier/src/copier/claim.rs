//! One claim per (source snapshot, destination), taken with a conditional
//! write before CopySnapshot: CopySnapshot has no client token, and
//! DescribeSnapshots is eventually consistent, so "look, then copy" lets two
//! invocations at once both copy. Whoever writes the claim copies; the
//! others skip.
//!
//! A claim records its holder, the copy's id once made, a lease (how long a
//! claim without a copy id is trusted) and an expiry. A claim is only
//! needed until its copy shows up in listings, so it expires after a day
//! (DynamoDB's TTL removes it; an expired claim counts as absent even before).

use super::{Copier, now};
use crate::ports::{Claim, ClaimError, Claims, Condition, Regions, SnapshotApi};
use crate::snapshot::{SOURCE_ID_TAG, Snapshot, State};
use std::sync::atomic::Ordering;

/// A holder without a copy id after this long has died: Lambda stops every
/// invocation within 15 minutes.
pub const LEASE_SECS: i64 = 15 * 60;
/// Far beyond the time a new copy takes to show up in DescribeSnapshots.
pub const EXPIRY_SECS: i64 = 24 * 3600;

/// A claim this invocation holds: it copies, then records the copy id.
pub(super) struct Held {
    pub key: String,
    pub holder: String,
}

/// Who copies a source to a destination.
pub(super) enum Claimed {
    /// This invocation.
    Held(Held),
    /// Another invocation, which made `copy` or is making it.
    Taken { copy: Option<String>, note: String },
}

fn taken(copy: Option<String>, why: &str) -> Claimed {
    Claimed::Taken {
        copy,
        note: why.to_owned(),
    }
}

/// The claim this invocation tries to write for one source and destination.
struct Attempt<'a> {
    key: String,
    mine: Claim,
    now: i64,
    source: &'a Snapshot,
    region: &'a str,
}

impl Attempt<'_> {
    fn held(&self) -> Claimed {
        Claimed::Held(Held {
            key: self.key.clone(),
            holder: self.mine.holder.clone(),
        })
    }

    fn fail(&self, e: ClaimError) -> String {
        format!(
            "{}: claiming the copy to {}: {e}",
            self.source.id, self.region
        )
    }
}

impl<R: Regions> Copier<R> {
    fn new_holder(&self) -> String {
        let n = self.holders.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.holder_prefix)
    }

    /// Claims the copy of `source` to `region` for this invocation, or says
    /// who has it. `errored` are the copies in error the caller saw (a claim
    /// recording one of them may be taken over); copies in error found while
    /// recovering a dead holder's claim are added to it.
    pub(super) async fn claim(
        &self,
        api: &R::Api,
        source: &Snapshot,
        region: &str,
        errored: &mut Vec<String>,
    ) -> Result<Claimed, String> {
        let now = now();
        let attempt = Attempt {
            key: format!("{}/{}/{region}", self.settings.source_region, source.id),
            mine: Claim {
                holder: self.new_holder(),
                copy_id: None,
                lease_until: now + LEASE_SECS,
                expires_at: now + EXPIRY_SECS,
            },
            now,
            source,
            region,
        };
        let free = Condition::Free { now };
        if self.put(&attempt, &attempt.mine, &free).await? {
            return Ok(attempt.held());
        }
        let current = self.claims.get(&attempt.key).await;
        let Some(current) = current.map_err(|e| attempt.fail(e))? else {
            // Released (or expired and removed) in between: one more try.
            return self
                .take_or(&attempt, free, "claimed by another invocation")
                .await;
        };
        match current.copy_id {
            Some(copy) if errored.contains(&copy) => {
                let condition = Condition::CopyIs(copy);
                self.take_or(&attempt, condition, "replaced by another invocation")
                    .await
            }
            // Made by another invocation; the listing had not shown it yet.
            Some(copy) => Ok(taken(Some(copy), "made by another invocation")),
            None if current.lease_until >= attempt.now => {
                Ok(taken(None, "being copied by another invocation"))
            }
            None => self.take_over(api, &attempt, current, errored).await,
        }
    }

    /// Writes `claim` under the attempt's key if `condition` holds.
    async fn put(
        &self,
        attempt: &Attempt<'_>,
        claim: &Claim,
        condition: &Condition,
    ) -> Result<bool, String> {
        let put = self.claims.put_if(&attempt.key, claim, condition).await;
        put.map_err(|e| attempt.fail(e))
    }

    /// Held if `condition` holds, taken by another invocation (`otherwise`)
    /// if not.
    async fn take_or(
        &self,
        attempt: &Attempt<'_>,
        condition: Condition,
        otherwise: &str,
    ) -> Result<Claimed, String> {
        Ok(if self.put(attempt, &attempt.mine, &condition).await? {
            attempt.held()
        } else {
            taken(None, otherwise)
        })
    }

    /// The holder of `current` died before recording a copy id: it may have
    /// made the copy. Long after, the copy shows up by its tag.
    async fn take_over(
        &self,
        api: &R::Api,
        attempt: &Attempt<'_>,
        current: Claim,
        errored: &mut Vec<String>,
    ) -> Result<Claimed, String> {
        let (source, region) = (attempt.source, attempt.region);
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
            self.put(attempt, &recorded, &dead).await?;
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
        self.take_or(attempt, dead, "claimed by another invocation")
            .await
    }

    /// Records the copy made under a claim; if that fails, the claim's lease
    /// runs out and the copy is found by its tag.
    pub(super) async fn record(&self, held: &Held, copy: &str) {
        let (key, holder) = (held.key.as_str(), held.holder.as_str());
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
    pub(super) async fn release_claim(&self, held: &Held) {
        if let Err(e) = self.claims.release(&held.key, &held.holder).await {
            tracing::warn!(key = held.key.as_str(), error = %e, "releasing a claim; its lease runs out instead");
        }
    }
}
