//! In-memory doubles of the ports, for unit tests, integration tests and
//! benchmarks (feature `testing`); production never compiles them.

use crate::notification::Reason;
use crate::ports::{
    AccountError, AccountSuppression, Clock, StoreError, SuppressionStore, Written,
};
use crate::suppression::Entry;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// An in-memory table with the same conditional-write rule as DynamoDB's.
#[derive(Default)]
pub struct InMemorySuppressions {
    entries: Mutex<HashMap<String, Entry>>,
}

impl InMemorySuppressions {
    pub fn entries(&self) -> HashMap<String, Entry> {
        self.entries.lock().expect("not poisoned").clone()
    }
}

impl SuppressionStore for InMemorySuppressions {
    async fn get(&self, address: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .entries
            .lock()
            .expect("not poisoned")
            .get(address)
            .cloned())
    }

    async fn put(&self, entry: &Entry) -> Result<Written, StoreError> {
        let mut entries = self.entries.lock().expect("not poisoned");
        let stored = entries.get(&entry.address).map_or(0, |e| e.version);
        if stored != entry.version {
            return Ok(Written::Conflict);
        }
        let mut next = entry.clone();
        next.version += 1;
        entries.insert(entry.address.clone(), next);
        Ok(Written::Yes)
    }
}

/// A clock that stands still until set.
pub struct InMemoryClock(AtomicI64);

impl InMemoryClock {
    pub fn at(epoch_secs: i64) -> Self {
        Self(AtomicI64::new(epoch_secs))
    }

    pub fn set(&self, epoch_secs: i64) {
        self.0.store(epoch_secs, Ordering::SeqCst);
    }
}

impl Clock for InMemoryClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// An account list that records every call.
#[derive(Default)]
pub struct InMemoryAccount(Mutex<Vec<(String, Reason)>>);

impl InMemoryAccount {
    pub fn calls(&self) -> Vec<(String, Reason)> {
        self.0.lock().expect("not poisoned").clone()
    }
}

impl AccountSuppression for InMemoryAccount {
    async fn suppress(&self, address: &str, reason: Reason) -> Result<(), AccountError> {
        self.0
            .lock()
            .expect("not poisoned")
            .push((address.to_owned(), reason));
        Ok(())
    }
}
