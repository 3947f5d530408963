//! Report periods: the cadence of a tier, the periods `ExportReport` accepts, and the calendar
//! periods scheduled reports cover. Days, weeks and months are China's (UTC+8); a week starts
//! on Monday. Every period is the half-open interval `[from, to)`.

use std::str::FromStr;

use crate::domain::calendar::{china_date, china_midnight, china_weekday, parse_china_date};
use crate::domain::{DomainError, Timestamp};

const DAY_MS: i64 = 86_400_000;

/// How often a node reports (Zizhou): villages daily, townships weekly, counties monthly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    Day,
    Week,
    Month,
}

impl Cadence {
    pub fn as_str(self) -> &'static str {
        match self {
            Cadence::Day => "day",
            Cadence::Week => "week",
            Cadence::Month => "month",
        }
    }

    /// 日报 / 周报 / 月报.
    pub fn label_zh(self) -> &'static str {
        match self {
            Cadence::Day => "日报",
            Cadence::Week => "周报",
            Cadence::Month => "月报",
        }
    }

    /// Zizhou's cadence of a tier: villages daily, townships weekly, counties and above monthly.
    pub fn of_tier(tier: crate::code::Tier) -> Cadence {
        use crate::code::Tier;
        match tier {
            Tier::Village => Cadence::Day,
            Tier::Township => Cadence::Week,
            Tier::County | Tier::City | Tier::Province => Cadence::Month,
        }
    }

    /// Length of the rolling period "day" / "week" / "month" ending now (a month is 30 days).
    fn rolling_ms(self) -> i64 {
        match self {
            Cadence::Day => DAY_MS,
            Cadence::Week => 7 * DAY_MS,
            Cadence::Month => 30 * DAY_MS,
        }
    }
}

impl FromStr for Cadence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "day" => Ok(Cadence::Day),
            "week" => Ok(Cadence::Week),
            "month" => Ok(Cadence::Month),
            other => Err(format!(
                "{other:?}: use \"day\", \"week\", \"month\" (or \"off\" for no schedule)"
            )),
        }
    }
}

/// A period a report covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    /// As given ("week") or as dates ("2026-11-01..2026-11-30").
    pub label: String,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// `YYYY-MM-DD` of a day start.
fn date_label(t: Timestamp) -> String {
    let (y, m, d) = china_date(t);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The period of an `ExportReport` request at `now`: "day", "week" or "month" ending now,
/// a range of China dates "2026-11-01..2026-11-30" (both days included), a single date, or
/// empty for the node's `cadence` ending now.
pub fn parse(period: &str, cadence: Cadence, now: Timestamp) -> Result<Period, DomainError> {
    let p = period.trim();
    let rolling = |c: Cadence| Period {
        label: c.as_str().to_owned(),
        from: Timestamp(now.0.saturating_sub(c.rolling_ms())),
        to: now,
    };
    if p.is_empty() {
        return Ok(rolling(cadence));
    }
    if let Ok(c) = p.parse::<Cadence>() {
        return Ok(rolling(c));
    }
    let bad = || {
        DomainError::invalid(
            "period",
            format!(
                "{p:?}: give \"day\", \"week\", \"month\", a date 2026-11-01 or a range \
                 2026-11-01..2026-11-30"
            ),
        )
    };
    let (first, last) = p.split_once("..").unwrap_or((p, p));
    let (y1, m1, d1) = parse_china_date(first).ok_or_else(bad)?;
    let (y2, m2, d2) = parse_china_date(last).ok_or_else(bad)?;
    let from = china_midnight(y1, m1, d1);
    let to = china_midnight(y2, m2, d2 + 1);
    if to <= from {
        return Err(DomainError::invalid(
            "period",
            format!("{p:?}: the range ends before it starts"),
        ));
    }
    Ok(Period {
        label: format!(
            "{}..{}",
            date_label(from),
            date_label(Timestamp(to.0 - DAY_MS))
        ),
        from,
        to,
    })
}

/// The last complete calendar period of `cadence` before `now` (yesterday, last week, last
/// month): what a scheduled report covers.
pub fn last_complete(cadence: Cadence, now: Timestamp) -> Period {
    let (y, m, d) = china_date(now);
    let to = match cadence {
        Cadence::Day => china_midnight(y, m, d),
        // This week's Monday.
        Cadence::Week => {
            Timestamp(china_midnight(y, m, d).0 - i64::from(china_weekday(now)) * DAY_MS)
        }
        Cadence::Month => china_midnight(y, m, 1),
    };
    let from = match cadence {
        Cadence::Day => Timestamp(to.0 - DAY_MS),
        Cadence::Week => Timestamp(to.0 - 7 * DAY_MS),
        Cadence::Month => {
            let (ty, tm, _) = china_date(to);
            china_midnight(ty, tm - 1, 1)
        }
    };
    let last_day = date_label(Timestamp(to.0 - DAY_MS));
    let label = match cadence {
        Cadence::Day => last_day,
        Cadence::Week | Cadence::Month => format!("{}..{last_day}", date_label(from)),
    };
    Period { label, from, to }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-18 10:00 CST, a Wednesday.
    fn now() -> Timestamp {
        Timestamp(china_midnight(2026, 11, 18).0 + 10 * 3_600_000)
    }

    #[test]
    fn rolling_periods_end_now() {
        let p = parse("", Cadence::Week, now()).unwrap();
        assert_eq!((p.label.as_str(), p.to), ("week", now()));
        assert_eq!(p.from.0, now().0 - 7 * DAY_MS);
        let p = parse("month", Cadence::Day, now()).unwrap();
        assert_eq!(p.from.0, now().0 - 30 * DAY_MS);
        assert_eq!(parse("day", Cadence::Month, now()).unwrap().label, "day");
    }

    #[test]
    fn date_ranges_include_both_days() {
        let p = parse("2026-11-01..2026-11-30", Cadence::Day, now()).unwrap();
        assert_eq!(p.from, china_midnight(2026, 11, 1));
        assert_eq!(p.to, china_midnight(2026, 12, 1));
        assert_eq!(p.label, "2026-11-01..2026-11-30");
        let p = parse("2026-02-28", Cadence::Day, now()).unwrap();
        assert_eq!(p.to.0 - p.from.0, DAY_MS);
        for bad in [
            "fortnight",
            "2026-11-31",
            "2026-11-30..2026-11-01",
            "2026-11-01..",
            "..x",
        ] {
            let e = parse(bad, Cadence::Day, now()).unwrap_err();
            assert!(e.to_string().contains("period"), "{bad}: {e}");
        }
    }

    #[test]
    fn scheduled_periods_are_whole_calendar_periods() {
        let p = last_complete(Cadence::Day, now());
        assert_eq!(
            (p.from, p.to),
            (china_midnight(2026, 11, 17), china_midnight(2026, 11, 18))
        );
        assert_eq!(p.label, "2026-11-17");
        let p = last_complete(Cadence::Week, now());
        assert_eq!(
            (p.from, p.to),
            (china_midnight(2026, 11, 9), china_midnight(2026, 11, 16))
        );
        assert_eq!(p.label, "2026-11-09..2026-11-15");
        let p = last_complete(Cadence::Month, now());
        assert_eq!(
            (p.from, p.to),
            (china_midnight(2026, 10, 1), china_midnight(2026, 11, 1))
        );
        assert_eq!(p.label, "2026-10-01..2026-10-31");
        // Early in a month and on a Monday: the week may start in the previous month.
        let monday = Timestamp(china_midnight(2026, 12, 7).0 + 1);
        let p = last_complete(Cadence::Week, monday);
        assert_eq!(
            (p.from, p.to),
            (china_midnight(2026, 11, 30), china_midnight(2026, 12, 7))
        );
        let jan = Timestamp(china_midnight(2027, 1, 2).0);
        let p = last_complete(Cadence::Month, jan);
        assert_eq!(p.from, china_midnight(2026, 12, 1));
    }
}
