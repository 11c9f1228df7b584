//! Properties of the S3 key decoding over arbitrary input.

use proptest::prelude::*;
use shared::s3_key::{decode_eventbridge_key, decode_notification_key};

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
