//! `Custom::SesIdentityNotifications`: routes an SES (v1) identity's bounce,
//! complaint and optional delivery notifications to SNS topics, with or
//! without the original headers. CloudFormation has no resource for this.
//!
//! SES has one topic per identity and type, shared by every stack that
//! touches it, so the resource only takes back what it still owns:
//! - Delete unsets a type only while its current topic (read with
//!   GetIdentityNotificationAttributes) is the one this resource set AND no
//!   other resource recorded itself as an owner of that same topic (see
//!   `topic_owners.rs`): a renamed logical id or a second stack keeps it.
//! - Email feedback forwarding is turned back on only when the resource
//!   unsets both the bounce and the complaint topic (SES needs it then). With
//!   forwarding off and the other type owned elsewhere, SES would refuse to
//!   unset one alone: that topic is left set, with a warning.
//! - A Create that fails undoes what it set (putting back a topic it
//!   replaced) before answering FAILED: the rollback's Delete of the
//!   failed-create id touches nothing.
//! - Update applies only what changed, as CloudFormation does for native
//!   resources: a type whose topic is unchanged is not set again, so an
//!   Update never silently takes back a type someone else took since.
//!
//! Claims and releases are set operations: the type is idempotent. Changing
//! the Identity replaces the resource; the old identity is then handled by
//! the Delete that follows.

use crate::cfn::props::lenient;
use crate::fallback::LocalOwners;
use crate::ports::{IdentitySettings, SesError, StoreError, TopicOwners};
use crate::resource::{CustomResource, Outcome, RequestContext, ResourceError};
use crate::resources::topic_owners::owner_key;
use serde::Deserialize;
use serde_json::Value;
use tracing::{info, warn};

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

impl SesIdentityNotificationsProperties {
    fn topic(&self, kind: Kind) -> Option<&str> {
        match kind {
            Kind::Bounce => Some(&self.bounce_topic),
            Kind::Complaint => Some(&self.complaint_topic),
            Kind::Delivery => self.delivery_topic.as_deref(),
        }
    }

    /// The types this resource routes, with their topics.
    fn topics(&self) -> Vec<(Kind, &str)> {
        Kind::ALL
            .into_iter()
            .filter_map(|kind| self.topic(kind).map(|topic| (kind, topic)))
            .collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bounce,
    Complaint,
    Delivery,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Bounce, Kind::Complaint, Kind::Delivery];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bounce => "Bounce",
            Self::Complaint => "Complaint",
            Self::Delivery => "Delivery",
        }
    }

    /// Bounce and complaint feedback go by email when they have no topic.
    fn is_feedback(self) -> bool {
        self != Self::Delivery
    }
}

/// An identity's notification settings as SES reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationState {
    pub bounce_topic: Option<String>,
    pub complaint_topic: Option<String>,
    pub delivery_topic: Option<String>,
    pub forwarding_enabled: bool,
}

impl NotificationState {
    pub fn topic(&self, kind: Kind) -> Option<&str> {
        match kind {
            Kind::Bounce => self.bounce_topic.as_deref(),
            Kind::Complaint => self.complaint_topic.as_deref(),
            Kind::Delivery => self.delivery_topic.as_deref(),
        }
    }
}

pub struct SesIdentityNotifications<S, O = LocalOwners> {
    ses: S,
    owners: O,
}

impl<S: IdentitySettings> SesIdentityNotifications<S, LocalOwners> {
    /// Owners recorded in memory: enough for one execution environment.
    pub fn new(ses: S) -> Self {
        Self::with_owners(ses, LocalOwners::default())
    }
}

impl<S: IdentitySettings, O: TopicOwners> SesIdentityNotifications<S, O> {
    pub fn with_owners(ses: S, owners: O) -> Self {
        Self { ses, owners }
    }

    fn failed(call: &str, kind: Option<Kind>, identity: &str, e: SesError) -> ResourceError {
        let kind = kind.map_or(String::new(), |k| format!(" ({})", k.as_str()));
        ResourceError::Service(format!("SES {call}{kind} for {identity}: {e}"))
    }

    fn owners_failed(identity: &str, e: StoreError) -> ResourceError {
        ResourceError::Service(format!("topic owners of {identity}: {e}"))
    }

    async fn state(&self, identity: &str) -> Result<Option<NotificationState>, ResourceError> {
        self.ses
            .notification_state(identity)
            .await
            .map_err(|e| Self::failed("GetIdentityNotificationAttributes", None, identity, e))
    }

    async fn existing(&self, identity: &str) -> Result<NotificationState, ResourceError> {
        self.state(identity).await?.ok_or_else(|| {
            ResourceError::Service(format!(
                "SES identity {identity:?} does not exist in this account and region: verify it first"
            ))
        })
    }

    async fn set_topic(
        &self,
        identity: &str,
        kind: Kind,
        topic: Option<&str>,
    ) -> Result<(), ResourceError> {
        self.ses
            .set_topic(identity, kind, topic)
            .await
            .map_err(|e| Self::failed("SetIdentityNotificationTopic", Some(kind), identity, e))
    }

    async fn set_headers(
        &self,
        identity: &str,
        kind: Kind,
        enabled: bool,
    ) -> Result<(), ResourceError> {
        self.ses
            .set_headers(identity, kind, enabled)
            .await
            .map_err(|e| {
                Self::failed(
                    "SetIdentityHeadersInNotificationsEnabled",
                    Some(kind),
                    identity,
                    e,
                )
            })
    }

    /// Records the ownership first, so a concurrent Delete of another owner
    /// of the same topic sees it, then sets the topic and the headers flag.
    async fn take(
        &self,
        owner: &str,
        props: &SesIdentityNotificationsProperties,
        kind: Kind,
        topic: &str,
    ) -> Result<(), ResourceError> {
        let identity = props.identity.as_str();
        self.owners
            .claim(&owner_key(identity, kind.as_str(), topic), owner)
            .await
            .map_err(|e| Self::owners_failed(identity, e))?;
        self.set_topic(identity, kind, Some(topic)).await?;
        self.set_headers(identity, kind, props.include_headers)
            .await
    }

    /// Forgets `owner` as an owner of `topic`; true when the type may be
    /// given up: no other owner, and SES still has this topic.
    async fn release(
        &self,
        owner: &str,
        identity: &str,
        now: &NotificationState,
        kind: Kind,
        topic: &str,
    ) -> Result<bool, ResourceError> {
        let others = self
            .owners
            .release(&owner_key(identity, kind.as_str(), topic), owner)
            .await
            .map_err(|e| Self::owners_failed(identity, e))?;
        let current = now.topic(kind);
        if others || current != Some(topic) {
            info!(
                kind = kind.as_str(),
                others,
                current_is_ours = current == Some(topic),
                "leaving the topic: it is not this resource's alone"
            );
            return Ok(false);
        }
        Ok(true)
    }

    /// Unsets `kinds`, turning forwarding back on first when both feedback
    /// topics go and it is off. One feedback type alone is left set while
    /// forwarding is off: SES would refuse, and only unsetting both may
    /// turn forwarding on.
    async fn give_up(
        &self,
        identity: &str,
        now: &NotificationState,
        mut kinds: Vec<Kind>,
    ) -> Result<(), ResourceError> {
        let feedback = kinds.iter().filter(|k| k.is_feedback()).count();
        if !now.forwarding_enabled && feedback == 2 {
            self.ses.set_forwarding(identity, true).await.map_err(|e| {
                Self::failed("SetIdentityFeedbackForwardingEnabled", None, identity, e)
            })?;
        } else if !now.forwarding_enabled && feedback == 1 {
            kinds.retain(|k| {
                let keep = k.is_feedback();
                if keep {
                    warn!(
                        kind = k.as_str(),
                        "leaving the topic set: feedback forwarding is off and the other feedback topic is not this resource's"
                    );
                }
                !keep
            });
        }
        for kind in kinds {
            self.set_topic(identity, kind, None).await?;
        }
        Ok(())
    }

    /// After a failed Create: gives back each type it touched (in reverse),
    /// restoring the topic it replaced. Returns what it could not undo.
    /// Owner records go first and whatever happens: a record left behind
    /// would count as an owner forever.
    async fn undo_create(
        &self,
        owner: &str,
        identity: &str,
        before: &NotificationState,
        touched: &[(Kind, &str)],
    ) -> Vec<String> {
        let now = self.state(identity).await;
        let mut left = Vec::new();
        for &(kind, topic) in touched.iter().rev() {
            let undone = async {
                let others = self
                    .owners
                    .release(&owner_key(identity, kind.as_str(), topic), owner)
                    .await
                    .map_err(|e| Self::owners_failed(identity, e))?;
                let Some(now) = now
                    .as_ref()
                    .map_err(|e| ResourceError::Service(e.to_string()))?
                else {
                    return Ok(()); // the identity is gone
                };
                if others || now.topic(kind) != Some(topic) {
                    return Ok(());
                }
                match before.topic(kind) {
                    Some(previous) if previous == topic => Ok(()),
                    // SES keeps forwarding on while a feedback topic is
                    // unset, so restoring or unsetting needs no other call.
                    previous => self.set_topic(identity, kind, previous).await,
                }
            };
            if let Err(e) = undone.await {
                left.push(format!("{} ({topic}): {e}", kind.as_str()));
            }
        }
        left
    }

    fn outcome(props: &SesIdentityNotificationsProperties) -> Outcome {
        Outcome::with_data([
            ("Identity", Value::from(props.identity.as_str())),
            ("BounceTopic", Value::from(props.bounce_topic.as_str())),
            (
                "ComplaintTopic",
                Value::from(props.complaint_topic.as_str()),
            ),
        ])
    }
}

impl<S: IdentitySettings, O: TopicOwners> CustomResource for SesIdentityNotifications<S, O> {
    const RESOURCE_TYPE: &'static str = "Custom::SesIdentityNotifications";
    const IDEMPOTENT: bool = true;
    type Properties = SesIdentityNotificationsProperties;

    async fn create(
        &self,
        ctx: &RequestContext,
        props: &SesIdentityNotificationsProperties,
    ) -> Result<Outcome, ResourceError> {
        let identity = props.identity.as_str();
        if identity.trim().is_empty() {
            return Err(ResourceError::Service("Identity is empty".into()));
        }
        let owner = ctx.physical_resource_id.as_str();
        let before = self.existing(identity).await?;
        let mut touched = Vec::new();
        for (kind, topic) in props.topics() {
            // Touched before the call: a call that failed may have applied.
            touched.push((kind, topic));
            if let Err(e) = self.take(owner, props, kind, topic).await {
                let left = self.undo_create(owner, identity, &before, &touched).await;
                return Err(ResourceError::Service(if left.is_empty() {
                    format!("{e} (what this Create had set is undone)")
                } else {
                    format!(
                        "{e}; undoing the Create failed too, still set: {}",
                        left.join("; ")
                    )
                }));
            }
        }
        Ok(Self::outcome(props))
    }

    async fn update(
        &self,
        ctx: &RequestContext,
        old: &SesIdentityNotificationsProperties,
        new: &SesIdentityNotificationsProperties,
    ) -> Result<Outcome, ResourceError> {
        let owner = ctx.physical_resource_id.as_str();
        let identity = new.identity.as_str();
        let now = self.existing(identity).await?;
        let mut removed = Vec::new();
        for kind in Kind::ALL {
            match (old.topic(kind), new.topic(kind)) {
                (Some(was), Some(is)) if was == is => {
                    // Unchanged: only the headers flag, and only where the
                    // topic is still this one.
                    if now.topic(kind) == Some(is) {
                        // Records resources created before owners were kept.
                        self.owners
                            .claim(&owner_key(identity, kind.as_str(), is), owner)
                            .await
                            .map_err(|e| Self::owners_failed(identity, e))?;
                        if old.include_headers != new.include_headers {
                            self.set_headers(identity, kind, new.include_headers)
                                .await?;
                        }
                    }
                }
                (was, Some(is)) => {
                    self.take(owner, new, kind, is).await?;
                    if let Some(was) = was {
                        // Replaced by this very call: only the record goes.
                        self.owners
                            .release(&owner_key(identity, kind.as_str(), was), owner)
                            .await
                            .map_err(|e| Self::owners_failed(identity, e))?;
                    }
                }
                (Some(was), None) => {
                    if self.release(owner, identity, &now, kind, was).await? {
                        removed.push(kind);
                    }
                }
                (None, None) => {}
            }
        }
        self.give_up(identity, &now, removed).await?;
        Ok(Self::outcome(new))
    }

    async fn delete(
        &self,
        ctx: &RequestContext,
        props: &SesIdentityNotificationsProperties,
    ) -> Result<Outcome, ResourceError> {
        let owner = ctx.physical_resource_id.as_str();
        let identity = props.identity.as_str();
        let Some(now) = self.state(identity).await? else {
            info!("the SES identity no longer exists: nothing to unset");
            for (kind, topic) in props.topics() {
                self.owners
                    .release(&owner_key(identity, kind.as_str(), topic), owner)
                    .await
                    .map_err(|e| Self::owners_failed(identity, e))?;
            }
            return Ok(Outcome::default());
        };
        let mut ours = Vec::new();
        for (kind, topic) in props.topics() {
            if self.release(owner, identity, &now, kind, topic).await? {
                ours.push(kind);
            }
        }
        self.give_up(identity, &now, ours).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::InMemoryIdentities;

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
        let resource = SesIdentityNotifications::new(InMemoryIdentities::default());
        resource
            .create(&ctx(), &props(Some("arn:d")))
            .await
            .unwrap();
        resource.ses.calls.lock().unwrap().clear();
        resource
            .update(&ctx(), &props(Some("arn:d")), &props(None))
            .await
            .unwrap();
        resource.delete(&ctx(), &props(None)).await.unwrap();
        assert_eq!(
            *resource.ses.calls.lock().unwrap(),
            vec![
                "get example.org",
                "topic example.org Delivery None",
                "get example.org",
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
