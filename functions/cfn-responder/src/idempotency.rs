//! At-most-once execution per RequestId for types that are not idempotent.
//!
//! Lambda retries asynchronous invocations, so one CloudFormation request can
//! arrive twice. Before running a non-idempotent type, the responder claims
//! the RequestId with a conditional write. A duplicate that finds the request
//! done re-sends the stored response, doing nothing else; one that finds it
//! still running leaves the answer to the running one; one that finds a claim
//! whose holder died answers FAILED rather than risk doing the work twice.

use crate::cfn::CfnResponse;
use crate::ports::Claim;
use std::time::{Duration, SystemTime};

/// Completed entries are kept this long (DynamoDB TTL), well beyond Lambda's
/// six-hour async retry window.
pub(crate) const KEEP_FOR: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Running { until: SystemTime },
    Done(Box<CfnResponse>),
}

pub(crate) fn claim_outcome(entry: &Entry) -> Claim {
    match entry {
        Entry::Done(response) => Claim::Completed(response.clone()),
        Entry::Running { until } if *until < SystemTime::now() => Claim::Abandoned,
        Entry::Running { .. } => Claim::InProgress,
    }
}
