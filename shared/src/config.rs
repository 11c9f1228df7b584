//! Typed configuration from environment variables.
//!
//! Every variable is read before anything fails, so one error names every
//! missing or invalid variable at once instead of one per deploy.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// All the problems found while reading the configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {}", .problems.join("; "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// Reads variables, collecting problems until [`EnvReader::finish`].
pub struct EnvReader {
    vars: HashMap<String, String>,
    problems: Vec<String>,
}

impl EnvReader {
    /// Reads the process environment.
    pub fn from_env() -> Self {
        Self::from_map(std::env::vars())
    }

    /// Reads the given pairs instead of the environment (tests, tools).
    pub fn from_map<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            problems: Vec::new(),
        }
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn parse<T>(&mut self, name: &str, raw: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match raw.parse::<T>() {
            Ok(v) => Some(v),
            Err(e) => {
                self.problems
                    .push(format!("{name}={raw:?} is invalid: {e}"));
                None
            }
        }
    }

    /// A variable that must be set.
    pub fn required<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.raw(name).map(str::to_owned) {
            Some(raw) => self.parse(name, &raw),
            None => {
                self.problems
                    .push(format!("{name} is required but not set"));
                None
            }
        }
    }

    /// A variable that may be absent or empty.
    pub fn optional<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        let raw = self.raw(name)?.to_owned();
        self.parse(name, &raw)
    }

    /// A variable with a default when absent or empty.
    pub fn or_default<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        self.optional(name).unwrap_or(default)
    }

    /// A boolean: true/false, yes/no, 1/0, on/off, in any case.
    pub fn flag(&mut self, name: &str, default: bool) -> bool {
        let Some(raw) = self.raw(name).map(str::to_owned) else {
            return default;
        };
        match parse_flag(&raw) {
            Some(v) => v,
            None => {
                self.problems
                    .push(format!("{name}={raw:?} is invalid: expected true or false"));
                default
            }
        }
    }

    /// A duration given in milliseconds.
    pub fn millis(&mut self, name: &str, default: Duration) -> Duration {
        self.optional::<u64>(name)
            .map(Duration::from_millis)
            .unwrap_or(default)
    }

    /// A comma-separated list: items trimmed, empty items dropped; unset or
    /// blank is empty.
    pub fn list(&mut self, name: &str) -> Vec<String> {
        self.raw(name).map(split_list).unwrap_or_default()
    }

    /// [`EnvReader::list`], reading `default` when the variable is unset or
    /// blank.
    pub fn list_or(&mut self, name: &str, default: &str) -> Vec<String> {
        split_list(self.raw(name).unwrap_or(default))
    }

    /// A `k=v,k=v` list, keys and values trimmed (a later key wins). An item
    /// without `=`, or whose trimmed key and value fail `valid`, is reported
    /// as `{name}: {item:?} is not {shape}` and left out.
    pub fn pairs(
        &mut self,
        name: &str,
        shape: &str,
        valid: impl Fn(&str, &str) -> bool,
    ) -> BTreeMap<String, String> {
        let mut pairs = BTreeMap::new();
        for item in self.list(name) {
            match item.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
                Some((key, value)) if valid(key, value) => {
                    pairs.insert(key.to_owned(), value.to_owned());
                }
                _ => self.problem(format!("{name}: {item:?} is not {shape}")),
            }
        }
        pairs
    }

    /// A count with a default that must not be 0, reported as
    /// `{name}=0 is invalid: it must be at least 1`.
    pub fn at_least_one<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr + PartialEq + From<u8>,
        T::Err: fmt::Display,
    {
        self.at_least_one_because(name, default, "it must be at least 1")
    }

    /// [`EnvReader::at_least_one`] where 0 deserves its own explanation:
    /// reported as `{name}=0 is invalid: {reason}`.
    pub fn at_least_one_because<T>(&mut self, name: &str, default: T, reason: &str) -> T
    where
        T: FromStr + PartialEq + From<u8>,
        T::Err: fmt::Display,
    {
        let value = self.or_default(name, default);
        if value == T::from(0) {
            self.problem(format!("{name}=0 is invalid: {reason}"));
        }
        value
    }

    /// Records a problem found by the caller's own cross-field checks.
    pub fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(message.into());
    }

    /// Ends reading: `Err` names every problem seen.
    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError {
                problems: self.problems,
            })
        }
    }
}

/// Splits a comma-separated list: items trimmed, empty items dropped.
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses the boolean spellings accepted everywhere in the suite.
pub fn parse_flag(raw: &str) -> Option<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "on" => Some(true),
        "false" | "no" | "0" | "off" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_error_names_every_bad_variable() {
        let mut env = EnvReader::from_map([("PORT", "eighty"), ("ENABLED", "maybe")]);
        let _: Option<String> = env.required("TABLE_NAME");
        let _: Option<u16> = env.optional("PORT");
        let _ = env.flag("ENABLED", false);
        let err = env.finish().unwrap_err();
        let text = err.to_string();
        assert_eq!(err.problems.len(), 3, "{text}");
        assert!(
            text.contains("TABLE_NAME is required but not set"),
            "{text}"
        );
        assert!(text.contains("PORT=\"eighty\" is invalid"), "{text}");
        assert!(text.contains("ENABLED=\"maybe\" is invalid"), "{text}");
    }

    #[test]
    fn values_defaults_and_blank_variables() {
        let mut env = EnvReader::from_map([("A", " 42 "), ("B", ""), ("C", "YES"), ("D", "1500")]);
        assert_eq!(env.required::<u32>("A"), Some(42));
        assert_eq!(env.or_default("B", 7u32), 7);
        assert!(env.flag("C", false));
        assert_eq!(env.millis("D", Duration::ZERO), Duration::from_millis(1500));
        assert_eq!(
            env.millis("E", Duration::from_secs(1)),
            Duration::from_secs(1)
        );
        assert!(env.finish().is_ok());
    }

    #[test]
    fn lists_trim_drop_empty_items_and_fall_back_to_the_default() {
        let mut env = EnvReader::from_map([("A", " x , ,y,, z "), ("B", "  "), ("C", "solo")]);
        assert_eq!(env.list("A"), ["x", "y", "z"]);
        assert!(env.list("B").is_empty());
        assert!(env.list("UNSET").is_empty());
        assert_eq!(env.list_or("B", "slow,general"), ["slow", "general"]);
        assert_eq!(env.list_or("UNSET", ""), Vec::<String>::new());
        assert_eq!(env.list_or("C", "other"), ["solo"]);
        assert_eq!(split_list(",a,"), ["a"]);
        assert!(env.finish().is_ok());
    }

    #[test]
    fn pairs_keep_valid_items_and_name_each_bad_one() {
        let mut env = EnvReader::from_map([(
            "KEYS",
            " us-west-2 = alias/dr ,nonsense, eu-west-1=,us-west-2=alias/later",
        )]);
        let keys = env.pairs("KEYS", "region=key", |k, v| {
            k.contains('-') && !v.is_empty()
        });
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            [("us-west-2".to_owned(), "alias/later".to_owned())]
        );
        let err = env.finish().unwrap_err();
        assert_eq!(
            err.problems,
            [
                "KEYS: \"nonsense\" is not region=key",
                "KEYS: \"eu-west-1=\" is not region=key",
            ]
        );
    }

    #[test]
    fn zero_counts_are_reported_with_their_reason() {
        let mut env = EnvReader::from_map([("A", "0"), ("B", "0"), ("C", "5")]);
        assert_eq!(env.at_least_one("A", 3usize), 0);
        assert_eq!(env.at_least_one_because("B", 3u64, "it is a watchdog"), 0);
        assert_eq!(env.at_least_one("C", 3u32), 5);
        assert_eq!(env.at_least_one("UNSET", 7u32), 7);
        let err = env.finish().unwrap_err();
        assert_eq!(
            err.problems,
            [
                "A=0 is invalid: it must be at least 1",
                "B=0 is invalid: it is a watchdog",
            ]
        );
    }
}
