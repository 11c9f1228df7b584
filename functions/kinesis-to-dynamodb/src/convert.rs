//! JSON records to DynamoDB items, numbers kept exactly as written.
//!
//! Parsing through `f64` would silently round `12345678901234567890.123`;
//! instead each value is read as raw JSON text and numbers become `N` with
//! their original digits, after checking DynamoDB can hold them.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

pub type Item = HashMap<String, AttributeValue>;

/// DynamoDB nests documents at most 32 levels deep.
const MAX_DEPTH: usize = 32;
/// Attributes the function adds to each item: its key and the record's
/// position, shard and arrival time.
const ADDED_ATTRIBUTES: usize = 5;
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
    /// DynamoDB refuses an empty attribute name (ValidationException), in
    /// a nested map too: known up front, it is a reject found during
    /// conversion, batched, not one refused write per record.
    #[error("attribute name at {path} is empty (DynamoDB refuses empty names)")]
    EmptyName { path: String },
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
            Self::EmptyName { path } => Self::EmptyName { path: prefix(path) },
            other => other,
        }
    }
}

/// Converts one UTF-8 JSON object to an item.
///
/// One pass over the bytes, straight to attribute values: going through
/// `serde_json` would either round numbers (`f64`) or re-scan every nesting
/// level (`RawValue`), and this is the function's hot path.
pub fn json_to_item(bytes: &[u8]) -> Result<Item, ConvertError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ConvertError::InvalidJson(format!("not UTF-8: {e}")))?;
    let mut parser = Parser {
        text,
        bytes: text.as_bytes(),
        at: 0,
        fields: Vec::new(),
    };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.at != bytes.len() {
        return Err(parser.invalid("trailing characters"));
    }
    match value {
        AttributeValue::M(map) => Ok(map),
        AttributeValue::L(_) => Err(ConvertError::NotAnObject("an array")),
        AttributeValue::S(_) => Err(ConvertError::NotAnObject("a string")),
        AttributeValue::N(_) => Err(ConvertError::NotAnObject("a number")),
        AttributeValue::Bool(_) => Err(ConvertError::NotAnObject("a boolean")),
        _ => Err(ConvertError::NotAnObject("null")),
    }
}

/// A recursive-descent JSON (RFC 8259) reader over text already known to be
/// UTF-8. Every index it slices at sits on an ASCII byte, so on a char
/// boundary.
struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    fields: Vec<(String, AttributeValue)>,
}

impl Parser<'_> {
    fn invalid(&self, what: &str) -> ConvertError {
        ConvertError::InvalidJson(format!("{what} at byte {}", self.at))
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Result<AttributeValue, ConvertError> {
        match self.peek() {
            Some(b'{' | b'[') if depth >= MAX_DEPTH => Err(ConvertError::TooDeep {
                path: String::new(),
            }),
            Some(b'{') => self.object(depth).map(AttributeValue::M),
            Some(b'[') => self.list(depth).map(AttributeValue::L),
            Some(b'"') => self.string().map(AttributeValue::S),
            Some(b't') => self.literal("true", AttributeValue::Bool(true)),
            Some(b'f') => self.literal("false", AttributeValue::Bool(false)),
            Some(b'n') => self.literal("null", AttributeValue::Null(true)),
            Some(b'-' | b'0'..=b'9') => self.number().map(AttributeValue::N),
            _ => Err(self.invalid("expected a value")),
        }
    }

    fn literal(
        &mut self,
        word: &str,
        value: AttributeValue,
    ) -> Result<AttributeValue, ConvertError> {
        if !self.bytes[self.at..].starts_with(word.as_bytes()) {
            return Err(self.invalid("expected a value"));
        }
        self.at += word.len();
        Ok(value)
    }

    /// After a value inside a container: true if another one follows.
    fn another(&mut self, close: u8) -> Result<bool, ConvertError> {
        self.skip_whitespace();
        match self.peek() {
            Some(b',') => {
                self.at += 1;
                self.skip_whitespace();
                Ok(true)
            }
            Some(b) if b == close => {
                self.at += 1;
                Ok(false)
            }
            _ => Err(self.invalid(if close == b'}' {
                "expected ',' or '}'"
            } else {
                "expected ',' or ']'"
            })),
        }
    }

    /// Opens a container; true if it is not empty.
    fn open(&mut self, close: u8) -> bool {
        self.at += 1;
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.at += 1;
            return false;
        }
        true
    }

    fn object(&mut self, depth: usize) -> Result<Item, ConvertError> {
        // Fields gather on a stack shared by all levels, so each map is
        // allocated once at its final size (the top one with room for the
        // attributes the function adds).
        let base = self.fields.len();
        let mut more = self.open(b'}');
        while more {
            if self.peek() != Some(b'"') {
                return Err(self.invalid("expected a string key"));
            }
            let key = self.string()?;
            if key.is_empty() {
                // The JSON pointer of an empty name: "/" under its object.
                return Err(ConvertError::EmptyName { path: "/".into() });
            }
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.invalid("expected ':'"));
            }
            self.at += 1;
            self.skip_whitespace();
            let value = self.value(depth + 1).map_err(|e| e.within(&key))?;
            self.fields.push((key, value));
            more = self.another(b'}')?;
        }
        let room = if depth == 0 { ADDED_ATTRIBUTES } else { 0 };
        let mut map = HashMap::with_capacity(self.fields.len() - base + room);
        // A repeated name keeps its last value, as serde_json does.
        map.extend(self.fields.drain(base..));
        Ok(map)
    }

    fn list(&mut self, depth: usize) -> Result<Vec<AttributeValue>, ConvertError> {
        let mut list = Vec::new();
        let mut more = self.open(b']');
        while more {
            let value = self
                .value(depth + 1)
                .map_err(|e| e.within(&list.len().to_string()))?;
            list.push(value);
            more = self.another(b']')?;
        }
        Ok(list)
    }

    /// Moves past bytes that a string copies verbatim: eight at a time
    /// while none of them is `"`, a backslash or a control character.
    fn skip_plain(&mut self) {
        const ONES: u64 = 0x0101_0101_0101_0101;
        const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
        // High bit set in each byte of `word` below `n` (exact for "any").
        let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH_BITS;
        while let Some(chunk) = self.bytes.get(self.at..self.at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if below(word ^ (ONES * u64::from(b'"')), 1) != 0
                || below(word ^ (ONES * u64::from(b'\\')), 1) != 0
                || below(word, 0x20) != 0
            {
                break;
            }
            self.at += 8;
        }
        while let Some(b) = self.peek() {
            if b == b'"' || b == b'\\' || b < 0x20 {
                break;
            }
            self.at += 1;
        }
    }

    fn string(&mut self) -> Result<String, ConvertError> {
        self.at += 1;
        let start = self.at;
        self.skip_plain();
        if self.peek() == Some(b'"') {
            self.at += 1;
            return Ok(self.text[start..self.at - 1].to_owned());
        }
        let mut out = self.text[start..self.at].to_owned();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escaped = match self.peek() {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => self.unicode_escape()?,
                        _ => return Err(self.invalid("invalid escape")),
                    };
                    self.at += 1;
                    out.push(escaped);
                }
                Some(0..0x20) => return Err(self.invalid("control character in string")),
                None => return Err(self.invalid("unterminated string")),
                Some(_) => {
                    let run = self.at;
                    self.skip_plain();
                    out.push_str(&self.text[run..self.at]);
                }
            }
        }
    }

    /// At the `u` of `\uXXXX`; leaves `at` on the escape's last digit.
    fn unicode_escape(&mut self) -> Result<char, ConvertError> {
        let high = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&high) {
            if !self.bytes[self.at + 1..].starts_with(b"\\u") {
                return Err(self.invalid("lone surrogate in \\u escape"));
            }
            self.at += 2;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(self.invalid("lone surrogate in \\u escape"));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.invalid("lone surrogate in \\u escape"))
    }

    /// At a `u`: reads the four hex digits after it.
    fn hex4(&mut self) -> Result<u32, ConvertError> {
        let digits = self
            .text
            .get(self.at + 1..self.at + 5)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.invalid("invalid \\u escape"))?;
        self.at += 4;
        Ok(u32::from_str_radix(digits, 16).expect("four hex digits"))
    }

    fn digits(&mut self) -> bool {
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        self.at > start
    }

    fn number(&mut self) -> Result<String, ConvertError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.invalid("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !self.digits() {
                return Err(self.invalid("invalid number"));
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if !self.digits() {
                return Err(self.invalid("invalid number"));
            }
        }
        checked_number(&self.text[start..self.at], "")
    }
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
    let digits = || int_part.bytes().chain(frac_part.bytes());
    let total = int_part.len() + frac_part.len();
    let leading_zeros = digits().take_while(|&b| b == b'0').count();
    if leading_zeros == total {
        return Ok(text.to_owned()); // zero
    }
    let trailing_zeros = digits().rev().take_while(|&b| b == b'0').count();
    if total - leading_zeros - trailing_zeros > MAX_DIGITS {
        return Err(ConvertError::TooPrecise {
            number: text.to_owned(),
            path: path.to_owned(),
        });
    }
    // The power of ten of the first significant digit.
    let magnitude = (int_part.len() as i64 - 1 - leading_zeros as i64).saturating_add(exponent);
    if !(-130..=125).contains(&magnitude) {
        return Err(ConvertError::OutOfRange {
            number: text.to_owned(),
            path: path.to_owned(),
        });
    }
    Ok(text.to_owned())
}

/// DynamoDB's size of `item` by its documented rules, so that items over
/// the 400 KB limit are caught before any write: names and strings count
/// their UTF-8 bytes, binaries their bytes, a number one byte per two
/// significant digits plus one, null and booleans one; a list or map 3
/// bytes, plus 1 per element, plus the elements (and a map's keys).
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        _ => 1,
    }
}

/// One byte per two significant digits, plus one. Leading and trailing
/// zeros are not significant (DynamoDB trims them); zero counts one digit.
fn number_size(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits = mantissa.bytes().filter(u8::is_ascii_digit);
    let leading = digits.clone().take_while(|&b| b == b'0').count();
    let total = digits.clone().count();
    let trailing = digits.rev().take_while(|&b| b == b'0').count();
    let significant = total.saturating_sub(leading + trailing).max(1);
    significant.div_ceil(2) + 1
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
    fn numbers_are_sized_by_significant_digits() {
        assert_eq!(number_size("7"), 2);
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("-12.30e5"), 3);
        assert_eq!(number_size("1000000"), 2);
        assert_eq!(number_size("0.000123"), 3);
        assert_eq!(number_size(&"9".repeat(38)), 20);
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
        assert!(!ok("10e99999999999999999999") && !ok("1e-99999999999999999999"));
    }
}
