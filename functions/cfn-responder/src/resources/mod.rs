//! The resource types this function hosts.

pub mod ami_lookup;
pub mod ses_identity_notifications;
pub mod topic_owners;
