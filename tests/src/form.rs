//! `application/x-www-form-urlencoded` request bodies, as the SDK sends the
//! query-protocol services (EC2, SES): read by stand-ins and proxies.

/// The body's `name=value` pairs in order, both decoded; a repeated name
/// appears once per occurrence.
pub fn pairs(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (decode(name), decode(value)))
        .collect()
}

/// One name or value: `+` is a space, `%XX` a byte. A malformed escape
/// panics, as the SDK never sends one.
pub fn decode(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok());
                out.push(hex.unwrap_or_else(|| panic!("malformed escape in {field:?}")));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| panic!("{field:?} is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_decoded_in_order() {
        let body = b"Action=SetIdentityNotificationTopic&Identity=a%40b.example&SnsTopic=arn%3Aaws%3Asns&Note=two+words&Tag.1=x&Tag.1=y";
        assert_eq!(
            pairs(body),
            [
                ("Action", "SetIdentityNotificationTopic"),
                ("Identity", "a@b.example"),
                ("SnsTopic", "arn:aws:sns"),
                ("Note", "two words"),
                ("Tag.1", "x"),
                ("Tag.1", "y"),
            ]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
        );
        assert_eq!(decode("caf%C3%A9"), "café");
    }

    #[test]
    #[should_panic(expected = "malformed escape")]
    fn a_malformed_escape_panics() {
        decode("50%");
    }
}
