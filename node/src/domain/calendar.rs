//! Calendar arithmetic in China Standard Time (UTC+8, no daylight saving since 1991).
//!
//! Timestamps are stored in UTC; people at a center think in local days. A case registered at
//! 01:30 in Xi'an on 2 May is a case of 2 May even though it is still 1 May in UTC, so its id
//! carries `20240502`. Plain integer arithmetic (the proleptic Gregorian calendar) keeps these
//! functions total: any `i64` timestamp gives an answer, without panics or errors.

use super::Timestamp;

const MS_PER_MINUTE: i64 = 60_000;
const MS_PER_DAY: i64 = 86_400_000;
/// China Standard Time is UTC+8.
const CST_OFFSET_MS: i64 = 8 * 3_600_000;

/// `"YYYYMMDD"` of `ts` in China Standard Time: the day in a case id.
///
/// Years outside 0..=9999 (never met by a real clock) come out wider, e.g. `"-00010101"`.
pub fn china_day(ts: Timestamp) -> String {
    let (y, m, d, _) = china_parts(ts);
    format!("{y:04}{m:02}{d:02}")
}

/// Milliseconds since China's midnight at `ts` (0..86,400,000).
pub fn china_millis_of_day(ts: Timestamp) -> i64 {
    ts.millis()
        .saturating_add(CST_OFFSET_MS)
        .rem_euclid(MS_PER_DAY)
}

/// `"YYYY-MM-DD HH:MM"` of `ts` in China Standard Time, for text shown to people (deadlines in
/// history details).
pub fn china_datetime(ts: Timestamp) -> String {
    let (y, m, d, minute_of_day) = china_parts(ts);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        minute_of_day / 60,
        minute_of_day % 60
    )
}

/// The month of `ts` in China Standard Time as the number `YYYYMM` (May 2024 is `202405`), the
/// key of the monthly statistics buckets. Years are clamped to 1..=9999, so the result is
/// never 0 and always has six digits or fewer.
pub fn china_month(ts: Timestamp) -> u32 {
    let (y, m, _, _) = china_parts(ts);
    // Clamped to 1..=9999 first, so the cast is lossless.
    (y.clamp(1, 9999) as u32) * 100 + m
}

/// (year, month, day) of `ts` in China Standard Time.
pub fn china_date(ts: Timestamp) -> (i64, u32, u32) {
    let (y, m, d, _) = china_parts(ts);
    (y, m, d)
}

/// Day of the week of `ts` in China, 0 = Monday ... 6 = Sunday.
pub fn china_weekday(ts: Timestamp) -> u32 {
    let days = ts
        .millis()
        .saturating_add(CST_OFFSET_MS)
        .div_euclid(MS_PER_DAY);
    // 1970-01-01 was a Thursday (3).
    (days + 3).rem_euclid(7) as u32
}

/// The instant a China day begins (00:00 CST). Days out of range roll over, as in
/// `2024-02-30` = `2024-03-01` and `2024-13-01` = `2025-01-01`; month 0 is December before.
pub fn china_midnight(year: i64, month: u32, day: u32) -> Timestamp {
    let months = year * 12 + i64::from(month) - 1;
    let (y, m) = (months.div_euclid(12), months.rem_euclid(12) as u32 + 1);
    let days = days_from_civil(y, m, 1) + i64::from(day) - 1;
    Timestamp(
        days.saturating_mul(MS_PER_DAY)
            .saturating_sub(CST_OFFSET_MS),
    )
}

/// Parses `YYYY-MM-DD` (a day in China); `None` unless it is a real date.
pub fn parse_china_date(s: &str) -> Option<(i64, u32, u32)> {
    let mut parts = s.trim().splitn(3, '-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, u32, u32) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    // A real date comes back unchanged from a round trip.
    (china_date(china_midnight(y, m, d)) == (y, m, d)).then_some((y, m, d))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1..=12); Howard Hinnant's
/// algorithm, the inverse of [`civil_from_days`].
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day, minute of the day) of `ts` in China Standard Time.
fn china_parts(ts: Timestamp) -> (i64, u32, u32, i64) {
    let local = ts.millis().saturating_add(CST_OFFSET_MS);
    let (y, m, d) = civil_from_days(local.div_euclid(MS_PER_DAY));
    (y, m, d, local.rem_euclid(MS_PER_DAY) / MS_PER_MINUTE)
}

/// Days since 1970-01-01 → (year, month 1..=12, day 1..=31); Howard Hinnant's algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146_096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from 1 March
    let mp = (5 * doy + 2) / 153; // 0..=11, March-based month
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Both are small and positive by construction.
    (y, m as u32, d as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::{OffsetDateTime, UtcOffset};

    const H: i64 = 3_600_000;

    /// 2024-05-01 00:00:00 UTC.
    const MAY_1_UTC: i64 = 1_714_521_600_000;

    #[test]
    fn utc_afternoon_is_the_next_day_in_china() {
        assert_eq!(china_day(Timestamp(MAY_1_UTC)), "20240501"); // 08:00 CST
        assert_eq!(china_day(Timestamp(MAY_1_UTC + 16 * H - 1)), "20240501"); // 23:59:59.999 CST
        assert_eq!(china_day(Timestamp(MAY_1_UTC + 16 * H)), "20240502"); // 16:00 UTC = 00:00 CST
        assert_eq!(china_day(Timestamp(MAY_1_UTC - 8 * H)), "20240501"); // 16:00 UTC on 30 April
        assert_eq!(china_day(Timestamp(MAY_1_UTC - 8 * H - 1)), "20240430");
    }

    #[test]
    fn year_and_leap_day_boundaries() {
        // 2023-12-31 16:00 UTC is New Year's Day in China.
        assert_eq!(china_day(Timestamp(1_704_038_400_000)), "20240101");
        assert_eq!(china_day(Timestamp(1_704_038_400_000 - 1)), "20231231");
        // 2024-02-28 16:00 UTC: the leap day begins in China.
        assert_eq!(china_day(Timestamp(1_709_136_000_000)), "20240229");
        assert_eq!(china_day(Timestamp(0)), "19700101");
        assert_eq!(china_day(Timestamp(-8 * H - 1)), "19691231");
    }

    #[test]
    fn months_are_china_months() {
        assert_eq!(china_month(Timestamp(MAY_1_UTC)), 202405);
        // 2024-04-30 16:00 UTC is already 1 May in China.
        assert_eq!(china_month(Timestamp(MAY_1_UTC - 8 * H)), 202405);
        assert_eq!(china_month(Timestamp(MAY_1_UTC - 8 * H - 1)), 202404);
        assert_eq!(china_month(Timestamp(1_704_038_400_000)), 202401);
        assert_eq!(china_month(Timestamp(i64::MIN)) / 100, 1);
        assert_eq!(china_month(Timestamp(i64::MAX)) / 100, 9999);
    }

    #[test]
    fn datetime_is_local_minutes() {
        assert_eq!(china_datetime(Timestamp(MAY_1_UTC)), "2024-05-01 08:00");
        assert_eq!(
            china_datetime(Timestamp(MAY_1_UTC + 16 * H - 1)),
            "2024-05-01 23:59"
        );
        assert_eq!(
            china_datetime(Timestamp(MAY_1_UTC + 16 * H + 90_000)),
            "2024-05-02 00:01"
        );
    }

    #[test]
    fn agrees_with_the_time_crate() {
        let cst = UtcOffset::from_hms(8, 0, 0).unwrap();
        // Every 7 hours and 13 minutes from 1950 to 2100: crosses every hour of the day.
        let mut ms = -631_152_000_000_i64;
        while ms < 4_102_444_800_000 {
            let t = OffsetDateTime::from_unix_timestamp(ms / 1000)
                .unwrap()
                .to_offset(cst);
            let want = format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day());
            assert_eq!(china_day(Timestamp(ms)), want, "at {ms}");
            ms += 7 * H + 13 * MS_PER_MINUTE;
        }
    }

    #[test]
    fn midnights_weekdays_and_dates() {
        // 2024-05-01 00:00 CST is 2024-04-30 16:00 UTC; it was a Wednesday.
        assert_eq!(china_midnight(2024, 5, 1), Timestamp(MAY_1_UTC - 8 * H));
        assert_eq!(china_weekday(Timestamp(MAY_1_UTC)), 2);
        assert_eq!(china_weekday(Timestamp(MAY_1_UTC - 8 * H - 1)), 1);
        assert_eq!(china_date(Timestamp(MAY_1_UTC)), (2024, 5, 1));
        // Roll-over of months and days.
        assert_eq!(china_midnight(2024, 13, 1), china_midnight(2025, 1, 1));
        assert_eq!(china_midnight(2024, 0, 1), china_midnight(2023, 12, 1));
        assert_eq!(china_midnight(2024, 2, 30), china_midnight(2024, 3, 1));
        for ms in [0, MAY_1_UTC, 1_709_136_000_000, -631_152_000_000] {
            let (y, m, d) = china_date(Timestamp(ms));
            let start = china_midnight(y, m, d);
            assert!(start.0 <= ms && ms < start.0 + MS_PER_DAY, "{ms}");
        }
        assert_eq!(parse_china_date("2024-02-29"), Some((2024, 2, 29)));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-5-1",
            "20240501",
            "x",
            "2024-05-01-",
        ] {
            assert_eq!(parse_china_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn total_on_extreme_timestamps() {
        // No panic, no overflow: the answer is merely far away.
        assert!(!china_day(Timestamp(i64::MAX)).is_empty());
        assert!(!china_day(Timestamp(i64::MIN)).is_empty());
        assert!(!china_datetime(Timestamp(i64::MIN)).is_empty());
    }
}
