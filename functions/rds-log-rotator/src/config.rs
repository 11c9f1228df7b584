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

/// Every default, once; `region` and `archive_bucket` are required, so
/// theirs are never used.
impl Default for Config {
    fn default() -> Self {
        Self {
            region: String::new(),
            targets: Vec::new(),
            discovery_tag: ("log-rotation".to_owned(), "enabled".to_owned()),
            default_secret: None,
            secret_arns: BTreeMap::new(),
            db_user: "log_rotator".to_owned(),
            tls: Tls::Required { ca_file: None },
            archive_bucket: String::new(),
            s3_force_path_style: false,
            concurrency: 2,
            rotator: Settings::default(),
        }
    }
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

impl Config {
    /// Reads AWS_REGION; DB_INSTANCES (`id` or `id=host:port`, comma-separated)
    /// or discovery by DISCOVERY_TAG (`log-rotation=enabled`); DB_USER
    /// (log_rotator); SECRET_ARN and SECRET_ARNS (`id=arn,...`), else IAM
    /// authentication; DB_TLS (required|disabled) and TLS_CA_FILE;
    /// ARCHIVE_BUCKET, ARCHIVE_PREFIX (rds-logs), S3_FORCE_PATH_STYLE; LOGS
    /// (slow,general); MIN_ROWS (1); SCHEDULE_MINUTES (60); TOP_N (20);
    /// PART_ROWS (50000); MAX_PART_MB (16); CONCURRENCY (2).
    pub fn from_env(mut env: EnvReader) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let region: Option<String> = env.required("AWS_REGION");
        let secret_arns = env.pairs("SECRET_ARNS", "id=arn:aws:secretsmanager:...", |_, arn| {
            arn.starts_with("arn:")
        });
        let default_secret: Option<String> = env.optional("SECRET_ARN");
        if default_secret
            .as_ref()
            .is_some_and(|a| !a.starts_with("arn:"))
        {
            env.problem("SECRET_ARN must be a secret ARN (arn:aws:secretsmanager:...)");
        }
        let targets = read_targets(&mut env, &secret_arns, default_secret.as_ref());
        let discovery_tag = read_discovery_tag(&mut env, &defaults.discovery_tag);
        let db_user = env.or_default("DB_USER", defaults.db_user);
        let tls = read_tls(&mut env);
        let archive_bucket: Option<String> = env.required("ARCHIVE_BUCKET");
        let archive_prefix = read_archive_prefix(&mut env, &defaults.rotator.archive_prefix);
        let s3_force_path_style = env.flag("S3_FORCE_PATH_STYLE", defaults.s3_force_path_style);
        let logs = read_logs(&mut env, &defaults.rotator.logs);
        let limits = &defaults.rotator;
        let min_rows = env.at_least_one_because(
            "MIN_ROWS",
            limits.min_rows,
            "an empty table is never rotated, so it must be at least 1",
        );
        let schedule_minutes = env.at_least_one("SCHEDULE_MINUTES", limits.schedule_secs / 60);
        let top_n: usize = env.or_default("TOP_N", limits.top_n);
        let part_rows = env.at_least_one("PART_ROWS", limits.part_rows);
        let max_part_mb = env.at_least_one("MAX_PART_MB", limits.max_part_bytes >> 20);
        let concurrency = env.at_least_one("CONCURRENCY", defaults.concurrency);
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
}

fn read_targets(
    env: &mut EnvReader,
    secret_arns: &BTreeMap<String, String>,
    default_secret: Option<&String>,
) -> Vec<Target> {
    let mut targets = Vec::new();
    for entry in env.list("DB_INSTANCES") {
        match parse_entry(&entry) {
            Ok((id, endpoint)) => {
                let secret_arn = secret_for(secret_arns, default_secret, &id);
                targets.push(Target {
                    id,
                    endpoint,
                    secret_arn,
                });
            }
            Err(e) => env.problem(format!("DB_INSTANCES: {e}")),
        }
    }
    targets
}

fn read_discovery_tag(env: &mut EnvReader, (key, value): &(String, String)) -> (String, String) {
    let tag = env.or_default("DISCOVERY_TAG", format!("{key}={value}"));
    match tag.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => (k.trim().to_owned(), v.trim().to_owned()),
        _ => {
            env.problem(format!("DISCOVERY_TAG={tag:?} is not key=value"));
            (String::new(), String::new())
        }
    }
}

fn read_tls(env: &mut EnvReader) -> Tls {
    match env.or_default("DB_TLS", "required".to_owned()).as_str() {
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
    }
}

/// "" or "dir/".
fn read_archive_prefix(env: &mut EnvReader, default: &str) -> String {
    let prefix = env.or_default("ARCHIVE_PREFIX", default.trim_end_matches('/').to_owned());
    let prefix = prefix.trim().trim_matches('/');
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    }
}

fn read_logs(env: &mut EnvReader, default: &[Log]) -> Vec<Log> {
    let default: Vec<&str> = default.iter().map(|log| log.name()).collect();
    let mut logs = Vec::new();
    // Not EnvReader::list: a bad name is quoted untrimmed, as it was given.
    for name in env
        .or_default("LOGS", default.join(","))
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
    logs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_defaults() {
        let config = Config::from_env(EnvReader::from_map([
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
        let problems = Config::from_env(EnvReader::from_map([
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
