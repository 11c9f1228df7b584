//! The SES account-level suppression list over SESv2 PutSuppressedDestination.

use crate::notification::Reason;
use crate::ports::{AccountError, AccountSuppression};
use aws_sdk_sesv2::types::SuppressionListReason;

pub struct SesV2(pub aws_sdk_sesv2::Client);

impl AccountSuppression for SesV2 {
    async fn suppress(&self, address: &str, reason: Reason) -> Result<(), AccountError> {
        let reason = match reason {
            Reason::Bounce => SuppressionListReason::Bounce,
            Reason::Complaint => SuppressionListReason::Complaint,
        };
        self.0
            .put_suppressed_destination()
            .email_address(address)
            .reason(reason)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AccountError::Call {
                message: shared::logging::mask_emails_in(&shared::aws::error_text(&e)),
            })
    }
}
