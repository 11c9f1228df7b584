//! An in-memory archive store for the domain tests (S3 in production).

use crate::ports::{ArchiveStore, StoreError};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Objects in memory; `failing` makes every call fail, like S3 answering 500.
#[derive(Debug, Default)]
pub struct MemoryStore {
    pub objects: Mutex<BTreeMap<String, Vec<u8>>>,
    pub failing: Mutex<bool>,
    /// Puts that succeed before every later one fails.
    pub puts_before_failing: Mutex<Option<usize>>,
}

impl MemoryStore {
    fn check(&self) -> Result<(), StoreError> {
        if *self.failing.lock().expect("not poisoned") {
            return Err(StoreError::Failed(
                "InternalError: We encountered an internal error".into(),
            ));
        }
        Ok(())
    }

    pub fn keys(&self) -> Vec<String> {
        self.objects
            .lock()
            .expect("not poisoned")
            .keys()
            .cloned()
            .collect()
    }
}

impl ArchiveStore for MemoryStore {
    async fn put(
        &self,
        key: &str,
        body: Vec<u8>,
        _content_type: &'static str,
    ) -> Result<(), StoreError> {
        self.check()?;
        let mut budget = self.puts_before_failing.lock().expect("not poisoned");
        if let Some(left) = budget.as_mut() {
            if *left == 0 {
                return Err(StoreError::Failed(
                    "InternalError: We encountered an internal error".into(),
                ));
            }
            *left -= 1;
        }
        self.objects
            .lock()
            .expect("not poisoned")
            .insert(key.to_owned(), body);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.check()?;
        Ok(self.objects.lock().expect("not poisoned").get(key).cloned())
    }
}
