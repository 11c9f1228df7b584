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
        // Compared as sent: CloudFormation sends lowercase hosts without a
        // trailing dot, so anything else is not from it.
        let host = authority.host();
        match uri.scheme_str() {
            Some("http") if self.allow_local && host == "127.0.0.1" => Ok(uri),
            Some("https") => {
                // CloudFormation never names a port, not even 443.
                if authority.port().is_some() {
                    return Err(ResponseUrlError::Authority);
                }
                if is_s3_host(host) {
                    Ok(uri)
                } else {
                    Err(ResponseUrlError::Host(host.to_owned()))
                }
            }
            other => Err(ResponseUrlError::Scheme(other.unwrap_or("").to_owned())),
        }
    }
}

/// An S3 REST endpoint, optionally behind a virtual-hosted bucket name:
/// `[bucket.]<endpoint>.amazonaws.com[.cn]` where endpoint is `s3` (global),
/// `s3.<region>`, `s3-<region>` (legacy), `s3-external-1`,
/// `s3.dualstack.<region>`, `s3-fips.<region>`, `s3-fips-<region>` (legacy) or
/// `s3-fips.dualstack.<region>`.
/// The region must belong to the partition (`cn-*` only under `.com.cn`).
/// Other hosts under amazonaws.com (load balancers, website endpoints, access
/// points, VPC endpoints) are refused: anyone can own one.
fn is_s3_host(host: &str) -> bool {
    let (rest, china) = match host.strip_suffix(".amazonaws.com.cn") {
        Some(rest) => (rest, true),
        None => match host.strip_suffix(".amazonaws.com") {
            Some(rest) => (rest, false),
            None => return false,
        },
    };
    let labels: Vec<&str> = rest.split('.').collect();
    // A bucket name may hold dots: try every split between bucket and endpoint.
    (0..labels.len()).any(|at| {
        let (bucket, endpoint) = labels.split_at(at);
        is_s3_endpoint(endpoint, china) && (bucket.is_empty() || is_bucket_name(&bucket.join(".")))
    })
}

fn is_s3_endpoint(labels: &[&str], china: bool) -> bool {
    let in_partition = |region: &str| is_region(region) && region.starts_with("cn-") == china;
    match labels {
        ["s3"] | ["s3-external-1"] => !china,
        ["s3" | "s3-fips", region] | ["s3" | "s3-fips", "dualstack", region] => {
            in_partition(region)
        }
        [legacy] => legacy
            .strip_prefix("s3-fips-")
            .or_else(|| legacy.strip_prefix("s3-"))
            .is_some_and(in_partition),
        _ => false,
    }
}

/// `us-east-1`, `us-gov-west-1`, `cn-northwest-1`, `ap-southeast-2`, ...
fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    let (country, direction, number) = match parts.as_slice() {
        [country, direction, number] => (country, direction, number),
        [country, "gov", direction, number] => (country, direction, number),
        _ => return false,
    };
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    country.len() == 2
        && lower(country)
        && lower(direction)
        && (1..=2).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// S3's bucket naming rules for virtual-hosted access: 3 to 63 characters,
/// lowercase letters, digits, hyphens and dots, labels starting and ending
/// with a letter or digit, not shaped like an IPv4 address.
fn is_bucket_name(name: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && alnum(bytes[0])
            && alnum(bytes[bytes.len() - 1])
            && bytes.iter().all(|&b| alnum(b) || b == b'-')
    };
    let labels: Vec<&str> = name.split('.').collect();
    let ip_shaped =
        labels.len() == 4 && labels.iter().all(|l| l.bytes().all(|b| b.is_ascii_digit()));
    (3..=63).contains(&name.len()) && labels.iter().all(|l| label_ok(l)) && !ip_shaped
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

    /// Every S3 endpoint shape CloudFormation may use, and the look-alikes.
    #[test]
    fn s3_endpoint_shapes_table() {
        let accepted = [
            // The two shapes CloudFormation is seen to send.
            "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/a?X-Amz-Signature=b",
            "https://cloudformation-custom-resource-response-uswest2.s3-us-west-2.amazonaws.com/a",
            "https://s3.amazonaws.com/bucket/key",
            "https://s3.us-east-1.amazonaws.com/bucket/key",
            "https://s3-us-west-2.amazonaws.com/bucket/key",
            "https://s3-external-1.amazonaws.com/bucket/key",
            "https://s3.dualstack.us-east-1.amazonaws.com/bucket/key",
            "https://s3-fips.us-east-1.amazonaws.com/bucket/key",
            "https://s3-fips.dualstack.us-east-1.amazonaws.com/bucket/key",
            "https://s3.us-gov-west-1.amazonaws.com/bucket/key",
            "https://s3-fips.us-gov-west-1.amazonaws.com/bucket/key",
            "https://s3-fips-us-gov-west-1.amazonaws.com/bucket/key",
            "https://bucket.s3.us-east-1.amazonaws.com/key",
            "https://bucket.s3.dualstack.eu-west-1.amazonaws.com/key",
            "https://bucket.s3-fips.dualstack.us-east-1.amazonaws.com/key",
            "https://my.dotted.bucket.s3.amazonaws.com/key",
            "https://my.dotted-bucket.s3-us-west-2.amazonaws.com/key",
            "https://s3.cn-north-1.amazonaws.com.cn/bucket/key",
            "https://bucket.s3.cn-northwest-1.amazonaws.com.cn/key",
            "https://s3.dualstack.cn-north-1.amazonaws.com.cn/bucket/key",
        ];
        for url in accepted {
            assert!(
                STRICT.validate(url).is_ok(),
                "should accept {url}: {:?}",
                STRICT.validate(url)
            );
        }
        let refused = [
            // Any s3-* label on any amazonaws.com host used to pass.
            "https://s3-x-123.us-east-1.elb.amazonaws.com/x",
            "https://s3-x-123.amazonaws.com/x",
            "https://s3.us-east-1.elb.amazonaws.com/x",
            "https://bucket.s3-website-us-east-1.amazonaws.com/x",
            "https://bucket.s3-website.us-east-1.amazonaws.com/x",
            "https://s3-accesspoint.us-east-1.amazonaws.com/x",
            "https://123456789012.s3-control.us-east-1.amazonaws.com/x",
            "https://bucket.vpce-0a1b.s3.us-east-1.vpce.amazonaws.com/x",
            "https://s3.notaregion.amazonaws.com/x",
            "https://s3.us-east-1a.amazonaws.com/x",
            "https://s3..amazonaws.com/x",
            "https://.s3.amazonaws.com/x",
            "https://-bucket.s3.amazonaws.com/x",
            "https://bucket-.s3.amazonaws.com/x",
            "https://my..bucket.s3.amazonaws.com/x",
            "https://b_ucket.s3.amazonaws.com/x",
            "https://192.168.1.1.s3.amazonaws.com/x",
            "https://ab.s3.amazonaws.com/x",
            // The partition must match the region.
            "https://s3.cn-north-1.amazonaws.com/x",
            "https://s3.us-east-1.amazonaws.com.cn/x",
            "https://s3.amazonaws.com.cn/x",
            // Look-alike and suffix tricks.
            "https://s3.amazonaws.com.evil.com/x",
            "https://s3.us-east-1.amazonaws.com.cn.evil/x",
            "https://evil.com/s3.amazonaws.com/x",
            "https://s3.amazonaws.com@evil.com/x",
            "https://evil.com#@s3.amazonaws.com/x",
            "https://s3amazonaws.com/x",
            "https://amazonaws.com/x",
            "https://s3.amazonaws.co/x",
            "https://S3.Amazonaws.com/x",
            "https://BUCKET.s3.amazonaws.com/x",
            "https://s3.amazonaws.com./x",
            "https://bucket.s3.us-east-1.amazonaws.com./x",
            "https://s3.amazonaws.com:443/x",
            "https://s3.amazonaws.com:8443/x",
            "http://s3.amazonaws.com/x",
            "ftp://s3.amazonaws.com/x",
            "//s3.amazonaws.com/x",
            "https://52.216.0.1/x",
            "https://[::1]/x",
            "https://[fd00:ec2::254]/x",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/x",
        ];
        for url in refused {
            assert!(STRICT.validate(url).is_err(), "should refuse {url}");
        }
    }

    #[test]
    fn local_switch_allows_only_loopback_http() {
        assert!(LOCAL.validate("http://127.0.0.1:9000/cb?x=1").is_ok());
        assert!(LOCAL.validate("http://localhost:9000/cb").is_err());
        assert!(LOCAL.validate("http://10.0.0.1/cb").is_err());
    }
}
