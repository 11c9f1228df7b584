//! Keeping the response body within CloudFormation's 4096-byte limit.

use super::{CfnResponse, CfnStatus};

/// CloudFormation rejects larger bodies ("Response object is too long").
pub const MAX_RESPONSE_BYTES: usize = 4096;
/// Reason is cut down to this many characters before Data is sacrificed.
pub const MIN_REASON_CHARS: usize = 256;
const CUT_MARKER: &str = "[truncated] ...";

/// What had to be given up to fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FitReport {
    pub reason_truncated: bool,
    pub data_dropped: bool,
}

/// Serializes `response` to at most [`MAX_RESPONSE_BYTES`], measured on the
/// serialized bytes. Reason is shrunk first, keeping its tail (where the root
/// cause usually is); if that is not enough, Data is dropped and Reason says
/// so. When `fail_if_data_dropped`, a SUCCESS whose Data had to go becomes
/// FAILED, because templates reading the missing attributes would fail later
/// and more obscurely.
pub fn fit_response(
    response: &CfnResponse,
    fail_if_data_dropped: bool,
) -> (Vec<u8>, CfnResponse, FitReport) {
    let body = to_bytes(response);
    if body.len() <= MAX_RESPONSE_BYTES {
        return (body, response.clone(), FitReport::default());
    }
    let reason = response.reason.clone().unwrap_or_default();
    if let Some((body, fitted)) = fit_reason(response, "", &reason, MIN_REASON_CHARS) {
        return (
            body,
            fitted,
            FitReport {
                reason_truncated: true,
                data_dropped: false,
            },
        );
    }

    let mut without_data = response.clone();
    let data_bytes = serde_json::to_vec(&response.data).map_or(0, |d| d.len());
    without_data.data.clear();
    if fail_if_data_dropped && without_data.status == CfnStatus::Success {
        without_data.status = CfnStatus::Failed;
    }
    let note = format!(
        "Data ({data_bytes} bytes) was dropped because the response must be at most {MAX_RESPONSE_BYTES} bytes. "
    );
    match fit_reason(&without_data, &note, &reason, 0) {
        Some((body, fitted)) => {
            let reason_truncated =
                fitted.reason.as_deref() != Some(format!("{note}{reason}").as_str());
            (
                body,
                fitted,
                FitReport {
                    reason_truncated,
                    data_dropped: true,
                },
            )
        }
        // Only ids far beyond CloudFormation's own limits can get here.
        None => {
            let bare = with_reason(&without_data, note);
            (
                to_bytes(&bare),
                bare,
                FitReport {
                    reason_truncated: true,
                    data_dropped: true,
                },
            )
        }
    }
}

fn to_bytes(response: &CfnResponse) -> Vec<u8> {
    serde_json::to_vec(response).expect("a map of JSON values always serializes")
}

fn with_reason(response: &CfnResponse, reason: String) -> CfnResponse {
    CfnResponse {
        reason: (!reason.is_empty()).then_some(reason),
        ..response.clone()
    }
}

/// Finds, by binary search on the serialized size, the longest tail of
/// `reason` (at least `min_chars` characters, unless it is shorter) that fits
/// after `prefix`, which is always kept.
fn fit_reason(
    base: &CfnResponse,
    prefix: &str,
    reason: &str,
    min_chars: usize,
) -> Option<(Vec<u8>, CfnResponse)> {
    let chars: Vec<char> = reason.chars().collect();
    let tail = |keep: usize| -> CfnResponse {
        if keep >= chars.len() {
            with_reason(base, format!("{prefix}{reason}"))
        } else {
            let kept: String = chars[chars.len() - keep..].iter().collect();
            with_reason(base, format!("{prefix}{CUT_MARKER}{kept}"))
        }
    };
    let fits = |keep: usize| {
        let candidate = tail(keep);
        let body = to_bytes(&candidate);
        (body.len() <= MAX_RESPONSE_BYTES).then_some((body, candidate))
    };
    let floor = min_chars.min(chars.len());
    let (mut lo, mut hi) = (floor, chars.len());
    let mut best = fits(lo)?;
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        match fits(mid) {
            Some(found) => {
                best = found;
                lo = mid;
            }
            None => hi = mid - 1,
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, Value};

    fn response(reason: Option<String>, data_bytes: usize) -> CfnResponse {
        let mut data = Map::new();
        if data_bytes > 0 {
            data.insert("Blob".into(), Value::from("x".repeat(data_bytes)));
        }
        CfnResponse {
            status: CfnStatus::Success,
            reason,
            physical_resource_id: "stack-Res-0123456789abcdef".into(),
            stack_id: "arn:aws:cloudformation:us-east-1:123456789012:stack/stack/guid".into(),
            request_id: "req".into(),
            logical_resource_id: "Res".into(),
            no_echo: false,
            data,
        }
    }

    #[test]
    fn small_bodies_are_untouched() {
        let r = response(Some("fine".into()), 10);
        let (body, fitted, report) = fit_response(&r, true);
        assert_eq!(fitted, r);
        assert_eq!(report, FitReport::default());
        assert_eq!(body, serde_json::to_vec(&r).unwrap());
    }

    #[test]
    fn long_reason_keeps_its_tail_and_fills_the_limit() {
        // Escaped characters make the serialized size differ from the length.
        let reason = format!("{}ROOT CAUSE", "\"quoted\" é\n".repeat(800));
        let r = response(Some(reason), 0);
        let (body, fitted, report) = fit_response(&r, true);
        assert!(body.len() <= MAX_RESPONSE_BYTES);
        assert!(
            body.len() > MAX_RESPONSE_BYTES - 16,
            "uses the room it has: {}",
            body.len()
        );
        assert!(report.reason_truncated && !report.data_dropped);
        let kept = fitted.reason.unwrap();
        assert!(kept.starts_with(CUT_MARKER) && kept.ends_with("ROOT CAUSE"));
        assert_eq!(fitted.status, CfnStatus::Success);
    }

    #[test]
    fn huge_data_is_dropped_said_and_fails_when_asked() {
        let r = response(Some("x".repeat(1000)), 5000);
        let (body, fitted, report) = fit_response(&r, true);
        assert!(body.len() <= MAX_RESPONSE_BYTES);
        assert!(report.data_dropped);
        assert!(fitted.data.is_empty());
        assert_eq!(fitted.status, CfnStatus::Failed);
        let reason = fitted.reason.unwrap();
        assert!(
            reason.starts_with("Data (5011 bytes) was dropped"),
            "{reason}"
        );
        assert!(
            reason.ends_with(&"x".repeat(1000)),
            "the original reason follows"
        );

        let (_, kept_status, _) = fit_response(&r, false);
        assert_eq!(kept_status.status, CfnStatus::Success);
    }
}
