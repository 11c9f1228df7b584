//! The kinesis-replay binary against moto Kinesis, SQS and DynamoDB: the
//! failure queue's batches re-read from the stream, and the rejects table.

use aws_sdk_dynamodb::types::AttributeValue;
use kinesis_to_dynamodb::kpl;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use suite_tests::http::{forward, forward_rewriting, reply, serve};
use suite_tests::moto::{Moto, Row, create_table, scan};

/// The function's environment as the template sets it with its defaults
/// (the runbook exports it for the tool): empty means the function's default.
const FUNCTION_ENV: [(&str, &str); 7] = [
    ("TABLE_NAME", "orders"),
    ("PARTITION_KEY", "pk"),
    ("REJECTS_TABLE_NAME", "rejects"),
    ("PARTITION_KEY_SOURCE", ""),
    ("SORT_KEY", ""),
    ("SORT_KEY_SOURCE", ""),
    ("MODE", "latest"),
];

struct Harness {
    moto: Moto,
    db: aws_sdk_dynamodb::Client,
    kinesis: aws_sdk_kinesis::Client,
    sqs: aws_sdk_sqs::Client,
    stream_arn: String,
    queue_url: String,
}

/// A record put into the stream.
struct Put {
    shard: String,
    sequence: String,
}

impl Harness {
    async fn start() -> Self {
        let moto = Moto::start();
        let sdk = moto.sdk_config().await;
        let db = aws_sdk_dynamodb::Client::new(&sdk);
        let kinesis = aws_sdk_kinesis::Client::new(&sdk);
        let sqs = aws_sdk_sqs::Client::new(&sdk);
        create_table(&db, "orders", &["pk"]).await;
        create_table(&db, "rejects", &["shardId", "position"]).await;
        kinesis
            .create_stream()
            .stream_name("orders")
            .shard_count(1)
            .send()
            .await
            .unwrap();
        let stream_arn = kinesis
            .describe_stream_summary()
            .stream_name("orders")
            .send()
            .await
            .unwrap()
            .stream_description_summary
            .unwrap()
            .stream_arn;
        let queue_url = sqs
            .create_queue()
            .queue_name("kinesis-failures")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Self {
            moto,
            db,
            kinesis,
            sqs,
            stream_arn,
            queue_url,
        }
    }

    async fn put(&self, partition_key: &str, data: &[u8]) -> Put {
        let out = self
            .kinesis
            .put_record()
            .stream_arn(&self.stream_arn)
            .partition_key(partition_key)
            .data(data.to_vec().into())
            .send()
            .await
            .unwrap();
        Put {
            shard: out.shard_id,
            sequence: out.sequence_number,
        }
    }

    async fn put_json(&self, partition_key: &str, value: Value) -> Put {
        self.put(partition_key, value.to_string().as_bytes()).await
    }

    /// What Lambda sends to the on-failure destination for a discarded batch.
    fn failure(&self, first: &Put, last: &Put, batch_size: u64) -> Value {
        json!({
            "requestContext": {
                "requestId": "316aa6d0-8154-xmpl-9af7-85d5f4a6bc81",
                "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:kinesis-to-dynamodb",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 3
            },
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "version": "1.0",
            "timestamp": "2026-12-01T04:00:00.000Z",
            "KinesisBatchInfo": {
                "shardId": first.shard,
                "startSequenceNumber": first.sequence,
                "endSequenceNumber": last.sequence,
                "approximateArrivalOfFirstRecord": "2026-12-01T03:59:00.000Z",
                "approximateArrivalOfLastRecord": "2026-12-01T03:59:01.000Z",
                "batchSize": batch_size,
                "streamArn": self.stream_arn
            }
        })
    }

    async fn send(&self, message: &Value) {
        self.sqs
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(message.to_string())
            .send()
            .await
            .unwrap();
    }

    /// Messages in the queue, visible or not.
    async fn queued(&self) -> u64 {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap();
        [
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
        ]
        .iter()
        .map(|name| {
            attributes[&name
                .parse::<aws_sdk_sqs::types::QueueAttributeName>()
                .unwrap()]
                .parse::<u64>()
                .unwrap()
        })
        .sum()
    }

    async fn visible(&self) -> u64 {
        self.sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .unwrap()
            .attributes
            .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
            .parse()
            .unwrap()
    }

    /// Runs the binary with the function's configuration plus `extra`.
    fn run(&self, args: &[&str], extra: &[(&str, &str)]) -> (i32, String) {
        let (code, stdout, _) = self.run_without(args, extra, &[]);
        (code, stdout)
    }

    /// Runs the binary with the function's configuration plus `extra`, less
    /// `unset`; returns its exit code, stdout and stderr.
    fn run_without(
        &self,
        args: &[&str],
        extra: &[(&str, &str)],
        unset: &[&str],
    ) -> (i32, String, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kinesis-replay"));
        command
            .args(args)
            .env_clear()
            .envs(self.moto.env())
            .envs(FUNCTION_ENV)
            .envs([("RETRY_BASE_DELAY_MS", "1"), ("RETRY_MAX_DELAY_MS", "10")])
            .envs(extra.iter().copied());
        for name in unset {
            command.env_remove(name);
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        println!("$ kinesis-replay {}\n{stdout}{stderr}", args.join(" "));
        (output.status.code().unwrap_or(-1), stdout, stderr)
    }

    fn failures(&self, extra_args: &[&str]) -> (i32, String) {
        let mut args = vec!["failures", "--queue-url", &self.queue_url];
        args.extend(extra_args);
        self.run(&args, &[])
    }

    async fn items(&self) -> BTreeMap<String, Row> {
        by_key(&scan(&self.db, "orders").await, "pk")
    }

    async fn rejects(&self) -> Vec<Row> {
        scan(&self.db, "rejects").await
    }
}

fn by_key(rows: &[Row], attr: &str) -> BTreeMap<String, Row> {
    rows.iter()
        .map(|r| (r[attr].as_s().unwrap().clone(), r.clone()))
        .collect()
}

fn n(row: &Row, attr: &str) -> String {
    match &row[attr] {
        AttributeValue::N(n) => n.clone(),
        other => panic!("{attr} is {other:?}"),
    }
}

fn aggregate(users: &[(&str, Value)]) -> Vec<u8> {
    kpl::aggregate(
        &users
            .iter()
            .map(|(key, value)| kpl::UserRecord {
                partition_key: (*key).into(),
                explicit_hash_key: None,
                data: value.to_string().into_bytes(),
            })
            .collect::<Vec<_>>(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_batch_is_replayed_from_the_stream_then_its_message_deleted_and_a_rerun_changes_nothing()
 {
    let h = Harness::start().await;
    let first = h.put_json("a", json!({"id": "a", "v": 1})).await;
    h.put_json("b", json!({"id": "b", "v": 1})).await;
    h.put(
        "agg",
        &aggregate(&[("u1", json!({"id": "u1", "v": 1})), ("u2", json!({"v": 1}))]),
    )
    .await;
    let last = h.put_json("a", json!({"id": "a", "v": 2})).await;
    // After the failed batch, the function already wrote a newer b.
    let newer_b = h.put_json("b", json!({"id": "b", "v": 9})).await;
    h.send(&h.failure(&newer_b, &newer_b, 1)).await;
    assert_eq!(h.failures(&[]).0, 0);
    h.send(&h.failure(&first, &last, 4)).await;

    let (code, out) = h.failures(&["--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("would write 5 user records and reject 0"),
        "{out}"
    );
    assert_eq!(h.items().await.len(), 1, "a dry run writes nothing");
    assert_eq!(h.visible().await, 1, "a dry run keeps the message, visible");

    let (code, out) = h.failures(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("deleted"), "{out}");
    assert_eq!(h.queued().await, 0, "the message is gone");
    let items = h.items().await;
    assert_eq!(
        items.keys().collect::<Vec<_>>(),
        ["a", "b", "u1", "u2"],
        "KPL user records de-aggregated, keyed as the function keys them"
    );
    assert_eq!(n(&items["a"], "v"), "2", "the newest record of a key wins");
    assert_eq!(
        n(&items["b"], "v"),
        "9",
        "an older record never replaces a newer one"
    );
    assert!(out.contains("stale 1"), "{out}");
    assert!(
        items["u2"]["_kinesis_position"]
            .as_s()
            .unwrap()
            .ends_with(".0000000001"),
        "a user record keeps its place in its aggregate"
    );

    // The same message again (Lambda sent it twice, or an operator): same items.
    h.send(&h.failure(&first, &last, 4)).await;
    let (code, out) = h.failures(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(h.items().await, items, "a replay is a fixed point");
    assert_eq!(h.queued().await, 0);
    let (code, out) = h.failures(&[]);
    assert_eq!(code, 0);
    assert!(out.contains("failures: 0 messages"), "{out}");
    assert_eq!(h.items().await, items);
    assert!(h.rejects().await.is_empty());
}

/// The tool writes items keyed as the function does only if it knows how
/// the function keys them: a key-shaping variable the operator did not
/// export is refused before anything is read, written or deleted.
#[tokio::test(flavor = "multi_thread")]
async fn configuration_the_operator_did_not_export_is_refused_before_anything_changes() {
    let h = Harness::start().await;
    let stack = [("PARTITION_KEY_SOURCE", "/customer")];
    let only = h.put_json("p", json!({"customer": "c1", "id": "x"})).await;
    h.send(&h.failure(&only, &only, 1)).await;
    for args in [
        vec!["failures", "--queue-url", &h.queue_url],
        vec!["rejects", "replay"],
    ] {
        for unset in [
            "PARTITION_KEY_SOURCE",
            "MODE",
            "SORT_KEY",
            "SORT_KEY_SOURCE",
        ] {
            let (code, stdout, stderr) = h.run_without(&args, &[], &[unset]);
            assert_eq!(code, 2, "{args:?} without {unset}: {stdout}{stderr}");
            assert!(stderr.contains(unset), "{stderr}");
        }
    }
    assert!(h.items().await.is_empty(), "nothing written");
    assert_eq!(h.visible().await, 1, "the message was not touched");

    // Exported: the effective configuration comes first, then the replay.
    let (code, stdout, stderr) =
        h.run_without(&["failures", "--queue-url", &h.queue_url], &stack, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("partition key pk from /customer") && stderr.contains("mode latest"),
        "{stderr}"
    );
    assert_eq!(h.items().await.keys().collect::<Vec<_>>(), ["c1"]);
}

/// The destination is an SNS topic whose SQS subscription has no raw
/// delivery: the failure message arrives wrapped in SNS's envelope.
#[tokio::test(flavor = "multi_thread")]
async fn a_failure_message_wrapped_by_sns_is_replayed() {
    let h = Harness::start().await;
    let first = h.put_json("a", json!({"id": "a"})).await;
    let last = h.put_json("b", json!({"id": "b"})).await;
    h.send(&json!({
        "Type": "Notification",
        "MessageId": "6a1f2e4c-xmpl-4f0e-9d41-8c2b1a0e7f3d",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:kinesis-failures",
        "Message": h.failure(&first, &last, 2).to_string(),
        "Timestamp": "2026-12-01T04:00:01.000Z",
        "SignatureVersion": "1"
    }))
    .await;
    let (code, out) = h.failures(&[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(h.items().await.keys().collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(h.queued().await, 0, "the message is deleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_whose_records_are_gone_is_kept_unless_the_loss_is_accepted() {
    let h = Harness::start().await;
    let first = h.put_json("a", json!({"id": "a"})).await;
    let last = h.put_json("b", json!({"id": "b"})).await;
    // The batch began two records earlier, at a sequence number the stream
    // no longer holds: trimmed by retention.
    let trimmed = Put {
        shard: first.shard.clone(),
        sequence: "0".into(),
    };
    h.send(&h.failure(&trimmed, &last, 4)).await;
    // A shard that no longer exists.
    let gone = Put {
        shard: "shardId-000000000007".into(),
        sequence: first.sequence.clone(),
    };
    h.send(&h.failure(&gone, &gone, 1)).await;
    h.send(&json!({"not": "a failure message"})).await;

    let (code, out) = h.failures(&[]);
    assert_eq!(code, 1, "something was left: {out}");
    assert!(
        out.contains("LOSS") && out.contains("2 of 4 records read"),
        "{out}"
    );
    assert!(out.contains("the first record is gone"), "{out}");
    assert!(
        out.contains("shardId-000000000007") && out.contains("0 of 1 records read"),
        "{out}"
    );
    assert!(out.contains("not a Kinesis on-failure message"), "{out}");
    assert!(out.contains("3 messages: 0 done, 3 left"), "{out}");
    assert_eq!(h.visible().await, 3, "every message is kept, visible again");
    assert_eq!(
        h.items().await.len(),
        2,
        "what is still in the stream is written meanwhile"
    );

    let (code, out) = h.failures(&["--accept-loss"]);
    assert_eq!(code, 1, "the unreadable message stays: {out}");
    assert!(out.contains("deleted (--accept-loss)"), "{out}");
    assert_eq!(h.visible().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bad_record_among_good_ones_costs_nothing_and_a_fixed_reject_replays() {
    let h = Harness::start().await;
    // Configuration A keys by /customer: records without it are rejected.
    let strict = [("PARTITION_KEY_SOURCE", "/customer")];
    let first = h.put_json("p1", json!({"customer": "c1", "v": 1})).await;
    h.put_json("p2", json!({"id": "x", "v": 2})).await;
    h.put("p3", b"not json").await;
    let last = h
        .put(
            "agg",
            &aggregate(&[
                ("k1", json!({"customer": "c2"})),
                ("k2", json!({"id": "y"})),
            ]),
        )
        .await;
    h.send(&h.failure(&first, &last, 4)).await;
    let (code, out) = h.run(&["failures", "--queue-url", &h.queue_url], &strict);
    assert_eq!(
        code, 0,
        "rejects are done with, as the function does: {out}"
    );
    assert_eq!(h.queued().await, 0);
    assert_eq!(h.items().await.keys().collect::<Vec<_>>(), ["c1", "c2"]);
    assert_eq!(h.rejects().await.len(), 3);

    let (code, out) = h.run(&["rejects", "list"], &strict);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert!(
        out.contains("missing key") && out.contains("not valid JSON"),
        "{out}"
    );
    let (_, out) = h.run(&["rejects", "list", "--limit", "1"], &strict);
    assert_eq!(out.lines().count(), 2, "{out}");

    // Unchanged configuration: nothing can be replayed, nothing is lost.
    let before = h.rejects().await;
    let (code, out) = h.run(&["rejects", "replay"], &strict);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        h.rejects().await,
        before,
        "still-bad rejects stay as they were"
    );

    // The cause fixed (keys from /id, else the partition key).
    let (code, out) = h.run(&["rejects", "replay", "--dry-run"], &[]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(out.matches("would be written").count(), 2, "{out}");
    assert_eq!(h.rejects().await, before, "a dry run changes nothing");
    let (code, out) = h.run(&["rejects", "replay"], &[]);
    assert_eq!(code, 1, "the invalid JSON is left: {out}");
    assert!(out.contains("3 rejects: 2 done, 1 left"), "{out}");
    let items = h.items().await;
    assert_eq!(items.keys().collect::<Vec<_>>(), ["c1", "c2", "x", "y"]);
    assert!(
        items["y"]["_kinesis_position"]
            .as_s()
            .unwrap()
            .ends_with(".0000000001"),
        "the user record keeps its place in its aggregate"
    );
    assert_eq!(items["x"]["_kinesis_shard"].as_s().unwrap(), &first.shard);
    let left = h.rejects().await;
    assert_eq!(left.len(), 1);
    assert!(left[0]["reason"].as_s().unwrap().contains("not valid JSON"));
    assert_eq!(left[0]["partitionKey"].as_s().unwrap(), "p3");

    // Again: the still-bad reject neither goes nor doubles.
    let (code, _) = h.run(&["rejects", "replay"], &[]);
    assert_eq!(code, 1);
    assert_eq!(h.rejects().await, left);
    assert_eq!(h.items().await, items);

    // Delete by the id the list prints.
    let (_, listed) = h.run(&["rejects", "list"], &[]);
    let id = listed.split_whitespace().next().unwrap().to_owned();
    let (code, out) = h.run(&["rejects", "delete", "--id", &id], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("deleted {id}")) && out.contains("not valid JSON"),
        "{out}"
    );
    assert!(h.rejects().await.is_empty());
    let (code, out) = h.run(&["rejects", "delete", "--id", &id], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("no such reject"), "{out}");
    let (code, _) = h.run(&["rejects", "delete", "--id", "nonsense"], &[]);
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_that_fails_keeps_the_message_and_the_reject_until_it_works() {
    let h = Harness::start().await;
    let strict = [("PARTITION_KEY_SOURCE", "/customer")];
    let first = h.put_json("a", json!({"customer": "c1"})).await;
    h.put("b", b"not json").await;
    let last = h.put_json("c", json!({"id": "x"})).await;
    h.send(&h.failure(&first, &last, 3)).await;

    let absent = [strict[0], ("TABLE_NAME", "no-such-table")];
    let (code, out) = h.run(&["failures", "--queue-url", &h.queue_url], &absent);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("kept    (not written from"), "{out}");
    assert_eq!(h.visible().await, 1, "the message is kept, visible again");
    assert_eq!(
        h.rejects().await.len(),
        2,
        "the poison was set aside meanwhile"
    );

    let (code, out) = h.run(&["failures", "--queue-url", &h.queue_url], &strict);
    assert_eq!(code, 0, "{out}");
    assert_eq!(h.queued().await, 0);
    assert_eq!(h.items().await.keys().collect::<Vec<_>>(), ["c1"]);
    let rejects = h.rejects().await;
    assert_eq!(rejects.len(), 2, "rejects are not duplicated by a replay");

    // The missing key is fixed, but the table fails: the reject stays.
    let (code, out) = h.run(&["rejects", "replay"], &[("TABLE_NAME", "no-such-table")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not written"), "{out}");
    assert_eq!(h.rejects().await.len(), 2);
    let (code, out) = h.run(&["rejects", "replay"], &[]);
    assert_eq!(code, 1, "the invalid JSON stays: {out}");
    assert_eq!(h.items().await.keys().collect::<Vec<_>>(), ["c1", "x"]);
    assert_eq!(h.rejects().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn two_reject_replays_at_once_write_each_record_and_delete_each_reject() {
    let h = Harness::start().await;
    let strict = [("PARTITION_KEY_SOURCE", "/customer")];
    let mut puts = Vec::new();
    for i in 0..30 {
        puts.push(
            h.put_json(&format!("p{i}"), json!({"id": format!("k{i}"), "v": i}))
                .await,
        );
    }
    h.send(&h.failure(&puts[0], &puts[29], 30)).await;
    assert_eq!(
        h.run(&["failures", "--queue-url", &h.queue_url], &strict).0,
        0
    );
    assert_eq!(h.rejects().await.len(), 30);

    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_kinesis-replay"))
            .args(["rejects", "replay"])
            .env_clear()
            .envs(h.moto.env())
            .envs(FUNCTION_ENV)
            .output()
    };
    let (one, two) = std::thread::scope(|s| {
        let one = s.spawn(spawn);
        let two = s.spawn(spawn);
        (one.join().unwrap().unwrap(), two.join().unwrap().unwrap())
    });
    for output in [&one, &two] {
        let stdout = String::from_utf8_lossy(&output.stdout);
        println!("{stdout}");
        assert_eq!(output.status.code(), Some(0), "{stdout}");
    }
    assert!(h.rejects().await.is_empty());
    let items = h.items().await;
    assert_eq!(items.len(), 30);
    assert!((0..30).all(|i| n(&items[&format!("k{i}")], "v") == i.to_string()));
}

#[derive(Clone, Copy)]
enum Fault {
    ExpireOnce,
    AlwaysExpired,
    AlwaysThrottled,
    /// The first GetShardIterator is throttled, the first GetRecords fails
    /// with a 500.
    FailOnceEach,
}

/// A Kinesis stand-in in front of moto: the first GetRecords answers only
/// the first two records and an iterator that has expired by its next use;
/// the call after the renewal is throttled once. With another `Fault`,
/// every GetRecords answers that error. Returns its endpoint and the calls
/// it saw.
async fn expiring_kinesis(moto: String, fault: Fault) -> (String, Arc<Mutex<Vec<Value>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let (addr, _task) = serve(0, move |request| {
        let (moto, seen) = (moto.clone(), seen.clone());
        async move {
            let target = request.header("x-amz-target").unwrap_or("").to_owned();
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let get_records = target.ends_with(".GetRecords");
            let earlier = {
                let mut seen = seen.lock().unwrap();
                seen.push(json!({"target": target, "body": body}));
                seen.iter()
                    .filter(|c| c["target"].as_str().unwrap().ends_with(".GetRecords"))
                    .count()
                    - usize::from(get_records)
            };
            let expired = || {
                reply(
                    400,
                    json!({"__type": "ExpiredIteratorException", "message": "Iterator expired"})
                        .to_string(),
                )
            };
            if matches!(fault, Fault::FailOnceEach) {
                let iterators = seen
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|c| c["target"].as_str().unwrap().ends_with(".GetShardIterator"))
                    .count();
                if target.ends_with(".GetShardIterator") && iterators == 1 {
                    return reply(
                        400,
                        json!({"__type": "LimitExceededException", "message": "Rate exceeded"})
                            .to_string(),
                    );
                }
                if get_records && earlier == 0 {
                    return reply(
                        500,
                        json!({"__type": "InternalFailure", "message": "internal"}).to_string(),
                    );
                }
                return forward(&request, &moto).await;
            }
            if !get_records {
                return forward(&request, &moto).await;
            }
            let throttled = || {
                reply(
                    400,
                    json!({"__type": "ProvisionedThroughputExceededException", "message": "Rate exceeded"})
                        .to_string(),
                )
            };
            match fault {
                Fault::AlwaysExpired => return expired(),
                Fault::AlwaysThrottled => return throttled(),
                Fault::ExpireOnce if body["ShardIterator"] == "expired" => return expired(),
                Fault::ExpireOnce | Fault::FailOnceEach => {}
            }
            match earlier {
                0 => {
                    forward_rewriting(&request, &moto, |text| {
                        let mut page: Value = serde_json::from_str(&text).unwrap();
                        page["Records"].as_array_mut().unwrap().truncate(2);
                        page["NextShardIterator"] = json!("expired");
                        page.to_string()
                    })
                    .await
                }
                2 => throttled(),
                _ => forward(&request, &moto).await,
            }
        }
    })
    .await
    .unwrap();
    // The server lives as long as the test's runtime.
    (format!("http://{addr}"), calls)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_iterator_is_renewed_after_the_last_record_read() {
    let h = Harness::start().await;
    let mut puts = Vec::new();
    for i in 0..5 {
        puts.push(
            h.put_json(&format!("p{i}"), json!({"id": format!("k{i}")}))
                .await,
        );
    }
    h.send(&h.failure(&puts[0], &puts[4], 5)).await;
    let (endpoint, calls) = expiring_kinesis(h.moto.endpoint(), Fault::ExpireOnce).await;
    let (code, out) = h.run(
        &["failures", "--queue-url", &h.queue_url],
        &[("AWS_ENDPOINT_URL_KINESIS", &endpoint)],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(h.items().await.len(), 5, "{out}");
    assert_eq!(h.queued().await, 0);
    let renewals: Vec<Value> = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c["target"].as_str().unwrap().ends_with(".GetShardIterator"))
        .map(|c| c["body"].clone())
        .collect();
    assert_eq!(renewals.len(), 2, "{renewals:?}");
    assert_eq!(renewals[1]["ShardIteratorType"], "AFTER_SEQUENCE_NUMBER");
    assert_eq!(
        renewals[1]["StartingSequenceNumber"],
        json!(puts[1].sequence)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn iterators_that_keep_expiring_are_no_loss_and_the_message_stays_even_with_accept_loss() {
    let h = Harness::start().await;
    let first = h.put_json("a", json!({"id": "a"})).await;
    let last = h.put_json("b", json!({"id": "b"})).await;
    h.send(&h.failure(&first, &last, 2)).await;
    let (endpoint, _calls) = expiring_kinesis(h.moto.endpoint(), Fault::AlwaysExpired).await;
    // The records are still in the stream: only the reads keep failing.
    let (code, out) = h.run(
        &["failures", "--queue-url", &h.queue_url, "--accept-loss"],
        &[("AWS_ENDPOINT_URL_KINESIS", &endpoint)],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        !out.contains("LOSS") && !out.contains("deleted"),
        "an iterator expiring is no proof the records are gone: {out}"
    );
    assert!(
        out.contains("kept") && out.contains("ExpiredIteratorException"),
        "{out}"
    );
    assert_eq!(h.visible().await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn append_mode_replays_are_a_fixed_point_and_max_bounds_a_run() {
    let h = Harness::start().await;
    create_table(&h.db, "orders-log", &["pk", "sk"]).await;
    let append = [
        ("TABLE_NAME", "orders-log"),
        ("MODE", "append"),
        ("SORT_KEY", "sk"),
        ("PARTITION_KEY_SOURCE", "partitionKey"),
    ];
    let first = h.put_json("a", json!({"v": 1})).await;
    h.put(
        "agg",
        &aggregate(&[("u", json!({"v": 2})), ("u", json!({"v": 3}))]),
    )
    .await;
    let last = h.put_json("a", json!({"v": 4})).await;
    h.send(&h.failure(&first, &last, 3)).await;
    h.send(&h.failure(&first, &last, 3)).await;

    let (code, out) = h.run(
        &["failures", "--queue-url", &h.queue_url, "--max", "1"],
        &append,
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("failures: 1 messages"), "{out}");
    assert_eq!(
        h.visible().await,
        1,
        "--max 1 leaves the second message alone"
    );
    let log = scan(&h.db, "orders-log").await;
    assert_eq!(log.len(), 4, "every user record is kept in append mode");

    let (code, out) = h.run(&["failures", "--queue-url", &h.queue_url], &append);
    assert_eq!(code, 0, "{out}");
    assert_eq!(h.queued().await, 0);
    let mut again = scan(&h.db, "orders-log").await;
    let key = |r: &Row| {
        (
            r["pk"].as_s().unwrap().clone(),
            r["sk"].as_s().unwrap().clone(),
        )
    };
    let mut log = log;
    log.sort_by_key(key);
    again.sort_by_key(key);
    assert_eq!(again, log, "the same batch again adds nothing");
}

/// The tool retries throttled reads itself (with backoff between reads), so
/// the SDK must not retry each of them again: one call per attempt.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_read_is_retried_once_per_attempt_not_by_the_sdk_too() {
    let h = Harness::start().await;
    let first = h.put_json("a", json!({"id": "a"})).await;
    h.send(&h.failure(&first, &first, 1)).await;
    let (endpoint, calls) = expiring_kinesis(h.moto.endpoint(), Fault::AlwaysThrottled).await;
    let (code, out) = h.run(
        &["failures", "--queue-url", &h.queue_url, "--accept-loss"],
        &[("AWS_ENDPOINT_URL_KINESIS", &endpoint)],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("kept") && out.contains("ProvisionedThroughputExceededException"),
        "{out}"
    );
    assert!(!out.contains("LOSS"), "{out}");
    assert_eq!(h.visible().await, 1);
    let reads = calls
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c["target"].as_str().unwrap().ends_with(".GetRecords"))
        .count();
    // The first read and the tool's 5 retries (READ_RETRIES).
    assert_eq!(reads, 6, "{out}");
}

/// With the SDK's retries off, the tool's own cover what the SDK's did:
/// a throttled GetShardIterator, a 500.
#[tokio::test(flavor = "multi_thread")]
async fn transient_kinesis_errors_are_retried_by_the_tool() {
    let h = Harness::start().await;
    let first = h.put_json("a", json!({"id": "a"})).await;
    let last = h.put_json("b", json!({"id": "b"})).await;
    h.send(&h.failure(&first, &last, 2)).await;
    let (endpoint, _calls) = expiring_kinesis(h.moto.endpoint(), Fault::FailOnceEach).await;
    let (code, out) = h.run(
        &["failures", "--queue-url", &h.queue_url],
        &[("AWS_ENDPOINT_URL_KINESIS", &endpoint)],
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(h.items().await.len(), 2, "{out}");
    assert_eq!(h.queued().await, 0);
}
