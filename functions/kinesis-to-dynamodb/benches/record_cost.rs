//! `make bench` (`cargo bench --bench record_cost`; it takes no arguments,
//! so the `--bench` cargo passes is ignored): CPU cost per record, no I/O. Parses a 10,000-record event,
//! decodes each record (base64, JSON, key, metadata) and serializes its item
//! as DynamoDB JSON, the wire form the SDK sends.

use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_to_dynamodb::batch_write::Backoff;
use kinesis_to_dynamodb::config::{Config, KeySource, Mode};
use kinesis_to_dynamodb::handler::KinesisBatch;
use kinesis_to_dynamodb::record::decode;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const RECORDS: usize = 10_000;

/// Writes `value` as DynamoDB JSON the way the SDK's serializer does: one
/// pass into a byte buffer, strings escaped.
fn wire(out: &mut Vec<u8>, value: &AttributeValue) {
    let string = |out: &mut Vec<u8>, s: &str| serde_json::to_writer(&mut *out, s).expect("writes");
    match value {
        AttributeValue::S(s) => {
            out.extend_from_slice(b"{\"S\":");
            string(out, s);
        }
        AttributeValue::N(n) => {
            out.extend_from_slice(b"{\"N\":");
            string(out, n);
        }
        AttributeValue::Bool(b) => out.extend_from_slice(if *b {
            b"{\"BOOL\":true"
        } else {
            b"{\"BOOL\":false"
        }),
        AttributeValue::Null(_) => out.extend_from_slice(b"{\"NULL\":true"),
        AttributeValue::L(list) => {
            out.extend_from_slice(b"{\"L\":[");
            for (i, v) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                wire(out, v);
            }
            out.push(b']');
        }
        AttributeValue::M(map) => {
            out.extend_from_slice(b"{\"M\":");
            wire_map(out, map);
        }
        _ => out.extend_from_slice(b"{\"NULL\":true"),
    }
    out.push(b'}');
}

fn wire_map(out: &mut Vec<u8>, map: &std::collections::HashMap<String, AttributeValue>) {
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        serde_json::to_writer(&mut *out, k).expect("writes");
        out.push(b':');
        wire(out, v);
    }
    out.push(b'}');
}

fn main() {
    let config = Config {
        table: "items".into(),
        partition_key: "pk".into(),
        partition_key_source: KeySource::Pointer {
            pointer: "/id".into(),
            or_partition_key: true,
        },
        sort_key: None,
        mode: Mode::Latest,
        rejects_table: "rejects".into(),
        max_in_flight: 16,
        deadline_margin: Duration::from_secs(2),
        backoff: Backoff {
            base: Duration::from_millis(25),
            max: Duration::from_secs(2),
        },
    };
    let records: Vec<Value> = (0..RECORDS)
        .map(|i| {
            let mut data = json!({
                "id": format!("order-{i:06}"), "customer": format!("c-{}", i % 97), "total": 129.95,
                "currency": "EUR", "paid": i % 2 == 0, "items": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}],
                "shipping": {"method": "express", "eta_days": 2}, "note": ""
            });
            let pad = 500 - data.to_string().len();
            data["note"] = Value::from("x".repeat(pad));
            // 56 digits: beyond u128, as real sequence numbers are.
            let sequence = format!("4959033827149025660855969253836157109592157598913{i:07}");
            json!({
                "eventID": format!("shardId-000000000000:{sequence}"),
                "kinesis": {"partitionKey": format!("order-{i:06}"), "approximateArrivalTimestamp": 1763750000.123,
                            "sequenceNumber": sequence,
                            "data": aws_smithy_types::base64::encode(data.to_string().as_bytes())}
            })
        })
        .collect();
    let event = json!({"Records": records}).to_string();

    // Medians of 15 passes over the batch, per record. Records are decoded
    // and serialized one at a time, as the function streams them.
    let (mut parse, mut total) = (Vec::new(), Vec::new());
    let mut bytes = 0;
    let per_record = |d: std::time::Duration| d.as_secs_f64() * 1e6 / RECORDS as f64;
    for _ in 0..15 {
        let start = Instant::now();
        let parsed: KinesisBatch = serde_json::from_str(&event).expect("event");
        parse.push(per_record(start.elapsed()));
        std::hint::black_box(parsed);
        let start = Instant::now();
        let parsed: KinesisBatch = serde_json::from_str(&event).expect("event");
        let mut out = Vec::new();
        for record in parsed.records.expect("records") {
            for entry in decode(&record, &config).results.into_iter().flatten() {
                out.clear();
                wire_map(&mut out, &entry.item);
                bytes += out.len();
            }
        }
        total.push(per_record(start.elapsed()));
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (parse, total) = (median(parse), median(total));
    println!(
        "| per-record cost, 500-byte JSON record, total (median of 15 x {RECORDS}) | {total:.2} µs |"
    );
    println!("| of which: event parse and base64 | {parse:.2} µs |");
    println!(
        "| of which: JSON to item, key, metadata, item to DynamoDB JSON | {:.2} µs |",
        total - parse
    );
    std::hint::black_box(bytes);
}
