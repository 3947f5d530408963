//! Building an answer from stored entries: periods, sums and breakdowns. Pure.
//!
//! An answer for scope `S` sums *parts*: `OWN(S)` (the row of S itself, 本级) and `SUBTREE(c)`
//! for each child `c` of S, or the single part `SUBTREE(S)` when S lies at the retention depth.
//! Each part contributes its month buckets inside the period plus its current bucket. So the
//! rows of GROUP_BY_CHILD add up to the total by construction, as do the rows of every
//! dimension; the rows of GROUP_BY_MONTH add up to the period figures of the total (current
//! figures belong to no month).

use std::collections::BTreeMap;

use crate::code::NodeCode;
use crate::domain::calendar::china_month;
use crate::domain::{DomainError, Timestamp};

use super::figures::{Bucket, CURRENT, Cell, Cells, Dim, Figures};
use super::liveness::LinkStatus;

/// How an answer is broken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBy {
    Dim(Dim),
    Month,
    Child,
}

/// The months a query covers, inclusive; `None` is unbounded on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Period {
    pub first: Option<Bucket>,
    pub last: Option<Bucket>,
}

impl Period {
    /// The months touched by `[from, to)`, in China time: a period is rounded outward to
    /// whole months.
    pub fn new(from: Option<Timestamp>, to: Option<Timestamp>) -> Result<Period, DomainError> {
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                return Err(DomainError::invalid("to", "must be after `from`"));
            }
        }
        Ok(Period {
            first: from.map(china_month),
            last: to.map(|t| china_month(Timestamp(t.millis().saturating_sub(1)))),
        })
    }

    /// (first, last) month buckets, unbounded sides widened to every month.
    pub fn bounds(&self) -> (Bucket, Bucket) {
        (
            self.first.unwrap_or(CURRENT + 1),
            self.last.unwrap_or(Bucket::MAX),
        )
    }

    pub fn contains(&self, bucket: Bucket) -> bool {
        let (first, last) = self.bounds();
        (first..=last).contains(&bucket)
    }
}

/// One summand of an answer: the current bucket and the period's months of one stored
/// contribution, and the GROUP_BY_CHILD row it feeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub row: NodeCode,
    pub buckets: Vec<(Bucket, Cells)>,
}

/// The key of a row of a breakdown.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowKey {
    Cell(Cell),
    Month(Bucket),
    Node(NodeCode),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub by: GroupBy,
    pub rows: Vec<(RowKey, Figures)>,
}

/// A computed answer, before conversion to the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub scope: NodeCode,
    pub period: Period,
    pub as_of: Timestamp,
    pub totals: Figures,
    pub groups: Vec<Group>,
    pub children: Vec<LinkStatus>,
    pub stale: Vec<LinkStatus>,
    pub children_folded: bool,
    pub retention_depth: u8,
}

/// The total of `parts` and one breakdown per entry of `group_by`.
pub fn sum(parts: &[Part], group_by: &[GroupBy]) -> (Figures, Vec<Group>) {
    let mut total = Figures::default();
    let mut by_cell: BTreeMap<Cell, Figures> = BTreeMap::new();
    let mut by_month: BTreeMap<Bucket, Figures> = BTreeMap::new();
    let mut by_part = Vec::with_capacity(parts.len());
    for part in parts {
        let mut part_total = Figures::default();
        for (bucket, cells) in &part.buckets {
            part_total.add(&cells.total);
            for (cell, f) in &cells.by {
                by_cell.entry(*cell).or_default().add(f);
            }
            if *bucket != CURRENT {
                by_month.entry(*bucket).or_default().add(&cells.total);
            }
        }
        total.add(&part_total);
        by_part.push((RowKey::Node(part.row.clone()), part_total));
    }
    let groups = group_by
        .iter()
        .map(|by| {
            let rows = match by {
                GroupBy::Dim(dim) => by_cell
                    .iter()
                    .filter(|(c, _)| c.dim == *dim)
                    .map(|(c, f)| (RowKey::Cell(*c), *f))
                    .collect(),
                GroupBy::Month => by_month
                    .iter()
                    .map(|(m, f)| (RowKey::Month(*m), *f))
                    .collect(),
                GroupBy::Child => by_part.clone(),
            };
            Group { by: *by, rows }
        })
        .collect();
    (total, groups)
}

/// `"YYYY-MM"` of a month bucket.
pub fn month_label(bucket: Bucket) -> String {
    format!("{:04}-{:02}", bucket / 100, bucket % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::figures::Dim;

    fn c(s: &str) -> NodeCode {
        NodeCode::parse(s).unwrap()
    }

    fn cells(received: u64, open: u64, category: u8) -> Cells {
        let mut out = Cells::default();
        let f = Figures {
            received,
            open,
            ..Figures::default()
        };
        out.apply(
            &[Cell {
                dim: Dim::Category,
                value: category,
            }],
            &f,
            true,
        );
        out
    }

    #[test]
    fn periods_round_outward_to_china_months() {
        // 2025-03-31 16:00 UTC is 1 April in China; `to` is exclusive.
        let from = Timestamp(1_743_436_800_000);
        let p = Period::new(Some(from), Some(Timestamp(from.0 + 1))).unwrap();
        assert_eq!((p.first, p.last), (Some(202504), Some(202504)));
        let p = Period::new(Some(Timestamp(from.0 - 1)), Some(from)).unwrap();
        assert_eq!((p.first, p.last), (Some(202503), Some(202503)));
        assert!(Period::new(Some(from), Some(from)).is_err());
        let open = Period::new(None, None).unwrap();
        assert!(open.contains(101) && open.contains(999_912) && !open.contains(CURRENT));
        assert_eq!(month_label(202504), "2025-04");
    }

    #[test]
    fn rows_add_up_to_the_total() {
        let parts = vec![
            Part {
                row: c("610116"),
                buckets: vec![(CURRENT, cells(0, 2, 1)), (202501, cells(3, 0, 1))],
            },
            Part {
                row: c("610116001"),
                buckets: vec![(202501, cells(1, 0, 2)), (202502, cells(4, 0, 1))],
            },
            Part {
                row: c("610116002"),
                buckets: vec![],
            },
        ];
        let by = [
            GroupBy::Child,
            GroupBy::Month,
            GroupBy::Dim(Dim::Category),
            GroupBy::Dim(Dim::Risk),
        ];
        let (total, groups) = sum(&parts, &by);
        assert_eq!((total.received, total.open), (8, 2));
        let child = &groups[0].rows;
        assert_eq!(child.len(), 3, "a child without figures still has its row");
        assert_eq!(
            child[1],
            (
                RowKey::Node(c("610116001")),
                Figures {
                    received: 5,
                    ..Figures::default()
                }
            )
        );
        let month = &groups[1].rows;
        assert_eq!(month.len(), 2);
        assert_eq!(month[0].1.received + month[1].1.received, 8);
        assert_eq!(month[0].1.open, 0, "current figures are in no month");
        let category = &groups[2].rows;
        assert_eq!(category.len(), 2);
        assert_eq!(category[0].1.received, 7);
        assert_eq!(category[0].1.open, 2);
        assert!(groups[3].rows.is_empty(), "no risk cells in these parts");
    }
}
