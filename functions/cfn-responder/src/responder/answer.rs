//! Sending the answer: recorded for duplicate deliveries, then PUT to the
//! ResponseURL, and what the invocation returns.

use super::{Answer, PUT_SAFETY, Responder, ResponderError, Summary, answer_metrics, redacted};
use crate::cfn::{
    CfnResponse, Envelope, PutOutcome, PutTransport, fit_response, put_with_retries_counted,
};
use crate::ports::{IdempotencyStore, StoreError};
use hyper::Uri;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{error, info, warn};

impl<S: IdempotencyStore, T: PutTransport> Responder<S, T> {
    pub(super) async fn answer(
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
            self.store_answer(&envelope.request_id, &response, put_deadline)
                .await;
        }
        self.put_answer(&url, &body, &response, put_deadline).await
    }

    /// Records the answer for duplicate deliveries, in half the time left
    /// at most, so a hung table cannot take the PUT's time. The answer still
    /// goes out either way; only a later duplicate loses its record (and is
    /// answered FAILED).
    async fn store_answer(&self, request_id: &str, response: &CfnResponse, put_deadline: Instant) {
        let record_by = Instant::now() + put_deadline.saturating_duration_since(Instant::now()) / 2;
        let recorded =
            tokio::time::timeout_at(record_by, self.store.complete(request_id, response))
                .await
                .unwrap_or(Err(StoreError::TimedOut));
        if let Err(e) = recorded {
            error!(error = %e, "could not record the response for duplicate deliveries");
        }
    }

    /// PUTs the answer and maps the outcome to what the invocation returns.
    async fn put_answer(
        &self,
        url: &Uri,
        body: &[u8],
        response: &CfnResponse,
        put_deadline: Instant,
    ) -> Result<Summary, ResponderError> {
        let (outcome, stats) = put_with_retries_counted(
            &self.transport,
            url,
            body,
            put_deadline,
            &self.settings.retry,
        )
        .await;
        let status = response.status;
        answer_metrics(status, &stats, &outcome).emit();
        let summary = |delivery: String| Summary {
            response: Some(redacted(response)),
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
}
