//! Maps a Lambda invocation to the responder.

use crate::idempotency::IdempotencyStore;
use crate::responder::{Responder, ResponderError, Summary};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::cfn::PutTransport;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// The raw JSON is taken, not a typed request, so that a malformed request
/// is still answered FAILED instead of failing deserialization unanswered.
pub async fn handle<S: IdempotencyStore, T: PutTransport>(
    responder: &Responder<S, T>,
    event: LambdaEvent<Value>,
) -> Result<Summary, ResponderError> {
    let deadline = instant_at(event.context.deadline);
    // Boxed: the nested future type otherwise overflows rustc's layout depth.
    Box::pin(responder.handle(event.payload, deadline)).await
}

/// Lambda gives the deadline as epoch milliseconds.
fn instant_at(deadline_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    Instant::now() + Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}
