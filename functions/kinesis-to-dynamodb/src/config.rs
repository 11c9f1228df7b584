//! Environment configuration.

use crate::batch_write::Backoff;
use shared::config::{ConfigError, EnvReader};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One item per key holding the newest record; conditional writes.
    Latest,
    /// Every record kept, keyed by key plus position; BatchWriteItem.
    Append,
}

/// Where a key attribute's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A JSON pointer into the record; missing makes the record poison,
    /// unless `or_partition_key` lets the Kinesis partition key stand in.
    Pointer {
        pointer: String,
        or_partition_key: bool,
    },
    /// The Kinesis partition key.
    PartitionKey,
    /// The record's position (sequence number, then KPL sub-record), as
    /// sortable text: append mode's sort key.
    Position,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub table: String,
    pub partition_key: String,
    pub partition_key_source: KeySource,
    pub sort_key: Option<(String, KeySource)>,
    pub mode: Mode,
    pub rejects_table: String,
    pub max_in_flight: usize,
    /// No request starts, and no retry waits, later than this before the
    /// Lambda deadline; a request still running at half of it is abandoned.
    /// So the response (and its checkpoint) is always returned in time.
    pub deadline_margin: Duration,
    pub backoff: Backoff,
}

fn source(raw: &str) -> Result<KeySource, String> {
    match raw {
        "partitionKey" => Ok(KeySource::PartitionKey),
        "sequenceNumber" => Ok(KeySource::Position),
        p if p.starts_with('/') => Ok(KeySource::Pointer {
            pointer: p.to_owned(),
            or_partition_key: false,
        }),
        other => Err(format!(
            "{other:?} is invalid: expected a JSON pointer such as /id, partitionKey or sequenceNumber"
        )),
    }
}

/// Every default, once. The names (table, keys) have none: `from_env`
/// requires them.
impl Default for Config {
    fn default() -> Self {
        Self {
            table: String::new(),
            partition_key: String::new(),
            partition_key_source: KeySource::Pointer {
                pointer: "/id".into(),
                or_partition_key: true,
            },
            sort_key: None,
            mode: Mode::Latest,
            rejects_table: String::new(),
            max_in_flight: 16,
            deadline_margin: Duration::from_secs(2),
            backoff: Backoff {
                base: Duration::from_millis(25),
                max: Duration::from_secs(2),
            },
        }
    }
}

impl Config {
    /// Reads TABLE_NAME, PARTITION_KEY, PARTITION_KEY_SOURCE (default: the
    /// pointer /id, else the Kinesis partition key), SORT_KEY and
    /// SORT_KEY_SOURCE, MODE (latest | append), REJECTS_TABLE_NAME,
    /// MAX_IN_FLIGHT (default 16), DEADLINE_MARGIN_MS (default 2000), and
    /// RETRY_BASE_DELAY_MS / RETRY_MAX_DELAY_MS (default 25 / 2000).
    pub fn from_env(mut env: EnvReader) -> Result<Self, ConfigError> {
        let defaults = Config::default();
        let table: Option<String> = env.required("TABLE_NAME");
        let partition_key: Option<String> = env.required("PARTITION_KEY");
        let rejects_table: Option<String> = env.required("REJECTS_TABLE_NAME");
        let mode = read_mode(&mut env);
        let partition_key_source =
            read_partition_key_source(&mut env, defaults.partition_key_source);
        let sort_key = read_sort_key(&mut env, mode);
        let max_in_flight: usize = env.or_default("MAX_IN_FLIGHT", defaults.max_in_flight);
        if max_in_flight == 0 {
            env.problem("MAX_IN_FLIGHT must be at least 1");
        }
        let deadline_margin = env.millis("DEADLINE_MARGIN_MS", defaults.deadline_margin);
        let backoff = Backoff {
            base: env.millis("RETRY_BASE_DELAY_MS", defaults.backoff.base),
            max: env.millis("RETRY_MAX_DELAY_MS", defaults.backoff.max),
        };
        env.finish()?;
        Ok(Self {
            table: table.unwrap_or_default(),
            partition_key: partition_key.unwrap_or_default(),
            partition_key_source,
            sort_key,
            mode,
            rejects_table: rejects_table.unwrap_or_default(),
            max_in_flight,
            deadline_margin,
            backoff,
        })
    }
}

fn read_mode(env: &mut EnvReader) -> Mode {
    match env
        .optional::<String>("MODE")
        .as_deref()
        .unwrap_or("latest")
    {
        "latest" => Mode::Latest,
        "append" => Mode::Append,
        other => {
            env.problem(format!(
                "MODE={other:?} is invalid: expected latest or append"
            ));
            Mode::Latest
        }
    }
}

/// A key source variable, if set and valid (a bad one is reported).
fn read_source(env: &mut EnvReader, name: &str) -> Option<KeySource> {
    match env.optional::<String>(name) {
        None => None,
        Some(raw) => source(&raw)
            .map_err(|e| env.problem(format!("{name}={e}")))
            .ok(),
    }
}

fn read_partition_key_source(env: &mut EnvReader, default: KeySource) -> KeySource {
    let source = read_source(env, "PARTITION_KEY_SOURCE").unwrap_or(default);
    if source == KeySource::Position {
        env.problem(
            "PARTITION_KEY_SOURCE cannot be sequenceNumber: every record would get its own key",
        );
    }
    source
}

/// SORT_KEY and SORT_KEY_SOURCE, which must agree with the mode.
fn read_sort_key(env: &mut EnvReader, mode: Mode) -> Option<(String, KeySource)> {
    let sort_key_name: Option<String> = env.optional("SORT_KEY");
    let sort_source = read_source(env, "SORT_KEY_SOURCE");
    match (mode, sort_key_name, sort_source) {
        (Mode::Append, None, _) => {
            env.problem(
                "SORT_KEY is required with MODE=append: items are keyed by key plus sequence",
            );
            None
        }
        (Mode::Append, Some(name), None | Some(KeySource::Position)) => {
            Some((name, KeySource::Position))
        }
        (Mode::Append, Some(_), Some(_)) => {
            env.problem("SORT_KEY_SOURCE must be sequenceNumber (or unset) with MODE=append");
            None
        }
        (Mode::Latest, Some(_), Some(KeySource::Position)) => {
            env.problem("SORT_KEY_SOURCE=sequenceNumber turns latest into append: use MODE=append");
            None
        }
        (Mode::Latest, Some(name), None) => {
            env.problem(format!(
                "SORT_KEY={name} needs SORT_KEY_SOURCE with MODE=latest"
            ));
            None
        }
        (Mode::Latest, Some(name), Some(source)) => Some((name, source)),
        (Mode::Latest, None, Some(_)) => {
            env.problem("SORT_KEY_SOURCE is set but SORT_KEY is not");
            None
        }
        (Mode::Latest, None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let base = [
            ("TABLE_NAME", "items"),
            ("PARTITION_KEY", "pk"),
            ("REJECTS_TABLE_NAME", "rejects"),
        ];
        Config::from_env(EnvReader::from_map(base.iter().chain(pairs).copied()))
    }

    #[test]
    fn defaults_to_latest_keyed_by_id_or_partition_key() {
        let c = config(&[]).unwrap();
        assert_eq!(c.mode, Mode::Latest);
        assert_eq!(
            c.partition_key_source,
            KeySource::Pointer {
                pointer: "/id".into(),
                or_partition_key: true
            }
        );
        assert_eq!(c.sort_key, None);
        assert_eq!(c.max_in_flight, 16);
    }

    #[test]
    fn append_sorts_by_position() {
        let c = config(&[
            ("MODE", "append"),
            ("SORT_KEY", "seq"),
            ("PARTITION_KEY_SOURCE", "partitionKey"),
        ])
        .unwrap();
        assert_eq!(c.sort_key, Some(("seq".into(), KeySource::Position)));
        assert_eq!(c.partition_key_source, KeySource::PartitionKey);
    }

    #[test]
    fn every_problem_is_named() {
        let err = Config::from_env(EnvReader::from_map([
            ("MODE", "newest"),
            ("PARTITION_KEY_SOURCE", "id"),
            ("MAX_IN_FLIGHT", "0"),
        ]))
        .unwrap_err()
        .to_string();
        for expected in [
            "TABLE_NAME is required",
            "PARTITION_KEY is required",
            "REJECTS_TABLE_NAME is required",
            "MODE=\"newest\"",
            "PARTITION_KEY_SOURCE=\"id\" is invalid",
            "MAX_IN_FLIGHT must be at least 1",
        ] {
            assert!(err.contains(expected), "{expected}: {err}");
        }
        let err = config(&[("MODE", "append")]).unwrap_err().to_string();
        assert!(
            err.contains("SORT_KEY is required with MODE=append"),
            "{err}"
        );
    }
}
