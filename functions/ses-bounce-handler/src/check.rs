//! "May I send to this address?", for sending applications and the
//! `ses-suppression` CLI.

use crate::notification::normalize;
use crate::ports::{StoreError, SuppressionStore};
use crate::suppression::{Entry, Status};
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub address: String,
    pub entry: Option<Entry>,
}

impl Verdict {
    pub fn suppressed(&self) -> bool {
        self.entry
            .as_ref()
            .is_some_and(|e| e.status == Status::Suppressed)
    }
}

/// Looks the address up, normalized as the handler stores it.
pub async fn check<S: SuppressionStore>(store: &S, address: &str) -> Result<Verdict, StoreError> {
    let address = normalize(address);
    let entry = store.get(&address).await?;
    Ok(Verdict { address, entry })
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(entry) = &self.entry else {
            return write!(f, "{}: not suppressed (no record)", self.address);
        };
        let when = DateTime::from_secs(entry.last_seen)
            .fmt(Format::DateTime)
            .unwrap_or_default();
        let verdict = match entry.status {
            Status::Suppressed => "SUPPRESSED".to_owned(),
            Status::Soft => format!(
                "not suppressed ({} soft bounce(s) in the window)",
                entry.soft_bounces.len()
            ),
            Status::Recorded => "not suppressed (recorded only)".to_owned(),
        };
        write!(
            f,
            "{}: {verdict}; reason {}, {} {}, {} counted, last seen {when}",
            self.address,
            entry.reason.as_deref().unwrap_or("-"),
            entry.kind,
            entry.subtype,
            entry.count,
        )
    }
}
