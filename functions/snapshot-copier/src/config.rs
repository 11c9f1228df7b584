//! The function's configuration from the environment, every problem
//! reported at once.

use crate::copier::Settings;
use crate::destinations::is_region;
use crate::retention::Retention;
use shared::config::{ConfigError, EnvReader};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub copier: Settings,
    /// DynamoDB table of copy claims; without it, claims hold within one
    /// process only.
    pub claim_table: Option<String>,
}

/// Every default, once. The source region has none: AWS_REGION is required.
impl Default for Config {
    fn default() -> Self {
        Config {
            copier: Settings {
                source_region: String::new(),
                copy_tag_key: "dr:copy-to".to_owned(),
                default_destinations: Vec::new(),
                kms_keys: BTreeMap::new(),
                max_concurrent_copies: 20,
                retention: Retention {
                    keep: Some(7),
                    max_age_secs: None,
                },
                dry_run: false,
                completion_duration_minutes: None,
                concurrency: 8,
            },
            claim_table: None,
        }
    }
}

impl Config {
    /// Reads AWS_REGION (the source), COPY_TAG_KEY (dr:copy-to),
    /// DEFAULT_DESTINATIONS, DEST_KMS_KEYS (`region=key,...`),
    /// MAX_CONCURRENT_COPIES (20), KEEP_COPIES (7; 0 keeps any number),
    /// RETENTION_DAYS, DRY_RUN (false), COMPLETION_DURATION_MINUTES and
    /// SWEEP_CONCURRENCY (8) and CLAIM_TABLE.
    pub fn from_env(mut env: EnvReader) -> Result<Config, ConfigError> {
        let defaults = Config::default().copier;
        let source_region: Option<String> = env.required("AWS_REGION");
        let copy_tag_key = env.or_default("COPY_TAG_KEY", defaults.copy_tag_key);
        let default_destinations = destinations(&mut env);
        let kms_keys = kms_keys(&mut env);
        let max_concurrent_copies =
            env.at_least_one("MAX_CONCURRENT_COPIES", defaults.max_concurrent_copies);
        let keep: usize = env.or_default("KEEP_COPIES", defaults.retention.keep.unwrap_or(0));
        let retention_days: Option<i64> = env.optional("RETENTION_DAYS");
        if retention_days.is_some_and(|d| d < 1) {
            env.problem("RETENTION_DAYS must be at least 1");
        }
        let completion_duration_minutes: Option<i32> = env.optional("COMPLETION_DURATION_MINUTES");
        if completion_duration_minutes.is_some_and(|m| !(15..=2880).contains(&m) || m % 15 != 0) {
            env.problem("COMPLETION_DURATION_MINUTES must be a multiple of 15 from 15 to 2880");
        }
        let concurrency = env.at_least_one("SWEEP_CONCURRENCY", defaults.concurrency);
        let dry_run = env.flag("DRY_RUN", defaults.dry_run);
        let claim_table: Option<String> = env
            .optional::<String>("CLAIM_TABLE")
            .filter(|t| !t.trim().is_empty());
        env.finish()?;
        Ok(Config {
            copier: Settings {
                source_region: source_region.expect("checked by finish"),
                copy_tag_key,
                default_destinations,
                kms_keys,
                max_concurrent_copies,
                retention: Retention {
                    keep: (keep > 0).then_some(keep),
                    max_age_secs: retention_days.map(|d| d * 86_400),
                },
                dry_run,
                completion_duration_minutes,
                concurrency,
            },
            claim_table,
        })
    }
}

/// DEFAULT_DESTINATIONS: comma-separated region names.
fn destinations(env: &mut EnvReader) -> Vec<String> {
    let default_destinations = env.list("DEFAULT_DESTINATIONS");
    for region in &default_destinations {
        if !is_region(region) {
            env.problem(format!(
                "DEFAULT_DESTINATIONS: {region:?} is not a region name"
            ));
        }
    }
    default_destinations
}

/// DEST_KMS_KEYS: `region=key,...`.
fn kms_keys(env: &mut EnvReader) -> BTreeMap<String, String> {
    env.pairs(
        "DEST_KMS_KEYS",
        "region=key (such as us-west-2=alias/dr)",
        |region, key| is_region(region) && !key.is_empty(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_problems() {
        let config = Config::from_env(EnvReader::from_map([
            ("AWS_REGION", "us-east-1"),
            (
                "DEST_KMS_KEYS",
                "us-west-2=alias/dr, eu-west-1 = arn:aws:kms:eu-west-1:1:key/k",
            ),
        ]))
        .unwrap();
        assert_eq!(
            config.copier.kms_keys["eu-west-1"],
            "arn:aws:kms:eu-west-1:1:key/k"
        );
        assert_eq!(config.copier.retention.keep, Some(7));
        assert_eq!(config.copier.max_concurrent_copies, 20);
        let problems = Config::from_env(EnvReader::from_map([
            ("DEFAULT_DESTINATIONS", "us-west-2,moon"),
            ("DEST_KMS_KEYS", "alias/dr"),
            ("COMPLETION_DURATION_MINUTES", "20"),
        ]))
        .unwrap_err()
        .to_string();
        for name in [
            "AWS_REGION",
            "DEFAULT_DESTINATIONS",
            "DEST_KMS_KEYS",
            "COMPLETION_DURATION_MINUTES",
        ] {
            assert!(problems.contains(name), "{name}: {problems}");
        }
    }
}
