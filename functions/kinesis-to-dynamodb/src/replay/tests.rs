use super::*;

fn batch(size: u64) -> BatchInfo {
    BatchInfo {
        shard_id: "shardId-000000000000".into(),
        start_sequence_number: "100".into(),
        end_sequence_number: "300".into(),
        stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/s".into(),
        batch_size: size,
    }
}

fn read(seqs: &[&str]) -> ReadRange {
    ReadRange {
        records: seqs
            .iter()
            .map(|s| KinesisRecord {
                sequence: (*s).into(),
                shard: "shardId-000000000000".into(),
                partition_key: "k".into(),
                arrival_ms: 0,
                data: b"{}".to_vec(),
                user_record: None,
            })
            .collect(),
        gone: None,
    }
}

#[test]
fn parses_what_lambda_sends_to_an_on_failure_destination() {
    let body = r#"{"requestContext":{"requestId":"r","functionArn":"arn:aws:lambda:us-east-1:123456789012:function:f","condition":"RetryAttemptsExhausted","approximateInvokeCount":3},
        "responseContext":{"statusCode":200,"executedVersion":"$LATEST","functionError":"Unhandled"},
        "version":"1.0","timestamp":"2026-11-30T10:00:00.000Z",
        "KinesisBatchInfo":{"shardId":"shardId-000000000000","startSequenceNumber":"100","endSequenceNumber":"300",
          "approximateArrivalOfFirstRecord":"2026-11-30T09:59:00.000Z","approximateArrivalOfLastRecord":"2026-11-30T09:59:01.000Z",
          "batchSize":3,"streamArn":"arn:aws:kinesis:us-east-1:123456789012:stream/s"}}"#;
    assert_eq!(FailureMessage::parse(body).unwrap().batch, batch(3));
    let err = FailureMessage::parse(r#"{"KinesisBatchInfo":{"shardId":"s"}}"#).unwrap_err();
    assert!(err.contains("startSequenceNumber"), "{err}");
}

#[test]
fn an_sns_notification_is_unwrapped_and_what_it_wraps_is_checked() {
    let inner = serde_json::json!({"KinesisBatchInfo": {"shardId": "shardId-000000000000",
        "startSequenceNumber": "100", "endSequenceNumber": "300", "batchSize": 3,
        "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}});
    let wrap = |message: String| {
        serde_json::json!({"Type": "Notification", "MessageId": "m",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": message})
        .to_string()
    };
    assert_eq!(
        FailureMessage::parse(&wrap(inner.to_string()))
            .unwrap()
            .batch,
        batch(3)
    );
    let err = FailureMessage::parse(&wrap(r#"{"KinesisBatchInfo":{}}"#.into())).unwrap_err();
    assert!(err.contains("shardId"), "{err}");
    // Another SNS message type is not a failure message.
    let other =
        serde_json::json!({"Type": "SubscriptionConfirmation", "Message": inner.to_string()});
    assert!(FailureMessage::parse(&other.to_string()).is_err());
}

#[test]
fn a_range_is_complete_only_from_its_first_to_its_last_record() {
    assert_eq!(missing(&batch(3), &read(&["100", "200", "300"])), None);
    let trimmed = missing(&batch(3), &read(&["200", "300"])).unwrap();
    assert!(trimmed.contains("1 records no longer") && trimmed.contains("first record"));
    assert!(missing(&batch(3), &read(&[])).is_some());
    let mut gone = read(&["100", "200", "300"]);
    gone.gone = Some("TrimmedDataAccessException".into());
    assert!(missing(&batch(3), &gone).unwrap().contains("Trimmed"));
}

fn config(source: crate::config::KeySource) -> Config {
    Config {
        table: "t".into(),
        partition_key: "pk".into(),
        partition_key_source: source,
        sort_key: None,
        mode: crate::config::Mode::Latest,
        rejects_table: "r".into(),
        max_in_flight: 4,
        deadline_margin: Duration::from_secs(1),
        backoff: crate::batch_write::Backoff {
            base: Duration::from_millis(1),
            max: Duration::from_millis(8),
        },
    }
}

/// A reject, stored and read back, decodes as its record did: same
/// position (KPL sub-record included), key, shard and arrival.
#[test]
fn a_stored_reject_decodes_as_its_record_did() {
    use crate::config::KeySource;
    let strict = config(KeySource::Pointer {
        pointer: "/customer".into(),
        or_partition_key: false,
    });
    let fixed = config(KeySource::Pointer {
        pointer: "/id".into(),
        or_partition_key: true,
    });
    let user = |key: &str, data: &str| kpl::UserRecord {
        partition_key: key.into(),
        explicit_hash_key: None,
        data: data.as_bytes().to_vec(),
    };
    let aggregate = kpl::aggregate(&[user("k0", r#"{"customer":"c"}"#), user("k1", r#"{"v":1}"#)]);
    let plain = br#"{"v":2}"#.to_vec();
    let bad_checksum = {
        let mut data = aggregate.clone();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        data
    };
    for (data, sub) in [(aggregate, 1), (plain, 0), (bad_checksum, 0)] {
        let original = EventRecord::Readable(KinesisRecord {
            sequence: "49590338271490256608559692538361571095921575989136588898".into(),
            shard: "shardId-000000000003".into(),
            partition_key: "outer".into(),
            arrival_ms: 1_763_750_000_123,
            data,
            user_record: None,
        });
        let reject = decode(&original, &strict)
            .results
            .into_iter()
            .find_map(Result::err)
            .expect("rejected under /customer");
        assert_eq!(reject.position.sub, sub);
        let stored = crate::pipeline::reject_item(&reject, 5);
        let replayed = record_of_reject(&stored).unwrap();
        assert_eq!(
            decode(&replayed, &fixed).results,
            decode(&original, &fixed)
                .results
                .into_iter()
                .filter(|r| r.as_ref().map_or(true, |e| e.position.sub == sub))
                .collect::<Vec<_>>()
        );
    }
}

/// A table that takes every write.
#[derive(Clone)]
struct Accepting;

impl Table for Accepting {
    async fn put_if_newer(
        &self,
        _: &str,
        _: Item,
        _: &crate::ports::Order,
    ) -> Result<crate::ports::PutResult, crate::ports::WriteError> {
        Ok(crate::ports::PutResult::Written)
    }
    async fn batch_put(
        &self,
        _: &str,
        _: Vec<Item>,
    ) -> Result<Vec<Item>, crate::ports::WriteError> {
        Ok(Vec::new())
    }
    async fn put(&self, _: &str, _: Item) -> Result<(), crate::ports::WriteError> {
        Ok(())
    }
}

/// Rejects whose every conditional delete finds them stored again.
struct StoredAgain(Vec<Item>);

impl Rejects for StoredAgain {
    async fn scan_page(&self, _: Option<Item>) -> Result<(Vec<Item>, Option<Item>), ReplayError> {
        Ok((self.0.clone(), None))
    }
    async fn delete_if_unchanged(&self, _: &RejectId, _: &str) -> Result<Deleted, ReplayError> {
        Ok(Deleted::Changed)
    }
    async fn delete(&self, _: &RejectId) -> Result<Option<Item>, ReplayError> {
        panic!("replay deletes only conditionally")
    }
}

/// The function stored the record's reject again while it was being
/// replayed: that newer reject stays.
#[tokio::test]
async fn a_reject_stored_again_during_its_replay_stays() {
    let reject = crate::record::Reject {
        position: Position {
            sequence: "7".into(),
            sub: 0,
        },
        shard: "shardId-000000000000".into(),
        reason: "missing key".into(),
        data: br#"{"id":"a"}"#.as_slice().into(),
        partition_key: "a".into(),
        arrival_ms: 1,
    };
    let rejects = StoredAgain(vec![crate::pipeline::reject_item(&reject, 5)]);
    let fixed = config(crate::config::KeySource::Pointer {
        pointer: "/id".into(),
        or_partition_key: false,
    });
    let mut lines = Vec::new();
    let summary = replay_rejects(&rejects, &Accepting, &fixed, false, &mut |l| lines.push(l))
        .await
        .unwrap();
    assert_eq!((summary.done, summary.left), (0, 1));
    assert!(lines[0].contains("stored again meanwhile"), "{lines:?}");
}

/// Rejects served two per page, deleted as asked.
struct Paged(std::sync::Mutex<Vec<Item>>);

impl Rejects for Paged {
    async fn scan_page(
        &self,
        start: Option<Item>,
    ) -> Result<(Vec<Item>, Option<Item>), ReplayError> {
        let items = self.0.lock().unwrap().clone();
        let from = start.map_or(0, |key| number(&key, "page").unwrap_or(0) as usize);
        let page = items.iter().skip(from).take(2).cloned().collect();
        let next = (from + 2 < items.len())
            .then(|| Item::from([("page".to_owned(), AttributeValue::N((from + 2).to_string()))]));
        Ok((page, next))
    }
    async fn delete_if_unchanged(&self, id: &RejectId, _: &str) -> Result<Deleted, ReplayError> {
        // Marks it instead of removing it, so pages stay where they were.
        let mut items = self.0.lock().unwrap();
        let item = items.iter_mut().find(|i| RejectId::of(i) == *id).unwrap();
        item.insert("deleted".into(), AttributeValue::Bool(true));
        Ok(Deleted::Deleted)
    }
    async fn delete(&self, _: &RejectId) -> Result<Option<Item>, ReplayError> {
        unreachable!()
    }
}

#[tokio::test]
async fn every_page_of_rejects_is_listed_and_replayed() {
    let items = (0..5)
        .map(|i| {
            crate::pipeline::reject_item(
                &crate::record::Reject {
                    position: Position {
                        sequence: (100 + i).to_string(),
                        sub: 0,
                    },
                    shard: "shardId-000000000000".into(),
                    reason: "missing key".into(),
                    data: format!(r#"{{"id":"k{i}"}}"#).into_bytes().into(),
                    partition_key: "p".into(),
                    arrival_ms: 1,
                },
                5,
            )
        })
        .collect();
    let rejects = Paged(std::sync::Mutex::new(items));
    let mut lines = Vec::new();
    let listed = list_rejects(&rejects, Some(3), &mut |l| lines.push(l))
        .await
        .unwrap();
    assert_eq!((listed.seen, lines.len()), (3, 3));
    let all = list_rejects(&rejects, None, &mut |_| {}).await.unwrap();
    assert_eq!(all.seen, 5);
    let fixed = config(crate::config::KeySource::Pointer {
        pointer: "/id".into(),
        or_partition_key: false,
    });
    let summary = replay_rejects(&rejects, &Accepting, &fixed, false, &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        (summary.seen, summary.done, summary.counts.written),
        (5, 5, 5)
    );
    assert!(
        rejects
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|i| i.contains_key("deleted"))
    );
}

/// A queue holding one message, whose deletes fail.
struct Undeletable(std::sync::Mutex<Vec<QueueMessage>>);

impl Queue for Undeletable {
    async fn receive(&self, _: Duration) -> Result<Option<QueueMessage>, ReplayError> {
        Ok(self.0.lock().unwrap().pop())
    }
    async fn delete(&self, _: &str) -> Result<(), ReplayError> {
        Err(ReplayError::Queue("AccessDenied".into()))
    }
    async fn hide(&self, _: &str, _: Duration) -> Result<(), ReplayError> {
        Ok(())
    }
}

struct Whole(Vec<KinesisRecord>);

impl Shards for Whole {
    async fn read_range(&self, _: &BatchInfo) -> Result<ReadRange, ReplayError> {
        Ok(ReadRange {
            records: self.0.clone(),
            gone: None,
        })
    }
}

/// Written, but the message could not be deleted: it is left, and the
/// exit code says so.
#[tokio::test]
async fn a_message_that_cannot_be_deleted_counts_as_left() {
    let body = serde_json::json!({"KinesisBatchInfo": {"shardId": "shardId-000000000000",
        "startSequenceNumber": "100", "endSequenceNumber": "100", "batchSize": 1,
        "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}});
    let queue = Undeletable(std::sync::Mutex::new(vec![QueueMessage {
        id: "m1".into(),
        receipt: "r1".into(),
        body: body.to_string(),
    }]));
    let shards = Whole(read(&["100"]).records);
    let fixed = config(crate::config::KeySource::PartitionKey);
    let mut lines = Vec::new();
    let summary = replay_failures(
        &queue,
        &shards,
        &Accepting,
        &fixed,
        FailureOptions::default(),
        &mut |l| lines.push(l),
    )
    .await
    .unwrap();
    assert_eq!((summary.done, summary.left), (0, 1), "{lines:?}");
    assert!(lines.iter().any(|l| l.contains("could not delete it")));
}

/// A queue that keeps SQS's visibility rules on a real clock: a
/// message received is hidden for its visibility timeout, then visible
/// again; a receipt is good only until the message is received again.
struct Clocked {
    state: std::sync::Mutex<ClockedState>,
}

#[derive(Default)]
struct ClockedState {
    messages: Vec<Held>,
    receipts: u32,
    /// What a second run (or SQS) could have seen go wrong.
    violations: Vec<String>,
}

struct Held {
    id: String,
    body: String,
    visible_at: std::time::Instant,
    receipt: String,
    received: u32,
    deleted: bool,
}

impl Clocked {
    fn new(bodies: &[String]) -> Self {
        let now = std::time::Instant::now();
        let messages = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| Held {
                id: format!("m{i}"),
                body: body.clone(),
                visible_at: now,
                receipt: String::new(),
                received: 0,
                deleted: false,
            })
            .collect();
        Self {
            state: std::sync::Mutex::new(ClockedState {
                messages,
                ..ClockedState::default()
            }),
        }
    }

    /// The message `receipt` stands for, if it is still its receipt and
    /// the message is still hidden.
    fn held<'a>(state: &'a mut ClockedState, receipt: &str, what: &str) -> Option<&'a mut Held> {
        let now = std::time::Instant::now();
        let Some(i) = state.messages.iter().position(|m| m.receipt == receipt) else {
            state
                .violations
                .push(format!("{what} with an old receipt {receipt}"));
            return None;
        };
        if state.messages[i].visible_at <= now {
            let id = state.messages[i].id.clone();
            state
                .violations
                .push(format!("{id} was visible again before the {what}"));
        }
        Some(&mut state.messages[i])
    }

    fn receive_up_to(&self, max: usize, hide: Duration) -> Vec<QueueMessage> {
        let now = std::time::Instant::now();
        let mut state = self.state.lock().unwrap();
        let mut out = Vec::new();
        for i in 0..state.messages.len() {
            if out.len() == max {
                break;
            }
            if state.messages[i].deleted || state.messages[i].visible_at > now {
                continue;
            }
            state.receipts += 1;
            let receipt = format!("r{}", state.receipts);
            let message = &mut state.messages[i];
            message.received += 1;
            message.visible_at = now + hide;
            message.receipt = receipt.clone();
            out.push(QueueMessage {
                id: message.id.clone(),
                receipt,
                body: message.body.clone(),
            });
        }
        out
    }
}

impl Queue for Clocked {
    async fn receive(&self, hide: Duration) -> Result<Option<QueueMessage>, ReplayError> {
        Ok(self.receive_up_to(1, hide).pop())
    }
    async fn delete(&self, receipt: &str) -> Result<(), ReplayError> {
        let mut state = self.state.lock().unwrap();
        match Self::held(&mut state, receipt, "delete") {
            Some(message) => {
                message.deleted = true;
                Ok(())
            }
            None => Err(ReplayError::Queue("ReceiptHandleIsInvalid".into())),
        }
    }
    async fn hide(&self, receipt: &str, hide: Duration) -> Result<(), ReplayError> {
        let mut state = self.state.lock().unwrap();
        if let Some(message) = Self::held(&mut state, receipt, "visibility change") {
            message.visible_at = std::time::Instant::now() + hide;
        }
        Ok(())
    }
}

/// Reads that take longer than a message's visibility timeout.
struct Slow(Duration);

impl Shards for Slow {
    async fn read_range(&self, _: &BatchInfo) -> Result<ReadRange, ReplayError> {
        tokio::time::sleep(self.0).await;
        Ok(read(&["100"]))
    }
}

/// Every message stays hidden from the moment it is received until it
/// is deleted, however long each one (or the ones before it) takes: a
/// second run at the same time never replays it as well.
#[tokio::test]
async fn a_message_stays_hidden_while_it_and_the_ones_before_it_are_replayed() {
    let body = serde_json::json!({"KinesisBatchInfo": {"shardId": "shardId-000000000000",
        "startSequenceNumber": "100", "endSequenceNumber": "100", "batchSize": 1,
        "streamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}})
    .to_string();
    // Generous slack between extensions: a busy machine may stall a while.
    let visibility = Duration::from_millis(1500);
    let queue = Clocked::new(&vec![body; 3]);
    let fixed = config(crate::config::KeySource::PartitionKey);
    let mut lines = Vec::new();
    let summary = replay_failures(
        &queue,
        &Slow(visibility * 13 / 10),
        &Accepting,
        &fixed,
        FailureOptions {
            hold: Hold {
                hide: visibility,
                extend_every: visibility / 15,
            },
            ..FailureOptions::default()
        },
        &mut |l| lines.push(l),
    )
    .await
    .unwrap();
    let state = queue.state.lock().unwrap();
    assert_eq!(state.violations, Vec::<String>::new(), "{lines:?}");
    assert_eq!((summary.seen, summary.done), (3, 3), "{lines:?}");
    assert!(state.messages.iter().all(|m| m.deleted && m.received == 1));
}

#[test]
fn reject_ids_round_trip_and_bad_ones_are_named() {
    let id = RejectId::parse("shardId-000000000001/4959/3").unwrap();
    assert_eq!(id.to_string(), "shardId-000000000001/4959/3");
    for bad in ["x", "s/12", "s/1a/0", "s/1/x", "/1/0", "s/1/0/9"] {
        assert!(RejectId::parse(bad).is_err(), "{bad}");
    }
}
