//! The EC2 calls the launcher makes, and an in-memory fleet for tests and
//! benchmarks.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;

/// One worker to start. Launch-template settings live in the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    /// RunInstances ClientToken: EC2 starts nothing new for a token it has seen.
    pub client_token: String,
    pub user_data: String,
    pub tags: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FleetError(pub String);

pub trait Fleet: Send + Sync {
    /// A pending or running instance tagged with this job id.
    fn live_instance(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<String>, FleetError>> + Send;
    /// Pending or running instances carrying a job-id tag.
    fn running_jobs(&self) -> impl Future<Output = Result<usize, FleetError>> + Send;
    /// The state name (pending, running, shutting-down, terminated,
    /// stopping, stopped) of each listed instance; an instance EC2 does not
    /// list (yet, or any more) is absent.
    fn instance_states(
        &self,
        instance_ids: &[String],
    ) -> impl Future<Output = Result<HashMap<String, String>, FleetError>> + Send;
    /// Returns the instance id.
    fn launch(
        &self,
        request: &LaunchRequest,
    ) -> impl Future<Output = Result<String, FleetError>> + Send;
}

/// Instances in memory, running until terminated, with client-token
/// idempotency.
#[derive(Debug, Default)]
pub struct MemoryFleet {
    pub instances: Mutex<Vec<LaunchRequest>>,
    /// Ids of terminated instances.
    pub terminated: Mutex<HashSet<String>>,
    /// The error every launch returns, when set.
    pub launch_error: Mutex<Option<String>>,
    /// Launches never answer while set (a hung RunInstances).
    pub hang_launches: std::sync::atomic::AtomicBool,
}

fn instance_id(index: usize) -> String {
    format!("i-{index:017x}")
}

impl MemoryFleet {
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

impl Fleet for MemoryFleet {
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

    async fn running_jobs(&self) -> Result<usize, FleetError> {
        let count = self.instances.lock().expect("not poisoned").len();
        Ok((0..count).filter(|i| self.is_live(*i)).count())
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
        if self.hang_launches.load(std::sync::atomic::Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if let Some(error) = self.launch_error.lock().expect("not poisoned").clone() {
            return Err(FleetError(error));
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
