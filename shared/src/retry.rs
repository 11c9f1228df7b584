//! Capped exponential backoff with full jitter (a uniformly random wait up
//! to the cap), which spreads retries from many callers instead of letting
//! them hit a throttled service in lockstep.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

/// The wait before retry number `attempt` (1 for the first retry).
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = cap.min(base.saturating_mul(1u32 << attempt.min(16)));
    let millis = ceiling.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    let random = RandomState::new().hash_one(Instant::now());
    Duration::from_millis(random % (millis + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_under_the_growing_cap() {
        let (base, cap) = (Duration::from_millis(10), Duration::from_millis(300));
        for attempt in 1..40 {
            let limit = cap.min(base * 2u32.saturating_pow(attempt.min(16)));
            assert!(backoff(attempt, base, cap) <= limit);
        }
        assert_eq!(backoff(3, Duration::ZERO, cap), Duration::ZERO);
    }
}
