//! The real binary against the DynamoDB stand-in, which refuses what
//! DynamoDB refuses (moto accepts an empty attribute name) and chosen
//! attributes (a refusal the function cannot foresee): refused records keep
//! their data, latest mode falls back to the newest accepted record, and
//! fan-out aggregates of poison answer before their deadline.

use kinesis_to_dynamodb::kpl::{UserRecord, aggregate};
use serde_json::{Value, json};
use std::time::Duration;
use suite_tests::dynamodb::{DynamoStandIn, Faults};
use suite_tests::running::{Env, Running};

const SHARD: &str = "shardId-000000000003";

fn sequence(i: u64) -> String {
    format!("4959033827149025660855969253836157109592157598{i:010}")
}

fn record(i: u64, partition_key: &str, data: &[u8]) -> Value {
    json!({
        "eventID": format!("{SHARD}:{}", sequence(i)),
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
        "kinesis": {"partitionKey": partition_key, "sequenceNumber": sequence(i),
                    "data": aws_smithy_types::base64::encode(data),
                    "approximateArrivalTimestamp": 1763750000.0 + i as f64}
    })
}

struct Harness {
    db: DynamoStandIn,
    function: Running,
}

async fn start(mode: &str, latency: Duration, extra: &[(&str, &str)]) -> Harness {
    let keys: &[&str] = if mode == "append" {
        &["pk", "sk"]
    } else {
        &["pk"]
    };
    let db = DynamoStandIn::start(
        &[("items", keys), ("rejects", &["shardId", "position"])],
        Faults::none(latency),
    )
    .await
    .unwrap();
    let mut env = Env::test_credentials()
        .extend(&[
            ("AWS_ENDPOINT_URL_DYNAMODB", db.endpoint().as_str()),
            ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
            ("TABLE_NAME", "items"),
            ("PARTITION_KEY", "pk"),
            ("REJECTS_TABLE_NAME", "rejects"),
            ("MODE", mode),
        ])
        .extend(extra);
    if mode == "append" {
        env = env.set("SORT_KEY", "sk");
    }
    let function = Running::start(env!("CARGO_BIN_EXE_kinesis-to-dynamodb"), &env).await;
    Harness { db, function }
}

impl Harness {
    async fn invoke(&self, records: Vec<Value>) -> Value {
        self.function
            .invoke(json!({"Records": records}))
            .await
            .result
            .expect("the invocation succeeds")
    }
}

fn failures(response: &Value) -> &Vec<Value> {
    response["batchItemFailures"].as_array().expect("a list")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_record_keeps_its_raw_data_and_a_short_reason() {
    for mode in ["latest", "append"] {
        let h = start(mode, Duration::ZERO, &[]).await;
        h.db.refuse_attribute("refuse");
        let refused = br#"{"id": "k", "v": 2, "refuse": "x"}"#;
        let response = h
            .invoke(vec![
                record(1, "k", br#"{"id": "a", "v": 1}"#),
                record(2, "k", refused),
            ])
            .await;
        assert!(failures(&response).is_empty(), "{mode}: {response}");
        let rejects = h.db.items("rejects");
        assert_eq!(rejects.len(), 1, "{mode}: {rejects:?}");
        let reject = rejects.values().next().unwrap();
        assert_eq!(
            reject["data"]["B"],
            json!(aws_smithy_types::base64::encode(refused)),
            "{mode}: the reject holds the raw record"
        );
        let reason = reject["reason"]["S"].as_str().unwrap();
        assert!(
            reason.starts_with("DynamoDB refused the item: ValidationException: ")
                && reason.contains("the stand-in refuses attribute refuse")
                && reason.len() <= 1024,
            "{mode}: {} bytes: {reason}",
            reason.len()
        );
        assert_eq!(h.db.items("items").len(), 1, "{mode}: the valid one");
        drop(h.function);
    }
}

/// The version the item of key `k` holds, if any.
fn version_of_k(db: &DynamoStandIn) -> Option<String> {
    db.items("items")
        .values()
        .find(|item| item["pk"]["S"] == "k")
        .map(|item| item["v"]["N"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_mode_ends_at_the_newest_record_dynamodb_accepts() {
    let h = start("latest", Duration::ZERO, &[]).await;
    h.db.refuse_attribute("refuse");
    let valid = |i: u64, v: u64| record(i, "k", format!(r#"{{"id": "k", "v": {v}}}"#).as_bytes());
    let refused = |i: u64, v: u64| {
        record(
            i,
            "k",
            format!(r#"{{"id": "k", "v": {v}, "refuse": "x"}}"#).as_bytes(),
        )
    };
    h.invoke(vec![valid(1, 0)]).await;
    assert_eq!(version_of_k(&h.db).as_deref(), Some("0"));

    // v1 valid, then v2 refused: v1 must be written, v2 rejected.
    let response = h.invoke(vec![valid(2, 1), refused(3, 2)]).await;
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(version_of_k(&h.db).as_deref(), Some("1"));
    assert_eq!(h.db.items("rejects").len(), 1);

    // Several refused in a row, other keys between them, one valid under
    // them: the newest accepted one wins, every refused one is a reject.
    let other = record(6, "o", br#"{"id": "o", "v": 9}"#);
    let response = h
        .invoke(vec![
            valid(4, 3),
            valid(5, 4),
            other,
            refused(7, 5),
            refused(8, 6),
        ])
        .await;
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(version_of_k(&h.db).as_deref(), Some("4"));
    assert_eq!(h.db.items("rejects").len(), 3);

    // All refused: the item keeps what it had, nothing blocks the shard.
    let response = h.invoke(vec![refused(9, 7), refused(10, 8)]).await;
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(version_of_k(&h.db).as_deref(), Some("4"));
    assert_eq!(h.db.items("rejects").len(), 5);
}

/// `aggregates` KPL records of `per_aggregate` sub-records that are not JSON.
fn poison_aggregates(aggregates: u64, per_aggregate: usize) -> Vec<Value> {
    (0..aggregates)
        .map(|i| {
            let users: Vec<UserRecord> = (0..per_aggregate)
                .map(|_| UserRecord {
                    partition_key: "p".into(),
                    explicit_hash_key: None,
                    data: b"x".to_vec(),
                })
                .collect();
            record(i + 1, "p", &aggregate(&users))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fan_out_aggregates_of_poison_answer_before_their_deadline() {
    const PER_AGGREGATE: usize = 30_000;
    let h = start("latest", Duration::from_millis(10), &[]).await;
    let deadline = Duration::from_secs(60);
    let answer = h
        .function
        .invoke_within(
            json!({"Records": poison_aggregates(4, PER_AGGREGATE)}),
            deadline,
        )
        .await;
    assert!(
        answer.duration() < deadline,
        "answered after its deadline: {:?}",
        answer.duration()
    );
    eprintln!(
        "answered in {:?}, peak RSS {:?} KiB",
        answer.duration(),
        h.function.process().peak_rss_kib()
    );
    let response = answer.result.expect("the invocation succeeds");
    assert!(failures(&response).is_empty(), "{response}");
    assert_eq!(h.db.items("rejects").len(), 4 * PER_AGGREGATE);
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_deadline_cuts_off_is_reported_through_the_checkpoint() {
    const AGGREGATES: u64 = 12;
    const PER_AGGREGATE: usize = 10_000;
    let h = start(
        "append",
        Duration::from_millis(10),
        &[("DEADLINE_MARGIN_MS", "1000")],
    )
    .await;
    let records = poison_aggregates(AGGREGATES, PER_AGGREGATE);
    let deadline = Duration::from_millis(3_000);
    let (mut checkpoint, mut invocations, mut resumed) = (0, 0, 0);
    while checkpoint < records.len() {
        invocations += 1;
        assert!(invocations < 50, "no progress from {checkpoint}");
        let answer = h
            .function
            .invoke_within(json!({"Records": records[checkpoint..]}), deadline)
            .await;
        assert!(
            answer.duration() < deadline,
            "answered after its deadline: {:?}",
            answer.duration()
        );
        let response = answer.result.expect("the invocation succeeds");
        match failures(&response).first() {
            None => checkpoint = records.len(),
            Some(failure) => {
                resumed += 1;
                let at = records[checkpoint..]
                    .iter()
                    .position(|r| r["kinesis"]["sequenceNumber"] == failure["itemIdentifier"])
                    .expect("the reported record is in the batch");
                checkpoint += at;
            }
        }
    }
    eprintln!("{invocations} invocations, {resumed} cut short by the deadline");
    assert!(resumed > 0, "the deadline must have cut some batch short");
    assert_eq!(
        h.db.items("rejects").len(),
        AGGREGATES as usize * PER_AGGREGATE
    );
}

/// A DynamoDB that does not answer in time: the function still answers
/// before its deadline, and the checkpoint holds the first record.
#[tokio::test(flavor = "multi_thread")]
async fn a_dynamodb_that_hangs_does_not_make_the_function_overrun() {
    let h = start(
        "latest",
        Duration::from_secs(6),
        &[("DEADLINE_MARGIN_MS", "1000")],
    )
    .await;
    let records: Vec<Value> = (1..=3)
        .map(|i| record(i, "k", format!(r#"{{"id": "k{i}"}}"#).as_bytes()))
        .collect();
    let deadline = Duration::from_secs(3);
    let answer = h
        .function
        .invoke_within(json!({"Records": records}), deadline)
        .await;
    assert!(
        answer.duration() < deadline,
        "answered after its deadline: {:?}",
        answer.duration()
    );
    let response = answer.result.expect("the invocation succeeds");
    assert_eq!(
        failures(&response)[0]["itemIdentifier"],
        json!(sequence(1)),
        "{response}"
    );
}

/// An aggregate whose sub-records all hold an empty attribute name, at any
/// depth, which DynamoDB refuses: each is a reject found up front, stored
/// in batches, not one refused conditional PutItem per sub-record.
#[tokio::test(flavor = "multi_thread")]
async fn empty_attribute_names_are_rejected_up_front_in_batches() {
    const SUB_RECORDS: usize = 1_000;
    let h = start("latest", Duration::ZERO, &[]).await;
    let users: Vec<UserRecord> = (0..SUB_RECORDS)
        .map(|i| UserRecord {
            partition_key: "p".into(),
            explicit_hash_key: None,
            data: if i % 2 == 0 {
                format!(r#"{{"id": "k{i}", "": 1}}"#)
            } else {
                format!(r#"{{"id": "k{i}", "a": [{{"b": {{"": 1}}}}]}}"#)
            }
            .into_bytes(),
        })
        .collect();
    let response = h.invoke(vec![record(1, "p", &aggregate(&users))]).await;
    assert!(failures(&response).is_empty(), "{response}");
    let rejects = h.db.items("rejects");
    assert_eq!(rejects.len(), SUB_RECORDS);
    let reasons: std::collections::HashSet<&str> = rejects
        .values()
        .map(|r| r["reason"]["S"].as_str().unwrap())
        .collect();
    assert!(
        reasons.contains("attribute name at / is empty (DynamoDB refuses empty names)")
            && reasons
                .contains("attribute name at /a/0/b/ is empty (DynamoDB refuses empty names)"),
        "{reasons:?}"
    );
    assert!(
        h.db.calls() <= (SUB_RECORDS / 25 + 2) as u64,
        "{} calls for {SUB_RECORDS} rejects",
        h.db.calls()
    );
    assert!(h.db.items("items").is_empty());
}
