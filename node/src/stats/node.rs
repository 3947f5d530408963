//! The statistics side of one node: what the handlers and the sender task share.
//!
//! [`StatsNode::receive`] checks and stores a child's push, [`StatsNode::answer`] answers a
//! query from stored entries, [`StatsNode::report_for_parent`] is the liveness view this node
//! passes up. Which entries a node keeps is [`keeps`]: OWN of descendants above the retention
//! depth, SUBTREE down to it.

use std::sync::{Mutex, PoisonError};

use crate::clock::SharedClock;
use crate::code::NodeCode;
use crate::domain::{DomainError, Timestamp};
use crate::error::Error;
use crate::storage::{Incoming, Store};

use super::figures::{Bucket, CURRENT, Cells};
use super::liveness::{self, LinkStatus, Liveness};
use super::query::{self, Answer, GroupBy, Part, Period};
use super::{Dim, Kind, StatsConfig, depth_below};

/// A push from a child, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The push starts a full resend.
    pub full: bool,
    pub entries: Vec<Incoming>,
    pub liveness: Vec<LinkStatus>,
    /// The sender's clock when it sent the push.
    pub sent_at: Timestamp,
}

/// The answer to a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushReply {
    pub retention_depth: u8,
    pub resync: bool,
}

/// Whether a node keeps entry `(kind, node)` of a node `depth` levels below it, with
/// `retention` levels kept in detail.
pub fn keeps(depth: u8, kind: Kind, retention: u8) -> bool {
    depth >= 1
        && match kind {
            Kind::Own => depth < retention,
            Kind::Subtree => depth <= retention,
        }
}

pub struct StatsNode {
    code: NodeCode,
    store: Store,
    clock: SharedClock,
    cfg: StatsConfig,
    liveness: Mutex<Liveness>,
}

impl StatsNode {
    pub fn new(code: NodeCode, store: Store, clock: SharedClock, cfg: StatsConfig) -> StatsNode {
        let liveness = Mutex::new(Liveness::new(clock.now()));
        StatsNode {
            code,
            store,
            clock,
            cfg,
            liveness,
        }
    }

    pub fn code(&self) -> &NodeCode {
        &self.code
    }

    pub fn config(&self) -> &StatsConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn liveness(&self) -> std::sync::MutexGuard<'_, Liveness> {
        // The data stays consistent even if a holder panicked: every update is one call.
        self.liveness.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores what `child` (a direct child, checked by the caller) pushed. Every entry must
    /// describe the child or one of its descendants, every liveness entry a descendant of
    /// the child: otherwise nothing is stored.
    pub async fn receive(&self, child: &NodeCode, push: Push) -> Result<PushReply, Error> {
        if child.parent().as_ref() != Some(&self.code) {
            return Err(Error::PermissionDenied(format!(
                "{child} is not a child of {}",
                self.code
            )));
        }
        let outside = |field: &'static str, node: &NodeCode| {
            DomainError::invalid(field, format!("{node} is outside the subtree of {child}"))
        };
        for e in &push.entries {
            if e.node != *child && !child.is_ancestor_of(&e.node) {
                return Err(outside("contributions.node", &e.node).into());
            }
        }
        for s in &push.liveness {
            if !child.is_ancestor_of(&s.node) {
                return Err(outside("liveness.node", &s.node).into());
            }
        }
        let retention = self.cfg.retention_depth;
        let kept: Vec<Incoming> = push
            .entries
            .into_iter()
            .filter(|e| {
                depth_below(&self.code, &e.node).is_some_and(|d| keeps(d, e.kind, retention))
            })
            .collect();
        if !kept.is_empty() {
            let outcome = self.store.merge_contributions(child.clone(), kept).await?;
            tracing::debug!(%child, applied = outcome.applied, ignored = outcome.ignored, "contributions merged");
        }
        let resync = self.liveness().heard(
            child,
            self.clock.now(),
            push.full,
            push.sent_at,
            push.liveness,
        );
        Ok(PushReply {
            retention_depth: retention,
            resync,
        })
    }

    /// What this node knows of its descendants' links, at `now`.
    fn view(
        &self,
        now: Timestamp,
    ) -> Result<std::collections::BTreeMap<NodeCode, LinkStatus>, Error> {
        let known = self.store.stats_children(Kind::Subtree, &self.code)?;
        Ok(self.liveness().view(now, self.cfg.stale_after, known))
    }

    /// The liveness view to pass to a parent keeping `parent_retention` levels (all when not
    /// yet known): the nodes the parent keeps in detail, and every stale one.
    pub fn report_for_parent(
        &self,
        parent_retention: Option<u8>,
    ) -> Result<Vec<LinkStatus>, Error> {
        let view = self.view(self.clock.now())?;
        Ok(view
            .into_values()
            .filter(|s| {
                s.stale
                    || parent_retention
                        .is_none_or(|r| depth_below(&self.code, &s.node).is_some_and(|d| d < r))
            })
            .collect())
    }

    /// Reads one stored contribution: its current bucket and the months of `period`, with
    /// the cells of `dims` only.
    fn part(
        &self,
        kind: Kind,
        node: &NodeCode,
        period: &Period,
        dims: &[Dim],
    ) -> Result<Vec<(Bucket, Cells)>, Error> {
        let mut buckets = Vec::new();
        if let Some(e) = self.store.stats_entry(kind, node, CURRENT, dims)? {
            buckets.push((CURRENT, e.cells));
        }
        let (first, last) = period.bounds();
        buckets.extend(self.store.stats_months(kind, node, first, last, dims)?);
        Ok(buckets)
    }

    /// The figures of `scope` (this node when `None`) for `period`, from stored entries.
    pub fn answer(
        &self,
        scope: Option<NodeCode>,
        period: Period,
        group_by: &[GroupBy],
    ) -> Result<Answer, Error> {
        let scope = scope.unwrap_or_else(|| self.code.clone());
        let Some(depth) = depth_below(&self.code, &scope) else {
            return Err(Error::PermissionDenied(format!(
                "{scope} is not in the subtree of {}: operators see the figures of their own \
                 node and its descendants only",
                self.code
            )));
        };
        let retention = self.cfg.retention_depth;
        if depth > retention {
            let ancestor = scope
                .ancestors()
                .into_iter()
                .find(|a| depth_below(&self.code, a) == Some(retention))
                .map_or_else(String::new, |a| a.to_string());
            return Err(Error::Folded {
                scope: scope.to_string(),
                ancestor,
                depth: retention,
            });
        }
        let now = self.clock.now();
        let dims: Vec<Dim> = group_by
            .iter()
            .filter_map(|g| match g {
                GroupBy::Dim(d) => Some(*d),
                GroupBy::Month | GroupBy::Child => None,
            })
            .collect();
        let folded = depth == retention && depth > 0;
        let mut parts = Vec::new();
        if folded {
            parts.push(Part {
                row: scope.clone(),
                buckets: self.part(Kind::Subtree, &scope, &period, &dims)?,
            });
        } else {
            let mut own = self.part(Kind::Own, &scope, &period, &dims)?;
            if scope == self.code {
                // This node's own overdue figures are computed now, not as last refreshed.
                let live = self.store.overdue_now(now)?;
                match own.iter_mut().find(|(b, _)| *b == CURRENT) {
                    Some((_, cells)) => cells.replace_overdue(&live),
                    None if !live.is_zero() => own.insert(0, (CURRENT, live)),
                    None => {}
                }
            }
            parts.push(Part {
                row: scope.clone(),
                buckets: own,
            });
            for child in self.store.stats_children(Kind::Subtree, &scope)? {
                let buckets = self.part(Kind::Subtree, &child, &period, &dims)?;
                parts.push(Part {
                    row: child,
                    buckets,
                });
            }
        }
        let view = self.view(now)?;
        if depth > 0 && !view.contains_key(&scope) && !self.known(&scope)? {
            return Err(Error::NoFigures(scope.to_string()));
        }
        let (totals, groups) = query::sum(&parts, group_by);
        let mut children = if folded {
            Vec::new()
        } else {
            liveness::children_of(&view, &scope)
        };
        for part in parts.iter().skip(1) {
            if !folded && !children.iter().any(|c| c.node == part.row) {
                children.push(LinkStatus {
                    node: part.row.clone(),
                    last_heard: None,
                    stale: false,
                });
            }
        }
        children.sort_by(|a, b| a.node.cmp(&b.node));
        Ok(Answer {
            stale: liveness::stale_roots(&view, &scope),
            scope,
            period,
            as_of: now,
            totals,
            groups,
            children,
            children_folded: folded,
            retention_depth: retention,
        })
    }

    /// Whether any entry of `node` is stored here.
    fn known(&self, node: &NodeCode) -> Result<bool, Error> {
        Ok(self.store.stats_has(Kind::Own, node)? || self.store.stats_has(Kind::Subtree, node)?)
    }
}

#[cfg(test)]
mod tests;
