//! Chaos: the real binary against a DynamoDB stand-in that returns ~30%
//! UnprocessedItems, ~5% throttling or 500s, and latency, all from a seed.
//! 20,000 records over 4 shards are replayed exactly as Lambda does: from
//! the reported checkpoint, re-sending everything after it. The final table
//! must hold every record (append) or the newest per key (latest).

use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;
use suite_tests::dynamodb::{DynamoStandIn, Faults};
use suite_tests::running::{Env, Running};

const SHARDS: u64 = 4;
const PER_SHARD: u64 = 5_000;
const KEYS_PER_SHARD: u64 = 250;
const BATCH: usize = 500;

fn sequence(shard: u64, i: u64) -> String {
    format!(
        "49590338271490256608559692538361571095921575{:02}{:010}",
        shard, i
    )
}

/// One shard's records, in order; keys belong to one shard, as in Kinesis.
fn shard_records(shard: u64, seed: u64) -> Vec<(String, u64, Value)> {
    let mut rng = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(shard + 1)
        | 1;
    (0..PER_SHARD)
        .map(|i| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let key = format!("s{shard}-k{}", rng % KEYS_PER_SHARD);
            let seq = sequence(shard, i);
            let data = json!({"id": key, "version": i, "amount": format!("{}.{:02}", i, i % 100)})
                .to_string();
            let record = json!({
                "eventID": format!("shardId-{shard:012}:{seq}"),
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/chaos",
                "kinesis": {"partitionKey": key, "sequenceNumber": seq,
                            "data": aws_smithy_types::base64::encode(data.as_bytes()),
                            "approximateArrivalTimestamp": 1763750000.25}
            });
            (key, i, record)
        })
        .collect()
}

async fn run(mode: &str, seed: u64) {
    let append = mode == "append";
    let keys: &[&str] = if append { &["pk", "sk"] } else { &["pk"] };
    let faults = Faults {
        seed,
        unprocessed_percent: 30,
        error_percent: 5,
        latency: Duration::from_millis(1),
        forget: false,
    };
    let db = DynamoStandIn::start(
        &[("items", keys), ("rejects", &["shardId", "position"])],
        faults,
    )
    .await
    .unwrap();
    let mut env = Env::test_credentials().extend(&[
        ("AWS_ENDPOINT_URL_DYNAMODB", db.endpoint().as_str()),
        // Our retry rules are under test, not the SDK's.
        ("AWS_MAX_ATTEMPTS", "1"),
        ("AWS_LAMBDA_LOG_LEVEL", "WARN"),
        ("TABLE_NAME", "items"),
        ("PARTITION_KEY", "pk"),
        ("REJECTS_TABLE_NAME", "rejects"),
        ("MODE", mode),
        ("RETRY_BASE_DELAY_MS", "2"),
        ("RETRY_MAX_DELAY_MS", "40"),
        ("DEADLINE_MARGIN_MS", "300"),
    ]);
    if append {
        env = env.set("SORT_KEY", "sk");
    }
    let function = Running::start(env!("CARGO_BIN_EXE_kinesis-to-dynamodb"), &env).await;

    let mut newest: HashMap<String, u64> = HashMap::new();
    let (mut invocations, mut resumed) = (0u32, 0u32);
    for shard in 0..SHARDS {
        let records = shard_records(shard, seed);
        for (key, version, _) in &records {
            newest.insert(key.clone(), *version);
        }
        let mut checkpoint = 0;
        while checkpoint < records.len() {
            invocations += 1;
            assert!(invocations < 5_000, "seed {seed} {mode}: no progress");
            let batch: Vec<Value> = records[checkpoint..(checkpoint + BATCH).min(records.len())]
                .iter()
                .map(|(_, _, r)| r.clone())
                .collect();
            let sent = batch.len();
            // Every third invocation gets too little time to finish its
            // retries, so checkpoints and re-sends really happen.
            let time = if invocations.is_multiple_of(3) {
                Duration::from_millis(420)
            } else {
                Duration::from_secs(3)
            };
            let answer = function
                .invoke_within(json!({"Records": batch}), time)
                .await;
            let response = answer.result.expect("the invocation itself never fails");
            match response["batchItemFailures"]
                .as_array()
                .and_then(|f| f.first())
            {
                None => checkpoint += sent,
                Some(failure) => {
                    resumed += 1;
                    let seq = failure["itemIdentifier"]
                        .as_str()
                        .expect("an item identifier");
                    let at = records[checkpoint..]
                        .iter()
                        .position(|(_, _, r)| r["kinesis"]["sequenceNumber"] == seq)
                        .expect("reported record is in the batch");
                    checkpoint += at;
                }
            }
        }
    }

    let items = db.items("items");
    assert!(
        db.items("rejects").is_empty(),
        "seed {seed} {mode}: nothing here is poison"
    );
    if append {
        assert_eq!(
            items.len() as u64,
            SHARDS * PER_SHARD,
            "seed {seed}: every record present, none twice"
        );
    } else {
        assert_eq!(items.len(), newest.len(), "seed {seed}: one item per key");
        for item in items.values() {
            let key = item["pk"]["S"].as_str().unwrap();
            let version: u64 = item["version"]["N"].as_str().unwrap().parse().unwrap();
            assert_eq!(
                version, newest[key],
                "seed {seed}: {key} holds a stale record"
            );
        }
    }
    eprintln!(
        "{mode} seed {seed}: {invocations} invocations, {resumed} resumed from a checkpoint, {} DynamoDB calls",
        db.calls()
    );
    assert!(
        resumed > 0,
        "seed {seed} {mode}: the tight deadlines must have forced replays"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn append_mode_loses_nothing_under_chaos() {
    for seed in [11, 23, 47] {
        run("append", seed).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn latest_mode_keeps_the_newest_under_chaos() {
    for seed in [5, 17, 31] {
        run("latest", seed).await;
    }
}
