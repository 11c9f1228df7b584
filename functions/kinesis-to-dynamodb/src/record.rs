//! Kinesis records to entries to write, or rejects to set aside.

use crate::checkpoint::Position;
use crate::config::{Config, KeySource};
use crate::convert::{Item, at_pointer, item_size, json_to_item};
use crate::kpl;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;

/// Where an item records its source: the sortable position (also what the
/// latest-mode condition compares), the shard and the arrival time.
pub const POSITION_ATTR: &str = "_kinesis_position";
pub const SHARD_ATTR: &str = "_kinesis_shard";
pub const ARRIVAL_ATTR: &str = "_kinesis_arrival_ms";
/// DynamoDB's item size limit.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// DynamoDB's limits on a key value (UTF-8 bytes): over them it refuses the
/// write (ValidationException), only after the batch was written.
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// A user record ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub position: Position,
    /// The key attributes' values, partition key first.
    pub key: Vec<String>,
    pub item: Item,
    /// An upper bound of the item's size in DynamoDB, for request limits.
    pub size: usize,
}

/// A user record that can never be written (poison).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub position: Position,
    pub shard: String,
    pub reason: String,
    /// Boxed, as is the partition key: a `Result<Entry, Reject>` stays small.
    pub data: Box<[u8]>,
    /// The user record's partition key and the record's arrival time, kept
    /// so that a replayed reject gets the key and order it had.
    pub partition_key: Box<str>,
    pub arrival_ms: i64,
}

/// One Kinesis record: its sequence number (what checkpoints refer to) and
/// what became of each of its user records.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub sequence: String,
    pub results: Vec<Result<Entry, Reject>>,
}

/// A record of the event as the function keeps it between parsing and
/// writing: data already decoded from base64, so the batch sits in memory
/// once, as bytes, and no JSON tree of it is ever built.
#[derive(Debug, Clone, PartialEq)]
pub enum EventRecord {
    Readable(KinesisRecord),
    /// Not a record this function can read (bad base64, fields missing):
    /// a reject of the whole record, never a failed batch.
    Malformed(Reject),
}

#[derive(Debug, Clone, PartialEq)]
pub struct KinesisRecord {
    pub sequence: String,
    pub shard: String,
    pub partition_key: String,
    pub arrival_ms: i64,
    pub data: Vec<u8>,
    /// Set for one user record taken out of a KPL aggregate (a reject being
    /// replayed): its index there. Its data is decoded as it is, never
    /// de-aggregated again, and keeps its position.
    pub user_record: Option<u32>,
}

/// The fields of a Kinesis event record the function reads. Parsed here
/// rather than with aws_lambda_events: one pass over the raw text, and its
/// 1.2 release takes ".5" seconds as 5 ms.
#[derive(Deserialize)]
struct RawRecord<'a> {
    #[serde(rename = "eventID", default, borrow)]
    event_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kinesis: RawKinesis<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKinesis<'a> {
    partition_key: String,
    sequence_number: String,
    #[serde(borrow)]
    data: Cow<'a, str>,
    #[serde(default)]
    approximate_arrival_timestamp: f64,
}

/// Just enough to checkpoint and file a malformed record.
#[derive(Deserialize, Default)]
struct Lenient {
    #[serde(rename = "eventID")]
    event_id: Option<Value>,
    kinesis: Option<LenientKinesis>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct LenientKinesis {
    sequence_number: Option<Value>,
}

fn shard_of(event_id: Option<&str>) -> String {
    event_id
        .and_then(|id| id.split(':').next())
        .unwrap_or("unknown-shard")
        .to_owned()
}

/// Each record is read from its own raw text, borrowed from the event, so
/// that one malformed record becomes a reject instead of failing the batch.
impl<'de> Deserialize<'de> for EventRecord {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        Ok(Self::read(raw.get()))
    }
}

impl EventRecord {
    /// Reads one record of the event from its JSON text.
    pub fn read(raw: &str) -> Self {
        let parsed = serde_json::from_str::<RawRecord>(raw)
            .map_err(|e| e.to_string())
            .and_then(|record| {
                aws_smithy_types::base64::decode(record.kinesis.data.as_ref())
                    .map(|data| (record, data))
                    .map_err(|e| format!("kinesis.data is not base64: {e}"))
            });
        match parsed {
            Ok((record, data)) => Self::Readable(KinesisRecord {
                shard: shard_of(record.event_id.as_deref()),
                arrival_ms: (record.kinesis.approximate_arrival_timestamp * 1000.0).round() as i64,
                sequence: record.kinesis.sequence_number,
                partition_key: record.kinesis.partition_key,
                data,
                user_record: None,
            }),
            Err(e) => {
                let lenient: Lenient = serde_json::from_str(raw).unwrap_or_default();
                let text = |v: Option<Value>| match v {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => String::new(),
                };
                let sequence = text(lenient.kinesis.and_then(|k| k.sequence_number));
                let shard =
                    shard_of(Some(text(lenient.event_id).as_str()).filter(|id| !id.is_empty()));
                Self::Malformed(Reject {
                    position: Position { sequence, sub: 0 },
                    shard,
                    reason: format!("malformed Kinesis record: {e}"),
                    data: raw.as_bytes().into(),
                    partition_key: Box::default(),
                    arrival_ms: 0,
                })
            }
        }
    }

    /// The sequence number Lambda checkpoints by.
    pub fn sequence(&self) -> &str {
        match self {
            Self::Readable(r) => &r.sequence,
            Self::Malformed(reject) => &reject.position.sequence,
        }
    }

    /// Kinesis's approximate arrival time, in ms (0 if unknown).
    pub fn arrival_ms(&self) -> i64 {
        match self {
            Self::Readable(r) => r.arrival_ms,
            Self::Malformed(reject) => reject.arrival_ms,
        }
    }
}

/// Decodes one record into its user records (several for a KPL aggregate),
/// each an entry to write or a reject.
pub fn decode(record: &EventRecord, config: &Config) -> Decoded {
    let record = match record {
        EventRecord::Readable(record) => record,
        EventRecord::Malformed(reject) => {
            return Decoded {
                sequence: reject.position.sequence.clone(),
                results: vec![Err(reject.clone())],
            };
        }
    };
    let reject = |sub: u32, partition_key: &str, reason: String, data: &[u8]| Reject {
        position: Position {
            sequence: record.sequence.clone(),
            sub,
        },
        shard: record.shard.clone(),
        reason,
        data: data.into(),
        partition_key: partition_key.into(),
        arrival_ms: record.arrival_ms,
    };
    let results = if let Some(sub) = record.user_record {
        vec![
            entry(config, record, sub, &record.partition_key, &record.data)
                .map_err(|reason| reject(sub, &record.partition_key, reason, &record.data)),
        ]
    } else if kpl::is_aggregated(&record.data) {
        match kpl::deaggregate(&record.data) {
            Ok(users) => users
                .iter()
                .enumerate()
                .map(|(sub, user)| {
                    entry(config, record, sub as u32, &user.partition_key, &user.data).map_err(
                        |reason| reject(sub as u32, &user.partition_key, reason, &user.data),
                    )
                })
                .collect(),
            Err(e) => vec![Err(reject(
                0,
                &record.partition_key,
                format!("KPL aggregate rejected: {e}"),
                &record.data,
            ))],
        }
    } else {
        vec![
            entry(config, record, 0, &record.partition_key, &record.data)
                .map_err(|reason| reject(0, &record.partition_key, reason, &record.data)),
        ]
    };
    Decoded {
        sequence: record.sequence.clone(),
        results,
    }
}

/// A user record's partition key and raw data.
pub type UserData = (String, Vec<u8>);

/// The partition key and raw data of each user record of `record`, by
/// sub-record index, for rejects found after decoding (items DynamoDB itself
/// refused).
pub fn user_data(record: &EventRecord) -> Vec<UserData> {
    match record {
        EventRecord::Malformed(reject) => vec![(String::new(), reject.data.to_vec())],
        EventRecord::Readable(record) => {
            let whole = || (record.partition_key.clone(), record.data.clone());
            match record.user_record {
                // Only index `sub` is read: the others stay empty.
                Some(sub) => (0..sub)
                    .map(|_| Default::default())
                    .chain([whole()])
                    .collect(),
                None if kpl::is_aggregated(&record.data) => match kpl::deaggregate(&record.data) {
                    Ok(users) => users
                        .into_iter()
                        .map(|user| (user.partition_key, user.data))
                        .collect(),
                    Err(_) => vec![whole()],
                },
                None => vec![whole()],
            }
        }
    }
}

fn entry(
    config: &Config,
    record: &KinesisRecord,
    sub: u32,
    partition_key: &str,
    data: &[u8],
) -> Result<Entry, String> {
    let position = Position {
        sequence: record.sequence.clone(),
        sub,
    };
    let mut item = json_to_item(data).map_err(|e| e.to_string())?;
    let mut key = vec![key_value(
        &item,
        &config.partition_key_source,
        partition_key,
        &position,
    )?];
    if let Some((_, source)) = &config.sort_key {
        key.push(key_value(&item, source, partition_key, &position)?);
    }
    let limits = std::iter::once((
        "partition key",
        &config.partition_key,
        MAX_PARTITION_KEY_BYTES,
    ))
    .chain(
        config
            .sort_key
            .as_ref()
            .map(|(name, _)| ("sort key", name, MAX_SORT_KEY_BYTES)),
    );
    for (value, (kind, name, limit)) in key.iter().zip(limits) {
        if value.len() > limit {
            return Err(format!(
                "invalid key: {kind} {name} is {} bytes; DynamoDB's limit is {limit}",
                value.len()
            ));
        }
    }
    let names = std::iter::once(&config.partition_key)
        .chain(config.sort_key.as_ref().map(|(name, _)| name));
    for (name, value) in names.zip(&key) {
        item.insert(name.clone(), AttributeValue::S(value.clone()));
    }
    item.insert(POSITION_ATTR.into(), AttributeValue::S(position.sortable()));
    item.insert(SHARD_ATTR.into(), AttributeValue::S(record.shard.clone()));
    item.insert(
        ARRIVAL_ATTR.into(),
        AttributeValue::N(record.arrival_ms.to_string()),
    );
    let size = item_size(&item);
    if size > MAX_ITEM_BYTES {
        return Err(format!(
            "item is {size} bytes by DynamoDB's size rules; DynamoDB's limit is {MAX_ITEM_BYTES}"
        ));
    }
    Ok(Entry {
        position,
        key,
        item,
        size,
    })
}

/// Keys are written as strings: a number keeps its exact text.
fn key_value(
    item: &Item,
    source: &KeySource,
    partition_key: &str,
    position: &Position,
) -> Result<String, String> {
    match source {
        KeySource::PartitionKey => Ok(partition_key.to_owned()),
        KeySource::Position => Ok(position.sortable()),
        KeySource::Pointer {
            pointer,
            or_partition_key,
        } => match at_pointer(item, pointer) {
            Some(AttributeValue::S(s)) if !s.is_empty() => Ok(s.clone()),
            Some(AttributeValue::N(n)) => Ok(n.clone()),
            None if *or_partition_key => Ok(partition_key.to_owned()),
            None => Err(format!("missing key: the record has nothing at {pointer}")),
            Some(AttributeValue::S(_)) => {
                Err(format!("invalid key: the string at {pointer} is empty"))
            }
            Some(_) => Err(format!(
                "invalid key: the value at {pointer} is not a string or a number"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use serde_json::json;
    use std::time::Duration;

    fn config(source: KeySource) -> Config {
        Config {
            table: "t".into(),
            partition_key: "pk".into(),
            partition_key_source: source,
            sort_key: None,
            mode: Mode::Latest,
            rejects_table: "r".into(),
            max_in_flight: 4,
            deadline_margin: Duration::from_secs(1),
            backoff: crate::batch_write::Backoff {
                base: Duration::from_millis(1),
                max: Duration::from_millis(8),
            },
        }
    }

    fn record(seq: &str, key: &str, data: &[u8]) -> Value {
        json!({
            "eventID": format!("shardId-000000000001:{seq}"),
            "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/s",
            "kinesis": {"partitionKey": key, "sequenceNumber": seq, "data": aws_smithy_types::base64::encode(data),
                        "approximateArrivalTimestamp": 1763750000.5, "kinesisSchemaVersion": "1.0"}
        })
    }

    fn run(record: &Value, config: &Config) -> Decoded {
        decode(&EventRecord::read(&record.to_string()), config)
    }

    fn pointer(p: &str) -> KeySource {
        KeySource::Pointer {
            pointer: p.into(),
            or_partition_key: false,
        }
    }

    #[test]
    fn a_record_becomes_an_item_with_its_key_and_source() {
        let decoded = run(
            &record("42", "pk-1", br#"{"id":17,"v":"x"}"#),
            &config(pointer("/id")),
        );
        assert_eq!(decoded.sequence, "42");
        let entry = decoded.results[0].clone().unwrap();
        assert_eq!(entry.key, vec!["17".to_owned()]);
        assert_eq!(entry.item["pk"], AttributeValue::S("17".into()));
        assert_eq!(
            entry.item[SHARD_ATTR],
            AttributeValue::S("shardId-000000000001".into())
        );
        assert_eq!(
            entry.item[ARRIVAL_ATTR],
            AttributeValue::N("1763750000500".into())
        );
        assert_eq!(
            entry.item[POSITION_ATTR],
            AttributeValue::S(entry.position.sortable())
        );
    }

    #[test]
    fn default_source_falls_back_to_the_partition_key() {
        let source = KeySource::Pointer {
            pointer: "/id".into(),
            or_partition_key: true,
        };
        let decoded = run(&record("1", "pk-9", br#"{"v":1}"#), &config(source));
        assert_eq!(
            decoded.results[0].clone().unwrap().key,
            vec!["pk-9".to_owned()]
        );
    }

    #[test]
    fn every_poison_kind_is_a_reject_with_a_reason() {
        let c = config(pointer("/id"));
        let reason = |data: &[u8]| {
            run(&record("7", "k", data), &c).results[0]
                .clone()
                .unwrap_err()
                .reason
        };
        assert!(reason(b"{oops").starts_with("record is not valid JSON"));
        assert!(reason(b"[1,2]").contains("not a JSON object"));
        assert!(reason(br#"{"v":1}"#).starts_with("missing key"));
        assert!(reason(br#"{"id":true}"#).starts_with("invalid key"));
        let big = format!(
            "{{\"id\":\"a\",\"blob\":\"{}\"}}",
            "x".repeat(MAX_ITEM_BYTES)
        );
        assert!(reason(big.as_bytes()).contains("DynamoDB's limit"));
        let mut bad_kpl = kpl::aggregate(&[kpl::UserRecord {
            partition_key: "k".into(),
            explicit_hash_key: None,
            data: b"{}".to_vec(),
        }]);
        let last = bad_kpl.len() - 1;
        bad_kpl[last] ^= 0xff;
        assert!(reason(&bad_kpl).contains("MD5"));
        let mut malformed = record("8", "k", b"{}");
        malformed["kinesis"]["data"] = json!("!!not base64!!");
        let decoded = run(&malformed, &c);
        assert_eq!(decoded.sequence, "8");
        assert!(
            decoded.results[0]
                .clone()
                .unwrap_err()
                .reason
                .starts_with("malformed Kinesis record")
        );
    }

    /// DynamoDB refuses a partition key over 2,048 bytes and a sort key
    /// over 1,024 (UTF-8): a reject up front, at the limit still an item.
    #[test]
    fn an_oversized_key_is_a_reject_naming_the_key_and_the_limit() {
        let mut c = config(pointer("/id"));
        c.sort_key = Some(("sk".into(), pointer("/at")));
        let decode_with = |id: &str, at: &str| {
            let data = json!({"id": id, "at": at}).to_string();
            run(&record("7", "k", data.as_bytes()), &c).results[0].clone()
        };
        // Multi-byte characters: the limits count bytes, not characters.
        let at_limit = decode_with(&"é".repeat(1024), &"é".repeat(512)).unwrap();
        assert_eq!(at_limit.key[0].len(), 2048);
        assert_eq!(at_limit.key[1].len(), 1024);
        let reason = decode_with(&format!("{}x", "é".repeat(1024)), "s")
            .unwrap_err()
            .reason;
        assert_eq!(
            reason,
            "invalid key: partition key pk is 2049 bytes; DynamoDB's limit is 2048"
        );
        let reason = decode_with("p", &format!("{}x", "é".repeat(512)))
            .unwrap_err()
            .reason;
        assert_eq!(
            reason,
            "invalid key: sort key sk is 1025 bytes; DynamoDB's limit is 1024"
        );
    }

    #[test]
    fn records_borrow_from_the_event_as_lambda_runtime_reads_it() {
        // lambda_runtime reads events with serde_path_to_error over a slice.
        let event =
            json!({"Records": [record("5", "k", br#"{"id":"a"}"#), {"kinesis": 3}]}).to_string();
        let mut reader = serde_json::Deserializer::from_slice(event.as_bytes());
        let batch: crate::handler::KinesisBatch =
            serde_path_to_error::deserialize(&mut reader).unwrap();
        let records = batch.records.unwrap();
        assert!(matches!(&records[0], EventRecord::Readable(r) if r.data == br#"{"id":"a"}"#));
        assert!(
            matches!(&records[1], EventRecord::Malformed(r) if r.reason.starts_with("malformed"))
        );
    }

    #[test]
    fn kpl_user_records_get_sub_positions() {
        let users: Vec<kpl::UserRecord> = (0..3)
            .map(|i| kpl::UserRecord {
                partition_key: format!("k{i}"),
                explicit_hash_key: None,
                data: format!("{{\"id\":\"u{i}\"}}").into_bytes(),
            })
            .collect();
        let decoded = run(
            &record("99", "outer", &kpl::aggregate(&users)),
            &config(pointer("/id")),
        );
        let subs: Vec<u32> = decoded
            .results
            .iter()
            .map(|r| r.clone().unwrap().position.sub)
            .collect();
        assert_eq!(subs, vec![0, 1, 2]);
        assert_eq!(
            decoded.results[2].clone().unwrap().key,
            vec!["u2".to_owned()]
        );
    }
}
