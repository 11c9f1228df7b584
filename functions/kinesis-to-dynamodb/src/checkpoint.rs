//! Lambda's checkpoint rule for Kinesis partial batch responses.
//!
//! Lambda resumes from the LOWEST sequence number reported and re-delivers
//! everything after it. So the function reports the lowest sequence number
//! of any record not written: everything before it was written, everything
//! after it is re-sent (writes are idempotent, so that is safe).

use shared::batch::PartialBatchResponse;
use std::cmp::Ordering;

/// Orders Kinesis sequence numbers (decimal strings of ~56 digits, beyond
/// any integer type) numerically.
pub fn compare_sequence(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A record's place in its shard: the sequence number, then the position of
/// a KPL user record inside its aggregated record (0 when not aggregated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub sequence: String,
    pub sub: u32,
}

impl Position {
    /// Zero-padded text whose string order is the numeric order, for
    /// DynamoDB conditions (its numbers hold only 38 digits).
    pub fn sortable(&self) -> String {
        format!(
            "{:0>80}.{:010}",
            self.sequence.trim_start_matches('0'),
            self.sub
        )
    }
}

impl Ord for Position {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_sequence(&self.sequence, &other.sequence).then(self.sub.cmp(&other.sub))
    }
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The response for a batch: the lowest sequence number among the records
/// not written, or success. `failed` holds their sequence numbers (a KPL
/// record fails as a whole when any of its user records does).
pub fn response<'a>(failed: impl IntoIterator<Item = &'a str>) -> PartialBatchResponse {
    match failed.into_iter().min_by(|a, b| compare_sequence(a, b)) {
        Some(lowest) => PartialBatchResponse::failing([lowest]),
        None => PartialBatchResponse::success(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_order_beyond_u128() {
        let small = "49590338271490256608559692538361571095921575989136588898";
        let large = "149590338271490256608559692538361571095921575989136588898";
        assert_eq!(compare_sequence(small, large), Ordering::Less);
        assert_eq!(compare_sequence("0009", "10"), Ordering::Less);
        assert_eq!(compare_sequence("10", "010"), Ordering::Equal);
        let p = |s: &str, sub| Position {
            sequence: s.into(),
            sub,
        };
        assert!(p("9", 5) < p("10", 0) && p("10", 0) < p("10", 1));
        assert!(p("9", 5).sortable() < p("10", 0).sortable());
    }

    #[test]
    fn reports_the_lowest_failure_or_nothing() {
        assert_eq!(
            response(["30", "9", "100"]),
            PartialBatchResponse::failing(["9"])
        );
        assert_eq!(response([]), PartialBatchResponse::success());
    }
}
