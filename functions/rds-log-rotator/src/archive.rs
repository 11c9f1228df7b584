//! One archive part: log rows as gzip-compressed JSON lines, built in
//! memory up to a size bound, and the digest fed on the way.

use crate::digest::{Digest, SlowQuery};
use crate::log_table::Log;
use crate::ports::Row;
use crate::timestamp::parse_time_of_day;
use aws_smithy_types::base64;
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::ser::{Serialize, SerializeMap, Serializer};
use sha2::{Digest as _, Sha256};
use std::io::Write;

pub struct ChunkWriter {
    log: Log,
    encoder: GzEncoder<Vec<u8>>,
    pub rows: u64,
    /// The time column of the last row written.
    pub last_time: Option<String>,
    line: Vec<u8>,
}

fn text(value: &Option<Vec<u8>>) -> Option<&str> {
    value.as_deref().and_then(|b| std::str::from_utf8(b).ok())
}

fn column<'a>(columns: &[String], row: &'a Row, name: &str) -> Option<&'a str> {
    columns
        .iter()
        .position(|c| c == name)
        .and_then(|i| row.get(i))
        .and_then(text)
}

/// The row as a JSON object: each column by name, text as a string, NULL as
/// null. A value that is not UTF-8 (a binary sql_text) is kept exactly as
/// `<column>_base64`. Slow-log times also get `<column>_secs`. Serialized
/// straight from the row: no per-row map or key copies.
pub struct RowJson<'a> {
    pub log: Log,
    pub columns: &'a [String],
    pub row: &'a Row,
}

impl Serialize for RowJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.columns.iter().zip(self.row) {
            match value.as_deref().map(std::str::from_utf8) {
                None => map.serialize_entry(name, &())?,
                Some(Ok(text)) => map.serialize_entry(name, text)?,
                Some(Err(_)) => {
                    let bytes = value.as_deref().unwrap_or_default();
                    map.serialize_entry(name, &())?;
                    map.serialize_entry(&format!("{name}_base64"), &base64::encode(bytes))?;
                }
            }
        }
        if self.log == Log::Slow {
            for (name, secs_name) in [
                ("query_time", "query_time_secs"),
                ("lock_time", "lock_time_secs"),
            ] {
                if let Some(secs) = column(self.columns, self.row, name).and_then(parse_time_of_day)
                {
                    map.serialize_entry(secs_name, &secs)?;
                }
            }
        }
        map.end()
    }
}

/// A row's identity: sha256 over its length-prefixed column values.
pub fn row_hash(row: &Row) -> String {
    let mut hash = Sha256::new();
    for value in row {
        match value {
            None => hash.update(u64::MAX.to_le_bytes()),
            Some(bytes) => {
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(bytes);
            }
        }
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

pub fn row_time(log: Log, columns: &[String], row: &Row) -> Option<String> {
    column(columns, row, log.time_column()).map(str::to_owned)
}

impl ChunkWriter {
    pub fn new(log: Log) -> Self {
        Self {
            log,
            encoder: GzEncoder::new(Vec::with_capacity(1 << 20), Compression::default()),
            rows: 0,
            last_time: None,
            line: Vec::with_capacity(4096),
        }
    }

    pub fn add(&mut self, columns: &[String], row: &Row, digest: Option<&mut Digest>) {
        self.line.clear();
        let json = RowJson {
            log: self.log,
            columns,
            row,
        };
        serde_json::to_writer(&mut self.line, &json).expect("a row serializes");
        self.line.push(b'\n');
        self.encoder
            .write_all(&self.line)
            .expect("writing to memory cannot fail");
        self.rows += 1;
        // Reuses the buffer: only the last row's time is ever read.
        match (
            &mut self.last_time,
            column(columns, row, self.log.time_column()),
        ) {
            (Some(last), Some(time)) => {
                last.clear();
                last.push_str(time);
            }
            (last, time) => *last = time.map(str::to_owned),
        }
        if let (Log::Slow, Some(digest)) = (self.log, digest) {
            let sql = columns
                .iter()
                .position(|c| c == "sql_text")
                .and_then(|i| row.get(i))
                .and_then(|v| v.as_deref())
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            digest.add(&SlowQuery {
                sql_text: &sql,
                query_time_secs: column(columns, row, "query_time")
                    .and_then(parse_time_of_day)
                    .unwrap_or(0.0),
                rows_examined: column(columns, row, "rows_examined")
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0),
            });
        }
    }

    /// Compressed bytes so far (an estimate until finished).
    pub fn compressed_len(&self) -> usize {
        self.encoder.get_ref().len()
    }

    pub fn finish(self) -> Vec<u8> {
        self.encoder
            .finish()
            .expect("writing to memory cannot fail")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::read::GzDecoder;
    use serde_json::Value;
    use std::io::Read;

    #[test]
    fn rows_become_gzip_json_lines() {
        let columns: Vec<String> = ["start_time", "query_time", "sql_text", "db"]
            .iter()
            .map(|c| (*c).to_owned())
            .collect();
        let mut digest = Digest::default();
        let mut writer = ChunkWriter::new(Log::Slow);
        let rows: Vec<Row> = vec![
            vec![
                Some(b"2026-11-22 01:00:00.000001".to_vec()),
                Some(b"00:00:01.500000".to_vec()),
                Some(b"select 1".to_vec()),
                None,
            ],
            vec![
                Some(b"2026-11-22 01:00:01".to_vec()),
                Some(b"00:00:00".to_vec()),
                Some(vec![0xff, 0x00]),
                Some(b"app".to_vec()),
            ],
        ];
        for row in &rows {
            writer.add(&columns, row, Some(&mut digest));
        }
        assert_eq!(writer.last_time.as_deref(), Some("2026-11-22 01:00:01"));
        let mut text = String::new();
        GzDecoder::new(&writer.finish()[..])
            .read_to_string(&mut text)
            .unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["sql_text"], "select 1");
        assert_eq!(lines[0]["query_time_secs"], 1.5);
        assert_eq!(lines[0]["db"], Value::Null);
        assert_eq!(lines[1]["sql_text_base64"], "/wA=");
        assert_eq!(digest.queries, 2);
        assert_ne!(row_hash(&rows[0]), row_hash(&rows[1]));
    }
}
