//! S3 "object created" records from either delivery path, each read on its
//! own into a plain record (the handler tells the kinds of event apart).
//!
//! S3 notifications carry form-urlencoded keys (`+` is a space); EventBridge
//! carries plain percent-encoding (`+` is a plus). Each path gets its own
//! decoder, and a key that does not decode is an error naming the field.

use crate::s3_key::{decode_eventbridge_key, decode_notification_key};
use serde_json::Value;

/// One created object, its key decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    pub key: String,
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub version_id: Option<String>,
    pub sequencer: Option<String>,
}

/// What one record of an event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Created(ObjectCreated),
    /// Not an object-created event (say, ObjectRemoved:Delete).
    NotCreated {
        event_name: String,
    },
    /// The record cannot be read; the message names the field.
    Invalid(String),
}

fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

/// `Records[index]` of an S3 notification.
pub fn notification_record(index: usize, record: &Value) -> Record {
    let at = |path: &str| format!("Records[{index}].{path}");
    if text(record, "eventSource") != Some("aws:s3") {
        return Record::Invalid(format!("{}: expected \"aws:s3\"", at("eventSource")));
    }
    let event_name = text(record, "eventName").unwrap_or_default();
    if !event_name.starts_with("ObjectCreated:") {
        return Record::NotCreated {
            event_name: event_name.to_owned(),
        };
    }
    let s3 = record.get("s3").unwrap_or(&Value::Null);
    let object = s3.get("object").unwrap_or(&Value::Null);
    let Some(bucket) = s3.pointer("/bucket/name").and_then(Value::as_str) else {
        return Record::Invalid(format!("{}: missing", at("s3.bucket.name")));
    };
    let Some(raw_key) = text(object, "key") else {
        return Record::Invalid(format!("{}: missing", at("s3.object.key")));
    };
    match decode_notification_key(raw_key) {
        Ok(key) => Record::Created(ObjectCreated {
            bucket: bucket.to_owned(),
            key,
            size: object.get("size").and_then(Value::as_u64),
            etag: text(object, "eTag").map(str::to_owned),
            version_id: text(object, "versionId").map(str::to_owned),
            sequencer: text(object, "sequencer").map(str::to_owned),
        }),
        Err(e) => Record::Invalid(format!("{}: {e}", at("s3.object.key"))),
    }
}

/// An EventBridge "Object Created" event from aws.s3 (its one record).
pub fn eventbridge_record(event: &Value) -> Record {
    let detail = event.get("detail").unwrap_or(&Value::Null);
    let object = detail.get("object").unwrap_or(&Value::Null);
    let Some(bucket) = detail.pointer("/bucket/name").and_then(Value::as_str) else {
        return Record::Invalid("detail.bucket.name: missing".into());
    };
    let Some(raw_key) = text(object, "key") else {
        return Record::Invalid("detail.object.key: missing".into());
    };
    match decode_eventbridge_key(raw_key) {
        Ok(key) => Record::Created(ObjectCreated {
            bucket: bucket.to_owned(),
            key,
            size: object.get("size").and_then(Value::as_u64),
            etag: text(object, "etag").map(str::to_owned),
            version_id: text(object, "version-id").map(str::to_owned),
            sequencer: text(object, "sequencer").map(str::to_owned),
        }),
        Err(e) => Record::Invalid(format!("detail.object.key: {e}")),
    }
}
