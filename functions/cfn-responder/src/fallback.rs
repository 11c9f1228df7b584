//! In-process production fallbacks, used when `IDEMPOTENCY_TABLE` is unset
//! (local runs) and by a function that failed to initialise.

use crate::aws::dynamodb::{DynamoOwners, DynamoStore};
use crate::cfn::CfnResponse;
use crate::idempotency::{Entry, claim_outcome};
use crate::ports::{Claim, IdempotencyStore, StoreError, TopicOwners};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

/// Per execution environment only: enough for local runs and tests, not for
/// retries that land in another environment.
#[derive(Default)]
pub struct LocalStore {
    entries: Mutex<HashMap<String, Entry>>,
}

impl IdempotencyStore for LocalStore {
    async fn claim(&self, request_id: &str, until: SystemTime) -> Result<Claim, StoreError> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| StoreError::Poisoned("idempotency store"))?;
        if let Some(entry) = entries.get(request_id) {
            return Ok(claim_outcome(entry));
        }
        entries.insert(request_id.to_owned(), Entry::Running { until });
        Ok(Claim::Fresh)
    }

    async fn complete(&self, request_id: &str, response: &CfnResponse) -> Result<(), StoreError> {
        let mut entries = self
            .entries
            .lock()
            .map_err(|_| StoreError::Poisoned("idempotency store"))?;
        entries.insert(
            request_id.to_owned(),
            Entry::Done(Box::new(response.clone())),
        );
        Ok(())
    }
}

/// The store chosen by configuration.
pub enum Store {
    Local(LocalStore),
    Dynamo(DynamoStore),
}

impl IdempotencyStore for Store {
    async fn claim(&self, request_id: &str, until: SystemTime) -> Result<Claim, StoreError> {
        match self {
            Store::Local(s) => s.claim(request_id, until).await,
            Store::Dynamo(s) => s.claim(request_id, until).await,
        }
    }

    async fn complete(&self, request_id: &str, response: &CfnResponse) -> Result<(), StoreError> {
        match self {
            Store::Local(s) => s.complete(request_id, response).await,
            Store::Dynamo(s) => s.complete(request_id, response).await,
        }
    }
}

/// Per execution environment only: for local runs and tests. A Delete that
/// finds no record sees no other owner.
#[derive(Default)]
pub struct LocalOwners(Mutex<HashMap<String, BTreeSet<String>>>);

impl TopicOwners for LocalOwners {
    async fn claim(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut owners = self
            .0
            .lock()
            .map_err(|_| StoreError::Poisoned("owner store"))?;
        owners
            .entry(key.to_owned())
            .or_default()
            .insert(owner.to_owned());
        Ok(())
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        let mut owners = self
            .0
            .lock()
            .map_err(|_| StoreError::Poisoned("owner store"))?;
        let Some(set) = owners.get_mut(key) else {
            return Ok(false);
        };
        set.remove(owner);
        let others = !set.is_empty();
        if !others {
            owners.remove(key);
        }
        Ok(others)
    }
}

/// The store chosen by configuration.
pub enum Owners {
    Local(LocalOwners),
    Dynamo(DynamoOwners),
}

impl TopicOwners for Owners {
    async fn claim(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        match self {
            Owners::Local(s) => s.claim(key, owner).await,
            Owners::Dynamo(s) => s.claim(key, owner).await,
        }
    }

    async fn release(&self, key: &str, owner: &str) -> Result<bool, StoreError> {
        match self {
            Owners::Local(s) => s.release(key, owner).await,
            Owners::Dynamo(s) => s.release(key, owner).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfn::CfnStatus;
    use std::time::Duration;

    fn response() -> CfnResponse {
        CfnResponse {
            status: CfnStatus::Success,
            reason: None,
            physical_resource_id: "p".into(),
            stack_id: "s".into(),
            request_id: "r".into(),
            logical_resource_id: "l".into(),
            no_echo: false,
            data: Default::default(),
        }
    }

    #[tokio::test]
    async fn memory_store_lifecycle() {
        let store = LocalStore::default();
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(store.claim("r", later).await.unwrap(), Claim::Fresh);
        assert_eq!(store.claim("r", later).await.unwrap(), Claim::InProgress);
        store.complete("r", &response()).await.unwrap();
        assert_eq!(
            store.claim("r", later).await.unwrap(),
            Claim::Completed(Box::new(response()))
        );
        let past = SystemTime::now() - Duration::from_secs(1);
        assert_eq!(store.claim("dead", past).await.unwrap(), Claim::Fresh);
        assert_eq!(store.claim("dead", later).await.unwrap(), Claim::Abandoned);
    }

    #[tokio::test]
    async fn memory_owners_count_each_owner_once() {
        let owners = LocalOwners::default();
        assert!(!owners.release("k", "a").await.unwrap(), "unknown key");
        owners.claim("k", "a").await.unwrap();
        owners.claim("k", "a").await.unwrap();
        owners.claim("k", "b").await.unwrap();
        assert!(owners.release("k", "a").await.unwrap());
        assert!(owners.release("k", "a").await.unwrap(), "b remains");
        assert!(!owners.release("k", "b").await.unwrap());
    }
}
