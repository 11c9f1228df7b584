//! Settings from the environment, every problem reported at once.

use crate::notification::Rules;
use crate::processor::Settings;
use crate::suppression::Escalation;
use shared::config::{ConfigError, EnvReader};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub table: String,
    pub rules: Rules,
    pub escalation: Escalation,
    /// Also add suppressed addresses to the SES account suppression list.
    pub account_suppression: bool,
}

/// The defaults the README documents: 5.x.x transient bounces are hard, a
/// delivery resets, 3 soft bounces in 7 days escalate, the table is the only
/// list. The table has no default: it is required.
impl Default for Config {
    fn default() -> Self {
        Self {
            table: String::new(),
            rules: Rules {
                transient_5xx_is_permanent: true,
                reset_soft_on_delivery: true,
            },
            escalation: Escalation {
                threshold: 3,
                window_secs: 7 * 86_400,
            },
            account_suppression: false,
        }
    }
}

impl Config {
    /// Reads SUPPRESSION_TABLE, SOFT_BOUNCE_THRESHOLD (default 3),
    /// SOFT_BOUNCE_WINDOW_DAYS (7), TRANSIENT_5XX_IS_PERMANENT (true),
    /// RESET_SOFT_ON_DELIVERY (true) and ACCOUNT_SUPPRESSION (false).
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let table: Option<String> = env.required("SUPPRESSION_TABLE");
        let defaults = Self::default();
        let threshold: usize =
            env.at_least_one("SOFT_BOUNCE_THRESHOLD", defaults.escalation.threshold);
        let window_days: i64 = env.or_default(
            "SOFT_BOUNCE_WINDOW_DAYS",
            defaults.escalation.window_secs / 86_400,
        );
        // Signed, so a negative count is caught too (at_least_one sees only 0).
        if window_days < 1 {
            env.problem(format!(
                "SOFT_BOUNCE_WINDOW_DAYS={window_days} is invalid: it must be at least 1"
            ));
        }
        let rules = Rules {
            transient_5xx_is_permanent: env.flag(
                "TRANSIENT_5XX_IS_PERMANENT",
                defaults.rules.transient_5xx_is_permanent,
            ),
            reset_soft_on_delivery: env.flag(
                "RESET_SOFT_ON_DELIVERY",
                defaults.rules.reset_soft_on_delivery,
            ),
        };
        let account_suppression = env.flag("ACCOUNT_SUPPRESSION", defaults.account_suppression);
        env.finish()?;
        Ok(Self {
            table: table.expect("checked by finish"),
            rules,
            escalation: Escalation {
                threshold,
                window_secs: window_days * 86_400,
            },
            account_suppression,
        })
    }

    /// What the processor needs of it.
    pub fn settings(&self) -> Settings {
        Settings {
            rules: self.rules,
            escalation: self.escalation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_every_problem_named() {
        let config = Config::from_env(EnvReader::from_map([("SUPPRESSION_TABLE", "t")])).unwrap();
        assert_eq!(config.escalation.threshold, 3);
        assert_eq!(config.escalation.window_secs, 7 * 86_400);
        assert!(config.rules.transient_5xx_is_permanent && !config.account_suppression);
        let problems = Config::from_env(EnvReader::from_map([
            ("SOFT_BOUNCE_THRESHOLD", "0"),
            ("SOFT_BOUNCE_WINDOW_DAYS", "x"),
            ("ACCOUNT_SUPPRESSION", "maybe"),
        ]))
        .unwrap_err()
        .to_string();
        for name in [
            "SUPPRESSION_TABLE",
            "SOFT_BOUNCE_THRESHOLD",
            "SOFT_BOUNCE_WINDOW_DAYS",
            "ACCOUNT_SUPPRESSION",
        ] {
            assert!(problems.contains(name), "{name} missing from {problems}");
        }
    }
}
