//! The pipeline under Lambda's replay rule against an in-memory table that
//! injects faults from a seed: nothing lost, nothing stale left behind.

use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_to_dynamodb::batch_write::Backoff;
use kinesis_to_dynamodb::config::{Config, KeySource, Mode};
use kinesis_to_dynamodb::pipeline::process;
use kinesis_to_dynamodb::record::{EventRecord, POSITION_ATTR};
use kinesis_to_dynamodb::testing::{InMemoryTable, Rng};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

fn config(mode: Mode) -> Config {
    Config {
        table: "items".into(),
        partition_key: "pk".into(),
        partition_key_source: KeySource::Pointer {
            pointer: "/id".into(),
            or_partition_key: false,
        },
        sort_key: (mode == Mode::Append).then(|| ("sk".to_owned(), KeySource::Position)),
        mode,
        rejects_table: "rejects".into(),
        max_in_flight: 8,
        deadline_margin: Duration::from_millis(100),
        backoff: Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(8),
        },
    }
}

fn record(shard: usize, seq: u64, key: usize, version: u64) -> Value {
    let data = json!({"id": format!("key-{key}"), "version": version, "amount": 12.5}).to_string();
    json!({
        "eventID": format!("shardId-{shard:012}:{seq}"),
        "kinesis": {"partitionKey": format!("key-{key}"), "sequenceNumber": format!("4959{seq:052}"),
                    "data": aws_smithy_types::base64::encode(data.as_bytes()),
                    // Later records arrive later, on every shard.
                    "approximateArrivalTimestamp": 1763750000.0 + seq as f64}
    })
}

/// Feeds one shard's records as Lambda does: batches from the checkpoint,
/// resuming at the lowest reported sequence number.
async fn replay(
    table: &Arc<InMemoryTable>,
    config: &Config,
    records: &[Value],
    batch_size: usize,
) -> usize {
    let mut checkpoint = 0;
    let mut invocations = 0;
    while checkpoint < records.len() {
        invocations += 1;
        assert!(invocations < 10_000, "no progress");
        let batch = &records[checkpoint..(checkpoint + batch_size).min(records.len())];
        let raw: Vec<EventRecord> = batch
            .iter()
            .map(|r| EventRecord::read(&r.to_string()))
            .collect();
        let (response, _) = process(
            table,
            config,
            &raw,
            Instant::now() + Duration::from_millis(400),
        )
        .await;
        match response.batch_item_failures.first() {
            None => checkpoint += batch.len(),
            Some(failure) => {
                let at = batch
                    .iter()
                    .position(|r| {
                        r["kinesis"]["sequenceNumber"] == failure.item_identifier.as_str()
                    })
                    .expect("reported sequence is in the batch");
                checkpoint += at;
            }
        }
    }
    invocations
}

fn shard_records(shard: usize, n: u64, keys: usize, rng: &mut Rng) -> Vec<Value> {
    (0..n)
        .map(|i| {
            record(
                shard,
                shard as u64 * 1_000_000 + i,
                (rng.next_u64() % keys as u64) as usize,
                i,
            )
        })
        .collect()
}

#[tokio::test]
async fn latest_mode_keeps_the_newest_per_key_under_faults() {
    for seed in [1, 7, 42] {
        let table = Arc::new(InMemoryTable::new(&["pk"], seed, true));
        let config = config(Mode::Latest);
        let mut rng = Rng(seed * 31 + 1);
        let mut expected: HashMap<String, String> = HashMap::new();
        for shard in 0..3 {
            let records = shard_records(shard, 700, 40, &mut rng);
            replay(&table, &config, &records, 100).await;
            for r in &records {
                let key = r["kinesis"]["partitionKey"].as_str().unwrap().to_owned();
                expected.insert(
                    key,
                    r["kinesis"]["sequenceNumber"].as_str().unwrap().to_owned(),
                );
            }
        }
        // Keys span shards here: across shards the later arrival wins, and
        // the shards are replayed in order, so the last shard's record wins.
        let items = table.items("items");
        assert_eq!(items.len(), expected.len(), "seed {seed}: one item per key");
        for (key, item) in items {
            let position = item[POSITION_ATTR].as_s().unwrap();
            let seq = position.split('.').next().unwrap().trim_start_matches('0');
            assert!(
                expected[&key[0]].ends_with(seq),
                "seed {seed}: {key:?} holds {seq}, expected {}",
                expected[&key[0]]
            );
        }
    }
}

#[tokio::test]
async fn append_mode_keeps_every_record_under_faults() {
    for seed in [3, 11, 99] {
        let table = Arc::new(InMemoryTable::new(&["pk", "sk"], seed, true));
        let config = config(Mode::Append);
        let mut rng = Rng(seed + 5);
        let mut total = 0;
        for shard in 0..4 {
            let records = shard_records(shard, 1500, 100, &mut rng);
            total += records.len();
            replay(&table, &config, &records, 250).await;
        }
        let items = table.items("items");
        assert_eq!(
            items.len(),
            total,
            "seed {seed}: every record present exactly once"
        );
        assert!(table.items("rejects").is_empty());
    }
}

#[tokio::test]
async fn poison_goes_to_the_rejects_table_and_does_not_block() {
    let table = Arc::new(InMemoryTable::new(&["pk"], 5, false));
    let config = config(Mode::Latest);
    let mut records = vec![record(0, 1, 1, 1)];
    let mut bad = record(0, 2, 2, 2);
    bad["kinesis"]["data"] = json!(aws_smithy_types::base64::encode(b"{not json"));
    records.push(bad);
    records.push(record(0, 3, 3, 3));
    let raw: Vec<EventRecord> = records
        .iter()
        .map(|r| EventRecord::read(&r.to_string()))
        .collect();
    let (response, counts) = process(
        &table,
        &config,
        &raw,
        Instant::now() + Duration::from_secs(5),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((counts.written, counts.rejected), (2, 1));
    let rejects = table.items("rejects");
    let reject = rejects.values().next().unwrap();
    assert!(
        reject["reason"]
            .as_s()
            .unwrap()
            .starts_with("record is not valid JSON")
    );
    assert_eq!(
        reject["data"],
        AttributeValue::B(b"{not json".to_vec().into())
    );
}

#[tokio::test]
async fn duplicate_keys_in_a_batch_collapse_to_one_write_of_the_newest() {
    let table = Arc::new(InMemoryTable::new(&["pk"], 1, false));
    let records: Vec<EventRecord> = [(1, 1), (2, 2), (3, 1), (4, 1)]
        .iter()
        .map(|&(seq, key)| EventRecord::read(&record(0, seq, key, seq).to_string()))
        .collect();
    let (response, counts) = process(
        &table,
        &config(Mode::Latest),
        &records,
        Instant::now() + Duration::from_secs(5),
    )
    .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((counts.written, counts.collapsed), (2, 2));
    assert_eq!(*table.conditional_puts.lock().unwrap(), 2);
    let items = table.items("items");
    assert_eq!(
        items[&vec!["key-1".to_owned()]]["version"].as_n().unwrap(),
        "4"
    );
}

/// Every third record is poison, under UnprocessedItems and throttling on
/// both tables: each valid record is written and each poison one stored as
/// a reject, none dropped, across replays from the checkpoint.
#[tokio::test]
async fn poison_under_faults_is_stored_never_dropped() {
    for (seed, mode) in [(2, Mode::Latest), (13, Mode::Append)] {
        let keys: &[&str] = if mode == Mode::Append {
            &["pk", "sk"]
        } else {
            &["pk"]
        };
        let table = Arc::new(InMemoryTable::new(keys, seed, true));
        let config = config(mode);
        let records: Vec<Value> = (0..900u64)
            .map(|i| {
                let mut r = record(0, i, i as usize, i);
                if i % 3 == 0 {
                    r["kinesis"]["data"] = json!(aws_smithy_types::base64::encode(b"{not json"));
                }
                r
            })
            .collect();
        replay(&table, &config, &records, 120).await;
        assert_eq!(table.items("rejects").len(), 300, "seed {seed}");
        assert_eq!(table.items("items").len(), 600, "seed {seed}");
    }
}

/// A reject that cannot be stored fails its record through the checkpoint.
#[tokio::test]
async fn a_reject_that_cannot_be_stored_fails_its_record() {
    let mut table = InMemoryTable::new(&["pk"], 1, false);
    table.rejects_broken = true;
    let table = Arc::new(table);
    let mut bad = record(0, 2, 2, 2);
    bad["kinesis"]["data"] = json!(aws_smithy_types::base64::encode(b"{not json"));
    let raw: Vec<EventRecord> = [record(0, 1, 1, 1), bad, record(0, 3, 3, 3)]
        .iter()
        .map(|r| EventRecord::read(&r.to_string()))
        .collect();
    let (response, counts) = process(
        &table,
        &config(Mode::Latest),
        &raw,
        Instant::now() + Duration::from_secs(5),
    )
    .await;
    assert_eq!(
        response.batch_item_failures[0].item_identifier,
        format!("4959{:052}", 2)
    );
    assert_eq!((counts.rejected, counts.failed), (0, 1));
}

/// With no time left, nothing is written and the checkpoint is the first
/// record, whether it is poison or not, in both modes.
#[tokio::test]
async fn with_no_time_left_the_checkpoint_is_the_first_record() {
    for mode in [Mode::Latest, Mode::Append] {
        let keys: &[&str] = if mode == Mode::Append {
            &["pk", "sk"]
        } else {
            &["pk"]
        };
        for poison_first in [true, false] {
            let table = Arc::new(InMemoryTable::new(keys, 1, false));
            let mut records = [record(0, 1, 1, 1), record(0, 2, 2, 2), record(0, 3, 3, 3)];
            let poison = if poison_first { 0 } else { 1 };
            records[poison]["kinesis"]["data"] =
                json!(aws_smithy_types::base64::encode(b"{not json"));
            let raw: Vec<EventRecord> = records
                .iter()
                .map(|r| EventRecord::read(&r.to_string()))
                .collect();
            let (response, _) = process(&table, &config(mode), &raw, Instant::now()).await;
            assert_eq!(
                response
                    .batch_item_failures
                    .first()
                    .map(|f| f.item_identifier.clone()),
                Some(format!("4959{:052}", 1)),
                "{mode:?}, poison first: {poison_first}"
            );
        }
    }
}

/// `{"id": key, "version": version}` at `seq`, refused by the table when
/// `refused`.
fn keyed_record(seq: u64, key: &str, version: u64, refused: bool) -> Value {
    let mut record = record(0, seq, 0, version);
    let mut data = json!({"id": key, "version": version});
    if refused {
        data["refuse"] = json!(true);
    }
    record["kinesis"]["data"] = json!(aws_smithy_types::base64::encode(data.to_string()));
    record
}

/// Runs `records` once with the table's chosen faults, then clears them and
/// replays from the checkpoint until the batch completes.
async fn once_then_replay(table: &Arc<InMemoryTable>, config: &Config, records: &[Value]) {
    let raw: Vec<EventRecord> = records
        .iter()
        .map(|r| EventRecord::read(&r.to_string()))
        .collect();
    let (response, _) = process(
        table,
        config,
        &raw,
        Instant::now() + Duration::from_millis(400),
    )
    .await;
    table.throttled_keys.lock().unwrap().clear();
    table.hung_keys.lock().unwrap().clear();
    let Some(failure) = response.batch_item_failures.first() else {
        return;
    };
    let at = records
        .iter()
        .position(|r| r["kinesis"]["sequenceNumber"] == failure.item_identifier.as_str())
        .expect("reported sequence is in the batch");
    replay(table, config, &records[at..], records.len()).await;
}

/// v1 valid, other keys, v2 of v1's key refused. Whether v2's write fails
/// until the deadline, is abandoned at it, or the deadline cuts the batch
/// off after v1 (before another key's record), after replay from the
/// checkpoint the item holds v1 and v2 is a reject.
#[tokio::test]
async fn a_failed_or_cut_off_newest_write_does_not_lose_an_older_record() {
    for mode in [Mode::Latest, Mode::Append] {
        let keys: &[&str] = if mode == Mode::Append {
            &["pk", "sk"]
        } else {
            &["pk"]
        };
        for fault in ["throttled", "hung", "cut off"] {
            let mut config = config(mode);
            // One request at a time: a hanging write holds the rest back
            // until the deadline abandons it.
            config.max_in_flight = 1;
            let table = Arc::new(InMemoryTable::new(keys, 1, false));
            let others: Vec<String> = match fault {
                // More hanging writes than the converter may hold ready: it
                // waits, and the deadline cuts it off before y or v2.
                "cut off" => (1..=8).map(|i| format!("x{i}")).collect(),
                _ => vec!["x".to_owned()],
            };
            let mut records = vec![keyed_record(10, "k", 1, false)];
            records.extend(
                (11..)
                    .zip(&others)
                    .map(|(seq, key)| keyed_record(seq, key, 1, false)),
            );
            if fault == "cut off" {
                records.push(keyed_record(19, "y", 1, false));
            }
            records.push(keyed_record(20, "k", 2, true));
            let listed = match fault {
                "throttled" => &table.throttled_keys,
                _ => &table.hung_keys,
            };
            listed.lock().unwrap().extend(others.iter().cloned());
            if fault != "cut off" {
                listed.lock().unwrap().push("k".into());
            }
            once_then_replay(&table, &config, &records).await;
            let versions: Vec<String> = table
                .items("items")
                .values()
                .filter(|item| item["pk"].as_s().unwrap() == "k")
                .map(|item| item["version"].as_n().unwrap().clone())
                .collect();
            let expected: &[&str] = &["1"];
            assert_eq!(versions, expected, "{mode:?}, {fault}");
            let rejects: Vec<String> = table
                .items("rejects")
                .values()
                .map(|r| r["sequenceNumber"].as_s().unwrap().clone())
                .collect();
            assert_eq!(rejects, [format!("4959{:052}", 20)], "{mode:?}, {fault}");
            assert_eq!(
                table.items("items").len(),
                records.len() - 1,
                "{mode:?}, {fault}"
            );
        }
    }
}

/// DynamoDB refuses a key's newest record only once the budget is spent
/// (no request may start): the function answers before its deadline,
/// without reading the batch again for a fallback, and the checkpoint is
/// the key's oldest record, so the replay falls back to it.
#[tokio::test]
async fn a_refusal_after_the_budget_is_spent_answers_before_the_deadline() {
    let mut config = config(Mode::Latest);
    config.deadline_margin = Duration::from_millis(1000);
    let table = Arc::new(InMemoryTable::new(&["pk"], 1, false));
    // A batch that is long to decode again: about 6 MB of numbers.
    let big = |seq: u64| {
        let mut record = record(0, seq, 0, 1);
        let values: Vec<u64> = (0..50_000).map(|i| 10_000 + i).collect();
        let data = json!({"id": format!("big-{seq}"), "values": values}).to_string();
        record["kinesis"]["data"] = json!(aws_smithy_types::base64::encode(data));
        record
    };
    let mut records = vec![keyed_record(1, "k", 1, false)];
    records.extend((2..22).map(big));
    records.push(keyed_record(22, "k", 2, true));
    let raw: Vec<EventRecord> = records
        .iter()
        .map(|r| EventRecord::read(&r.to_string()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    let start_by = deadline - config.deadline_margin;
    *table.held_until.lock().unwrap() = Some(("k".into(), start_by + Duration::from_millis(20)));
    let (response, _) = process(&table, &config, &raw, deadline).await;
    assert!(
        Instant::now() < deadline,
        "answered {:?} after its deadline",
        Instant::now() - deadline
    );
    assert_eq!(
        response
            .batch_item_failures
            .first()
            .map(|f| f.item_identifier.clone()),
        Some(format!("4959{:052}", 1)),
        "the key's oldest record"
    );
}

/// No request starts later than the margin before the deadline, a first
/// attempt included: a write queued behind one that ends after that point
/// is not sent, its record fails through the checkpoint.
#[tokio::test]
async fn no_request_starts_after_the_budget() {
    for mode in [Mode::Append, Mode::Latest] {
        let keys: &[&str] = if mode == Mode::Append {
            &["pk", "sk"]
        } else {
            &["pk"]
        };
        let mut config = config(mode);
        config.deadline_margin = Duration::from_millis(1000);
        config.max_in_flight = 1;
        let table = Arc::new(InMemoryTable::new(keys, 1, false));
        // Append mode writes 25 records per request: the 26th waits for
        // the first chunk, held with "a".
        let records: Vec<Value> = (1..=26)
            .map(|seq| keyed_record(seq, &format!("r{seq}"), 1, false))
            .collect();
        let raw: Vec<EventRecord> = records
            .iter()
            .map(|r| EventRecord::read(&r.to_string()))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(2);
        let start_by = deadline - config.deadline_margin;
        *table.held_until.lock().unwrap() =
            Some(("r1".into(), start_by + Duration::from_millis(20)));
        let (response, _) = process(&table, &config, &raw, deadline).await;
        let late = table
            .started
            .lock()
            .unwrap()
            .iter()
            .filter(|&&at| at >= start_by)
            .count();
        assert_eq!(late, 0, "{mode:?}: requests started after the budget");
        assert_eq!(
            response
                .batch_item_failures
                .first()
                .map(|f| f.item_identifier.clone()),
            Some(format!(
                "4959{:052}",
                if mode == Mode::Append { 26 } else { 2 }
            )),
            "{mode:?}"
        );
    }
}

/// Latest mode under a DynamoDB that each invocation accepts only so many
/// writes: key k has a record in the first window and its newest in the
/// third, where every invocation's deadline cuts. The checkpoint moves past
/// the finished windows, so replays complete the batch and k holds its
/// newest record.
#[tokio::test]
async fn a_repeated_cut_off_still_moves_the_checkpoint_on() {
    use kinesis_to_dynamodb::pipeline::WINDOW_RECORDS;
    let config = config(Mode::Latest);
    let table = Arc::new(InMemoryTable::new(&["pk"], 1, false));
    let total = 2 * WINDOW_RECORDS + WINDOW_RECORDS / 2;
    let newest_of_k = 2 * WINDOW_RECORDS + WINDOW_RECORDS / 3;
    let records: Vec<Value> = (0..total)
        .map(|i| match i {
            0 => keyed_record(1, "k", 1, false),
            i if i == newest_of_k => keyed_record(i as u64 + 1, "k", 2, false),
            i => keyed_record(i as u64 + 1, &format!("r{i}"), 1, false),
        })
        .collect();
    // Every invocation ends inside the third window, before k's newest.
    let per_invocation = 2 * WINDOW_RECORDS + WINDOW_RECORDS / 4;
    let mut checkpoint = 0;
    let mut invocations = 0;
    while checkpoint < records.len() {
        invocations += 1;
        assert!(
            invocations <= 5,
            "no progress: the checkpoint stays at record {checkpoint}"
        );
        *table.capacity.lock().unwrap() = Some(per_invocation);
        let raw: Vec<EventRecord> = records[checkpoint..]
            .iter()
            .map(|r| EventRecord::read(&r.to_string()))
            .collect();
        let (response, _) = process(
            &table,
            &config,
            &raw,
            Instant::now() + Duration::from_secs(2),
        )
        .await;
        match response.batch_item_failures.first() {
            None => checkpoint = records.len(),
            Some(failure) => {
                checkpoint = records
                    .iter()
                    .position(|r| {
                        r["kinesis"]["sequenceNumber"] == failure.item_identifier.as_str()
                    })
                    .expect("reported sequence is in the batch");
            }
        }
    }
    let items = table.items("items");
    assert_eq!(items.len(), total - 1);
    assert_eq!(items[&vec!["k".to_owned()]]["version"].as_n().unwrap(), "2");
}

/// Latest mode, a key refused at its newest record in the second window:
/// the fallback tries that window's older record, and without one the
/// first window's newest (written in its own window) stays.
#[tokio::test]
async fn a_refused_newest_falls_back_within_its_window() {
    use kinesis_to_dynamodb::pipeline::WINDOW_RECORDS;
    for older_in_window in [true, false] {
        let table = Arc::new(InMemoryTable::new(&["pk"], 1, false));
        let refused_at = WINDOW_RECORDS + 10;
        let records: Vec<Value> = (0..WINDOW_RECORDS + 20)
            .map(|i| {
                let seq = i as u64 + 1;
                match i {
                    0 => keyed_record(seq, "k", 1, false),
                    5 => keyed_record(seq, "k", 2, false),
                    i if older_in_window && i == WINDOW_RECORDS + 3 => {
                        keyed_record(seq, "k", 3, false)
                    }
                    i if i == refused_at => keyed_record(seq, "k", 4, true),
                    i => keyed_record(seq, &format!("r{i}"), 1, false),
                }
            })
            .collect();
        once_then_replay(&table, &config(Mode::Latest), &records).await;
        let expected = if older_in_window { "3" } else { "2" };
        let items = table.items("items");
        assert_eq!(
            items[&vec!["k".to_owned()]]["version"].as_n().unwrap(),
            expected,
            "older record in the window: {older_in_window}"
        );
        let rejects: Vec<String> = table
            .items("rejects")
            .values()
            .map(|r| r["sequenceNumber"].as_s().unwrap().clone())
            .collect();
        assert_eq!(rejects, [format!("4959{:052}", refused_at + 1)]);
    }
}

/// Invokes with `per_invocation` items of table capacity each time (the
/// rest of the writes hang until the deadline cuts them off), from the
/// checkpoint on, until the batch completes; at most `max_invocations`.
async fn until_complete_under_capacity(
    table: &Arc<InMemoryTable>,
    config: &Config,
    records: &[Value],
    per_invocation: usize,
    max_invocations: usize,
) {
    let mut checkpoint = 0;
    let mut invocations = 0;
    while checkpoint < records.len() {
        invocations += 1;
        assert!(
            invocations <= max_invocations,
            "{:?}: no progress, the checkpoint stays at record {checkpoint}",
            config.mode
        );
        *table.capacity.lock().unwrap() = Some(per_invocation);
        let raw: Vec<EventRecord> = records[checkpoint..]
            .iter()
            .map(|r| EventRecord::read(&r.to_string()))
            .collect();
        let (response, _) =
            process(table, config, &raw, Instant::now() + Duration::from_secs(2)).await;
        checkpoint = match response.batch_item_failures.first() {
            None => records.len(),
            Some(failure) => records
                .iter()
                .position(|r| r["kinesis"]["sequenceNumber"] == failure.item_identifier.as_str())
                .expect("reported sequence is in the batch"),
        };
    }
}

/// Poison at the batch's first record and in the second window, the table
/// slow enough that every invocation is cut off inside the third window:
/// each window's rejects go out with it, so the checkpoint moves on, in
/// both modes, and each poison record is stored once.
#[tokio::test]
async fn poison_in_early_windows_does_not_hold_the_checkpoint_under_cut_offs() {
    use kinesis_to_dynamodb::pipeline::WINDOW_RECORDS;
    for mode in [Mode::Latest, Mode::Append] {
        let config = config(mode);
        let keys: &[&str] = match mode {
            Mode::Latest => &["pk"],
            Mode::Append => &["pk", "sk"],
        };
        let table = Arc::new(InMemoryTable::new(keys, 1, false));
        let total = 2 * WINDOW_RECORDS + WINDOW_RECORDS / 2;
        let poison = [0, WINDOW_RECORDS + 7];
        let newest_of_k = 2 * WINDOW_RECORDS + WINDOW_RECORDS / 3;
        let records: Vec<Value> = (0..total)
            .map(|i| {
                let seq = i as u64 + 1;
                match i {
                    i if poison.contains(&i) => {
                        let mut bad = keyed_record(seq, "bad", 1, false);
                        bad["kinesis"]["data"] =
                            json!(aws_smithy_types::base64::encode(b"{not json"));
                        bad
                    }
                    1 => keyed_record(seq, "k", 1, false),
                    i if i == newest_of_k => keyed_record(seq, "k", 2, false),
                    i => keyed_record(seq, &format!("r{i}"), 1, false),
                }
            })
            .collect();
        // Every invocation ends inside the third window, before k's newest.
        let per_invocation = 2 * WINDOW_RECORDS + WINDOW_RECORDS / 4;
        until_complete_under_capacity(&table, &config, &records, per_invocation, 5).await;
        let expected_rejects: HashMap<String, usize> = poison
            .iter()
            .map(|&i| (format!("4959{:052}", i + 1), 1))
            .collect();
        assert_eq!(
            *table.reject_stores.lock().unwrap(),
            expected_rejects,
            "{mode:?}: each poison record stored as a reject exactly once"
        );
        let items = table.items("items");
        match mode {
            Mode::Latest => {
                assert_eq!(items.len(), total - poison.len() - 1, "{mode:?}");
                assert_eq!(items[&vec!["k".to_owned()]]["version"].as_n().unwrap(), "2");
            }
            Mode::Append => {
                assert_eq!(items.len(), total - poison.len(), "{mode:?}");
                let mut per_key: HashMap<&str, usize> = HashMap::new();
                for key in items.keys() {
                    *per_key.entry(key[0].as_str()).or_default() += 1;
                }
                assert_eq!(per_key["k"], 2, "{mode:?}: both records of k");
                for i in (0..total).filter(|i| !poison.contains(i) && *i != 1 && *i != newest_of_k)
                {
                    assert_eq!(
                        per_key.get(format!("r{i}").as_str()),
                        Some(&1),
                        "{mode:?}: record {i}"
                    );
                }
            }
        }
        for (key, item) in &items {
            if key[0] != "k" {
                assert_eq!(item["version"].as_n().unwrap(), "1", "{mode:?}: {key:?}");
            }
        }
    }
}
