//! The seams between the domain and the outside world: what the responder
//! and the hosted resource types ask of a store or an AWS API. Adapters live
//! in `aws/`, in-process production fallbacks in `fallback.rs`.

use crate::cfn::CfnResponse;
use crate::resources::ami_lookup::AmiLookupProperties;
use crate::resources::ses_identity_notifications::{Kind, NotificationState};
use std::future::Future;
use std::time::SystemTime;

/// What a claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// First delivery: go ahead.
    Fresh,
    /// Another delivery is running and will answer.
    InProgress,
    /// Another delivery started but its deadline passed without finishing.
    Abandoned,
    /// Already answered with this response.
    Completed(Box<CfnResponse>),
}

pub trait IdempotencyStore: Send + Sync {
    /// Claims `request_id` until `until` (the claimant's Lambda deadline).
    fn claim(
        &self,
        request_id: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<Claim, String>> + Send;
    /// Records the response sent for `request_id`.
    fn complete(
        &self,
        request_id: &str,
        response: &CfnResponse,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// Who set a notification topic (see `resources::topic_owners`).
pub trait TopicOwners: Send + Sync + 'static {
    /// Records `owner` as an owner of the topic `key` names.
    fn claim(&self, key: &str, owner: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Forgets `owner`; returns whether another owner of that topic remains.
    fn release(&self, key: &str, owner: &str) -> impl Future<Output = Result<bool, String>> + Send;
}

/// One image as the catalog reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub image_id: String,
    pub name: String,
    /// ISO 8601, so text order is time order.
    pub creation_date: String,
}

/// Where images are looked up: EC2 in production, a fake in tests.
pub trait ImageCatalog: Send + Sync + 'static {
    fn find_images(
        &self,
        query: &AmiLookupProperties,
    ) -> impl Future<Output = Result<Vec<ImageSummary>, String>> + Send;
}

/// The SES v1 calls this type makes.
pub trait IdentitySettings: Send + Sync + 'static {
    /// GetIdentityNotificationAttributes; `None` when the identity does not
    /// exist (any more).
    fn notification_state(
        &self,
        identity: &str,
    ) -> impl Future<Output = Result<Option<NotificationState>, String>> + Send;
    /// SetIdentityNotificationTopic; `None` unsets the topic.
    fn set_topic(
        &self,
        identity: &str,
        kind: Kind,
        topic: Option<&str>,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// SetIdentityHeadersInNotificationsEnabled.
    fn set_headers(
        &self,
        identity: &str,
        kind: Kind,
        enabled: bool,
    ) -> impl Future<Output = Result<(), String>> + Send;
    /// SetIdentityFeedbackForwardingEnabled.
    fn set_forwarding(
        &self,
        identity: &str,
        enabled: bool,
    ) -> impl Future<Output = Result<(), String>> + Send;
}
