//! The job store in one DynamoDB table keyed by `pk` (S): `slot#<n>` items
//! are the capacity slots, `job#<id>` items the ledger. Every write is a
//! PutItem conditional on the version read.

use crate::event::ObjectCreated;
use crate::jobs::{Job, JobState, Slot, Versioned};
use crate::ports::{JobStore, StoreError};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub const KEY_ATTR: &str = "pk";
/// Finished jobs leave the ledger after this long (the table's TTL).
pub const FINISHED_JOB_TTL_SECS: u64 = 30 * 24 * 3600;

type Item = HashMap<String, AttributeValue>;

pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: String) -> Self {
        Self { client, table }
    }

    async fn get(&self, key: String) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY_ATTR, AttributeValue::S(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| call_error("GetItem", e))?;
        Ok(output.item)
    }

    async fn put(&self, mut item: Item, expected: Option<u64>) -> Result<Option<u64>, StoreError> {
        let version = expected.unwrap_or(0) + 1;
        item.insert("version".into(), n(version));
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expected {
            None => request
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", KEY_ATTR),
            Some(v) => request
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", n(v)),
        };
        match request.send().await {
            Ok(_) => Ok(Some(version)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(call_error("PutItem", e)),
        }
    }
}

fn call_error<E: std::error::Error + 'static>(call: &'static str, e: E) -> StoreError {
    StoreError::Call {
        call,
        reason: shared::aws::error_text(&e),
    }
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn text(item: &Item, name: &str) -> Option<String> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::to_owned)
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Option<T> {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn slot_key(index: usize) -> String {
    format!("slot#{index}")
}

fn job_key(job_id: &str) -> String {
    format!("job#{job_id}")
}

fn version(item: &Item) -> Result<u64, StoreError> {
    number(item, "version").ok_or(StoreError::NoVersion)
}

fn slot_from(item: &Item) -> Result<Versioned<Slot>, StoreError> {
    Ok(Versioned {
        version: version(item)?,
        value: Slot {
            job_id: text(item, "jobId").unwrap_or_default(),
            instance_id: text(item, "instanceId"),
            attempt: number(item, "attempt").unwrap_or(0),
            expires_at: number(item, "expiresAt").unwrap_or(0),
        },
    })
}

fn job_from(item: &Item) -> Result<Versioned<Job>, StoreError> {
    let id = text(item, "jobId").unwrap_or_default();
    let bad = |field: &str| StoreError::BadJob {
        job_id: id.clone(),
        field: field.to_owned(),
    };
    Ok(Versioned {
        version: version(item)?,
        value: Job {
            object: ObjectCreated {
                bucket: text(item, "bucket").ok_or_else(|| bad("bucket"))?,
                key: text(item, "key").ok_or_else(|| bad("key"))?,
                size: number(item, "size"),
                etag: text(item, "eTag"),
                version_id: text(item, "versionId"),
                sequencer: text(item, "sequencer"),
            },
            attempt: number(item, "attempt").ok_or_else(|| bad("attempt"))?,
            launch_failures: number(item, "launchFailures").unwrap_or(0),
            state: text(item, "state")
                .and_then(|t| JobState::parse(&t))
                .ok_or_else(|| bad("state"))?,
            instance_id: text(item, "instanceId"),
            slot: number(item, "slot"),
            updated_at: number(item, "updatedAt").unwrap_or(0),
            id,
        },
    })
}

fn job_item(job: &Job) -> Item {
    let mut item = Item::from([
        (KEY_ATTR.to_owned(), s(&job_key(&job.id))),
        ("jobId".to_owned(), s(&job.id)),
        ("bucket".to_owned(), s(&job.object.bucket)),
        ("key".to_owned(), s(&job.object.key)),
        ("attempt".to_owned(), n(job.attempt)),
        ("launchFailures".to_owned(), n(job.launch_failures)),
        ("state".to_owned(), s(job.state.as_str())),
        ("updatedAt".to_owned(), n(job.updated_at)),
    ]);
    let optional = [
        ("size", job.object.size.map(n)),
        ("eTag", job.object.etag.as_deref().map(s)),
        ("versionId", job.object.version_id.as_deref().map(s)),
        ("sequencer", job.object.sequencer.as_deref().map(s)),
        ("instanceId", job.instance_id.as_deref().map(s)),
        ("slot", job.slot.map(n)),
        (
            "ttl",
            (!job.state.is_active()).then(|| n(job.updated_at + FINISHED_JOB_TTL_SECS)),
        ),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            item.insert(name.to_owned(), value);
        }
    }
    item
}

impl JobStore for DynamoStore {
    async fn slot(&self, index: usize) -> Result<Option<Versioned<Slot>>, StoreError> {
        self.get(slot_key(index))
            .await?
            .as_ref()
            .map(slot_from)
            .transpose()
    }

    async fn put_slot(
        &self,
        index: usize,
        slot: &Slot,
        expected: Option<u64>,
    ) -> Result<Option<u64>, StoreError> {
        let mut item = Item::from([
            (KEY_ATTR.to_owned(), s(&slot_key(index))),
            ("jobId".to_owned(), s(&slot.job_id)),
            ("attempt".to_owned(), n(slot.attempt)),
            ("expiresAt".to_owned(), n(slot.expires_at)),
        ]);
        if let Some(instance) = &slot.instance_id {
            item.insert("instanceId".into(), s(instance));
        }
        self.put(item, expected).await
    }

    async fn job(&self, job_id: &str) -> Result<Option<Versioned<Job>>, StoreError> {
        self.get(job_key(job_id))
            .await?
            .as_ref()
            .map(job_from)
            .transpose()
    }

    async fn put_job(&self, job: &Job, expected: Option<u64>) -> Result<Option<u64>, StoreError> {
        self.put(job_item(job), expected).await
    }

    async fn active_jobs(&self) -> Result<Vec<Versioned<Job>>, StoreError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .into_paginator()
            .send();
        let mut jobs = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| call_error("Scan", e))?;
            for item in page.items() {
                let is_job = text(item, KEY_ATTR).is_some_and(|k| k.starts_with("job#"));
                let active = text(item, "state")
                    .and_then(|t| JobState::parse(&t))
                    .is_some_and(JobState::is_active);
                if is_job && active {
                    jobs.push(job_from(item)?);
                }
            }
        }
        Ok(jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_round_trip() {
        let job = Job {
            id: "tj-1".into(),
            object: ObjectCreated {
                bucket: "in".into(),
                key: "a b+.mp4".into(),
                size: Some(10),
                etag: Some("e".into()),
                version_id: None,
                sequencer: Some("0A".into()),
            },
            attempt: 2,
            launch_failures: 1,
            state: JobState::Running,
            instance_id: Some("i-1".into()),
            slot: Some(3),
            updated_at: 100,
        };
        let mut item = job_item(&job);
        assert!(!item.contains_key("ttl"), "an active job never expires");
        item.insert("version".into(), n(7));
        assert_eq!(
            job_from(&item).unwrap(),
            Versioned {
                version: 7,
                value: job.clone()
            }
        );
        let done = job_item(&Job {
            state: JobState::Done,
            ..job
        });
        assert_eq!(done["ttl"], n(100 + FINISHED_JOB_TTL_SECS));
    }
}
