//! Answers every CloudFormation request exactly once, whatever the resource
//! type does: errors, panics and timeouts all become FAILED responses.

use crate::cfn::{
    CfnResponse, CfnStatus, Envelope, EnvelopeError, PutOutcome, PutStats, PutTransport,
    ResponseUrlError, ResponseUrlPolicy, RetryPolicy,
};
use crate::ports::IdempotencyStore;
use crate::resource::Registry;
use serde::Serialize;
use serde_json::Value;
use shared::metrics::Emf;
use std::time::Duration;
use tokio::time::Instant;
use tracing::{Instrument, error_span};

mod answer;
mod decide;

/// Time kept back from the Lambda deadline so the process is not frozen in
/// the middle of the PUT.
const PUT_SAFETY: Duration = Duration::from_millis(250);

/// The invocation fails (and Lambda may retry) only when CloudFormation could
/// not be answered.
#[derive(Debug, thiserror::Error)]
pub enum ResponderError {
    #[error("cannot answer: {0}")]
    Unanswerable(#[from] EnvelopeError),
    #[error("refusing to answer: {0}")]
    ResponseUrl(#[from] ResponseUrlError),
    #[error("response not delivered after {attempts} attempts: {last_error}")]
    NotDelivered { attempts: u32, last_error: String },
}

impl From<ResponderError> for lambda_runtime::Diagnostic {
    fn from(e: ResponderError) -> Self {
        let error_type = match e {
            ResponderError::Unanswerable(_) => "UnanswerableRequest",
            ResponderError::ResponseUrl(_) => "InvalidResponseURL",
            ResponderError::NotDelivered { .. } => "ResponseNotDelivered",
        };
        Self {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

/// What the invocation returns, for logs and for whoever invoked it by hand.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub response: Option<CfnResponse>,
    pub delivery: String,
}

/// Settings for answering requests.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The resource type must finish this long before the Lambda deadline.
    pub timeout_margin: Duration,
    pub url_policy: ResponseUrlPolicy,
    pub retry: RetryPolicy,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            timeout_margin: Duration::from_secs(3),
            url_policy: ResponseUrlPolicy::default(),
            retry: RetryPolicy::default(),
        }
    }
}

pub struct Responder<S, T> {
    registry: Registry,
    store: S,
    transport: T,
    settings: Settings,
    /// Set when the function could not initialise: requests are answered
    /// FAILED with it instead of being left to hang the stack.
    init_error: Option<String>,
}

/// The decision before delivery.
enum Answer {
    Send {
        response: CfnResponse,
        claimed: bool,
    },
    /// A concurrent delivery of the same request owns the answer.
    LeaveToRunning,
}

impl<S: IdempotencyStore, T: PutTransport> Responder<S, T> {
    pub fn new(registry: Registry, store: S, transport: T, settings: Settings) -> Self {
        Self {
            registry,
            store,
            transport,
            settings,
            init_error: None,
        }
    }

    /// A responder for a function whose initialisation failed with `error`.
    pub fn failed_init(error: String, store: S, transport: T, settings: Settings) -> Self {
        Self {
            init_error: Some(error),
            ..Self::new(Registry::new(), store, transport, settings)
        }
    }

    /// Handles one request that must be answered by `deadline`.
    pub async fn handle(&self, event: Value, deadline: Instant) -> Result<Summary, ResponderError> {
        let envelope = Envelope::from_event(&event)?;
        // At ERROR level so that no log level filters the correlation ids away.
        let span = error_span!(
            "cfn_request",
            stack_id = %envelope.stack_id,
            request_id = %envelope.request_id,
            logical_resource_id = %envelope.logical_resource_id,
            request_type = envelope.request_type.as_deref().unwrap_or(""),
            resource_type = envelope.resource_type.as_deref().unwrap_or(""),
        );
        self.answer(event, envelope, deadline)
            .instrument(span)
            .await
    }
}

/// The EMF counters of one response sent (whether or not it was delivered:
/// delivery failures have their own signals): the answer by status, the
/// PUT attempts beyond the first and the attempts that timed out, and
/// whether CloudFormation refused it (a 4xx: final, the stack waits).
pub fn answer_metrics(status: CfnStatus, stats: &PutStats, outcome: &PutOutcome) -> Emf {
    let mut emf = Emf::for_function(crate::FUNCTION_NAME);
    // Both status counters, so each alarm sees data points, zero included.
    emf.add("AnswersSuccess", u64::from(status == CfnStatus::Success));
    emf.add("AnswersFailed", u64::from(status == CfnStatus::Failed));
    emf.add("PutRetries", u64::from(stats.retries()));
    emf.add("PutTimeouts", u64::from(stats.timeouts));
    emf.add(
        "PutRejected",
        u64::from(matches!(outcome, PutOutcome::Rejected { .. })),
    );
    emf
}

/// The response as the invocation returns it: NoEcho Data stays out of it.
fn redacted(response: &CfnResponse) -> CfnResponse {
    let mut copy = response.clone();
    if copy.no_echo {
        copy.data.clear();
    }
    copy
}

fn panic_message(join: tokio::task::JoinError) -> String {
    let payload = join.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-text panic payload".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_answer_counts_its_status_retries_and_timeouts() {
        let stats = PutStats {
            attempts: 3,
            timeouts: 1,
        };
        let doc = answer_metrics(CfnStatus::Failed, &stats, &delivered()).to_json(0);
        assert_eq!(doc["AnswersFailed"], 1);
        assert_eq!(doc["AnswersSuccess"], 0);
        assert_eq!(doc["PutRetries"], 2);
        assert_eq!(doc["PutTimeouts"], 1);
        assert_eq!(doc["Function"], "cfn-responder");
        let first_time = PutStats {
            attempts: 1,
            timeouts: 0,
        };
        let doc = answer_metrics(CfnStatus::Success, &first_time, &delivered()).to_json(0);
        assert_eq!(
            (
                &doc["AnswersSuccess"],
                &doc["PutRetries"],
                &doc["PutRejected"]
            ),
            (&1.into(), &0.into(), &0.into())
        );
    }

    fn delivered() -> PutOutcome {
        PutOutcome::Delivered {
            status: 200,
            attempts: 1,
        }
    }

    #[test]
    fn a_response_cloudformation_refuses_counts_as_put_rejected() {
        let once = PutStats {
            attempts: 1,
            timeouts: 0,
        };
        let refused = PutOutcome::Rejected {
            status: 403,
            attempts: 1,
            body: "Request has expired".into(),
        };
        let doc = answer_metrics(CfnStatus::Success, &once, &refused).to_json(0);
        assert_eq!(doc["PutRejected"], 1);
        assert_eq!(
            doc["AnswersSuccess"], 1,
            "an answer sent, whatever came of it"
        );
        let gave_up = PutOutcome::GaveUp {
            attempts: 1,
            last_error: "connection refused".into(),
        };
        let doc = answer_metrics(CfnStatus::Success, &once, &gave_up).to_json(0);
        assert_eq!(doc["PutRejected"], 0, "not delivered is no refusal");
    }
}
