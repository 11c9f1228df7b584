//! Capped exponential backoff with full jitter (a uniformly random wait up
//! to the cap), which spreads retries from many callers instead of letting
//! them hit a throttled service in lockstep, and a retry loop bounded by a
//! deadline and an optional number of attempts.

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

/// When a retried call must be done by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    pub at: Instant,
    /// Make the first attempt even when `at` has passed (an answer that may
    /// be late beats a certain silence); later attempts always stay within it.
    pub first_attempt_even_if_late: bool,
}

/// How a call retried by [`until_deadline`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended<T, E> {
    /// The last attempt's result: a success, a final error, or a transient
    /// error that could not be retried (the attempts ran out, or the wait
    /// before the next one would reach the deadline).
    Attempted(Result<T, E>),
    /// An attempt was due but the deadline had passed (or `max_attempts`
    /// was 0); `last` is the previous attempt's error, if there was one.
    NotStarted { last: Option<E> },
}

/// The end of a retried call and what it cost.
#[derive(Debug, PartialEq, Eq)]
pub struct Retried<T, E> {
    pub ended: Ended<T, E>,
    /// Calls made.
    pub attempts: u32,
    /// Waits slept before another attempt was due.
    pub retries: u32,
}

/// Calls `call` until it succeeds, fails with an error `is_transient`
/// rejects, or runs out of attempts or time. Before attempt `n + 1` it
/// waits `wait(n)`, and it never starts a wait that would end at or after
/// the deadline, nor an attempt once the deadline has passed (except the
/// first, when [`Deadline::first_attempt_even_if_late`]). `call` gets the
/// time left before the deadline (zero only for a late first attempt), to
/// bound its own attempt.
pub async fn until_deadline<T, E, F, Fut>(
    deadline: Deadline,
    max_attempts: Option<u32>,
    wait: impl Fn(u32) -> Duration,
    is_transient: impl Fn(&E) -> bool,
    mut call: F,
) -> Retried<T, E>
where
    F: FnMut(Duration) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let (mut attempts, mut retries) = (0, 0);
    let mut last = None;
    loop {
        let left = deadline.at.saturating_duration_since(Instant::now());
        let late = left.is_zero() && !(attempts == 0 && deadline.first_attempt_even_if_late);
        if late || max_attempts == Some(0) {
            let ended = Ended::NotStarted { last };
            return Retried {
                ended,
                attempts,
                retries,
            };
        }
        attempts += 1;
        let error = match call(left).await {
            Err(e) if is_transient(&e) => e,
            other => {
                let ended = Ended::Attempted(other);
                return Retried {
                    ended,
                    attempts,
                    retries,
                };
            }
        };
        let out_of_attempts = max_attempts.is_some_and(|max| attempts >= max);
        let pause = if out_of_attempts {
            None
        } else {
            Some(wait(attempts))
        };
        let Some(pause) = pause.filter(|pause| Instant::now() + *pause < deadline.at) else {
            let ended = Ended::Attempted(Err(error));
            return Retried {
                ended,
                attempts,
                retries,
            };
        };
        last = Some(error);
        tokio::time::sleep(pause).await;
        retries += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Plays `script` one result per call (`Err(true)`: transient) and
    /// records the time left each call was given.
    struct Script {
        results: RefCell<Vec<Result<u32, bool>>>,
        given: RefCell<Vec<Duration>>,
    }

    impl Script {
        fn new(mut results: Vec<Result<u32, bool>>) -> Script {
            results.reverse();
            let given = RefCell::new(Vec::new());
            Script {
                results: RefCell::new(results),
                given,
            }
        }

        async fn call(&self, left: Duration) -> Result<u32, bool> {
            self.given.borrow_mut().push(left);
            self.results
                .borrow_mut()
                .pop()
                .expect("no call beyond the script")
        }

        async fn run(
            &self,
            deadline: Deadline,
            max_attempts: Option<u32>,
            wait: Duration,
        ) -> Retried<u32, bool> {
            // A deadline contract, not a timing: a run that slept a wait it
            // should have refused would overrun this bound.
            let run = until_deadline(
                deadline,
                max_attempts,
                |_| wait,
                |e| *e,
                |left| self.call(left),
            );
            tokio::time::timeout(Duration::from_secs(20), run)
                .await
                .expect("the run ends without sleeping past the deadline")
        }
    }

    fn within(secs: u64) -> Deadline {
        let at = Instant::now() + Duration::from_secs(secs);
        Deadline {
            at,
            first_attempt_even_if_late: false,
        }
    }

    fn passed(first_attempt_even_if_late: bool) -> Deadline {
        let at = Instant::now() - Duration::from_millis(1);
        Deadline {
            at,
            first_attempt_even_if_late,
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let script = Script::new(vec![Err(true), Err(true), Ok(7)]);
        let done = script.run(within(60), None, Duration::from_millis(1)).await;
        assert_eq!(
            done,
            Retried {
                ended: Ended::Attempted(Ok(7)),
                attempts: 3,
                retries: 2
            }
        );
        let given = script.given.borrow();
        assert!(
            given
                .iter()
                .all(|left| !left.is_zero() && *left <= Duration::from_secs(60)),
            "{given:?}"
        );
    }

    #[tokio::test]
    async fn a_final_error_ends_at_once() {
        let script = Script::new(vec![Err(true), Err(false)]);
        let done = script.run(within(60), None, Duration::ZERO).await;
        assert_eq!(
            done,
            Retried {
                ended: Ended::Attempted(Err(false)),
                attempts: 2,
                retries: 1
            }
        );
    }

    #[tokio::test]
    async fn the_attempts_are_capped() {
        let script = Script::new(vec![Err(true), Err(true), Ok(1)]);
        let done = script.run(within(60), Some(2), Duration::ZERO).await;
        assert_eq!(
            done,
            Retried {
                ended: Ended::Attempted(Err(true)),
                attempts: 2,
                retries: 1
            }
        );
        let none = Script::new(vec![])
            .run(within(60), Some(0), Duration::ZERO)
            .await;
        assert_eq!(
            none,
            Retried {
                ended: Ended::NotStarted { last: None },
                attempts: 0,
                retries: 0
            }
        );
    }

    #[tokio::test]
    async fn no_wait_that_would_reach_the_deadline_is_slept() {
        let script = Script::new(vec![Err(true)]);
        let done = script.run(within(5), None, Duration::from_secs(3600)).await;
        assert_eq!(
            done,
            Retried {
                ended: Ended::Attempted(Err(true)),
                attempts: 1,
                retries: 0
            }
        );
    }

    #[tokio::test]
    async fn past_the_deadline_nothing_starts_unless_the_first_may_be_late() {
        let script = Script::new(vec![]);
        let done = script.run(passed(false), None, Duration::ZERO).await;
        assert_eq!(
            done,
            Retried {
                ended: Ended::NotStarted { last: None },
                attempts: 0,
                retries: 0
            }
        );

        let script = Script::new(vec![Err(true), Ok(1)]);
        let done = script.run(passed(true), None, Duration::ZERO).await;
        assert_eq!(
            done,
            Retried {
                ended: Ended::Attempted(Err(true)),
                attempts: 1,
                retries: 0
            }
        );
        assert_eq!(*script.given.borrow(), [Duration::ZERO]);
    }

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
