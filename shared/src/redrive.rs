//! Moves the messages of a Lambda failure queue back to their function: the
//! domain of the `lambda-redrive` operator tool, over two small traits so it
//! is tested without AWS. The SDK adapters live in [`sdk`] (feature `redrive`).
//!
//! Two kinds of queue hold failed asynchronous invocations:
//! - a dead-letter queue (`DeadLetterConfig`): the body is the event itself;
//! - an OnFailure destination: the body is an invocation record
//!   `{version, timestamp, requestContext {requestId, functionArn, condition,
//!   approximateInvokeCount}, requestPayload, responseContext, responsePayload}`,
//!   whose `requestPayload` is the event.
//!
//! A message is deleted only after a synchronous invoke returned without a
//! function error. Messages are received one at a time, each invoked while
//! its hold (longer than an invoke can last) keeps it from other runs. Every
//! other message stays: it is kept invisible for the rest of the run (hidden
//! again if its hold runs out in a long run), so each message is tried at
//! most once per run and the run ends when a receive comes back empty; then
//! it is made visible again at once for the next run.

#[cfg(feature = "redrive")]
pub mod sdk;

use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;

/// A received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub id: String,
    /// The handle of this receipt, for delete and visibility changes.
    pub receipt: String,
    pub body: String,
    /// Lambda's dead-letter attributes (`ErrorCode`, `ErrorMessage`,
    /// `RequestID`), when present.
    pub error_message: Option<String>,
}

/// A failed call to SQS or Lambda itself (not a function error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{service} {operation}: {message}")]
pub struct CallError {
    pub service: &'static str,
    pub operation: &'static str,
    pub message: String,
}

pub trait FailureQueue {
    /// Up to `max` (1-10) messages, each hidden from other receivers until
    /// [`FailureQueue::release`] or the queue's hold time.
    fn receive(&self, max: usize) -> impl Future<Output = Result<Vec<QueueMessage>, CallError>>;
    fn delete(&self, receipt: &str) -> impl Future<Output = Result<(), CallError>>;
    /// Makes the message visible again at once (visibility timeout 0).
    fn release(&self, receipt: &str) -> impl Future<Output = Result<(), CallError>>;
}

/// What a synchronous invoke returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invoked {
    /// The function returned without a function error.
    Succeeded,
    /// `X-Amz-Function-Error` (`Unhandled`, `Handled`): the function ran and failed.
    FunctionError { kind: String, payload: String },
}

pub trait Invoker {
    /// Invokes `function` with `payload` (JSON text), RequestResponse.
    fn invoke(
        &self,
        function: &str,
        payload: &str,
    ) -> impl Future<Output = Result<Invoked, CallError>>;
}

/// Which kind of failure queue a message came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    DeadLetter,
    Destination {
        condition: Option<String>,
        attempts: Option<u64>,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::DeadLetter => f.write_str("dead-letter event"),
            Origin::Destination {
                condition,
                attempts,
            } => {
                f.write_str("destination record")?;
                match (condition, attempts) {
                    (Some(c), Some(n)) => write!(f, " ({c}, {n} attempts)"),
                    (Some(c), None) => write!(f, " ({c})"),
                    (None, Some(n)) => write!(f, " ({n} attempts)"),
                    (None, None) => Ok(()),
                }
            }
        }
    }
}

/// A message this tool cannot send back, named by the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Malformed {
    pub field: &'static str,
    pub reason: String,
}

fn malformed(field: &'static str, reason: impl Into<String>) -> Malformed {
    Malformed {
        field,
        reason: reason.into(),
    }
}

/// The event to send back, as the exact JSON text the queue holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub origin: Origin,
    pub payload: String,
}

/// The fields of an invocation record this tool reads; the payload stays
/// raw so the function gets the event byte for byte.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationRecord<'a> {
    #[serde(borrow)]
    request_payload: Option<&'a RawValue>,
}

/// Finds the event in a message body meant for `function`: the whole body of
/// a dead-letter message, `requestPayload` of a destination record.
///
/// A body is a destination record when it has `requestContext.functionArn`,
/// `requestPayload` or `responseContext` (keys no event of this suite has);
/// a record for another function is refused, so a queue given with the wrong
/// function cannot feed it foreign events.
pub fn extract_event(body: &str, function: &str) -> Result<Extracted, Malformed> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| malformed("body", format!("not JSON ({e})")))?;
    let Some(object) = value.as_object() else {
        return Err(malformed(
            "body",
            format!(
                "a JSON {}, not an object (a Lambda event or a destination record)",
                json_kind(&value)
            ),
        ));
    };
    let context = object.get("requestContext");
    let function_arn = context.and_then(|c| c.get("functionArn"));
    let is_record = function_arn.is_some()
        || object.contains_key("requestPayload")
        || object.contains_key("responseContext");
    if !is_record {
        return Ok(Extracted {
            origin: Origin::DeadLetter,
            payload: body.to_owned(),
        });
    }
    let Some(context) = context.and_then(|c| c.as_object()) else {
        return Err(malformed(
            "requestContext",
            "missing or not an object in a destination record",
        ));
    };
    let Some(arn) = function_arn.and_then(|a| a.as_str()) else {
        return Err(malformed(
            "requestContext.functionArn",
            "missing or not a string in a destination record",
        ));
    };
    if function_name(arn) != function_name(function) {
        return Err(malformed(
            "requestContext.functionArn",
            format!(
                "the record is for function {}, not {}",
                function_name(arn),
                function_name(function)
            ),
        ));
    }
    let origin = Origin::Destination {
        condition: context
            .get("condition")
            .and_then(|c| c.as_str())
            .map(str::to_owned),
        attempts: context
            .get("approximateInvokeCount")
            .and_then(|n| n.as_u64()),
    };
    let record: InvocationRecord = serde_json::from_str(body)
        .map_err(|e| malformed("body", format!("unreadable destination record ({e})")))?;
    match record.request_payload {
        None => Err(malformed(
            "requestPayload",
            "missing from the destination record (the event is not in the message)",
        )),
        Some(raw) if raw.get() == "null" => Err(malformed(
            "requestPayload",
            "null in the destination record (no event to send)",
        )),
        Some(raw) => Ok(Extracted {
            origin,
            payload: raw.get().to_owned(),
        }),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// The bare function name of a name, `name:qualifier`, partial ARN
/// (`123456789012:function:name`) or ARN (`arn:aws:lambda:...:function:name[:qualifier]`).
pub fn function_name(reference: &str) -> &str {
    let after_function = match reference.split_once(":function:") {
        Some((_, rest)) => rest,
        None => reference,
    };
    after_function.split(':').next().unwrap_or(after_function)
}

/// The region in an SQS queue URL (`https://sqs.<region>.amazonaws.com/...`,
/// the legacy `https://<region>.queue.amazonaws.com/...`, or the China
/// partition's `.amazonaws.com.cn`); None for any other host (a local endpoint).
pub fn queue_region(queue_url: &str) -> Option<&str> {
    let rest = queue_url
        .strip_prefix("https://")
        .or_else(|| queue_url.strip_prefix("http://"))?;
    let host = rest.split('/').next()?;
    let host = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let region = match host.strip_prefix("sqs.") {
        Some(region) => region,
        None => host.strip_suffix(".queue")?,
    };
    (!region.is_empty() && !region.contains('.')).then_some(region)
}

/// The region in a function ARN (`arn:<partition>:lambda:<region>:...`).
pub fn function_region(function: &str) -> Option<&str> {
    let mut parts = function.split(':');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("arn"), Some(_), Some("lambda"), Some(region)) if !region.is_empty() => Some(region),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Handle at most this many messages (None: until the queue is empty).
    pub max: Option<usize>,
    /// Receive and check, invoke and delete nothing.
    pub dry_run: bool,
}

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Invoked without a function error, then deleted.
    Redriven,
    /// Dry run: it would be invoked.
    WouldRedrive,
    /// Left in the queue: the function ran and failed.
    FunctionError { kind: String, message: String },
    /// Left in the queue: the invoke call itself failed (throttled, no such
    /// function, denied...), the function may not have run.
    InvokeFailed(CallError),
    /// Left in the queue: the body holds no event this tool can send.
    Malformed(Malformed),
    /// The function succeeded but the message could not be deleted: a
    /// later run sends it again.
    NotDeleted(CallError),
}

impl Outcome {
    pub fn left_in_queue(&self) -> bool {
        !matches!(self, Outcome::Redriven)
    }
}

/// One message's report line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub message_id: String,
    /// None when the body could not be read.
    pub origin: Option<Origin>,
    pub outcome: Outcome,
    /// The error Lambda recorded on a dead-letter message.
    pub earlier_error: Option<String>,
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.outcome {
            Outcome::Redriven => "redriven",
            Outcome::WouldRedrive => "would redrive",
            _ => "left",
        };
        write!(f, "{verdict:<13} {}", self.message_id)?;
        if let Some(origin) = &self.origin {
            write!(f, " {origin}")?;
        }
        match &self.outcome {
            Outcome::Redriven | Outcome::WouldRedrive => {}
            Outcome::FunctionError { kind, message } => {
                write!(f, ": function error {kind}: {message}")?
            }
            Outcome::InvokeFailed(e) => {
                write!(f, ": invoke failed: {}", one_line(&e.to_string(), 300))?
            }
            Outcome::Malformed(m) => write!(f, ": malformed: {m}")?,
            Outcome::NotDeleted(e) => write!(
                f,
                ": the function succeeded but the message was not deleted ({}); a later run sends it again",
                one_line(&e.to_string(), 300)
            )?,
        }
        if let Some(earlier) = &self.earlier_error {
            write!(f, " [dead-letter error: {}]", one_line(earlier, 200))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub received: usize,
    pub redriven: usize,
    pub would_redrive: usize,
    pub function_errors: usize,
    pub invoke_failures: usize,
    pub malformed: usize,
    pub not_deleted: usize,
    /// Messages left that could not be made visible again (they reappear
    /// when the hold time ends).
    pub release_failures: usize,
    /// Why the run stopped before the queue was drained, if it did.
    pub stopped: Option<CallError>,
}

impl Summary {
    pub fn left(&self) -> usize {
        self.received - self.redriven
    }

    /// Messages left that a dry run would not explain: failures.
    pub fn failed(&self) -> usize {
        self.left() - self.would_redrive
    }

    /// Whether everything received was redriven (dry run: could be), all
    /// of it visible again, and the run was not cut short.
    pub fn clean(&self) -> bool {
        self.stopped.is_none() && self.failed() == 0 && self.release_failures == 0
    }

    fn count(&mut self, outcome: &Outcome) {
        self.received += 1;
        match outcome {
            Outcome::Redriven => self.redriven += 1,
            Outcome::WouldRedrive => self.would_redrive += 1,
            Outcome::FunctionError { .. } => self.function_errors += 1,
            Outcome::InvokeFailed(_) => self.invoke_failures += 1,
            Outcome::Malformed(_) => self.malformed += 1,
            Outcome::NotDeleted(_) => self.not_deleted += 1,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} received, {} redriven", self.received, self.redriven)?;
        if self.would_redrive > 0 {
            write!(f, ", {} would be redriven (dry run)", self.would_redrive)?;
        }
        let reasons: Vec<String> = [
            (self.function_errors, "function error"),
            (self.invoke_failures, "invoke failed"),
            (self.malformed, "malformed"),
            (self.not_deleted, "not deleted"),
        ]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, why)| format!("{n} {why}"))
        .collect();
        let failed = self.failed();
        if failed > 0 {
            write!(f, ", {failed} left ({})", reasons.join(", "))?;
        }
        if self.release_failures > 0 {
            write!(
                f,
                "; {} left invisible until the hold time ends",
                self.release_failures
            )?;
        }
        if let Some(e) = &self.stopped {
            write!(f, "; stopped early: {e}")?;
        }
        Ok(())
    }
}

/// Redrives `queue` into `function`, calling `report` with each message's
/// line as it is handled.
pub async fn redrive(
    queue: &impl FailureQueue,
    invoker: &impl Invoker,
    function: &str,
    options: Options,
    mut report: impl FnMut(&Line),
) -> Summary {
    let mut summary = Summary::default();
    // Message id -> latest receipt of every message left, released at the end.
    let mut held: HashMap<String, String> = HashMap::new();
    // Handled this run: a message seen again (its hold ran out, or SQS
    // delivered it twice) is never invoked twice in one run.
    let mut handled: HashSet<String> = HashSet::new();
    let mut succeeded_undeleted: HashSet<String> = HashSet::new();
    let max = options.max.unwrap_or(usize::MAX);
    while summary.received < max {
        // One message per receive, handled at once: its hold (longer than
        // an invoke can last) covers its whole invoke. The tail of a batch
        // would wait behind the invokes before it and could reappear to a
        // second run while still to be invoked here.
        let batch = match queue.receive(1).await {
            Ok(batch) => batch,
            Err(e) => {
                summary.stopped = Some(e);
                break;
            }
        };
        // Only an empty receive means the queue is read through: one that
        // brings back only messages left earlier in this run (their hold
        // ran out in a long run) does not, as others may not be read yet.
        if batch.is_empty() {
            break;
        }
        for message in batch {
            if handled.contains(&message.id) {
                // Already invoked successfully: try the delete again.
                if succeeded_undeleted.contains(&message.id)
                    && queue.delete(&message.receipt).await.is_ok()
                {
                    succeeded_undeleted.remove(&message.id);
                    held.remove(&message.id);
                    summary.not_deleted -= 1;
                    summary.redriven += 1;
                    continue;
                }
                // Hidden again under this receipt, released with it at the end.
                held.insert(message.id, message.receipt);
                continue;
            }
            if summary.received >= max {
                // More than asked for: hand it straight back.
                held.insert(message.id, message.receipt);
                continue;
            }
            handled.insert(message.id.clone());
            let line = handle(queue, invoker, function, options, &message).await;
            summary.count(&line.outcome);
            if line.outcome.left_in_queue() {
                if matches!(line.outcome, Outcome::NotDeleted(_)) {
                    succeeded_undeleted.insert(message.id.clone());
                }
                held.insert(message.id, message.receipt);
            }
            report(&line);
        }
    }
    for receipt in held.values() {
        if queue.release(receipt).await.is_err() {
            summary.release_failures += 1;
        }
    }
    summary
}

async fn handle(
    queue: &impl FailureQueue,
    invoker: &impl Invoker,
    function: &str,
    options: Options,
    message: &QueueMessage,
) -> Line {
    let line = |origin: Option<Origin>, outcome: Outcome| Line {
        message_id: message.id.clone(),
        origin,
        outcome,
        earlier_error: message.error_message.clone(),
    };
    let event = match extract_event(&message.body, function) {
        Ok(event) => event,
        Err(m) => return line(None, Outcome::Malformed(m)),
    };
    let origin = Some(event.origin);
    if options.dry_run {
        return line(origin, Outcome::WouldRedrive);
    }
    match invoker.invoke(function, &event.payload).await {
        Ok(Invoked::Succeeded) => match queue.delete(&message.receipt).await {
            Ok(()) => line(origin, Outcome::Redriven),
            Err(e) => line(origin, Outcome::NotDeleted(e)),
        },
        Ok(Invoked::FunctionError { kind, payload }) => line(
            origin,
            Outcome::FunctionError {
                kind,
                message: error_message(&payload),
            },
        ),
        Err(e) => line(origin, Outcome::InvokeFailed(e)),
    }
}

/// The `errorMessage` of a function error payload, else the payload, on one line.
fn error_message(payload: &str) -> String {
    let text = serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| {
            let kind = v.get("errorType").and_then(|t| t.as_str()).unwrap_or("");
            v.get("errorMessage")
                .and_then(|m| m.as_str())
                .map(|m| match kind {
                    "" => m.to_owned(),
                    kind => format!("{kind}: {m}"),
                })
        })
        .unwrap_or_else(|| payload.to_owned());
    one_line(&text, 300)
}

fn one_line(text: &str, max_chars: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match flat.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}...", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    const SNS_EVENT: &str = r#"{"Records":[{"EventSource":"aws:sns","Sns":{"Message":"{\"notificationType\":\"Bounce\"}"}}]}"#;

    fn record(function_arn: &str, payload: Option<&str>) -> String {
        let payload = payload.map_or(String::new(), |p| format!(r#""requestPayload":{p},"#));
        format!(
            r#"{{"version":"1.0","timestamp":"2026-11-30T10:00:00.000Z","requestContext":{{"requestId":"r-1","functionArn":"{function_arn}","condition":"RetriesExhausted","approximateInvokeCount":3}},{payload}"responseContext":{{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"}},"responsePayload":{{"errorMessage":"boom"}}}}"#
        )
    }

    const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:transcode:$LATEST";

    #[test]
    fn a_dead_letter_body_is_the_event_byte_for_byte() {
        let got = extract_event(SNS_EVENT, "ses").unwrap();
        assert_eq!(got.origin, Origin::DeadLetter);
        assert_eq!(got.payload, SNS_EVENT);
    }

    #[test]
    fn a_destination_record_gives_its_request_payload_raw() {
        let payload = r#"{"Records":[{"s3":{"object":{"key":"in/a%20b.mp4","size":10.50}}}]}"#;
        let got = extract_event(&record(ARN, Some(payload)), "transcode").unwrap();
        assert_eq!(got.payload, payload);
        assert_eq!(
            got.origin,
            Origin::Destination {
                condition: Some("RetriesExhausted".into()),
                attempts: Some(3)
            }
        );
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let cases = [
            ("not json".to_owned(), "transcode", "body"),
            ("[1,2]".to_owned(), "transcode", "body"),
            (record(ARN, None), "transcode", "requestPayload"),
            (record(ARN, Some("null")), "transcode", "requestPayload"),
            (
                r#"{"requestPayload":{"a":1}}"#.to_owned(),
                "transcode",
                "requestContext",
            ),
            (
                r#"{"requestContext":{"functionArn":7},"requestPayload":{}}"#.to_owned(),
                "transcode",
                "requestContext.functionArn",
            ),
            (
                record(ARN, Some("{}")),
                "ses-bounce-handler",
                "requestContext.functionArn",
            ),
        ];
        for (body, function, field) in cases {
            let err = extract_event(&body, function).unwrap_err();
            assert_eq!(err.field, field, "{body}: {err}");
        }
    }

    #[test]
    fn function_names_compare_across_reference_forms() {
        for reference in [
            "transcode",
            "transcode:live",
            "123456789012:function:transcode",
            "arn:aws:lambda:us-east-1:123456789012:function:transcode",
            ARN,
        ] {
            assert_eq!(function_name(reference), "transcode", "{reference}");
        }
    }

    #[test]
    fn regions_come_from_the_queue_url_and_the_function_arn() {
        for (url, region) in [
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/dlq",
                Some("eu-west-1"),
            ),
            (
                "https://us-east-2.queue.amazonaws.com/123456789012/dlq",
                Some("us-east-2"),
            ),
            (
                "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/dlq",
                Some("cn-north-1"),
            ),
            ("http://127.0.0.1:5000/123456789012/dlq", None),
            ("https://sqs.amazonaws.com/123456789012/dlq", None),
            ("not a url", None),
        ] {
            assert_eq!(queue_region(url), region, "{url}");
        }
        assert_eq!(function_region(ARN), Some("us-east-1"));
        assert_eq!(function_region("transcode"), None);
        assert_eq!(function_region("123456789012:function:transcode"), None);
    }

    /// How long the fake hides a received message (the SDK adapter's hold).
    const FAKE_HOLD: u64 = 1200;

    /// An in-memory queue with SQS's visibility rules on a fake clock (in
    /// seconds): a received message is hidden until released or until
    /// [`FAKE_HOLD`] has passed; a delete with an older receipt than the
    /// latest succeeds and deletes nothing, as SQS documents.
    #[derive(Default)]
    struct FakeQueue {
        /// Each message with the time it is visible again.
        messages: RefCell<Vec<(QueueMessage, u64)>>,
        receipts: RefCell<u32>,
        fail_deletes: bool,
        now: std::cell::Cell<u64>,
    }

    impl FakeQueue {
        fn with(bodies: &[&str]) -> Self {
            let queue = Self::default();
            for (i, body) in bodies.iter().enumerate() {
                queue.messages.borrow_mut().push((
                    QueueMessage {
                        id: format!("m{i}"),
                        receipt: String::new(),
                        body: body.to_string(),
                        error_message: None,
                    },
                    0,
                ));
            }
            queue
        }

        fn visible_bodies(&self) -> Vec<String> {
            let messages = self.messages.borrow();
            messages
                .iter()
                .filter(|(_, visible_at)| *visible_at <= self.now.get())
                .map(|(m, _)| m.body.clone())
                .collect()
        }

        /// Whether the message with `body` is visible to other receivers
        /// at some time before `until`.
        fn exposed_before(&self, body: &str, until: u64) -> bool {
            let messages = self.messages.borrow();
            messages
                .iter()
                .any(|(m, visible_at)| m.body == body && *visible_at < until)
        }
    }

    impl FailureQueue for FakeQueue {
        async fn receive(&self, max: usize) -> Result<Vec<QueueMessage>, CallError> {
            let now = self.now.get();
            let mut out = Vec::new();
            for (message, visible_at) in self.messages.borrow_mut().iter_mut() {
                if *visible_at <= now && out.len() < max {
                    *self.receipts.borrow_mut() += 1;
                    message.receipt = format!("{}#{}", message.id, self.receipts.borrow());
                    *visible_at = now + FAKE_HOLD;
                    out.push(message.clone());
                }
            }
            Ok(out)
        }

        async fn delete(&self, receipt: &str) -> Result<(), CallError> {
            if self.fail_deletes {
                return Err(CallError {
                    service: "SQS",
                    operation: "DeleteMessage",
                    message: "denied".into(),
                });
            }
            self.messages
                .borrow_mut()
                .retain(|(m, _)| m.receipt != receipt);
            Ok(())
        }

        async fn release(&self, receipt: &str) -> Result<(), CallError> {
            let now = self.now.get();
            for (message, visible_at) in self.messages.borrow_mut().iter_mut() {
                if message.receipt == receipt {
                    *visible_at = now;
                }
            }
            Ok(())
        }
    }

    /// A function that runs `seconds` of the queue's clock per invoke, and
    /// notes each payload whose message another receiver could have taken
    /// while it ran; fails payloads containing "poison".
    struct SlowFunction<'a> {
        queue: &'a FakeQueue,
        seconds: u64,
        invoked: RefCell<Vec<String>>,
        exposed: RefCell<Vec<String>>,
    }

    impl<'a> SlowFunction<'a> {
        fn new(queue: &'a FakeQueue, seconds: u64) -> Self {
            Self {
                queue,
                seconds,
                invoked: RefCell::default(),
                exposed: RefCell::default(),
            }
        }
    }

    impl Invoker for SlowFunction<'_> {
        async fn invoke(&self, _function: &str, payload: &str) -> Result<Invoked, CallError> {
            let end = self.queue.now.get() + self.seconds;
            if self.queue.exposed_before(payload, end) {
                self.exposed.borrow_mut().push(payload.to_owned());
            }
            self.queue.now.set(end);
            self.invoked.borrow_mut().push(payload.to_owned());
            Ok(if payload.contains("poison") {
                Invoked::FunctionError {
                    kind: "Unhandled".into(),
                    payload: "{}".into(),
                }
            } else {
                Invoked::Succeeded
            })
        }
    }

    /// Records payloads; fails those containing "poison".
    #[derive(Default)]
    struct FakeFunction {
        invoked: RefCell<Vec<String>>,
    }

    impl Invoker for FakeFunction {
        async fn invoke(&self, _function: &str, payload: &str) -> Result<Invoked, CallError> {
            self.invoked.borrow_mut().push(payload.to_owned());
            if payload.contains("poison") {
                return Ok(Invoked::FunctionError {
                    kind: "Unhandled".into(),
                    payload: r#"{"errorType":"Poison","errorMessage":"cannot\nhandle"}"#.into(),
                });
            }
            Ok(Invoked::Succeeded)
        }
    }

    async fn run(
        queue: &FakeQueue,
        function: &FakeFunction,
        options: Options,
    ) -> (Summary, Vec<String>) {
        let mut lines = Vec::new();
        let summary = redrive(queue, function, "transcode", options, |l| {
            lines.push(l.to_string())
        })
        .await;
        (summary, lines)
    }

    #[tokio::test]
    async fn one_poison_message_stays_and_the_others_go_and_a_second_run_is_a_fixed_point() {
        let good = record(ARN, Some(r#"{"n":1}"#));
        let queue = FakeQueue::with(&[r#"{"n":0}"#, r#"{"poison":true}"#, &good, "garbage"]);
        let function = FakeFunction::default();
        let (summary, lines) = run(&queue, &function, Options::default()).await;
        assert_eq!(summary.redriven, 2, "{summary}");
        assert_eq!((summary.function_errors, summary.malformed), (1, 1));
        assert!(!summary.clean());
        assert_eq!(lines.len(), 4);
        assert!(
            lines.iter().any(|l| l.starts_with("left")
                && l.contains("function error Unhandled: Poison: cannot handle")),
            "{lines:?}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.contains("malformed: body: not JSON")),
            "{lines:?}"
        );
        assert_eq!(queue.visible_bodies(), [r#"{"poison":true}"#, "garbage"]);
        assert_eq!(
            *function.invoked.borrow(),
            [r#"{"n":0}"#, r#"{"poison":true}"#, r#"{"n":1}"#]
        );

        // Again: only the poison message is tried again, nothing redriven twice.
        let (again, _) = run(&queue, &function, Options::default()).await;
        assert_eq!((again.received, again.redriven), (2, 0));
        assert_eq!(function.invoked.borrow().len(), 4);
        assert_eq!(queue.visible_bodies().len(), 2);
    }

    #[tokio::test]
    async fn a_run_over_more_than_a_batch_tries_each_message_once_and_ends() {
        let bodies: Vec<String> = (0..25).map(|i| format!(r#"{{"poison":{i}}}"#)).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let queue = FakeQueue::with(&refs);
        let function = FakeFunction::default();
        let (summary, _) = run(&queue, &function, Options::default()).await;
        assert_eq!((summary.received, summary.function_errors), (25, 25));
        assert_eq!(function.invoked.borrow().len(), 25);
        assert_eq!(queue.visible_bodies().len(), 25, "all visible again");
    }

    #[tokio::test]
    async fn dry_run_and_max_touch_nothing_beyond_their_word() {
        let queue = FakeQueue::with(&[r#"{"a":1}"#, r#"{"a":2}"#, r#"{"a":3}"#]);
        let function = FakeFunction::default();
        let (summary, lines) = run(
            &queue,
            &function,
            Options {
                max: None,
                dry_run: true,
            },
        )
        .await;
        assert_eq!((summary.would_redrive, summary.redriven), (3, 0));
        assert!(summary.clean(), "{summary}");
        assert!(
            lines.iter().all(|l| l.starts_with("would redrive")),
            "{lines:?}"
        );
        assert!(function.invoked.borrow().is_empty());
        assert_eq!(queue.visible_bodies().len(), 3);

        let (summary, _) = run(
            &queue,
            &function,
            Options {
                max: Some(2),
                dry_run: false,
            },
        )
        .await;
        assert_eq!((summary.received, summary.redriven), (2, 2));
        assert_eq!(queue.visible_bodies(), [r#"{"a":3}"#]);
    }

    #[tokio::test]
    async fn a_failed_delete_is_reported_and_never_invoked_twice_in_a_run() {
        let queue = FakeQueue {
            fail_deletes: true,
            ..FakeQueue::with(&[r#"{"a":1}"#])
        };
        let function = FakeFunction::default();
        let (summary, lines) = run(&queue, &function, Options::default()).await;
        assert_eq!(summary.not_deleted, 1, "{summary}");
        assert!(lines[0].contains("was not deleted"), "{lines:?}");
        assert_eq!(function.invoked.borrow().len(), 1);
        assert_eq!(queue.visible_bodies().len(), 1);
    }

    #[tokio::test]
    async fn each_message_stays_hidden_for_its_whole_invoke_when_invokes_are_slow() {
        // Invokes of 500 s: a batch received at once would outlive its hold.
        let bodies: Vec<String> = (0..12).map(|i| format!(r#"{{"n":{i}}}"#)).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let queue = FakeQueue::with(&refs);
        let function = SlowFunction::new(&queue, 500);
        let summary = redrive(&queue, &function, "transcode", Options::default(), |_| {}).await;
        assert_eq!(
            *function.exposed.borrow(),
            Vec::<String>::new(),
            "visible to a second run while invoked"
        );
        assert_eq!((summary.received, summary.redriven), (12, 12), "{summary}");
        assert!(queue.messages.borrow().is_empty(), "all deleted");
    }

    #[tokio::test]
    async fn a_long_run_tries_every_message_once_though_held_ones_reappear() {
        // Failures of 200 s each: the first ones left reappear long before
        // the queue has been read through.
        let bodies: Vec<String> = (0..25).map(|i| format!(r#"{{"poison":{i}}}"#)).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let queue = FakeQueue::with(&refs);
        let function = SlowFunction::new(&queue, 200);
        let summary = redrive(&queue, &function, "transcode", Options::default(), |_| {}).await;
        assert_eq!(
            (summary.received, summary.function_errors),
            (25, 25),
            "{summary}"
        );
        let mut invoked = function.invoked.borrow().clone();
        invoked.sort();
        invoked.dedup();
        assert_eq!(invoked.len(), 25, "every message tried");
        assert_eq!(function.invoked.borrow().len(), 25, "none twice");
        assert_eq!(queue.visible_bodies().len(), 25, "all visible again");
    }
}
