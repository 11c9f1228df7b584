//! Test doubles (feature `testing`, on in this crate's tests and benches).
//!
//! An in-memory EC2 across regions, for tests and the sweep benchmark:
//! counts calls, can add latency, can refuse copies past a limit, and can
//! fail a copy after making it (an unknown outcome) with the copy not yet
//! listed (EC2's listings are eventually consistent).

use crate::ports::{CopyRequest, Ec2Error, Regions, SnapshotApi};
use crate::snapshot::{
    MANAGED_BY_TAG, MANAGED_BY_VALUE, SOURCE_ID_TAG, SOURCE_REGION_TAG, SOURCE_VOLUME_TAG,
    Snapshot, State,
};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Inner {
    regions: Mutex<BTreeMap<String, Vec<Snapshot>>>,
    /// CopySnapshot fails with ResourceLimitExceeded once a region holds
    /// this many pending snapshots.
    limits: Mutex<HashMap<String, usize>>,
    next_id: AtomicUsize,
    calls: AtomicUsize,
    latency: Mutex<Duration>,
    faults: Mutex<HashMap<String, VecDeque<CopyFault>>>,
    /// Snapshots that exist but no listing or DescribeSnapshots shows yet.
    unlisted: Mutex<HashSet<String>>,
}

/// How the next CopySnapshot in a region fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyFault {
    /// The copy is made (not yet listed), then the answer is lost.
    MadeThenLost,
    /// EC2 refuses it (a 4xx): no copy.
    Refused,
    /// EC2 never answers (and makes no copy).
    Hangs,
}

#[derive(Clone, Default)]
pub struct InMemoryRegions {
    inner: Arc<Inner>,
}

pub struct InMemoryRegion {
    region: String,
    inner: Arc<Inner>,
}

impl InMemoryRegions {
    pub fn with_latency(self, latency: Duration) -> Self {
        *self.inner.latency.lock().expect("not poisoned") = latency;
        self
    }

    pub fn calls(&self) -> usize {
        self.inner.calls.load(Ordering::SeqCst)
    }

    fn add(&self, region: &str, snapshot: Snapshot) -> String {
        let id = snapshot.id.clone();
        self.inner
            .regions
            .lock()
            .expect("not poisoned")
            .entry(region.to_owned())
            .or_default()
            .push(snapshot);
        id
    }

    fn new_id(inner: &Inner) -> String {
        format!(
            "snap-{:017x}",
            inner.next_id.fetch_add(1, Ordering::SeqCst) + 1
        )
    }

    fn snapshot(
        &self,
        volume: &str,
        day: i64,
        state: State,
        tags: Vec<(String, String)>,
    ) -> Snapshot {
        Snapshot {
            id: Self::new_id(&self.inner),
            volume_id: volume.to_owned(),
            state,
            start_time: day * 86_400,
            encrypted: false,
            tags,
        }
    }

    /// A completed snapshot in `region` with `tags`; returns its id.
    pub fn source(&self, region: &str, volume: &str, tags: &[(&str, &str)]) -> String {
        let tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let snapshot = self.snapshot(volume, 20_000, State::Completed, tags);
        self.add(region, snapshot)
    }

    /// A copy this copier made earlier, `day` days after the epoch.
    pub fn managed_copy(
        &self,
        region: &str,
        volume: &str,
        source_region: &str,
        day: i64,
        state: State,
    ) -> String {
        let tags = vec![
            (
                SOURCE_ID_TAG.to_owned(),
                format!("snap-source-of-day-{day}"),
            ),
            (SOURCE_REGION_TAG.to_owned(), source_region.to_owned()),
            (SOURCE_VOLUME_TAG.to_owned(), volume.to_owned()),
            (MANAGED_BY_TAG.to_owned(), MANAGED_BY_VALUE.to_owned()),
        ];
        let snapshot = self.snapshot("vol-ffffffff", day, state, tags);
        self.add(region, snapshot)
    }

    /// Someone else's snapshot of the same volume.
    pub fn unmanaged(&self, region: &str, volume: &str, day: i64) -> String {
        let tags = vec![(SOURCE_VOLUME_TAG.to_owned(), volume.to_owned())];
        let snapshot = self.snapshot(volume, day, State::Completed, tags);
        self.add(region, snapshot)
    }

    pub fn copies_of(&self, source_id: &str) -> Vec<(String, Snapshot)> {
        let regions = self.inner.regions.lock().expect("not poisoned");
        regions
            .iter()
            .flat_map(|(region, snapshots)| {
                snapshots
                    .iter()
                    .filter(|s| s.tag(SOURCE_ID_TAG) == Some(source_id))
                    .map(|s| (region.clone(), s.clone()))
            })
            .collect()
    }

    pub fn set_state(&self, region: &str, id: &str, state: State) {
        let mut regions = self.inner.regions.lock().expect("not poisoned");
        if let Some(s) = regions
            .get_mut(region)
            .and_then(|r| r.iter_mut().find(|s| s.id == id))
        {
            s.state = state;
        }
    }

    pub fn complete_all(&self) {
        let mut regions = self.inner.regions.lock().expect("not poisoned");
        for snapshot in regions.values_mut().flatten() {
            if snapshot.state == State::Pending {
                snapshot.state = State::Completed;
            }
        }
    }

    /// The next CopySnapshot in `region` fails with `fault`.
    pub fn fail_next_copy(&self, region: &str, fault: CopyFault) {
        self.inner
            .faults
            .lock()
            .expect("not poisoned")
            .entry(region.to_owned())
            .or_default()
            .push_back(fault);
    }

    /// Listings catch up: every snapshot made is shown.
    pub fn list_all(&self) {
        self.inner.unlisted.lock().expect("not poisoned").clear();
    }

    pub fn limit_after(&self, region: &str, pending: usize) {
        self.inner
            .limits
            .lock()
            .expect("not poisoned")
            .insert(region.to_owned(), pending);
    }

    pub fn count(&self, region: &str) -> usize {
        self.inner
            .regions
            .lock()
            .expect("not poisoned")
            .get(region)
            .map_or(0, Vec::len)
    }

    pub fn exists(&self, region: &str, id: &str) -> bool {
        self.inner
            .regions
            .lock()
            .expect("not poisoned")
            .get(region)
            .is_some_and(|r| r.iter().any(|s| s.id == id))
    }
}

impl Regions for InMemoryRegions {
    type Api = InMemoryRegion;
    fn region(&self, name: &str) -> InMemoryRegion {
        InMemoryRegion {
            region: name.to_owned(),
            inner: self.inner.clone(),
        }
    }
}

impl InMemoryRegion {
    async fn call(&self) {
        self.inner.calls.fetch_add(1, Ordering::SeqCst);
        let latency = *self.inner.latency.lock().expect("not poisoned");
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
    }

    fn count_where(&self, keep: impl Fn(&Snapshot) -> bool) -> usize {
        let unlisted = self.inner.unlisted.lock().expect("not poisoned").clone();
        self.inner
            .regions
            .lock()
            .expect("not poisoned")
            .get(&self.region)
            .map_or(0, |r| {
                r.iter()
                    .filter(|s| !unlisted.contains(&s.id) && keep(s))
                    .count()
            })
    }

    fn select(&self, keep: impl Fn(&Snapshot) -> bool) -> Vec<Snapshot> {
        let unlisted = self.inner.unlisted.lock().expect("not poisoned").clone();
        self.inner
            .regions
            .lock()
            .expect("not poisoned")
            .get(&self.region)
            .map(|r| {
                r.iter()
                    .filter(|s| !unlisted.contains(&s.id) && keep(s))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl SnapshotApi for InMemoryRegion {
    async fn describe(&self, id: &str) -> Result<Option<Snapshot>, Ec2Error> {
        self.call().await;
        Ok(self.select(|s| s.id == id).pop())
    }

    async fn tagged(&self, tag_key: &str, volume: Option<&str>) -> Result<Vec<Snapshot>, Ec2Error> {
        self.call().await;
        Ok(self.select(|s| {
            s.state == State::Completed
                && s.tag(tag_key).is_some()
                && volume.is_none_or(|v| s.volume_id == v)
        }))
    }

    async fn with_tag(&self, key: &str, value: &str) -> Result<Vec<Snapshot>, Ec2Error> {
        self.call().await;
        Ok(self.select(|s| s.tag(key) == Some(value)))
    }

    async fn pending_count(&self) -> Result<usize, Ec2Error> {
        self.call().await;
        Ok(self.count_where(|s| s.state == State::Pending))
    }

    async fn copy(&self, request: &CopyRequest) -> Result<String, Ec2Error> {
        self.call().await;
        let pending = self.count_where(|s| s.state == State::Pending);
        let limit = self
            .inner
            .limits
            .lock()
            .expect("not poisoned")
            .get(&self.region)
            .copied();
        if limit.is_some_and(|limit| pending >= limit) {
            return Err(Ec2Error::LimitExceeded(
                "too many snapshot copies in progress".into(),
            ));
        }
        let regions = InMemoryRegions {
            inner: self.inner.clone(),
        };
        let fault = self
            .inner
            .faults
            .lock()
            .expect("not poisoned")
            .get_mut(&self.region)
            .and_then(VecDeque::pop_front);
        if fault == Some(CopyFault::Hangs) {
            std::future::pending::<()>().await;
        }
        if fault == Some(CopyFault::Refused) {
            return Err(Ec2Error::Refused(
                "InvalidParameterValue: refused (injected)".into(),
            ));
        }
        if !regions.exists(&request.source_region, &request.source_snapshot_id) {
            return Err(Ec2Error::Refused(format!(
                "InvalidSnapshot.NotFound: {}",
                request.source_snapshot_id
            )));
        }
        let mut copy =
            regions.snapshot("vol-ffffffff", 20_001, State::Pending, request.tags.clone());
        copy.encrypted = request.encrypted;
        let id = regions.add(&self.region, copy);
        if fault == Some(CopyFault::MadeThenLost) {
            self.inner.unlisted.lock().expect("not poisoned").insert(id);
            return Err(Ec2Error::Other(
                "dispatch failure: connection reset (injected)".into(),
            ));
        }
        Ok(id)
    }

    async fn delete(&self, id: &str) -> Result<(), Ec2Error> {
        self.call().await;
        if let Some(r) = self
            .inner
            .regions
            .lock()
            .expect("not poisoned")
            .get_mut(&self.region)
        {
            r.retain(|s| s.id != id);
        }
        Ok(())
    }
}
