//! What the function runs with when `CLAIM_TABLE` is not set: claims held
//! within this process only.

use crate::aws::dynamodb::DynamoClaims;
use crate::ports::{Claim, ClaimError, Claims, Condition};
use std::collections::HashMap;
use std::sync::Mutex;

/// Claims within one process: local runs without a table, and tests.
#[derive(Default)]
pub struct LocalClaims(Mutex<HashMap<String, Claim>>);

impl Claims for LocalClaims {
    async fn put_if(
        &self,
        key: &str,
        claim: &Claim,
        condition: &Condition,
    ) -> Result<bool, ClaimError> {
        let mut claims = self.0.lock().expect("not poisoned");
        if !condition.holds(claims.get(key)) {
            return Ok(false);
        }
        claims.insert(key.to_owned(), claim.clone());
        Ok(true)
    }

    async fn get(&self, key: &str) -> Result<Option<Claim>, ClaimError> {
        Ok(self.0.lock().expect("not poisoned").get(key).cloned())
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), ClaimError> {
        let mut claims = self.0.lock().expect("not poisoned");
        if Condition::HeldWithoutCopy(holder.to_owned()).holds(claims.get(key)) {
            claims.remove(key);
        }
        Ok(())
    }
}

/// The store the function runs with: DynamoDB when `CLAIM_TABLE` is set.
pub enum ClaimStore {
    Local(LocalClaims),
    Dynamo(DynamoClaims),
}

impl Default for ClaimStore {
    fn default() -> Self {
        Self::Local(LocalClaims::default())
    }
}

impl Claims for ClaimStore {
    async fn put_if(
        &self,
        key: &str,
        claim: &Claim,
        condition: &Condition,
    ) -> Result<bool, ClaimError> {
        match self {
            Self::Local(m) => m.put_if(key, claim, condition).await,
            Self::Dynamo(d) => d.put_if(key, claim, condition).await,
        }
    }

    async fn get(&self, key: &str) -> Result<Option<Claim>, ClaimError> {
        match self {
            Self::Local(m) => m.get(key).await,
            Self::Dynamo(d) => d.get(key).await,
        }
    }

    async fn release(&self, key: &str, holder: &str) -> Result<(), ClaimError> {
        match self {
            Self::Local(m) => m.release(key, holder).await,
            Self::Dynamo(d) => d.release(key, holder).await,
        }
    }
}
