//! `fqctl stats`: the figures of this node's subtree (`StatsService.GetAggregates`).
//!
//! ```text
//! fqctl stats [--scope CODE] [--from 2025-01] [--to 2025-06] [--group-by category,child]
//!             [--json | --csv] [--lang en]
//! ```
//!
//! `--from` and `--to` take a month (`2025-06`) or a day (`2025-06-30`) in China time, both
//! inclusive; the node rounds the period to whole months. Tables are in Chinese unless
//! `--lang en`; `--csv` prints one row per total and breakdown row with every figure (amounts
//! in yuan, rates in percent); `--json` prints every field with proto enum names.

use clap::Args;
use fengqiao_proto::v1 as pb;
use pb::stats_service_client::StatsServiceClient;
use time::{Date, Month, macros::offset};

use super::stats_render;
use super::{Cli, Failure, connect};

#[derive(Args)]
pub struct StatsArgs {
    /// 下钻: a descendant's division code (default: this node).
    #[arg(long)]
    pub scope: Option<String>,
    /// First month or day of the period, China time: "2025-01" or "2025-01-15".
    #[arg(long)]
    pub from: Option<String>,
    /// Last month or day of the period (inclusive), China time: "2025-06" or "2025-06-30".
    #[arg(long)]
    pub to: Option<String>,
    /// Breakdowns, comma-separated: category, channel, risk, mediation-type, month, child.
    #[arg(long, value_delimiter = ',')]
    pub group_by: Vec<String>,
    /// Print CSV (one row per total and breakdown row) instead of tables.
    #[arg(long)]
    pub csv: bool,
}

/// Which end of the period a date gives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Start,
    /// Exclusive end: the first instant after the given month or day.
    After,
}

/// Parses "YYYY-MM" or "YYYY-MM-DD" (China time) into a bound of the period.
fn parse_bound(flag: &str, s: &str, end: End) -> Result<prost_types::Timestamp, Failure> {
    let bad = || {
        Failure::usage(format!(
            "--{flag} {s:?}: give a month like 2025-06 or a day like 2025-06-30"
        ))
    };
    let parts: Vec<&str> = s.trim().split('-').collect();
    let num = |p: &str| p.parse::<i32>().map_err(|_| bad());
    let date = match parts.as_slice() {
        [y, m] => {
            let month =
                Month::try_from(u8::try_from(num(m)?).map_err(|_| bad())?).map_err(|_| bad())?;
            let first = Date::from_calendar_date(num(y)?, month, 1).map_err(|_| bad())?;
            match end {
                End::Start => first,
                End::After => {
                    let (y, m) = (first.year(), month.next());
                    let y = if m == Month::January { y + 1 } else { y };
                    Date::from_calendar_date(y, m, 1).map_err(|_| bad())?
                }
            }
        }
        [_, _, _] => {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            let day = Date::parse(s.trim(), fmt).map_err(|_| bad())?;
            match end {
                End::Start => day,
                End::After => day.next_day().ok_or_else(bad)?,
            }
        }
        _ => return Err(bad()),
    };
    let t = date.midnight().assume_offset(offset!(+8));
    Ok(prost_types::Timestamp {
        seconds: t.unix_timestamp(),
        nanos: 0,
    })
}

fn parse_group_by(names: &[String]) -> Result<Vec<i32>, Failure> {
    names
        .iter()
        .filter(|n| !n.trim().is_empty())
        .map(|n| {
            let g = match n.trim().to_lowercase().replace('_', "-").as_str() {
                "category" => pb::GroupBy::Category,
                "channel" => pb::GroupBy::Channel,
                "risk" => pb::GroupBy::Risk,
                "mediation-type" => pb::GroupBy::MediationType,
                "month" => pb::GroupBy::Month,
                "child" => pb::GroupBy::Child,
                _ => {
                    return Err(Failure::usage(format!(
                        "--group-by {n:?}: one of category, channel, risk, mediation-type, \
                         month, child"
                    )));
                }
            };
            Ok(g as i32)
        })
        .collect()
}

/// Builds the request from the flags, without touching the network.
pub fn request(a: &StatsArgs) -> Result<pb::GetAggregatesRequest, Failure> {
    Ok(pb::GetAggregatesRequest {
        scope_node: a.scope.clone().unwrap_or_default(),
        from: a
            .from
            .as_deref()
            .map(|s| parse_bound("from", s, End::Start))
            .transpose()?,
        to: a
            .to
            .as_deref()
            .map(|s| parse_bound("to", s, End::After))
            .transpose()?,
        group_by: parse_group_by(&a.group_by)?,
    })
}

pub async fn run(cli: &Cli, a: &StatsArgs) -> Result<String, Failure> {
    if a.csv && cli.json {
        return Err(Failure::usage("give --json or --csv, not both"));
    }
    let target = connect::resolve(cli)?;
    let req = request(a)?;
    let ch = connect::channel(&target).await?;
    let answer = StatsServiceClient::new(ch)
        .get_aggregates(req)
        .await?
        .into_inner();
    Ok(if cli.json {
        format!("{}\n", stats_render::json(&answer))
    } else if a.csv {
        stats_render::csv(&answer, target.lang)
    } else {
        stats_render::tables(&answer, target.lang)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(from: Option<&str>, to: Option<&str>, group_by: &[&str]) -> StatsArgs {
        StatsArgs {
            scope: None,
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            group_by: group_by.iter().map(|s| s.to_string()).collect(),
            csv: false,
        }
    }

    #[test]
    fn bounds_are_china_midnights_and_to_is_inclusive() {
        let r = request(&args(Some("2025-01"), Some("2025-12"), &[])).unwrap();
        // 2025-01-01 00:00 CST = 2024-12-31 16:00 UTC.
        assert_eq!(r.from.unwrap().seconds, 1_735_660_800);
        // Through December: the bound is 2026-01-01 00:00 CST.
        assert_eq!(r.to.unwrap().seconds, 1_767_196_800);
        let r = request(&args(Some("2025-06-30"), Some("2025-06-30"), &[])).unwrap();
        assert_eq!(r.to.unwrap().seconds - r.from.unwrap().seconds, 86_400);
        for bad in ["2025", "2025-13", "2025-02-30", "june", "2025-06-01-01"] {
            assert!(request(&args(Some(bad), None, &[])).is_err(), "{bad}");
        }
    }

    #[test]
    fn group_by_names() {
        let r = request(&args(None, None, &["category", "mediation_type", "child"])).unwrap();
        assert_eq!(
            r.group_by,
            vec![
                pb::GroupBy::Category as i32,
                pb::GroupBy::MediationType as i32,
                pb::GroupBy::Child as i32
            ]
        );
        assert!(request(&args(None, None, &["colour"])).is_err());
    }
}
