//! Which ResponseURLs the responder will PUT to.
//!
//! Anyone allowed to invoke the function chooses the URL, so without a check
//! the function is an SSRF relay into its VPC. CloudFormation only ever sends
//! pre-signed S3 URLs.

use hyper::Uri;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResponseUrlPolicy {
    /// Also accept `http://127.0.0.1[:port]/...`, for local runs only.
    pub allow_local: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseUrlError {
    #[error("ResponseURL is not a valid URL: {0}")]
    Malformed(String),
    #[error("ResponseURL must use https, not {0:?}")]
    Scheme(String),
    #[error("ResponseURL host {0:?} is not an Amazon S3 endpoint")]
    Host(String),
    #[error("ResponseURL must not carry credentials or a port")]
    Authority,
}

impl ResponseUrlPolicy {
    pub fn validate(&self, url: &str) -> Result<Uri, ResponseUrlError> {
        let uri: Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| {
            ResponseUrlError::Malformed(e.to_string())
        })?;
        let authority = uri
            .authority()
            .ok_or_else(|| ResponseUrlError::Malformed("no host".into()))?;
        if authority.as_str().contains('@') {
            return Err(ResponseUrlError::Authority);
        }
        let host = authority.host().to_ascii_lowercase();
        match uri.scheme_str() {
            Some("http") if self.allow_local && host == "127.0.0.1" => Ok(uri),
            Some("https") => {
                if authority.port_u16().is_some_and(|p| p != 443) {
                    return Err(ResponseUrlError::Authority);
                }
                if is_s3_host(&host) {
                    Ok(uri)
                } else {
                    Err(ResponseUrlError::Host(host))
                }
            }
            other => Err(ResponseUrlError::Scheme(other.unwrap_or("").to_owned())),
        }
    }
}

/// `bucket.s3.amazonaws.com`, `bucket.s3.us-west-2.amazonaws.com`,
/// `bucket.s3-us-west-2.amazonaws.com`, `s3.amazonaws.com.cn`, ...
fn is_s3_host(host: &str) -> bool {
    let Some(rest) = host
        .strip_suffix(".amazonaws.com")
        .or_else(|| host.strip_suffix(".amazonaws.com.cn"))
    else {
        return false;
    };
    rest.split('.')
        .any(|label| label == "s3" || label.starts_with("s3-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: ResponseUrlPolicy = ResponseUrlPolicy { allow_local: false };
    const LOCAL: ResponseUrlPolicy = ResponseUrlPolicy { allow_local: true };

    #[test]
    fn accepts_cloudformation_s3_urls() {
        for url in [
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws?X-Amz-Signature=a",
            "https://cloudformation-custom-resource-response-uswest2.s3-us-west-2.amazonaws.com/x",
            "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/x",
            "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/x",
            "https://s3.amazonaws.com:443/bucket/x",
        ] {
            assert!(STRICT.validate(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for (url, want) in [
            ("http://bucket.s3.amazonaws.com/x", "https"),
            (
                "https://169.254.169.254/latest/meta-data",
                "not an Amazon S3",
            ),
            (
                "https://s3.amazonaws.com.evil.example/x",
                "not an Amazon S3",
            ),
            ("https://evil-s3.example.com/x", "not an Amazon S3"),
            ("https://sqs.us-east-1.amazonaws.com/x", "not an Amazon S3"),
            ("https://user:pw@bucket.s3.amazonaws.com/x", "credentials"),
            ("https://bucket.s3.amazonaws.com:8443/x", "port"),
            ("http://127.0.0.1:9000/x", "https"),
            ("file:///etc/passwd", "not a valid URL"),
            ("", "not a valid URL"),
        ] {
            let err = STRICT.validate(url).unwrap_err().to_string();
            assert!(err.contains(want), "{url}: {err}");
        }
    }

    #[test]
    fn local_switch_allows_only_loopback_http() {
        assert!(LOCAL.validate("http://127.0.0.1:9000/cb?x=1").is_ok());
        assert!(LOCAL.validate("http://localhost:9000/cb").is_err());
        assert!(LOCAL.validate("http://10.0.0.1/cb").is_err());
    }
}
