//! Arbitrary input never panics; conversions and decoding keep what they must.

use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_to_dynamodb::checkpoint::{Position, compare_sequence, response};
use kinesis_to_dynamodb::convert::{ConvertError, Item, item_size, json_to_item};
use kinesis_to_dynamodb::kpl::{UserRecord, aggregate, deaggregate};
use proptest::prelude::*;

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            proptest::collection::hash_map(".{1,8}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

/// True if `value` is what serde_json reads the same text as.
fn same(value: &AttributeValue, json: &serde_json::Value) -> bool {
    use serde_json::Value as J;
    match (value, json) {
        (AttributeValue::S(s), J::String(t)) => s == t,
        (AttributeValue::N(n), J::Number(m)) => *n == m.to_string(),
        (AttributeValue::Bool(b), J::Bool(c)) => b == c,
        (AttributeValue::Null(true), J::Null) => true,
        (AttributeValue::L(l), J::Array(a)) => {
            l.len() == a.len() && l.iter().zip(a).all(|(x, y)| same(x, y))
        }
        (AttributeValue::M(m), J::Object(o)) => {
            m.len() == o.len() && o.iter().all(|(k, v)| m.get(k).is_some_and(|x| same(x, v)))
        }
        _ => false,
    }
}

/// A JSON number's text, in every form JSON allows, within DynamoDB's range.
fn number_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop_oneof![Just("0".to_owned()), "[1-9]", "[1-9][0-9]{0,18}"],
        proptest::option::of("[0-9]{1,18}"),
        proptest::option::of(("[eE]", "[+-]?", 0u32..60)),
    )
        .prop_map(|(negative, int, frac, exp)| {
            let mut text = if negative {
                "-".to_owned()
            } else {
                String::new()
            };
            text += &int;
            if let Some(frac) = frac {
                text = format!("{text}.{frac}");
            }
            if let Some((e, sign, power)) = exp {
                text = format!("{text}{e}{sign}{power}");
            }
            text
        })
}

/// A JSON document text with numbers in every form, nested in lists and maps.
fn document_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => number_text(),
        1 => Just("null".to_owned()),
        1 => Just("true".to_owned()),
        1 => ".{0,12}".prop_map(|s| serde_json::Value::from(s).to_string()),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((".{1,6}", inner), 0..6).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .into_iter()
                    .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }),
        ]
    })
}

/// DynamoDB's documented size of a number (aws-contracts.md): one byte per
/// two significant digits, plus one. Written from the decimal form, apart
/// from the code's formula: the number is normalised to `digits x 10^exp`
/// (sign dropped, fraction moved into the exponent, leading zeros dropped,
/// trailing zeros moved into the exponent), and `digits` counted; zero
/// keeps its one digit.
fn documented_number_size(text: &str) -> usize {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    // The exponent does not change the digits' count, only where they sit.
    let mantissa = match unsigned.find(['e', 'E']) {
        Some(at) => &unsigned[..at],
        None => unsigned,
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    let first = digits.iter().position(|&d| d != b'0');
    let significant = match first {
        Some(first) => &digits[first..],
        None => &b"0"[..],
    };
    assert!(significant.iter().all(u8::is_ascii_digit), "{text}");
    significant.len().div_ceil(2) + 1
}

#[test]
fn documented_number_sizes_by_hand() {
    // (text, significant digits)
    for (text, digits) in [
        ("0", 1),
        ("-0.000", 1),
        ("7", 1),
        ("12", 2),
        ("100", 1),
        ("1.50", 2),
        ("0.00123", 3),
        ("-12345678901234567890.12", 22),
        ("1.2300e+10", 3),
        ("120E-5", 2),
    ] {
        assert_eq!(
            documented_number_size(text),
            usize::div_ceil(digits, 2) + 1,
            "{text}"
        );
    }
}

/// DynamoDB's documented size of a value (aws-contracts.md, "DynamoDB item size").
fn documented_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => documented_number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| 1 + documented_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + documented_size(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

fn documented_item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + documented_size(value))
        .sum()
}

#[test]
fn a_list_of_150000_digits_is_over_the_limit() {
    let text = format!("{{\"id\":\"a\",\"l\":[{}]}}", vec!["7"; 150_000].join(","));
    let item = json_to_item(text.as_bytes()).unwrap();
    assert!(documented_item_size(&item) > 449_000);
    assert!(
        item_size(&item) > 400 * 1024,
        "estimated {} bytes",
        item_size(&item)
    );
}

proptest! {
    #[test]
    fn the_size_estimate_is_never_below_the_documented_size(fields in proptest::collection::vec((".{1,8}", document_text()), 0..8)) {
        let fields: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("{}:{v}", serde_json::Value::from(k)))
            .collect();
        let text = format!("{{{}}}", fields.join(","));
        let item = json_to_item(text.as_bytes()).unwrap();
        prop_assert!(item_size(&item) >= documented_item_size(&item), "{} < {} for {text}", item_size(&item), documented_item_size(&item));
    }

    /// One number alone: no other value's slack can hide an undercount.
    #[test]
    fn a_number_is_never_estimated_below_its_documented_size(number in number_text()) {
        let text = format!("{{\"n\":{number},\"l\":[{number}],\"m\":{{\"k\":{number}}}}}");
        let item = json_to_item(text.as_bytes()).unwrap();
        for (name, value) in &item {
            let alone = Item::from([(name.clone(), value.clone())]);
            prop_assert!(item_size(&alone) >= documented_item_size(&alone), "{} < {} for {text}", item_size(&alone), documented_item_size(&alone));
        }
    }

    #[test]
    fn reads_what_serde_json_reads(fields in proptest::collection::hash_map(".{1,8}", json_value(), 0..8), pretty in any::<bool>()) {
        let object = serde_json::Value::Object(fields.into_iter().collect());
        let text = if pretty { serde_json::to_string_pretty(&object).unwrap() } else { object.to_string() };
        let item = json_to_item(text.as_bytes()).unwrap();
        prop_assert!(same(&AttributeValue::M(item), &object), "{text}");
    }

    /// Damaged documents: accepted exactly when serde_json accepts them
    /// (bar DynamoDB's own limits, which serde_json does not know).
    #[test]
    fn accepts_exactly_valid_json(fields in proptest::collection::hash_map(".{1,8}", json_value(), 1..6),
                                  cut in any::<prop::sample::Index>(), len in 0usize..3,
                                  insert in prop::sample::select(vec!["", "\\", "\"", "\\u", "\\ud800", ",", ":", "}", "]", "{", "[", "-", "0", ".", "e", " ", "\u{1}", "tru", "nul"]))
    {
        let text = serde_json::Value::Object(fields.into_iter().collect()).to_string();
        let mut bytes = text.into_bytes();
        let at = cut.index(bytes.len());
        let end = (at + len).min(bytes.len());
        bytes.splice(at..end, insert.bytes());
        let serde_accepts = serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| v.is_object());
        match json_to_item(&bytes) {
            Ok(_) => prop_assert!(serde_accepts, "accepted {:?}", String::from_utf8_lossy(&bytes)),
            Err(ConvertError::TooPrecise { .. } | ConvertError::OutOfRange { .. } | ConvertError::TooDeep { .. } | ConvertError::EmptyName { .. }) => {}
            Err(e) => prop_assert!(!serde_accepts, "rejected {:?}: {e}", String::from_utf8_lossy(&bytes)),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = json_to_item(&bytes);
        let _ = deaggregate(&bytes);
        let mut with_magic = kinesis_to_dynamodb::kpl::MAGIC.to_vec();
        with_magic.extend_from_slice(&bytes);
        let _ = deaggregate(&with_magic);
    }

    #[test]
    fn objects_convert_field_for_field(fields in proptest::collection::hash_map(".{1,8}", json_value(), 0..8)) {
        let object = serde_json::Value::Object(fields.clone().into_iter().collect());
        let item = json_to_item(object.to_string().as_bytes()).unwrap();
        prop_assert_eq!(item.len(), fields.len());
    }

    #[test]
    fn kpl_round_trips(records in proptest::collection::vec(
        (".{1,16}", proptest::option::of("[0-9]{1,38}"), proptest::collection::vec(any::<u8>(), 0..64)), 1..20)) {
        let records: Vec<UserRecord> = records
            .into_iter()
            .map(|(k, h, d)| UserRecord { partition_key: k, explicit_hash_key: h, data: d })
            .collect();
        prop_assert_eq!(deaggregate(&aggregate(&records)).unwrap(), records);
    }

    #[test]
    fn checkpoint_is_the_lowest_failure(failed in proptest::collection::vec("[1-9][0-9]{0,60}", 0..20)) {
        let reported = response(failed.iter().map(String::as_str));
        match reported.batch_item_failures.first() {
            None => prop_assert!(failed.is_empty()),
            Some(first) => {
                prop_assert_eq!(reported.batch_item_failures.len(), 1);
                for f in &failed {
                    prop_assert_ne!(compare_sequence(f, &first.item_identifier), std::cmp::Ordering::Less);
                }
            }
        }
    }

    #[test]
    fn sortable_positions_sort_like_positions(a in "[1-9][0-9]{0,60}", b in "[1-9][0-9]{0,60}", sa in 0u32..1000, sb in 0u32..1000) {
        let (pa, pb) = (Position { sequence: a, sub: sa }, Position { sequence: b, sub: sb });
        prop_assert_eq!(pa.cmp(&pb), pa.sortable().cmp(&pb.sortable()));
    }
}
