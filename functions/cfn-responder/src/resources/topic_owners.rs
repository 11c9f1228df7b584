//! Who set a notification topic on an SES identity.
//!
//! SES keeps one topic per identity and notification type and says nothing
//! about who set it. Two resources can set the same topic ARN (a renamed
//! logical id, two stacks on one identity), so "the current topic is mine"
//! is not enough to decide that a Delete may unset it: each resource that
//! sets a topic records itself as an owner of (identity, type, topic), and
//! a Delete unsets only when no other owner of that topic remains.

/// The record key for `topic` set as the `kind` topic of `identity`.
pub fn owner_key(identity: &str, kind: &str, topic: &str) -> String {
    format!("ses-topic-owners|{identity}|{kind}|{topic}")
}
