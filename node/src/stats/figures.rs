//! What one case record adds to its holder's figures: the arithmetic of contributions.
//!
//! Everything here is pure. A node's own contribution is, by definition,
//! [`recount`]`(node, every case record it holds)`; storage keeps it up to date by applying
//! [`delta`]`(before, after)` in the transaction of every case change, and the two agree
//! exactly because all arithmetic is on integers, wrapping (so `+x` then `-x` is the identity
//! even past overflow, which real data never reaches).
//!
//! A contribution is a map from bucket to [`Cells`]: bucket [`CURRENT`] holds the current-state
//! figures (open, overdue, ...), every other bucket is a month `YYYYMM` in China time and holds
//! the period figures of the events of that month. [`Cells`] holds the total and one set of
//! figures per dimension value (category, channel, risk, mediation type) so that an answer can
//! be broken down by any one dimension. Zero cells are never kept, so equal contributions are
//! equal values.
//!
//! See `docs/aggregates.md` for the definition of each figure in words; [`case_parts`] is the
//! same definition in code.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::code::{NodeCode, Tier};
use crate::domain::calendar::china_month;
use crate::domain::{Case, CaseStatus, DeadlineKind, Timestamp};

/// A bucket: `YYYYMM` (China time) for period figures, [`CURRENT`] for current-state figures.
pub type Bucket = u32;

/// The bucket of the current-state figures.
pub const CURRENT: Bucket = 0;

/// Per bucket, the figures of a contribution.
pub type Buckets = BTreeMap<Bucket, Cells>;

macro_rules! figures {
    ($($(#[$doc:meta])* $f:ident: $t:ty,)+) => {
        /// One set of figures: integer counts and sums only, so that sets add up exactly across
        /// cases and nodes. Derived figures (rates, means, shares) are computed from these when
        /// an answer is built.
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub struct Figures {
            $($(#[$doc])* pub $f: $t,)+
        }

        impl Figures {
            /// `self += other`, wrapping.
            pub fn add(&mut self, other: &Figures) {
                $(self.$f = self.$f.wrapping_add(other.$f);)+
            }

            /// `self -= other`, wrapping.
            pub fn sub(&mut self, other: &Figures) {
                $(self.$f = self.$f.wrapping_sub(other.$f);)+
            }
        }
    };
}

figures! {
    /// 收案: records registered at the holder (origin), by registration month.
    received: u64,
    /// 受理: live records that passed review, by registration month.
    accepted: u64,
    /// 不予受理: live rejected records, by registration month.
    rejected: u64,
    /// 化解成功: live records whose latest mediation ended in agreement, by that month.
    resolved: u64,
    /// 调解不成: live records whose latest mediation ended without agreement, by that month.
    unresolved: u64,
    /// 办结: live closed records, by closing month.
    closed: u64,
    /// 涉及金额 of the received records, fen.
    amount_received_fen: i64,
    /// 涉及金额 of the resolved records, fen.
    amount_resolved_fen: i64,
    /// 履行金额 of the resolved records, fen.
    settled_fen: i64,
    /// Σ (end of mediation − registration) over resolved and unresolved records, ms.
    resolution_ms_total: i64,
    /// Σ latest follow-up score of live records, by registration month.
    satisfaction_total: u64,
    /// Live records with a follow-up score, by registration month.
    satisfaction_count: u64,
    /// Σ reopen counts of live records, by registration month.
    reopened: u64,
    /// Records held here that were registered at a descendant, by registration month.
    escalated_in: u64,
    /// Tombstones here of records now at an ancestor, by registration month.
    escalated_out: u64,
    /// Records held here that were registered elsewhere, not below, by registration month.
    transferred_in: u64,
    /// Tombstones here of records now elsewhere, not above, by registration month.
    transferred_out: u64,
    /// Resolved records held by a province node.
    resolved_province: u64,
    /// Resolved records held by a city node.
    resolved_city: u64,
    /// Resolved records held by a county node.
    resolved_county: u64,
    /// Resolved records held by a township node.
    resolved_township: u64,
    /// Resolved records held by a village node.
    resolved_village: u64,
    /// 在办 (current): live records registered, accepted or in mediation.
    open: u64,
    /// 未审核 (current): live records awaiting review.
    unreviewed: u64,
    /// 待回访 (current): live resolved or unresolved records.
    awaiting_follow_up: u64,
    /// 审核超期 (current, refreshed): unreviewed past the review deadline.
    overdue_review: u64,
    /// 办理超期 (current, refreshed): accepted or in mediation past the resolution deadline.
    overdue_resolve: u64,
    /// 回访超期 (current, refreshed): resolved or unresolved past the follow-up deadline.
    overdue_follow_up: u64,
}

impl Figures {
    pub fn is_zero(&self) -> bool {
        *self == Figures::default()
    }

    /// Resolved records by the tier of the node that holds them.
    pub fn resolved_by_tier(&self) -> [(Tier, u64); 5] {
        [
            (Tier::Province, self.resolved_province),
            (Tier::City, self.resolved_city),
            (Tier::County, self.resolved_county),
            (Tier::Township, self.resolved_township),
            (Tier::Village, self.resolved_village),
        ]
    }

    fn resolved_at_tier(&mut self, tier: Tier) -> &mut u64 {
        match tier {
            Tier::Province => &mut self.resolved_province,
            Tier::City => &mut self.resolved_city,
            Tier::County => &mut self.resolved_county,
            Tier::Township => &mut self.resolved_township,
            Tier::Village => &mut self.resolved_village,
        }
    }

    /// 化解率: resolved / (resolved + unresolved), 0 when no mediation has ended.
    pub fn success_rate(&self) -> f64 {
        ratio(self.resolved, self.resolved.wrapping_add(self.unresolved))
    }

    /// 平均办理天数: mean days from registration to the end of mediation, 0 when none.
    pub fn mean_days_to_resolution(&self) -> f64 {
        let ended = self.resolved.wrapping_add(self.unresolved);
        if ended == 0 {
            return 0.0;
        }
        self.resolution_ms_total as f64 / ended as f64 / 86_400_000.0
    }

    /// 回访满意度: the mean score (1–5), 0 when none.
    pub fn satisfaction_mean(&self) -> f64 {
        ratio(self.satisfaction_total, self.satisfaction_count)
    }

    /// 小事不出村、大事不出镇: share of resolved cases resolved at a township or village.
    pub fn settled_locally_share(&self) -> f64 {
        ratio(
            self.resolved_township.wrapping_add(self.resolved_village),
            self.resolved,
        )
    }

    /// Only the overdue figures of `self`.
    fn overdue_only(&self) -> Figures {
        Figures {
            overdue_review: self.overdue_review,
            overdue_resolve: self.overdue_resolve,
            overdue_follow_up: self.overdue_follow_up,
            ..Figures::default()
        }
    }
}

/// `part / whole`, 0 when `whole` is 0.
pub fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// A dimension an answer can be broken down by (besides month and child).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Dim {
    Category,
    Channel,
    Risk,
    MediationType,
}

impl Dim {
    pub const ALL: [Dim; 4] = [Dim::Category, Dim::Channel, Dim::Risk, Dim::MediationType];
}

/// One value of one dimension: the stable one-byte code of the domain enum (0 for "no
/// mediation type recorded").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cell {
    pub dim: Dim,
    pub value: u8,
}

/// The figures of one bucket: the total and, per dimension value, the same figures restricted
/// to the records with that value. Cells that are all zero are not kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cells {
    pub total: Figures,
    pub by: BTreeMap<Cell, Figures>,
}

impl Cells {
    pub fn is_zero(&self) -> bool {
        self.total.is_zero() && self.by.is_empty()
    }

    /// Adds (or with `add == false` subtracts) `f` to the total and to the cell of each of
    /// `dims`.
    pub fn apply(&mut self, dims: &[Cell], f: &Figures, add: bool) {
        let op = |into: &mut Figures| {
            if add { into.add(f) } else { into.sub(f) }
        };
        op(&mut self.total);
        for cell in dims {
            let entry = self.by.entry(*cell).or_default();
            op(entry);
            if entry.is_zero() {
                self.by.remove(cell);
            }
        }
    }

    /// `self += other` (or `-=`), cell by cell.
    pub fn merge(&mut self, other: &Cells, add: bool) {
        if add {
            self.total.add(&other.total);
        } else {
            self.total.sub(&other.total);
        }
        for (cell, f) in &other.by {
            self.apply_cell(*cell, f, add);
        }
    }

    fn apply_cell(&mut self, cell: Cell, f: &Figures, add: bool) {
        let entry = self.by.entry(cell).or_default();
        if add {
            entry.add(f);
        } else {
            entry.sub(f);
        }
        if entry.is_zero() {
            self.by.remove(&cell);
        }
    }

    /// Replaces the overdue figures of the total and of every cell by those of `snapshot`
    /// (which must hold overdue figures only, as [`overdue_snapshot`] builds it).
    pub fn replace_overdue(&mut self, snapshot: &Cells) {
        let old = Cells {
            total: self.total.overdue_only(),
            by: self
                .by
                .iter()
                .map(|(c, f)| (*c, f.overdue_only()))
                .filter(|(_, f)| !f.is_zero())
                .collect(),
        };
        self.merge(&old, false);
        self.merge(snapshot, true);
    }
}

/// What one record adds: the figures per bucket, and the dimension values it is counted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseParts {
    pub dims: [Cell; 4],
    pub parts: Vec<(Bucket, Figures)>,
}

fn dims_of(case: &Case) -> [Cell; 4] {
    [
        Cell {
            dim: Dim::Category,
            value: case.category.code(),
        },
        Cell {
            dim: Dim::Channel,
            value: case.channel.code(),
        },
        Cell {
            dim: Dim::Risk,
            value: case.risk.code(),
        },
        Cell {
            dim: Dim::MediationType,
            value: case.mediation_type.map_or(0, |t| t.code()),
        },
    ]
}

/// Whether `code` (a stored string) is a strict descendant of `node`.
fn below(node: &NodeCode, code: &str) -> bool {
    NodeCode::parse(code).is_ok_and(|c| node.is_ancestor_of(&c))
}

/// Whether `code` (a stored string) is a strict ancestor of `node`.
fn above(node: &NodeCode, code: &str) -> bool {
    NodeCode::parse(code).is_ok_and(|c| c.is_ancestor_of(node))
}

/// The figures the record `case`, as held by node `holder`, contributes (see the module doc
/// and `docs/aggregates.md`). A record is *live* unless it is a tombstone (status
/// Transferred) left behind when the case moved on.
pub fn case_parts(holder: &NodeCode, case: &Case) -> CaseParts {
    let live = case.status != CaseStatus::Transferred;
    let mut parts = Vec::with_capacity(4);

    let mut cohort = Figures::default();
    if case.origin_node == holder.as_str() {
        cohort.received = 1;
        cohort.amount_received_fen = case.amount_fen;
    } else if below(holder, &case.origin_node) {
        cohort.escalated_in = 1;
    } else {
        cohort.transferred_in = 1;
    }
    if live {
        match case.status {
            CaseStatus::Registered => {}
            CaseStatus::Rejected => cohort.rejected = 1,
            _ => cohort.accepted = 1,
        }
        if let Some(score) = case.satisfaction {
            cohort.satisfaction_total = u64::from(score);
            cohort.satisfaction_count = 1;
        }
        cohort.reopened = u64::from(case.reopen_count);
    } else {
        match &case.moved_to {
            Some(to) if above(holder, to) => cohort.escalated_out = 1,
            _ => cohort.transferred_out = 1,
        }
    }
    parts.push((china_month(case.created_at), cohort));

    let ended = matches!(
        case.status,
        CaseStatus::Resolved | CaseStatus::Unresolved | CaseStatus::Closed
    );
    if let Some(at) = case.resolved_at.filter(|_| live && ended) {
        let mut f = Figures {
            resolution_ms_total: at.millis().wrapping_sub(case.created_at.millis()),
            ..Figures::default()
        };
        // Only a successful resolution records a confirmation; an unresolved one clears it.
        if case.confirmation.is_some() {
            f.resolved = 1;
            f.amount_resolved_fen = case.amount_fen;
            f.settled_fen = case.settled_amount_fen;
            *f.resolved_at_tier(holder.tier()) = 1;
        } else {
            f.unresolved = 1;
        }
        parts.push((china_month(at), f));
    }
    if let Some(at) = case.closed_at.filter(|_| case.status == CaseStatus::Closed) {
        let f = Figures {
            closed: 1,
            ..Figures::default()
        };
        parts.push((china_month(at), f));
    }

    let current = Figures {
        open: u64::from(live && case.status.is_open()),
        unreviewed: u64::from(live && case.status == CaseStatus::Registered),
        awaiting_follow_up: u64::from(
            live && matches!(case.status, CaseStatus::Resolved | CaseStatus::Unresolved),
        ),
        ..Figures::default()
    };
    if !current.is_zero() {
        parts.push((CURRENT, current));
    }
    CaseParts {
        dims: dims_of(case),
        parts,
    }
}

/// Adds (or subtracts) what `case` contributes to `into`, dropping buckets that become zero.
pub fn apply_case(into: &mut Buckets, holder: &NodeCode, case: &Case, add: bool) {
    let CaseParts { dims, parts } = case_parts(holder, case);
    for (bucket, f) in parts {
        let cells = into.entry(bucket).or_default();
        cells.apply(&dims, &f, add);
        if cells.is_zero() {
            into.remove(&bucket);
        }
    }
}

/// The change of the holder's contribution when a record goes from `before` to `after`
/// (either may be absent): per bucket, `after − before`, wrapping. Buckets that do not change
/// are absent.
pub fn delta(holder: &NodeCode, before: Option<&Case>, after: Option<&Case>) -> Buckets {
    let mut out = Buckets::new();
    if let Some(b) = before {
        apply_case(&mut out, holder, b, false);
    }
    if let Some(a) = after {
        apply_case(&mut out, holder, a, true);
    }
    out
}

/// The brute-force definition: the contribution of `holder` holding exactly `cases`, without
/// the overdue figures (see [`overdue_snapshot`]).
pub fn recount<'a>(holder: &NodeCode, cases: impl IntoIterator<Item = &'a Case>) -> Buckets {
    let mut out = Buckets::new();
    for case in cases {
        apply_case(&mut out, holder, case, true);
    }
    out
}

/// The overdue figures at `now` of the records `cases` (normally those in the deadline index
/// below `now`): a [`CURRENT`] bucket holding only the overdue figures, by the kind of the
/// deadline that has run out (review, resolution, follow-up).
pub fn overdue_snapshot<'a>(cases: impl IntoIterator<Item = &'a Case>, now: Timestamp) -> Cells {
    let mut out = Cells::default();
    for case in cases {
        let Some(deadline) = case.deadline().filter(|d| d.due_at < now) else {
            continue;
        };
        let mut f = Figures::default();
        match deadline.kind {
            DeadlineKind::Review => f.overdue_review = 1,
            DeadlineKind::Resolve => f.overdue_resolve = 1,
            DeadlineKind::FollowUp => f.overdue_follow_up = 1,
        }
        out.apply(&dims_of(case), &f, true);
    }
    out
}

#[cfg(test)]
mod tests;
