//! Writing entries: retries within the deadline, and BatchWriteItem batching.

use crate::convert::Item;
use crate::ports::{Table, WriteError};
use shared::retry::{Deadline, Ended, backoff, until_deadline};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// BatchWriteItem takes at most 25 puts and 16 MB.
pub const MAX_BATCH_ITEMS: usize = 25;
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Capped exponential backoff with full jitter between retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Backoff {
    fn wait(&self, retry: u32) -> Duration {
        backoff(retry, self.base, self.max)
    }
}

/// Why a request was not sent.
pub const NO_TIME_LEFT: &str = "no time left to start a request before the deadline";

/// Retries a transient failure with backoff until `deadline`; no call,
/// the first included, starts at or after it (then the result is a
/// transient error). Returns the result and the number of retries made.
pub async fn with_retries<T, F, Fut>(
    policy: Backoff,
    deadline: Instant,
    mut call: F,
) -> (Result<T, WriteError>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, WriteError>>,
{
    let deadline = Deadline {
        at: deadline.into_std(),
        first_attempt_even_if_late: false,
    };
    let retried = until_deadline(
        deadline,
        None,
        |retry| policy.wait(retry),
        |e| matches!(e, WriteError::Transient(_)),
        |_| call(),
    )
    .await;
    let result = match retried.ended {
        Ended::Attempted(result) => result,
        Ended::NotStarted { .. } => Err(WriteError::Transient(NO_TIME_LEFT.into())),
    };
    (result, retried.retries)
}

/// Puts `items` with BatchWriteItem, retrying what comes back unprocessed
/// (never dropping it) until `deadline`. Returns what is still unwritten,
/// the error if the call itself failed, and the retries made.
pub async fn batch_put_all<T: Table>(
    table: &T,
    name: &str,
    items: Vec<Item>,
    policy: Backoff,
    deadline: Instant,
) -> (Vec<Item>, Option<WriteError>, u32) {
    let mut pending = items;
    let mut retries = 0;
    loop {
        let (result, call_retries) =
            with_retries(policy, deadline, || table.batch_put(name, pending.clone())).await;
        retries += call_retries;
        match result {
            Ok(unprocessed) if unprocessed.is_empty() => return (Vec::new(), None, retries),
            Ok(unprocessed) => {
                pending = unprocessed;
                let wait = policy.wait(retries + 1);
                if Instant::now() + wait >= deadline {
                    return (pending, None, retries);
                }
                tokio::time::sleep(wait).await;
                retries += 1;
            }
            Err(e) => return (pending, Some(e), retries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn transient_errors_are_retried_until_the_deadline() {
        let mut calls = 0;
        let fast = Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(5),
        };
        let (result, retries) = with_retries(fast, Instant::now() + Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(WriteError::Transient("throttled".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!((result, retries), (Ok(3), 2));
        let mut late_calls = 0;
        let (result, _) = with_retries(fast, Instant::now(), || {
            late_calls += 1;
            async { Err::<(), _>(WriteError::Transient("x".into())) }
        })
        .await;
        assert_eq!(
            (result, late_calls),
            (Err(WriteError::Transient(NO_TIME_LEFT.into())), 0),
            "no call starts at the deadline"
        );
        let (result, retries) =
            with_retries(fast, Instant::now() + Duration::from_secs(5), || async {
                Err::<(), _>(WriteError::Fatal("no table".into()))
            })
            .await;
        assert_eq!(
            (result, retries),
            (Err(WriteError::Fatal("no table".into())), 0)
        );
    }
}
