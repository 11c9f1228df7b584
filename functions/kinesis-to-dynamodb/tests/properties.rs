//! Arbitrary input never panics; conversions and decoding keep what they must.

use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_to_dynamodb::checkpoint::{Position, compare_sequence, response};
use kinesis_to_dynamodb::convert::{ConvertError, json_to_item};
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
            proptest::collection::hash_map(".{0,8}", inner, 0..6)
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

proptest! {
    #[test]
    fn reads_what_serde_json_reads(fields in proptest::collection::hash_map(".{0,8}", json_value(), 0..8), pretty in any::<bool>()) {
        let object = serde_json::Value::Object(fields.into_iter().collect());
        let text = if pretty { serde_json::to_string_pretty(&object).unwrap() } else { object.to_string() };
        let item = json_to_item(text.as_bytes()).unwrap();
        prop_assert!(same(&AttributeValue::M(item), &object), "{text}");
    }

    /// Damaged documents: accepted exactly when serde_json accepts them
    /// (bar DynamoDB's own limits, which serde_json does not know).
    #[test]
    fn accepts_exactly_valid_json(fields in proptest::collection::hash_map(".{0,8}", json_value(), 1..6),
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
            Err(ConvertError::TooPrecise { .. } | ConvertError::OutOfRange { .. } | ConvertError::TooDeep { .. }) => {}
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
    fn objects_convert_field_for_field(fields in proptest::collection::hash_map(".{0,8}", json_value(), 0..8)) {
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
