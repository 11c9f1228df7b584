//! Environment configuration.

use crate::cfn::{ResponseUrlPolicy, RetryPolicy};
use crate::responder::Settings;
use shared::config::{ConfigError, EnvReader};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    /// DynamoDB table for at-most-once execution; in-memory when unset.
    pub idempotency_table: Option<String>,
}

impl Config {
    /// Reads `TIMEOUT_MARGIN_MS` (default 3000), `ALLOW_LOCAL_RESPONSE_URL`
    /// (default false), `RESPONSE_PUT_MAX_ATTEMPTS` (default 6) and
    /// `IDEMPOTENCY_TABLE` (optional).
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let timeout_margin = env.millis("TIMEOUT_MARGIN_MS", Duration::from_secs(3));
        let url_policy = url_policy(&mut env);
        let max_attempts: u32 = env.or_default("RESPONSE_PUT_MAX_ATTEMPTS", 6);
        if max_attempts == 0 {
            env.problem("RESPONSE_PUT_MAX_ATTEMPTS must be at least 1");
        }
        let idempotency_table = env.optional("IDEMPOTENCY_TABLE");
        env.finish()?;
        Ok(Self {
            settings: Settings {
                timeout_margin,
                url_policy,
                retry: RetryPolicy {
                    max_attempts,
                    ..RetryPolicy::default()
                },
            },
            idempotency_table,
        })
    }
}

/// The URL policy alone, still readable when the rest of the configuration
/// is not, so an init failure can be reported to a local sink too.
pub fn url_policy(env: &mut EnvReader) -> ResponseUrlPolicy {
    ResponseUrlPolicy {
        allow_local: env.flag("ALLOW_LOCAL_RESPONSE_URL", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        let config = Config::from_env(EnvReader::from_map([("X", "y")])).unwrap();
        assert_eq!(config.settings.timeout_margin, Duration::from_secs(3));
        assert!(!config.settings.url_policy.allow_local);
        assert_eq!(config.idempotency_table, None);
    }

    #[test]
    fn every_problem_is_named() {
        let err = Config::from_env(EnvReader::from_map([
            ("TIMEOUT_MARGIN_MS", "soon"),
            ("RESPONSE_PUT_MAX_ATTEMPTS", "0"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("TIMEOUT_MARGIN_MS=\"soon\" is invalid"),
            "{err}"
        );
        assert!(
            err.contains("RESPONSE_PUT_MAX_ATTEMPTS must be at least 1"),
            "{err}"
        );
    }
}
