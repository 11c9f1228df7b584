//! Tracing set-up and masking of personal data in logs.
//!
//! JSON lines carry the keys Powertools users query, all at the top level:
//! `level`, `message`, `timestamp`, `service`, the invocation's `cold_start`,
//! `function_request_id` and `xray_trace_id` (see
//! [`crate::runtime::Invocations`]), and the fields of every enclosing span
//! (correlation ids such as a stack id), never nested under `span`.

use serde_json::{Map, Value};
use std::fmt;
use tracing::level_filters::LevelFilter;
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;

/// The span lambda_runtime opens per invocation. It logs a handler's error,
/// a panic and an unreadable event in it, outside ours: its `requestId` and
/// `xrayTraceId` are written as `function_request_id` and `xray_trace_id`.
const LAMBDA_RUNTIME_SPAN: &str = "Lambda runtime invoke";

/// Installs the global subscriber, writing to stdout, for a process whose
/// function is not known here: `service` is `POWERTOOLS_SERVICE_NAME`, else
/// `AWS_LAMBDA_FUNCTION_NAME`. Functions call [`init_for`].
pub fn init_tracing() {
    let fallback = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "unknown".into());
    init_for(&fallback);
}

/// Installs the global subscriber for `function`, writing to stdout.
///
/// JSON when Lambda's `AWS_LAMBDA_LOG_FORMAT=JSON` (so CloudWatch can filter
/// on fields), plain text otherwise. The level follows `AWS_LAMBDA_LOG_LEVEL`;
/// `service` is `POWERTOOLS_SERVICE_NAME`, else the function's name.
pub fn init_for(function: &str) {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let level = level_from(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref());
    let service = service_name(std::env::var("POWERTOOLS_SERVICE_NAME").ok(), function);
    // A second call (tests) keeps the first subscriber.
    let _ =
        tracing::subscriber::set_global_default(subscriber(&service, json, level, std::io::stdout));
}

/// `POWERTOOLS_SERVICE_NAME` when set and not blank, else the function's name.
pub fn service_name(configured: Option<String>, function: &str) -> String {
    configured
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| function.to_owned())
}

/// Installs a subscriber writing to `writer`; tests use it to capture logs.
pub fn try_init_with_writer<W>(json: bool, level: LevelFilter, writer: W) -> Result<(), String>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let service = service_name(std::env::var("POWERTOOLS_SERVICE_NAME").ok(), "unknown");
    tracing::subscriber::set_global_default(subscriber(&service, json, level, writer))
        .map_err(|e| e.to_string())
}

/// The subscriber [`init_for`] installs, writing to `writer`: tests run it
/// with `tracing::subscriber::with_default` to capture lines.
pub fn subscriber<W>(
    service: &str,
    json: bool,
    level: LevelFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // lambda_runtime's span is at INFO: it is kept at every level, else
    // its error lines at WARN or ERROR would lose the invocation's ids.
    let hint = level.max(LevelFilter::INFO);
    let filter = filter_fn(move |metadata| {
        *metadata.level() <= level || (metadata.is_span() && metadata.name() == LAMBDA_RUNTIME_SPAN)
    })
    .with_max_level_hint(hint);
    let builder = tracing_subscriber::fmt()
        .with_max_level(hint)
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false);
    if json {
        Box::new(
            builder
                .fmt_fields(JsonFields::new())
                .event_format(PowertoolsJson {
                    service: service.to_owned(),
                })
                .finish()
                .with(filter),
        )
    } else {
        Box::new(builder.finish().with(filter))
    }
}

/// One JSON object per event, Powertools' keys first, span and event
/// fields flattened beside them (the innermost wins a name clash).
struct PowertoolsJson {
    service: String,
}

/// Keys this format writes itself: a field of the same name is kept under
/// `field_<name>` rather than lost.
const RESERVED: [&str; 3] = ["level", "timestamp", "service"];
/// Invocation keys placed right after the fixed ones, for readability.
const INVOCATION_KEYS: [&str; 3] = ["cold_start", "function_request_id", "xray_trace_id"];

impl<S> FormatEvent<S, JsonFields> for PowertoolsJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                let Some(formatted) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                let Ok(Value::Object(map)) = serde_json::from_str(formatted) else {
                    continue;
                };
                if span.name() == LAMBDA_RUNTIME_SPAN {
                    // The outermost span: ours, inside it, overwrites these.
                    if let Some(request_id) = map.get("requestId") {
                        fields.insert("function_request_id".into(), request_id.clone());
                    }
                    if let Some(trace_id) = map
                        .get("xrayTraceId")
                        .and_then(Value::as_str)
                        .and_then(crate::runtime::xray_trace_id)
                    {
                        fields.insert("xray_trace_id".into(), trace_id.into());
                    }
                } else {
                    fields.extend(map);
                }
            }
        }
        let mut event_fields = String::new();
        ctx.format_fields(Writer::new(&mut event_fields), event)?;
        if let Ok(Value::Object(map)) = serde_json::from_str(&event_fields) {
            fields.extend(map);
        }
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;

        let mut line: Vec<(String, Value)> =
            vec![("level".into(), event.metadata().level().as_str().into())];
        if let Some(message) = fields.remove("message") {
            line.push(("message".into(), message));
        }
        line.push(("timestamp".into(), timestamp.into()));
        line.push(("service".into(), self.service.as_str().into()));
        for key in INVOCATION_KEYS {
            if let Some(value) = fields.remove(key) {
                line.push((key.into(), value));
            }
        }
        for (key, value) in fields {
            let key = if RESERVED.contains(&key.as_str()) {
                format!("field_{key}")
            } else {
                key
            };
            line.push((key, value));
        }
        let mut text = String::from("{");
        for (i, (key, value)) in line.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&Value::from(key.as_str()).to_string());
            text.push(':');
            text.push_str(&value.to_string());
        }
        text.push('}');
        writeln!(writer, "{text}")
    }
}

/// Maps Lambda's log level names (FATAL included) to a filter; INFO by default.
pub fn level_from(name: Option<&str>) -> LevelFilter {
    match name.map(str::to_ascii_uppercase).as_deref() {
        Some("TRACE") => LevelFilter::TRACE,
        Some("DEBUG") => LevelFilter::DEBUG,
        Some("WARN") => LevelFilter::WARN,
        Some("ERROR") | Some("FATAL") => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

/// Masks an email address for logs: `jane.doe@example.com` -> `j***@example.com`.
///
/// The domain is kept because it is what operators need to spot a failing
/// provider; the local part identifies a person.
pub fn mask_email(address: &str) -> String {
    match address.trim().rsplit_once('@') {
        Some((local, domain)) if !local.is_empty() => {
            let first = local.chars().next().unwrap_or('*');
            format!("{first}***@{domain}")
        }
        _ => "***".to_owned(),
    }
}

/// Masks every email address found in free text, such as an SMTP diagnostic.
pub fn mask_emails_in(text: &str) -> String {
    let is_addr_char = |c: char| c.is_alphanumeric() || "._%+-'!#$&*/=?^`{|}~".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('@') {
        let local_start = rest[..at]
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_addr_char(c))
            .last()
            .map_or(at, |(i, _)| i);
        let domain_len = rest[at + 1..]
            .char_indices()
            .take_while(|&(_, c)| c.is_alphanumeric() || c == '.' || c == '-')
            .last()
            .map_or(0, |(i, c)| i + c.len_utf8());
        out.push_str(&rest[..local_start]);
        if local_start < at && domain_len > 0 {
            out.push_str(&mask_email(&rest[local_start..at + 1 + domain_len]));
        } else {
            out.push_str(&rest[local_start..at + 1 + domain_len]);
        }
        rest = &rest[at + 1 + domain_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_addresses() {
        assert_eq!(mask_email("Jane.Doe@example.com"), "J***@example.com");
        assert_eq!(mask_email("@example.com"), "***");
        assert_eq!(mask_email("not-an-address"), "***");
    }

    #[test]
    fn masks_addresses_inside_text() {
        let text = "550 5.1.1 <jane.doe+news@example.com>: user unknown; cc bob@mail.example.org.";
        let masked = mask_emails_in(text);
        assert_eq!(
            masked,
            "550 5.1.1 <j***@example.com>: user unknown; cc b***@mail.example.org."
        );
        assert_eq!(mask_emails_in("a @ b and x@"), "a @ b and x@");
    }

    #[test]
    fn lambda_level_names() {
        assert_eq!(level_from(Some("fatal")), LevelFilter::ERROR);
        assert_eq!(level_from(Some("DEBUG")), LevelFilter::DEBUG);
        assert_eq!(level_from(None), LevelFilter::INFO);
    }
}
