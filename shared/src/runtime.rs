//! Runtime API details: a function's start-up ([`start`]), the invocation
//! deadline, reporting an init failure, and what each invocation adds to
//! logs and metrics.
//!
//! lambda_runtime has no public call for `/runtime/init/error`; without it a
//! bad configuration only shows as "Runtime exited with error".

use crate::aws::SdkConfig;
use crate::config::EnvReader;
use crate::metrics::Emf;
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Deserializer};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tracing::Instrument;
use tracing::instrument::Instrumented;

/// The invocations of one execution environment: the first is the cold start.
pub struct Invocations {
    function: String,
    started: AtomicBool,
}

impl Invocations {
    pub fn new(function: &str) -> Self {
        Self {
            function: function.to_owned(),
            started: AtomicBool::new(false),
        }
    }

    /// The span an invocation's logs are recorded in (Powertools' keys
    /// `function_request_id`, `cold_start`, `xray_trace_id`), and on the
    /// first invocation only the `ColdStart` metric to emit.
    pub fn begin(
        &self,
        request_id: &str,
        trace_header: Option<&str>,
    ) -> (tracing::Span, Option<Emf>) {
        let cold_start = !self.started.swap(true, Ordering::SeqCst);
        // At ERROR level so that no log level filters the ids away.
        let span = tracing::error_span!(
            "invocation",
            function_request_id = %request_id,
            cold_start,
            xray_trace_id = tracing::field::Empty,
        );
        if let Some(trace_id) = trace_header.and_then(xray_trace_id) {
            span.record("xray_trace_id", trace_id);
        }
        let metric = cold_start.then(|| {
            let mut emf = Emf::for_function(&self.function);
            emf.add("ColdStart", 1);
            emf
        });
        (span, metric)
    }
}

/// The trace id Powertools logs: the `Root` of the `_X_AMZN_TRACE_ID` /
/// `Lambda-Runtime-Trace-Id` header, or the whole header if it has none.
pub fn xray_trace_id(header: &str) -> Option<&str> {
    let root = header
        .split(';')
        .find_map(|part| part.trim().strip_prefix("Root="))
        .unwrap_or(header)
        .trim();
    (!root.is_empty()).then_some(root)
}

/// Wraps a function's handler for `lambda_runtime::service_fn`: each
/// invocation runs in its [`Invocations::begin`] span, and the first emits
/// `ColdStart`.
pub fn observed<A, Fut>(
    function: &str,
    mut handler: impl FnMut(LambdaEvent<A>) -> Fut,
) -> impl FnMut(LambdaEvent<A>) -> Instrumented<Fut>
where
    Fut: Future,
{
    let invocations = Invocations::new(function);
    move |event: LambdaEvent<A>| {
        let context = &event.context;
        let (span, cold_start) =
            invocations.begin(&context.request_id, context.xray_trace_id.as_deref());
        if let Some(metric) = cold_start {
            metric.emit();
        }
        handler(event).instrument(span)
    }
}

/// An event read as `T`, or why it is not one. A handler taking
/// `LambdaEvent<Payload<T>>` runs for every event: with a typed
/// `LambdaEvent<T>`, lambda_runtime refuses an unreadable event before
/// [`observed`] runs, so that invocation has no cold start and no error
/// of the function's own naming the field.
#[derive(Debug)]
pub struct Payload<T>(pub Result<T, PayloadError>);

/// Where an event stops fitting the type the function reads, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the event{} is unreadable: {reason}", field_of(path))]
pub struct PayloadError {
    /// The field, `Records[2].kinesis`; `.` for the event itself.
    pub path: String,
    pub reason: String,
}

fn field_of(path: &str) -> String {
    if path == "." {
        String::new()
    } else {
        format!("'s {path}")
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Payload<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // lambda_runtime 1.5 reads the event with this one call and checks
        // nothing after it, so the rest of a refused event is not read.
        let read = serde_path_to_error::deserialize(deserializer).map_err(|e| PayloadError {
            path: e.path().to_string(),
            reason: e.into_inner().to_string(),
        });
        Ok(Self(read))
    }
}

/// The error type a function's init reports for a configuration it cannot
/// run with.
pub const INVALID_CONFIGURATION: &str = "InvalidConfiguration";

/// A function's start-up, before its clients: logs for `function`, its
/// configuration from the environment, and the SDK configuration. A
/// configuration `from_env` refuses is reported with [`fail_init`] as
/// [`INVALID_CONFIGURATION`], naming every problem, and the process exits;
/// nothing AWS is loaded for it.
pub async fn start<C, E: std::fmt::Display>(
    function: &str,
    from_env: impl FnOnce(EnvReader) -> Result<C, E>,
) -> (C, SdkConfig) {
    crate::logging::init_for(function);
    let config = match from_env(EnvReader::from_env()) {
        Ok(config) => config,
        Err(e) => fail_init(INVALID_CONFIGURATION, &e).await,
    };
    (config, crate::aws::load_sdk_config().await)
}

/// Posts the error to `/runtime/init/error`, logs it, and exits with status 1.
pub async fn fail_init(error_type: &str, error: &dyn std::fmt::Display) -> ! {
    let message = error.to_string();
    tracing::error!(error_type, error = %message, "initialisation failed");
    if let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API")
        && let Err(e) = post_init_error(&api, error_type, &message).await
    {
        tracing::error!(error = %e, "could not report the init error to the Runtime API");
    }
    std::process::exit(1)
}

async fn post_init_error(api: &str, error_type: &str, message: &str) -> std::io::Result<()> {
    // Header values cannot carry newlines; the type is one of our own names.
    let error_type: String = error_type.chars().filter(|c| !c.is_control()).collect();
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string();
    let request = format!(
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Lambda-Runtime-Function-Error-Type: {error_type}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(api).await?;
    stream.write_all(request.as_bytes()).await?;
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await?;
    Ok(())
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
        let now_ms = crate::time::millis_since_epoch(now);
        Duration::from_millis(deadline_ms.saturating_sub(now_ms))
    };
    Instant::now() + remaining
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;
    use suite_tests::logs::Captured;
    use tokio::net::TcpListener;

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

    /// The lines written through [`crate::logging::subscriber`], as JSON.
    fn json_lines(captured: &Captured) -> Vec<serde_json::Value> {
        captured
            .text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    #[test]
    fn invocation_logs_carry_powertools_keys_at_the_top_level() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = crate::logging::subscriber(
            "custom-resources",
            true,
            tracing::level_filters::LevelFilter::WARN,
            move || writer.clone(),
        );
        let invocations = Invocations::new("cfn-responder");
        let mut cold_starts = 0;
        tracing::subscriber::with_default(subscriber, || {
            for (request_id, trace) in [
                (
                    "req-1",
                    Some(
                        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=557abcec3ee5a047;Sampled=1",
                    ),
                ),
                ("req-2", None),
            ] {
                let (span, metric) = invocations.begin(request_id, trace);
                cold_starts += metric.map_or(0, |m| m.to_json(0)["ColdStart"].as_u64().unwrap());
                // lambda_runtime's own span, and a handler's correlation span.
                let runtime = tracing::info_span!("Lambda runtime invoke", requestId = request_id);
                let _runtime = runtime.enter();
                let _invocation = span.enter();
                let request =
                    tracing::error_span!("cfn_request", stack_id = "stack-1", request_id = "cfn-1");
                let _request = request.enter();
                tracing::warn!(attempts = 2, "response delivered");
            }
        });
        assert_eq!(cold_starts, 1, "ColdStart once per execution environment");
        let lines = json_lines(&captured);
        assert_eq!(lines.len(), 2, "{lines:?}");
        for (line, request_id, cold_start) in
            [(&lines[0], "req-1", true), (&lines[1], "req-2", false)]
        {
            assert_eq!(line["level"], "WARN", "{line}");
            assert_eq!(line["message"], "response delivered", "{line}");
            assert!(
                line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')),
                "{line}"
            );
            assert_eq!(line["service"], "custom-resources", "{line}");
            assert_eq!(line["cold_start"], cold_start, "{line}");
            assert_eq!(line["function_request_id"], request_id, "{line}");
            assert_eq!(line["stack_id"], "stack-1", "{line}");
            assert_eq!(line["request_id"], "cfn-1", "{line}");
            assert_eq!(line["attempts"], 2, "{line}");
            for nested in ["span", "spans", "fields", "requestId"] {
                assert!(line.get(nested).is_none(), "{nested} in {line}");
            }
        }
        assert_eq!(
            lines[0]["xray_trace_id"],
            "1-5759e988-bd862e3fe1be46a994272793"
        );
        assert!(
            lines[1].get("xray_trace_id").is_none(),
            "tracing off: {}",
            lines[1]
        );
    }

    /// lambda_runtime logs a handler's error, a panic and an unreadable
    /// event in its own INFO span, outside ours: those lines still carry
    /// the invocation's ids, at every log level.
    #[test]
    fn lambda_runtime_lines_carry_the_invocation_ids_at_every_level() {
        use tracing::level_filters::LevelFilter;
        for level in [LevelFilter::INFO, LevelFilter::WARN, LevelFilter::ERROR] {
            let captured = Captured::default();
            let writer = captured.clone();
            let subscriber = crate::logging::subscriber("svc", true, level, move || writer.clone());
            tracing::subscriber::with_default(subscriber, || {
                let runtime = tracing::info_span!(
                    "Lambda runtime invoke",
                    requestId = "req-runtime",
                    xrayTraceId = "Root=1-aaa;Parent=557abcec3ee5a047;Sampled=1"
                );
                let _runtime = runtime.enter();
                tracing::error!("the handler returned an error");
                let (span, _) = Invocations::new("f").begin("req-ours", Some("Root=1-bbb"));
                let _invocation = span.enter();
                tracing::error!("inside both spans");
                tracing::info!("filtered below INFO");
            });
            let lines = json_lines(&captured);
            let expected = if level == LevelFilter::INFO { 3 } else { 2 };
            assert_eq!(lines.len(), expected, "{level}: {lines:?}");
            assert_eq!(
                lines[0]["function_request_id"], "req-runtime",
                "{level}: {}",
                lines[0]
            );
            assert_eq!(lines[0]["xray_trace_id"], "1-aaa", "{level}: {}", lines[0]);
            // Ours and the runtime's carry the same ids in Lambda; ours wins.
            assert_eq!(lines[1]["function_request_id"], "req-ours", "{}", lines[1]);
            assert_eq!(lines[1]["xray_trace_id"], "1-bbb", "{}", lines[1]);
            for line in &lines {
                for raw in ["requestId", "xrayTraceId"] {
                    assert!(line.get(raw).is_none(), "{raw} in {line}");
                }
            }
        }
    }

    #[test]
    fn plain_text_logs_stay_one_readable_line() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = crate::logging::subscriber(
            "svc",
            false,
            tracing::level_filters::LevelFilter::INFO,
            move || writer.clone(),
        );
        tracing::subscriber::with_default(subscriber, || {
            let (span, _) = Invocations::new("f").begin("req-1", Some("Root=1-abc"));
            let _invocation = span.enter();
            tracing::info!(shard = "s-1", "batch done");
        });
        let text = captured.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.trim_start().starts_with('{'), "{text}");
        for part in [
            "INFO",
            "function_request_id=req-1",
            "cold_start=true",
            "batch done",
            "shard=\"s-1\"",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
    }

    #[test]
    fn unreadable_payloads_name_the_field() {
        #[derive(Debug, Deserialize)]
        struct Batch {
            #[serde(rename = "Records")]
            _records: Vec<u32>,
        }
        let read = |text: &str| {
            let mut reader = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize::<_, Payload<Batch>>(&mut reader)
                .expect("a payload is always read")
                .0
        };
        assert!(read(r#"{"Records":[1,2]}"#).is_ok());
        let bad = read(r#"{"Records":[1,"x"]}"#).unwrap_err();
        assert_eq!(bad.path, "Records[1]");
        assert!(
            bad.to_string()
                .starts_with("the event's Records[1] is unreadable: invalid type"),
            "{bad}"
        );
        let not_an_object = read("[]").unwrap_err();
        assert!(
            not_an_object
                .to_string()
                .starts_with("the event is unreadable: invalid"),
            "{not_an_object}"
        );
    }

    #[test]
    fn trace_ids_as_powertools_logs_them() {
        assert_eq!(
            xray_trace_id("Root=1-abc;Parent=def;Sampled=1"),
            Some("1-abc")
        );
        assert_eq!(xray_trace_id("Parent=def; Root=1-abc"), Some("1-abc"));
        assert_eq!(xray_trace_id("1-abc"), Some("1-abc"));
        assert_eq!(xray_trace_id(""), None);
        assert_eq!(xray_trace_id("Root=;Sampled=0"), None);
    }

    #[tokio::test]
    async fn posts_the_error_where_the_runtime_api_expects_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let n = stream.read(&mut buf).await.unwrap();
            stream
                .write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        post_init_error(
            &api,
            "InvalidConfig\n",
            "TABLE_NAME is required but not set",
        )
        .await
        .unwrap();
        let request = server.await.unwrap();
        assert!(
            request.starts_with("POST /2018-06-01/runtime/init/error HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("Lambda-Runtime-Function-Error-Type: InvalidConfig\r\n"),
            "{request}"
        );
        let body = request.split_once("\r\n\r\n").unwrap().1;
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["errorType"], "InvalidConfig");
        assert_eq!(json["errorMessage"], "TABLE_NAME is required but not set");
    }
}
