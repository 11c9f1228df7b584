//! Key decoding (the S3 key decoders and the event parser) and the worker's
//! data header, over arbitrary keys.

mod common;

use common::form_encode;
use proptest::prelude::*;
use serde_json::json;
use std::process::Command;
use transcode_launcher::event::{ObjectCreated, Record};
use transcode_launcher::handler::{Event, parse};
use transcode_launcher::s3_key::{decode_eventbridge_key, decode_notification_key};
use transcode_launcher::worker::{DEFAULT_PRESETS, WorkerSettings, preset, render};

fn only_record(event: &serde_json::Value) -> Record {
    match parse(event).unwrap() {
        Event::Records(mut records) => records.remove(0),
        other => panic!("not a records event: {other:?}"),
    }
}

fn notification(raw_key: &str) -> serde_json::Value {
    json!({"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": "in"}, "object": {"key": raw_key, "size": 1}}}]})
}

fn eventbridge(raw_key: &str) -> serde_json::Value {
    json!({"source": "aws.s3", "detail-type": "Object Created",
        "detail": {"bucket": {"name": "in"}, "object": {"key": raw_key, "size": 1}}})
}

/// Plain percent-encoding, as EventBridge sends keys: `+` stays literal.
fn percent_encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'+' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn created_key(record: Record) -> String {
    match record {
        Record::Created(object) => object.key,
        other => panic!("{other:?}"),
    }
}

proptest! {
    #[test]
    fn notification_keys_round_trip(key in "\\PC{0,60}|[ +%/a-z動画]{0,30}") {
        prop_assert_eq!(created_key(only_record(&notification(&form_encode(&key)))), key);
    }

    #[test]
    fn eventbridge_keys_round_trip(key in "\\PC{0,60}|[ +%/a-z動画]{0,30}") {
        prop_assert_eq!(created_key(only_record(&eventbridge(&percent_encode(&key)))), key);
    }

    /// Any text at all: a key or an error naming the field, never a panic.
    #[test]
    fn raw_keys_never_panic(raw in "\\PC{0,40}|[%0-9a-fA-FzZ+]{0,12}") {
        for (record, field) in [
            (only_record(&notification(&raw)), "Records[0].s3.object.key"),
            (only_record(&eventbridge(&raw)), "detail.object.key"),
        ] {
            match record {
                Record::Created(_) => {}
                Record::Invalid(message) => prop_assert!(message.starts_with(field), "{}", message),
                other => prop_assert!(false, "{:?}", other),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// bash reads back exactly the key the event carried, and the settings,
    /// whatever they hold.
    #[test]
    fn the_worker_header_carries_any_key_exactly(key in "[^\u{0}]{1,80}|[\\n'\"$`;\\\\ ()*?]{1,20}") {
        let settings = WorkerSettings {
            region: "us-east-1".into(),
            output_bucket: "out".into(),
            output_prefix: "transcoded/".into(),
            ffmpeg_path: None,
            aws_cli_path: None,
            search_dirs: "/usr/bin".into(),
            max_runtime_secs: 60,
            presets: DEFAULT_PRESETS.split(',').map(|n| preset(n).unwrap()).collect(),
        };
        let object = ObjectCreated {
            bucket: "in".into(),
            key: key.clone(),
            size: Some(1),
            etag: None,
            version_id: None,
            sequencer: None,
        };
        let settings = WorkerSettings { output_prefix: format!("{key}/"), ..settings };
        let script = render(&settings, &object, "tj-1").unwrap();
        let header = &script[..script.find("# --- Everything below").unwrap()];
        let output = Command::new("/bin/bash")
            .arg("-c")
            .arg(format!(
                "{header}\ndecode SOURCE_URI \"$ENCODED_SOURCE_URI\"\n\
                 decode SOURCE_JSON \"$ENCODED_SOURCE_JSON\"\n\
                 printf '%s\\0' \"$SOURCE_URI\" \"$SOURCE_JSON\" \"$STATUS_REQUEST\""
            ))
            .output()
            .unwrap();
        prop_assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8(output.stdout).unwrap();
        let words: Vec<&str> = stdout.split_terminator('\0').collect();
        prop_assert_eq!(words[0], format!("s3://in/{key}"));
        let source: serde_json::Value = serde_json::from_str(words[1]).unwrap();
        prop_assert_eq!(&source["key"], key.as_str());
        // The status request: JSON whose key is exactly prefix, job, name.
        let request: serde_json::Value = serde_json::from_str(words[2]).unwrap();
        let status_key = format!("{key}/tj-1/status.json");
        prop_assert_eq!(&request["Key"], status_key.as_str());
    }
}

// The key decoders alone (moved here from shared/tests/properties.rs with s3_key).
proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn key_decoding_never_panics(raw in any::<String>()) {
        let _ = decode_notification_key(&raw);
        let _ = decode_eventbridge_key(&raw);
    }

    #[test]
    fn form_encoded_keys_round_trip(key in any::<String>()) {
        let encoded: String = key.bytes().map(|b| match b {
            b' ' => "+".to_owned(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        }).collect();
        prop_assert_eq!(decode_notification_key(&encoded).unwrap(), key);
    }
}

/// The values `render` writes before worker.sh's fixed text, byte for byte,
/// for one object with every setting and preset in use (a refactor of
/// `render` must not change a byte). `UPDATE_GOLDEN=1` rewrites the file
/// after a deliberate change.
#[test]
fn the_rendered_header_matches_the_golden_file() {
    let settings = WorkerSettings {
        region: "eu-west-1".into(),
        output_bucket: "outputs".into(),
        output_prefix: "transcoded/".into(),
        ffmpeg_path: Some("/opt/ff'mpeg/bin/ffmpeg".into()),
        aws_cli_path: Some("/usr/local/bin/aws".into()),
        search_dirs: "/usr/local/bin:/usr/bin".into(),
        max_runtime_secs: 1800,
        presets: transcode_launcher::worker::PRESETS.iter().collect(),
    };
    let object = ObjectCreated {
        bucket: "uploads".into(),
        key: "videos/$(id)'\"`x`\n動画 file://a.mp4".into(),
        size: Some(42),
        etag: Some("0123456789abcdef".into()),
        version_id: Some("v'1".into()),
        sequencer: Some("0A".into()),
    };
    let script = render(&settings, &object, "tj-0123abcd").unwrap();
    let header = &script[..script.find("# --- Everything below").unwrap()];
    let golden =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/worker-header.sh");
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, header).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(
        header,
        expected,
        "the header differs from {}",
        golden.display()
    );
}
