//! Delivering the response to the pre-signed ResponseURL.
//!
//! Connection errors and 5xx are retried with capped, jittered backoff while
//! time remains; 4xx is final (an expired or mis-signed URL will not get
//! better). Attempts are bounded both in number and by the deadline.

use bytes::Bytes;
use hyper::Uri;
use reqwest::header::CONTENT_TYPE;
use shared::retry::{Deadline, Ended, until_deadline};
use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::time::Instant;

/// TCP connection setup of one PUT attempt (the attempt's own timeout
/// bounds the rest: TLS, sending, the reply).
const PUT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Bound on the one attempt made when the deadline has already passed.
const FIRST_ATTEMPT_PAST_DEADLINE: Duration = Duration::from_secs(2);

/// How the PUT is retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
        }
    }
}

/// What became of the PUT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// A 2xx reply.
    Delivered { status: u16, attempts: u32 },
    /// A 4xx reply: final, the URL will not accept this body.
    Rejected {
        status: u16,
        attempts: u32,
        body: String,
    },
    /// Attempts or time ran out on connection errors or 5xx replies.
    GaveUp { attempts: u32, last_error: String },
}

/// What the attempts of one delivery cost, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PutStats {
    pub attempts: u32,
    /// Attempts that got no reply within their attempt timeout.
    pub timeouts: u32,
}

impl PutStats {
    /// Attempts beyond the first.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }
}

/// Why one PUT attempt got no HTTP reply. Every one is retried while
/// attempts and time remain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutError {
    /// The HTTP client could not be built.
    #[error("cannot build the HTTPS client: {0}")]
    Client(String),
    /// No connection, or it broke before the reply.
    #[error("connection error: {0}")]
    Connection(String),
    /// No whole reply within the attempt's time.
    #[error("no reply within {} ms", .0.as_millis())]
    NoReply(Duration),
}

/// One PUT attempt: `Ok((status, body))` for any HTTP reply.
pub trait PutTransport: Send + Sync {
    fn put_once(
        &self,
        url: &Uri,
        body: Bytes,
        timeout: Duration,
    ) -> impl Future<Output = Result<(u16, String), PutError>> + Send;
}

/// PUTs `body` to `url`, retrying transient failures until `deadline`.
pub async fn put_with_retries<T: PutTransport>(
    transport: &T,
    url: &Uri,
    body: &[u8],
    deadline: Instant,
    policy: &RetryPolicy,
) -> PutOutcome {
    put_with_retries_counted(transport, url, body, deadline, policy)
        .await
        .0
}

/// [`put_with_retries`], also telling how many attempts were made and how
/// many of them timed out.
pub async fn put_with_retries_counted<T: PutTransport>(
    transport: &T,
    url: &Uri,
    body: &[u8],
    deadline: Instant,
    policy: &RetryPolicy,
) -> (PutOutcome, PutStats) {
    let mut stats = PutStats::default();
    let outcome = put_counting(transport, url, body, deadline, policy, &mut stats).await;
    (outcome, stats)
}

async fn put_counting<T: PutTransport>(
    transport: &T,
    url: &Uri,
    body: &[u8],
    deadline: Instant,
    policy: &RetryPolicy,
    stats: &mut PutStats,
) -> PutOutcome {
    let body = Bytes::copy_from_slice(body);
    let timeouts = Cell::new(0);
    // The first attempt is made even past the deadline: an answer that may
    // be late beats a certain silence. Later ones stay within it.
    let deadline = Deadline {
        at: deadline.into_std(),
        first_attempt_even_if_late: true,
    };
    let wait = |attempts| shared::retry::backoff(attempts, policy.base_delay, policy.max_delay);
    let attempt = |remaining: Duration| {
        let timeout = if remaining.is_zero() {
            FIRST_ATTEMPT_PAST_DEADLINE
        } else {
            policy.attempt_timeout.min(remaining)
        };
        put_attempt(transport, url, body.clone(), timeout, &timeouts)
    };
    let retried = until_deadline(
        deadline,
        Some(policy.max_attempts),
        wait,
        |failure: &AttemptFailure| matches!(failure, AttemptFailure::Retry(_)),
        attempt,
    )
    .await;
    stats.attempts = retried.attempts;
    stats.timeouts = timeouts.get();
    let attempts = retried.attempts;
    let last_error = match retried.ended {
        Ended::Attempted(Ok(status)) => return PutOutcome::Delivered { status, attempts },
        Ended::Attempted(Err(AttemptFailure::Rejected(status, body))) => {
            return PutOutcome::Rejected {
                status,
                attempts,
                body,
            };
        }
        Ended::Attempted(Err(AttemptFailure::Retry(e))) => e,
        Ended::NotStarted {
            last: Some(AttemptFailure::Retry(e)),
        } => e,
        Ended::NotStarted { .. } => String::from("no attempt was made"),
    };
    PutOutcome::GaveUp {
        attempts,
        last_error,
    }
}

/// Why an attempt did not deliver: a 4xx is final, anything else is retried.
enum AttemptFailure {
    Rejected(u16, String),
    Retry(String),
}

/// One PUT bounded by `timeout`; counts it in `timeouts` if it failed after
/// the whole attempt time.
async fn put_attempt<T: PutTransport>(
    transport: &T,
    url: &Uri,
    body: Bytes,
    timeout: Duration,
    timeouts: &Cell<u32>,
) -> Result<u16, AttemptFailure> {
    let started = Instant::now();
    // Bounded here too, so a transport that overruns its timeout cannot
    // take the deadline with it.
    let result = match tokio::time::timeout(timeout, transport.put_once(url, body, timeout)).await {
        Ok(result) => result,
        Err(_) => Err(PutError::NoReply(timeout)),
    };
    // Whichever timer fired, an error after the whole attempt time is a timeout.
    if result.is_err() && started.elapsed() >= timeout {
        timeouts.set(timeouts.get() + 1);
    }
    match result {
        Ok((status, _)) if (200..300).contains(&status) => Ok(status),
        Ok((status, reply)) if (400..500).contains(&status) => {
            Err(AttemptFailure::Rejected(status, reply))
        }
        Ok((status, reply)) => Err(AttemptFailure::Retry(format!("HTTP {status}: {reply}"))),
        Err(e) => Err(AttemptFailure::Retry(e.to_string())),
    }
}

/// The real transport: reqwest, HTTP/1.1 over rustls with the aws-lc-rs
/// provider the SDK already builds and the system's roots. Built on first use
/// so init does not pay for it.
#[derive(Default)]
pub struct HttpsPut {
    client: OnceLock<Result<reqwest::Client, PutError>>,
}

impl HttpsPut {
    fn client(&self) -> Result<&reqwest::Client, PutError> {
        self.client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .http1_only()
                    // The body goes to the URL ResponseUrlPolicy admitted and
                    // nowhere else: not to a redirect's Location, not to a
                    // proxy named in the environment.
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    // Every attempt is put_counting's, counted and bounded.
                    .retry(reqwest::retry::never())
                    // Within each attempt's timeout, a dead address fails fast
                    // enough to leave time for another attempt.
                    .connect_timeout(PUT_CONNECT_TIMEOUT)
                    .build()
                    .map_err(|e| PutError::Client(shared::aws::error_text(&e)))
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl PutTransport for HttpsPut {
    async fn put_once(
        &self,
        url: &Uri,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(u16, String), PutError> {
        let client = self.client()?;
        let exchange = async {
            // The pre-signed URL was signed without a content type: any value
            // other than empty makes S3 answer 403 SignatureDoesNotMatch.
            let response = client
                .put(url.to_string())
                .header(CONTENT_TYPE, "")
                .body(body)
                .send()
                .await
                .map_err(|e| PutError::Connection(shared::aws::error_text(&e)))?;
            let status = response.status().as_u16();
            let reply = response.bytes().await.unwrap_or_default();
            let mut text = String::from_utf8_lossy(&reply).into_owned();
            text.truncate(text.floor_char_boundary(512));
            Ok((status, text))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(PutError::NoReply(timeout)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Replies from a script, then 200 forever.
    struct Scripted(Mutex<Vec<Result<(u16, String), PutError>>>);

    impl PutTransport for Scripted {
        async fn put_once(
            &self,
            _: &Uri,
            _: Bytes,
            _: Duration,
        ) -> Result<(u16, String), PutError> {
            let mut script = self.0.lock().unwrap();
            if script.is_empty() {
                Ok((200, String::new()))
            } else {
                script.remove(0)
            }
        }
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            attempt_timeout: Duration::from_secs(1),
        }
    }

    fn url() -> Uri {
        "http://127.0.0.1:1/x".parse().unwrap()
    }

    #[tokio::test]
    async fn retries_connection_errors_and_5xx_then_delivers() {
        let t = Scripted(Mutex::new(vec![
            Err(PutError::Connection("refused".into())),
            Ok((503, "slow down".into())),
        ]));
        let deadline = Instant::now() + Duration::from_secs(5);
        let outcome = put_with_retries(&t, &url(), b"{}", deadline, &fast()).await;
        assert_eq!(
            outcome,
            PutOutcome::Delivered {
                status: 200,
                attempts: 3
            }
        );
    }

    #[tokio::test]
    async fn client_errors_are_final() {
        let t = Scripted(Mutex::new(vec![Ok((403, "SignatureDoesNotMatch".into()))]));
        let deadline = Instant::now() + Duration::from_secs(5);
        let outcome = put_with_retries(&t, &url(), b"{}", deadline, &fast()).await;
        assert_eq!(
            outcome,
            PutOutcome::Rejected {
                status: 403,
                attempts: 1,
                body: "SignatureDoesNotMatch".into()
            }
        );
    }

    #[tokio::test]
    async fn attempts_are_bounded() {
        let t = Scripted(Mutex::new(
            (0..100).map(|_| Ok((500, "boom".into()))).collect(),
        ));
        let deadline = Instant::now() + Duration::from_secs(5);
        let outcome = put_with_retries(&t, &url(), b"{}", deadline, &fast()).await;
        assert_eq!(
            outcome,
            PutOutcome::GaveUp {
                attempts: 5,
                last_error: "HTTP 500: boom".into()
            }
        );
    }

    /// Hangs past its timeout (first), answers its own timeout error when the
    /// timeout is up (second), is refused at once (third), then delivers.
    struct Slow(std::sync::atomic::AtomicU32);

    impl PutTransport for Slow {
        async fn put_once(
            &self,
            _: &Uri,
            _: Bytes,
            timeout: Duration,
        ) -> Result<(u16, String), PutError> {
            match self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok((200, String::new()))
                }
                1 => {
                    tokio::time::sleep(timeout).await;
                    Err(PutError::NoReply(timeout))
                }
                2 => Err(PutError::Connection("refused".into())),
                _ => Ok((200, String::new())),
            }
        }
    }

    #[tokio::test]
    async fn counts_retries_and_timed_out_attempts() {
        let policy = RetryPolicy {
            attempt_timeout: Duration::from_millis(50),
            ..fast()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let (outcome, stats) =
            put_with_retries_counted(&Slow(0.into()), &url(), b"{}", deadline, &policy).await;
        assert_eq!(
            outcome,
            PutOutcome::Delivered {
                status: 200,
                attempts: 4
            }
        );
        assert_eq!(
            stats,
            PutStats {
                attempts: 4,
                timeouts: 2
            }
        );
        assert_eq!(stats.retries(), 3);
        let (_, first_time) = put_with_retries_counted(
            &Scripted(Mutex::new(vec![])),
            &url(),
            b"{}",
            deadline,
            &policy,
        )
        .await;
        assert_eq!(first_time.retries(), 0);
    }

    #[tokio::test]
    async fn past_the_deadline_only_one_attempt_is_made() {
        let t = Scripted(Mutex::new(vec![]));
        let outcome = put_with_retries(&t, &url(), b"{}", Instant::now(), &fast()).await;
        assert_eq!(
            outcome,
            PutOutcome::Delivered {
                status: 200,
                attempts: 1
            }
        );
        let failing = Scripted(Mutex::new(vec![Ok((500, "boom".into())); 10]));
        let outcome = put_with_retries(&failing, &url(), b"{}", Instant::now(), &fast()).await;
        assert_eq!(
            outcome,
            PutOutcome::GaveUp {
                attempts: 1,
                last_error: "HTTP 500: boom".into()
            }
        );
    }
}
