//! The seams of the domain: the EC2 calls the launcher makes ([`Fleet`]),
//! the job ledger and capacity slots ([`JobStore`]) and the jobs'
//! `status.json` objects ([`StatusStore`]), and how each can fail. Adapters
//! are in `aws/`, test doubles in `testing.rs`.

use crate::jobs::{Job, Slot, Versioned};
use std::collections::HashMap;
use std::future::Future;

/// One worker to start. Launch-template settings live in the adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRequest {
    /// RunInstances ClientToken: EC2 starts nothing new for a token it has seen.
    pub client_token: String,
    pub user_data: String,
    pub tags: Vec<(String, String)>,
}

/// An EC2 call that failed. The launcher reports every one the same way
/// (the record fails and Lambda retries it, or the sweep tries again), so
/// the variants only say where the failure came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetError {
    /// What EC2 or the SDK answered.
    #[error("{0}")]
    Call(String),
    /// RunInstances answered without an instance.
    #[error("RunInstances returned no instance")]
    NoInstance,
}

pub trait Fleet: Send + Sync {
    /// A pending or running instance tagged with this job id.
    fn live_instance(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<String>, FleetError>> + Send;
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

/// A ledger or slot read or write that failed. A write that loses its
/// condition is no error: it answers `Ok(None)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The call the store refused or did not answer, and why.
    #[error("{call}: {reason}")]
    Call { call: &'static str, reason: String },
    /// A stored item without the version every write is conditional on.
    #[error("item without a version")]
    NoVersion,
    /// A ledger item that cannot be read back as a job.
    #[error("ledger item {job_id}: {field} missing or invalid")]
    BadJob { job_id: String, field: String },
}

/// `expected`: None writes only if the item is absent; Some(v) only if the
/// stored version is v. Ok(Some(new version)) when the write won, Ok(None)
/// when the condition failed.
pub trait JobStore: Send + Sync {
    fn slot(
        &self,
        index: usize,
    ) -> impl Future<Output = Result<Option<Versioned<Slot>>, StoreError>> + Send;
    fn put_slot(
        &self,
        index: usize,
        slot: &Slot,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    fn job(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<Versioned<Job>>, StoreError>> + Send;
    fn put_job(
        &self,
        job: &Job,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
    /// Queued, launching and running jobs.
    fn active_jobs(&self) -> impl Future<Output = Result<Vec<Versioned<Job>>, StoreError>> + Send;
}

/// A status.json read or write that failed. A missing object is no error:
/// it reads as `Ok(None)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// The call the store refused or did not answer, and why.
    #[error("{call}: {reason}")]
    Call { call: &'static str, reason: String },
    /// The object was found, but its body broke off.
    #[error("GetObject: reading the body: {0}")]
    Body(String),
}

pub trait StatusStore: Send + Sync {
    /// The object's body, None when there is none.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StatusError>> + Send;
    fn put(&self, key: &str, body: &str) -> impl Future<Output = Result<(), StatusError>> + Send;
}
