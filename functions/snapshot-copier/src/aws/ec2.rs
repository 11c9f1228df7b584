//! The EC2 API through the SDK: one client per region, made on first use.

use crate::ports::{CopyRequest, Ec2Error, Regions, SnapshotApi};
use crate::snapshot::{Snapshot, State};
use aws_config::SdkConfig;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::config::retry::RetryConfig;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};
use shared::aws::absent_as_none;
use std::collections::HashMap;
use std::sync::Mutex;

pub struct Ec2Regions {
    base: SdkConfig,
    clients: Mutex<HashMap<String, Client>>,
}

impl Ec2Regions {
    pub fn new(base: SdkConfig) -> Self {
        Self {
            base,
            clients: Mutex::new(HashMap::new()),
        }
    }
}

impl Regions for Ec2Regions {
    type Api = Ec2Region;
    fn region(&self, name: &str) -> Ec2Region {
        let mut clients = self.clients.lock().expect("not poisoned");
        let client = clients
            .entry(name.to_owned())
            .or_insert_with(|| Client::new(&shared::aws::config_for_region(&self.base, name)));
        Ec2Region(client.clone())
    }
}

pub struct Ec2Region(pub Client);

fn error<E: ProvideErrorMetadata + std::error::Error + 'static>(e: E) -> Ec2Error {
    let text = shared::aws::error_text(&e);
    match e.code() {
        Some("ResourceLimitExceeded") => Ec2Error::LimitExceeded(text),
        _ => Ec2Error::Other(text),
    }
}

/// EC2's answer for a snapshot id it does not know.
fn not_found(e: &impl ProvideErrorMetadata) -> bool {
    e.code() == Some("InvalidSnapshot.NotFound")
}

/// CopySnapshot's error: only an answer of EC2 saying it did not copy (a 4xx,
/// or throttling, which EC2 answers with 503 RequestLimitExceeded) or a request
/// never sent is a refusal; a timeout, a 5xx or a lost connection leaves the
/// outcome unknown.
fn copy_error<E>(e: SdkError<E, HttpResponse>) -> Ec2Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = shared::aws::error_text(&e);
    let refused = match &e {
        SdkError::ConstructionFailure(_) => true,
        SdkError::ServiceError(service) => {
            service.raw().status().is_client_error()
                || service.err().code() == Some("RequestLimitExceeded")
        }
        _ => false,
    };
    match e.code() {
        Some("ResourceLimitExceeded") => Ec2Error::LimitExceeded(text),
        _ if refused => Ec2Error::Refused(text),
        _ => Ec2Error::Other(text),
    }
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn snapshot(s: &aws_sdk_ec2::types::Snapshot) -> Option<Snapshot> {
    Some(Snapshot {
        id: s.snapshot_id()?.to_owned(),
        volume_id: s.volume_id().unwrap_or_default().to_owned(),
        state: State::parse(s.state().map_or("", |st| st.as_str())),
        start_time: s.start_time().map_or(0, |t| t.secs()),
        encrypted: s.encrypted().unwrap_or(false),
        tags: s
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
    })
}

impl Ec2Region {
    /// This account's snapshots matching `filters`, every page.
    async fn owned(&self, filters: Vec<Filter>) -> Result<Vec<Snapshot>, Ec2Error> {
        let mut pages = self
            .0
            .describe_snapshots()
            .owner_ids("self")
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            found.extend(page.map_err(error)?.snapshots().iter().filter_map(snapshot));
        }
        Ok(found)
    }
}

impl SnapshotApi for Ec2Region {
    async fn describe(&self, id: &str) -> Result<Option<Snapshot>, Ec2Error> {
        let described = self.0.describe_snapshots().snapshot_ids(id).send().await;
        let out = absent_as_none(described, not_found).map_err(error)?;
        Ok(out.and_then(|out| out.snapshots().iter().find_map(snapshot)))
    }

    async fn tagged(&self, tag_key: &str, volume: Option<&str>) -> Result<Vec<Snapshot>, Ec2Error> {
        let mut filters = vec![filter("tag-key", tag_key), filter("status", "completed")];
        filters.extend(volume.map(|v| filter("volume-id", v)));
        self.owned(filters).await
    }

    async fn with_tag(&self, key: &str, value: &str) -> Result<Vec<Snapshot>, Ec2Error> {
        self.owned(vec![filter(&format!("tag:{key}"), value)]).await
    }

    async fn pending_count(&self) -> Result<usize, Ec2Error> {
        Ok(self.owned(vec![filter("status", "pending")]).await?.len())
    }

    async fn copy(&self, request: &CopyRequest) -> Result<String, Ec2Error> {
        let tags = request
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let mut call = self
            .0
            .copy_snapshot()
            .source_region(&request.source_region)
            .source_snapshot_id(&request.source_snapshot_id)
            .description(&request.description)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Snapshot)
                    .set_tags(Some(tags))
                    .build(),
            )
            .set_kms_key_id(request.kms_key_id.clone())
            .set_completion_duration_minutes(request.completion_duration_minutes);
        if request.encrypted {
            call = call.encrypted(true);
        }
        // No automatic retry: CopySnapshot takes no client token, so a retry
        // after an unknown outcome may make a second copy.
        let out = call
            .customize()
            .config_override(
                aws_sdk_ec2::config::Builder::default().retry_config(RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(copy_error)?;
        out.snapshot_id()
            .map(str::to_owned)
            .ok_or_else(|| Ec2Error::Other("CopySnapshot returned no SnapshotId".into()))
    }

    async fn delete(&self, id: &str) -> Result<(), Ec2Error> {
        let deleted = self.0.delete_snapshot().snapshot_id(id).send().await;
        // Already gone is what a delete asks for.
        absent_as_none(deleted, not_found)
            .map(|_| ())
            .map_err(error)
    }
}
