//! Applies notifications to the store: read, decide, conditional write,
//! and again on a conflict.

use crate::config::Config;
use crate::notification::{Classified, NotificationError, RecipientEvent, Rules, classify};
use crate::ports::{
    AccountError, AccountSuppression, Clock, StoreError, SuppressionStore, Written,
};
use crate::suppression::{Escalation, Outcome, apply};
use shared::logging::mask_email;
use shared::metrics::Emf;
use std::collections::BTreeMap;

/// Attempts at one address's read-decide-write before giving up.
const MAX_ATTEMPTS: usize = 5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Notification(#[from] NotificationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("SESv2 PutSuppressedDestination for {address}: {error}")]
    AccountSuppression {
        address: String,
        error: AccountError,
    },
    #[error("{address}: still contended after {MAX_ATTEMPTS} conditional writes")]
    Contended { address: String },
    /// Some recipients failed; every other one was applied.
    #[error("{failed} of {total} recipients failed, the others were applied; first: {first}")]
    Recipients {
        failed: usize,
        total: usize,
        first: Box<ProcessError>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub rules: Rules,
    pub escalation: Escalation,
}

/// `Config`'s defaults.
impl Default for Settings {
    fn default() -> Self {
        Config::default().settings()
    }
}

/// What a batch of notifications did, for metrics and the response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Notifications by type and subtype (`Bounce`, `Permanent/General`).
    pub by_type: BTreeMap<(String, String), u64>,
    pub suppressed: u64,
    pub escalated: u64,
    pub already_suppressed: u64,
    pub soft_bounces: u64,
    pub recorded: u64,
    pub soft_resets: u64,
    pub duplicates: u64,
    pub ignored: u64,
    pub failed: u64,
}

impl Tally {
    fn count(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Suppressed(_) => self.suppressed += 1,
            Outcome::Escalated => self.escalated += 1,
            Outcome::AlreadySuppressed => self.already_suppressed += 1,
            Outcome::SoftCounted => self.soft_bounces += 1,
            Outcome::Recorded => self.recorded += 1,
            Outcome::SoftReset => self.soft_resets += 1,
            Outcome::Duplicate => self.duplicates += 1,
            Outcome::Unchanged => {}
        }
    }

    /// EMF: totals, and one document per notification type and subtype.
    pub fn emit(&self) {
        Emf::for_function(crate::FUNCTION_NAME)
            .with_counts([
                ("Suppressed", self.suppressed),
                ("Escalated", self.escalated),
                ("AlreadySuppressed", self.already_suppressed),
                ("SoftBounces", self.soft_bounces),
                ("Recorded", self.recorded),
                ("SoftResets", self.soft_resets),
                ("Duplicates", self.duplicates),
                ("Ignored", self.ignored),
                ("Failed", self.failed),
            ])
            .emit();
        for ((kind, subtype), count) in &self.by_type {
            // The type and subtype dimensions come after [Stack, Function].
            let mut by_type = Emf::for_function(crate::FUNCTION_NAME)
                .dimension("Type", kind.as_str())
                .dimension("SubType", if subtype.is_empty() { "-" } else { subtype });
            by_type.add("Notifications", *count);
            by_type.emit();
        }
    }
}

pub struct Processor<S, A, C> {
    pub store: S,
    pub account: A,
    pub clock: C,
    pub settings: Settings,
}

impl<S: SuppressionStore, A: AccountSuppression, C: Clock> Processor<S, A, C> {
    pub fn new(store: S, account: A, clock: C, settings: Settings) -> Self {
        Self {
            store,
            account,
            clock,
            settings,
        }
    }

    /// Applies one SES notification (an SNS Message's text).
    pub async fn notification(&self, message: &str, tally: &mut Tally) -> Result<(), ProcessError> {
        let (kind, subtype, events) = match classify(message, self.settings.rules)? {
            Classified::Ignored { kind } => {
                tally.ignored += 1;
                *tally.by_type.entry((kind, String::new())).or_default() += 1;
                return Ok(());
            }
            Classified::Recipients {
                kind,
                subtype,
                events,
            } => (kind, subtype, events),
        };
        *tally
            .by_type
            .entry((kind.to_owned(), subtype.clone()))
            .or_default() += 1;
        // One recipient's failure does not stop the others: each is
        // applied on its own, and the notification fails afterwards so the
        // caller retries it. Recipients applied now come back as duplicates
        // (their entries remember the feedbackId), so nothing counts twice.
        let mut failures = Vec::new();
        for event in &events {
            let applied = if event.address.is_empty() {
                Err(NotificationError::Empty {
                    field: "recipient emailAddress",
                }
                .into())
            } else {
                self.recipient(event).await
            };
            match applied {
                Ok(outcome) => {
                    tally.count(outcome);
                    tracing::info!(
                        address = %mask_email(&event.address),
                        kind,
                        subtype = %event.subtype,
                        ?outcome,
                        "recipient applied"
                    );
                }
                Err(error) => {
                    tracing::warn!(
                        address = %mask_email(&event.address),
                        kind,
                        %error,
                        "recipient not applied"
                    );
                    failures.push(error);
                }
            }
        }
        let failed = failures.len();
        match failures.into_iter().next() {
            None => Ok(()),
            Some(first) => Err(ProcessError::Recipients {
                failed,
                total: events.len(),
                first: Box::new(first),
            }),
        }
    }

    async fn recipient(&self, event: &RecipientEvent) -> Result<Outcome, ProcessError> {
        for _ in 0..MAX_ATTEMPTS {
            let stored = self.store.get(&event.address).await?;
            let (write, outcome) = apply(
                stored.as_ref(),
                event,
                self.clock.now(),
                self.settings.escalation,
            );
            let Some(entry) = write else {
                return Ok(outcome);
            };
            // The account list first: if the write then fails, the retry
            // finds no record of this notification and calls again (SES
            // takes repeats); the other order could skip it for good.
            if let Some(reason) = outcome.account_reason() {
                self.account
                    .suppress(&event.address, reason)
                    .await
                    .map_err(|error| ProcessError::AccountSuppression {
                        address: mask_email(&event.address),
                        error,
                    })?;
            }
            match self.store.put(&entry).await? {
                Written::Yes => return Ok(outcome),
                Written::Conflict => continue,
            }
        }
        Err(ProcessError::Contended {
            address: mask_email(&event.address),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notification::Reason;
    use crate::suppression::Status;
    use crate::testing::{InMemoryAccount, InMemoryClock, InMemorySuppressions};
    use serde_json::json;

    fn processor() -> Processor<InMemorySuppressions, InMemoryAccount, InMemoryClock> {
        Processor::new(
            InMemorySuppressions::default(),
            InMemoryAccount::default(),
            InMemoryClock::at(1_763_700_000),
            Settings::default(),
        )
    }

    fn soft_bounce(feedback: &str) -> String {
        json!({"notificationType": "Bounce", "mail": {"messageId": "m"},
               "bounce": {"bounceType": "Transient", "bounceSubType": "MailboxFull", "feedbackId": feedback,
                          "bouncedRecipients": [{"emailAddress": "jane@example.com", "status": "4.2.2"}]}})
        .to_string()
    }

    #[tokio::test]
    async fn soft_bounces_escalate_over_days_and_reach_the_account_list() {
        let p = processor();
        let mut tally = Tally::default();
        for (day, feedback) in [(0, "f1"), (3, "f2"), (6, "f3")] {
            p.clock.set(1_763_700_000 + day * 86_400);
            p.notification(&soft_bounce(feedback), &mut tally)
                .await
                .unwrap();
        }
        assert_eq!((tally.soft_bounces, tally.escalated), (2, 1));
        let entry = &p.store.entries()["jane@example.com"];
        assert_eq!(entry.status, Status::Suppressed);
        assert_eq!(
            p.account.calls(),
            vec![("jane@example.com".to_owned(), Reason::Bounce)]
        );
    }

    #[tokio::test]
    async fn the_same_notification_three_times_changes_nothing_after_the_first() {
        let p = processor();
        let mut tally = Tally::default();
        p.notification(&soft_bounce("f1"), &mut tally)
            .await
            .unwrap();
        let after_first = p.store.entries();
        for _ in 0..2 {
            p.notification(&soft_bounce("f1"), &mut tally)
                .await
                .unwrap();
        }
        assert_eq!(p.store.entries(), after_first);
        assert_eq!(tally.duplicates, 2);
    }

    #[tokio::test]
    async fn an_empty_address_is_an_error_naming_the_field() {
        let p = processor();
        let message = soft_bounce("f1").replace("jane@example.com", " ");
        let err = p
            .notification(&message, &mut Tally::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "1 of 1 recipients failed, the others were applied; first: recipient emailAddress is empty"
        );
    }

    #[tokio::test]
    async fn a_bad_recipient_among_good_ones_fails_after_the_others_are_applied() {
        let p = processor();
        let message = json!({"notificationType": "Bounce", "mail": {"messageId": "m"},
            "bounce": {"bounceType": "Permanent", "bounceSubType": "General", "feedbackId": "f1",
                       "bouncedRecipients": [{"emailAddress": "first.valid@example.com"},
                                             {"emailAddress": "  "},
                                             {"emailAddress": "last.valid@example.com"}]}})
        .to_string();
        for attempt in 0..2 {
            let mut tally = Tally::default();
            let err = p.notification(&message, &mut tally).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    ProcessError::Recipients {
                        failed: 1,
                        total: 3,
                        ..
                    }
                ),
                "{err}"
            );
            let applied = if attempt == 0 {
                tally.suppressed
            } else {
                tally.duplicates
            };
            assert_eq!(applied, 2, "attempt {attempt}: {tally:?}");
        }
        let entries = p.store.entries();
        assert_eq!(entries.len(), 2);
        assert!(entries.values().all(|e| e.count == 1));
        assert_eq!(p.account.calls().len(), 2);
    }
}
