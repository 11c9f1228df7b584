//! The SES v1 adapter: an identity's notification settings.

use crate::ports::{IdentitySettings, SesError};
use crate::resources::ses_identity_notifications::{Kind, NotificationState};

/// SES v1 through the SDK.
pub struct SesV1(pub aws_sdk_ses::Client);

fn ses_error<E: std::error::Error + 'static>(e: E) -> SesError {
    SesError::Call(shared::aws::error_text(&e))
}

impl IdentitySettings for SesV1 {
    async fn notification_state(
        &self,
        identity: &str,
    ) -> Result<Option<NotificationState>, SesError> {
        let out = self
            .0
            .get_identity_notification_attributes()
            .identities(identity)
            .send()
            .await
            .map_err(ses_error)?;
        // SES leaves out identities that do not exist, and unset topics.
        let topic = |t: &str| (!t.is_empty()).then(|| t.to_owned());
        Ok(out
            .notification_attributes()
            .get(identity)
            .map(|a| NotificationState {
                bounce_topic: topic(a.bounce_topic()),
                complaint_topic: topic(a.complaint_topic()),
                delivery_topic: topic(a.delivery_topic()),
                forwarding_enabled: a.forwarding_enabled(),
            }))
    }

    async fn set_topic(
        &self,
        identity: &str,
        kind: Kind,
        topic: Option<&str>,
    ) -> Result<(), SesError> {
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

    async fn set_headers(&self, identity: &str, kind: Kind, enabled: bool) -> Result<(), SesError> {
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

    async fn set_forwarding(&self, identity: &str, enabled: bool) -> Result<(), SesError> {
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
