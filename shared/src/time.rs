//! Wall-clock time as seconds or milliseconds since the Unix epoch, the
//! shape DynamoDB TTLs, EMF timestamps and Lambda deadlines use. A clock set
//! before 1970 reads as 0 rather than failing: no caller can act on it better.

use std::time::{SystemTime, UNIX_EPOCH};

/// Whole seconds from the epoch to `t`; 0 before 1970.
pub fn secs_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Whole milliseconds from the epoch to `t`; 0 before 1970.
pub fn millis_since_epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Nanoseconds from the epoch to `t`; 0 before 1970 (a seed, not a clock).
pub fn nanos_since_epoch(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// [`secs_since_epoch`] of now.
pub fn now_secs() -> u64 {
    secs_since_epoch(SystemTime::now())
}

/// [`millis_since_epoch`] of now.
pub fn now_millis() -> u64 {
    millis_since_epoch(SystemTime::now())
}

/// [`nanos_since_epoch`] of now.
pub fn now_nanos() -> u128 {
    nanos_since_epoch(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn counts_from_the_epoch_and_truncates() {
        let t = UNIX_EPOCH + Duration::from_nanos(1_800_000_000_123_456_789);
        assert_eq!(secs_since_epoch(t), 1_800_000_000);
        assert_eq!(millis_since_epoch(t), 1_800_000_000_123);
        assert_eq!(nanos_since_epoch(t), 1_800_000_000_123_456_789);
    }

    #[test]
    fn before_the_epoch_reads_as_zero() {
        let t = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(secs_since_epoch(t), 0);
        assert_eq!(millis_since_epoch(t), 0);
        assert_eq!(nanos_since_epoch(t), 0);
    }

    #[test]
    fn now_is_after_2020_and_the_units_agree() {
        let (secs, millis) = (now_secs(), now_millis());
        assert!(secs > 1_577_836_800, "{secs}");
        // Taken after `secs`, so never earlier than it.
        assert!(millis / 1000 >= secs, "{millis} vs {secs}");
        assert!(now_nanos() / 1_000_000 >= u128::from(millis));
    }
}
