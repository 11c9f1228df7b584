//! KPL record aggregation: `F3 89 9A C2`, a protobuf `AggregatedRecord`, then
//! the MD5 of that protobuf.
//!
//! ```text
//! message AggregatedRecord {
//!   repeated string partition_key_table = 1;
//!   repeated string explicit_hash_key_table = 2;
//!   repeated Record records = 3;
//! }
//! message Record {
//!   required uint64 partition_key_index = 1;
//!   optional uint64 explicit_hash_key_index = 2;
//!   required bytes data = 3;
//!   repeated Tag tags = 4;   // skipped
//! }
//! ```
//! Three small messages do not earn a protobuf code generator; this reader
//! is bounds-checked everywhere and skips unknown fields.

use md5::{Digest, Md5};

pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];
const MD5_LEN: usize = 16;

/// One user record inside an aggregated Kinesis record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

/// Why an aggregated record cannot be read: it is poison.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KplError {
    #[error("aggregated record is too short ({0} bytes)")]
    TooShort(usize),
    #[error("aggregated record's MD5 does not match its content")]
    BadChecksum,
    #[error("aggregated record's protobuf is malformed: {0}")]
    Malformed(&'static str),
    #[error("user record {record} refers to missing {table} entry {index}")]
    BadIndex {
        record: usize,
        table: &'static str,
        index: u64,
    },
}

/// Whether `data` starts with the KPL magic bytes.
pub fn is_aggregated(data: &[u8]) -> bool {
    data.starts_with(&MAGIC)
}

/// Splits an aggregated record into its user records, in order.
pub fn deaggregate(data: &[u8]) -> Result<Vec<UserRecord>, KplError> {
    if data.len() < MAGIC.len() + MD5_LEN || !is_aggregated(data) {
        return Err(KplError::TooShort(data.len()));
    }
    let (message, checksum) = data[MAGIC.len()..].split_at(data.len() - MAGIC.len() - MD5_LEN);
    if Md5::digest(message).as_slice() != checksum {
        return Err(KplError::BadChecksum);
    }
    let mut keys = Vec::new();
    let mut hash_keys = Vec::new();
    let mut raw_records = Vec::new();
    let mut reader = Reader(message);
    while let Some((field, value)) = reader.field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => keys.push(utf8(b)?),
            (2, Value::Bytes(b)) => hash_keys.push(utf8(b)?),
            (3, Value::Bytes(b)) => raw_records.push(b),
            _ => {}
        }
    }
    raw_records
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let (mut key_index, mut hash_index, mut payload) = (None, None, None);
            let mut reader = Reader(raw);
            while let Some((field, value)) = reader.field()? {
                match (field, value) {
                    (1, Value::Varint(v)) => key_index = Some(v),
                    (2, Value::Varint(v)) => hash_index = Some(v),
                    (3, Value::Bytes(b)) => payload = Some(b.to_vec()),
                    _ => {}
                }
            }
            let key_index = key_index.ok_or(KplError::Malformed(
                "a user record has no partition key index",
            ))?;
            let lookup = |table: &'static str, entries: &[String], index: u64| {
                entries
                    .get(index as usize)
                    .cloned()
                    .ok_or(KplError::BadIndex {
                        record: i,
                        table,
                        index,
                    })
            };
            Ok(UserRecord {
                partition_key: lookup("partition key", &keys, key_index)?,
                explicit_hash_key: hash_index
                    .map(|h| lookup("explicit hash key", &hash_keys, h))
                    .transpose()?,
                data: payload.ok_or(KplError::Malformed("a user record has no data"))?,
            })
        })
        .collect()
}

fn utf8(bytes: &[u8]) -> Result<String, KplError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| KplError::Malformed("a key is not UTF-8"))
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, KplError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .0
                .split_first()
                .ok_or(KplError::Malformed("truncated varint"))?;
            self.0 = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(KplError::Malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], KplError> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.0.len())
            .ok_or(KplError::Malformed("length past the end"))?;
        let (taken, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(taken)
    }

    /// The next field number and value, or None at the end.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>, KplError> {
        if self.0.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let value = match tag & 7 {
            0 => Value::Varint(self.varint()?),
            1 => self.take(8).map(|_| Value::Fixed)?,
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?)
            }
            5 => self.take(4).map(|_| Value::Fixed)?,
            _ => return Err(KplError::Malformed("unsupported wire type")),
        };
        Ok(Some((tag >> 3, value)))
    }
}

/// Builds an aggregated record, as the KPL does: for tests, sample events
/// and benchmarks.
pub fn aggregate(records: &[UserRecord]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    fn bytes(out: &mut Vec<u8>, field: u64, b: &[u8]) {
        varint(out, field << 3 | 2);
        varint(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    let mut keys: Vec<&str> = Vec::new();
    let mut hash_keys: Vec<&str> = Vec::new();
    let mut message = Vec::new();
    let mut entries = Vec::new();
    for r in records {
        let key_index = keys
            .iter()
            .position(|k| *k == r.partition_key)
            .unwrap_or_else(|| {
                keys.push(&r.partition_key);
                keys.len() - 1
            });
        let hash_index = r.explicit_hash_key.as_deref().map(|h| {
            hash_keys.iter().position(|k| *k == h).unwrap_or_else(|| {
                hash_keys.push(h);
                hash_keys.len() - 1
            })
        });
        let mut entry = Vec::new();
        varint(&mut entry, 1 << 3);
        varint(&mut entry, key_index as u64);
        if let Some(h) = hash_index {
            varint(&mut entry, 2 << 3);
            varint(&mut entry, h as u64);
        }
        bytes(&mut entry, 3, &r.data);
        entries.push(entry);
    }
    for k in &keys {
        bytes(&mut message, 1, k.as_bytes());
    }
    for h in &hash_keys {
        bytes(&mut message, 2, h.as_bytes());
    }
    for e in &entries {
        bytes(&mut message, 3, e);
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&message);
    out.extend_from_slice(&Md5::digest(&message));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(key: &str, data: &str) -> UserRecord {
        UserRecord {
            partition_key: key.into(),
            explicit_hash_key: None,
            data: data.as_bytes().to_vec(),
        }
    }

    #[test]
    fn round_trip_keeps_order_and_keys() {
        let records = vec![
            user("a", "{\"id\":1}"),
            user("b", "{\"id\":2}"),
            UserRecord {
                explicit_hash_key: Some("1234".into()),
                ..user("a", "{\"id\":3}")
            },
        ];
        let aggregated = aggregate(&records);
        assert!(is_aggregated(&aggregated));
        assert_eq!(deaggregate(&aggregated).unwrap(), records);
    }

    #[test]
    fn corruption_is_a_clear_error() {
        let mut aggregated = aggregate(&[user("a", "{}")]);
        let last = aggregated.len() - 1;
        aggregated[last] ^= 1;
        assert_eq!(deaggregate(&aggregated), Err(KplError::BadChecksum));
        assert_eq!(deaggregate(&MAGIC), Err(KplError::TooShort(4)));
        // A valid checksum over a message whose record points past the key table.
        let mut message = Vec::new();
        message.extend_from_slice(&[3 << 3 | 2, 4, 1 << 3, 7, 3 << 3 | 2, 0]);
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&message);
        forged.extend_from_slice(&Md5::digest(&message));
        assert_eq!(
            deaggregate(&forged),
            Err(KplError::BadIndex {
                record: 0,
                table: "partition key",
                index: 7
            })
        );
    }
}
