//! The real binary under a Runtime API stand-in, against moto DynamoDB,
//! with the sample events: both modes and every poison kind.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_to_dynamodb::FUNCTION_NAME;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use suite_tests::events;
use suite_tests::moto::{Moto, Row, create_table, scan};
use suite_tests::running::{Env, Running};

fn by(rows: &[Row], attr: &str) -> HashMap<String, Row> {
    rows.iter()
        .map(|r| (r[attr].as_s().unwrap().clone(), r.clone()))
        .collect()
}

fn sample(name: &str) -> Value {
    events::sample(FUNCTION_NAME, name)
}

struct Harness {
    moto: Moto,
    db: Client,
}

impl Harness {
    async fn start() -> Self {
        let moto = Moto::start();
        let db = moto.dynamodb().await;
        create_table(&db, "orders", &["pk"]).await;
        create_table(&db, "orders-log", &["pk", "sk"]).await;
        create_table(&db, "rejects", &["shardId", "position"]).await;
        Self { moto, db }
    }

    /// Runs the function with `extra` settings.
    async fn function(&self, extra: &[(&str, &str)]) -> Running {
        let env = Env::from(self.moto.env())
            .extend(&[
                ("TABLE_NAME", "orders"),
                ("PARTITION_KEY", "pk"),
                ("REJECTS_TABLE_NAME", "rejects"),
            ])
            .extend(extra);
        Running::start(env!("CARGO_BIN_EXE_kinesis-to-dynamodb"), &env).await
    }
}

async fn invoke(function: &Running, event: Value) -> Value {
    function
        .invoke(event)
        .await
        .result
        .expect("the invocation succeeds")
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_mode_with_the_sample_events() {
    let h = Harness::start().await;
    let api = h.function(&[]).await;
    let none = json!({"batchItemFailures": []});

    assert_eq!(invoke(&api, sample("01-normal-batch.json")).await, none);
    let orders = by(&scan(&h.db, "orders").await, "pk");
    assert_eq!(orders.len(), 3);
    let o2 = &orders["order-1002"];
    assert_eq!(
        o2["total"],
        AttributeValue::N("12345678901234567890.12".into()),
        "no precision lost"
    );
    assert_eq!(o2["paid"], AttributeValue::Bool(false));
    assert_eq!(o2["note"], AttributeValue::Null(true));
    assert_eq!(o2["items"], AttributeValue::L(vec![]));
    let o1 = &orders["order-1001"];
    assert_eq!(
        o1["items"].as_l().unwrap()[0].as_m().unwrap()["qty"],
        AttributeValue::N("2".into())
    );
    assert_eq!(
        o1["_kinesis_shard"],
        AttributeValue::S("shardId-000000000000".into())
    );
    assert_eq!(
        o1["_kinesis_arrival_ms"],
        AttributeValue::N("1763750000123".into())
    );

    assert_eq!(
        invoke(&api, sample("02-batch-with-poison.json")).await,
        none,
        "poison never blocks the shard"
    );
    let orders = by(&scan(&h.db, "orders").await, "pk");
    for written in ["order-2001", "order-2004", "order-2005"] {
        assert!(orders.contains_key(written), "{written}");
    }
    let rejects = scan(&h.db, "rejects").await;
    let reasons: Vec<&str> = rejects
        .iter()
        .map(|r| r["reason"].as_s().unwrap().as_str())
        .collect();
    assert_eq!(rejects.len(), 2, "{reasons:?}");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("record is not valid JSON"))
    );
    assert!(reasons.iter().any(|r| r.contains("not a JSON object")));
    assert!(rejects.iter().all(|r| r.contains_key("data") && r["shardId"].as_s().unwrap().starts_with("shardId-")));

    assert_eq!(invoke(&api, sample("03-kpl-aggregated.json")).await, none);
    let orders = by(&scan(&h.db, "orders").await, "pk");
    assert_eq!(
        orders["order-3001"]["total"],
        AttributeValue::N("3".into()),
        "the last user record wins"
    );
    assert_eq!(orders["order-3002"]["total"], AttributeValue::N("2".into()));

    assert_eq!(
        invoke(&api, sample("04-same-key-out-of-order.json")).await,
        none
    );
    let status =
        |orders: &HashMap<String, Row>| orders["order-4001"]["status"].as_s().unwrap().clone();
    assert_eq!(status(&by(&scan(&h.db, "orders").await, "pk")), "shipped");
    // The older record alone, delivered again later: stale, skipped, not a failure.
    let mut older = sample("04-same-key-out-of-order.json");
    older["Records"].as_array_mut().unwrap().remove(0);
    assert_eq!(invoke(&api, older).await, none);
    assert_eq!(status(&by(&scan(&h.db, "orders").await, "pk")), "shipped");
}

#[tokio::test(flavor = "multi_thread")]
async fn append_mode_keeps_every_record() {
    let h = Harness::start().await;
    let api = h
        .function(&[
            ("MODE", "append"),
            ("TABLE_NAME", "orders-log"),
            ("SORT_KEY", "sk"),
        ])
        .await;
    invoke(&api, sample("01-normal-batch.json")).await;
    invoke(&api, sample("03-kpl-aggregated.json")).await;
    invoke(&api, sample("04-same-key-out-of-order.json")).await;
    let rows = scan(&h.db, "orders-log").await;
    assert_eq!(rows.len(), 3 + 3 + 2, "every user record is its own item");
    let for_4001: Vec<&Row> = rows
        .iter()
        .filter(|r| r["pk"].as_s().unwrap() == "order-4001")
        .collect();
    assert_eq!(for_4001.len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn strict_key_pointer_and_oversized_items_are_poison() {
    let h = Harness::start().await;
    let api = h.function(&[("PARTITION_KEY_SOURCE", "/id")]).await;
    invoke(&api, sample("02-batch-with-poison.json")).await;
    let mut big = sample("01-normal-batch.json");
    let blob = json!({"id": "huge", "blob": "x".repeat(420 * 1024)}).to_string();
    big["Records"][0]["kinesis"]["data"] = json!(aws_smithy_types::base64::encode(blob.as_bytes()));
    big["Records"][0]["kinesis"]["sequenceNumber"] =
        json!("49590338271490256608559692538361571095921575989136588999");
    invoke(&api, big).await;
    let reasons: Vec<String> = scan(&h.db, "rejects")
        .await
        .iter()
        .map(|r| r["reason"].as_s().unwrap().clone())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("missing key: the record has nothing at /id")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("DynamoDB's limit is 409600")),
        "{reasons:?}"
    );
    assert!(!by(&scan(&h.db, "orders").await, "pk").contains_key("huge"));
}

#[tokio::test]
async fn bad_configuration_fails_init_naming_every_variable() {
    suite_tests::function::assert_init_fails_naming(
        Path::new(env!("CARGO_BIN_EXE_kinesis-to-dynamodb")),
        &[("MODE", "newest")],
        &[
            "TABLE_NAME",
            "PARTITION_KEY",
            "REJECTS_TABLE_NAME",
            "MODE=\"newest\"",
        ],
    )
    .await;
}

/// One record of `shard` for the item `k`, arriving at `arrival` seconds.
fn versioned(shard: u32, sequence: &str, arrival: f64, version: u32) -> Value {
    let data = json!({"id": "k", "version": version}).to_string();
    json!({"Records": [{
        "eventID": format!("shardId-{shard:012}:{sequence}"),
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
        "kinesis": {"partitionKey": format!("p{shard}"), "sequenceNumber": sequence,
                    "data": aws_smithy_types::base64::encode(data.as_bytes()),
                    "approximateArrivalTimestamp": arrival}
    }]})
}

/// moto evaluates the real condition expression.
#[tokio::test(flavor = "multi_thread")]
async fn latest_mode_orders_by_sequence_in_a_shard_and_by_arrival_across_shards() {
    let h = Harness::start().await;
    let api = h.function(&[("PARTITION_KEY_SOURCE", "/id")]).await;
    let none = json!({"batchItemFailures": []});
    let version = async || {
        by(&scan(&h.db, "orders").await, "pk")["k"]["version"]
            .as_n()
            .unwrap()
            .clone()
    };
    let seq = |n: u64| format!("4959033827149025660855969253836157109592157598{n:010}");

    assert_eq!(invoke(&api, versioned(1, &seq(100), 1000.5, 1)).await, none);
    assert_eq!(version().await, "1");
    // Same shard: the sequence number decides, whatever the arrival time.
    assert_eq!(invoke(&api, versioned(1, &seq(50), 2000.0, 2)).await, none);
    assert_eq!(version().await, "1", "an older sequence of the same shard");
    // Another shard: sequence numbers do not compare, arrival time does.
    assert_eq!(invoke(&api, versioned(2, &seq(10), 1500.0, 3)).await, none);
    assert_eq!(version().await, "3", "a later arrival on another shard");
    assert_eq!(invoke(&api, versioned(3, &seq(999), 1200.0, 4)).await, none);
    assert_eq!(version().await, "3", "an earlier arrival on another shard");
    // A tie keeps the stored item.
    assert_eq!(invoke(&api, versioned(4, &seq(999), 1500.0, 5)).await, none);
    assert_eq!(
        version().await,
        "3",
        "the same arrival time on another shard"
    );
    // Back on the stored item's shard, its sequence rules again.
    assert_eq!(invoke(&api, versioned(2, &seq(11), 1400.0, 6)).await, none);
    assert_eq!(version().await, "6", "a newer sequence of the same shard");
}
