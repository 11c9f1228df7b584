//! `make bench`'s report and inputs: BENCHMARKS.md rendered from its
//! template (`scripts/BENCHMARKS.md.in`) and one value per placeholder, and
//! the 10,000-record Kinesis batch the kinesis-to-dynamodb rows measure.

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `text` with every `{{name}}` replaced by `values[name]` (trailing newlines
/// dropped). Fails naming every placeholder that has no value, so a report
/// is never written with a hole in it.
pub fn fill_template(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            return Err(format!("unclosed placeholder: {}", &rest[start..]));
        };
        let name = &rest[start + 2..start + len];
        out.push_str(&rest[..start]);
        match values.get(name) {
            Some(value) => out.push_str(value.trim_end_matches('\n')),
            None => missing.push(name.to_owned()),
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(format!("no value for {{{{{}}}}}", missing.join("}}, {{")))
    }
}

/// A Kinesis event of `records` records with distinct `order-NNNNNN` ids,
/// each a compact JSON object of exactly `bytes` bytes (padded in `note`).
pub fn kinesis_batch(records: usize, bytes: usize) -> Value {
    let records: Vec<Value> = (0..records)
        .map(|i| {
            let id = format!("order-{i:06}");
            let data = |note: &str| {
                format!(
                    r#"{{"id":"{id}","customer":"c-{}","total":129.95,"items":[{{"sku":"A-1","qty":2}}],"note":"{note}"}}"#,
                    i % 97
                )
            };
            let data = data(&"x".repeat(bytes.saturating_sub(data("").len())));
            let seq = format!("4959033827149025660855969253836157109592157598913{i:07}");
            json!({
                "eventID": format!("shardId-000000000000:{seq}"),
                "eventSource": "aws:kinesis",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench",
                "kinesis": {
                    "partitionKey": id,
                    "sequenceNumber": seq,
                    "data": base64(data.as_bytes()),
                    "approximateArrivalTimestamp": 1763750000.123,
                    "kinesisSchemaVersion": "1.0",
                },
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn fills_every_placeholder_literally() {
        let text = fill_template(
            "# {{a}}\n{{b.c}} and {{a}}\n",
            &values(&[("a", "one\n"), ("b.c", "| {{x}} |")]),
        );
        assert_eq!(text.unwrap(), "# one\n| {{x}} | and one\n");
    }

    #[test]
    fn a_placeholder_left_unfilled_fails_naming_it() {
        let error = fill_template("{{a}} {{b}} {{c}}", &values(&[("b", "2")])).unwrap_err();
        assert_eq!(error, "no value for {{a}}, {{c}}");
        assert!(fill_template("{{a", &values(&[])).is_err());
    }

    #[test]
    fn base64_as_the_standard_says() {
        for (raw, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(raw.as_bytes()), encoded);
        }
    }

    #[test]
    fn kinesis_records_are_distinct_and_of_the_given_size() {
        let batch = kinesis_batch(3, 500);
        let records = batch["Records"].as_array().unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[2]["kinesis"]["partitionKey"], "order-000002");
        let data = records[0]["kinesis"]["data"].as_str().unwrap();
        assert_eq!(data.len(), 500usize.div_ceil(3) * 4);
        assert_eq!(
            records[1]["kinesis"]["sequenceNumber"],
            "49590338271490256608559692538361571095921575989130000001"
        );
    }
}
