//! Figures for higher tiers (上级看数): every node's contribution, how contributions travel up
//! the tree, and how a node answers `StatsService.GetAggregates` from what it stores.
//!
//! # The design in one page
//!
//! *Contribution.* A node's own contribution is a pure function of the case records it holds
//! ([`figures::recount`]); storage keeps it in the same transaction as every case change by
//! applying [`figures::delta`] of the record's before and after versions. It is bucketed by
//! month (China time) so a period is a sum of buckets, plus one bucket of current-state figures.
//!
//! *State, not deltas.* Each node keeps two contributions of its own: OWN (its cases) and
//! SUBTREE (OWN plus the SUBTREE of each child as last received). Every (node, kind, month)
//! entry carries a version from the node that computed it. A parent stores, per entry, the
//! state with the highest version and ignores older or equal ones, so duplicated, late or
//! reordered deliveries cannot double-count; a lost delivery is repaired by the next push of
//! the same entry (a later state). When a child's SUBTREE entry replaces the stored one, the
//! parent's own SUBTREE entry changes by the difference, in the same transaction.
//!
//! *Retention.* A node keeps entries of descendants down to `stats.retention_depth` levels:
//! OWN for levels above that depth and SUBTREE down to it. A deeper node's figures are inside
//! its ancestor's SUBTREE at that depth (folded), so a provincial node stores a bounded number
//! of entries however many villages lie below it. Folding is exact because a SUBTREE entry is
//! itself a versioned state computed by the node it describes, never a sum of someone else's
//! deltas.
//!
//! *Queries* read stored entries only, never other nodes: the figures of scope `S` are
//! `OWN(S) + Σ SUBTREE(c)` over S's children (or `SUBTREE(S)` when S sits at the retention
//! depth), summed over the month buckets of the period and the current bucket.
//!
//! *Transport* ([`push`]): a sender task pushes changed entries to the parent over mutual TLS
//! (`StatsExchange.PushContributions` on the parent's `federation_listen`), shortly after a
//! change and at least every heartbeat; the parent accepts them only from a direct child and
//! only about that child's subtree. Liveness (who was last heard from when) rides on the same
//! pushes ([`liveness`]).
//!
//! Modules: [`figures`] (pure arithmetic), [`query`] (pure answer building), [`liveness`]
//! (last-heard and staleness), [`push`] (the sender task). Storage of entries is in
//! `storage::stats`; the gRPC handlers are `service::stats` and `service::exchange`.
//!
//! Contributions hold counts and sums only: no case ids, names, phones or ID numbers ever
//! leave a node through them.

pub mod figures;
pub mod liveness;
pub mod node;
pub mod push;
pub mod query;

#[cfg(test)]
pub(crate) mod workload;

use std::time::Duration;

pub use figures::{Bucket, Buckets, CURRENT, Cell, Cells, Dim, Figures};

/// Which contribution of a node an entry belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// The node's own cases.
    Own,
    /// The node's whole subtree.
    Subtree,
}

impl Kind {
    /// Stable one-byte code (used in storage keys).
    pub const fn code(self) -> u8 {
        match self {
            Kind::Own => 1,
            Kind::Subtree => 2,
        }
    }

    pub fn from_code(c: u8) -> Option<Kind> {
        match c {
            1 => Some(Kind::Own),
            2 => Some(Kind::Subtree),
            _ => None,
        }
    }
}

/// The `[stats]` section of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsConfig {
    /// Levels below this node kept in detail (1–4); deeper ones are folded.
    pub retention_depth: u8,
    /// Wait after a change before pushing (collects a burst of changes into one push).
    pub push_delay: Duration,
    /// Push at least this often, changes or not (liveness).
    pub heartbeat: Duration,
    /// A child not heard from for this long is reported stale.
    pub stale_after: Duration,
    /// How often the own overdue figures are recomputed for publication.
    pub overdue_refresh: Duration,
}

impl Default for StatsConfig {
    fn default() -> Self {
        StatsConfig {
            retention_depth: 2,
            push_delay: Duration::from_millis(100),
            heartbeat: Duration::from_secs(5),
            stale_after: Duration::from_secs(30),
            overdue_refresh: Duration::from_secs(60),
        }
    }
}

/// Levels between `ancestor` and `node` (1 for a child); `None` unless `ancestor` is `node`
/// (0) or one of its ancestors.
pub fn depth_below(ancestor: &crate::code::NodeCode, node: &crate::code::NodeCode) -> Option<u8> {
    if ancestor != node && !ancestor.is_ancestor_of(node) {
        return None;
    }
    let index = |t| crate::code::Tier::ALL.iter().position(|x| *x == t);
    let (a, n) = (index(ancestor.tier())?, index(node.tier())?);
    u8::try_from(n.checked_sub(a)?).ok()
}

/// Number of digits of the codes of `node`'s children (`None` for a village).
pub fn child_digits(node: &crate::code::NodeCode) -> Option<usize> {
    let tiers = crate::code::Tier::ALL;
    let i = tiers.iter().position(|t| *t == node.tier())?;
    tiers.get(i + 1).map(|t| t.digits())
}
