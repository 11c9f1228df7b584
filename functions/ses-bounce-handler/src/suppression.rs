//! The suppression list's rules: what one recipient event does to the
//! address's entry. Plain data in, plain data out; storage is elsewhere.

use crate::notification::{Action, Reason, RecipientEvent};

/// Redeliveries are recognised among this many recent notifications of an
/// address; SNS redelivers within hours, long before that many arrive.
pub const REMEMBERED_NOTIFICATIONS: usize = 20;
/// Diagnostic codes are kept to this many characters.
pub const MAX_DIAGNOSTIC_CHARS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Do not send.
    Suppressed,
    /// Soft bounces under the threshold; the entry expires (DynamoDB TTL).
    Soft,
    /// Kept for the record; sending is fine.
    Recorded,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suppressed => "suppressed",
            Self::Soft => "soft",
            Self::Recorded => "recorded",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "suppressed" => Some(Self::Suppressed),
            "soft" => Some(Self::Soft),
            "recorded" => Some(Self::Recorded),
            _ => None,
        }
    }
}

/// One address's entry in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub address: String,
    pub status: Status,
    /// BOUNCE or COMPLAINT, for suppressed entries.
    pub reason: Option<String>,
    /// `Bounce`, `Complaint`, `Delivery`: the latest notification's type.
    pub kind: String,
    pub subtype: String,
    pub diagnostic_code: Option<String>,
    /// Epoch seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    /// Notifications counted against the address (not SES's own
    /// suppressions, nor duplicates).
    pub count: u64,
    /// Soft bounces inside the window, epoch seconds, oldest first.
    pub soft_bounces: Vec<i64>,
    pub last_message_id: String,
    pub last_feedback_id: String,
    /// Recent idempotency keys, newest last.
    pub recent_keys: Vec<String>,
    /// DynamoDB TTL (epoch seconds); soft entries only.
    pub expires_at: Option<i64>,
    /// Optimistic-locking version; 0 for an entry not yet stored.
    pub version: u64,
}

/// Soft-bounce escalation settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escalation {
    pub threshold: usize,
    pub window_secs: i64,
}

/// What an event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Newly suppressed; the account list should hear of it.
    Suppressed(Reason),
    /// A soft bounce pushed the address over the threshold.
    Escalated,
    /// Already suppressed: counted again.
    AlreadySuppressed,
    SoftCounted,
    Recorded,
    SoftReset,
    /// A redelivery: nothing changes.
    Duplicate,
    /// Nothing to do (a delivery to an address without soft bounces).
    Unchanged,
}

impl Outcome {
    /// The account suppression list reason, for outcomes that add to it.
    pub fn account_reason(self) -> Option<Reason> {
        match self {
            Self::Suppressed(reason) => Some(reason),
            Self::Escalated => Some(Reason::Bounce),
            _ => None,
        }
    }
}

/// Applies `event` to the stored entry (if any) at time `now`. Returns the
/// entry to write (None: write nothing) and what happened.
pub fn apply(
    stored: Option<&Entry>,
    event: &RecipientEvent,
    now: i64,
    escalation: Escalation,
) -> (Option<Entry>, Outcome) {
    if stored.is_some_and(|e| e.recent_keys.contains(&event.idempotency_key)) {
        return (None, Outcome::Duplicate);
    }
    if event.action == Action::ResetSoft {
        return reset_soft(stored, event, now);
    }
    let base = stored
        .cloned()
        .unwrap_or_else(|| fresh(&event.address, now));
    let mut entry = touched(base, event, now);
    let was_suppressed = stored.is_some_and(|e| e.status == Status::Suppressed);
    let outcome = match &event.action {
        Action::Suppress(reason) => {
            entry.count += 1;
            if was_suppressed {
                Outcome::AlreadySuppressed
            } else {
                suppress(&mut entry, *reason);
                Outcome::Suppressed(*reason)
            }
        }
        Action::AlreadySuppressedBySes(reason) => {
            if !was_suppressed {
                suppress(&mut entry, *reason);
            }
            Outcome::Recorded
        }
        Action::SoftBounce if was_suppressed => {
            entry.count += 1;
            Outcome::AlreadySuppressed
        }
        Action::SoftBounce => soft_bounce(&mut entry, now, escalation),
        Action::Record | Action::ResetSoft => {
            if stored.is_none() {
                entry.count += 1;
            }
            Outcome::Recorded
        }
    };
    (Some(entry), outcome)
}

/// A delivery clears the soft bounces of a soft entry; anything else is
/// left alone.
fn reset_soft(
    stored: Option<&Entry>,
    event: &RecipientEvent,
    now: i64,
) -> (Option<Entry>, Outcome) {
    match stored {
        Some(entry) if entry.status == Status::Soft && !entry.soft_bounces.is_empty() => {
            let mut entry = touched(entry.clone(), event, now);
            entry.soft_bounces.clear();
            (Some(entry), Outcome::SoftReset)
        }
        _ => (None, Outcome::Unchanged),
    }
}

/// A soft bounce counts inside the window; at the threshold it suppresses.
fn soft_bounce(entry: &mut Entry, now: i64, escalation: Escalation) -> Outcome {
    entry.count += 1;
    entry
        .soft_bounces
        .retain(|&at| at > now - escalation.window_secs);
    entry.soft_bounces.push(now);
    if entry.soft_bounces.len() >= escalation.threshold {
        suppress(entry, Reason::Bounce);
        entry.subtype = format!(
            "{} (escalated: {} soft bounces within {} days)",
            entry.subtype,
            entry.soft_bounces.len(),
            escalation.window_secs / 86_400
        );
        Outcome::Escalated
    } else {
        entry.status = Status::Soft;
        entry.expires_at = Some(now + escalation.window_secs);
        Outcome::SoftCounted
    }
}

/// The entry of an address seen for the first time, not yet stored.
fn fresh(address: &str, now: i64) -> Entry {
    Entry {
        address: address.to_owned(),
        status: Status::Recorded,
        reason: None,
        kind: String::new(),
        subtype: String::new(),
        diagnostic_code: None,
        first_seen: now,
        last_seen: now,
        count: 0,
        soft_bounces: Vec::new(),
        last_message_id: String::new(),
        last_feedback_id: String::new(),
        recent_keys: Vec::new(),
        expires_at: None,
        version: 0,
    }
}

fn suppress(entry: &mut Entry, reason: Reason) {
    entry.status = Status::Suppressed;
    entry.reason = Some(reason.as_str().to_owned());
    // Suppression is permanent: no TTL.
    entry.expires_at = None;
}

/// The event's details copied onto the entry, whatever it does. A delivery
/// leaves the bounce details alone: they say why the entry exists.
fn touched(mut entry: Entry, event: &RecipientEvent, now: i64) -> Entry {
    if event.action != Action::ResetSoft {
        entry.kind = event.kind.to_owned();
        entry.subtype = event.subtype.clone();
        entry.last_feedback_id = event.idempotency_key.clone();
        if let Some(code) = &event.diagnostic_code {
            entry.diagnostic_code = Some(code.chars().take(MAX_DIAGNOSTIC_CHARS).collect());
        }
    }
    entry.last_seen = now;
    entry.last_message_id = event.message_id.clone();
    entry.recent_keys.push(event.idempotency_key.clone());
    let excess = entry
        .recent_keys
        .len()
        .saturating_sub(REMEMBERED_NOTIFICATIONS);
    entry.recent_keys.drain(..excess);
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const RULE: Escalation = Escalation {
        threshold: 3,
        window_secs: 7 * DAY,
    };

    fn event(action: Action, key: &str) -> RecipientEvent {
        RecipientEvent {
            address: "jane@example.com".into(),
            action,
            kind: "Bounce",
            subtype: "Transient/MailboxFull".into(),
            diagnostic_code: Some("smtp; 452 4.2.2 mailbox full".into()),
            idempotency_key: key.into(),
            message_id: format!("m-{key}"),
            timestamp: None,
        }
    }

    /// Feeds events at the given days, returning the outcomes and the entry.
    fn run(events: &[(i64, Action)]) -> (Vec<Outcome>, Option<Entry>) {
        let mut stored: Option<Entry> = None;
        let mut outcomes = Vec::new();
        for (i, (day, action)) in events.iter().enumerate() {
            let (write, outcome) = apply(
                stored.as_ref(),
                &event(action.clone(), &format!("f-{i}")),
                day * DAY,
                RULE,
            );
            outcomes.push(outcome);
            if let Some(entry) = write {
                stored = Some(entry);
            }
        }
        (outcomes, stored)
    }

    #[test]
    fn soft_bounces_escalate_at_the_threshold_within_the_window() {
        let soft = Action::SoftBounce;
        let (outcomes, entry) = run(&[(0, soft.clone()), (2, soft.clone()), (5, soft.clone())]);
        assert_eq!(
            outcomes,
            vec![
                Outcome::SoftCounted,
                Outcome::SoftCounted,
                Outcome::Escalated
            ]
        );
        let entry = entry.unwrap();
        assert_eq!(entry.status, Status::Suppressed);
        assert_eq!(entry.reason.as_deref(), Some("BOUNCE"));
        assert_eq!(entry.expires_at, None, "suppression never expires");
        assert!(entry.subtype.contains("escalated"));
    }

    #[test]
    fn soft_bounces_outside_the_window_do_not_add_up() {
        let soft = Action::SoftBounce;
        // Days 0, 6, 12, 18: never three within seven days.
        let (outcomes, entry) = run(&[
            (0, soft.clone()),
            (6, soft.clone()),
            (12, soft.clone()),
            (18, soft.clone()),
        ]);
        assert!(outcomes.iter().all(|o| *o == Outcome::SoftCounted));
        let entry = entry.unwrap();
        assert_eq!(entry.status, Status::Soft);
        assert_eq!(entry.soft_bounces, vec![12 * DAY, 18 * DAY]);
        assert_eq!(entry.expires_at, Some(25 * DAY));
        assert_eq!(entry.count, 4);
    }

    #[test]
    fn a_delivery_resets_the_soft_count() {
        let (outcomes, entry) = run(&[
            (0, Action::SoftBounce),
            (1, Action::SoftBounce),
            (2, Action::ResetSoft),
            (3, Action::SoftBounce),
        ]);
        assert_eq!(outcomes[2], Outcome::SoftReset);
        assert_eq!(outcomes[3], Outcome::SoftCounted);
        let entry = entry.unwrap();
        assert_eq!(entry.soft_bounces, vec![3 * DAY]);
        assert_eq!(entry.kind, "Bounce", "a delivery keeps the bounce details");
    }

    #[test]
    fn a_redelivery_changes_nothing() {
        let first = event(Action::Suppress(Reason::Bounce), "f-1");
        let (entry, outcome) = apply(None, &first, 0, RULE);
        assert_eq!(outcome, Outcome::Suppressed(Reason::Bounce));
        let entry = entry.unwrap();
        assert_eq!(
            apply(Some(&entry), &first, 60, RULE),
            (None, Outcome::Duplicate)
        );
        let second = event(Action::Suppress(Reason::Bounce), "f-2");
        let (again, outcome) = apply(Some(&entry), &second, 60, RULE);
        assert_eq!(outcome, Outcome::AlreadySuppressed);
        assert_eq!(again.unwrap().count, 2);
    }

    #[test]
    fn ses_suppressions_are_recorded_but_not_counted() {
        let (outcomes, entry) = run(&[(0, Action::AlreadySuppressedBySes(Reason::Bounce))]);
        assert_eq!(outcomes, vec![Outcome::Recorded]);
        let entry = entry.unwrap();
        assert_eq!((entry.status, entry.count), (Status::Suppressed, 0));
        assert_eq!(Outcome::Recorded.account_reason(), None);
    }

    #[test]
    fn recent_keys_are_bounded() {
        let events: Vec<(i64, Action)> = (0..50).map(|d| (d, Action::Record)).collect();
        let (_, entry) = run(&events);
        let entry = entry.unwrap();
        assert_eq!(entry.recent_keys.len(), REMEMBERED_NOTIFICATIONS);
        assert_eq!(entry.recent_keys.last().unwrap(), "f-49");
        assert_eq!(entry.count, 1, "records are counted once");
    }
}
