//! What to answer one request: a refusal, the answer of an earlier delivery,
//! or the resource type's own outcome.

use super::{Answer, Responder, panic_message};
use crate::cfn::{CfnResponse, CfnStatus, Envelope, PutTransport, physical_id};
use crate::ports::{Claim, IdempotencyStore, StoreError};
use crate::resource::{Action, Done, DynResource, RequestContext};
use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest as Request;
use serde_json::Value;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::time::Instant;
use tracing::{Instrument, info, warn};

/// Builds the answers to one request from its envelope.
struct Reply<'a> {
    envelope: &'a Envelope,
}

impl Reply<'_> {
    fn send(
        &self,
        status: CfnStatus,
        reason: Option<String>,
        physical_id: String,
        done: Option<Done>,
    ) -> Answer {
        let (data, no_echo) = done
            .map(|d| (d.outcome.data, d.outcome.no_echo))
            .unwrap_or_default();
        let envelope = self.envelope;
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
    }

    fn failed_id(&self) -> String {
        let envelope = self.envelope;
        envelope.physical_resource_id.clone().unwrap_or_else(|| {
            physical_id::for_failed_create(
                &envelope.stack_id,
                &envelope.logical_resource_id,
                &envelope.request_id,
            )
        })
    }

    fn fail(&self, reason: String) -> Answer {
        warn!(reason = %reason, "answering FAILED");
        self.send(CfnStatus::Failed, Some(reason), self.failed_id(), None)
    }
}

impl<S: IdempotencyStore, T: PutTransport> Responder<S, T> {
    pub(super) async fn decide(
        &self,
        event: Value,
        envelope: &Envelope,
        deadline: Instant,
    ) -> Answer {
        let reply = Reply { envelope };
        let request: Request = match serde_json::from_value(event) {
            Ok(request) => request,
            Err(e) => return reply.fail(format!("invalid CloudFormation request: {e}")),
        };
        let (ctx, action) = match to_action(request) {
            Ok(found) => found,
            Err(e) => return reply.fail(e.to_string()),
        };

        // Safe whatever state the function is in: nothing is touched.
        if let Action::Delete { .. } = action
            && !physical_id::is_issued(
                &ctx.physical_resource_id,
                &ctx.stack_id,
                &ctx.logical_resource_id,
            )
        {
            return delete_of_unissued(&reply, ctx);
        }
        if let Some(init_error) = &self.init_error {
            return reply.fail(format!("the function failed to initialise: {init_error}"));
        }
        let Some(resource) = self.registry.get(&ctx.resource_type) else {
            return reply.fail(format!(
                "unsupported ResourceType {:?}; this function handles {}",
                ctx.resource_type,
                self.registry.names().join(", ")
            ));
        };

        let margin = self.settings.timeout_margin;
        let work_deadline = deadline.checked_sub(margin).unwrap_or_else(Instant::now);
        let claimed = !resource.idempotent();
        if claimed
            && let Some(answer) = self
                .claim_or_replay(&reply, &ctx, deadline, work_deadline)
                .await
        {
            return answer;
        }
        match self
            .run_resource(&reply, resource, action, ctx, work_deadline)
            .await
        {
            Answer::Send { response, .. } => Answer::Send { response, claimed },
            other => other,
        }
    }

    /// Claims the request for this delivery; `Some` is the answer when an
    /// earlier delivery got there first (or the claim cannot be checked).
    async fn claim_or_replay(
        &self,
        reply: &Reply<'_>,
        ctx: &RequestContext,
        deadline: Instant,
        work_deadline: Instant,
    ) -> Option<Answer> {
        let until = SystemTime::now() + deadline.saturating_duration_since(Instant::now());
        // A hung table fails the request in time to answer it (the
        // claim's outcome unknown, the work is not run blind).
        let claim =
            tokio::time::timeout_at(work_deadline, self.store.claim(&ctx.request_id, until))
                .await
                .unwrap_or(Err(StoreError::TimedOut));
        match claim {
            Ok(Claim::Fresh) => None,
            Ok(Claim::InProgress) => Some(Answer::LeaveToRunning),
            Ok(Claim::Completed(response)) => {
                info!("duplicate delivery of a completed request: re-sending its response");
                Some(Answer::Send {
                    response: *response,
                    claimed: false,
                })
            }
            Ok(Claim::Abandoned) => Some(
                reply.fail(
                    "an earlier delivery of this request stopped before answering; not repeating \
                 side effects that may be partial"
                        .into(),
                ),
            ),
            Err(e) => Some(reply.fail(format!("cannot check for a duplicate delivery: {e}"))),
        }
    }

    /// Runs the resource type's handler until `work_deadline`.
    async fn run_resource(
        &self,
        reply: &Reply<'_>,
        resource: Arc<dyn DynResource>,
        action: Action,
        ctx: RequestContext,
        work_deadline: Instant,
    ) -> Answer {
        // A task of its own (a panic is contained), logging under this
        // request's and invocation's ids.
        let task = tokio::spawn(resource.run(action, ctx.clone()).in_current_span());
        let abort = task.abort_handle();
        match tokio::time::timeout_at(work_deadline, task).await {
            Ok(Ok(Ok(done))) => {
                let id = done.physical_resource_id.clone();
                reply.send(CfnStatus::Success, None, id, Some(done))
            }
            Ok(Ok(Err(e))) => reply.fail(e.to_string()),
            Ok(Err(join)) if join.is_panic() => reply.fail(format!(
                "the {} handler panicked: {}",
                ctx.resource_type,
                panic_message(join)
            )),
            Ok(Err(join)) => reply.fail(format!(
                "the {} handler was cancelled: {join}",
                ctx.resource_type
            )),
            Err(_) => {
                abort.abort();
                reply.fail(format!(
                    "timed out: the {} handler was still running {} ms before the Lambda deadline",
                    ctx.resource_type,
                    self.settings.timeout_margin.as_millis()
                ))
            }
        }
    }
}

/// A Delete of an id this function never issued (a failed or rolled-back
/// Create): there is nothing to delete.
fn delete_of_unissued(reply: &Reply<'_>, ctx: RequestContext) -> Answer {
    info!(physical_resource_id = %ctx.physical_resource_id, "Delete of an id this function never issued: nothing to do");
    reply.send(
        CfnStatus::Success,
        Some(
            "Nothing to delete: this physical id was never issued (failed or rolled-back Create)"
                .into(),
        ),
        ctx.physical_resource_id,
        None,
    )
}

/// The fields the three request shapes share.
fn context(
    stack_id: String,
    logical_resource_id: String,
    request_id: String,
    resource_type: String,
    physical_resource_id: String,
) -> RequestContext {
    RequestContext {
        stack_id,
        logical_resource_id,
        request_id,
        resource_type,
        physical_resource_id,
    }
}

/// Why a well-formed request cannot be acted on; the text is its FAILED
/// Reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Unactionable {
    #[error("unsupported RequestType: expected Create, Update or Delete")]
    RequestType,
    #[error("PhysicalResourceId is empty")]
    NoPhysicalId,
}

fn to_action(request: Request) -> Result<(RequestContext, Action), Unactionable> {
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
            let props = r.resource_properties;
            (ctx, Action::Create { props })
        }
        Request::Update(r) => {
            let ctx = context(
                r.stack_id,
                r.logical_resource_id,
                r.request_id,
                r.resource_type,
                r.physical_resource_id,
            );
            let (old, new) = (r.old_resource_properties, r.resource_properties);
            (ctx, Action::Update { old, new })
        }
        Request::Delete(r) => {
            let ctx = context(
                r.stack_id,
                r.logical_resource_id,
                r.request_id,
                r.resource_type,
                r.physical_resource_id,
            );
            let props = r.resource_properties;
            (ctx, Action::Delete { props })
        }
        _ => return Err(Unactionable::RequestType),
    };
    if ctx.physical_resource_id.is_empty() {
        return Err(Unactionable::NoPhysicalId);
    }
    Ok((ctx, action))
}

#[cfg(test)]
mod tests {
    use super::Unactionable;

    #[test]
    fn unactionable_requests_keep_their_reasons() {
        assert_eq!(
            Unactionable::RequestType.to_string(),
            "unsupported RequestType: expected Create, Update or Delete"
        );
        assert_eq!(
            Unactionable::NoPhysicalId.to_string(),
            "PhysicalResourceId is empty"
        );
    }
}
