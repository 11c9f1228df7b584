//! JSON records to DynamoDB items, numbers kept exactly as written.
//!
//! Parsing through `f64` would silently round `12345678901234567890.123`;
//! instead each value is read as raw JSON text and numbers become `N` with
//! their original digits, after checking DynamoDB can hold them.

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::value::RawValue;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB nests documents at most 32 levels deep.
const MAX_DEPTH: usize = 32;
/// DynamoDB numbers carry at most 38 significant digits.
const MAX_DIGITS: usize = 38;

/// Why a record cannot become an item. Every case is permanent: retrying
/// cannot help, so such records are poison.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    #[error("record is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("record is {0}, not a JSON object")]
    NotAnObject(&'static str),
    #[error("number {number} at {path} has more than 38 significant digits")]
    TooPrecise { number: String, path: String },
    #[error("number {number} at {path} is outside DynamoDB's range (1E-130 to 9.9E+125)")]
    OutOfRange { number: String, path: String },
    #[error("document nests deeper than {MAX_DEPTH} levels at {path}")]
    TooDeep { path: String },
}

fn invalid(e: serde_json::Error) -> ConvertError {
    ConvertError::InvalidJson(e.to_string())
}

impl ConvertError {
    /// Prefixes the path of a nested error with the segment it came through;
    /// paths are only built on the (rare) error path, not per field.
    fn within(self, segment: &str) -> Self {
        let prefix = |path: String| format!("/{segment}{path}");
        match self {
            Self::TooPrecise { number, path } => Self::TooPrecise {
                number,
                path: prefix(path),
            },
            Self::OutOfRange { number, path } => Self::OutOfRange {
                number,
                path: prefix(path),
            },
            Self::TooDeep { path } => Self::TooDeep { path: prefix(path) },
            other => other,
        }
    }
}

/// Converts one UTF-8 JSON object to an item.
pub fn json_to_item(bytes: &[u8]) -> Result<Item, ConvertError> {
    let raw: &RawValue = serde_json::from_slice(bytes).map_err(invalid)?;
    match value(raw, 0)? {
        AttributeValue::M(map) => Ok(map),
        AttributeValue::L(_) => Err(ConvertError::NotAnObject("an array")),
        AttributeValue::S(_) => Err(ConvertError::NotAnObject("a string")),
        AttributeValue::N(_) => Err(ConvertError::NotAnObject("a number")),
        AttributeValue::Bool(_) => Err(ConvertError::NotAnObject("a boolean")),
        _ => Err(ConvertError::NotAnObject("null")),
    }
}

fn value(raw: &RawValue, depth: usize) -> Result<AttributeValue, ConvertError> {
    let text = raw.get();
    Ok(match text.as_bytes().first() {
        Some(b'{') => {
            if depth >= MAX_DEPTH {
                return Err(ConvertError::TooDeep {
                    path: String::new(),
                });
            }
            let fields: HashMap<String, &RawValue> = serde_json::from_str(text).map_err(invalid)?;
            let mut map = HashMap::with_capacity(fields.len());
            for (key, raw) in fields {
                let child = value(raw, depth + 1).map_err(|e| e.within(&key))?;
                map.insert(key, child);
            }
            AttributeValue::M(map)
        }
        Some(b'[') => {
            if depth >= MAX_DEPTH {
                return Err(ConvertError::TooDeep {
                    path: String::new(),
                });
            }
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(invalid)?;
            let list = items
                .into_iter()
                .enumerate()
                .map(|(i, raw)| value(raw, depth + 1).map_err(|e| e.within(&i.to_string())))
                .collect::<Result<_, _>>()?;
            AttributeValue::L(list)
        }
        Some(b'"') => AttributeValue::S(serde_json::from_str(text).map_err(invalid)?),
        Some(b't') => AttributeValue::Bool(true),
        Some(b'f') => AttributeValue::Bool(false),
        Some(b'n') => AttributeValue::Null(true),
        _ => AttributeValue::N(checked_number(text, "")?),
    })
}

/// Checks a JSON number (already validated as JSON) against DynamoDB's
/// limits and returns its text unchanged.
pub fn checked_number(text: &str, path: &str) -> Result<String, ConvertError> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (
            &unsigned[..i],
            unsigned[i + 1..].parse::<i64>().unwrap_or(i64::MAX),
        ),
        None => (unsigned, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits: String = format!("{int_part}{frac_part}");
    let leading_zeros = digits.bytes().take_while(|&b| b == b'0').count();
    if leading_zeros == digits.len() {
        return Ok(text.to_owned()); // zero
    }
    let significant = digits[leading_zeros..].trim_end_matches('0');
    if significant.len() > MAX_DIGITS {
        return Err(ConvertError::TooPrecise {
            number: text.to_owned(),
            path: path.to_owned(),
        });
    }
    // The power of ten of the first significant digit.
    let magnitude = int_part.len() as i64 - 1 - leading_zeros as i64 + exponent;
    if !(-130..=125).contains(&magnitude) {
        return Err(ConvertError::OutOfRange {
            number: text.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(text.to_owned())
}

/// An upper bound of DynamoDB's size for `item` (names plus values), so
/// that items over the 400 KB limit are caught before any write.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        // Stored as about one byte per two digits; the text length bounds it.
        AttributeValue::N(n) => n.len(),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// The value at an RFC 6901 JSON pointer (`/a/0/b`, `~1` for `/`, `~0` for `~`).
pub fn at_pointer<'a>(item: &'a Item, pointer: &str) -> Option<&'a AttributeValue> {
    let mut tokens = pointer
        .strip_prefix('/')?
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"));
    let mut current = item.get(&tokens.next()?)?;
    for token in tokens {
        current = match current {
            AttributeValue::M(map) => map.get(&token)?,
            AttributeValue::L(list) => list.get(token.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &AttributeValue) -> &str {
        v.as_n().unwrap()
    }

    #[test]
    fn every_json_type_maps_and_numbers_keep_their_digits() {
        let item = json_to_item(
            br#"{"id":"a-1","big":12345678901234567890.123,"neg":-0.000001,"exp":1.5e10,
                "ok":true,"no":false,"nothing":null,"tags":["x",2,{"deep":[]}],"nested":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(item["id"], AttributeValue::S("a-1".into()));
        assert_eq!(n(&item["big"]), "12345678901234567890.123");
        assert_eq!(n(&item["neg"]), "-0.000001");
        assert_eq!(n(&item["exp"]), "1.5e10");
        assert_eq!(item["ok"], AttributeValue::Bool(true));
        assert_eq!(item["no"], AttributeValue::Bool(false));
        assert_eq!(item["nothing"], AttributeValue::Null(true));
        let tags = item["tags"].as_l().unwrap();
        assert_eq!(tags[0], AttributeValue::S("x".into()));
        assert_eq!(n(&tags[1]), "2");
        assert_eq!(tags[2].as_m().unwrap()["deep"], AttributeValue::L(vec![]));
        assert_eq!(
            item["nested"].as_m().unwrap()["k"],
            AttributeValue::S("v".into())
        );
    }

    #[test]
    fn poison_kinds_are_named() {
        assert!(matches!(
            json_to_item(b"{not json"),
            Err(ConvertError::InvalidJson(_))
        ));
        assert!(matches!(
            json_to_item(&[0xff, 0xfe]),
            Err(ConvertError::InvalidJson(_))
        ));
        assert_eq!(
            json_to_item(b"[1]"),
            Err(ConvertError::NotAnObject("an array"))
        );
        assert_eq!(
            json_to_item(b"\"s\""),
            Err(ConvertError::NotAnObject("a string"))
        );
        let precise = format!("{{\"x\":{{\"y\":1.{}}}}}", "1".repeat(40));
        assert!(
            matches!(json_to_item(precise.as_bytes()), Err(ConvertError::TooPrecise { path, .. }) if path == "/x/y")
        );
        assert!(matches!(
            json_to_item(b"{\"x\":1e200}"),
            Err(ConvertError::OutOfRange { .. })
        ));
        let deep = format!(
            "{}{}",
            "{\"a\":".repeat(40),
            "1".to_owned() + &"}".repeat(40)
        );
        assert!(matches!(
            json_to_item(deep.as_bytes()),
            Err(ConvertError::TooDeep { .. })
        ));
    }

    #[test]
    fn number_limits() {
        let ok = |t: &str| checked_number(t, "/n").is_ok();
        assert!(ok("0") && ok("-0.0") && ok("0e999"));
        assert!(ok(&"9".repeat(38)) && !ok(&"9".repeat(39)));
        assert!(
            ok(&format!("{}000", "9".repeat(38))),
            "trailing zeros are not significant"
        );
        assert!(ok("1e125") && !ok("1e126") && ok("9.9e125"));
        assert!(ok("1e-130") && !ok("1e-131") && ok("0.001e-127"));
    }
}
