//! In-process implementations used in production when no AWS service is
//! configured for the role, or for the real clock.

use crate::aws::sesv2::SesV2;
use crate::notification::Reason;
use crate::ports::{AccountError, AccountSuppression, Clock};

/// ACCOUNT_SUPPRESSION=false: the table is the only list.
pub struct Disabled;

impl AccountSuppression for Disabled {
    async fn suppress(&self, _address: &str, _reason: Reason) -> Result<(), AccountError> {
        Ok(())
    }
}

/// Either account list, chosen by configuration.
pub enum Account {
    Disabled(Disabled),
    SesV2(SesV2),
}

impl AccountSuppression for Account {
    async fn suppress(&self, address: &str, reason: Reason) -> Result<(), AccountError> {
        match self {
            Self::Disabled(d) => d.suppress(address, reason).await,
            Self::SesV2(s) => s.suppress(address, reason).await,
        }
    }
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        shared::time::now_secs() as i64
    }
}
