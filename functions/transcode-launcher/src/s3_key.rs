//! Object keys in S3 events: each delivery path has its own encoding.

/// Why a key could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyDecodeError {
    #[error("object key has an invalid percent escape at byte {position}")]
    InvalidEscape { position: usize },
    #[error("object key is not UTF-8 once decoded")]
    NotUtf8,
}

/// Decodes `Records[].s3.object.key` from an S3 notification, which is
/// form-urlencoded: `+` is a space, `%2B` a plus.
pub fn decode_notification_key(raw: &str) -> Result<String, KeyDecodeError> {
    decode(raw, true)
}

/// Decodes a key from an S3 event delivered through EventBridge, which uses
/// plain percent-encoding: `+` stays a plus.
pub fn decode_eventbridge_key(raw: &str) -> Result<String, KeyDecodeError> {
    decode(raw, false)
}

fn decode(raw: &str, plus_is_space: bool) -> Result<String, KeyDecodeError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                let value = hex
                    .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(KeyDecodeError::InvalidEscape { position: i })?;
                out.push(value);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| KeyDecodeError::NotUtf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_keys_are_form_encoded() {
        assert_eq!(
            decode_notification_key("videos/My+Holiday%2B2024+%28final%29.MOV").unwrap(),
            "videos/My Holiday+2024 (final).MOV"
        );
        assert_eq!(decode_notification_key("a%20b").unwrap(), "a b");
        assert_eq!(
            decode_notification_key("%E5%8B%95%E7%94%BB.mp4").unwrap(),
            "動画.mp4"
        );
    }

    #[test]
    fn eventbridge_keys_keep_plus() {
        assert_eq!(decode_eventbridge_key("a+b%20c").unwrap(), "a+b c");
    }

    #[test]
    fn bad_escapes_are_clear_errors() {
        assert_eq!(
            decode_notification_key("abc%2").unwrap_err(),
            KeyDecodeError::InvalidEscape { position: 3 }
        );
        assert_eq!(
            decode_notification_key("%zz").unwrap_err(),
            KeyDecodeError::InvalidEscape { position: 0 }
        );
        assert_eq!(
            decode_notification_key("%FF").unwrap_err(),
            KeyDecodeError::NotUtf8
        );
        // A multi-byte character right after '%' must not split a char.
        assert!(decode_notification_key("%動").is_err());
    }
}
