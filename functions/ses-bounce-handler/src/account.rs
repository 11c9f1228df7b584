//! The SES account-level suppression list (SESv2 PutSuppressedDestination).

use crate::notification::Reason;
use aws_sdk_sesv2::types::SuppressionListReason;
use std::future::Future;

pub trait AccountSuppression: Send + Sync {
    /// Adds `address` to the account suppression list. Idempotent on SES's
    /// side: a second call for the same address changes nothing.
    fn suppress(
        &self,
        address: &str,
        reason: Reason,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// ACCOUNT_SUPPRESSION=false: the table is the only list.
pub struct Disabled;

impl AccountSuppression for Disabled {
    async fn suppress(&self, _address: &str, _reason: Reason) -> Result<(), String> {
        Ok(())
    }
}

pub struct SesV2(pub aws_sdk_sesv2::Client);

impl AccountSuppression for SesV2 {
    async fn suppress(&self, address: &str, reason: Reason) -> Result<(), String> {
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
            .map_err(|e| {
                shared::logging::mask_emails_in(
                    &aws_sdk_sesv2::error::DisplayErrorContext(e).to_string(),
                )
            })
    }
}

/// Either, chosen by configuration.
pub enum Account {
    Disabled(Disabled),
    SesV2(SesV2),
}

impl AccountSuppression for Account {
    async fn suppress(&self, address: &str, reason: Reason) -> Result<(), String> {
        match self {
            Self::Disabled(d) => d.suppress(address, reason).await,
            Self::SesV2(s) => s.suppress(address, reason).await,
        }
    }
}
