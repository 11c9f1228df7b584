//! The jobs' `status.json` objects in the output bucket: whether a worker
//! wrote one, and the failure status written for a job whose every attempt
//! died.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StatusError(pub String);

pub trait StatusStore: Send + Sync {
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool, StatusError>> + Send;
    fn put(&self, key: &str, body: &str) -> impl Future<Output = Result<(), StatusError>> + Send;
}

#[derive(Debug, Default)]
pub struct MemoryStatus {
    pub objects: Mutex<HashMap<String, String>>,
}

impl StatusStore for MemoryStatus {
    async fn exists(&self, key: &str) -> Result<bool, StatusError> {
        Ok(self.objects.lock().expect("not poisoned").contains_key(key))
    }

    async fn put(&self, key: &str, body: &str) -> Result<(), StatusError> {
        self.objects
            .lock()
            .expect("not poisoned")
            .insert(key.to_owned(), body.to_owned());
        Ok(())
    }
}
