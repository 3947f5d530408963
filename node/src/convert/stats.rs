//! Protobuf ⇄ statistics conversions: answers, contributions, pushes.
//!
//! As in the parent module: enums through `TryFrom`, UNSPECIFIED and unknown numbers are
//! INVALID_ARGUMENT naming the field, and messages are destructured exhaustively.

mod figures;

use fengqiao_proto::v1 as pb;

pub use figures::{figures_from_proto, figures_to_proto};

use super::{required, ts_from_proto, ts_to_proto};
use crate::code::NodeCode;
use crate::domain::{Category, Channel, DomainError, MediationType, RiskLevel, Timestamp};
use crate::stats::liveness::LinkStatus;
use crate::stats::node::{Push, PushReply};
use crate::stats::query::{Answer, Group, GroupBy, RowKey, month_label};
use crate::stats::{Bucket, CURRENT, Cell, Cells, Dim, Kind};
use crate::storage::Incoming;

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
mod tests;
