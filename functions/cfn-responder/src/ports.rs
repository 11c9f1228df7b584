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

/// A read or write of the idempotency table (which also keeps the topic
/// owners) that failed. The responder turns each into a FAILED Reason or a
/// log line, so the variants say where it came from; the texts are the ones
/// CloudFormation has always shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// What DynamoDB or the SDK answered to `call` on `table`.
    #[error("DynamoDB {call} on {table}: {reason}")]
    Call {
        call: &'static str,
        table: String,
        reason: String,
    },
    /// The in-process store's lock was poisoned by a panic.
    #[error("{0} poisoned")]
    Poisoned(&'static str),
    /// The claim PutItem refused was gone when read back.
    #[error("claim for {0} vanished between PutItem and GetItem")]
    Vanished(String),
    /// A stored response that does not read back as one.
    #[error("stored response for {request_id} is unreadable: {reason}")]
    Unreadable { request_id: String, reason: String },
    /// A response that could not be written as JSON.
    #[error("{0}")]
    Encode(String),
    /// The store did not answer before the caller's deadline.
    #[error("the idempotency table did not answer in time")]
    TimedOut,
}

pub trait IdempotencyStore: Send + Sync {
    /// Claims `request_id` until `until` (the claimant's Lambda deadline).
    fn claim(
        &self,
        request_id: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;
    /// Records the response sent for `request_id`.
    fn complete(
        &self,
        request_id: &str,
        response: &CfnResponse,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Who set a notification topic (see `resources::topic_owners`).
pub trait TopicOwners: Send + Sync + 'static {
    /// Records `owner` as an owner of the topic `key` names.
    fn claim(&self, key: &str, owner: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Forgets `owner`; returns whether another owner of that topic remains.
    fn release(
        &self,
        key: &str,
        owner: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// One image as the catalog reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub image_id: String,
    pub name: String,
    /// ISO 8601, so text order is time order.
    pub creation_date: String,
}

/// A DescribeImages call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// What EC2 or the SDK answered.
    #[error("{0}")]
    Call(String),
}

/// Where images are looked up: EC2 in production, a fake in tests.
pub trait ImageCatalog: Send + Sync + 'static {
    fn find_images(
        &self,
        query: &AmiLookupProperties,
    ) -> impl Future<Output = Result<Vec<ImageSummary>, CatalogError>> + Send;
}

/// An SES call that failed. The resource type names the call and the
/// identity around it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SesError {
    /// What SES or the SDK answered.
    #[error("{0}")]
    Call(String),
}

/// The SES v1 calls this type makes.
pub trait IdentitySettings: Send + Sync + 'static {
    /// GetIdentityNotificationAttributes; `None` when the identity does not
    /// exist (any more).
    fn notification_state(
        &self,
        identity: &str,
    ) -> impl Future<Output = Result<Option<NotificationState>, SesError>> + Send;
    /// SetIdentityNotificationTopic; `None` unsets the topic.
    fn set_topic(
        &self,
        identity: &str,
        kind: Kind,
        topic: Option<&str>,
    ) -> impl Future<Output = Result<(), SesError>> + Send;
    /// SetIdentityHeadersInNotificationsEnabled.
    fn set_headers(
        &self,
        identity: &str,
        kind: Kind,
        enabled: bool,
    ) -> impl Future<Output = Result<(), SesError>> + Send;
    /// SetIdentityFeedbackForwardingEnabled.
    fn set_forwarding(
        &self,
        identity: &str,
        enabled: bool,
    ) -> impl Future<Output = Result<(), SesError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// These texts reach CloudFormation as the FAILED Reason (or a log
    /// line): they are the ones the adapters formatted as strings before.
    #[test]
    fn error_texts_are_the_reasons_cloudformation_sees() {
        let call = StoreError::Call {
            call: "PutItem",
            table: "idem".into(),
            reason: "throttled".into(),
        };
        assert_eq!(call.to_string(), "DynamoDB PutItem on idem: throttled");
        assert_eq!(
            StoreError::Poisoned("owner store").to_string(),
            "owner store poisoned"
        );
        assert_eq!(
            StoreError::Vanished("r-1".into()).to_string(),
            "claim for r-1 vanished between PutItem and GetItem"
        );
        let unreadable = StoreError::Unreadable {
            request_id: "r-1".into(),
            reason: "EOF".into(),
        };
        assert_eq!(
            unreadable.to_string(),
            "stored response for r-1 is unreadable: EOF"
        );
        assert_eq!(StoreError::Encode("bad".into()).to_string(), "bad");
        assert_eq!(
            StoreError::TimedOut.to_string(),
            "the idempotency table did not answer in time"
        );
        assert_eq!(CatalogError::Call("denied".into()).to_string(), "denied");
        assert_eq!(SesError::Call("denied".into()).to_string(), "denied");
    }
}
