//! `Custom::SesIdentityNotifications`: routes an SES (v1) identity's bounce,
//! complaint and optional delivery notifications to SNS topics, with or
//! without the original headers. CloudFormation has no resource for this.
//!
//! Every call sets a value, so repeating one is harmless: the type is
//! idempotent. Changing the Identity replaces the resource; the old
//! identity's topics are then unset by the Delete that follows.

use crate::resource::{CustomResource, Outcome, RequestContext, ResourceError};
use serde::Deserialize;
use serde_json::Value;
use shared::cfn::props::lenient;
use std::future::Future;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct SesIdentityNotificationsProperties {
    /// An email address or domain verified in SES.
    pub identity: String,
    pub bounce_topic: String,
    pub complaint_topic: String,
    #[serde(default)]
    pub delivery_topic: Option<String>,
    /// Include the original headers in the notifications.
    #[serde(default, deserialize_with = "lenient::bool")]
    pub include_headers: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bounce,
    Complaint,
    Delivery,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounce => "Bounce",
            Self::Complaint => "Complaint",
            Self::Delivery => "Delivery",
        }
    }
}

/// The SES v1 calls this type makes.
pub trait IdentitySettings: Send + Sync + 'static {
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

pub struct SesIdentityNotifications<S> {
    ses: S,
}

impl<S: IdentitySettings> SesIdentityNotifications<S> {
    pub fn new(ses: S) -> Self {
        Self { ses }
    }

    fn failed(call: &str, kind: Option<Kind>, identity: &str, e: String) -> ResourceError {
        let kind = kind.map_or(String::new(), |k| format!(" ({})", k.as_str()));
        ResourceError::Service(format!("SES {call}{kind} for {identity}: {e}"))
    }

    async fn apply(
        &self,
        props: &SesIdentityNotificationsProperties,
        unset_delivery: bool,
    ) -> Result<Outcome, ResourceError> {
        let identity = props.identity.as_str();
        let mut topics = vec![
            (Kind::Bounce, Some(props.bounce_topic.as_str())),
            (Kind::Complaint, Some(props.complaint_topic.as_str())),
        ];
        match &props.delivery_topic {
            Some(topic) => topics.push((Kind::Delivery, Some(topic.as_str()))),
            None if unset_delivery => topics.push((Kind::Delivery, None)),
            None => {}
        }
        for (kind, topic) in &topics {
            self.ses
                .set_topic(identity, *kind, *topic)
                .await
                .map_err(|e| {
                    Self::failed("SetIdentityNotificationTopic", Some(*kind), identity, e)
                })?;
            if topic.is_some() {
                self.ses
                    .set_headers(identity, *kind, props.include_headers)
                    .await
                    .map_err(|e| {
                        Self::failed(
                            "SetIdentityHeadersInNotificationsEnabled",
                            Some(*kind),
                            identity,
                            e,
                        )
                    })?;
            }
        }
        Ok(Outcome::with_data([
            ("Identity", Value::from(identity)),
            ("BounceTopic", Value::from(props.bounce_topic.as_str())),
            (
                "ComplaintTopic",
                Value::from(props.complaint_topic.as_str()),
            ),
        ]))
    }
}

impl<S: IdentitySettings> CustomResource for SesIdentityNotifications<S> {
    const RESOURCE_TYPE: &'static str = "Custom::SesIdentityNotifications";
    const IDEMPOTENT: bool = true;
    type Properties = SesIdentityNotificationsProperties;

    async fn create(
        &self,
        _ctx: &RequestContext,
        props: &SesIdentityNotificationsProperties,
    ) -> Result<Outcome, ResourceError> {
        if props.identity.trim().is_empty() {
            return Err(ResourceError::Service("Identity is empty".into()));
        }
        self.apply(props, false).await
    }

    async fn update(
        &self,
        _ctx: &RequestContext,
        old: &SesIdentityNotificationsProperties,
        new: &SesIdentityNotificationsProperties,
    ) -> Result<Outcome, ResourceError> {
        self.apply(new, old.delivery_topic.is_some()).await
    }

    async fn delete(
        &self,
        _ctx: &RequestContext,
        props: &SesIdentityNotificationsProperties,
    ) -> Result<Outcome, ResourceError> {
        let identity = props.identity.as_str();
        // SES refuses to leave an identity with neither bounce/complaint
        // topics nor email feedback: turn email feedback back on first.
        self.ses
            .set_forwarding(identity, true)
            .await
            .map_err(|e| Self::failed("SetIdentityFeedbackForwardingEnabled", None, identity, e))?;
        let mut kinds = vec![Kind::Bounce, Kind::Complaint];
        if props.delivery_topic.is_some() {
            kinds.push(Kind::Delivery);
        }
        for kind in kinds {
            self.ses
                .set_topic(identity, kind, None)
                .await
                .map_err(|e| {
                    Self::failed("SetIdentityNotificationTopic", Some(kind), identity, e)
                })?;
        }
        Ok(Outcome::default())
    }

    fn requires_replacement(
        &self,
        old: &SesIdentityNotificationsProperties,
        new: &SesIdentityNotificationsProperties,
    ) -> bool {
        old.identity != new.identity
    }
}

/// SES v1 through the SDK.
pub struct SesV1(pub aws_sdk_ses::Client);

fn ses_error<E: std::error::Error>(e: E) -> String {
    aws_sdk_ses::error::DisplayErrorContext(e).to_string()
}

impl IdentitySettings for SesV1 {
    async fn set_topic(
        &self,
        identity: &str,
        kind: Kind,
        topic: Option<&str>,
    ) -> Result<(), String> {
        self.0
            .set_identity_notification_topic()
            .identity(identity)
            .notification_type(kind.as_str().into())
            .set_sns_topic(topic.map(str::to_owned))
            .send()
            .await
            .map(|_| ())
            .map_err(ses_error)
    }

    async fn set_headers(&self, identity: &str, kind: Kind, enabled: bool) -> Result<(), String> {
        self.0
            .set_identity_headers_in_notifications_enabled()
            .identity(identity)
            .notification_type(kind.as_str().into())
            .enabled(enabled)
            .send()
            .await
            .map(|_| ())
            .map_err(ses_error)
    }

    async fn set_forwarding(&self, identity: &str, enabled: bool) -> Result<(), String> {
        self.0
            .set_identity_feedback_forwarding_enabled()
            .identity(identity)
            .forwarding_enabled(enabled)
            .send()
            .await
            .map(|_| ())
            .map_err(ses_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Calls(Mutex<Vec<String>>);

    impl IdentitySettings for Calls {
        async fn set_topic(
            &self,
            identity: &str,
            kind: Kind,
            topic: Option<&str>,
        ) -> Result<(), String> {
            self.0
                .lock()
                .unwrap()
                .push(format!("topic {identity} {} {topic:?}", kind.as_str()));
            Ok(())
        }
        async fn set_headers(
            &self,
            identity: &str,
            kind: Kind,
            enabled: bool,
        ) -> Result<(), String> {
            self.0
                .lock()
                .unwrap()
                .push(format!("headers {identity} {} {enabled}", kind.as_str()));
            Ok(())
        }
        async fn set_forwarding(&self, identity: &str, enabled: bool) -> Result<(), String> {
            self.0
                .lock()
                .unwrap()
                .push(format!("forwarding {identity} {enabled}"));
            Ok(())
        }
    }

    fn props(delivery: Option<&str>) -> SesIdentityNotificationsProperties {
        SesIdentityNotificationsProperties {
            identity: "example.org".into(),
            bounce_topic: "arn:b".into(),
            complaint_topic: "arn:c".into(),
            delivery_topic: delivery.map(str::to_owned),
            include_headers: true,
        }
    }

    fn ctx() -> RequestContext {
        RequestContext {
            stack_id: "s".into(),
            logical_resource_id: "l".into(),
            request_id: "r".into(),
            resource_type: "Custom::SesIdentityNotifications".into(),
            physical_resource_id: "p".into(),
        }
    }

    #[tokio::test]
    async fn update_unsets_a_removed_delivery_topic_and_delete_unsets_all() {
        let resource = SesIdentityNotifications::new(Calls::default());
        resource
            .update(&ctx(), &props(Some("arn:d")), &props(None))
            .await
            .unwrap();
        resource.delete(&ctx(), &props(None)).await.unwrap();
        assert_eq!(
            *resource.ses.0.lock().unwrap(),
            vec![
                "topic example.org Bounce Some(\"arn:b\")",
                "headers example.org Bounce true",
                "topic example.org Complaint Some(\"arn:c\")",
                "headers example.org Complaint true",
                "topic example.org Delivery None",
                "forwarding example.org true",
                "topic example.org Bounce None",
                "topic example.org Complaint None",
            ]
        );
        let mut other = props(None);
        other.identity = "example.net".into();
        assert!(resource.requires_replacement(&props(None), &other));
        assert!(!resource.requires_replacement(&props(None), &props(Some("arn:d"))));
    }
}
