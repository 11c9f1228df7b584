//! MySQL's `DATETIME` and `TIME` text, to and from epoch seconds (UTC).

/// `2026-11-22 01:02:03.123456`, UTC.
pub fn format_timestamp(now: std::time::SystemTime) -> String {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Seconds since the epoch for MySQL's `YYYY-MM-DD HH:MM:SS[.ffffff]`
/// (UTC, as log tables hold with time_zone UTC, RDS's default).
pub fn parse_timestamp(text: &str) -> Option<f64> {
    let (date, time) = text.trim().split_once(' ')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let secs_of_day = parse_time_of_day(time)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + secs_of_day)
}

/// Seconds in `HH:MM:SS[.ffffff]` (also MySQL TIME values such as query_time).
pub fn parse_time_of_day(text: &str) -> Option<f64> {
    let mut parts = text.trim().split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || h < 0.0 || !(0.0..60.0).contains(&m) || !(0.0..61.0).contains(&s) {
        return None;
    }
    Some(h * 3600.0 + m * 60.0 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0.0));
        assert_eq!(
            parse_timestamp("2026-11-22 01:02:03.5"),
            Some(1_795_309_323.5)
        );
        assert_eq!(parse_timestamp("2026-13-01 00:00:00"), None);
        assert_eq!(parse_timestamp("nonsense"), None);
        assert_eq!(parse_time_of_day("00:00:02.250000"), Some(2.25));
        assert_eq!(parse_time_of_day("838:59:59"), Some(3_020_399.0));
    }

    #[test]
    fn formatted_timestamps() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(1_795_309_323_500_001);
        assert_eq!(format_timestamp(t), "2026-11-22 01:02:03.500001");
    }
}
