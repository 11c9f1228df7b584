//! Settings from the environment, every problem reported at once.

use crate::log_table::Log;
use crate::rotator::Settings;
use crate::target::{Target, parse_entry};
use shared::config::{ConfigError, EnvReader};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Verified against the system roots plus `ca_file` (RDS's bundle).
    Required { ca_file: Option<String> },
    /// Only for local servers; IAM authentication refuses it.
    Disabled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub region: String,
    /// Configured targets; empty means discovery by tag.
    pub targets: Vec<Target>,
    pub discovery_tag: (String, String),
    /// The secret for discovered targets without their own.
    pub default_secret: Option<String>,
    pub secret_arns: BTreeMap<String, String>,
    pub db_user: String,
    pub tls: Tls,
    pub archive_bucket: String,
    pub s3_force_path_style: bool,
    pub concurrency: usize,
    pub rotator: Settings,
}

/// The password secret for a target: its own, else the shared one; None
/// means IAM database authentication.
pub fn secret_for(
    secret_arns: &BTreeMap<String, String>,
    default_secret: Option<&String>,
    id: &str,
) -> Option<String> {
    secret_arns.get(id).or(default_secret).cloned()
}

/// Reads AWS_REGION; DB_INSTANCES (`id` or `id=host:port`, comma-separated)
/// or discovery by DISCOVERY_TAG (`log-rotation=enabled`); DB_USER
/// (log_rotator); SECRET_ARN and SECRET_ARNS (`id=arn,...`), else IAM
/// authentication; DB_TLS (required|disabled) and TLS_CA_FILE;
/// ARCHIVE_BUCKET, ARCHIVE_PREFIX (rds-logs), S3_FORCE_PATH_STYLE; LOGS
/// (slow,general); MIN_ROWS (1); SCHEDULE_MINUTES (60); TOP_N (20);
/// PART_ROWS (50000); MAX_PART_MB (16); CONCURRENCY (2).
pub fn from_env(mut env: EnvReader) -> Result<Config, ConfigError> {
    let region: Option<String> = env.required("AWS_REGION");
    let mut secret_arns = BTreeMap::new();
    for pair in env
        .optional::<String>("SECRET_ARNS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some((id, arn)) if arn.trim().starts_with("arn:") => {
                secret_arns.insert(id.trim().to_owned(), arn.trim().to_owned());
            }
            _ => env.problem(format!(
                "SECRET_ARNS: {pair:?} is not id=arn:aws:secretsmanager:..."
            )),
        }
    }
    let default_secret: Option<String> = env.optional("SECRET_ARN");
    if default_secret
        .as_ref()
        .is_some_and(|a| !a.starts_with("arn:"))
    {
        env.problem("SECRET_ARN must be a secret ARN (arn:aws:secretsmanager:...)");
    }
    let mut targets = Vec::new();
    for entry in env
        .optional::<String>("DB_INSTANCES")
        .unwrap_or_default()
        .split(',')
        .filter(|e| !e.trim().is_empty())
    {
        match parse_entry(entry) {
            Ok((id, endpoint)) => {
                let secret_arn = secret_for(&secret_arns, default_secret.as_ref(), &id);
                targets.push(Target {
                    id,
                    endpoint,
                    secret_arn,
                });
            }
            Err(e) => env.problem(format!("DB_INSTANCES: {e}")),
        }
    }
    let tag = env.or_default("DISCOVERY_TAG", "log-rotation=enabled".to_owned());
    let discovery_tag = match tag.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => (k.trim().to_owned(), v.trim().to_owned()),
        _ => {
            env.problem(format!("DISCOVERY_TAG={tag:?} is not key=value"));
            (String::new(), String::new())
        }
    };
    let db_user = env.or_default("DB_USER", "log_rotator".to_owned());
    let tls = match env.or_default("DB_TLS", "required".to_owned()).as_str() {
        "required" => Tls::Required {
            ca_file: env.optional("TLS_CA_FILE"),
        },
        "disabled" => Tls::Disabled,
        other => {
            env.problem(format!(
                "DB_TLS={other:?} is invalid: expected required or disabled"
            ));
            Tls::Disabled
        }
    };
    let archive_bucket: Option<String> = env.required("ARCHIVE_BUCKET");
    let prefix = env.or_default("ARCHIVE_PREFIX", "rds-logs".to_owned());
    let prefix = prefix.trim().trim_matches('/');
    let archive_prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let s3_force_path_style = env.flag("S3_FORCE_PATH_STYLE", false);
    let mut logs = Vec::new();
    for name in env
        .or_default("LOGS", "slow,general".to_owned())
        .split(',')
        .filter(|n| !n.trim().is_empty())
    {
        match Log::parse(name) {
            Some(log) if !logs.contains(&log) => logs.push(log),
            Some(_) => {}
            None => env.problem(format!("LOGS: {name:?} is not slow or general")),
        }
    }
    if logs.is_empty() {
        env.problem("LOGS must name slow, general or both");
    }
    let min_rows: u64 = env.or_default("MIN_ROWS", 1);
    if min_rows == 0 {
        env.problem(
            "MIN_ROWS=0 is invalid: an empty table is never rotated, so it must be at least 1",
        );
    }
    let schedule_minutes: u64 = env.or_default("SCHEDULE_MINUTES", 60);
    let top_n: usize = env.or_default("TOP_N", 20);
    let part_rows: u64 = env.or_default("PART_ROWS", 50_000);
    let max_part_mb: usize = env.or_default("MAX_PART_MB", 16);
    let concurrency: usize = env.or_default("CONCURRENCY", 2);
    for (name, zero) in [
        ("SCHEDULE_MINUTES", schedule_minutes == 0),
        ("PART_ROWS", part_rows == 0),
        ("MAX_PART_MB", max_part_mb == 0),
        ("CONCURRENCY", concurrency == 0),
    ] {
        if zero {
            env.problem(format!("{name}=0 is invalid: it must be at least 1"));
        }
    }
    env.finish()?;
    Ok(Config {
        region: region.expect("checked by finish"),
        targets,
        discovery_tag,
        default_secret,
        secret_arns,
        db_user,
        tls,
        archive_bucket: archive_bucket.expect("checked by finish"),
        s3_force_path_style,
        concurrency,
        rotator: Settings {
            archive_prefix,
            logs,
            part_rows,
            max_part_bytes: max_part_mb << 20,
            min_rows,
            schedule_secs: schedule_minutes * 60,
            top_n,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_defaults() {
        let config = from_env(EnvReader::from_map([
            ("AWS_REGION", "us-east-1"),
            ("ARCHIVE_BUCKET", "logs"),
            ("DB_INSTANCES", "orders,local=127.0.0.1:3307"),
            (
                "SECRET_ARN",
                "arn:aws:secretsmanager:us-east-1:1:secret:all",
            ),
            (
                "SECRET_ARNS",
                "local=arn:aws:secretsmanager:us-east-1:1:secret:local",
            ),
        ]))
        .unwrap();
        assert_eq!(config.targets.len(), 2);
        assert_eq!(
            config.targets[0].secret_arn.as_deref(),
            Some("arn:aws:secretsmanager:us-east-1:1:secret:all")
        );
        assert_eq!(
            config.targets[1].secret_arn.as_deref(),
            Some("arn:aws:secretsmanager:us-east-1:1:secret:local")
        );
        assert_eq!(config.targets[1].endpoint, Some(("127.0.0.1".into(), 3307)));
        assert_eq!(config.rotator.archive_prefix, "rds-logs/");
        assert_eq!(
            config.discovery_tag,
            ("log-rotation".into(), "enabled".into())
        );
        assert_eq!(config.tls, Tls::Required { ca_file: None });
    }

    #[test]
    fn every_problem_is_named() {
        let problems = from_env(EnvReader::from_map([
            ("DB_INSTANCES", "ok,9bad"),
            ("LOGS", "slow,audit"),
            ("MIN_ROWS", "0"),
            ("DB_TLS", "maybe"),
        ]))
        .unwrap_err()
        .to_string();
        for name in [
            "AWS_REGION",
            "ARCHIVE_BUCKET",
            "DB_INSTANCES",
            "\"audit\"",
            "MIN_ROWS",
            "DB_TLS",
        ] {
            assert!(problems.contains(name), "{name}: {problems}");
        }
    }
}
