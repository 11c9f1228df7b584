//! Tracing set-up and masking of personal data in logs.

use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Installs the global subscriber, writing to stdout.
///
/// JSON when Lambda's `AWS_LAMBDA_LOG_FORMAT=JSON` (so CloudWatch can filter
/// on fields), plain text otherwise. The level follows `AWS_LAMBDA_LOG_LEVEL`.
pub fn init_tracing() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let level = level_from(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok().as_deref());
    // A second call (tests) keeps the first subscriber.
    let _ = try_init_with_writer(json, level, std::io::stdout);
}

/// Installs a subscriber writing to `writer`; tests use it to capture logs.
pub fn try_init_with_writer<W>(json: bool, level: LevelFilter, writer: W) -> Result<(), String>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(writer)
        .with_ansi(false)
        .with_target(false);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    }
    .map_err(|e| e.to_string())
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
