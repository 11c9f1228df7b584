//! Typed resource properties.
//!
//! CloudFormation turns every scalar into a string ("5", "true"), while local
//! tests and the sample events often send real JSON numbers and booleans. The
//! `lenient` helpers accept both and reject anything else, and
//! [`parse_properties`] names the failing field in its error.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Keys CloudFormation adds to every custom resource's properties.
const RESERVED: [&str; 2] = ["ServiceToken", "ServiceTimeout"];

/// Properties that do not fit the resource type's schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid property {field}: {reason}")]
pub struct PropertyError {
    /// `Owners[1]`, or `(properties)` for the object as a whole.
    pub field: String,
    pub reason: String,
}

/// Parses `ResourceProperties` into `T`, ignoring the keys CloudFormation adds.
pub fn parse_properties<T: DeserializeOwned>(properties: &Value) -> Result<T, PropertyError> {
    let mut cleaned = match properties {
        Value::Null => Value::Object(Default::default()),
        other => other.clone(),
    };
    if let Value::Object(map) = &mut cleaned {
        for key in RESERVED {
            map.remove(key);
        }
    }
    serde_path_to_error::deserialize(cleaned).map_err(|e| {
        let path = e.path().to_string();
        let reason = e.inner().to_string();
        let field = if path == "." {
            // serde names a missing or unknown field in its message.
            field_in_message(&reason).unwrap_or_else(|| "(properties)".to_owned())
        } else {
            path
        };
        PropertyError { field, reason }
    })
}

fn field_in_message(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// `deserialize_with` helpers accepting CloudFormation's string scalars.
pub mod lenient {
    use serde::de::{Deserialize, Deserializer, Error};
    use serde_json::Value;
    use std::fmt::Display;
    use std::str::FromStr;

    fn describe(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "a list",
            Value::Object(_) => "an object",
        }
    }

    /// `true`, `"true"`, `"False"`; nothing else.
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(D::Error::custom(format!(
                    "expected true or false, got {s:?}"
                ))),
            },
            other => Err(D::Error::custom(format!(
                "expected true or false, got {}",
                describe(&other)
            ))),
        }
    }

    /// A number given as a JSON number or as its string form.
    pub fn number<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        let text = match Value::deserialize(d)? {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s,
            other => {
                return Err(D::Error::custom(format!(
                    "expected a number, got {}",
                    describe(&other)
                )));
            }
        };
        text.trim()
            .parse()
            .map_err(|e| D::Error::custom(format!("expected a number, got {text:?} ({e})")))
    }

    /// A list of strings, or one comma-separated string.
    pub fn string_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        let items = match Value::deserialize(d)? {
            Value::String(s) => s.split(',').map(|p| p.trim().to_owned()).collect(),
            Value::Array(values) => values
                .into_iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s),
                    other => Err(D::Error::custom(format!(
                        "list items must be strings, got {}",
                        describe(&other)
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            other => {
                return Err(D::Error::custom(format!(
                    "expected a list of strings, got {}",
                    describe(&other)
                )));
            }
        };
        let items: Vec<String> = items.into_iter().filter(|s| !s.is_empty()).collect();
        if items.is_empty() {
            return Err(D::Error::custom("expected at least one value"));
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "PascalCase", deny_unknown_fields)]
    struct Props {
        #[serde(deserialize_with = "lenient::number")]
        count: u32,
        #[serde(deserialize_with = "lenient::bool", default)]
        enabled: bool,
        #[serde(deserialize_with = "lenient::string_list")]
        owners: Vec<String>,
    }

    #[test]
    fn strings_and_native_scalars_both_parse() {
        let from_cfn: Props = parse_properties(&json!({
            "ServiceToken": "arn:aws:lambda:...", "ServiceTimeout": "60",
            "Count": "5", "Enabled": "true", "Owners": ["amazon", "self"]
        }))
        .unwrap();
        let native: Props =
            parse_properties(&json!({"Count": 5, "Enabled": true, "Owners": "amazon, self"}))
                .unwrap();
        assert_eq!(from_cfn, native);
        assert_eq!(from_cfn.count, 5);
        assert!(from_cfn.enabled);
    }

    #[test]
    fn garbage_names_the_field() {
        let cases = [
            (
                json!({"Count": "five", "Owners": ["a"]}),
                "Count",
                "expected a number",
            ),
            (
                json!({"Count": "5", "Enabled": "yes please", "Owners": ["a"]}),
                "Enabled",
                "true or false",
            ),
            (
                json!({"Count": "5", "Enabled": "1", "Owners": ["a"]}),
                "Enabled",
                "true or false",
            ),
            (
                json!({"Count": "-1", "Owners": ["a"]}),
                "Count",
                "expected a number",
            ),
            (json!({"Owners": ["a"]}), "count", "missing field"),
            (
                json!({"Count": 1, "Owners": [1]}),
                "Owners",
                "must be strings",
            ),
            (json!({"Count": 1, "Owners": []}), "Owners", "at least one"),
            (
                json!({"Count": 1, "Owners": ["a"], "Ownerz": 1}),
                "Ownerz",
                "unknown field",
            ),
        ];
        for (props, field, reason) in cases {
            let err = parse_properties::<Props>(&props).unwrap_err();
            assert!(err.field.eq_ignore_ascii_case(field), "{props}: {err}");
            assert!(err.reason.contains(reason), "{props}: {err}");
        }
    }
}
