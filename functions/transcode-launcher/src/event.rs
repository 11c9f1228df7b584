//! S3 "object created" events, from either delivery path, as plain records.
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `s3:TestEvent`, sent when a notification is configured: a no-op.
    Test,
    Records(Vec<Record>),
    /// The schedule's tick (an EventBridge "Scheduled Event"): reconcile.
    Reconcile,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported event: {0}")]
pub struct UnsupportedEvent(pub String);

pub fn parse(event: &Value) -> Result<Event, UnsupportedEvent> {
    if event.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Event::Test);
    }
    if let Some(records) = event.get("Records") {
        let records = records.as_array().ok_or_else(|| {
            UnsupportedEvent("Records: expected an array of S3 notification records".into())
        })?;
        return Ok(Event::Records(
            records
                .iter()
                .enumerate()
                .map(|(i, r)| notification_record(i, r))
                .collect(),
        ));
    }
    let source = text(event, "source");
    let detail_type = text(event, "detail-type");
    if source == Some("aws.events") && detail_type == Some("Scheduled Event") {
        return Ok(Event::Reconcile);
    }
    if source == Some("aws.s3") && detail_type == Some("Object Created") {
        return Ok(Event::Records(vec![eventbridge_record(event)]));
    }
    Err(UnsupportedEvent(format!(
        "expected an S3 notification (Records), an EventBridge \"Object Created\" event from aws.s3, \
         a \"Scheduled Event\" from aws.events, or s3:TestEvent; got source {source:?}, detail-type {detail_type:?}"
    )))
}

fn text<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field).and_then(Value::as_str)
}

fn notification_record(index: usize, record: &Value) -> Record {
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

fn eventbridge_record(event: &Value) -> Record {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn notification(key: &str) -> Value {
        json!({"Records": [{
            "eventSource": "aws:s3",
            "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "in"},
                   "object": {"key": key, "size": 5, "eTag": "e", "sequencer": "0A"}}
        }]})
    }

    fn created(event: &Value) -> ObjectCreated {
        match parse(event).unwrap() {
            Event::Records(records) => match &records[0] {
                Record::Created(object) => object.clone(),
                other => panic!("{other:?}"),
            },
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn notification_keys_are_form_decoded() {
        for (raw, key) in [
            (
                "videos/My+Holiday%2B2024+%28final%29.MOV",
                "videos/My Holiday+2024 (final).MOV",
            ),
            ("a%20b.mp4", "a b.mp4"),
            ("%E5%8B%95%E7%94%BB.mp4", "動画.mp4"),
        ] {
            assert_eq!(created(&notification(raw)).key, key);
        }
    }

    #[test]
    fn eventbridge_keys_keep_plus() {
        let event = json!({
            "source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "in"},
                       "object": {"key": "a+b%20c.mp4", "size": 1, "etag": "e",
                                  "version-id": "v1", "sequencer": "0B"}}
        });
        let object = created(&event);
        assert_eq!(object.key, "a+b c.mp4");
        assert_eq!(object.version_id.as_deref(), Some("v1"));
    }

    #[test]
    fn invalid_escapes_name_the_field() {
        let Event::Records(records) = parse(&notification("bad%zz.mp4")).unwrap() else {
            panic!()
        };
        assert_eq!(
            records[0],
            Record::Invalid(
                "Records[0].s3.object.key: object key has an invalid percent escape at byte 3"
                    .into()
            )
        );
    }

    #[test]
    fn test_event_and_other_events() {
        let test = json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "in"});
        assert_eq!(parse(&test).unwrap(), Event::Test);
        let tick = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        assert_eq!(parse(&tick).unwrap(), Event::Reconcile);
        let removed =
            json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectRemoved:Delete"}]});
        assert_eq!(
            parse(&removed).unwrap(),
            Event::Records(vec![Record::NotCreated {
                event_name: "ObjectRemoved:Delete".into()
            }])
        );
        assert!(
            parse(&json!({"hello": 1}))
                .unwrap_err()
                .0
                .contains("Records")
        );
    }
}
