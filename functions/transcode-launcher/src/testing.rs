//! Test doubles (feature `testing`, on in this crate's tests and benches):
//! the fleet, the job store and the status objects in memory.

use crate::jobs::{Job, Slot, Versioned};
use crate::ports::{
    Fleet, FleetError, JobStore, LaunchRequest, StatusError, StatusStore, StoreError,
};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Instances in memory, running until terminated, with client-token
/// idempotency.
#[derive(Debug, Default)]
pub struct InMemoryFleet {
    pub instances: Mutex<Vec<LaunchRequest>>,
    /// Ids of terminated instances.
    pub terminated: Mutex<HashSet<String>>,
    /// The error every launch returns, when set.
    pub launch_error: Mutex<Option<String>>,
    /// Launches never answer while set (a hung RunInstances).
    pub hang_launches: AtomicBool,
}

fn instance_id(index: usize) -> String {
    format!("i-{index:017x}")
}

impl InMemoryFleet {
    pub fn terminate(&self, instance_id: &str) {
        self.terminated
            .lock()
            .expect("not poisoned")
            .insert(instance_id.to_owned());
    }

    fn is_live(&self, index: usize) -> bool {
        !self
            .terminated
            .lock()
            .expect("not poisoned")
            .contains(&instance_id(index))
    }
}

impl Fleet for InMemoryFleet {
    async fn live_instance(&self, job_id: &str) -> Result<Option<String>, FleetError> {
        let instances = self.instances.lock().expect("not poisoned");
        Ok(instances
            .iter()
            .enumerate()
            .position(|(i, r)| {
                self.is_live(i)
                    && r.tags
                        .iter()
                        .any(|(k, v)| k == crate::job::TAG_JOB_ID && v == job_id)
            })
            .map(instance_id))
    }

    async fn instance_states(
        &self,
        instance_ids: &[String],
    ) -> Result<HashMap<String, String>, FleetError> {
        let count = self.instances.lock().expect("not poisoned").len();
        Ok((0..count)
            .map(|i| {
                let state = if self.is_live(i) {
                    "running"
                } else {
                    "terminated"
                };
                (instance_id(i), state.to_owned())
            })
            .filter(|(id, _)| instance_ids.contains(id))
            .collect())
    }

    async fn launch(&self, request: &LaunchRequest) -> Result<String, FleetError> {
        if self.hang_launches.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if let Some(error) = self.launch_error.lock().expect("not poisoned").clone() {
            return Err(FleetError::Call(error));
        }
        let mut instances = self.instances.lock().expect("not poisoned");
        if let Some(i) = instances
            .iter()
            .position(|r| r.client_token == request.client_token)
        {
            return Ok(instance_id(i));
        }
        instances.push(request.clone());
        Ok(instance_id(instances.len() - 1))
    }
}

/// The job store in memory, with the same conditional writes.
#[derive(Debug, Default)]
pub struct InMemoryJobs {
    pub slots: Mutex<HashMap<usize, Versioned<Slot>>>,
    pub jobs: Mutex<HashMap<String, Versioned<Job>>>,
}

fn conditional_put<K: std::hash::Hash + Eq, T: Clone>(
    map: &mut HashMap<K, Versioned<T>>,
    key: K,
    value: &T,
    expected: Option<u64>,
) -> Option<u64> {
    if map.get(&key).map(|v| v.version) != expected {
        return None;
    }
    let version = expected.unwrap_or(0) + 1;
    map.insert(
        key,
        Versioned {
            version,
            value: value.clone(),
        },
    );
    Some(version)
}

impl JobStore for InMemoryJobs {
    async fn slot(&self, index: usize) -> Result<Option<Versioned<Slot>>, StoreError> {
        Ok(self
            .slots
            .lock()
            .expect("not poisoned")
            .get(&index)
            .cloned())
    }

    async fn put_slot(
        &self,
        index: usize,
        slot: &Slot,
        expected: Option<u64>,
    ) -> Result<Option<u64>, StoreError> {
        let mut slots = self.slots.lock().expect("not poisoned");
        Ok(conditional_put(&mut slots, index, slot, expected))
    }

    async fn job(&self, job_id: &str) -> Result<Option<Versioned<Job>>, StoreError> {
        Ok(self.jobs.lock().expect("not poisoned").get(job_id).cloned())
    }

    async fn put_job(&self, job: &Job, expected: Option<u64>) -> Result<Option<u64>, StoreError> {
        let mut jobs = self.jobs.lock().expect("not poisoned");
        Ok(conditional_put(&mut jobs, job.id.clone(), job, expected))
    }

    async fn active_jobs(&self) -> Result<Vec<Versioned<Job>>, StoreError> {
        let jobs = self.jobs.lock().expect("not poisoned");
        let mut active: Vec<_> = jobs
            .values()
            .filter(|j| j.value.state.is_active())
            .cloned()
            .collect();
        active.sort_by(|a, b| a.value.id.cmp(&b.value.id));
        Ok(active)
    }
}

/// status.json objects in memory, by key.
#[derive(Debug, Default)]
pub struct InMemoryStatus {
    pub objects: Mutex<HashMap<String, String>>,
}

impl StatusStore for InMemoryStatus {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StatusError> {
        Ok(self
            .objects
            .lock()
            .expect("not poisoned")
            .get(key)
            .map(|body| body.as_bytes().to_vec()))
    }

    async fn put(&self, key: &str, body: &str) -> Result<(), StatusError> {
        self.objects
            .lock()
            .expect("not poisoned")
            .insert(key.to_owned(), body.to_owned());
        Ok(())
    }
}
