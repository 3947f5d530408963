//! Protobuf ⇄ statistics conversions: answers, contributions, pushes.
//!
//! As in the parent module: enums through `TryFrom`, UNSPECIFIED and unknown numbers are
//! INVALID_ARGUMENT naming the field, and messages are destructured exhaustively.

use fengqiao_proto::v1 as pb;

use super::{required, ts_from_proto, ts_to_proto};
use crate::code::{NodeCode, Tier};
use crate::domain::{Category, Channel, DomainError, MediationType, RiskLevel, Timestamp};
use crate::stats::figures::ratio;
use crate::stats::liveness::LinkStatus;
use crate::stats::node::{Push, PushReply};
use crate::stats::query::{Answer, Group, GroupBy, RowKey, month_label};
use crate::stats::{Bucket, CURRENT, Cell, Cells, Dim, Figures, Kind};
use crate::storage::Incoming;

fn tier_to_proto(t: Tier) -> pb::Tier {
    match t {
        Tier::Province => pb::Tier::Province,
        Tier::City => pb::Tier::City,
        Tier::County => pb::Tier::County,
        Tier::Township => pb::Tier::Township,
        Tier::Village => pb::Tier::Village,
    }
}

fn tier_from_proto(v: i32) -> Result<Tier, DomainError> {
    let bad = |m: &str| DomainError::invalid("resolved_by_tier.tier", m.to_owned());
    match pb::Tier::try_from(v).map_err(|_| bad("unknown value"))? {
        pb::Tier::Unspecified => Err(bad("is required (UNSPECIFIED given)")),
        pb::Tier::Province => Ok(Tier::Province),
        pb::Tier::City => Ok(Tier::City),
        pb::Tier::County => Ok(Tier::County),
        pb::Tier::Township => Ok(Tier::Township),
        pb::Tier::Village => Ok(Tier::Village),
    }
}

/// The wire form of `f`; `derived` also fills rates, means and shares (answers only).
pub fn figures_to_proto(f: &Figures, derived: bool) -> pb::Figures {
    let Figures {
        received,
        accepted,
        rejected,
        resolved,
        unresolved,
        closed,
        amount_received_fen,
        amount_resolved_fen,
        settled_fen,
        resolution_ms_total,
        satisfaction_total,
        satisfaction_count,
        reopened,
        escalated_in,
        escalated_out,
        transferred_in,
        transferred_out,
        resolved_province: _,
        resolved_city: _,
        resolved_county: _,
        resolved_township: _,
        resolved_village: _,
        open,
        unreviewed,
        awaiting_follow_up,
        overdue_review,
        overdue_resolve,
        overdue_follow_up,
    } = *f;
    let d = |v: f64| if derived { v } else { 0.0 };
    pb::Figures {
        received,
        accepted,
        rejected,
        resolved,
        unresolved,
        closed,
        amount_received_fen,
        amount_resolved_fen,
        settled_fen,
        resolution_ms_total,
        satisfaction_total,
        satisfaction_count,
        reopened,
        escalated_in,
        escalated_out,
        transferred_in,
        transferred_out,
        resolved_by_tier: f
            .resolved_by_tier()
            .into_iter()
            .filter(|(_, n)| *n != 0)
            .map(|(t, n)| pb::TierCount {
                tier: tier_to_proto(t) as i32,
                resolved: n,
                share: d(ratio(n, resolved)),
            })
            .collect(),
        open,
        unreviewed,
        awaiting_follow_up,
        overdue_review,
        overdue_resolve,
        overdue_follow_up,
        success_rate: d(f.success_rate()),
        mean_days_to_resolution: d(f.mean_days_to_resolution()),
        satisfaction_mean: d(f.satisfaction_mean()),
        settled_locally_share: d(f.settled_locally_share()),
    }
}

/// Figures from a contribution; derived fields are ignored.
pub fn figures_from_proto(p: pb::Figures) -> Result<Figures, DomainError> {
    let pb::Figures {
        received,
        accepted,
        rejected,
        resolved,
        unresolved,
        closed,
        amount_received_fen,
        amount_resolved_fen,
        settled_fen,
        resolution_ms_total,
        satisfaction_total,
        satisfaction_count,
        reopened,
        escalated_in,
        escalated_out,
        transferred_in,
        transferred_out,
        resolved_by_tier,
        open,
        unreviewed,
        awaiting_follow_up,
        overdue_review,
        overdue_resolve,
        overdue_follow_up,
        success_rate: _,
        mean_days_to_resolution: _,
        satisfaction_mean: _,
        settled_locally_share: _,
    } = p;
    let mut f = Figures {
        received,
        accepted,
        rejected,
        resolved,
        unresolved,
        closed,
        amount_received_fen,
        amount_resolved_fen,
        settled_fen,
        resolution_ms_total,
        satisfaction_total,
        satisfaction_count,
        reopened,
        escalated_in,
        escalated_out,
        transferred_in,
        transferred_out,
        open,
        unreviewed,
        awaiting_follow_up,
        overdue_review,
        overdue_resolve,
        overdue_follow_up,
        ..Figures::default()
    };
    for pb::TierCount {
        tier,
        resolved,
        share: _,
    } in resolved_by_tier
    {
        let slot = match tier_from_proto(tier)? {
            Tier::Province => &mut f.resolved_province,
            Tier::City => &mut f.resolved_city,
            Tier::County => &mut f.resolved_county,
            Tier::Township => &mut f.resolved_township,
            Tier::Village => &mut f.resolved_village,
        };
        *slot = slot.wrapping_add(resolved);
    }
    Ok(f)
}

fn group_by_of(dim: Dim) -> pb::GroupBy {
    match dim {
        Dim::Category => pb::GroupBy::Category,
        Dim::Channel => pb::GroupBy::Channel,
        Dim::Risk => pb::GroupBy::Risk,
        Dim::MediationType => pb::GroupBy::MediationType,
    }
}

/// The proto enum number of a dimension value (0 for "no mediation type").
fn cell_value_to_proto(cell: Cell) -> i32 {
    let v = cell.value;
    let known = match cell.dim {
        Dim::Category => Category::from_code(v).map(|c| pb::Category::from(c) as i32),
        Dim::Channel => Channel::from_code(v).map(|c| pb::Channel::from(c) as i32),
        Dim::Risk => RiskLevel::from_code(v).map(|c| pb::RiskLevel::from(c) as i32),
        Dim::MediationType => {
            MediationType::from_code(v).map(|c| pb::MediationType::from(c) as i32)
        }
    };
    known.unwrap_or(0)
}

fn cell_from_proto(by: i32, value: i32) -> Result<Cell, DomainError> {
    let field = "cells.value";
    let (dim, value) = match pb::GroupBy::try_from(by) {
        Ok(pb::GroupBy::Category) => (
            Dim::Category,
            required::<pb::Category, Category>(field, value)?.code(),
        ),
        Ok(pb::GroupBy::Channel) => (
            Dim::Channel,
            required::<pb::Channel, Channel>(field, value)?.code(),
        ),
        Ok(pb::GroupBy::Risk) => (
            Dim::Risk,
            required::<pb::RiskLevel, RiskLevel>(field, value)?.code(),
        ),
        Ok(pb::GroupBy::MediationType) if value == 0 => (Dim::MediationType, 0),
        Ok(pb::GroupBy::MediationType) => (
            Dim::MediationType,
            required::<pb::MediationType, MediationType>(field, value)?.code(),
        ),
        _ => {
            return Err(DomainError::invalid(
                "cells.by",
                format!("{by} is not CATEGORY, CHANNEL, RISK or MEDIATION_TYPE"),
            ));
        }
    };
    Ok(Cell { dim, value })
}

fn kind_to_proto(k: Kind) -> pb::ContributionKind {
    match k {
        Kind::Own => pb::ContributionKind::Own,
        Kind::Subtree => pb::ContributionKind::Subtree,
    }
}

/// One stored entry as pushed to the parent.
pub fn contribution_to_proto(
    kind: Kind,
    node: &NodeCode,
    bucket: Bucket,
    version: u64,
    cells: &Cells,
) -> pb::Contribution {
    pb::Contribution {
        node: node.to_string(),
        kind: kind_to_proto(kind) as i32,
        month: bucket,
        version,
        total: Some(figures_to_proto(&cells.total, false)),
        cells: cells
            .by
            .iter()
            .map(|(cell, f)| pb::CellFigures {
                by: group_by_of(cell.dim) as i32,
                value: cell_value_to_proto(*cell),
                figures: Some(figures_to_proto(f, false)),
            })
            .collect(),
    }
}

fn valid_bucket(b: Bucket) -> bool {
    b == CURRENT || ((1..=9999).contains(&(b / 100)) && (1..=12).contains(&(b % 100)))
}

fn node_from_proto(field: &'static str, s: &str) -> Result<NodeCode, DomainError> {
    NodeCode::parse(s).map_err(|e| DomainError::invalid(field, e.to_string()))
}

/// A pushed contribution, checked field by field.
pub fn incoming_from_proto(c: pb::Contribution) -> Result<Incoming, DomainError> {
    let pb::Contribution {
        node,
        kind,
        month,
        version,
        total,
        cells,
    } = c;
    let kind = match pb::ContributionKind::try_from(kind) {
        Ok(pb::ContributionKind::Own) => Kind::Own,
        Ok(pb::ContributionKind::Subtree) => Kind::Subtree,
        Ok(pb::ContributionKind::Unspecified) => {
            return Err(DomainError::invalid("contributions.kind", "is required"));
        }
        Err(_) => {
            return Err(DomainError::invalid(
                "contributions.kind",
                format!("unknown value {kind}"),
            ));
        }
    };
    if !valid_bucket(month) {
        return Err(DomainError::invalid(
            "contributions.month",
            format!("{month} is not 0 or YYYYMM"),
        ));
    }
    if version == 0 {
        return Err(DomainError::invalid(
            "contributions.version",
            "must be at least 1",
        ));
    }
    let mut out = Cells {
        total: figures_from_proto(total.unwrap_or_default())?,
        by: Default::default(),
    };
    for pb::CellFigures { by, value, figures } in cells {
        let cell = cell_from_proto(by, value)?;
        let f = figures_from_proto(figures.unwrap_or_default())?;
        if out.by.insert(cell, f).is_some() {
            return Err(DomainError::invalid(
                "contributions.cells",
                "a cell appears twice",
            ));
        }
    }
    out.by.retain(|_, f| !f.is_zero());
    Ok(Incoming {
        kind,
        node: node_from_proto("contributions.node", &node)?,
        bucket: month,
        version,
        cells: out,
    })
}

pub fn liveness_to_proto(s: &LinkStatus) -> pb::NodeLiveness {
    pb::NodeLiveness {
        node: s.node.to_string(),
        last_heard: s.last_heard.map(ts_to_proto),
        stale: s.stale,
    }
}

fn child_status(s: &LinkStatus) -> pb::ChildStatus {
    pb::ChildStatus {
        node: s.node.to_string(),
        last_heard: s.last_heard.map(ts_to_proto),
        stale: s.stale,
    }
}

/// A child's push, checked field by field (the subtree checks come later, in the node).
pub fn push_from_proto(r: pb::PushContributionsRequest) -> Result<Push, DomainError> {
    let pb::PushContributionsRequest {
        full,
        contributions,
        liveness,
        sent_at,
    } = r;
    let sent_at = match sent_at {
        Some(t) => ts_from_proto("sent_at", &t)?,
        None => return Err(DomainError::invalid("sent_at", "is required")),
    };
    let liveness = liveness
        .into_iter()
        .map(
            |pb::NodeLiveness {
                 node,
                 last_heard,
                 stale,
             }| {
                Ok(LinkStatus {
                    node: node_from_proto("liveness.node", &node)?,
                    last_heard: last_heard
                        .map(|t| ts_from_proto("liveness.last_heard", &t))
                        .transpose()?,
                    stale,
                })
            },
        )
        .collect::<Result<_, DomainError>>()?;
    Ok(Push {
        full,
        entries: contributions
            .into_iter()
            .map(incoming_from_proto)
            .collect::<Result<_, _>>()?,
        liveness,
        sent_at,
    })
}

pub fn push_reply_to_proto(r: PushReply) -> pb::PushContributionsResponse {
    pb::PushContributionsResponse {
        retention_depth: u32::from(r.retention_depth),
        resync: r.resync,
    }
}

/// The requested breakdowns; UNSPECIFIED and unknown values are refused.
pub fn group_by_from_proto(values: &[i32]) -> Result<Vec<GroupBy>, DomainError> {
    values
        .iter()
        .map(|v| match pb::GroupBy::try_from(*v) {
            Ok(pb::GroupBy::Category) => Ok(GroupBy::Dim(Dim::Category)),
            Ok(pb::GroupBy::Channel) => Ok(GroupBy::Dim(Dim::Channel)),
            Ok(pb::GroupBy::Risk) => Ok(GroupBy::Dim(Dim::Risk)),
            Ok(pb::GroupBy::MediationType) => Ok(GroupBy::Dim(Dim::MediationType)),
            Ok(pb::GroupBy::Month) => Ok(GroupBy::Month),
            Ok(pb::GroupBy::Child) => Ok(GroupBy::Child),
            Ok(pb::GroupBy::Unspecified) => Err(DomainError::invalid(
                "group_by",
                "UNSPECIFIED is not a breakdown",
            )),
            Err(_) => Err(DomainError::invalid(
                "group_by",
                format!("unknown value {v}"),
            )),
        })
        .collect()
}

/// The scope of a query: empty means this node.
pub fn scope_from_proto(s: &str) -> Result<Option<NodeCode>, DomainError> {
    if s.is_empty() {
        Ok(None)
    } else {
        node_from_proto("scope_node", s).map(Some)
    }
}

/// The period bounds of a query.
pub fn bounds_from_proto(
    from: Option<prost_types::Timestamp>,
    to: Option<prost_types::Timestamp>,
) -> Result<(Option<Timestamp>, Option<Timestamp>), DomainError> {
    Ok((
        from.map(|t| ts_from_proto("from", &t)).transpose()?,
        to.map(|t| ts_from_proto("to", &t)).transpose()?,
    ))
}

fn group_to_proto(g: &Group) -> pb::Group {
    let by = match g.by {
        GroupBy::Dim(d) => group_by_of(d),
        GroupBy::Month => pb::GroupBy::Month,
        GroupBy::Child => pb::GroupBy::Child,
    };
    pb::Group {
        by: by as i32,
        rows: g
            .rows
            .iter()
            .map(|(key, f)| {
                use pb::group_row::Key;
                let key = match key {
                    RowKey::Cell(c) => {
                        let v = cell_value_to_proto(*c);
                        match c.dim {
                            Dim::Category => Key::Category(v),
                            Dim::Channel => Key::Channel(v),
                            Dim::Risk => Key::Risk(v),
                            Dim::MediationType => Key::MediationType(v),
                        }
                    }
                    RowKey::Month(m) => Key::Month(month_label(*m)),
                    RowKey::Node(n) => Key::Node(n.to_string()),
                };
                pb::GroupRow {
                    key: Some(key),
                    figures: Some(figures_to_proto(f, true)),
                }
            })
            .collect(),
    }
}

pub fn answer_to_proto(a: &Answer) -> pb::Aggregates {
    pb::Aggregates {
        scope_node: a.scope.to_string(),
        first_month: a.period.first.map(month_label).unwrap_or_default(),
        last_month: a.period.last.map(month_label).unwrap_or_default(),
        as_of: Some(ts_to_proto(a.as_of)),
        totals: Some(figures_to_proto(&a.totals, true)),
        groups: a.groups.iter().map(group_to_proto).collect(),
        children: a.children.iter().map(child_status).collect(),
        stale_descendants: a.stale.iter().map(child_status).collect(),
        children_folded: a.children_folded,
        retention_depth: u32::from(a.retention_depth),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_trip_through_the_wire() {
        let f = Figures {
            received: 3,
            resolved: 2,
            unresolved: 1,
            resolved_township: 1,
            resolved_village: 1,
            amount_received_fen: 440_000,
            resolution_ms_total: 3 * 86_400_000,
            satisfaction_total: 9,
            satisfaction_count: 2,
            overdue_resolve: 1,
            ..Figures::default()
        };
        let p = figures_to_proto(&f, true);
        assert!((p.success_rate - 2.0 / 3.0).abs() < 1e-9);
        assert!((p.mean_days_to_resolution - 1.0).abs() < 1e-9);
        assert!((p.satisfaction_mean - 4.5).abs() < 1e-9);
        assert!((p.settled_locally_share - 1.0).abs() < 1e-9);
        assert_eq!(p.resolved_by_tier.len(), 2);
        assert_eq!(figures_from_proto(p).unwrap(), f);
    }

    #[test]
    fn contributions_round_trip_and_are_checked() {
        let mut cells = Cells::default();
        let f = Figures {
            received: 1,
            ..Figures::default()
        };
        let dims = [
            Cell {
                dim: Dim::Category,
                value: Category::Labor.code(),
            },
            Cell {
                dim: Dim::MediationType,
                value: 0,
            },
        ];
        cells.apply(&dims, &f, true);
        let node = NodeCode::parse("610116001001").unwrap();
        let c = contribution_to_proto(Kind::Subtree, &node, 202505, 7, &cells);
        let back = incoming_from_proto(c.clone()).unwrap();
        assert_eq!(
            (back.kind, back.bucket, back.version),
            (Kind::Subtree, 202505, 7)
        );
        assert_eq!(back.cells, cells);

        let refused = |edit: fn(&mut pb::Contribution)| {
            let mut bad = c.clone();
            edit(&mut bad);
            incoming_from_proto(bad).unwrap_err().to_string()
        };
        assert!(refused(|c| c.kind = 0).contains("contributions.kind"));
        assert!(refused(|c| c.kind = 9).contains("contributions.kind"));
        assert!(refused(|c| c.month = 202513).contains("contributions.month"));
        assert!(refused(|c| c.version = 0).contains("contributions.version"));
        assert!(refused(|c| c.node = "61011".into()).contains("contributions.node"));
        assert!(refused(|c| c.cells[0].by = pb::GroupBy::Month as i32).contains("cells.by"));
        assert!(refused(|c| c.cells[0].value = 0).contains("cells.value"));
        assert!(refused(|c| c.cells[1] = c.cells[0].clone()).contains("twice"));
    }

    #[test]
    fn group_by_refuses_unspecified_and_unknown() {
        assert_eq!(
            group_by_from_proto(&[pb::GroupBy::Child as i32, pb::GroupBy::Category as i32])
                .unwrap(),
            vec![GroupBy::Child, GroupBy::Dim(Dim::Category)]
        );
        assert!(group_by_from_proto(&[0]).is_err());
        assert!(group_by_from_proto(&[42]).is_err());
        assert_eq!(scope_from_proto("").unwrap(), None);
        assert!(scope_from_proto("6101x").is_err());
    }
}
