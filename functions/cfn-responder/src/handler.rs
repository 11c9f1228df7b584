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
    let deadline = deadline_instant(event.context.deadline, SystemTime::now());
    // Boxed: the nested future type otherwise overflows rustc's layout depth.
    Box::pin(responder.handle(event.payload, deadline)).await
}

/// 2000-01-01T00:00:00Z in epoch milliseconds.
const EPOCH_2000_MS: u64 = 946_684_800_000;

/// Lambda gives the deadline as epoch milliseconds. `cargo lambda watch`
/// (1.9) sends the function timeout instead (600000): no real deadline lies
/// before 2000, so such a value is read as the time remaining.
pub fn deadline_instant(deadline_ms: u64, now: SystemTime) -> Instant {
    let remaining = if deadline_ms < EPOCH_2000_MS {
        tracing::warn!(
            deadline_ms,
            "the Runtime API sent a duration, not an epoch deadline; reading it as the time remaining"
        );
        Duration::from_millis(deadline_ms)
    } else {
        let now_ms = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    };
    Instant::now() + remaining
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_deadlines_and_emulator_durations() {
        let now = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
        let remaining = |at: Instant| at.saturating_duration_since(Instant::now());
        let real = deadline_instant(1_800_000_030_000, now);
        assert!(
            remaining(real) > Duration::from_secs(29) && remaining(real) <= Duration::from_secs(30)
        );
        let emulator = deadline_instant(600_000, now);
        assert!(remaining(emulator) > Duration::from_secs(599));
        let past = deadline_instant(1_799_999_000_000, now);
        assert_eq!(remaining(past), Duration::ZERO);
    }
}
