//! Settings from the environment, every problem reported at once.

use crate::copier::Settings;
use crate::destinations::is_region;
use crate::retention::Retention;
use shared::config::{ConfigError, EnvReader};
use std::collections::BTreeMap;

/// Reads AWS_REGION (the source), COPY_TAG_KEY (dr:copy-to),
/// DEFAULT_DESTINATIONS, DEST_KMS_KEYS (`region=key,...`),
/// MAX_CONCURRENT_COPIES (20), KEEP_COPIES (7; 0 keeps any number),
/// RETENTION_DAYS, DRY_RUN (false), COMPLETION_DURATION_MINUTES and
/// SWEEP_CONCURRENCY (8) and CLAIM_TABLE.
pub fn from_env(mut env: EnvReader) -> Result<Settings, ConfigError> {
    let source_region: Option<String> = env.required("AWS_REGION");
    let copy_tag_key = env.or_default("COPY_TAG_KEY", "dr:copy-to".to_owned());
    let default_destinations: Vec<String> = env
        .optional::<String>("DEFAULT_DESTINATIONS")
        .unwrap_or_default()
        .split(',')
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .collect();
    for region in &default_destinations {
        if !is_region(region) {
            env.problem(format!(
                "DEFAULT_DESTINATIONS: {region:?} is not a region name"
            ));
        }
    }
    let mut kms_keys = BTreeMap::new();
    for pair in env
        .optional::<String>("DEST_KMS_KEYS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some((region, key)) if is_region(region.trim()) && !key.trim().is_empty() => {
                kms_keys.insert(region.trim().to_owned(), key.trim().to_owned());
            }
            _ => env.problem(format!(
                "DEST_KMS_KEYS: {pair:?} is not region=key (such as us-west-2=alias/dr)"
            )),
        }
    }
    let max_concurrent_copies: usize = env.or_default("MAX_CONCURRENT_COPIES", 20);
    if max_concurrent_copies == 0 {
        env.problem("MAX_CONCURRENT_COPIES=0 is invalid: it must be at least 1");
    }
    let keep: usize = env.or_default("KEEP_COPIES", 7);
    let retention_days: Option<i64> = env.optional("RETENTION_DAYS");
    if retention_days.is_some_and(|d| d < 1) {
        env.problem("RETENTION_DAYS must be at least 1");
    }
    let completion_duration_minutes: Option<i32> = env.optional("COMPLETION_DURATION_MINUTES");
    if completion_duration_minutes.is_some_and(|m| !(15..=2880).contains(&m) || m % 15 != 0) {
        env.problem("COMPLETION_DURATION_MINUTES must be a multiple of 15 from 15 to 2880");
    }
    let concurrency: usize = env.or_default("SWEEP_CONCURRENCY", 8);
    if concurrency == 0 {
        env.problem("SWEEP_CONCURRENCY=0 is invalid: it must be at least 1");
    }
    let dry_run = env.flag("DRY_RUN", false);
    let claim_table: Option<String> = env
        .optional::<String>("CLAIM_TABLE")
        .filter(|t| !t.trim().is_empty());
    env.finish()?;
    Ok(Settings {
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
        claim_table,
        concurrency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_problems() {
        let settings = from_env(EnvReader::from_map([
            ("AWS_REGION", "us-east-1"),
            (
                "DEST_KMS_KEYS",
                "us-west-2=alias/dr, eu-west-1 = arn:aws:kms:eu-west-1:1:key/k",
            ),
        ]))
        .unwrap();
        assert_eq!(
            settings.kms_keys["eu-west-1"],
            "arn:aws:kms:eu-west-1:1:key/k"
        );
        assert_eq!(settings.retention.keep, Some(7));
        assert_eq!(settings.max_concurrent_copies, 20);
        let problems = from_env(EnvReader::from_map([
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
