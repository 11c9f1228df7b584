//! Answers every CloudFormation request exactly once, whatever the resource
//! type does: errors, panics and timeouts all become FAILED responses.

use crate::cfn::{
    CfnResponse, CfnStatus, Envelope, EnvelopeError, PutOutcome, PutStats, PutTransport,
    ResponseUrlError, ResponseUrlPolicy, RetryPolicy, fit_response, physical_id,
    put_with_retries_counted,
};
use crate::idempotency::{Claim, IdempotencyStore};
use crate::resource::{Action, Done, Registry, RequestContext};
use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest as Request;
use serde::Serialize;
use serde_json::Value;
use shared::metrics::Emf;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use tracing::{Instrument, error, error_span, info, warn};

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

    async fn answer(
        &self,
        event: Value,
        envelope: Envelope,
        deadline: Instant,
    ) -> Result<Summary, ResponderError> {
        let remaining_ms = deadline
            .saturating_duration_since(Instant::now())
            .as_millis() as u64;
        info!(remaining_ms, "request received");
        let url = self.settings.url_policy.validate(&envelope.response_url).inspect_err(|e| {
            error!(error = %e, "not answering: the ResponseURL is not one CloudFormation would send");
        })?;
        let (response, claimed) = match self.decide(event, &envelope, deadline).await {
            Answer::Send { response, claimed } => (response, claimed),
            Answer::LeaveToRunning => {
                info!("duplicate delivery while the first is still running: it will answer");
                return Ok(Summary {
                    response: None,
                    delivery: "left to the delivery already running".into(),
                });
            }
        };
        let is_delete = envelope.request_type.as_deref() == Some("Delete");
        let (body, response, fit) = fit_response(&response, !is_delete);
        if fit.reason_truncated || fit.data_dropped {
            warn!(
                ?fit,
                bytes = body.len(),
                "response shrunk to CloudFormation's 4096-byte limit"
            );
        }
        let put_deadline = deadline.checked_sub(PUT_SAFETY).unwrap_or(deadline);
        if claimed {
            // Half the time left at most, so a hung table cannot take the
            // PUT's time. The answer still goes out either way; only a later
            // duplicate loses its record (and is answered FAILED).
            let record_by =
                Instant::now() + put_deadline.saturating_duration_since(Instant::now()) / 2;
            let recorded = tokio::time::timeout_at(
                record_by,
                self.store.complete(&envelope.request_id, &response),
            )
            .await
            .unwrap_or_else(|_| Err("the idempotency table did not answer in time".into()));
            if let Err(e) = recorded {
                error!(error = %e, "could not record the response for duplicate deliveries");
            }
        }
        let (outcome, stats) = put_with_retries_counted(
            &self.transport,
            &url,
            &body,
            put_deadline,
            &self.settings.retry,
        )
        .await;
        let status = response.status;
        answer_metrics(status, &stats, &outcome).emit();
        let summary = |delivery: String| Summary {
            response: Some(redacted(&response)),
            delivery,
        };
        match outcome {
            PutOutcome::Delivered {
                status: http,
                attempts,
            } => {
                info!(?status, physical_resource_id = %response.physical_resource_id, http, attempts, "response delivered");
                Ok(summary(format!(
                    "delivered (HTTP {http}) after {attempts} attempt(s)"
                )))
            }
            PutOutcome::Rejected {
                status: http,
                attempts,
                body,
            } => {
                // Final: retrying the invocation cannot fix a refused URL.
                error!(?status, http, attempts, reply = %body, "CloudFormation's ResponseURL refused the response");
                Ok(summary(format!("refused with HTTP {http}: {body}")))
            }
            PutOutcome::GaveUp {
                attempts,
                last_error,
            } => {
                error!(?status, attempts, error = %last_error, "response not delivered");
                // Failing the invocation lets Lambda's async retry deliver it
                // later; a claimed request then re-sends the stored answer.
                Err(ResponderError::NotDelivered {
                    attempts,
                    last_error,
                })
            }
        }
    }

    async fn decide(&self, event: Value, envelope: &Envelope, deadline: Instant) -> Answer {
        let reply = |status, reason: Option<String>, physical_id: String, done: Option<Done>| {
            let (data, no_echo) = done
                .map(|d| (d.outcome.data, d.outcome.no_echo))
                .unwrap_or_default();
            Answer::Send {
                response: CfnResponse {
                    status,
                    reason,
                    physical_resource_id: physical_id,
                    stack_id: envelope.stack_id.clone(),
                    request_id: envelope.request_id.clone(),
                    logical_resource_id: envelope.logical_resource_id.clone(),
                    no_echo,
                    data,
                },
                claimed: false,
            }
        };
        let failed_id = || {
            envelope.physical_resource_id.clone().unwrap_or_else(|| {
                physical_id::for_failed_create(
                    &envelope.stack_id,
                    &envelope.logical_resource_id,
                    &envelope.request_id,
                )
            })
        };
        let fail = |reason: String| {
            warn!(reason = %reason, "answering FAILED");
            reply(CfnStatus::Failed, Some(reason), failed_id(), None)
        };

        let request: Request = match serde_json::from_value(event) {
            Ok(request) => request,
            Err(e) => return fail(format!("invalid CloudFormation request: {e}")),
        };
        let (ctx, action) = match to_action(request) {
            Ok(found) => found,
            Err(reason) => return fail(reason),
        };

        // Safe whatever state the function is in: nothing is touched.
        if let Action::Delete { .. } = action
            && !physical_id::is_issued(
                &ctx.physical_resource_id,
                &ctx.stack_id,
                &ctx.logical_resource_id,
            )
        {
            info!(physical_resource_id = %ctx.physical_resource_id, "Delete of an id this function never issued: nothing to do");
            return reply(
                CfnStatus::Success,
                Some("Nothing to delete: this physical id was never issued (failed or rolled-back Create)".into()),
                ctx.physical_resource_id,
                None,
            );
        }
        if let Some(init_error) = &self.init_error {
            return fail(format!("the function failed to initialise: {init_error}"));
        }
        let Some(resource) = self.registry.get(&ctx.resource_type) else {
            return fail(format!(
                "unsupported ResourceType {:?}; this function handles {}",
                ctx.resource_type,
                self.registry.names().join(", ")
            ));
        };

        let margin = self.settings.timeout_margin;
        let work_deadline = deadline.checked_sub(margin).unwrap_or_else(Instant::now);
        let claimed = !resource.idempotent();
        if claimed {
            let until = SystemTime::now() + deadline.saturating_duration_since(Instant::now());
            // A hung table fails the request in time to answer it (the
            // claim's outcome unknown, the work is not run blind).
            let claim =
                tokio::time::timeout_at(work_deadline, self.store.claim(&ctx.request_id, until))
                    .await
                    .unwrap_or_else(|_| Err("the idempotency table did not answer in time".into()));
            match claim {
                Ok(Claim::Fresh) => {}
                Ok(Claim::InProgress) => return Answer::LeaveToRunning,
                Ok(Claim::Completed(response)) => {
                    info!("duplicate delivery of a completed request: re-sending its response");
                    return Answer::Send {
                        response: *response,
                        claimed: false,
                    };
                }
                Ok(Claim::Abandoned) => {
                    return fail(
                        "an earlier delivery of this request stopped before answering; not repeating \
                         side effects that may be partial"
                            .into(),
                    );
                }
                Err(e) => return fail(format!("cannot check for a duplicate delivery: {e}")),
            }
        }

        // A task of its own (a panic is contained), logging under this
        // request's and invocation's ids.
        let task = tokio::spawn(resource.run(action, ctx.clone()).in_current_span());
        let abort = task.abort_handle();
        let answer = match tokio::time::timeout_at(work_deadline, task).await {
            Ok(Ok(Ok(done))) => {
                let id = done.physical_resource_id.clone();
                reply(CfnStatus::Success, None, id, Some(done))
            }
            Ok(Ok(Err(e))) => fail(e.to_string()),
            Ok(Err(join)) if join.is_panic() => fail(format!(
                "the {} handler panicked: {}",
                ctx.resource_type,
                panic_message(join)
            )),
            Ok(Err(join)) => fail(format!(
                "the {} handler was cancelled: {join}",
                ctx.resource_type
            )),
            Err(_) => {
                abort.abort();
                fail(format!(
                    "timed out: the {} handler was still running {} ms before the Lambda deadline",
                    ctx.resource_type,
                    margin.as_millis()
                ))
            }
        };
        match answer {
            Answer::Send { response, .. } => Answer::Send { response, claimed },
            other => other,
        }
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

fn to_action(request: Request) -> Result<(RequestContext, Action), String> {
    // The three request shapes share these fields.
    let context =
        |stack_id, logical_resource_id, request_id, resource_type, physical_resource_id| {
            RequestContext {
                stack_id,
                logical_resource_id,
                request_id,
                resource_type,
                physical_resource_id,
            }
        };
    let (ctx, action) = match request {
        Request::Create(r) => {
            let id = physical_id::issue(&r.stack_id, &r.logical_resource_id, &r.request_id);
            let ctx = context(
                r.stack_id,
                r.logical_resource_id,
                r.request_id,
                r.resource_type,
                id,
            );
            (
                ctx,
                Action::Create {
                    props: r.resource_properties,
                },
            )
        }
        Request::Update(r) => {
            let ctx = context(
                r.stack_id,
                r.logical_resource_id,
                r.request_id,
                r.resource_type,
                r.physical_resource_id,
            );
            (
                ctx,
                Action::Update {
                    old: r.old_resource_properties,
                    new: r.resource_properties,
                },
            )
        }
        Request::Delete(r) => {
            let ctx = context(
                r.stack_id,
                r.logical_resource_id,
                r.request_id,
                r.resource_type,
                r.physical_resource_id,
            );
            (
                ctx,
                Action::Delete {
                    props: r.resource_properties,
                },
            )
        }
        _ => return Err("unsupported RequestType: expected Create, Update or Delete".into()),
    };
    if ctx.physical_resource_id.is_empty() {
        return Err("PhysicalResourceId is empty".into());
    }
    Ok((ctx, action))
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
