//! UTC timestamps as the log writes them (RFC 3339, milliseconds, `Z`), without a
//! calendar dependency.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn unix_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// `2026-12-01T05:30:00.123Z`.
pub fn rfc3339_millis(millis: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(millis / 1000);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        millis % 1000
    )
}

/// `2026-12-01` of a Unix time in milliseconds.
pub fn day(millis: u64) -> String {
    let (y, mo, d, ..) = civil(millis / 1000);
    format!("{y:04}-{mo:02}-{d:02}")
}

/// Parses what [`rfc3339_millis`] writes (and the same without milliseconds, or a bare
/// `YYYY-MM-DD` for midnight) back to Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<u64> {
    let b = text.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u64> { text.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' || !(1..=12).contains(&mo) || d == 0 || d > 31 {
        return None;
    }
    let days = days_from_civil(y as i64, mo as u32, d as u32);
    let mut millis = u64::try_from(days).ok()? * 86_400_000;
    if b.len() == 10 {
        return Some(millis);
    }
    if b.len() < 20 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || !text.ends_with('Z') {
        return None;
    }
    let (h, mi, s) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    millis += (h * 3600 + mi * 60 + s) * 1000;
    match &text[19..text.len() - 1] {
        "" => Some(millis),
        frac if frac.len() == 4 && frac.starts_with('.') => {
            Some(millis + frac[1..].parse::<u64>().ok()?)
        }
        _ => None,
    }
}

/// (year, month, day, hour, minute, second) of Unix seconds (proleptic Gregorian).
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        // 2026-12-01T05:30:00.123Z
        let t = 1_796_103_000_123;
        assert_eq!(rfc3339_millis(t), "2026-12-01T05:30:00.123Z");
        assert_eq!(parse_rfc3339("2026-12-01T05:30:00.123Z"), Some(t));
        assert_eq!(parse_rfc3339("2026-12-01T05:30:00Z"), Some(t - 123));
        assert_eq!(parse_rfc3339("2026-12-01"), Some(t - 123 - 19_800_000));
        assert_eq!(day(t), "2026-12-01");
        assert_eq!(rfc3339_millis(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(parse_rfc3339("2026-13-01"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
