//! Maps a Lambda invocation to the responder.

use crate::cfn::PutTransport;
use crate::ports::IdempotencyStore;
use crate::responder::{Responder, ResponderError, Summary};
use lambda_runtime::LambdaEvent;
use serde_json::Value;
use shared::runtime::deadline_instant;
use std::time::SystemTime;

/// The raw JSON is taken, not a typed request, so that a malformed request
/// is still answered FAILED instead of failing deserialization unanswered.
pub async fn handle<S: IdempotencyStore, T: PutTransport>(
    responder: &Responder<S, T>,
    event: LambdaEvent<Value>,
) -> Result<Summary, ResponderError> {
    let deadline = deadline_instant(event.context.deadline, SystemTime::now());
    // Boxed: the nested future type otherwise overflows rustc's layout depth.
    Box::pin(responder.handle(event.payload, deadline)).await
}
